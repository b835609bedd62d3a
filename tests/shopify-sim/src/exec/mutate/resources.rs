//! metafieldsSet, publishing, smart collections, tags and webhook subscriptions.

use super::super::{Ctx, K, R, V, arg_str, rec, user_error, user_errors};
use super::{handleize, s};
use crate::model::{
    Collection, Metafield, Product, Store, Variant, WebhookSub, gid, parse_gid, parse_gid_of,
};
use serde_json::{Map, Value, json};

pub fn upsert_metafield(
    st: &mut Store,
    owner: &str,
    ns: &str,
    key: &str,
    kind: &str,
    value: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> u64 {
    if let Some(m) = st
        .metafields
        .values_mut()
        .find(|m| m.owner == owner && m.namespace == ns && m.key == key)
    {
        m.value = value.to_string();
        m.kind = kind.to_string();
        m.updated_at = now;
        return m.id;
    }
    let id = st.next_id();
    st.metafields.insert(
        id,
        Metafield {
            id,
            owner: owner.into(),
            namespace: ns.into(),
            key: key.into(),
            kind: kind.into(),
            value: value.into(),
            created_at: now,
            updated_at: now,
        },
    );
    id
}

pub(super) fn owner_exists(st: &Store, owner: &str) -> bool {
    match parse_gid(owner) {
        Some(("Product", i)) => st.products.contains_key(&i),
        Some(("ProductVariant", i)) => st.variants.contains_key(&i),
        Some(("Collection", i)) => st.collections.contains_key(&i),
        Some(("Order", i)) => st.orders.contains_key(&i),
        Some(("Location", i)) => st.locations.contains_key(&i),
        Some(("Shop", _)) => true,
        _ => false,
    }
}

pub(super) fn metafields_set(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "MetafieldsSetPayload";
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    let input = args
        .get("metafields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut errs = Vec::new();
    if input.len() > 25 {
        errs.push(json!({"field": ["metafields"], "message": "Exceeded the maximum metafields input limit of 25.", "code": "LESS_THAN_OR_EQUAL_TO", "elementIndex": null}));
    }
    for (i, m) in input.iter().enumerate() {
        let idx = i.to_string();
        let e = |k: &str, msg: &str, code: &str| json!({"field": ["metafields", idx, k], "message": msg, "code": code, "elementIndex": i});
        let owner = s(m, "ownerId").unwrap_or("");
        if !owner_exists(st, owner) {
            errs.push(e("ownerId", "Owner does not exist.", "INVALID"));
            continue;
        }
        let ns = s(m, "namespace").unwrap_or("");
        let key = s(m, "key").unwrap_or("");
        if key.len() < 2 {
            errs.push(e(
                "key",
                "Key is too short (minimum is 2 characters)",
                "TOO_SHORT",
            ));
        }
        let exists = st
            .metafields
            .values()
            .find(|x| x.owner == owner && x.namespace == ns && x.key == key);
        if s(m, "type").is_none() && exists.is_none() {
            errs.push(e("type", "Type can't be blank", "BLANK"));
        }
        if let Some(d) = s(m, "compareDigest")
            && exists.is_some_and(|x| {
                format!(
                    "{:x}",
                    x.value.len() as u64 ^ x.updated_at.timestamp() as u64
                ) != d
            })
        {
            errs.push(e("compareDigest", "The resource has been updated since it was loaded. Try again with an updated `compareDigest` value.", "STALE_OBJECT"));
        }
    }
    // Atomic: all or nothing.
    if !errs.is_empty() {
        return Ok(rec(
            TY,
            vec![("metafields", V::Null), ("userErrors", user_errors(errs))],
        ));
    }
    let mut ids = Vec::new();
    for m in &input {
        let owner = s(m, "ownerId").unwrap_or("");
        let kind = s(m, "type").map(str::to_string).unwrap_or_else(|| {
            st.metafields
                .values()
                .find(|x| {
                    x.owner == owner
                        && x.namespace == s(m, "namespace").unwrap_or("")
                        && x.key == s(m, "key").unwrap_or("")
                })
                .map(|x| x.kind.clone())
                .unwrap_or_default()
        });
        ids.push(upsert_metafield(
            st,
            owner,
            s(m, "namespace").unwrap_or("$app"),
            s(m, "key").unwrap_or(""),
            &kind,
            s(m, "value").unwrap_or(""),
            cx.now,
        ));
    }
    Ok(rec(
        TY,
        vec![
            (
                "metafields",
                V::List(ids.into_iter().map(|i| V::Obj(K::Metafield(i))).collect()),
            ),
            ("userErrors", user_errors(vec![])),
        ],
    ))
}

pub(super) fn publishable_publish(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "PublishablePublishPayload";
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    let id = arg_str(args, "id").unwrap_or("");
    let pubs: Vec<Option<u64>> = args
        .get("input")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            s(p, "publicationId")
                .and_then(|x| parse_gid_of(x, "Publication"))
                .filter(|x| st.publications.contains_key(x))
        })
        .collect();
    let mut errs = Vec::new();
    if pubs.iter().any(Option::is_none) {
        errs.push(user_error(
            &["input", "publicationId"],
            "Publication does not exist",
            None,
        ));
    }
    let target = match parse_gid(id) {
        Some(("Product", i)) if st.products.contains_key(&i) => Some(K::Product(i)),
        Some(("Collection", i)) if st.collections.contains_key(&i) => Some(K::Collection(i)),
        _ => {
            errs.push(user_error(&["id"], "Publishable does not exist", None));
            None
        }
    };
    if !errs.is_empty() {
        return Ok(rec(
            TY,
            vec![
                ("publishable", V::Null),
                ("shop", V::Obj(K::Shop)),
                ("userErrors", user_errors(errs)),
            ],
        ));
    }
    if let Some(K::Product(pid)) = &target {
        if let Some(p) = st.products.get_mut(pid) {
            p.publications.extend(pubs.iter().flatten());
            p.updated_at = cx.now;
        }
        let body = st.product_webhook_payload(*pid);
        st.push_event("products/update", body);
    }
    Ok(rec(
        TY,
        vec![
            ("publishable", target.map_or(V::Null, V::Obj)),
            ("shop", V::Obj(K::Shop)),
            ("userErrors", user_errors(vec![])),
        ],
    ))
}

/// Does a product satisfy one smart-collection rule?
pub(super) fn rule_matches(st: &Store, p: &Product, rule: &Value) -> bool {
    let column = s(rule, "column").unwrap_or("");
    let relation = s(rule, "relation").unwrap_or("EQUALS");
    let cond = s(rule, "condition").unwrap_or("").to_lowercase();
    let variants: Vec<&Variant> = p
        .variant_ids
        .iter()
        .filter_map(|v| st.variants.get(v))
        .collect();
    let texts: Vec<String> = match column {
        "TAG" => p.tags.clone(),
        "TITLE" => vec![p.title.clone()],
        "TYPE" => vec![p.product_type.clone()],
        "VENDOR" => vec![p.vendor.clone()],
        "VARIANT_TITLE" => variants.iter().map(|v| v.title()).collect(),
        "VARIANT_PRICE" => variants.iter().map(|v| v.price.clone()).collect(),
        "VARIANT_COMPARE_AT_PRICE" => variants
            .iter()
            .filter_map(|v| v.compare_at_price.clone())
            .collect(),
        "VARIANT_INVENTORY" => variants
            .iter()
            .map(|v| st.variant_inventory_quantity(v).to_string())
            .collect(),
        "PRODUCT_CATEGORY_ID" | "PRODUCT_CATEGORY_ID_WITH_DESCENDANTS" => {
            p.category.iter().cloned().collect()
        }
        _ => vec![],
    };
    let num = |x: &str| x.parse::<f64>().ok();
    texts.iter().any(|t| {
        let t = t.to_lowercase();
        match relation {
            "EQUALS" => {
                t == cond
                    || (column == "PRODUCT_CATEGORY_ID_WITH_DESCENDANTS"
                        && t.starts_with(&format!("{cond}-")))
            }
            "NOT_EQUALS" => t != cond,
            "CONTAINS" => t.contains(&cond),
            "NOT_CONTAINS" => !t.contains(&cond),
            "STARTS_WITH" => t.starts_with(&cond),
            "ENDS_WITH" => t.ends_with(&cond),
            "GREATER_THAN" => num(&t).zip(num(&cond)).is_some_and(|(a, b)| a > b),
            "LESS_THAN" => num(&t).zip(num(&cond)).is_some_and(|(a, b)| a < b),
            "IS_SET" => !t.is_empty(),
            "IS_NOT_SET" => t.is_empty(),
            _ => false,
        }
    })
}

pub(super) fn collection_create(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "CollectionCreatePayload";
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    let input = args.get("input").cloned().unwrap_or(Value::Null);
    let title = s(&input, "title").unwrap_or("").to_string();
    if title.trim().is_empty() {
        return Ok(rec(
            TY,
            vec![
                ("collection", V::Null),
                (
                    "userErrors",
                    user_errors(vec![user_error(&["title"], "Title can't be blank", None)]),
                ),
            ],
        ));
    }
    let rule_set = input.get("ruleSet").filter(|r| !r.is_null()).cloned();
    if rule_set.is_some() && input.get("products").is_some_and(|p| !p.is_null()) {
        return Ok(rec(
            TY,
            vec![
                ("collection", V::Null),
                (
                    "userErrors",
                    user_errors(vec![user_error(
                        &["products"],
                        "Cannot manually add products to a smart collection",
                        None,
                    )]),
                ),
            ],
        ));
    }
    let products: Vec<u64> = match &rule_set {
        Some(rs) => {
            let disj = rs
                .get("appliedDisjunctively")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let rules = rs
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            st.products
                .values()
                .filter(|p| {
                    if rules.is_empty() {
                        return false;
                    }
                    if disj {
                        rules.iter().any(|r| rule_matches(st, p, r))
                    } else {
                        rules.iter().all(|r| rule_matches(st, p, r))
                    }
                })
                .map(|p| p.id)
                .collect()
        }
        None => input
            .get("products")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|p| parse_gid_of(p, "Product"))
            .filter(|p| st.products.contains_key(p))
            .collect(),
    };
    let id = st.next_id();
    let handle = s(&input, "handle")
        .map(str::to_string)
        .unwrap_or_else(|| handleize(&title));
    // Stored as the output shape of CollectionRuleSet.
    let rule_set_out = rule_set.map(|rs| {
        json!({"appliedDisjunctively": rs.get("appliedDisjunctively").cloned().unwrap_or(json!(false)),
               "rules": rs.get("rules").and_then(Value::as_array).map(|rules| rules.iter().map(|r| json!({
                   "column": r.get("column"), "relation": r.get("relation"), "condition": r.get("condition").cloned().unwrap_or(json!("")),
                   "conditionObjectId": r.get("conditionObjectId")})).collect::<Vec<_>>()).unwrap_or_default()})
    });
    for p in &products {
        if let Some(pp) = st.products.get_mut(p) {
            pp.collections.insert(id);
        }
    }
    st.collections.insert(
        id,
        Collection {
            id,
            title,
            handle,
            rule_set: rule_set_out,
            product_ids: products.into_iter().collect(),
            updated_at: cx.now,
        },
    );
    Ok(rec(
        TY,
        vec![
            ("collection", V::Obj(K::Collection(id))),
            ("userErrors", user_errors(vec![])),
        ],
    ))
}

pub(super) fn tags_add(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    change_tags(cx, args, "TagsAddPayload", |list, tags| {
        for t in tags {
            if !list.contains(t) {
                list.push(t.clone());
            }
        }
    })
}

pub(super) fn tags_remove(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    change_tags(cx, args, "TagsRemovePayload", |list, tags| {
        list.retain(|t| !tags.contains(t))
    })
}

/// `tagsAdd` / `tagsRemove` on a product or an order: `change` edits the tag list; the resource's update webhook
/// follows, as on Shopify.
fn change_tags(
    cx: &Ctx<'_>,
    args: &Map<String, Value>,
    ty: &'static str,
    change: impl Fn(&mut Vec<String>, &[String]),
) -> R {
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    let tags: Vec<String> = args
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .flat_map(|t| t.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let node = match parse_gid(arg_str(args, "id").unwrap_or("")) {
        Some(("Product", i)) if st.products.contains_key(&i) => {
            if let Some(p) = st.products.get_mut(&i) {
                change(&mut p.tags, &tags);
                p.updated_at = cx.now;
            }
            let body = st.product_webhook_payload(i);
            st.push_event("products/update", body);
            K::Product(i)
        }
        Some(("Order", i)) if st.orders.contains_key(&i) => {
            if let Some(o) = st.orders.get_mut(&i) {
                change(&mut o.tags, &tags);
                o.updated_at = cx.now;
            }
            let body = st.order_webhook_payload(i);
            st.push_event("orders/updated", body);
            K::Order(i)
        }
        _ => {
            return Ok(rec(
                ty,
                vec![
                    ("node", V::Null),
                    (
                        "userErrors",
                        user_errors(vec![user_error(&["id"], "Resource does not exist", None)]),
                    ),
                ],
            ));
        }
    };
    Ok(rec(
        ty,
        vec![("node", V::Obj(node)), ("userErrors", user_errors(vec![]))],
    ))
}

pub(super) fn publishable_unpublish(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "PublishableUnpublishPayload";
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    let pubs: Vec<u64> = args
        .get("input")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| s(p, "publicationId").and_then(|x| parse_gid_of(x, "Publication")))
        .collect();
    match parse_gid(arg_str(args, "id").unwrap_or("")) {
        Some(("Product", i)) if st.products.contains_key(&i) => {
            if let Some(p) = st.products.get_mut(&i) {
                p.publications.retain(|x| !pubs.contains(x));
                p.updated_at = cx.now;
            }
            let body = st.product_webhook_payload(i);
            st.push_event("products/update", body);
            Ok(rec(
                TY,
                vec![
                    ("publishable", V::Obj(K::Product(i))),
                    ("shop", V::Obj(K::Shop)),
                    ("userErrors", user_errors(vec![])),
                ],
            ))
        }
        _ => Ok(rec(
            TY,
            vec![
                ("publishable", V::Null),
                ("shop", V::Obj(K::Shop)),
                (
                    "userErrors",
                    user_errors(vec![user_error(
                        &["id"],
                        "Publishable does not exist",
                        None,
                    )]),
                ),
            ],
        )),
    }
}

pub(super) fn webhook_subscription_create(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "WebhookSubscriptionCreatePayload";
    let mut st = cx.store.borrow_mut();
    let topic = arg_str(args, "topic").unwrap_or("").to_string();
    let sub = args
        .get("webhookSubscription")
        .cloned()
        .unwrap_or(Value::Null);
    let uri = s(&sub, "uri")
        .or_else(|| s(&sub, "callbackUrl"))
        .unwrap_or("")
        .to_string();
    let err = |m: &str| {
        Ok(rec(
            TY,
            vec![
                ("webhookSubscription", V::Null),
                (
                    "userErrors",
                    user_errors(vec![user_error(
                        &["webhookSubscription", "callbackUrl"],
                        m,
                        None,
                    )]),
                ),
            ],
        ))
    };
    if uri.is_empty() || !(uri.starts_with("https://") || uri.starts_with("http://")) {
        return err("Address is invalid");
    }
    if st
        .webhook_subs
        .values()
        .any(|w| w.topic == topic && w.uri == uri)
    {
        return err("Address for this topic has already been taken");
    }
    let id = st.next_id();
    let format = s(&sub, "format").unwrap_or("JSON").to_string();
    st.webhook_subs.insert(
        id,
        WebhookSub {
            id,
            topic,
            uri,
            format,
        },
    );
    Ok(rec(
        TY,
        vec![
            ("webhookSubscription", V::Obj(K::WebhookSub(id))),
            ("userErrors", user_errors(vec![])),
        ],
    ))
}

pub(super) fn webhook_subscription_delete(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "WebhookSubscriptionDeletePayload";
    let mut st = cx.store.borrow_mut();
    let id = arg_str(args, "id").and_then(|x| parse_gid_of(x, "WebhookSubscription"));
    match id.and_then(|i| st.webhook_subs.remove(&i)) {
        Some(w) => Ok(rec(
            TY,
            vec![
                (
                    "deletedWebhookSubscriptionId",
                    V::s(gid("WebhookSubscription", w.id)),
                ),
                ("userErrors", user_errors(vec![])),
            ],
        )),
        None => Ok(rec(
            TY,
            vec![
                ("deletedWebhookSubscriptionId", V::Null),
                (
                    "userErrors",
                    user_errors(vec![user_error(
                        &["id"],
                        "Webhook subscription does not exist",
                        None,
                    )]),
                ),
            ],
        )),
    }
}
