//! Get Orders settings per channel, every one of the spec's "Your Configuration Options", and their storage.
//!
//! Defaults for a channel never configured: Get Orders is off until the merchant turns it on (the spec's setup step
//! 2); no location, so every location is accepted, and orders with no location are imported (the spec: "orders with
//! this Location ID or no Location ID will be saved"); unfulfilled and partially fulfilled orders (what is still to
//! be shipped); any financial status; PII kept indefinitely; no tag; orders updated in the last 14 days (the spec's
//! example).
//!
//! Refused, with the reason: no fulfillment status or no financial status; ANY together with specific financial
//! statuses; a location that is not a Shopify Location GID; "import orders with no location" off while no location
//! is chosen (nothing would say which orders to keep); a tag longer than 40 characters or with a comma (Shopify splits
//! tags on commas); a window outside 1..365 days.

use shopbridge_proto::orders as pb;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fulfillment {
    Unfulfilled,
    PartiallyFulfilled,
    Fulfilled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Financial {
    Any,
    Authorized,
    Pending,
    Paid,
    PartiallyPaid,
    PartiallyRefunded,
    Voided,
    Unpaid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOrdersSettings {
    pub enabled: bool,
    pub location_id: String,
    pub import_orders_without_location: bool,
    pub fulfillment_statuses: Vec<Fulfillment>,
    pub financial_statuses: Vec<Financial>,
    /// None: indefinitely.
    pub pii_retention_days: Option<i32>,
    pub tag_after_import: String,
    pub updated_within_days: u32,
}

impl Default for GetOrdersSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            location_id: String::new(),
            import_orders_without_location: true,
            fulfillment_statuses: vec![Fulfillment::Unfulfilled, Fulfillment::PartiallyFulfilled],
            financial_statuses: vec![Financial::Any],
            pii_retention_days: None,
            tag_after_import: String::new(),
            updated_within_days: 14,
        }
    }
}

impl Fulfillment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unfulfilled => "unfulfilled",
            Self::PartiallyFulfilled => "partially_fulfilled",
            Self::Fulfilled => "fulfilled",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Unfulfilled, Self::PartiallyFulfilled, Self::Fulfilled]
            .into_iter()
            .find(|f| f.as_str() == text)
    }
    fn from_proto(v: i32) -> Option<Self> {
        match pb::FulfillmentStatus::try_from(v).ok()? {
            pb::FulfillmentStatus::Unfulfilled => Some(Self::Unfulfilled),
            pb::FulfillmentStatus::PartiallyFulfilled => Some(Self::PartiallyFulfilled),
            pb::FulfillmentStatus::Fulfilled => Some(Self::Fulfilled),
            pb::FulfillmentStatus::Unspecified => None,
        }
    }
    fn to_proto(self) -> pb::FulfillmentStatus {
        match self {
            Self::Unfulfilled => pb::FulfillmentStatus::Unfulfilled,
            Self::PartiallyFulfilled => pb::FulfillmentStatus::PartiallyFulfilled,
            Self::Fulfilled => pb::FulfillmentStatus::Fulfilled,
        }
    }
}

impl Financial {
    const ALL: [Self; 8] = [
        Self::Any,
        Self::Authorized,
        Self::Pending,
        Self::Paid,
        Self::PartiallyPaid,
        Self::PartiallyRefunded,
        Self::Voided,
        Self::Unpaid,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::Authorized => "authorized",
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::PartiallyPaid => "partially_paid",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Voided => "voided",
            Self::Unpaid => "unpaid",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }
    /// Whether Shopify's displayFinancialStatus `status` is one this choice accepts. "unpaid" is Shopify's own
    /// definition of its `financial_status=unpaid` filter: authorized or partially paid orders.
    pub fn accepts(self, status: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Authorized => status == "AUTHORIZED",
            Self::Pending => status == "PENDING",
            Self::Paid => status == "PAID",
            Self::PartiallyPaid => status == "PARTIALLY_PAID",
            Self::PartiallyRefunded => status == "PARTIALLY_REFUNDED",
            Self::Voided => status == "VOIDED",
            Self::Unpaid => matches!(status, "AUTHORIZED" | "PARTIALLY_PAID"),
        }
    }
    fn from_proto(v: i32) -> Option<Self> {
        use pb::FinancialStatus as F;
        Some(match F::try_from(v).ok()? {
            F::Any => Self::Any,
            F::Authorized => Self::Authorized,
            F::Pending => Self::Pending,
            F::Paid => Self::Paid,
            F::PartiallyPaid => Self::PartiallyPaid,
            F::PartiallyRefunded => Self::PartiallyRefunded,
            F::Voided => Self::Voided,
            F::Unpaid => Self::Unpaid,
            F::Unspecified => return None,
        })
    }
    fn to_proto(self) -> pb::FinancialStatus {
        use pb::FinancialStatus as F;
        match self {
            Self::Any => F::Any,
            Self::Authorized => F::Authorized,
            Self::Pending => F::Pending,
            Self::Paid => F::Paid,
            Self::PartiallyPaid => F::PartiallyPaid,
            Self::PartiallyRefunded => F::PartiallyRefunded,
            Self::Voided => F::Voided,
            Self::Unpaid => F::Unpaid,
        }
    }
}

pub fn parse_channel_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text.trim())
        .map_err(|_| Error::InvalidArgument(format!("channel_id `{text}` is not an id")))
}

const TAG_MAX: usize = 40;

impl GetOrdersSettings {
    /// Checks the combination; the error says what is wrong and how to fix it.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.fulfillment_statuses.is_empty() {
            return Err("choose at least one fulfillment status (unfulfilled, partially_fulfilled, fulfilled)".into());
        }
        if self.financial_statuses.is_empty() {
            return Err("choose at least one financial status, or any".into());
        }
        if self.financial_statuses.contains(&Financial::Any) && self.financial_statuses.len() > 1 {
            return Err("financial status `any` already accepts every status: choose any alone or specific statuses".into());
        }
        let location = self.location_id.trim();
        if !location.is_empty() {
            let id = location
                .strip_prefix("gid://shopify/Location/")
                .unwrap_or("");
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "location_id `{location}` is not a Shopify location id (gid://shopify/Location/<number>)"
                ));
            }
        } else if !self.import_orders_without_location {
            return Err("import_orders_without_location can be off only when a location is chosen: with no location \
                        every order is imported"
                .into());
        }
        let tag = self.tag_after_import.trim();
        if tag.chars().count() > TAG_MAX {
            return Err(format!(
                "tag_after_import is longer than {TAG_MAX} characters"
            ));
        }
        if tag.contains(',') {
            return Err(
                "tag_after_import cannot contain a comma (Shopify separates tags with commas)"
                    .into(),
            );
        }
        if !(1..=365).contains(&self.updated_within_days) {
            return Err(format!(
                "updated_within_days must be between 1 and 365, not {}",
                self.updated_within_days
            ));
        }
        Ok(())
    }

    pub fn from_proto(p: &pb::GetOrdersSettings) -> Result<(Uuid, Self)> {
        let channel = parse_channel_id(&p.channel_id)?;
        let mut fulfillment = Vec::new();
        for v in &p.fulfillment_statuses {
            let f = Fulfillment::from_proto(*v)
                .ok_or_else(|| Error::InvalidArgument(format!("unknown fulfillment status {v}")))?;
            if !fulfillment.contains(&f) {
                fulfillment.push(f);
            }
        }
        let mut financial = Vec::new();
        for v in &p.financial_statuses {
            let f = Financial::from_proto(*v)
                .ok_or_else(|| Error::InvalidArgument(format!("unknown financial status {v}")))?;
            if !financial.contains(&f) {
                financial.push(f);
            }
        }
        fulfillment.sort();
        financial.sort();
        let pii_retention_days = match pb::PiiRetention::try_from(p.pii_retention) {
            Ok(pb::PiiRetention::Unspecified | pb::PiiRetention::Indefinitely) => None,
            Ok(pb::PiiRetention::Days30) => Some(30),
            Ok(pb::PiiRetention::Days60) => Some(60),
            Ok(pb::PiiRetention::Days90) => Some(90),
            Err(_) => {
                return Err(Error::InvalidArgument(format!(
                    "unknown pii_retention {}",
                    p.pii_retention
                )));
            }
        };
        let settings = Self {
            enabled: p.enabled,
            location_id: p.location_id.trim().to_string(),
            import_orders_without_location: p.import_orders_without_location,
            fulfillment_statuses: fulfillment,
            financial_statuses: financial,
            pii_retention_days,
            tag_after_import: p.tag_after_import.trim().to_string(),
            updated_within_days: p.updated_within_days,
        };
        settings.validate().map_err(Error::InvalidArgument)?;
        Ok((channel, settings))
    }

    pub fn to_proto(&self, channel: Uuid) -> pb::GetOrdersSettings {
        pb::GetOrdersSettings {
            channel_id: channel.to_string(),
            enabled: self.enabled,
            location_id: self.location_id.clone(),
            import_orders_without_location: self.import_orders_without_location,
            fulfillment_statuses: self
                .fulfillment_statuses
                .iter()
                .map(|f| f.to_proto() as i32)
                .collect(),
            financial_statuses: self
                .financial_statuses
                .iter()
                .map(|f| f.to_proto() as i32)
                .collect(),
            pii_retention: match self.pii_retention_days {
                None => pb::PiiRetention::Indefinitely,
                Some(30) => pb::PiiRetention::Days30,
                Some(60) => pb::PiiRetention::Days60,
                Some(_) => pb::PiiRetention::Days90,
            } as i32,
            tag_after_import: self.tag_after_import.clone(),
            updated_within_days: self.updated_within_days,
        }
    }
}

/// The channel's settings, or the defaults when it was never configured.
pub async fn get<'e>(
    db: impl PgExecutor<'e>,
    tenant: Uuid,
    channel: Uuid,
) -> sqlx::Result<GetOrdersSettings> {
    let row = sqlx::query(
        "SELECT enabled, location_id, import_orders_without_location, fulfillment_statuses, financial_statuses,
                pii_retention_days, tag_after_import, updated_within_days
         FROM get_orders_settings WHERE tenant_id = $1 AND channel_id = $2",
    )
    .bind(tenant)
    .bind(channel)
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(GetOrdersSettings::default());
    };
    let fulfillment: Vec<String> = row.get("fulfillment_statuses");
    let financial: Vec<String> = row.get("financial_statuses");
    Ok(GetOrdersSettings {
        enabled: row.get("enabled"),
        location_id: row.get("location_id"),
        import_orders_without_location: row.get("import_orders_without_location"),
        fulfillment_statuses: fulfillment
            .iter()
            .filter_map(|s| Fulfillment::parse(s))
            .collect(),
        financial_statuses: financial
            .iter()
            .filter_map(|s| Financial::parse(s))
            .collect(),
        pii_retention_days: row.get("pii_retention_days"),
        tag_after_import: row.get("tag_after_import"),
        updated_within_days: row.get::<i32, _>("updated_within_days").max(1) as u32,
    })
}

pub async fn set<'e>(
    db: impl PgExecutor<'e>,
    tenant: Uuid,
    channel: Uuid,
    s: &GetOrdersSettings,
) -> sqlx::Result<()> {
    let fulfillment: Vec<&str> = s.fulfillment_statuses.iter().map(|f| f.as_str()).collect();
    let financial: Vec<&str> = s.financial_statuses.iter().map(|f| f.as_str()).collect();
    sqlx::query(
        "INSERT INTO get_orders_settings (tenant_id, channel_id, enabled, location_id, import_orders_without_location,
                                          fulfillment_statuses, financial_statuses, pii_retention_days,
                                          tag_after_import, updated_within_days)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (tenant_id, channel_id) DO UPDATE SET
            enabled = EXCLUDED.enabled, location_id = EXCLUDED.location_id,
            import_orders_without_location = EXCLUDED.import_orders_without_location,
            fulfillment_statuses = EXCLUDED.fulfillment_statuses, financial_statuses = EXCLUDED.financial_statuses,
            pii_retention_days = EXCLUDED.pii_retention_days, tag_after_import = EXCLUDED.tag_after_import,
            updated_within_days = EXCLUDED.updated_within_days, updated_at = now()",
    )
    .bind(tenant)
    .bind(channel)
    .bind(s.enabled)
    .bind(&s.location_id)
    .bind(s.import_orders_without_location)
    .bind(&fulfillment)
    .bind(&financial)
    .bind(s.pii_retention_days)
    .bind(&s.tag_after_import)
    .bind(s.updated_within_days as i32)
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_off() {
        let d = GetOrdersSettings::default();
        assert!(d.validate().is_ok());
        assert!(!d.enabled);
    }

    #[test]
    fn invalid_combinations_are_refused_with_the_reason() {
        let base = GetOrdersSettings::default();
        let cases = [
            (
                GetOrdersSettings {
                    fulfillment_statuses: vec![],
                    ..base.clone()
                },
                "fulfillment status",
            ),
            (
                GetOrdersSettings {
                    financial_statuses: vec![],
                    ..base.clone()
                },
                "financial status",
            ),
            (
                GetOrdersSettings {
                    financial_statuses: vec![Financial::Any, Financial::Paid],
                    ..base.clone()
                },
                "any alone",
            ),
            (
                GetOrdersSettings {
                    location_id: "123".into(),
                    ..base.clone()
                },
                "not a Shopify location",
            ),
            (
                GetOrdersSettings {
                    import_orders_without_location: false,
                    ..base.clone()
                },
                "only when a location",
            ),
            (
                GetOrdersSettings {
                    tag_after_import: "a,b".into(),
                    ..base.clone()
                },
                "comma",
            ),
            (
                GetOrdersSettings {
                    tag_after_import: "x".repeat(41),
                    ..base.clone()
                },
                "longer than 40",
            ),
            (
                GetOrdersSettings {
                    updated_within_days: 0,
                    ..base.clone()
                },
                "between 1 and 365",
            ),
        ];
        for (settings, reason) in cases {
            let err = settings.validate().unwrap_err();
            assert!(err.contains(reason), "{err} should say {reason}");
        }
    }

    #[test]
    fn unpaid_is_shopifys_authorized_or_partially_paid() {
        assert!(Financial::Unpaid.accepts("AUTHORIZED"));
        assert!(Financial::Unpaid.accepts("PARTIALLY_PAID"));
        assert!(!Financial::Unpaid.accepts("PAID"));
        assert!(Financial::Any.accepts("REFUNDED"));
    }
}
