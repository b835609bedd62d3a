//! productSet, productVariantsBulkCreate/Update, productDelete, and the variant helpers they share.

use super::super::{Ctx, K, R, V, arg_str, err, rec, user_error, user_errors};
use super::resources::upsert_metafield;
use super::{handleize, s};
use crate::model::{
    InventoryItem, Media, Product, ProductOption, Store, Variant, gid, money, parse_gid_of,
};
use apollo_compiler::resolvers::FieldError;
use serde_json::{Map, Value, json};

/// Variant-creation throttle: past this many variants a shop may create only `DAILY` a day.
pub const VARIANT_THROTTLE_THRESHOLD: usize = 50_000;

pub const VARIANT_THROTTLE_DAILY: usize = 1_000;

/// Is another `n` variant creations allowed right now (1,000/day once the shop has 50,000)?
pub(super) fn variant_throttle_ok(st: &mut Store, n: usize, now: f64) -> bool {
    st.variant_creations.retain(|t| now - t < 86_400.0);
    st.variants.len() < VARIANT_THROTTLE_THRESHOLD
        || st.variant_creations.len() + n <= VARIANT_THROTTLE_DAILY
}

pub(super) const THROTTLE_MSG: &str = "Exceeded the daily variant creation limit: stores with 50,000 variants or more can create 1,000 new variants a day.";

pub(super) fn product_set(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    let (product, errs) = product_set_apply(cx, args)?;
    let synchronous = args
        .get("synchronous")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if synchronous {
        return Ok(rec(
            "ProductSetPayload",
            vec![
                (
                    "product",
                    product.map_or(V::Null, |p| V::Obj(K::Product(p))),
                ),
                ("productSetOperation", V::Null),
                ("userErrors", user_errors(errs)),
            ],
        ));
    }
    // Asynchronous: the work is done at once here, reported through a COMPLETE operation that
    // `productOperation(id:)` returns; input errors are still returned on the payload.
    if !errs.is_empty() {
        return Ok(rec(
            "ProductSetPayload",
            vec![
                ("product", V::Null),
                ("productSetOperation", V::Null),
                ("userErrors", user_errors(errs)),
            ],
        ));
    }
    let mut st = cx.store.borrow_mut();
    let id = st.next_id();
    st.product_ops.insert(id, product);
    Ok(rec(
        "ProductSetPayload",
        vec![
            ("product", V::Null),
            ("productSetOperation", V::Obj(K::ProductOp(id))),
            ("userErrors", user_errors(vec![])),
        ],
    ))
}

pub(super) type Applied = Result<(Option<u64>, Vec<Value>), FieldError>;

pub(super) fn product_set_apply(cx: &Ctx<'_>, args: &Map<String, Value>) -> Applied {
    let payload = |product: Option<u64>, errs: Vec<Value>| -> Applied { Ok((product, errs)) };
    let input = args.get("input").cloned().unwrap_or(Value::Null);
    let ident = args.get("identifier").cloned().unwrap_or(Value::Null);
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    let mut errs = Vec::new();

    // Which product: identifier.id / identifier.handle / deprecated input.id.
    let existing = if let Some(id) = s(&ident, "id").or_else(|| s(&input, "id")) {
        match parse_gid_of(id, "Product").filter(|i| st.products.contains_key(i)) {
            Some(i) => Some(i),
            None => {
                return payload(
                    None,
                    vec![user_error(
                        &["identifier", "id"],
                        "Product does not exist",
                        Some("PRODUCT_DOES_NOT_EXIST"),
                    )],
                );
            }
        }
    } else if let Some(h) = s(&ident, "handle") {
        st.products.values().find(|p| p.handle == h).map(|p| p.id)
    } else {
        None
    };
    let title = s(&input, "title").map(str::to_string);
    if existing.is_none() && title.as_deref().is_none_or(|t| t.trim().is_empty()) {
        errs.push(user_error(
            &["input", "title"],
            "Title can't be blank",
            Some("INVALID_INPUT"),
        ));
    }
    if title.as_deref().is_some_and(|t| t.chars().count() > 255) {
        errs.push(user_error(
            &["input", "title"],
            "Title is too long (maximum is 255 characters)",
            Some("INVALID_INPUT"),
        ));
    }
    let options = input
        .get("productOptions")
        .and_then(Value::as_array)
        .cloned();
    if options.as_ref().is_some_and(|o| o.len() > 3) {
        errs.push(user_error(
            &["input", "productOptions"],
            "Can only specify a maximum of 3 options",
            Some("OPTIONS_OVER_LIMIT"),
        ));
    }
    let variants_in = input.get("variants").and_then(Value::as_array).cloned();
    if variants_in.as_ref().is_some_and(|v| v.len() > 2048) {
        errs.push(user_error(
            &["input", "variants"],
            "Can only specify a maximum of 2048 variants",
            Some("VARIANTS_OVER_LIMIT"),
        ));
    }
    let category = match input.get("category") {
        Some(Value::String(c)) => match crate::schema::lookup_category(c) {
            Some((g, _)) => Some(Some(g)),
            None => {
                errs.push(user_error(
                    &["input", "category"],
                    "Category does not exist",
                    Some("INVALID_INPUT"),
                ));
                None
            }
        },
        Some(Value::Null) => Some(None),
        _ => None,
    };
    if let Some(h) = s(&input, "handle")
        && st
            .products
            .values()
            .any(|p| p.handle == h && Some(p.id) != existing)
    {
        errs.push(user_error(
            &["input", "handle"],
            format!("Handle '{h}' already in use. Please provide a new handle."),
            Some("HANDLE_NOT_UNIQUE"),
        ));
    }
    // Option names declared, and each variant's option values must use them.
    let declared: Vec<String> = match (&options, existing) {
        (Some(o), _) => o
            .iter()
            .filter_map(|x| s(x, "name").map(str::to_string))
            .collect(),
        (None, Some(pid)) => st.products[&pid]
            .options
            .iter()
            .map(|o| o.name.clone())
            .collect(),
        (None, None) => vec![],
    };
    let mut seen_combos = std::collections::HashSet::new();
    for (i, v) in variants_in.iter().flatten().enumerate() {
        let idx = i.to_string();
        for ov in v
            .get("optionValues")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(on) = s(ov, "optionName")
                && !declared.iter().any(|d| d == on)
            {
                errs.push(user_error(
                    &["input", "variants", &idx, "optionValues"],
                    format!("Option '{on}' does not exist"),
                    Some("OPTION_DOES_NOT_EXIST"),
                ));
            }
        }
        // 2026-10: `barcodes` replaces the deprecated `barcode`; one input may not carry both [SD]
        // https://shopify.dev/changelog/product-variant-barcode-is-being-replaced-by-barcodes
        if v.get("barcode").is_some() && v.get("barcodes").is_some() {
            errs.push(user_error(
                &["input", "variants", &idx, "barcodes"],
                "barcode and barcodes cannot be used together; use barcodes",
                Some("INCOMPATIBLE_BARCODE_FIELDS"),
            ));
        }
        for k in ["price", "compareAtPrice"] {
            if let Some(p) = s(v, k)
                && money(p).is_none()
            {
                errs.push(user_error(
                    &["input", "variants", &idx, k],
                    format!("{k} is invalid"),
                    Some("INVALID_VARIANT"),
                ));
            }
        }
        let combo = v
            .get("optionValues")
            .map(|x| x.to_string())
            .unwrap_or_default();
        if !seen_combos.insert(combo) {
            errs.push(user_error(
                &["input", "variants", &idx],
                "The variant already exists with these option values",
                Some("DUPLICATED_VALUE"),
            ));
        }
    }
    let old_variant_ids: Vec<u64> = existing
        .map(|p| st.products[&p].variant_ids.clone())
        .unwrap_or_default();
    let new_count = variants_in
        .iter()
        .flatten()
        .filter(|v| {
            s(v, "id")
                .and_then(|i| parse_gid_of(i, "ProductVariant"))
                .is_none_or(|i| !old_variant_ids.contains(&i))
        })
        .count();
    if errs.is_empty() && new_count > 0 && !variant_throttle_ok(st, new_count, cx.now_secs) {
        errs.push(user_error(
            &["input", "variants"],
            THROTTLE_MSG,
            Some("GENERIC_ERROR"),
        ));
    }
    if !errs.is_empty() {
        return payload(None, errs);
    }

    let now = cx.now;
    let pid = match existing {
        Some(p) => p,
        None => {
            let id = st.next_id();
            let t = title.clone().unwrap_or_default();
            let handle = s(&input, "handle")
                .map(str::to_string)
                .unwrap_or_else(|| unique_handle(st, &handleize(&t)));
            st.products.insert(
                id,
                Product {
                    id,
                    title: t,
                    handle,
                    description_html: String::new(),
                    vendor: String::new(),
                    product_type: String::new(),
                    tags: vec![],
                    status: "ACTIVE".into(),
                    category: None,
                    options: vec![],
                    variant_ids: vec![],
                    media: vec![],
                    publications: Default::default(),
                    collections: Default::default(),
                    created_at: now,
                    updated_at: now,
                },
            );
            id
        }
    };
    // Scalars: patch.
    {
        let p = st
            .products
            .get_mut(&pid)
            .ok_or_else(|| err("product vanished"))?;
        if let Some(t) = title {
            p.title = t;
        }
        if let Some(h) = s(&input, "handle") {
            p.handle = h.to_string();
        }
        for (k, slot) in [
            ("descriptionHtml", &mut p.description_html),
            ("vendor", &mut p.vendor),
            ("productType", &mut p.product_type),
        ] {
            if let Some(x) = s(&input, k) {
                *slot = x.to_string();
            }
        }
        if let Some(x) = s(&input, "status") {
            p.status = x.to_string();
        }
        if let Some(t) = input.get("tags").and_then(Value::as_array) {
            p.tags = t
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
        }
        if let Some(c) = category {
            p.category = c;
        }
        p.updated_at = now;
    }
    // Options: replaced when given.
    if let Some(opts) = &options {
        let mut new_opts = Vec::new();
        for (i, o) in opts.iter().enumerate() {
            let oid = st.next_id();
            let mut values = Vec::new();
            for v in o
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(n) = s(v, "name") {
                    values.push((st.next_id(), n.to_string()));
                }
            }
            new_opts.push(ProductOption {
                id: oid,
                name: s(o, "name").unwrap_or("").to_string(),
                position: o
                    .get("position")
                    .and_then(Value::as_u64)
                    .unwrap_or(i as u64 + 1) as u32,
                values,
            });
        }
        if let Some(p) = st.products.get_mut(&pid) {
            p.options = new_opts;
        }
    }
    // Variants: the list replaces the product's variants; entries with an id update that variant.
    if let Some(vs) = &variants_in {
        let mut keep = Vec::new();
        for (i, v) in vs.iter().enumerate() {
            let vid = s(v, "id")
                .and_then(|x| parse_gid_of(x, "ProductVariant"))
                .filter(|x| old_variant_ids.contains(x));
            let vid = match vid {
                Some(x) => x,
                None => {
                    st.variant_creations.push(cx.now_secs);
                    new_variant(st, pid, now)
                }
            };
            apply_variant_input(st, vid, v, now);
            if let Some(var) = st.variants.get_mut(&vid) {
                var.position = v
                    .get("position")
                    .and_then(Value::as_u64)
                    .unwrap_or(i as u64 + 1) as u32;
                if let Some(ovs) = v.get("optionValues").and_then(Value::as_array) {
                    var.selected_options = ovs
                        .iter()
                        .map(|ov| {
                            (
                                s(ov, "optionName").unwrap_or("").to_string(),
                                s(ov, "name").unwrap_or("").to_string(),
                            )
                        })
                        .collect();
                }
            }
            for q in v
                .get("inventoryQuantities")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                set_level_from(
                    st,
                    vid,
                    s(q, "locationId"),
                    s(q, "name").unwrap_or("available"),
                    q.get("quantity").and_then(Value::as_i64),
                );
            }
            keep.push(vid);
        }
        for old in old_variant_ids.iter().filter(|o| !keep.contains(o)) {
            delete_variant(st, *old);
        }
        if let Some(p) = st.products.get_mut(&pid) {
            p.variant_ids = keep;
        }
        // Options with no declared values get them from the variants.
        let sel: Vec<Vec<(String, String)>> = st.products[&pid]
            .variant_ids
            .iter()
            .filter_map(|v| st.variants.get(v))
            .map(|v| v.selected_options.clone())
            .collect();
        let mut extra = Vec::new();
        for opts in &sel {
            for (on, val) in opts {
                let known = st.products[&pid]
                    .options
                    .iter()
                    .any(|o| &o.name == on && o.values.iter().any(|(_, n)| n == val));
                if !known && !extra.contains(&(on.clone(), val.clone())) {
                    extra.push((on.clone(), val.clone()));
                }
            }
        }
        for (on, val) in extra {
            let id = st.next_id();
            if let Some(p) = st.products.get_mut(&pid)
                && let Some(o) = p.options.iter_mut().find(|o| o.name == on)
            {
                o.values.push((id, val));
            }
        }
    } else if existing.is_none() {
        // A product always has at least its standalone default variant.
        let vid = new_variant(st, pid, now);
        if let Some(p) = st.products.get_mut(&pid) {
            p.variant_ids = vec![vid];
        }
    }
    // Metafields, files and collections: replaced when given.
    let owner = gid("Product", pid);
    if let Some(mfs) = input.get("metafields").and_then(Value::as_array) {
        st.metafields.retain(|_, m| m.owner != owner);
        for m in mfs {
            upsert_metafield(
                st,
                &owner,
                s(m, "namespace").unwrap_or("custom"),
                s(m, "key").unwrap_or(""),
                s(m, "type").unwrap_or("single_line_text_field"),
                s(m, "value").unwrap_or(""),
                now,
            );
        }
    }
    if let Some(files) = input.get("files").and_then(Value::as_array) {
        let mut media = Vec::new();
        for f in files {
            media.push(Media {
                id: st.next_id(),
                alt: s(f, "alt").unwrap_or("").into(),
                url: s(f, "originalSource").unwrap_or("").into(),
            });
        }
        if let Some(p) = st.products.get_mut(&pid) {
            p.media = media;
        }
    }
    if let Some(cols) = input.get("collections").and_then(Value::as_array) {
        let ids: Vec<u64> = cols
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|c| parse_gid_of(c, "Collection"))
            .collect();
        for c in st.collections.values_mut() {
            if ids.contains(&c.id) {
                c.product_ids.insert(pid);
            } else {
                c.product_ids.remove(&pid);
            }
        }
        if let Some(p) = st.products.get_mut(&pid) {
            p.collections = ids.into_iter().collect();
        }
    }
    let topic = if existing.is_some() {
        "products/update"
    } else {
        "products/create"
    };
    let body = st.product_webhook_payload(pid);
    st.push_event(topic, body);
    payload(Some(pid), vec![])
}

pub(super) fn unique_handle(st: &Store, base: &str) -> String {
    let base = if base.is_empty() { "product" } else { base };
    let mut h = base.to_string();
    let mut n = 1;
    while st.products.values().any(|p| p.handle == h) {
        h = format!("{base}-{n}");
        n += 1;
    }
    h
}

pub fn new_variant(st: &mut Store, pid: u64, now: chrono::DateTime<chrono::Utc>) -> u64 {
    let vid = st.next_id();
    let iid = st.next_id();
    st.variants.insert(
        vid,
        Variant {
            id: vid,
            product_id: pid,
            sku: String::new(),
            barcode: None,
            price: "0.0".into(),
            compare_at_price: None,
            position: 1,
            inventory_policy: "DENY".into(),
            taxable: true,
            selected_options: vec![],
            inventory_item_id: iid,
            created_at: now,
            updated_at: now,
        },
    );
    st.inventory_items.insert(
        iid,
        InventoryItem {
            id: iid,
            variant_id: vid,
            sku: String::new(),
            tracked: true,
            cost: None,
            requires_shipping: true,
            country_of_origin: None,
            hs_code: None,
            weight: None,
            created_at: now,
            updated_at: now,
        },
    );
    // Stocked at the primary location, as Shopify does for a new variant.
    if let Some(loc) = st.primary_location() {
        st.levels.insert(
            (iid, loc),
            [("available".to_string(), 0i64)].into_iter().collect(),
        );
    }
    vid
}

pub(super) fn delete_variant(st: &mut Store, vid: u64) {
    if let Some(v) = st.variants.remove(&vid) {
        st.inventory_items.remove(&v.inventory_item_id);
        st.levels.retain(|(i, _), _| *i != v.inventory_item_id);
        let owner = gid("ProductVariant", vid);
        st.metafields.retain(|_, m| m.owner != owner);
    }
}

/// Applies the fields shared by ProductVariantSetInput and ProductVariantsBulkInput.
pub(super) fn apply_variant_input(
    st: &mut Store,
    vid: u64,
    v: &Value,
    now: chrono::DateTime<chrono::Utc>,
) {
    let Some(var) = st.variants.get_mut(&vid) else {
        return;
    };
    if let Some(x) = s(v, "sku") {
        var.sku = x.to_string();
    }
    match v.get("barcode") {
        Some(Value::String(b)) => var.barcode = Some(b.clone()),
        Some(Value::Null) => var.barcode = None,
        _ => {}
    }
    // `barcodes` replaces the set; the simulator keeps one barcode (the first), which `barcode` reads.
    match v.get("barcodes") {
        Some(Value::Array(list)) => {
            var.barcode = list.first().and_then(|b| s(b, "value")).map(str::to_string)
        }
        Some(Value::Null) => var.barcode = None,
        _ => {}
    }
    if let Some(p) = s(v, "price").and_then(money) {
        var.price = p;
    }
    // compareAtPrice: null clears it, absent leaves it.
    match v.get("compareAtPrice") {
        Some(Value::String(c)) => var.compare_at_price = money(c),
        Some(Value::Null) => var.compare_at_price = None,
        _ => {}
    }
    if let Some(x) = s(v, "inventoryPolicy") {
        var.inventory_policy = x.to_string();
    }
    if let Some(x) = v.get("taxable").and_then(Value::as_bool) {
        var.taxable = x;
    }
    var.updated_at = now;
    let iid = var.inventory_item_id;
    let sku = var.sku.clone();
    let mut item_sku = None;
    if let Some(it) = st.inventory_items.get_mut(&iid) {
        it.sku = sku;
        if let Some(ii) = v.get("inventoryItem") {
            apply_inventory_item_input(it, ii);
            // ProductVariantsBulkInput has no `sku`: the variant's SKU is its inventory item's.
            if s(ii, "sku").is_some() {
                item_sku = Some(it.sku.clone());
            }
        }
        it.updated_at = now;
    }
    if let (Some(sku), Some(var)) = (item_sku, st.variants.get_mut(&vid)) {
        var.sku = sku;
    }
    let owner = gid("ProductVariant", vid);
    for m in v
        .get("metafields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        upsert_metafield(
            st,
            &owner,
            s(m, "namespace").unwrap_or("custom"),
            s(m, "key").unwrap_or(""),
            s(m, "type").unwrap_or("single_line_text_field"),
            s(m, "value").unwrap_or(""),
            now,
        );
    }
}

pub(super) fn apply_inventory_item_input(it: &mut InventoryItem, ii: &Value) {
    match ii.get("cost") {
        Some(Value::String(c)) => it.cost = money(c),
        Some(Value::Number(n)) => it.cost = money(&n.to_string()),
        Some(Value::Null) => it.cost = None,
        _ => {}
    }
    if let Some(x) = s(ii, "sku") {
        it.sku = x.to_string();
    }
    if let Some(x) = ii.get("tracked").and_then(Value::as_bool) {
        it.tracked = x;
    }
    if let Some(x) = ii.get("requiresShipping").and_then(Value::as_bool) {
        it.requires_shipping = x;
    }
    if let Some(x) = s(ii, "countryCodeOfOrigin") {
        it.country_of_origin = Some(x.to_string());
    }
    if let Some(x) = s(ii, "harmonizedSystemCode") {
        it.hs_code = Some(x.to_string());
    }
    if let Some(w) = ii.get("measurement").and_then(|m| m.get("weight")) {
        let value = w.get("value").and_then(Value::as_f64).unwrap_or(0.0);
        it.weight = Some((value, s(w, "unit").unwrap_or("KILOGRAMS").to_string()));
    }
}

pub(super) fn set_level_from(
    st: &mut Store,
    vid: u64,
    loc: Option<&str>,
    name: &str,
    qty: Option<i64>,
) {
    let (Some(loc), Some(q)) = (loc.and_then(|l| parse_gid_of(l, "Location")), qty) else {
        return;
    };
    if !st.locations.contains_key(&loc) {
        return;
    }
    let Some(iid) = st.variants.get(&vid).map(|v| v.inventory_item_id) else {
        return;
    };
    let level = st.levels.entry((iid, loc)).or_default();
    let name = if name == "on_hand" { "available" } else { name };
    level.insert(name.to_string(), q);
}

pub(super) fn variants_payload(
    ty: &'static str,
    pid: Option<u64>,
    vids: Option<Vec<u64>>,
    errs: Vec<Value>,
) -> R {
    Ok(rec(
        ty,
        vec![
            ("product", pid.map_or(V::Null, |p| V::Obj(K::Product(p)))),
            (
                "productVariants",
                vids.map_or(V::Null, |v| {
                    V::List(v.into_iter().map(|i| V::Obj(K::Variant(i))).collect())
                }),
            ),
            ("userErrors", user_errors(errs)),
        ],
    ))
}

pub(super) fn variants_bulk_update(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "ProductVariantsBulkUpdatePayload";
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    let Some(pid) = arg_str(args, "productId")
        .and_then(|p| parse_gid_of(p, "Product"))
        .filter(|p| st.products.contains_key(p))
    else {
        return variants_payload(
            TY,
            None,
            None,
            vec![user_error(
                &["productId"],
                "Product does not exist",
                Some("PRODUCT_DOES_NOT_EXIST"),
            )],
        );
    };
    let partial = args
        .get("allowPartialUpdates")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let inputs = args
        .get("variants")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut errs = Vec::new();
    let mut ok = Vec::new();
    for (i, v) in inputs.iter().enumerate() {
        let idx = i.to_string();
        let vid = s(v, "id").and_then(|x| parse_gid_of(x, "ProductVariant"));
        match vid.and_then(|x| st.variants.get(&x)) {
            None => errs.push(user_error(
                &["variants", &idx, "id"],
                "Product variant does not exist",
                Some("PRODUCT_VARIANT_DOES_NOT_EXIST"),
            )),
            Some(var) if var.product_id != pid => errs.push(user_error(
                &["variants", &idx, "id"],
                "Product variant is not for this product",
                Some("MUST_BE_FOR_THIS_PRODUCT"),
            )),
            Some(var) => {
                let bad_price = ["price", "compareAtPrice"]
                    .iter()
                    .any(|k| s(v, k).is_some_and(|p| money(p).is_none()));
                let negative = s(v, "price")
                    .and_then(money)
                    .is_some_and(|p| p.starts_with('-'));
                if bad_price {
                    errs.push(user_error(
                        &["variants", &idx, "price"],
                        "Price is invalid",
                        Some("INVALID_INPUT"),
                    ));
                } else if negative {
                    errs.push(user_error(
                        &["variants", &idx, "price"],
                        "Price must be greater than or equal to 0",
                        Some("NEGATIVE_PRICE_VALUE"),
                    ));
                } else {
                    ok.push((var.id, v.clone()));
                }
            }
        }
    }
    if !errs.is_empty() && !partial {
        return variants_payload(TY, Some(pid), None, errs);
    }
    let ids: Vec<u64> = ok.iter().map(|(i, _)| *i).collect();
    for (vid, v) in ok {
        apply_variant_input(st, vid, &v, cx.now);
    }
    if let Some(p) = st.products.get_mut(&pid) {
        p.updated_at = cx.now;
    }
    let body = st.product_webhook_payload(pid);
    st.push_event("products/update", body);
    variants_payload(TY, Some(pid), Some(ids), errs)
}

pub(super) fn variants_bulk_create(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "ProductVariantsBulkCreatePayload";
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    let Some(pid) = arg_str(args, "productId")
        .and_then(|p| parse_gid_of(p, "Product"))
        .filter(|p| st.products.contains_key(p))
    else {
        return variants_payload(
            TY,
            None,
            None,
            vec![user_error(
                &["productId"],
                "Product does not exist",
                Some("PRODUCT_DOES_NOT_EXIST"),
            )],
        );
    };
    let inputs = args
        .get("variants")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let strategy = arg_str(args, "strategy").unwrap_or("DEFAULT");
    let mut errs = Vec::new();
    let existing_combos: Vec<Vec<(String, String)>> = st.products[&pid]
        .variant_ids
        .iter()
        .filter_map(|v| st.variants.get(v))
        .map(|v| v.selected_options.clone())
        .collect();
    if st.products[&pid].variant_ids.len() + inputs.len() > 2048 {
        errs.push(user_error(
            &["variants"],
            "You can only have a maximum of 2048 variants per product",
            Some("INVALID_INPUT"),
        ));
    }
    for (i, v) in inputs.iter().enumerate() {
        let combo: Vec<(String, String)> = v
            .get("optionValues")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|ov| {
                (
                    s(ov, "optionName").unwrap_or("").to_string(),
                    s(ov, "name").unwrap_or("").to_string(),
                )
            })
            .collect();
        if combo.is_empty() {
            errs.push(user_error(
                &["variants", &i.to_string(), "optionValues"],
                "Option values are required",
                Some("NEED_TO_ADD_OPTION_VALUES"),
            ));
        } else if existing_combos.contains(&combo) {
            errs.push(user_error(
                &["variants", &i.to_string()],
                format!(
                    "The variant '{}' already exists.",
                    combo
                        .iter()
                        .map(|c| c.1.as_str())
                        .collect::<Vec<_>>()
                        .join(" / ")
                ),
                Some("VARIANT_ALREADY_EXISTS"),
            ));
        }
        if s(v, "price").is_some_and(|p| money(p).is_none_or(|m| m.starts_with('-'))) {
            errs.push(user_error(
                &["variants", &i.to_string(), "price"],
                "Price must be greater than or equal to 0",
                Some("NEGATIVE_PRICE_VALUE"),
            ));
        }
    }
    if errs.is_empty() && !variant_throttle_ok(st, inputs.len(), cx.now_secs) {
        errs.push(user_error(
            &["variants"],
            THROTTLE_MSG,
            Some("INVALID_INPUT"),
        ));
    }
    if !errs.is_empty() {
        return variants_payload(TY, Some(pid), None, errs);
    }
    let standalone = {
        let p = &st.products[&pid];
        (p.variant_ids.len() == 1 && p.options.is_empty()).then(|| p.variant_ids[0])
    };
    let mut created = Vec::new();
    for v in &inputs {
        st.variant_creations.push(cx.now_secs);
        let vid = new_variant(st, pid, cx.now);
        apply_variant_input(st, vid, v, cx.now);
        let combo: Vec<(String, String)> = v
            .get("optionValues")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|ov| {
                (
                    s(ov, "optionName").unwrap_or("").to_string(),
                    s(ov, "name").unwrap_or("").to_string(),
                )
            })
            .collect();
        for (on, val) in &combo {
            let (oid, vvid) = (st.next_id(), st.next_id());
            if let Some(p) = st.products.get_mut(&pid) {
                match p.options.iter_mut().find(|o| &o.name == on) {
                    Some(o) => {
                        if !o.values.iter().any(|(_, n)| n == val) {
                            o.values.push((vvid, val.clone()));
                        }
                    }
                    None => {
                        let pos = p.options.len() as u32 + 1;
                        p.options.push(ProductOption {
                            id: oid,
                            name: on.clone(),
                            position: pos,
                            values: vec![(vvid, val.clone())],
                        })
                    }
                }
            }
        }
        for q in v
            .get("inventoryQuantities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            set_level_from(
                st,
                vid,
                s(q, "locationId"),
                "available",
                q.get("availableQuantity").and_then(Value::as_i64),
            );
        }
        if let Some(var) = st.variants.get_mut(&vid) {
            var.selected_options = combo;
        }
        created.push(vid);
        if let Some(p) = st.products.get_mut(&pid) {
            p.variant_ids.push(vid);
        }
    }
    if strategy == "REMOVE_STANDALONE_VARIANT"
        && let Some(sv) = standalone
    {
        delete_variant(st, sv);
        if let Some(p) = st.products.get_mut(&pid) {
            p.variant_ids.retain(|v| *v != sv);
        }
    }
    for (pos, vid) in (1..).zip(st.products[&pid].variant_ids.clone()) {
        if let Some(v) = st.variants.get_mut(&vid) {
            v.position = pos;
        }
    }
    let body = st.product_webhook_payload(pid);
    st.push_event("products/update", body);
    variants_payload(TY, Some(pid), Some(created), vec![])
}

pub(super) fn product_delete(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    const TY: &str = "ProductDeletePayload";
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    let id = args
        .get("input")
        .and_then(|i| s(i, "id"))
        .and_then(|x| parse_gid_of(x, "Product"));
    let Some(p) = id.and_then(|i| st.products.remove(&i)) else {
        return Ok(rec(
            TY,
            vec![
                ("deletedProductId", V::Null),
                ("shop", V::Obj(K::Shop)),
                (
                    "userErrors",
                    user_errors(vec![user_error(&["id"], "Product does not exist", None)]),
                ),
            ],
        ));
    };
    for v in &p.variant_ids {
        delete_variant(st, *v);
    }
    let owner = gid("Product", p.id);
    st.metafields.retain(|_, m| m.owner != owner);
    for c in st.collections.values_mut() {
        c.product_ids.remove(&p.id);
    }
    st.push_event("products/delete", json!({"id": p.id}));
    Ok(rec(
        TY,
        vec![
            ("deletedProductId", V::s(owner)),
            ("productDeleteOperation", V::Null),
            ("shop", V::Obj(K::Shop)),
            ("userErrors", user_errors(vec![])),
        ],
    ))
}
