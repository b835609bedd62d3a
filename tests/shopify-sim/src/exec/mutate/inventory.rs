//! inventorySetQuantities (compare-and-swap, `@idempotent`), inventoryAdjustQuantities (`@idempotent`),
//! inventoryItemUpdate.

use super::super::{Ctx, K, R, V, arg_str, rec, user_error, user_errors};
use super::products::apply_inventory_item_input;
use super::s;
use crate::model::{
    AdjustmentGroup, AppliedChange, IdempotentAttempt, Store, gid, money, parse_gid_of,
};
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

/// An `@idempotent` inventory mutation (2026-04 semantics). The key's first attempt is recorded with the arguments it
/// was sent; a replay with the same arguments answers the first attempt's result without applying it again (counted
/// in `duplicate_idempotency_keys`), with other arguments `IDEMPOTENCY_KEY_PARAMETER_MISMATCH`, and after a first
/// attempt that failed `IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED` (the client retries with a new key). Source [SD]:
/// https://shopify.dev/docs/api/admin-graphql/latest/enums/InventorySetQuantitiesUserErrorCode. Shopify rebuilds a
/// replay from current state [3P]; the simulator answers the changes as first applied. Requests run one at a time
/// under the store's lock, so `IDEMPOTENCY_CONCURRENT_REQUEST` never happens here. The caller (`graphql::run`) has
/// already refused a request whose field lacks the directive.
fn idempotent(
    cx: &Ctx<'_>,
    ty: &'static str,
    field: &str,
    args: &Map<String, Value>,
    key: Option<String>,
    apply: fn(&Ctx<'_>, &mut Store, &Value) -> Result<AdjustmentGroup, Vec<Value>>,
) -> R {
    let payload = |group: V, errs: Vec<Value>| {
        Ok(rec(
            ty,
            vec![
                ("inventoryAdjustmentGroup", group),
                ("userErrors", user_errors(errs)),
            ],
        ))
    };
    let fingerprint = format!(
        "{field}:{}",
        serde_json::to_string(args).unwrap_or_default()
    );
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    if let Some(prev) = key.as_ref().and_then(|k| st.idempotency_keys.get(k)) {
        cx.duplicate_keys.set(cx.duplicate_keys.get() + 1);
        let (message, code) = if prev.fingerprint != fingerprint {
            (
                "The idempotency key was already used with different parameters.",
                "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
            )
        } else if let Some(group) = &prev.result {
            return payload(group_value(group), vec![]);
        } else {
            (
                "The previous attempt with this idempotency key failed; retry with a new key.",
                "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED",
            )
        };
        return payload(V::Null, vec![user_error(&["input"], message, Some(code))]);
    }
    let input = args.get("input").cloned().unwrap_or(Value::Null);
    let result = apply(cx, st, &input);
    if let Some(key) = key {
        st.idempotency_keys.insert(
            key,
            IdempotentAttempt {
                fingerprint,
                result: result.as_ref().ok().cloned(),
            },
        );
    }
    match result {
        Ok(group) => payload(group_value(&group), vec![]),
        Err(errs) => payload(V::Null, errs),
    }
}

fn group_value(g: &AdjustmentGroup) -> V {
    let changes = g
        .changes
        .iter()
        .map(|c| {
            rec(
                "InventoryChange",
                vec![
                    ("name", V::s(c.name.clone())),
                    ("delta", V::Leaf(json!(c.delta))),
                    ("quantityAfterChange", V::Leaf(json!(c.quantity_after))),
                    ("item", V::Obj(K::InventoryItem(c.item))),
                    ("location", V::Obj(K::Location(c.location))),
                    ("ledgerDocumentUri", V::Null),
                ],
            )
        })
        .collect();
    rec(
        "InventoryAdjustmentGroup",
        vec![
            ("id", V::s(gid("InventoryAdjustmentGroup", g.id))),
            ("reason", V::s(g.reason.clone())),
            (
                "referenceDocumentUri",
                V::opt_s(g.reference_document_uri.clone()),
            ),
            ("createdAt", V::s(crate::model::ts(&g.created_at))),
            ("changes", V::List(changes)),
        ],
    )
}

pub(super) fn inventory_set_quantities(
    cx: &Ctx<'_>,
    args: &Map<String, Value>,
    key: Option<String>,
) -> R {
    idempotent(
        cx,
        "InventorySetQuantitiesPayload",
        "inventorySetQuantities",
        args,
        key,
        apply_set_quantities,
    )
}

/// inventorySetQuantities as 2026-10 has it: `changeFromQuantity` on every entry (compare-and-swap; explicit null
/// skips the check), sources [SD] https://shopify.dev/changelog/making-changefromquantity-field-required and
/// https://shopify.dev/changelog/compare-and-swap-for-inventory-mutations-with-change-from-quantity; no
/// `compareQuantity`/`ignoreCompareQuantity` (removed from the schema, see `schema.rs`); any location is adjustable
/// (`ITEM_NOT_STOCKED_AT_LOCATION` removed in 2026-10 [SD] https://shopify.dev/changelog/release-notes/2026-10: the
/// level is created). All or nothing.
fn apply_set_quantities(
    cx: &Ctx<'_>,
    st: &mut Store,
    input: &Value,
) -> Result<AdjustmentGroup, Vec<Value>> {
    let name = s(input, "name").unwrap_or("");
    let reason = s(input, "reason").unwrap_or("");
    let quantities = input
        .get("quantities")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
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
    if let Some(uri) = s(input, "referenceDocumentUri")
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
        let fe = |k: &str, m: &str, c: Option<&str>| json!({"field": ["input", "quantities", idx, k], "message": m, "code": c});
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
                    Some("INVALID_INVENTORY_ITEM"),
                ));
            }
            if loc.is_none() {
                errs.push(fe(
                    "locationId",
                    "The specified location could not be found.",
                    Some("INVALID_LOCATION"),
                ));
            }
            continue;
        };
        if !pairs.insert((item, loc)) {
            errs.push(fe(
                "inventoryItemId",
                "The combination of inventoryItemId and locationId must be unique.",
                Some("NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR"),
            ));
            continue;
        }
        let current = st.qty(item, loc, name).unwrap_or(0);
        if qty > 1_000_000_000 {
            errs.push(fe(
                "quantity",
                "The quantity can't be higher than 1,000,000,000.",
                Some("INVALID_QUANTITY_TOO_HIGH"),
            ));
            continue;
        }
        if qty < -1_000_000_000 {
            errs.push(fe(
                "quantity",
                "The quantity can't be lower than -1,000,000,000.",
                Some("INVALID_QUANTITY_TOO_LOW"),
            ));
            continue;
        }
        match q.get("changeFromQuantity") {
            // The exact answer to a missing changeFromQuantity is unconfirmed ([3P]): simulator wording, no code.
            None => {
                errs.push(fe(
                    "changeFromQuantity",
                    "changeFromQuantity must be given for each quantity (null skips the check).",
                    None,
                ));
                continue;
            }
            Some(Value::Null) => {}
            Some(expected) if expected.as_i64() != Some(current) => {
                errs.push(fe(
                    "changeFromQuantity",
                    "The specified changeFromQuantity does not match the current quantity.",
                    Some("CHANGE_FROM_QUANTITY_STALE"),
                ));
                continue;
            }
            Some(_) => {}
        }
        plan.push((item, loc, qty, current));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let mut changes = Vec::new();
    for (item, loc, qty, current) in plan {
        let delta = qty - current;
        let level = st.levels.entry((item, loc)).or_default();
        // Setting on_hand moves the difference into available.
        let avail = level.entry("available".into()).or_insert(0);
        *avail += delta;
        changes.push(AppliedChange {
            name: name.to_string(),
            delta,
            quantity_after: qty,
            item,
            location: loc,
        });
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
    Ok(AdjustmentGroup {
        id: st.next_id(),
        reason: reason.to_string(),
        reference_document_uri: s(input, "referenceDocumentUri").map(str::to_string),
        created_at: cx.now,
        changes,
    })
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

pub(super) fn inventory_adjust_quantities(
    cx: &Ctx<'_>,
    args: &Map<String, Value>,
    key: Option<String>,
) -> R {
    idempotent(
        cx,
        "InventoryAdjustQuantitiesPayload",
        "inventoryAdjustQuantities",
        args,
        key,
        apply_adjust_quantities,
    )
}

/// inventoryAdjustQuantities: deltas; any location is adjustable from 2026-10 (the level is created).
fn apply_adjust_quantities(
    cx: &Ctx<'_>,
    st: &mut Store,
    input: &Value,
) -> Result<AdjustmentGroup, Vec<Value>> {
    let name = s(input, "name").unwrap_or("");
    let reason = s(input, "reason").unwrap_or("");
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
            (Some(item), Some(loc)) => plan.push((
                item,
                loc,
                c.get("delta").and_then(Value::as_i64).unwrap_or(0),
            )),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let mut changes = Vec::new();
    for (item, loc, delta) in plan {
        let level = st.levels.entry((item, loc)).or_default();
        let key = if name == "on_hand" { "available" } else { name };
        *level.entry(key.to_string()).or_insert(0) += delta;
        let after = st.qty(item, loc, name).unwrap_or(0);
        changes.push(AppliedChange {
            name: name.to_string(),
            delta,
            quantity_after: after,
            item,
            location: loc,
        });
        let available = st.qty(item, loc, "available").unwrap_or(0);
        st.push_event(
            "inventory_levels/update",
            json!({"inventory_item_id": item, "location_id": loc, "available": available, "updated_at": crate::model::ts(&cx.now),
                   "admin_graphql_api_id": format!("gid://shopify/InventoryLevel/{loc}?inventory_item_id={item}")}),
        );
    }
    Ok(AdjustmentGroup {
        id: st.next_id(),
        reason: reason.to_string(),
        reference_document_uri: s(input, "referenceDocumentUri").map(str::to_string),
        created_at: cx.now,
        changes,
    })
}
