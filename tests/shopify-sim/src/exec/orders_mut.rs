//! Order mutations: fulfillmentCreate (remaining quantities enforced), tracking updates, orderClose.

use super::{Ctx, K, R, V, arg_str, rec, user_error, user_errors};
use crate::model::{Fulfillment, Store, Tracking, parse_gid_of};
use serde_json::{Map, Value, json};

pub fn mutation_field(cx: &Ctx<'_>, name: &str, args: &Map<String, Value>) -> R {
    match name {
        "fulfillmentCreate" => fulfillment_create(cx, args),
        "fulfillmentTrackingInfoUpdate" => tracking_update(cx, args),
        _ => order_close(cx, args),
    }
}

fn tracking_from(t: &Value) -> Vec<Tracking> {
    let company = t.get("company").and_then(Value::as_str).map(str::to_string);
    let mut numbers: Vec<String> = t
        .get("numbers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if let Some(n) = t.get("number").and_then(Value::as_str) {
        numbers.insert(0, n.to_string());
    }
    let mut urls: Vec<String> = t
        .get("urls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if let Some(u) = t.get("url").and_then(Value::as_str) {
        urls.insert(0, u.to_string());
    }
    if numbers.is_empty() && company.is_none() && urls.is_empty() {
        return vec![];
    }
    let n = numbers.len().max(1);
    (0..n)
        .map(|i| Tracking {
            company: company.clone(),
            number: numbers.get(i).cloned(),
            url: urls.get(i).or(urls.first()).cloned(),
        })
        .collect()
}

fn fulfillment_create(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "FulfillmentCreatePayload";
    let fail = |errs: Vec<Value>| {
        Ok(rec(
            TY,
            vec![("fulfillment", V::Null), ("userErrors", user_errors(errs))],
        ))
    };
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    let input = args.get("fulfillment").cloned().unwrap_or(Value::Null);
    let groups = input
        .get("lineItemsByFulfillmentOrder")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if groups.is_empty() {
        return fail(vec![user_error(
            &["fulfillment", "lineItemsByFulfillmentOrder"],
            "Line items by fulfillment order can't be blank",
            None,
        )]);
    }
    // Plan: (fulfillment order, line index, quantity); validated completely before any change.
    let mut plan: Vec<(u64, usize, i64)> = Vec::new();
    let mut order_loc: Option<(u64, u64)> = None;
    for (gi, g) in groups.iter().enumerate() {
        let gi = gi.to_string();
        let Some(fo) = g
            .get("fulfillmentOrderId")
            .and_then(Value::as_str)
            .and_then(|x| parse_gid_of(x, "FulfillmentOrder"))
            .and_then(|x| st.fulfillment_orders.get(&x))
        else {
            return fail(vec![user_error(
                &[
                    "fulfillment",
                    "lineItemsByFulfillmentOrder",
                    &gi,
                    "fulfillmentOrderId",
                ],
                "Fulfillment order does not exist.",
                None,
            )]);
        };
        if fo.status == "CLOSED" || fo.status == "CANCELLED" {
            return fail(vec![user_error(
                &["fulfillment"],
                format!(
                    "Fulfillment order {} has an unfulfillable status= {}.",
                    fo.id,
                    fo.status.to_lowercase()
                ),
                None,
            )]);
        }
        match order_loc {
            None => order_loc = Some((fo.order_id, fo.location_id)),
            Some((o, l)) if o != fo.order_id || l != fo.location_id => {
                return fail(vec![user_error(
                    &["fulfillment"],
                    "All fulfillment orders must belong to the same order and be assigned to the same location.",
                    None,
                )]);
            }
            _ => {}
        }
        match g.get("fulfillmentOrderLineItems").and_then(Value::as_array) {
            None => {
                for (i, l) in fo.lines.iter().enumerate() {
                    if l.remaining > 0 {
                        plan.push((fo.id, i, l.remaining));
                    }
                }
            }
            Some(items) => {
                for it in items {
                    let lid = it
                        .get("id")
                        .and_then(Value::as_str)
                        .and_then(|x| parse_gid_of(x, "FulfillmentOrderLineItem"));
                    let qty = it.get("quantity").and_then(Value::as_i64).unwrap_or(0);
                    let Some((i, l)) = fo.lines.iter().enumerate().find(|(_, l)| Some(l.id) == lid)
                    else {
                        return fail(vec![user_error(
                            &["fulfillment"],
                            "Fulfillment order line item does not exist.",
                            None,
                        )]);
                    };
                    if qty <= 0 {
                        return fail(vec![user_error(
                            &["fulfillment"],
                            "Quantity must be greater than 0.",
                            None,
                        )]);
                    }
                    let planned: i64 = plan
                        .iter()
                        .filter(|(f, li, _)| *f == fo.id && *li == i)
                        .map(|p| p.2)
                        .sum();
                    if qty + planned > l.remaining {
                        return fail(vec![user_error(
                            &["fulfillment"],
                            format!(
                                "Invalid fulfillment order line item quantity requested. Remaining quantity is {}.",
                                l.remaining - planned
                            ),
                            None,
                        )]);
                    }
                    plan.push((fo.id, i, qty));
                }
            }
        }
    }
    if plan.is_empty() {
        return fail(vec![user_error(
            &["fulfillment"],
            "Fulfillment orders have no remaining quantity to fulfill.",
            None,
        )]);
    }
    let (order_id, location_id) = order_loc.unwrap_or_default();
    let mut lines = Vec::new();
    for (fid, i, q) in &plan {
        if let Some(fo) = st.fulfillment_orders.get_mut(fid) {
            fo.lines[*i].remaining -= q;
            lines.push((fo.lines[*i].id, fo.lines[*i].line_item_id, *q));
            fo.status = if fo.lines.iter().all(|l| l.remaining == 0) {
                "CLOSED".into()
            } else {
                "IN_PROGRESS".into()
            };
            fo.updated_at = cx.now;
        }
    }
    let id = st.next_id();
    let tracking = input
        .get("trackingInfo")
        .map(tracking_from)
        .unwrap_or_default();
    st.fulfillments.insert(
        id,
        Fulfillment {
            id,
            order_id,
            location_id,
            status: "SUCCESS".into(),
            tracking,
            lines,
            created_at: cx.now,
            updated_at: cx.now,
        },
    );
    if let Some(o) = st.orders.get_mut(&order_id) {
        o.fulfillment_ids.push(id);
        o.updated_at = cx.now;
    }
    let body = st.order_webhook_payload(order_id);
    st.push_event("orders/updated", body.clone());
    let status = st
        .orders
        .get(&order_id)
        .map(|o| st.order_fulfillment_status(o));
    match status {
        Some("FULFILLED") => st.push_event("orders/fulfilled", body),
        Some("PARTIALLY_FULFILLED") => st.push_event("orders/partially_fulfilled", body),
        _ => {}
    }
    st.push_event("fulfillments/create", json!({"id": id, "order_id": order_id, "admin_graphql_api_id": crate::model::gid("Fulfillment", id)}));
    Ok(rec(
        TY,
        vec![
            ("fulfillment", V::Obj(K::Fulfillment(id))),
            ("userErrors", user_errors(vec![])),
        ],
    ))
}

fn tracking_update(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "FulfillmentTrackingInfoUpdatePayload";
    let mut st = cx.store.borrow_mut();
    let id = arg_str(args, "fulfillmentId").and_then(|x| parse_gid_of(x, "Fulfillment"));
    let Some(f) = id.and_then(|i| st.fulfillments.get_mut(&i)) else {
        return Ok(rec(
            TY,
            vec![
                ("fulfillment", V::Null),
                (
                    "userErrors",
                    user_errors(vec![user_error(
                        &["fulfillmentId"],
                        "Fulfillment does not exist.",
                        None,
                    )]),
                ),
            ],
        ));
    };
    f.tracking = args
        .get("trackingInfoInput")
        .map(tracking_from)
        .unwrap_or_default();
    f.updated_at = cx.now;
    let fid = f.id;
    Ok(rec(
        TY,
        vec![
            ("fulfillment", V::Obj(K::Fulfillment(fid))),
            ("userErrors", user_errors(vec![])),
        ],
    ))
}

fn order_close(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "OrderClosePayload";
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    let id = args
        .get("input")
        .and_then(|i| i.get("id"))
        .and_then(Value::as_str)
        .and_then(|x| parse_gid_of(x, "Order"));
    let Some(o) = id.and_then(|i| st.orders.get_mut(&i)) else {
        return Ok(rec(
            TY,
            vec![
                ("order", V::Null),
                (
                    "userErrors",
                    user_errors(vec![user_error(&["id"], "Order does not exist", None)]),
                ),
            ],
        ));
    };
    if o.closed_at.is_none() {
        o.closed_at = Some(cx.now);
        o.updated_at = cx.now;
    }
    let oid = o.id;
    let body = st.order_webhook_payload(oid);
    st.push_event("orders/updated", body);
    Ok(rec(
        TY,
        vec![
            ("order", V::Obj(K::Order(oid))),
            ("userErrors", user_errors(vec![])),
        ],
    ))
}
