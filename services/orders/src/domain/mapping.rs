//! The Get Orders mapping template: which Shopify order fields are stored, each on or off (the spec's "Mapping
//! Template"), and the currency of each store location. A disabled field is never written to the database, so it is
//! absent from the API and from events too. Every field is on for a channel never configured.

use std::collections::{BTreeMap, BTreeSet};

use shopbridge_proto::orders as pb;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use crate::error::{Error, Result};

const ADDRESS_FIELDS: [&str; 11] = [
    "name",
    "first_name",
    "last_name",
    "company",
    "address1",
    "address2",
    "city",
    "province_code",
    "zip",
    "country_code",
    "phone",
];

/// Every field of the template, in the order the API lists them.
pub fn all_fields() -> Vec<String> {
    let mut fields = Vec::new();
    for kind in ["billing_address", "shipping_address"] {
        for f in ADDRESS_FIELDS {
            fields.push(format!("{kind}.{f}"));
        }
    }
    for f in ["title", "sku", "quantity", "custom_attributes"] {
        fields.push(format!("line_item.{f}"));
    }
    for f in ["shipping_method_title", "total", "created_at"] {
        fields.push(format!("order.{f}"));
    }
    fields.push("customer.email_to_billing".into());
    fields.push("customer.email_to_shipping".into());
    fields
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    pub disabled: BTreeSet<String>,
    pub currency_by_location: BTreeMap<String, String>,
}

impl Mapping {
    pub fn enabled(&self, field: &str) -> bool {
        !self.disabled.contains(field)
    }

    /// Applies `p` to `self` (fields `p` does not name keep their state; the currency map is replaced).
    pub fn apply_proto(&self, p: &pb::GetOrdersMapping) -> Result<Self> {
        let known = all_fields();
        let mut next = self.clone();
        for f in &p.fields {
            let name = f.field.trim();
            if !known.iter().any(|k| k == name) {
                return Err(Error::InvalidArgument(format!(
                    "`{name}` is not a field of the Get Orders mapping template; the fields are: {}",
                    known.join(", ")
                )));
            }
            if f.enabled {
                next.disabled.remove(name);
            } else {
                next.disabled.insert(name.to_string());
            }
        }
        let mut currencies = BTreeMap::new();
        for (location, currency) in &p.currency_by_location {
            let id = location
                .strip_prefix("gid://shopify/Location/")
                .unwrap_or("");
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::InvalidArgument(format!(
                    "currency_by_location: `{location}` is not a Shopify location id (gid://shopify/Location/<number>)"
                )));
            }
            let code = currency.trim().to_ascii_uppercase();
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(Error::InvalidArgument(format!(
                    "currency_by_location: `{currency}` is not an ISO 4217 currency code (e.g. USD)"
                )));
            }
            currencies.insert(location.clone(), code);
        }
        next.currency_by_location = currencies;
        Ok(next)
    }

    pub fn to_proto(&self, channel: Uuid) -> pb::GetOrdersMapping {
        pb::GetOrdersMapping {
            channel_id: channel.to_string(),
            fields: all_fields()
                .into_iter()
                .map(|f| pb::MappingField {
                    enabled: self.enabled(&f),
                    field: f,
                })
                .collect(),
            currency_by_location: self.currency_by_location.clone().into_iter().collect(),
        }
    }
}

pub async fn get<'e>(
    db: impl PgExecutor<'e>,
    tenant: Uuid,
    channel: Uuid,
) -> sqlx::Result<Mapping> {
    let row = sqlx::query(
        "SELECT disabled_fields, currency_by_location FROM get_orders_mappings WHERE tenant_id = $1 AND channel_id = $2",
    )
    .bind(tenant)
    .bind(channel)
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(Mapping::default());
    };
    let disabled: Vec<String> = row.get("disabled_fields");
    let currencies: sqlx::types::Json<BTreeMap<String, String>> = row.get("currency_by_location");
    Ok(Mapping {
        disabled: disabled.into_iter().collect(),
        currency_by_location: currencies.0,
    })
}

pub async fn set<'e>(
    db: impl PgExecutor<'e>,
    tenant: Uuid,
    channel: Uuid,
    m: &Mapping,
) -> sqlx::Result<()> {
    let disabled: Vec<&String> = m.disabled.iter().collect();
    sqlx::query(
        "INSERT INTO get_orders_mappings (tenant_id, channel_id, disabled_fields, currency_by_location)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, channel_id) DO UPDATE SET disabled_fields = EXCLUDED.disabled_fields,
            currency_by_location = EXCLUDED.currency_by_location, updated_at = now()",
    )
    .bind(tenant)
    .bind(channel)
    .bind(&disabled)
    .bind(sqlx::types::Json(&m.currency_by_location))
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused_and_named_fields_switch() {
        let m = Mapping::default();
        let off = m
            .apply_proto(&pb::GetOrdersMapping {
                fields: vec![pb::MappingField {
                    field: "billing_address.phone".into(),
                    enabled: false,
                }],
                ..Default::default()
            })
            .unwrap();
        assert!(!off.enabled("billing_address.phone"));
        assert!(off.enabled("shipping_address.phone"));
        let err = m
            .apply_proto(&pb::GetOrdersMapping {
                fields: vec![pb::MappingField {
                    field: "billing.phone".into(),
                    enabled: false,
                }],
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("not a field"));
    }
}
