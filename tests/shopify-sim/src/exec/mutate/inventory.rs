//! inventorySetQuantities (compare-and-set, idempotency), inventoryAdjustQuantities, inventoryItemUpdate.

use super::super::{Ctx, K, R, V, arg_str, rec, user_error, user_errors};
use super::products::apply_inventory_item_input;
use super::s;
use crate::model::{Store, gid, money, parse_gid_of};
use serde_json::{Map, Value, json};

/// Reasons Shopify accepts for inventory changes.
pub(super) const REASONS: &[&str] = &[
    "correction",
    "cycle_count_available",
    "damaged",
    "movement_created",
    "movement_updated",
    "movement_received",
    "movement_canceled",
    "other",
    "promotion",
    "quality_control",
    "received",
    "reservation_created",
    "reservation_deleted",
    "reservation_updated",
    "restock",
    "safety_stock",
    "shrinkage",
];

pub(super) fn inventory_set_quantities(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "InventorySetQuantitiesPayload";
    let payload = |group: V, errs: Vec<Value>| {
        Ok(rec(
            TY,
            vec![
                ("inventoryAdjustmentGroup", group),
                ("userErrors", user_errors(errs)),
            ],
        ))
    };
    let input = args.get("input").cloned().unwrap_or(Value::Null);
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    let name = s(&input, "name").unwrap_or("");
    let reason = s(&input, "reason").unwrap_or("");
    let ignore_compare = input
        .get("ignoreCompareQuantity")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let quantities = input
        .get("quantities")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // A repeated idempotency key is answered without applying the change again.
    if let Some(key) = &cx.idempotency_key
        && st.idempotency_keys.contains(key)
    {
        cx.duplicate_keys.set(cx.duplicate_keys.get() + 1);
        return payload(
            rec(
                "InventoryAdjustmentGroup",
                vec![
                    ("reason", V::s(reason)),
                    ("changes", V::List(vec![])),
                    ("createdAt", V::s(crate::model::ts(&cx.now))),
                ],
            ),
            vec![],
        );
    }
    let mut errs = Vec::new();
    if name != "available" && name != "on_hand" {
        errs.push(user_error(
            &["input", "name"],
            "The quantity name must be either 'available' or 'on_hand'.",
            Some("INVALID_NAME"),
        ));
    }
    if !REASONS.contains(&reason) {
        errs.push(user_error(
            &["input", "reason"],
            "The specified reason is invalid.",
            Some("INVALID_REASON"),
        ));
    }
    if let Some(uri) = s(&input, "referenceDocumentUri")
        && !uri.contains("://")
    {
        errs.push(user_error(
            &["input", "referenceDocumentUri"],
            "The reference document URI is invalid.",
            Some("INVALID_REFERENCE_DOCUMENT"),
        ));
    }
    let mut pairs = std::collections::HashSet::new();
    let mut plan = Vec::new();
    for (i, q) in quantities.iter().enumerate() {
        let idx = i.to_string();
        let f = |k: &str| -> Vec<String> {
            vec!["input".into(), "quantities".into(), idx.clone(), k.into()]
        };
        let fe = |k: &str, m: &str, c: &str| {
            let p = f(k);
            json!({"field": p, "message": m, "code": c})
        };
        let item = s(q, "inventoryItemId")
            .and_then(|x| parse_gid_of(x, "InventoryItem"))
            .filter(|x| st.inventory_items.contains_key(x));
        let loc = s(q, "locationId")
            .and_then(|x| parse_gid_of(x, "Location"))
            .filter(|x| st.locations.contains_key(x));
        let qty = q.get("quantity").and_then(Value::as_i64).unwrap_or(0);
        let (Some(item), Some(loc)) = (item, loc) else {
            if item.is_none() {
                errs.push(fe(
                    "inventoryItemId",
                    "The specified inventory item could not be found.",
                    "INVALID_INVENTORY_ITEM",
                ));
            }
            if loc.is_none() {
                errs.push(fe(
                    "locationId",
                    "The specified location could not be found.",
                    "INVALID_LOCATION",
                ));
            }
            continue;
        };
        if !pairs.insert((item, loc)) {
            errs.push(fe(
                "inventoryItemId",
                "The combination of inventoryItemId and locationId must be unique.",
                "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
            ));
            continue;
        }
        let Some(current) = st.qty(item, loc, name) else {
            errs.push(fe(
                "locationId",
                "The specified inventory item is not stocked at the location.",
                "ITEM_NOT_STOCKED_AT_LOCATION",
            ));
            continue;
        };
        if qty > 1_000_000_000 {
            errs.push(fe(
                "quantity",
                "The quantity can't be higher than 1,000,000,000.",
                "INVALID_QUANTITY_TOO_HIGH",
            ));
            continue;
        }
        if qty < -1_000_000_000 {
            errs.push(fe(
                "quantity",
                "The quantity can't be lower than -1,000,000,000.",
                "INVALID_QUANTITY_TOO_LOW",
            ));
            continue;
        }
        if !ignore_compare {
            match q.get("compareQuantity").and_then(Value::as_i64) {
                None => {
                    errs.push(fe("compareQuantity", "The compareQuantity argument must be given to each quantity or ignored using ignoreCompareQuantity.", "COMPARE_QUANTITY_REQUIRED"));
                    continue;
                }
                Some(c) if c != current => {
                    errs.push(fe(
                        "compareQuantity",
                        "The specified compare quantity does not match the current quantity.",
                        "COMPARE_QUANTITY_STALE",
                    ));
                    continue;
                }
                _ => {}
            }
        }
        plan.push((item, loc, qty, current));
    }
    // All or nothing.
    if !errs.is_empty() {
        return payload(V::Null, errs);
    }
    if let Some(key) = &cx.idempotency_key {
        st.idempotency_keys.insert(key.clone());
    }
    let mut changes = Vec::new();
    for (item, loc, qty, current) in plan {
        let delta = qty - current;
        let level = st.levels.entry((item, loc)).or_default();
        // Setting on_hand moves the difference into available.
        let avail = level.entry("available".into()).or_insert(0);
        *avail += delta;
        changes.push(rec(
            "InventoryChange",
            vec![
                ("name", V::s(name)),
                ("delta", V::Leaf(json!(delta))),
                ("quantityAfterChange", V::Leaf(json!(qty))),
                ("item", V::Obj(K::InventoryItem(item))),
                ("location", V::Obj(K::Location(loc))),
                ("ledgerDocumentUri", V::Null),
            ],
        ));
        if let Some(it) = st.inventory_items.get_mut(&item) {
            it.updated_at = cx.now;
        }
        let available = st.qty(item, loc, "available").unwrap_or(0);
        st.push_event(
            "inventory_levels/update",
            json!({"inventory_item_id": item, "location_id": loc, "available": available, "updated_at": crate::model::ts(&cx.now),
                   "admin_graphql_api_id": format!("gid://shopify/InventoryLevel/{loc}?inventory_item_id={item}")}),
        );
    }
    let gid_group = st.next_id();
    payload(
        rec(
            "InventoryAdjustmentGroup",
            vec![
                ("id", V::s(gid("InventoryAdjustmentGroup", gid_group))),
                ("reason", V::s(reason)),
                (
                    "referenceDocumentUri",
                    V::opt_s(s(&input, "referenceDocumentUri")),
                ),
                ("createdAt", V::s(crate::model::ts(&cx.now))),
                ("changes", V::List(changes)),
            ],
        ),
        vec![],
    )
}

pub(super) fn inventory_item_update(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "InventoryItemUpdatePayload";
    let mut st = cx.store.borrow_mut();
    let id = arg_str(args, "id").and_then(|x| parse_gid_of(x, "InventoryItem"));
    let input = args.get("input").cloned().unwrap_or(Value::Null);
    let Some(it) = id.and_then(|i| st.inventory_items.get_mut(&i)) else {
        return Ok(rec(
            TY,
            vec![
                ("inventoryItem", V::Null),
                (
                    "userErrors",
                    user_errors(vec![user_error(
                        &["id"],
                        "Inventory item does not exist",
                        None,
                    )]),
                ),
            ],
        ));
    };
    if let Some(c) = s(&input, "cost")
        && money(c).is_none()
    {
        return Ok(rec(
            TY,
            vec![
                ("inventoryItem", V::Null),
                (
                    "userErrors",
                    user_errors(vec![user_error(
                        &["input", "cost"],
                        "Cost is invalid",
                        None,
                    )]),
                ),
            ],
        ));
    }
    apply_inventory_item_input(it, &input);
    it.updated_at = cx.now;
    let (iid, vid, sku) = (it.id, it.variant_id, it.sku.clone());
    if input.get("sku").is_some()
        && let Some(v) = st.variants.get_mut(&vid)
    {
        v.sku = sku;
    }
    Ok(rec(
        TY,
        vec![
            ("inventoryItem", V::Obj(K::InventoryItem(iid))),
            ("userErrors", user_errors(vec![])),
        ],
    ))
}

/// Quantity names `inventoryAdjustQuantities` may change (on_hand adjusts available).
pub(super) const ADJUSTABLE: &[&str] = &[
    "available",
    "on_hand",
    "damaged",
    "incoming",
    "quality_control",
    "reserved",
    "safety_stock",
];

pub(super) fn inventory_adjust_quantities(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "InventoryAdjustQuantitiesPayload";
    let payload = |group: V, errs: Vec<Value>| {
        Ok(rec(
            TY,
            vec![
                ("inventoryAdjustmentGroup", group),
                ("userErrors", user_errors(errs)),
            ],
        ))
    };
    let input = args.get("input").cloned().unwrap_or(Value::Null);
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    let name = s(&input, "name").unwrap_or("");
    let reason = s(&input, "reason").unwrap_or("");
    let mut errs = Vec::new();
    if !ADJUSTABLE.contains(&name) {
        errs.push(user_error(
            &["input", "name"],
            "The quantity name is not valid.",
            Some("INVALID_QUANTITY_NAME"),
        ));
    }
    if !REASONS.contains(&reason) {
        errs.push(user_error(
            &["input", "reason"],
            "The specified reason is invalid.",
            Some("INVALID_REASON"),
        ));
    }
    let mut plan = Vec::new();
    for (i, c) in input
        .get("changes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let idx = i.to_string();
        let item = s(c, "inventoryItemId")
            .and_then(|x| parse_gid_of(x, "InventoryItem"))
            .filter(|x| st.inventory_items.contains_key(x));
        let loc = s(c, "locationId")
            .and_then(|x| parse_gid_of(x, "Location"))
            .filter(|x| st.locations.contains_key(x));
        match (item, loc) {
            (None, _) => errs.push(user_error(
                &["input", "changes", &idx, "inventoryItemId"],
                "The specified inventory item could not be found.",
                Some("INVALID_INVENTORY_ITEM"),
            )),
            (_, None) => errs.push(user_error(
                &["input", "changes", &idx, "locationId"],
                "The specified location could not be found.",
                Some("INVALID_LOCATION"),
            )),
            (Some(item), Some(loc)) if !st.levels.contains_key(&(item, loc)) => {
                errs.push(user_error(
                    &["input", "changes", &idx, "locationId"],
                    "The specified inventory item is not stocked at the location.",
                    Some("ITEM_NOT_STOCKED_AT_LOCATION"),
                ))
            }
            (Some(item), Some(loc)) => plan.push((
                item,
                loc,
                c.get("delta").and_then(Value::as_i64).unwrap_or(0),
            )),
        }
    }
    if !errs.is_empty() {
        return payload(V::Null, errs);
    }
    let mut changes = Vec::new();
    for (item, loc, delta) in plan {
        let level = st.levels.entry((item, loc)).or_default();
        let key = if name == "on_hand" { "available" } else { name };
        *level.entry(key.to_string()).or_insert(0) += delta;
        let after = st.qty(item, loc, name).unwrap_or(0);
        changes.push(rec(
            "InventoryChange",
            vec![
                ("name", V::s(name)),
                ("delta", V::Leaf(json!(delta))),
                ("quantityAfterChange", V::Leaf(json!(after))),
                ("item", V::Obj(K::InventoryItem(item))),
                ("location", V::Obj(K::Location(loc))),
            ],
        ));
        let available = st.qty(item, loc, "available").unwrap_or(0);
        st.push_event(
            "inventory_levels/update",
            json!({"inventory_item_id": item, "location_id": loc, "available": available, "updated_at": crate::model::ts(&cx.now),
                   "admin_graphql_api_id": format!("gid://shopify/InventoryLevel/{loc}?inventory_item_id={item}")}),
        );
    }
    let id = st.next_id();
    payload(
        rec(
            "InventoryAdjustmentGroup",
            vec![
                ("id", V::s(gid("InventoryAdjustmentGroup", id))),
                ("reason", V::s(reason)),
                (
                    "referenceDocumentUri",
                    V::opt_s(s(&input, "referenceDocumentUri")),
                ),
                ("createdAt", V::s(crate::model::ts(&cx.now))),
                ("changes", V::List(changes)),
            ],
        ),
        vec![],
    )
}
