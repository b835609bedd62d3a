//! `shopbridge orders list|show`, and the Get Orders settings and mapping (`settings get|set get-orders`,
//! `mapping get|set get-orders`): the orders service.

use std::path::Path;

use serde::{Deserialize, Serialize};
use shopbridge_proto::{
    common::PageRequest,
    orders::{self as pb, FinancialStatus, FulfillmentStatus, PiiRetention},
};

use crate::{
    cli::{OrdersCommand, OrdersListArgs},
    client::Ctx,
    commands::{channels, settings::read_source},
    error::{CallExt, CliError, Exit},
    output::{self, or_dash},
};

/// An order as the CLI prints it; the JSON field names are stable.
#[derive(Debug, Serialize)]
pub struct OrderView {
    pub order_id: String,
    pub channel_id: String,
    pub shopify_order_id: String,
    pub name: String,
    pub financial_status: String,
    pub fulfillment_status: String,
    pub location_id: String,
    pub total: Option<String>,
    pub currency: String,
    pub location_currency: String,
    pub non_shippable: bool,
    pub digital: bool,
    pub pii_erased: bool,
    pub imported_at: Option<String>,
    pub updated_at: Option<String>,
    pub tagged_at: Option<String>,
    pub lines: Vec<LineView>,
    pub shipping_address: Option<String>,
    pub billing_address: Option<String>,
    pub history: Vec<HistoryView>,
}

#[derive(Debug, Serialize)]
pub struct LineView {
    pub sku: String,
    pub title: String,
    pub quantity: i64,
    pub fulfillable_quantity: i64,
    pub digital: bool,
}

#[derive(Debug, Serialize)]
pub struct HistoryView {
    pub at: Option<String>,
    pub kind: String,
    pub source: String,
    pub changes: Vec<String>,
}

fn address(a: Option<&pb::Address>) -> Option<String> {
    a.map(|a| {
        [
            &a.name,
            &a.address1,
            &a.address2,
            &a.city,
            &a.province_code,
            &a.zip,
            &a.country_code,
            &a.email,
        ]
        .iter()
        .filter(|v| !v.is_empty())
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
    })
}

impl From<pb::Order> for OrderView {
    fn from(o: pb::Order) -> Self {
        Self {
            total: o.total.as_ref().map(|m| m.amount.clone()),
            imported_at: output::rfc3339(o.imported_at.as_ref()),
            updated_at: output::rfc3339(o.updated_at.as_ref()),
            tagged_at: output::rfc3339(o.tagged_at.as_ref()),
            shipping_address: address(o.shipping_address.as_ref()),
            billing_address: address(o.billing_address.as_ref()),
            lines: o
                .lines
                .iter()
                .map(|l| LineView {
                    sku: l.sku.clone(),
                    title: l.title.clone(),
                    quantity: l.quantity,
                    fulfillable_quantity: l.fulfillable_quantity,
                    digital: l.digital,
                })
                .collect(),
            history: o
                .history
                .iter()
                .map(|h| HistoryView {
                    at: output::rfc3339(h.at.as_ref()),
                    kind: h.kind.clone(),
                    source: h.source.clone(),
                    changes: h.changes.clone(),
                })
                .collect(),
            order_id: o.order_id,
            channel_id: o.channel_id,
            shopify_order_id: o.shopify_order_id,
            name: o.name,
            financial_status: o.financial_status,
            fulfillment_status: o.fulfillment_status,
            location_id: o.location_id,
            currency: o.currency,
            location_currency: o.location_currency,
            non_shippable: o.non_shippable,
            digital: o.digital,
            pii_erased: o.pii_erased,
        }
    }
}

#[derive(Debug, Serialize)]
struct ListView {
    total: u64,
    orders: Vec<OrderView>,
}

pub async fn run(ctx: &Ctx, cmd: OrdersCommand) -> Result<Exit, CliError> {
    match cmd {
        OrdersCommand::List(args) => list(ctx, args).await,
        OrdersCommand::Show { id, channel } => {
            let channel_id = match channel {
                Some(c) => channels::resolve_id(ctx, &c).await?,
                None => String::new(),
            };
            let order = ctx
                .orders()
                .await?
                .get_order(pb::GetOrderRequest {
                    order_id: id,
                    channel_id,
                })
                .await
                .or_fail(&ctx.orders)
                .map_err(|e| {
                    e.with_hint(
                        Exit::NotFound,
                        "see your orders with `shopbridge orders list`",
                    )
                })?
                .order
                .ok_or_else(|| CliError::other("orders answered without the order"))?;
            let view = OrderView::from(order);
            if ctx.json() {
                output::json(&view)?;
                return Ok(Exit::Ok);
            }
            output::fields(&[
                ("order", view.name.clone()),
                ("id", view.order_id.clone()),
                ("shopify id", view.shopify_order_id.clone()),
                ("financial status", view.financial_status.clone()),
                ("fulfillment status", view.fulfillment_status.clone()),
                ("location", or_dash(&view.location_id)),
                (
                    "total",
                    format!("{} {}", view.total.as_deref().unwrap_or("-"), view.currency),
                ),
                ("non-shippable", view.non_shippable.to_string()),
                ("digital", view.digital.to_string()),
                (
                    "shipping address",
                    view.shipping_address.clone().unwrap_or_else(|| "-".into()),
                ),
                (
                    "billing address",
                    view.billing_address.clone().unwrap_or_else(|| "-".into()),
                ),
                ("pii erased", view.pii_erased.to_string()),
                (
                    "tagged",
                    view.tagged_at.clone().unwrap_or_else(|| "-".into()),
                ),
            ])?;
            output::print_line("")?;
            output::table(
                &["sku", "title", "quantity", "to ship", "digital"],
                view.lines
                    .iter()
                    .map(|l| {
                        vec![
                            or_dash(&l.sku),
                            or_dash(&l.title),
                            l.quantity.to_string(),
                            l.fulfillable_quantity.to_string(),
                            l.digital.to_string(),
                        ]
                    })
                    .collect(),
            )?;
            output::print_line("")?;
            output::table(
                &["at", "what", "source", "changes"],
                view.history
                    .iter()
                    .map(|h| {
                        vec![
                            h.at.clone().unwrap_or_default(),
                            h.kind.clone(),
                            h.source.clone(),
                            or_dash(&h.changes.join("; ")),
                        ]
                    })
                    .collect(),
            )?;
            Ok(Exit::Ok)
        }
    }
}

async fn list(ctx: &Ctx, args: OrdersListArgs) -> Result<Exit, CliError> {
    let channel_id = match &args.channel {
        Some(c) => channels::resolve_id(ctx, c).await?,
        None => String::new(),
    };
    let imported_since = match &args.since {
        Some(t) => {
            let t = chrono::DateTime::parse_from_rfc3339(t).map_err(|e| {
                CliError::usage(format!("--since `{t}` is not an RFC 3339 time: {e}"))
            })?;
            Some(prost_types::Timestamp {
                seconds: t.timestamp(),
                nanos: 0,
            })
        }
        None => None,
    };
    let mut client = ctx.orders().await?;
    let mut orders = Vec::new();
    let mut token = String::new();
    let mut total = 0;
    while (orders.len() as u32) < args.limit {
        let page = client
            .list_orders(pb::ListOrdersRequest {
                channel_id: channel_id.clone(),
                fulfillment_status: args.status.clone().unwrap_or_default(),
                financial_status: args.financial.clone().unwrap_or_default(),
                imported_since,
                text: args.text.clone().unwrap_or_default(),
                page: Some(PageRequest {
                    page_size: (args.limit - orders.len() as u32).min(200),
                    page_token: token,
                }),
            })
            .await
            .or_fail(&ctx.orders)?;
        total = page.total;
        orders.extend(page.orders.into_iter().map(OrderView::from));
        token = page.page.unwrap_or_default().next_page_token;
        if token.is_empty() {
            break;
        }
    }
    if ctx.json() {
        output::json(&ListView { total, orders })?;
        return Ok(Exit::Ok);
    }
    output::table(
        &[
            "order",
            "financial",
            "fulfillment",
            "total",
            "lines",
            "imported",
            "id",
        ],
        orders
            .iter()
            .map(|o| {
                vec![
                    o.name.clone(),
                    o.financial_status.clone(),
                    o.fulfillment_status.clone(),
                    format!("{} {}", o.total.as_deref().unwrap_or("-"), o.currency),
                    o.lines.len().to_string(),
                    o.imported_at.clone().unwrap_or_default(),
                    o.order_id.clone(),
                ]
            })
            .collect(),
    )?;
    if total as usize > orders.len() {
        output::print_line(&format!(
            "({} of {total} orders; --limit shows more)",
            orders.len()
        ))?;
    }
    Ok(Exit::Ok)
}

// ----- settings -----------------------------------------------------------------------------------------------

/// The YAML of `settings set get-orders`; every key optional (left out: unchanged).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetOrdersSettingsFile {
    pub enabled: Option<bool>,
    pub location_id: Option<String>,
    pub import_orders_without_location: Option<bool>,
    pub fulfillment_statuses: Option<Vec<String>>,
    pub financial_statuses: Option<Vec<String>>,
    pub pii_retention: Option<String>,
    pub tag_after_import: Option<String>,
    pub updated_within_days: Option<u32>,
}

const FULFILLMENT: [(&str, FulfillmentStatus); 3] = [
    ("unfulfilled", FulfillmentStatus::Unfulfilled),
    ("partially_fulfilled", FulfillmentStatus::PartiallyFulfilled),
    ("fulfilled", FulfillmentStatus::Fulfilled),
];
const FINANCIAL: [(&str, FinancialStatus); 8] = [
    ("any", FinancialStatus::Any),
    ("authorized", FinancialStatus::Authorized),
    ("pending", FinancialStatus::Pending),
    ("paid", FinancialStatus::Paid),
    ("partially_paid", FinancialStatus::PartiallyPaid),
    ("partially_refunded", FinancialStatus::PartiallyRefunded),
    ("voided", FinancialStatus::Voided),
    ("unpaid", FinancialStatus::Unpaid),
];
const RETENTION: [(&str, PiiRetention); 4] = [
    ("indefinitely", PiiRetention::Indefinitely),
    ("30_days", PiiRetention::Days30),
    ("60_days", PiiRetention::Days60),
    ("90_days", PiiRetention::Days90),
];

const SETTINGS_KEYS: &str = "enabled (true/false), location_id (gid://shopify/Location/<id> or \"\"), \
     import_orders_without_location (true/false), fulfillment_statuses (unfulfilled, partially_fulfilled, fulfilled), \
     financial_statuses (any, authorized, pending, paid, partially_paid, partially_refunded, voided, unpaid), \
     pii_retention (indefinitely, 30_days, 60_days, 90_days), tag_after_import, updated_within_days (1..365)";

fn name_of<T: Copy + PartialEq>(table: &[(&'static str, T)], value: T) -> &'static str {
    table
        .iter()
        .find(|(_, v)| *v == value)
        .map_or("unset", |(n, _)| n)
}

fn value_of<T: Copy>(table: &[(&'static str, T)], name: &str, key: &str) -> Result<T, String> {
    table
        .iter()
        .find(|(n, _)| *n == name.trim().to_ascii_lowercase())
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            format!(
                "{key}: `{name}` is not one of {}",
                table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )
        })
}

impl GetOrdersSettingsFile {
    pub fn apply(&self, mut s: pb::GetOrdersSettings) -> Result<pb::GetOrdersSettings, String> {
        if let Some(v) = self.enabled {
            s.enabled = v;
        }
        if let Some(v) = &self.location_id {
            s.location_id = v.clone();
        }
        if let Some(v) = self.import_orders_without_location {
            s.import_orders_without_location = v;
        }
        if let Some(list) = &self.fulfillment_statuses {
            s.fulfillment_statuses = list
                .iter()
                .map(|n| value_of(&FULFILLMENT, n, "fulfillment_statuses").map(|v| v as i32))
                .collect::<Result<_, _>>()?;
        }
        if let Some(list) = &self.financial_statuses {
            s.financial_statuses = list
                .iter()
                .map(|n| value_of(&FINANCIAL, n, "financial_statuses").map(|v| v as i32))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = &self.pii_retention {
            s.pii_retention = value_of(&RETENTION, v, "pii_retention")? as i32;
        }
        if let Some(v) = &self.tag_after_import {
            s.tag_after_import = v.clone();
        }
        if let Some(v) = self.updated_within_days {
            s.updated_within_days = v;
        }
        Ok(s)
    }
}

pub fn settings_yaml(s: &pb::GetOrdersSettings) -> String {
    let list = |names: Vec<&str>| format!("[{}]", names.join(", "));
    format!(
        "# get-orders settings of channel {}\nenabled: {}\nlocation_id: \"{}\"\nimport_orders_without_location: {}\n\
         fulfillment_statuses: {}\nfinancial_statuses: {}\npii_retention: {}\ntag_after_import: \"{}\"\n\
         updated_within_days: {}",
        s.channel_id,
        s.enabled,
        s.location_id,
        s.import_orders_without_location,
        list(
            s.fulfillment_statuses
                .iter()
                .map(|v| name_of(
                    &FULFILLMENT,
                    FulfillmentStatus::try_from(*v).unwrap_or_default()
                ))
                .collect()
        ),
        list(
            s.financial_statuses
                .iter()
                .map(|v| name_of(
                    &FINANCIAL,
                    FinancialStatus::try_from(*v).unwrap_or_default()
                ))
                .collect()
        ),
        name_of(
            &RETENTION,
            PiiRetention::try_from(s.pii_retention).unwrap_or_default()
        ),
        s.tag_after_import.replace('"', "\\\""),
        s.updated_within_days
    )
}

fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    source: &str,
    what: &str,
    keys: &str,
) -> Result<T, CliError> {
    let invalid = |e: &dyn std::fmt::Display| {
        CliError::usage(format!(
            "{source} is not valid {what}: {e}; the keys are {keys}"
        ))
    };
    if text.trim().is_empty() {
        return Err(invalid(&"the file is empty"));
    }
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Yaml))
        .build()
        .map_err(|e| invalid(&e))?
        .try_deserialize::<T>()
        .map_err(|e| invalid(&e))
}

async fn current_settings(ctx: &Ctx, channel_id: &str) -> Result<pb::GetOrdersSettings, CliError> {
    Ok(ctx
        .orders()
        .await?
        .get_get_orders_settings(pb::GetGetOrdersSettingsRequest {
            channel_id: channel_id.to_string(),
        })
        .await
        .or_fail(&ctx.orders)
        .map_err(|e| {
            e.with_hint(
                Exit::NotFound,
                "see your channels with `shopbridge channels list`",
            )
        })?
        .settings
        .unwrap_or_default())
}

fn print_settings(ctx: &Ctx, s: &pb::GetOrdersSettings) -> Result<Exit, CliError> {
    if ctx.json() {
        let names = |t: &[(&'static str, FinancialStatus)], v: &[i32]| -> Vec<&'static str> {
            v.iter()
                .map(|v| name_of(t, FinancialStatus::try_from(*v).unwrap_or_default()))
                .collect()
        };
        output::json(&serde_json::json!({
            "channel_id": s.channel_id,
            "operation": "get-orders",
            "enabled": s.enabled,
            "location_id": s.location_id,
            "import_orders_without_location": s.import_orders_without_location,
            "fulfillment_statuses": s.fulfillment_statuses.iter()
                .map(|v| name_of(&FULFILLMENT, FulfillmentStatus::try_from(*v).unwrap_or_default()))
                .collect::<Vec<_>>(),
            "financial_statuses": names(&FINANCIAL, &s.financial_statuses),
            "pii_retention": name_of(&RETENTION, PiiRetention::try_from(s.pii_retention).unwrap_or_default()),
            "tag_after_import": s.tag_after_import,
            "updated_within_days": s.updated_within_days,
        }))?;
    } else {
        output::print_line(&settings_yaml(s))?;
    }
    Ok(Exit::Ok)
}

pub async fn settings_get(ctx: &Ctx, channel: &str) -> Result<Exit, CliError> {
    let channel_id = channels::resolve_id(ctx, channel).await?;
    let s = current_settings(ctx, &channel_id).await?;
    print_settings(ctx, &s)
}

pub async fn settings_set(ctx: &Ctx, channel: &str, file: &Path) -> Result<Exit, CliError> {
    let (text, source) = read_source(file)?;
    let changes: GetOrdersSettingsFile =
        parse_yaml(&text, &source, "get-orders settings", SETTINGS_KEYS)?;
    let channel_id = channels::resolve_id(ctx, channel).await?;
    let current = current_settings(ctx, &channel_id).await?;
    let next = changes
        .apply(current)
        .map_err(|e| CliError::usage(format!("{source}: {e}")))?;
    let saved = ctx
        .orders()
        .await?
        .set_get_orders_settings(pb::SetGetOrdersSettingsRequest {
            settings: Some(next),
        })
        .await
        .or_fail(&ctx.orders)?
        .settings
        .ok_or_else(|| CliError::other("orders answered without the settings"))?;
    print_settings(ctx, &saved)
}

// ----- mapping ------------------------------------------------------------------------------------------------

/// The YAML of `mapping set get-orders`: the fields switched off (every other one is on) and the currency of each
/// store location as `<location GID>=<currency>`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    #[serde(default)]
    pub disabled: Vec<String>,
    #[serde(default)]
    pub currency_by_location: Vec<String>,
}

const MAPPING_KEYS: &str = "disabled (a list of field names, e.g. [billing_address.phone]), currency_by_location \
     (a list of \"gid://shopify/Location/<id>=USD\")";

fn mapping_yaml(m: &pb::GetOrdersMapping) -> String {
    let disabled: Vec<&str> = m
        .fields
        .iter()
        .filter(|f| !f.enabled)
        .map(|f| f.field.as_str())
        .collect();
    let mut currencies: Vec<String> = m
        .currency_by_location
        .iter()
        .map(|(l, c)| format!("\"{l}={c}\""))
        .collect();
    currencies.sort();
    let all: Vec<&str> = m.fields.iter().map(|f| f.field.as_str()).collect();
    format!(
        "# get-orders mapping of channel {}; every field is on unless disabled. Fields: {}\ndisabled: [{}]\n\
         currency_by_location: [{}]",
        m.channel_id,
        all.join(", "),
        disabled.join(", "),
        currencies.join(", ")
    )
}

fn print_mapping(ctx: &Ctx, m: &pb::GetOrdersMapping) -> Result<Exit, CliError> {
    if ctx.json() {
        output::json(&serde_json::json!({
            "channel_id": m.channel_id,
            "operation": "get-orders",
            "fields": m.fields.iter().map(|f| serde_json::json!({"field": f.field, "enabled": f.enabled}))
                .collect::<Vec<_>>(),
            "currency_by_location": m.currency_by_location,
        }))?;
    } else {
        output::print_line(&mapping_yaml(m))?;
    }
    Ok(Exit::Ok)
}

async fn current_mapping(ctx: &Ctx, channel_id: &str) -> Result<pb::GetOrdersMapping, CliError> {
    Ok(ctx
        .orders()
        .await?
        .get_get_orders_mapping(pb::GetGetOrdersMappingRequest {
            channel_id: channel_id.to_string(),
        })
        .await
        .or_fail(&ctx.orders)
        .map_err(|e| {
            e.with_hint(
                Exit::NotFound,
                "see your channels with `shopbridge channels list`",
            )
        })?
        .mapping
        .unwrap_or_default())
}

pub async fn mapping_get(ctx: &Ctx, channel: &str) -> Result<Exit, CliError> {
    let channel_id = channels::resolve_id(ctx, channel).await?;
    let m = current_mapping(ctx, &channel_id).await?;
    print_mapping(ctx, &m)
}

pub async fn mapping_set(ctx: &Ctx, channel: &str, file: &Path) -> Result<Exit, CliError> {
    let (text, source) = read_source(file)?;
    let wanted: MappingFile = parse_yaml(&text, &source, "a get-orders mapping", MAPPING_KEYS)?;
    let channel_id = channels::resolve_id(ctx, channel).await?;
    let current = current_mapping(ctx, &channel_id).await?;
    let mut currencies = std::collections::HashMap::new();
    for pair in &wanted.currency_by_location {
        let Some((location, currency)) = pair.rsplit_once('=') else {
            return Err(CliError::usage(format!(
                "{source}: currency_by_location `{pair}` is not <location GID>=<currency>"
            )));
        };
        currencies.insert(location.trim().to_string(), currency.trim().to_string());
    }
    let fields = current
        .fields
        .iter()
        .map(|f| pb::MappingField {
            field: f.field.clone(),
            enabled: !wanted.disabled.contains(&f.field),
        })
        .chain(
            // Unknown names go to the service, which refuses them with the list of fields.
            wanted
                .disabled
                .iter()
                .filter(|d| !current.fields.iter().any(|f| &f.field == *d))
                .map(|d| pb::MappingField {
                    field: d.clone(),
                    enabled: false,
                }),
        )
        .collect();
    let saved = ctx
        .orders()
        .await?
        .set_get_orders_mapping(pb::SetGetOrdersMappingRequest {
            mapping: Some(pb::GetOrdersMapping {
                channel_id,
                fields,
                currency_by_location: currencies,
            }),
        })
        .await
        .or_fail(&ctx.orders)?
        .mapping
        .ok_or_else(|| CliError::other("orders answered without the mapping"))?;
    print_mapping(ctx, &saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_settings_read_back() {
        let s = pb::GetOrdersSettings {
            channel_id: "c".into(),
            enabled: true,
            location_id: "gid://shopify/Location/1".into(),
            import_orders_without_location: false,
            fulfillment_statuses: vec![FulfillmentStatus::Unfulfilled as i32],
            financial_statuses: vec![FinancialStatus::Paid as i32, FinancialStatus::Unpaid as i32],
            pii_retention: PiiRetention::Days30 as i32,
            tag_after_import: "Received by Shopbridge".into(),
            updated_within_days: 7,
        };
        let file: GetOrdersSettingsFile =
            parse_yaml(&settings_yaml(&s), "printed", "x", "y").unwrap();
        let back = file
            .apply(pb::GetOrdersSettings {
                channel_id: "c".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn unknown_status_names_are_refused_with_the_choices() {
        let file: GetOrdersSettingsFile =
            parse_yaml("financial_statuses: [paied]\n", "f", "x", "y").unwrap();
        let err = file.apply(pb::GetOrdersSettings::default()).unwrap_err();
        assert!(
            err.contains("paied") && err.contains("partially_refunded"),
            "{err}"
        );
    }
}
