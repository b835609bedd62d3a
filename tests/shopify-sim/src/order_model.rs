//! The rest of Shopify's order model, for Get Orders: a customer, a billing address distinct from the shipping one,
//! orders with no shipping address, digital lines (`requiresShipping: false`), custom attributes on lines, shipping
//! lines, orders assigned to no location, fulfillment orders ON_HOLD or SCHEDULED that can be released, orders
//! fulfilled in part or in full, and every financial status. Kept beside the core model ([`OrderExtras`] per order),
//! with its own control endpoints:
//!
//! - `POST /_sim/shops/{domain}/orders/custom` places such an order (fires `orders/create`);
//! - `POST /_sim/shops/{domain}/orders/{id}/change` changes one (release or put on hold, fulfill, financial status,
//!   shipping address), which fires `orders/updated` as Shopify does;
//! - `POST /_sim/shops/{domain}/compliance` sends a mandatory compliance webhook (`customers/data_request`,
//!   `customers/redact`, `shop/redact`) to a URI, as Shopify does from the app's configuration.

use std::collections::{BTreeMap, HashSet};

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    model::{Fulfillment, LineItem, Order, Store, WebhookSub, gid, parse_gid_of},
    routes::{AppState, json_response},
};

/// What the core [`Order`] does not hold.
#[derive(Clone, Debug, Default)]
pub struct OrderExtras {
    /// `{id, firstName, lastName, email}`
    pub customer: Option<Value>,
    /// GraphQL-shaped MailingAddress (`address1`, `countryCodeV2`, ...); `None`: the shipping address.
    pub billing_address: Option<Value>,
    pub no_shipping_address: bool,
    /// Line item ids that need no shipping.
    pub digital_lines: HashSet<u64>,
    /// Line item id -> [(key, value)].
    pub custom_attributes: BTreeMap<u64, Vec<(String, String)>>,
    pub shipping_lines: Vec<String>,
}

impl OrderExtras {
    pub fn customer_json(&self) -> Value {
        match &self.customer {
            Some(c) => json!({
                "id": c["id"], "firstName": c["firstName"], "lastName": c["lastName"],
                "displayName": format!("{} {}", c["firstName"].as_str().unwrap_or(""), c["lastName"].as_str().unwrap_or("")),
                "email": c["email"],
                "defaultEmailAddress": {"emailAddress": c["email"]},
            }),
            None => Value::Null,
        }
    }
}

fn bad(msg: impl Into<String>) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({"error": msg.into()}))
}

fn not_found(what: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": format!("no {what}")}),
    )
}

#[derive(Deserialize, Default)]
pub struct CustomLine {
    /// Empty or absent: a line without SKU (a custom item).
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default = "one")]
    pub quantity: i64,
    #[serde(default)]
    pub price: Option<String>,
    #[serde(default = "yes")]
    pub requires_shipping: bool,
    #[serde(default)]
    pub custom_attributes: Vec<(String, String)>,
}

fn one() -> i64 {
    1
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
pub struct CustomOrder {
    pub lines: Vec<CustomLine>,
    /// OrderDisplayFinancialStatus (PAID by default).
    #[serde(default)]
    pub financial_status: Option<String>,
    /// Location GID of every line; absent: the primary location.
    #[serde(default)]
    pub location: Option<String>,
    /// No fulfillment order at all: the order is assigned to no location.
    #[serde(default)]
    pub no_location: bool,
    /// The fulfillment orders' status: OPEN (default), ON_HOLD or SCHEDULED.
    #[serde(default)]
    pub fulfillment_order_status: Option<String>,
    /// "none" (default), "partial" (the first line) or "all".
    #[serde(default)]
    pub fulfilled: Option<String>,
    /// GraphQL-shaped address; absent: a default one.
    #[serde(default)]
    pub shipping_address: Option<Value>,
    #[serde(default)]
    pub no_shipping_address: bool,
    #[serde(default)]
    pub billing_address: Option<Value>,
    /// `{first_name, last_name, email}`; the customer gets an id.
    #[serde(default)]
    pub customer: Option<Value>,
    #[serde(default)]
    pub shipping_lines: Vec<String>,
}

fn default_address() -> Value {
    json!({"name": "Jane Doe", "firstName": "Jane", "lastName": "Doe", "company": null, "address1": "1 Rue Test",
           "address2": null, "city": "Montreal", "provinceCode": "QC", "zip": "H2X 1Y4", "countryCodeV2": "CA",
           "phone": "+15145550100"})
}

/// Ships what `how` says of the order ("partial": the first line; "all": everything), as fulfillments.
fn fulfill(st: &mut Store, oid: u64, how: &str, now: chrono::DateTime<chrono::Utc>) {
    let Some(order) = st.orders.get(&oid).cloned() else {
        return;
    };
    for (n, fo_id) in order.fulfillment_order_ids.iter().enumerate() {
        let Some(mut fo) = st.fulfillment_orders.get(fo_id).cloned() else {
            continue;
        };
        let mut lines = Vec::new();
        for (i, line) in fo.lines.iter_mut().enumerate() {
            let take = how == "all" || (n == 0 && i == 0);
            if take && line.remaining > 0 {
                lines.push((line.id, line.line_item_id, line.remaining));
                line.remaining = 0;
            }
        }
        if fo.lines.iter().all(|l| l.remaining == 0) {
            fo.status = "CLOSED".into();
        }
        fo.updated_at = now;
        if !lines.is_empty() {
            let id = st.next_id();
            st.fulfillments.insert(
                id,
                Fulfillment {
                    id,
                    order_id: oid,
                    location_id: fo.location_id,
                    status: "SUCCESS".into(),
                    tracking: vec![],
                    lines,
                    created_at: now,
                    updated_at: now,
                },
            );
            if let Some(o) = st.orders.get_mut(&oid) {
                o.fulfillment_ids.push(id);
            }
        }
        st.fulfillment_orders.insert(*fo_id, fo);
    }
}

/// `POST /_sim/shops/{domain}/orders/custom`
pub async fn create_custom_order(
    State(sim): State<AppState>,
    Path(domain): Path<String>,
    body: Json<CustomOrder>,
) -> Response {
    let Some(shop) = sim.shop(&domain) else {
        return not_found(&format!("shop {domain}"));
    };
    if body.lines.is_empty() {
        return bad("an order needs at least one line");
    }
    let now = sim.config.clock.now();
    let (id, name, customer_id, events) = {
        let mut st = shop.store.lock().unwrap();
        let mut items = Vec::new();
        for l in &body.lines {
            let sku = l.sku.clone().unwrap_or_default();
            let variant = (!sku.is_empty())
                .then(|| st.variants.values().find(|v| v.sku == sku).cloned())
                .flatten();
            let product = variant
                .as_ref()
                .and_then(|v| st.products.get(&v.product_id).cloned());
            items.push(LineItem {
                id: 0,
                variant_id: variant.as_ref().map(|v| v.id),
                product_id: product.as_ref().map(|p| p.id),
                sku,
                name: l
                    .title
                    .clone()
                    .or_else(|| product.as_ref().map(|p| p.title.clone()))
                    .unwrap_or_else(|| "Custom item".into()),
                vendor: product.map(|p| p.vendor).unwrap_or_default(),
                quantity: l.quantity.max(1),
                price: l
                    .price
                    .clone()
                    .or_else(|| variant.as_ref().map(|v| v.price.clone()))
                    .unwrap_or_else(|| "10.00".into()),
            });
        }
        let location = match &body.location {
            Some(g) => match parse_gid_of(g, "Location") {
                Some(l) if st.locations.contains_key(&l) => l,
                _ => return bad(format!("unknown location {g}")),
            },
            None => st.primary_location().unwrap_or(0),
        };
        let assign = vec![location; items.len()];
        let financial = body
            .financial_status
            .clone()
            .unwrap_or_else(|| "PAID".into())
            .to_ascii_uppercase();
        let oid = crate::seed::create_order(&mut st, items, &financial, &assign, now);
        // create_order queued orders/create; it is sent after the order is complete.
        let created = std::mem::take(&mut st.events);
        let mut extras = OrderExtras {
            billing_address: body.billing_address.clone(),
            no_shipping_address: body.no_shipping_address,
            shipping_lines: body.shipping_lines.clone(),
            ..Default::default()
        };
        let order: Order = st.orders[&oid].clone();
        for (line, spec) in order.line_items.iter().zip(&body.lines) {
            if !spec.requires_shipping {
                extras.digital_lines.insert(line.id);
            }
            if !spec.custom_attributes.is_empty() {
                extras
                    .custom_attributes
                    .insert(line.id, spec.custom_attributes.clone());
            }
        }
        let mut customer_id = String::new();
        if let Some(c) = &body.customer {
            let cid = st.next_id();
            customer_id = gid("Customer", cid);
            extras.customer = Some(json!({
                "id": customer_id, "firstName": c["first_name"], "lastName": c["last_name"], "email": c["email"],
            }));
        }
        if let Some(o) = st.orders.get_mut(&oid) {
            if let Some(email) = body.customer.as_ref().and_then(|c| c["email"].as_str()) {
                o.email = email.to_string();
            }
            o.shipping_address = if body.no_shipping_address {
                Value::Null
            } else {
                body.shipping_address
                    .clone()
                    .unwrap_or_else(default_address)
            };
        }
        if body.no_location {
            for fo in std::mem::take(&mut st.orders.get_mut(&oid).unwrap().fulfillment_order_ids) {
                st.fulfillment_orders.remove(&fo);
            }
        }
        let status = body
            .fulfillment_order_status
            .clone()
            .unwrap_or_else(|| "OPEN".into())
            .to_ascii_uppercase();
        for fo in st.orders[&oid].fulfillment_order_ids.clone() {
            if let Some(f) = st.fulfillment_orders.get_mut(&fo) {
                f.status = status.clone();
            }
        }
        if let Some(how) = body.fulfilled.as_deref().filter(|h| *h != "none") {
            fulfill(&mut st, oid, how, now);
        }
        st.order_extras.insert(oid, extras);
        // The webhook carries the order as it is now.
        let mut events = created;
        for e in &mut events {
            if e.topic == "orders/create" {
                e.payload = order_payload(&st, oid);
            }
        }
        (oid, st.orders[&oid].name(), customer_id, events)
    };
    crate::webhooks::dispatch(&sim, &shop, events);
    json_response(
        StatusCode::OK,
        &json!({"id": gid("Order", id), "name": name, "customer_id": customer_id}),
    )
}

/// The REST-style webhook payload, with the customer and addresses.
pub fn order_payload(st: &Store, oid: u64) -> Value {
    let mut body = st.order_webhook_payload(oid);
    if let Some(c) = st.order_extras.get(&oid).and_then(|x| x.customer.as_ref()) {
        let id = c["id"]
            .as_str()
            .and_then(|g| parse_gid_of(g, "Customer"))
            .unwrap_or(0);
        body["customer"] = json!({"id": id, "email": c["email"], "first_name": c["firstName"],
                                      "last_name": c["lastName"]});
    }
    body
}

#[derive(Deserialize, Default)]
pub struct OrderChange {
    /// ON_HOLD / SCHEDULED fulfillment orders become OPEN.
    #[serde(default)]
    pub release_hold: bool,
    /// Puts the open fulfillment orders ON_HOLD (or SCHEDULED).
    #[serde(default)]
    pub hold: Option<String>,
    #[serde(default)]
    pub financial_status: Option<String>,
    /// "partial" or "all".
    #[serde(default)]
    pub fulfill: Option<String>,
    #[serde(default)]
    pub shipping_address: Option<Value>,
    /// Fire `orders/updated` (default); false changes the order silently, like a missed webhook.
    #[serde(default = "yes")]
    pub notify: bool,
}

/// `POST /_sim/shops/{domain}/orders/{id}/change`
pub async fn change_order(
    State(sim): State<AppState>,
    Path((domain, id)): Path<(String, String)>,
    body: Json<OrderChange>,
) -> Response {
    let Some(shop) = sim.shop(&domain) else {
        return not_found(&format!("shop {domain}"));
    };
    let Some(oid) = parse_gid_of(&id, "Order").or_else(|| id.parse().ok()) else {
        return bad("not an order id");
    };
    let now = sim.config.clock.now();
    let events = {
        let mut st = shop.store.lock().unwrap();
        let Some(order) = st.orders.get(&oid).cloned() else {
            return not_found(&format!("order {id}"));
        };
        for fo in &order.fulfillment_order_ids {
            if let Some(f) = st.fulfillment_orders.get_mut(fo) {
                if body.release_hold && (f.status == "ON_HOLD" || f.status == "SCHEDULED") {
                    f.status = "OPEN".into();
                    f.updated_at = now;
                }
                if let Some(hold) = body.hold.as_ref().filter(|_| f.status == "OPEN") {
                    f.status = hold.to_ascii_uppercase();
                    f.updated_at = now;
                }
            }
        }
        if let Some(how) = &body.fulfill {
            fulfill(&mut st, oid, how, now);
        }
        if let Some(o) = st.orders.get_mut(&oid) {
            if let Some(f) = &body.financial_status {
                o.financial_status = f.to_ascii_uppercase();
            }
            if let Some(a) = &body.shipping_address {
                o.shipping_address = a.clone();
            }
            o.updated_at = now;
        }
        if body.notify {
            let payload = order_payload(&st, oid);
            st.push_event("orders/updated", payload);
        }
        std::mem::take(&mut st.events)
    };
    crate::webhooks::dispatch(&sim, &shop, events);
    json_response(StatusCode::OK, &json!({"id": gid("Order", oid)}))
}

#[derive(Deserialize)]
pub struct Compliance {
    /// customers/data_request, customers/redact or shop/redact
    pub topic: String,
    /// The app's compliance webhook URI.
    pub uri: String,
    pub payload: Value,
}

/// `POST /_sim/shops/{domain}/compliance`: delivered (signed, with retries) like any webhook of the shop.
pub async fn send_compliance(
    State(sim): State<AppState>,
    Path(domain): Path<String>,
    body: Json<Compliance>,
) -> Response {
    let Some(shop) = sim.shop(&domain) else {
        return not_found(&format!("shop {domain}"));
    };
    let topic: &'static str = match body.topic.as_str() {
        "customers/data_request" => "customers/data_request",
        "customers/redact" => "customers/redact",
        "shop/redact" => "shop/redact",
        other => return bad(format!("{other} is not a compliance topic")),
    };
    let events = {
        let mut st = shop.store.lock().unwrap();
        // Compliance topics come from the app's configuration, not from webhookSubscriptionCreate.
        let te = crate::webhooks::topic_enum(topic);
        if !st
            .webhook_subs
            .values()
            .any(|w| w.topic == te && w.uri == body.uri)
        {
            let id = st.next_id();
            st.webhook_subs.insert(
                id,
                WebhookSub {
                    id,
                    topic: te,
                    uri: body.uri.clone(),
                    format: "JSON".into(),
                },
            );
        }
        let mut payload = body.payload.clone();
        payload["shop_domain"] = json!(st.domain);
        st.push_event(topic, payload);
        std::mem::take(&mut st.events)
    };
    crate::webhooks::dispatch(&sim, &shop, events);
    json_response(StatusCode::OK, &json!({"sent": topic}))
}
