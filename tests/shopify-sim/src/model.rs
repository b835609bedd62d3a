//! The data one shop holds, and small helpers (GIDs, money, cursors).

use crate::bucket::Plan;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The first runtime id of this process: a thousand ids per millisecond since 2023-11-14 at the process's first
/// call, so a later start begins above everything an earlier one can have created (unless it created more than a
/// thousand ids per millisecond it ran). Stays below 2^53, so JavaScript clients read the ids exactly.
pub fn runtime_id_base() -> u64 {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        8_000_000_000_000 + ms.saturating_sub(1_700_000_000_000) * 1000
    })
}

pub fn gid(kind: &str, id: u64) -> String {
    format!("gid://shopify/{kind}/{id}")
}

/// Parses `gid://shopify/<Kind>/<n>` (also with a query string, as Shopify tolerates).
pub fn parse_gid(s: &str) -> Option<(&str, u64)> {
    let rest = s.strip_prefix("gid://shopify/")?;
    let (kind, id) = rest.split_once('/')?;
    let id = id.split('?').next()?;
    Some((kind, id.parse().ok()?))
}

pub fn parse_gid_of(s: &str, kind: &str) -> Option<u64> {
    parse_gid(s).filter(|(k, _)| *k == kind).map(|(_, id)| id)
}

/// Normalises a decimal string the way Shopify prints Money/Decimal ("20" -> "20.0",
/// "19.990" -> "19.99"); None when it is not a decimal.
pub fn money(s: &str) -> Option<String> {
    let t = s.trim();
    let body = t.strip_prefix('-').unwrap_or(t);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac = frac.trim_end_matches('0');
    let frac = if frac.is_empty() { "0" } else { frac };
    let sign = if t.starts_with('-') && (int != "0" || frac != "0") {
        "-"
    } else {
        ""
    };
    Some(format!("{sign}{int}.{frac}"))
}

pub fn cursor(id: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"last_id\":{id}}}"))
}

/// A cursor carrying the sort value too, as Shopify's do (`{"last_id":..,"last_value":".."}`).
pub fn cursor_with_value(id: u64, value: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(json!({"last_id": id, "last_value": value}).to_string())
}

/// (id, sort value) of a cursor.
pub fn cursor_value(c: &str) -> Option<(u64, Option<String>)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(c).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((
        v.get("last_id")?.as_u64()?,
        v.get("last_value")
            .and_then(Value::as_str)
            .map(str::to_string),
    ))
}

pub fn cursor_id(c: &str) -> Option<u64> {
    let raw = base64::engine::general_purpose::STANDARD.decode(c).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    v.get("last_id")?.as_u64()
}

pub fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[derive(Clone, Debug)]
pub struct ProductOption {
    pub id: u64,
    pub name: String,
    pub position: u32,
    pub values: Vec<(u64, String)>,
}

#[derive(Clone, Debug)]
pub struct Media {
    pub id: u64,
    pub alt: String,
    pub url: String,
}

#[derive(Clone, Debug)]
pub struct Product {
    pub id: u64,
    pub title: String,
    pub handle: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub status: String,
    pub category: Option<String>,
    pub options: Vec<ProductOption>,
    pub variant_ids: Vec<u64>,
    pub media: Vec<Media>,
    pub publications: BTreeSet<u64>,
    pub collections: BTreeSet<u64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Variant {
    pub id: u64,
    pub product_id: u64,
    pub sku: String,
    pub barcode: Option<String>,
    pub price: String,
    pub compare_at_price: Option<String>,
    pub position: u32,
    pub inventory_policy: String,
    pub taxable: bool,
    pub selected_options: Vec<(String, String)>,
    pub inventory_item_id: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Variant {
    pub fn title(&self) -> String {
        if self.selected_options.is_empty() {
            "Default Title".into()
        } else {
            self.selected_options
                .iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(" / ")
        }
    }
}

#[derive(Clone, Debug)]
pub struct InventoryItem {
    pub id: u64,
    pub variant_id: u64,
    pub sku: String,
    pub tracked: bool,
    pub cost: Option<String>,
    pub requires_shipping: bool,
    pub country_of_origin: Option<String>,
    pub hs_code: Option<String>,
    pub weight: Option<(f64, String)>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Location {
    pub id: u64,
    pub name: String,
    pub active: bool,
    pub fulfills_online_orders: bool,
    pub ships_inventory: bool,
    pub address1: String,
    pub city: String,
    pub country_code: String,
}

#[derive(Clone, Debug)]
pub struct Publication {
    pub id: u64,
    pub catalog_id: u64,
    pub name: String,
    pub auto_publish: bool,
}

#[derive(Clone, Debug)]
pub struct Collection {
    pub id: u64,
    pub title: String,
    pub handle: String,
    pub rule_set: Option<Value>,
    pub product_ids: BTreeSet<u64>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Metafield {
    pub id: u64,
    pub owner: String,
    pub namespace: String,
    pub key: String,
    pub kind: String,
    pub value: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct LineItem {
    pub id: u64,
    pub variant_id: Option<u64>,
    pub product_id: Option<u64>,
    pub sku: String,
    pub name: String,
    pub vendor: String,
    pub quantity: i64,
    pub price: String,
}

#[derive(Clone, Debug)]
pub struct Order {
    pub id: u64,
    pub number: u64,
    pub email: String,
    pub phone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub processed_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// OrderDisplayFinancialStatus: PAID, PENDING, AUTHORIZED, ...
    pub financial_status: String,
    pub tags: Vec<String>,
    pub note: Option<String>,
    pub test: bool,
    pub line_items: Vec<LineItem>,
    pub shipping_address: Value,
    pub fulfillment_order_ids: Vec<u64>,
    pub fulfillment_ids: Vec<u64>,
}

impl Order {
    pub fn name(&self) -> String {
        format!("#{}", self.number)
    }
    pub fn total(&self) -> String {
        let cents: i64 = self
            .line_items
            .iter()
            .map(|l| l.quantity * money_cents(&l.price))
            .sum();
        money(&format!("{}.{:02}", cents / 100, cents % 100)).unwrap_or_else(|| "0.0".into())
    }
}

pub fn money_cents(s: &str) -> i64 {
    let (i, f) = s.split_once('.').unwrap_or((s, "0"));
    let f2: String = format!("{f:0<2}").chars().take(2).collect();
    i.parse::<i64>().unwrap_or(0) * 100 + f2.parse::<i64>().unwrap_or(0)
}

#[derive(Clone, Debug)]
pub struct FoLine {
    pub id: u64,
    pub line_item_id: u64,
    pub total: i64,
    pub remaining: i64,
}

#[derive(Clone, Debug)]
pub struct FulfillmentOrder {
    pub id: u64,
    pub order_id: u64,
    pub location_id: u64,
    /// FulfillmentOrderStatus: OPEN, IN_PROGRESS, CLOSED, ...
    pub status: String,
    pub lines: Vec<FoLine>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default)]
pub struct Tracking {
    pub company: Option<String>,
    pub number: Option<String>,
    pub url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Fulfillment {
    pub id: u64,
    pub order_id: u64,
    pub location_id: u64,
    pub status: String,
    pub tracking: Vec<Tracking>,
    /// (fulfillment order line id, order line item id, quantity)
    pub lines: Vec<(u64, u64, i64)>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct WebhookSub {
    pub id: u64,
    pub topic: String,
    pub uri: String,
    pub format: String,
}

#[derive(Clone, Debug)]
pub struct BulkOp {
    pub id: u64,
    pub kind: String,
    pub status: String,
    pub query: String,
    pub error_code: Option<String>,
    pub object_count: u64,
    pub root_object_count: u64,
    pub file_size: Option<u64>,
    pub url: Option<String>,
    /// What a failed operation did before it stopped.
    pub partial_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// For mutations: the staged upload key.
    pub staged_path: Option<String>,
    /// For queries: `groupObjects` (each child directly below its parent); otherwise children come anywhere.
    pub group_objects: bool,
}

/// The use of an `@idempotent` key: what the first attempt was sent, and what it did.
#[derive(Clone, Debug)]
pub struct IdempotentAttempt {
    /// The mutation field and its arguments: a replay must send the same.
    pub fingerprint: String,
    /// The first attempt's adjustment group (answered again on a replay, not applied again); None when it failed.
    pub result: Option<AdjustmentGroup>,
}

/// What an inventory mutation applied, to answer it again.
#[derive(Clone, Debug)]
pub struct AdjustmentGroup {
    pub id: u64,
    pub reason: String,
    pub reference_document_uri: Option<String>,
    pub created_at: DateTime<Utc>,
    pub changes: Vec<AppliedChange>,
}

#[derive(Clone, Debug)]
pub struct AppliedChange {
    pub name: String,
    pub delta: i64,
    pub quantity_after: i64,
    pub item: u64,
    pub location: u64,
}

/// A webhook-worthy store change, dispatched after the request that caused it.
#[derive(Clone, Debug)]
pub struct Event {
    pub topic: &'static str,
    pub payload: Value,
}

pub struct Store {
    pub domain: String,
    pub name: String,
    pub plan: Plan,
    pub currency: String,
    next_id: u64,
    pub next_order_number: u64,
    pub products: BTreeMap<u64, Product>,
    pub variants: BTreeMap<u64, Variant>,
    pub inventory_items: BTreeMap<u64, InventoryItem>,
    /// (inventory item, location) -> quantity name -> quantity.
    pub levels: BTreeMap<(u64, u64), BTreeMap<String, i64>>,
    pub locations: BTreeMap<u64, Location>,
    pub publications: BTreeMap<u64, Publication>,
    pub collections: BTreeMap<u64, Collection>,
    pub metafields: BTreeMap<u64, Metafield>,
    pub orders: BTreeMap<u64, Order>,
    pub fulfillment_orders: BTreeMap<u64, FulfillmentOrder>,
    pub fulfillments: BTreeMap<u64, Fulfillment>,
    pub webhook_subs: BTreeMap<u64, WebhookSub>,
    pub bulk_ops: BTreeMap<u64, BulkOp>,
    /// `@idempotent` keys used, with their first attempt (kept for the simulator's life, not Shopify's ~24 h).
    pub idempotency_keys: HashMap<String, IdempotentAttempt>,
    /// Times (unix s) of variant creations, for the 1,000-a-day throttle past 50,000 variants.
    pub variant_creations: Vec<f64>,
    pub events: Vec<Event>,
    /// Asynchronous productSet operations: id -> product.
    pub product_ops: BTreeMap<u64, Option<u64>>,
    /// The order model beyond the core (customer, billing address, digital lines, ...): `order_model`.
    pub order_extras: HashMap<u64, crate::order_model::OrderExtras>,
}

/// Quantity names that can be read (`InventoryLevel.quantities(names:)`).
pub const QUANTITY_NAMES: &[&str] = &[
    "available",
    "on_hand",
    "committed",
    "incoming",
    "reserved",
    "damaged",
    "safety_stock",
    "quality_control",
];

impl Store {
    pub fn new(domain: &str, plan: Plan, now: DateTime<Utc>) -> Self {
        let name = domain.split('.').next().unwrap_or(domain).replace('-', " ");
        let mut s = Store {
            domain: domain.to_string(),
            name,
            plan,
            currency: "USD".into(),
            next_id: 0,
            next_order_number: 1001,
            products: BTreeMap::new(),
            variants: BTreeMap::new(),
            inventory_items: BTreeMap::new(),
            levels: BTreeMap::new(),
            locations: BTreeMap::new(),
            publications: BTreeMap::new(),
            collections: BTreeMap::new(),
            metafields: BTreeMap::new(),
            orders: BTreeMap::new(),
            fulfillment_orders: BTreeMap::new(),
            fulfillments: BTreeMap::new(),
            webhook_subs: BTreeMap::new(),
            bulk_ops: BTreeMap::new(),
            idempotency_keys: HashMap::new(),
            variant_creations: Vec::new(),
            events: Vec::new(),
            product_ops: BTreeMap::new(),
            order_extras: HashMap::new(),
        };
        // Ids start in the range real shops use, derived from the domain so two shops differ.
        s.next_id = 7_000_000_000_000 + s.domain_offset();
        // Every shop has a primary location and the Online Store publication.
        let loc = s.next_id();
        s.locations.insert(
            loc,
            Location {
                id: loc,
                name: "Shop location".into(),
                active: true,
                fulfills_online_orders: true,
                ships_inventory: true,
                address1: "1 Main St".into(),
                city: "Ottawa".into(),
                country_code: "CA".into(),
            },
        );
        let _ = now;
        let p = s.next_id();
        let c = s.next_id();
        s.publications.insert(
            p,
            Publication {
                id: p,
                catalog_id: c,
                name: "Online Store".into(),
                auto_publish: true,
            },
        );
        s
    }

    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Moves the id counter past every id an earlier process of the simulator can have handed out for this shop.
    /// Seeded contents keep their deterministic ids (the same store after a restart); what is created afterwards
    /// (bulk operations, orders, subscriptions, products) gets ids unique per process start, as Shopify never
    /// reuses an id: a restarted simulator must not hand a client an id its database already holds.
    pub fn start_runtime_ids(&mut self) {
        self.next_id = self.next_id.max(runtime_id_base() + self.domain_offset());
    }

    fn domain_offset(&self) -> u64 {
        let h = self
            .domain
            .bytes()
            .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
        (h % 1000) * 1_000_000_000
    }

    pub fn primary_location(&self) -> Option<u64> {
        self.locations.keys().next().copied()
    }

    pub fn qty(&self, item: u64, loc: u64, name: &str) -> Option<i64> {
        let l = self.levels.get(&(item, loc))?;
        Some(match name {
            // on_hand = available + committed + unavailable states.
            "on_hand" => {
                l.get("available").copied().unwrap_or(0)
                    + [
                        "committed",
                        "reserved",
                        "damaged",
                        "safety_stock",
                        "quality_control",
                    ]
                    .iter()
                    .map(|n| l.get(*n).copied().unwrap_or(0))
                    .sum::<i64>()
            }
            n => l.get(n).copied().unwrap_or(0),
        })
    }

    pub fn variant_inventory_quantity(&self, v: &Variant) -> i64 {
        self.levels
            .range((v.inventory_item_id, 0)..=(v.inventory_item_id, u64::MAX))
            .map(|(_, q)| q.get("available").copied().unwrap_or(0))
            .sum()
    }

    pub fn push_event(&mut self, topic: &'static str, payload: Value) {
        self.events.push(Event { topic, payload });
    }

    /// REST-style (snake_case) product payload as webhooks carry it.
    pub fn product_webhook_payload(&self, id: u64) -> Value {
        let Some(p) = self.products.get(&id) else {
            return Value::Null;
        };
        let variants: Vec<Value> = p
            .variant_ids
            .iter()
            .filter_map(|v| self.variants.get(v))
            .map(|v| {
                json!({"id": v.id, "product_id": p.id, "sku": v.sku, "price": v.price, "title": v.title(),
                       "inventory_item_id": v.inventory_item_id, "admin_graphql_api_id": gid("ProductVariant", v.id),
                       "updated_at": ts(&v.updated_at)})
            })
            .collect();
        json!({"id": p.id, "admin_graphql_api_id": gid("Product", p.id), "title": p.title, "handle": p.handle,
               "vendor": p.vendor, "product_type": p.product_type, "status": p.status.to_lowercase(),
               "tags": p.tags.join(", "), "variants": variants, "updated_at": ts(&p.updated_at),
               "created_at": ts(&p.created_at)})
    }

    pub fn order_webhook_payload(&self, id: u64) -> Value {
        let Some(o) = self.orders.get(&id) else {
            return Value::Null;
        };
        let lines: Vec<Value> = o
            .line_items
            .iter()
            .map(|l| {
                json!({"id": l.id, "admin_graphql_api_id": gid("LineItem", l.id), "sku": l.sku, "name": l.name,
                       "quantity": l.quantity, "price": l.price, "variant_id": l.variant_id, "product_id": l.product_id})
            })
            .collect();
        json!({"id": o.id, "admin_graphql_api_id": gid("Order", o.id), "name": o.name(), "order_number": o.number,
               "email": o.email, "created_at": ts(&o.created_at), "updated_at": ts(&o.updated_at),
               "financial_status": o.financial_status.to_lowercase(), "currency": self.currency,
               "total_price": o.total(), "tags": o.tags.join(", "), "line_items": lines,
               "closed_at": o.closed_at.map(|t| ts(&t)), "cancelled_at": o.cancelled_at.map(|t| ts(&t))})
    }

    /// OrderDisplayFulfillmentStatus derived from the fulfillment orders.
    pub fn order_fulfillment_status(&self, o: &Order) -> &'static str {
        // Held or scheduled work shows on the order (Shopify's ON_HOLD / SCHEDULED display statuses).
        for status in ["ON_HOLD", "SCHEDULED"] {
            if o.fulfillment_order_ids
                .iter()
                .filter_map(|f| self.fulfillment_orders.get(f))
                .any(|fo| fo.status == status)
            {
                return if status == "ON_HOLD" {
                    "ON_HOLD"
                } else {
                    "SCHEDULED"
                };
            }
        }
        let (mut total, mut remaining) = (0, 0);
        for fo in o
            .fulfillment_order_ids
            .iter()
            .filter_map(|f| self.fulfillment_orders.get(f))
        {
            for l in &fo.lines {
                total += l.total;
                remaining += l.remaining;
            }
        }
        if total == 0 || remaining == total {
            "UNFULFILLED"
        } else if remaining == 0 {
            "FULFILLED"
        } else {
            "PARTIALLY_FULFILLED"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_normalised_like_shopify() {
        assert_eq!(money("19.99").as_deref(), Some("19.99"));
        assert_eq!(money("20").as_deref(), Some("20.0"));
        assert_eq!(money("007.500").as_deref(), Some("7.5"));
        assert_eq!(money("abc"), None);
        assert_eq!(money("1.2.3"), None);
        assert_eq!(money_cents("7.5"), 750);
    }

    #[test]
    fn gids_and_cursors_round_trip() {
        assert_eq!(parse_gid("gid://shopify/Product/12"), Some(("Product", 12)));
        assert_eq!(parse_gid_of("gid://shopify/Product/12", "Order"), None);
        assert_eq!(cursor_id(&cursor(99)), Some(99));
    }

    #[test]
    fn ids_created_after_the_seed_start_above_any_earlier_process_and_seeded_ids_stay_put() {
        let now = chrono::Utc::now();
        let seeded = |st: &mut Store| {
            crate::seed::seed(
                st,
                &crate::seed::SeedRequest {
                    products: 2,
                    variants_per_product: 2,
                    locations: 1,
                    orders: 0,
                    seed: 7,
                },
            );
        };
        let mut first = Store::new("ids.myshopify.com", Plan::Standard, now);
        seeded(&mut first);
        let mut again = Store::new("ids.myshopify.com", Plan::Standard, now);
        seeded(&mut again);
        assert_eq!(
            first.products.keys().collect::<Vec<_>>(),
            again.products.keys().collect::<Vec<_>>(),
            "the same seed gives the same product ids"
        );
        let runtime = first.next_id();
        assert!(runtime > runtime_id_base(), "{runtime} is not a runtime id");
        assert!(first.products.keys().all(|id| *id < 8_000_000_000_000));
        assert!(runtime < (1u64 << 53), "ids stay exact in JavaScript");
    }
}
