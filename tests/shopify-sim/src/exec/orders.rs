//! Orders, line items, fulfillment orders and fulfillments: query fields and object fields.

use super::{Ctx, K, R, V, arg_str, err, paginate};
use crate::model::{Order, Store, gid, parse_gid_of, ts};
use crate::search::{self, FieldVal, text};
use serde_json::{Map, Value, json};

const MAX_PAGE: u64 = 250;

pub fn query_field(cx: &Ctx<'_>, name: &str, args: &Map<String, Value>) -> R {
    let st = cx.store.borrow();
    let st: &Store = &st;
    let q = search::parse(arg_str(args, "query").unwrap_or(""));
    let reverse = args
        .get("reverse")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(match name {
        "orders" => {
            let sort = arg_str(args, "sortKey").unwrap_or("PROCESSED_AT");
            let mut list: Vec<(u64, K, String)> = st
                .orders
                .values()
                .filter(|o| q.matches(|f| order_vals(st, o, f)))
                .map(|o| {
                    let key = match sort {
                        "UPDATED_AT" => ts(&o.updated_at),
                        "CREATED_AT" => ts(&o.created_at),
                        "ID" | "ORDER_NUMBER" => super::read::id_key(o.id),
                        _ => ts(&o.processed_at),
                    };
                    (o.id, K::Order(o.id), key)
                })
                .collect();
            super::read::sort_entries(&mut list, reverse);
            super::paginate_sorted(list, reverse, args, MAX_PAGE)?
        }
        "order" => {
            let id = arg_str(args, "id").and_then(|s| parse_gid_of(s, "Order"));
            id.filter(|i| st.orders.contains_key(i))
                .map_or(V::Null, |i| V::Obj(K::Order(i)))
        }
        "fulfillmentOrders" => {
            let include_closed = args
                .get("includeClosed")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let list = st
                .fulfillment_orders
                .values()
                .filter(|f| include_closed || f.status != "CLOSED")
                .filter(|f| {
                    q.matches(|field| match field {
                        Some("assigned_location_id") => {
                            Some(vec![FieldVal::Num(f.location_id as f64)])
                        }
                        Some("status") => Some(vec![text(&f.status)]),
                        Some("id") => Some(vec![FieldVal::Num(f.id as f64)]),
                        Some("updated_at") => Some(vec![FieldVal::Time(f.updated_at)]),
                        _ => None,
                    })
                })
                .map(|f| (f.id, K::FulfillmentOrder(f.id)))
                .collect();
            paginate(list, args, MAX_PAGE)?
        }
        "fulfillmentOrder" => {
            let id = arg_str(args, "id").and_then(|s| parse_gid_of(s, "FulfillmentOrder"));
            id.filter(|i| st.fulfillment_orders.contains_key(i))
                .map_or(V::Null, |i| V::Obj(K::FulfillmentOrder(i)))
        }
        "fulfillment" => {
            let id = arg_str(args, "id").and_then(|s| parse_gid_of(s, "Fulfillment"));
            id.filter(|i| st.fulfillments.contains_key(i))
                .map_or(V::Null, |i| V::Obj(K::Fulfillment(i)))
        }
        _ => V::Null,
    })
}

/// Search values of an order, with Shopify's status vocabulary.
fn order_vals(st: &Store, o: &Order, f: Option<&str>) -> Option<Vec<FieldVal>> {
    Some(match f {
        None => vec![text(o.name()), text(&o.email)],
        Some("financial_status") => vec![text(&o.financial_status)],
        Some("fulfillment_status") => {
            let s = st.order_fulfillment_status(o);
            let mut v = vec![text(s)];
            // Shopify's search aliases.
            match s {
                "UNFULFILLED" => v.extend([text("unshipped"), text("unfulfilled")]),
                "FULFILLED" => v.extend([text("shipped"), text("fulfilled")]),
                "PARTIALLY_FULFILLED" => v.extend([text("partial"), text("unfulfilled")]),
                _ => {}
            }
            v
        }
        Some("status") => {
            let mut v = Vec::new();
            if o.cancelled_at.is_some() {
                v.push(text("cancelled"));
            }
            if o.closed_at.is_some() {
                v.push(text("closed"));
            } else {
                v.push(text("not_closed"));
                if o.cancelled_at.is_none() {
                    v.push(text("open"));
                }
            }
            v
        }
        Some("updated_at") => vec![FieldVal::Time(o.updated_at)],
        Some("created_at") => vec![FieldVal::Time(o.created_at)],
        Some("processed_at") => vec![FieldVal::Time(o.processed_at)],
        Some("name") => vec![text(o.name()), text(o.number.to_string())],
        Some("id") => vec![FieldVal::Num(o.id as f64)],
        Some("sku") => o.line_items.iter().map(|l| text(&l.sku)).collect(),
        Some("tag") => o.tags.iter().map(text).collect(),
        Some("email") => vec![text(&o.email)],
        Some("test") => vec![text(o.test.to_string())],
        Some("location_id") | Some("fulfillment_location_id") => o
            .fulfillment_order_ids
            .iter()
            .filter_map(|f| st.fulfillment_orders.get(f))
            .map(|f| FieldVal::Num(f.location_id as f64))
            .collect(),
        _ => return None,
    })
}

fn money_bag(amount: &str, currency: &str) -> Value {
    let m = json!({"amount": amount, "currencyCode": currency});
    json!({"shopMoney": m, "presentmentMoney": m})
}

pub fn field(cx: &Ctx<'_>, k: &K, name: &str, args: &Map<String, Value>) -> R {
    let st = cx.store.borrow();
    let st: &Store = &st;
    let missing = || err("object no longer exists");
    Ok(match k {
        K::Order(id) => {
            let o = st.orders.get(id).ok_or_else(missing)?;
            match name {
                "id" => V::s(gid("Order", o.id)),
                "legacyResourceId" => V::s(o.id.to_string()),
                "name" => V::s(o.name()),
                "email" => V::s(&o.email),
                "phone" => V::opt_s(o.phone.clone()),
                "createdAt" => V::s(ts(&o.created_at)),
                "updatedAt" => V::s(ts(&o.updated_at)),
                "processedAt" => V::s(ts(&o.processed_at)),
                "closed" => V::Leaf(json!(o.closed_at.is_some())),
                "closedAt" => V::opt_s(o.closed_at.map(|t| ts(&t))),
                "cancelledAt" => V::opt_s(o.cancelled_at.map(|t| ts(&t))),
                "test" => V::Leaf(json!(o.test)),
                "confirmed" => V::Leaf(json!(true)),
                "displayFinancialStatus" => V::s(&o.financial_status),
                "displayFulfillmentStatus" => V::s(st.order_fulfillment_status(o)),
                "fullyPaid" => V::Leaf(json!(o.financial_status == "PAID")),
                "tags" => V::Leaf(json!(o.tags)),
                "note" => V::opt_s(o.note.clone()),
                "currencyCode" | "presentmentCurrencyCode" => V::s(&st.currency),
                "totalPriceSet" | "currentTotalPriceSet" | "subtotalPriceSet" => {
                    V::Json(money_bag(&o.total(), &st.currency))
                }
                "totalTaxSet" | "totalShippingPriceSet" | "totalDiscountsSet" => {
                    V::Json(money_bag("0.0", &st.currency))
                }
                "shippingAddress"
                    if st
                        .order_extras
                        .get(id)
                        .is_some_and(|x| x.no_shipping_address) =>
                {
                    V::Null
                }
                "billingAddress" => V::Json(
                    st.order_extras
                        .get(id)
                        .and_then(|x| x.billing_address.clone())
                        .unwrap_or_else(|| o.shipping_address.clone()),
                ),
                "customer" => V::Json(
                    st.order_extras
                        .get(id)
                        .map(|x| x.customer_json())
                        .unwrap_or_default(),
                ),
                "shippingLine" => V::Json(
                    st.order_extras
                        .get(id)
                        .and_then(|x| {
                            x.shipping_lines
                                .first()
                                .map(|t| json!({"title": t, "code": t}))
                        })
                        .unwrap_or_default(),
                ),
                "shippingAddress" => V::Json(o.shipping_address.clone()),
                "lineItems" => paginate(
                    o.line_items
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (l.id, K::LineItem(o.id, i)))
                        .collect(),
                    args,
                    MAX_PAGE,
                )?,
                "fulfillmentOrders" => paginate(
                    o.fulfillment_order_ids
                        .iter()
                        .map(|f| (*f, K::FulfillmentOrder(*f)))
                        .collect(),
                    args,
                    MAX_PAGE,
                )?,
                "fulfillments" => V::List(
                    o.fulfillment_ids
                        .iter()
                        .map(|f| V::Obj(K::Fulfillment(*f)))
                        .collect(),
                ),
                _ => V::Null,
            }
        }
        K::LineItem(oid, idx) => {
            let o = st.orders.get(oid).ok_or_else(missing)?;
            let l = o.line_items.get(*idx).ok_or_else(missing)?;
            let fulfilled: i64 = o
                .fulfillment_ids
                .iter()
                .filter_map(|f| st.fulfillments.get(f))
                .flat_map(|f| f.lines.iter())
                .filter(|(_, li, _)| *li == l.id)
                .map(|(_, _, q)| q)
                .sum();
            match name {
                "id" => V::s(gid("LineItem", l.id)),
                "sku" => V::s(&l.sku),
                "name" | "title" => V::s(&l.name),
                "vendor" => V::s(&l.vendor),
                "quantity" | "currentQuantity" => V::Leaf(json!(l.quantity)),
                "unfulfilledQuantity" | "fulfillableQuantity" => {
                    V::Leaf(json!(l.quantity - fulfilled))
                }
                "requiresShipping" => V::Leaf(json!(
                    !st.order_extras
                        .get(oid)
                        .is_some_and(|x| x.digital_lines.contains(&l.id))
                )),
                "customAttributes" => V::Json(json!(
                    st.order_extras
                        .get(oid)
                        .and_then(|x| x.custom_attributes.get(&l.id))
                        .map(|a| a
                            .iter()
                            .map(|(k, v)| json!({"key": k, "value": v}))
                            .collect::<Vec<_>>())
                        .unwrap_or_default()
                )),
                "variant" => l
                    .variant_id
                    .filter(|v| st.variants.contains_key(v))
                    .map_or(V::Null, |v| V::Obj(K::Variant(v))),
                "product" => l
                    .product_id
                    .filter(|p| st.products.contains_key(p))
                    .map_or(V::Null, |p| V::Obj(K::Product(p))),
                "originalUnitPriceSet" | "discountedUnitPriceSet" => {
                    V::Json(money_bag(&l.price, &st.currency))
                }
                "taxLines" => V::Json(json!([])),
                _ => V::Null,
            }
        }
        K::FulfillmentOrder(id) => {
            let f = st.fulfillment_orders.get(id).ok_or_else(missing)?;
            let loc = st.locations.get(&f.location_id);
            match name {
                "id" => V::s(gid("FulfillmentOrder", f.id)),
                "status" => V::s(&f.status),
                "requestStatus" => V::s("UNSUBMITTED"),
                "orderId" => V::s(gid("Order", f.order_id)),
                "order" => V::Obj(K::Order(f.order_id)),
                "updatedAt" | "createdAt" => V::s(ts(&f.updated_at)),
                "assignedLocation" => super::rec(
                    "FulfillmentOrderAssignedLocation",
                    vec![
                        ("location", V::Obj(K::Location(f.location_id))),
                        ("name", V::s(loc.map_or("", |l| l.name.as_str()))),
                        ("address1", V::opt_s(loc.map(|l| l.address1.clone()))),
                        ("city", V::opt_s(loc.map(|l| l.city.clone()))),
                        (
                            "countryCode",
                            V::s(loc.map_or("CA", |l| l.country_code.as_str())),
                        ),
                    ],
                ),
                "lineItems" => paginate(
                    f.lines
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (l.id, K::FoLine(f.id, i)))
                        .collect(),
                    args,
                    MAX_PAGE,
                )?,
                "supportedActions" => V::Json(if f.status == "CLOSED" {
                    json!([])
                } else {
                    json!([{"action": "CREATE_FULFILLMENT"}, {"action": "HOLD"}, {"action": "MOVE"}])
                }),
                "fulfillmentHolds" => V::Json(json!([])),
                "fulfillAt" | "fulfillBy" => V::Null,
                "destination" => V::Null,
                _ => V::Null,
            }
        }
        K::FoLine(fid, idx) => {
            let f = st.fulfillment_orders.get(fid).ok_or_else(missing)?;
            let l = f.lines.get(*idx).ok_or_else(missing)?;
            let order = st.orders.get(&f.order_id).ok_or_else(missing)?;
            let (li_idx, li) = order
                .line_items
                .iter()
                .enumerate()
                .find(|(_, x)| x.id == l.line_item_id)
                .ok_or_else(missing)?;
            let inv = li
                .variant_id
                .and_then(|v| st.variants.get(&v))
                .map(|v| v.inventory_item_id);
            match name {
                "id" => V::s(gid("FulfillmentOrderLineItem", l.id)),
                "remainingQuantity" => V::Leaf(json!(l.remaining)),
                "totalQuantity" => V::Leaf(json!(l.total)),
                "sku" => V::s(&li.sku),
                "productTitle" => V::s(&li.name),
                "vendor" => V::s(&li.vendor),
                "requiresShipping" => V::Leaf(json!(true)),
                "lineItem" => V::Obj(K::LineItem(order.id, li_idx)),
                "inventoryItemId" => V::opt_s(inv.map(|i| gid("InventoryItem", i))),
                "variant" => li
                    .variant_id
                    .filter(|v| st.variants.contains_key(v))
                    .map_or(V::Null, |v| V::Obj(K::Variant(v))),
                "originalUnitPriceSet" => V::Json(money_bag(&li.price, &st.currency)),
                "warnings" | "financialSummaries" => V::Json(json!([])),
                _ => V::Null,
            }
        }
        K::Fulfillment(id) => {
            let f = st.fulfillments.get(id).ok_or_else(missing)?;
            match name {
                "id" => V::s(gid("Fulfillment", f.id)),
                "legacyResourceId" => V::s(f.id.to_string()),
                "name" => V::s(format!(
                    "{}-F{}",
                    st.orders
                        .get(&f.order_id)
                        .map(|o| o.name())
                        .unwrap_or_default(),
                    f.id % 100
                )),
                "status" => V::s(&f.status),
                "displayStatus" => V::s("FULFILLED"),
                "createdAt" => V::s(ts(&f.created_at)),
                "updatedAt" => V::s(ts(&f.updated_at)),
                "order" => V::Obj(K::Order(f.order_id)),
                "location" => V::Obj(K::Location(f.location_id)),
                "requiresShipping" => V::Leaf(json!(true)),
                "totalQuantity" => V::Leaf(json!(f.lines.iter().map(|l| l.2).sum::<i64>())),
                "trackingInfo" => {
                    let n = args
                        .get("first")
                        .and_then(Value::as_u64)
                        .unwrap_or(u64::MAX) as usize;
                    V::Json(Value::Array(
                        f.tracking
                            .iter()
                            .take(n)
                            .map(
                                |t| json!({"company": t.company, "number": t.number, "url": t.url}),
                            )
                            .collect(),
                    ))
                }
                _ => V::Null,
            }
        }
        _ => V::Null,
    })
}
