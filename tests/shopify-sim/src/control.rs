//! The `/_sim/` control API (not part of Shopify): shops, seeding, stats, faults, clock, store
//! contents, test orders and app uninstall.

use crate::bucket::Plan;
use crate::faults::FaultConfig;
use crate::model::{LineItem, Store, gid, parse_gid_of, ts};
use crate::routes::{AppState, json_response};
use crate::seed::SeedRequest;
use crate::sim::Shop;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

fn not_found(domain: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": format!("no shop {domain}")}),
    )
}

fn bad(msg: impl Into<String>) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({"error": msg.into()}))
}

#[derive(Deserialize)]
pub struct CreateShop {
    pub domain: String,
    #[serde(default)]
    pub plan: Option<String>,
}

pub fn valid_domain(d: &str) -> bool {
    let Some(name) = d.strip_suffix(".myshopify.com") else {
        return false;
    };
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

pub async fn create_shop(State(sim): State<AppState>, body: Json<CreateShop>) -> Response {
    let d = body.domain.to_ascii_lowercase();
    if !valid_domain(&d) {
        return bad("domain must look like name.myshopify.com");
    }
    let plan = match body.plan.as_deref() {
        None => Plan::Standard,
        Some(p) => match Plan::parse(p) {
            Some(p) => p,
            None => return bad("plan must be one of standard, advanced, plus, enterprise, legacy"),
        },
    };
    let (_, token) = sim.create_shop(&d, plan);
    json_response(StatusCode::OK, &json!({"domain": d, "access_token": token}))
}

pub async fn seed(
    State(sim): State<AppState>,
    Path(domain): Path<String>,
    body: Json<SeedRequest>,
) -> Response {
    let Some(shop) = sim.shop(&domain) else {
        return not_found(&domain);
    };
    let shop2 = shop.clone();
    let req = body.0;
    let events = tokio::task::spawn_blocking(move || {
        let mut st = shop2.store.lock().unwrap();
        crate::seed::seed(&mut st, &req);
        std::mem::take(&mut st.events)
    })
    .await
    .unwrap_or_default();
    crate::webhooks::dispatch(&sim, &shop, events);
    let st = shop.store.lock().unwrap();
    json_response(
        StatusCode::OK,
        &json!({"products": st.products.len(), "variants": st.variants.len(), "locations": st.locations.len(), "orders": st.orders.len()}),
    )
}

pub async fn stats(State(sim): State<AppState>, Path(domain): Path<String>) -> Response {
    let Some(shop) = sim.shop(&domain) else {
        return not_found(&domain);
    };
    let mut v = serde_json::to_value(shop.stats.lock().unwrap().clone()).unwrap_or_default();
    let now = sim.now_secs();
    v["throttle_status"] = shop.bucket.lock().unwrap().status(now);
    json_response(StatusCode::OK, &v)
}

fn with_store(sim: &AppState, domain: &str, f: impl FnOnce(&Store) -> Value) -> Response {
    let Some(shop) = sim.shop(domain) else {
        return not_found(domain);
    };
    let st = shop.store.lock().unwrap();
    json_response(StatusCode::OK, &f(&st))
}

pub async fn products(State(sim): State<AppState>, Path(domain): Path<String>) -> Response {
    with_store(&sim, &domain, |st| {
        Value::Array(
            st.products
                .values()
                .map(|p| {
                    let variants: Vec<Value> = p
                        .variant_ids
                        .iter()
                        .filter_map(|v| st.variants.get(v))
                        .map(|v| {
                            json!({"id": gid("ProductVariant", v.id), "sku": v.sku, "barcode": v.barcode, "price": v.price,
                                   "compare_at_price": v.compare_at_price, "options": v.selected_options,
                                   "inventory_item_id": gid("InventoryItem", v.inventory_item_id),
                                   "inventory_quantity": st.variant_inventory_quantity(v)})
                        })
                        .collect();
                    let metafields: Vec<Value> = st
                        .metafields
                        .values()
                        .filter(|m| m.owner == gid("Product", p.id))
                        .map(|m| json!({"namespace": m.namespace, "key": m.key, "type": m.kind, "value": m.value}))
                        .collect();
                    json!({"id": gid("Product", p.id), "title": p.title, "handle": p.handle, "vendor": p.vendor,
                           "product_type": p.product_type, "status": p.status, "tags": p.tags, "category": p.category,
                           "options": p.options.iter().map(|o| json!({"name": o.name, "values": o.values.iter().map(|v| &v.1).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                           "publications": p.publications.iter().map(|x| gid("Publication", *x)).collect::<Vec<_>>(),
                           "variants": variants, "metafields": metafields, "updated_at": ts(&p.updated_at)})
                })
                .collect(),
        )
    })
}

pub async fn orders(State(sim): State<AppState>, Path(domain): Path<String>) -> Response {
    with_store(&sim, &domain, |st| {
        Value::Array(
            st.orders
                .values()
                .map(|o| {
                    let fos: Vec<Value> = o
                        .fulfillment_order_ids
                        .iter()
                        .filter_map(|f| st.fulfillment_orders.get(f))
                        .map(|f| {
                            json!({"id": gid("FulfillmentOrder", f.id), "status": f.status, "location_id": gid("Location", f.location_id),
                                   "line_items": f.lines.iter().map(|l| json!({"id": gid("FulfillmentOrderLineItem", l.id),
                                       "line_item_id": gid("LineItem", l.line_item_id), "total": l.total, "remaining": l.remaining})).collect::<Vec<_>>()})
                        })
                        .collect();
                    json!({"id": gid("Order", o.id), "name": o.name(), "financial_status": o.financial_status,
                           "fulfillment_status": st.order_fulfillment_status(o), "closed": o.closed_at.is_some(),
                           "tags": o.tags, "total": o.total(), "updated_at": ts(&o.updated_at),
                           "line_items": o.line_items.iter().map(|l| json!({"id": gid("LineItem", l.id), "sku": l.sku, "quantity": l.quantity, "price": l.price})).collect::<Vec<_>>(),
                           "fulfillment_orders": fos})
                })
                .collect(),
        )
    })
}

pub async fn inventory(State(sim): State<AppState>, Path(domain): Path<String>) -> Response {
    with_store(&sim, &domain, |st| {
        Value::Array(
            st.levels
                .iter()
                .map(|((item, loc), q)| {
                    let sku = st.inventory_items.get(item).map(|i| i.sku.clone()).unwrap_or_default();
                    json!({"inventory_item_id": gid("InventoryItem", *item), "location_id": gid("Location", *loc), "sku": sku,
                           "quantities": q, "on_hand": st.qty(*item, *loc, "on_hand")})
                })
                .collect(),
        )
    })
}

pub async fn fulfillments(State(sim): State<AppState>, Path(domain): Path<String>) -> Response {
    with_store(&sim, &domain, |st| {
        Value::Array(
            st.fulfillments
                .values()
                .map(|f| {
                    json!({"id": gid("Fulfillment", f.id), "order_id": gid("Order", f.order_id), "location_id": gid("Location", f.location_id),
                           "status": f.status, "tracking": f.tracking.iter().map(|t| json!({"company": t.company, "number": t.number, "url": t.url})).collect::<Vec<_>>(),
                           "line_items": f.lines.iter().map(|(fl, li, q)| json!({"fulfillment_order_line_item_id": gid("FulfillmentOrderLineItem", *fl),
                               "line_item_id": gid("LineItem", *li), "quantity": q})).collect::<Vec<_>>()})
                })
                .collect(),
        )
    })
}

pub async fn webhooks(State(sim): State<AppState>, Path(domain): Path<String>) -> Response {
    let Some(shop) = sim.shop(&domain) else {
        return not_found(&domain);
    };
    let log = shop.deliveries.lock().unwrap().clone();
    json_response(
        StatusCode::OK,
        &serde_json::to_value(log).unwrap_or_default(),
    )
}

/// The shop's webhook subscriptions as an app sees them (`webhookSubscriptions`): `id topic uri format`.
pub async fn webhook_subscriptions(
    State(sim): State<AppState>,
    Path(domain): Path<String>,
) -> Response {
    let Some(shop) = sim.shop(&domain) else {
        return not_found(&domain);
    };
    let subs: Vec<Value> = shop
        .store
        .lock()
        .unwrap()
        .webhook_subs
        .values()
        .map(|s| {
            json!({
                "id": gid("WebhookSubscription", s.id),
                "topic": s.topic,
                "uri": s.uri,
                "format": s.format,
            })
        })
        .collect();
    json_response(StatusCode::OK, &Value::Array(subs))
}

#[derive(Deserialize)]
pub struct NewOrder {
    /// Each line: `variant_id` (GID) or `sku`, and `quantity`.
    pub line_items: Vec<NewLine>,
    #[serde(default)]
    pub financial_status: Option<String>,
    /// Location GID per line (default: the primary location).
    #[serde(default)]
    pub locations: Vec<String>,
}

#[derive(Deserialize)]
pub struct NewLine {
    pub variant_id: Option<String>,
    pub sku: Option<String>,
    #[serde(default = "one")]
    pub quantity: i64,
}

fn one() -> i64 {
    1
}

/// Places an order as a customer would (fires `orders/create`).
pub async fn create_order(
    State(sim): State<AppState>,
    Path(domain): Path<String>,
    body: Json<NewOrder>,
) -> Response {
    let Some(shop) = sim.shop(&domain) else {
        return not_found(&domain);
    };
    let now = sim.config.clock.now();
    let res = {
        let mut st = shop.store.lock().unwrap();
        let mut items = Vec::new();
        for l in &body.line_items {
            let v = match (&l.variant_id, &l.sku) {
                (Some(g), _) => parse_gid_of(g, "ProductVariant").and_then(|i| st.variants.get(&i)),
                (None, Some(s)) => st.variants.values().find(|v| &v.sku == s),
                _ => None,
            };
            let Some(v) = v else {
                return bad("unknown variant");
            };
            let p = &st.products[&v.product_id];
            items.push(LineItem {
                id: 0,
                variant_id: Some(v.id),
                product_id: Some(p.id),
                sku: v.sku.clone(),
                name: format!("{} - {}", p.title, v.title()),
                vendor: p.vendor.clone(),
                quantity: l.quantity.max(1),
                price: v.price.clone(),
            });
        }
        let locs: Vec<u64> = body
            .locations
            .iter()
            .filter_map(|l| parse_gid_of(l, "Location"))
            .collect();
        let fin = body
            .financial_status
            .clone()
            .unwrap_or_else(|| "PAID".into())
            .to_ascii_uppercase();
        let id = crate::seed::create_order(&mut st, items, &fin, &locs, now);
        (id, std::mem::take(&mut st.events))
    };
    crate::webhooks::dispatch(&sim, &shop, res.1);
    json_response(StatusCode::OK, &json!({"id": gid("Order", res.0)}))
}

/// Uninstalls the app: tokens revoked, `app/uninstalled` delivered.
pub async fn uninstall(State(sim): State<AppState>, Path(domain): Path<String>) -> Response {
    let Some(shop) = sim.shop(&domain) else {
        return not_found(&domain);
    };
    shop.tokens.lock().unwrap().clear();
    let payload = {
        let st = shop.store.lock().unwrap();
        json!({"id": 1, "name": st.name, "domain": st.domain, "myshopify_domain": st.domain})
    };
    send_app_uninstalled(&sim, &shop, payload);
    json_response(StatusCode::OK, &json!({"uninstalled": domain}))
}

fn send_app_uninstalled(sim: &AppState, shop: &Arc<Shop>, payload: Value) {
    crate::webhooks::dispatch(
        sim,
        shop,
        vec![crate::model::Event {
            topic: "app/uninstalled",
            payload,
        }],
    );
}

pub async fn set_faults(State(sim): State<AppState>, body: Json<FaultConfig>) -> Response {
    sim.faults.set(body.0);
    json_response(
        StatusCode::OK,
        &serde_json::to_value(sim.faults.get()).unwrap_or_default(),
    )
}

pub async fn get_faults(State(sim): State<AppState>) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::to_value(sim.faults.get()).unwrap_or_default(),
    )
}

#[derive(Deserialize)]
pub struct Advance {
    pub seconds: f64,
}

pub async fn advance_clock(State(sim): State<AppState>, body: Json<Advance>) -> Response {
    if !sim.config.clock.is_manual() {
        return bad("the simulator runs on the real clock (start it with --manual-clock)");
    }
    sim.config
        .clock
        .advance(std::time::Duration::from_secs_f64(body.seconds.max(0.0)));
    json_response(StatusCode::OK, &json!({"now": ts(&sim.config.clock.now())}))
}
