//! Catalog writes: product upsert (`productSet`, one product per call), inventory item cost (`inventoryItemUpdate`,
//! one item per call), metafields (`metafieldsSet`, 25 per call), publishing (`publishablePublish`, one product per
//! call with all its publications) and smart collections (`collectionCreate`). Above a size threshold, product
//! upserts and metafields go as one bulk mutation instead ([`crate::bulk_mutation`]).
//!
//! A redelivered command, or a call sent again after a lost answer, never applies a write twice: these writes set
//! absolute values (`productSet` upserts by id or handle, costs, metafields, publications), and a smart collection is
//! looked up by handle before it is created (Shopify has no idempotency key for them; `@idempotent` is for inventory
//! mutations only). Known gap: a `collectionCreate` whose answer is lost and that the executor sends again can create a
//! second collection. Input Shopify is known to refuse is checked before any call: a bad item becomes a
//! problem naming it (`<list>.<index>...`) and is not sent, the others are. Shopify's userErrors are renamed the same
//! way, so every problem says which input item it is about.

use futures::{StreamExt, stream};
use serde_json::{Value, json};
use shopbridge_proto::gateway as pb;
use sqlx::PgPool;

use crate::{
    budget::Lane,
    bulk_mutation::{Stopped, line_payload, run_bulk_mutation},
    documents,
    executor::{CallError, Executor, Operation, ShopCredentials},
    ops::Outcome,
};

/// Shopify's cap on metafields per `metafieldsSet`.
pub const METAFIELDS_BATCH: usize = 25;
/// Shopify's variant limit per product (since 2025-10-15, for every shop).
pub const MAX_VARIANTS: usize = 2048;
/// Shopify's option limit per product.
pub const MAX_OPTIONS: usize = 3;
/// Items above which UpsertProducts and SetMetafields go as one bulk mutation by default (the configuration's
/// `service.catalog.bulk_mutation_threshold`, held by the command handler's settings).
pub const DEFAULT_BULK_MUTATION_THRESHOLD: usize = 500;
/// The largest JSONL of variables sent as one bulk mutation by default (`service.catalog.bulk_upload_max_bytes`):
/// Shopify takes uploads up to 100 MB; larger ones are split into bulk mutations run in turn.
pub const DEFAULT_BULK_UPLOAD_MAX_BYTES: usize = 99_000_000;
/// Calls of one command in flight at once; the budget decides the real pace.
const CALL_CONCURRENCY: usize = 8;
/// Shopify's documented base cost of a mutation.
const MUTATION_COST: f64 = 10.0;

/// The `[service.catalog]` section.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSettings {
    pub bulk_mutation_threshold: usize,
    pub bulk_upload_max_bytes: usize,
}

/// What one catalog-write command needs: the executor (budget), and for bulk mutations the gateway's database (the
/// operation is recorded there) and the client for Shopify's storage (uploads and result files).
pub struct Writer<'a> {
    pub executor: &'a Executor,
    pub pool: &'a PgPool,
    pub download: &'a reqwest::Client,
    pub shop: &'a ShopCredentials,
    pub lane: Lane,
    pub command_id: &'a str,
    /// Items above which product upserts and metafield writes go as one bulk mutation.
    pub bulk_mutation_threshold: usize,
    /// The largest JSONL of variables one bulk mutation is sent with; more is split into several.
    pub bulk_upload_max_bytes: usize,
}

// ------------------------------------------------------------------------------------------------------------------
// Problems

/// A problem with input item `index` of `list`, found before sending it.
pub(crate) fn invalid(
    list: &str,
    index: usize,
    field: &[&str],
    code: &str,
    message: String,
) -> Value {
    let mut path = vec![json!(list), json!(index.to_string())];
    path.extend(field.iter().map(|f| json!(f)));
    json!({"code": code, "field": path, "message": message})
}

/// Shopify's userError about input item `index` of `list`: its field is put under the item (`skip` leading parts of
/// Shopify's path, such as `input`, are dropped).
fn renamed(list: &str, index: usize, error: &Value, skip: usize) -> Value {
    let mut path = vec![json!(list), json!(index.to_string())];
    path.extend(
        error["field"]
            .as_array()
            .into_iter()
            .flatten()
            .skip(skip)
            .cloned(),
    );
    json!({"code": error["code"], "field": path, "message": error["message"]})
}

/// Is `s` a plain decimal number ("12", "12.50", "-3.1")? Money is passed to Shopify as this string, never a float.
fn decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

fn checked_money(
    errors: &mut Vec<Value>,
    (list, index): (&str, usize),
    field: &[&str],
    money: &shopbridge_proto::common::Money,
) -> String {
    let amount = money.amount.trim();
    if !decimal(amount) || amount.starts_with('-') {
        errors.push(invalid(
            list,
            index,
            field,
            "INVALID",
            format!("{amount:?} is not an amount (a non-negative decimal such as \"12.50\")"),
        ));
    }
    amount.to_string()
}

/// Shopify's metafield rules: namespace 3..255 characters, key 2..64 of letters, digits, `-` and `_`.
fn check_metafield(
    errors: &mut Vec<Value>,
    (list, index): (&str, usize),
    prefix: &[&str],
    m: &pb::MetafieldValue,
) {
    let at = |f: &'static str| {
        let mut path = prefix.to_vec();
        path.push(f);
        path
    };
    let name_ok = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let ns = m.namespace.chars().count();
    if !(3..=255).contains(&ns) {
        errors.push(invalid(
            list,
            index,
            &at("namespace"),
            if ns < 3 { "TOO_SHORT" } else { "TOO_LONG" },
            format!(
                "metafield namespace {:?} must have 3 to 255 characters",
                m.namespace
            ),
        ));
    }
    let key = m.key.chars().count();
    if !(2..=64).contains(&key) {
        errors.push(invalid(
            list,
            index,
            &at("key"),
            if key < 2 { "TOO_SHORT" } else { "TOO_LONG" },
            format!("metafield key {:?} must have 2 to 64 characters", m.key),
        ));
    } else if !name_ok(&m.key) {
        errors.push(invalid(
            list,
            index,
            &at("key"),
            "INVALID",
            format!(
                "metafield key {:?} may hold only letters, digits, '-' and '_'",
                m.key
            ),
        ));
    }
    if m.r#type.trim().is_empty() {
        errors.push(invalid(
            list,
            index,
            &at("type"),
            "BLANK",
            format!(
                "metafield {}.{} needs a type (e.g. single_line_text_field)",
                m.namespace, m.key
            ),
        ));
    }
}

fn metafield_json(m: &pb::MetafieldValue) -> Value {
    json!({"namespace": m.namespace, "key": m.key, "type": m.r#type, "value": m.value})
}

/// A proto enum's value as Shopify names it ("PRODUCT_STATUS_ACTIVE" -> "ACTIVE").
fn shopify_name<'a>(name: &'a str, prefix: &str) -> &'a str {
    name.strip_prefix(prefix).unwrap_or(name)
}

// ------------------------------------------------------------------------------------------------------------------
// Calls

/// Runs `operations` (tagged with the item they are for), at most [`CALL_CONCURRENCY`] at once, and returns their
/// results in input order.
async fn run_calls(
    w: &Writer<'_>,
    operations: Vec<(usize, Operation)>,
) -> Vec<(usize, Result<Value, CallError>)> {
    let mut results: Vec<(usize, usize, Result<Value, CallError>)> = stream::iter(
        operations.into_iter().enumerate(),
    )
    .map(|(n, (item, op))| async move { (n, item, w.executor.call(w.shop, w.lane, &op).await) })
    .buffer_unordered(CALL_CONCURRENCY)
    .collect()
    .await;
    results.sort_by_key(|(n, _, _)| *n);
    results
        .into_iter()
        .map(|(_, item, result)| (item, result))
        .collect()
}

pub(crate) fn user_errors(payload: &Value) -> Vec<Value> {
    payload["userErrors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Finishes an outcome: FAILED when items were asked for and none was written.
fn finish(mut outcome: Outcome, written: usize) -> Outcome {
    outcome.failed = written == 0;
    outcome
}

// ------------------------------------------------------------------------------------------------------------------
// Products

/// productSet's variables for one product (also one line of the bulk mutation), or the problems that keep it from
/// being sent.
fn product_set_variables(index: usize, p: &pb::ProductInput) -> Result<(Value, f64), Vec<Value>> {
    let list = ("products", index);
    let mut errors = Vec::new();
    let mut input = serde_json::Map::new();
    let identifier = match &p.identifier {
        Some(pb::product_input::Identifier::Id(id)) => {
            if !id.starts_with("gid://shopify/Product/") {
                errors.push(invalid(
                    "products",
                    index,
                    &["id"],
                    "INVALID",
                    format!("{id:?} is not a product id (gid://shopify/Product/<id>)"),
                ));
            }
            json!({ "id": id })
        }
        Some(pb::product_input::Identifier::Handle(handle)) => {
            if handle.trim().is_empty() || handle.chars().count() > 255 {
                errors.push(invalid(
                    "products",
                    index,
                    &["handle"],
                    "INVALID",
                    "a handle has 1 to 255 characters".to_string(),
                ));
            }
            input.insert("handle".into(), json!(handle));
            json!({ "handle": handle })
        }
        // A product is created by handle, never anonymously: productSet with a handle updates the product that has
        // it, so a command re-run after a crash (its first run's calls applied, its result not committed) finds the
        // product it created instead of creating a second one.
        None => {
            errors.push(invalid(
                "products",
                index,
                &["handle"],
                "MISSING_IDENTIFIER",
                "give the product's id, or a handle for a new one (a handle keeps a re-sent command from creating it twice)"
                    .to_string(),
            ));
            Value::Null
        }
    };
    if matches!(p.identifier, Some(pb::product_input::Identifier::Handle(_)))
        && p.title.trim().is_empty()
    {
        // Shopify creates a missing handle's product, and a product needs a title; for an existing one the title is
        // left as it is, so an empty title is only safe with an id.
        errors.push(invalid(
            "products",
            index,
            &["title"],
            "BLANK",
            "a product given by handle may be created and needs a title (give the id to update an existing one without it)"
                .to_string(),
        ));
    }
    if p.title.chars().count() > 255 {
        errors.push(invalid(
            "products",
            index,
            &["title"],
            "TOO_LONG",
            "a title has at most 255 characters".to_string(),
        ));
    }
    for (key, value) in [
        ("title", &p.title),
        ("descriptionHtml", &p.description_html),
        ("vendor", &p.vendor),
        ("productType", &p.product_type),
    ] {
        if !value.is_empty() {
            input.insert(key.into(), json!(value));
        }
    }
    if !p.tags.is_empty() {
        input.insert("tags".into(), json!(p.tags));
    }
    match pb::ProductStatus::try_from(p.status) {
        Ok(pb::ProductStatus::Unspecified) => {}
        Ok(status) => {
            input.insert(
                "status".into(),
                json!(shopify_name(status.as_str_name(), "PRODUCT_STATUS_")),
            );
        }
        Err(_) => errors.push(invalid(
            "products",
            index,
            &["status"],
            "INVALID",
            format!("unknown product status {}", p.status),
        )),
    }
    if p.options.len() > MAX_OPTIONS {
        errors.push(invalid(
            "products",
            index,
            &["options"],
            "TOO_MANY",
            format!(
                "{} options: Shopify allows at most {MAX_OPTIONS} per product",
                p.options.len()
            ),
        ));
    }
    if !p.options.is_empty() {
        let options: Vec<Value> = p
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| {
                json!({"name": o.name, "position": i + 1,
                "values": o.values.iter().map(|v| json!({"name": v})).collect::<Vec<_>>()})
            })
            .collect();
        input.insert("productOptions".into(), Value::Array(options));
    }
    if p.variants.len() > MAX_VARIANTS {
        errors.push(invalid(
            "products",
            index,
            &["variants"],
            "TOO_MANY",
            format!(
                "{} variants: Shopify allows at most {MAX_VARIANTS} per product",
                p.variants.len()
            ),
        ));
    }
    let mut variant_metafields = 0;
    if !p.variants.is_empty() {
        let mut variants = Vec::with_capacity(p.variants.len());
        for (i, v) in p.variants.iter().enumerate() {
            let n = i.to_string();
            let at = |f: &'static str| ["variants", n.as_str(), f];
            let mut variant = serde_json::Map::new();
            if !v.id.is_empty() {
                if !v.id.starts_with("gid://shopify/ProductVariant/") {
                    errors.push(invalid(
                        "products",
                        index,
                        &at("id"),
                        "INVALID",
                        format!(
                            "{:?} is not a variant id (gid://shopify/ProductVariant/<id>)",
                            v.id
                        ),
                    ));
                }
                variant.insert("id".into(), json!(v.id));
            }
            variant.insert(
                "optionValues".into(),
                Value::Array(
                    v.option_values
                        .iter()
                        .map(|o| json!({"optionName": o.option_name, "name": o.name}))
                        .collect(),
                ),
            );
            if !v.sku.is_empty() {
                variant.insert("sku".into(), json!(v.sku));
            }
            if !v.barcode.is_empty() {
                // Never both fields: Shopify refuses that (INCOMPATIBLE_BARCODE_FIELDS).
                match barcode_input(&v.barcode) {
                    Some(barcode) => variant.insert("barcodes".into(), json!([barcode])),
                    None => variant.insert("barcode".into(), json!(v.barcode)),
                };
            }
            if let Some(price) = &v.price {
                let amount = checked_money(&mut errors, list, &at("price"), price);
                variant.insert("price".into(), json!(amount));
            }
            if let Some(compare_at) = &v.compare_at_price {
                let amount = checked_money(&mut errors, list, &at("compare_at_price"), compare_at);
                variant.insert("compareAtPrice".into(), json!(amount));
            }
            let mut item = serde_json::Map::new();
            if let Some(cost) = &v.cost {
                let amount = checked_money(&mut errors, list, &at("cost"), cost);
                item.insert("cost".into(), json!(amount));
            }
            if let Some(weight) = &v.weight {
                // Shopify's WeightInput.value is a Float; the decimal string is checked, then passed as a number.
                let unit =
                    pb::WeightUnit::try_from(weight.unit).unwrap_or(pb::WeightUnit::Unspecified);
                match (weight.value.trim().parse::<serde_json::Number>(), unit) {
                    (Ok(value), unit)
                        if decimal(weight.value.trim()) && unit != pb::WeightUnit::Unspecified =>
                    {
                        item.insert("measurement".into(), json!({"weight": {
                            "value": value, "unit": shopify_name(unit.as_str_name(), "WEIGHT_UNIT_")}}));
                    }
                    _ => errors.push(invalid(
                        "products",
                        index,
                        &at("weight"),
                        "INVALID",
                        format!("weight {:?} needs a decimal value and a unit", weight.value),
                    )),
                }
            }
            if !item.is_empty() {
                variant.insert("inventoryItem".into(), Value::Object(item));
            }
            if !v.metafields.is_empty() {
                for m in &v.metafields {
                    check_metafield(&mut errors, list, &at("metafields"), m);
                }
                variant_metafields += v.metafields.len();
                variant.insert(
                    "metafields".into(),
                    Value::Array(v.metafields.iter().map(metafield_json).collect()),
                );
            }
            variants.push(Value::Object(variant));
        }
        input.insert("variants".into(), Value::Array(variants));
    }
    if !p.metafields.is_empty() {
        for m in &p.metafields {
            check_metafield(&mut errors, list, &["metafields"], m);
        }
        input.insert(
            "metafields".into(),
            Value::Array(p.metafields.iter().map(metafield_json).collect()),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Shopify's dynamic cost of productSet, plus the product and up to 250 variants selected in the payload.
    let cost = MUTATION_COST
        + 0.2 * p.variants.len() as f64
        + 0.4 * (variant_metafields + p.metafields.len()) as f64
        + 2.0
        + 250.0 * 2.0;
    Ok((json!({"identifier": identifier, "input": input}), cost))
}

/// The product productSet wrote, from its payload.
fn upserted(index: usize, payload: &Value) -> Option<pb::UpsertedProduct> {
    let product = &payload["product"];
    let id = product["id"].as_str()?;
    Some(pb::UpsertedProduct {
        index: index as u32,
        product_id: id.to_string(),
        handle: product["handle"].as_str().unwrap_or_default().to_string(),
        variants: product["variants"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| pb::UpsertedVariant {
                sku: v["sku"].as_str().unwrap_or_default().to_string(),
                variant_id: v["id"].as_str().unwrap_or_default().to_string(),
                inventory_item_id: v["inventoryItem"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            })
            .collect(),
    })
}

/// Creates or updates products: productSet one product per call, or one bulk mutation above the threshold.
pub async fn upsert_products(
    w: &Writer<'_>,
    upsert: &pb::UpsertProducts,
) -> (Option<pb::ProductsUpserted>, Outcome) {
    let mut outcome = Outcome::default();
    if upsert.products.is_empty() {
        outcome.user_errors.push(json!({"code": "INVALID_REQUEST", "field": ["products"], "message": "no product to upsert"}));
        return (None, finish(outcome, 0));
    }
    let mut lines = Vec::new();
    for (i, product) in upsert.products.iter().enumerate() {
        match product_set_variables(i, product) {
            Ok((variables, cost)) => lines.push((i, variables, cost)),
            Err(errors) => outcome.user_errors.extend(errors),
        }
    }
    let mut result = pb::ProductsUpserted::default();
    // Per sent item: its index and productSet's payload (None: the call failed).
    let payloads: Vec<(usize, Option<Value>)> = if lines.len() > w.bulk_mutation_threshold {
        let variables = lines.iter().map(|(_, v, _)| v.clone()).collect();
        match run_bulk_mutation(
            w,
            "products",
            documents::PRODUCT_SET,
            variables,
            &mut outcome,
        )
        .await
        {
            Ok(done) => {
                result.bulk_operation_id = done.id.clone();
                lines
                    .iter()
                    .enumerate()
                    .map(|(line, (i, _, _))| {
                        (
                            *i,
                            line_payload(
                                &done,
                                line,
                                "productSet",
                                &mut outcome,
                                "products",
                                &[*i],
                            ),
                        )
                    })
                    .collect()
            }
            Err(Stopped) => return (None, finish(outcome, 0)),
        }
    } else {
        let operations = lines
            .into_iter()
            .map(|(i, variables, cost)| {
                (
                    i,
                    Operation {
                        document: documents::PRODUCT_SET,
                        variables,
                        expected_cost: cost,
                    },
                )
            })
            .collect();
        absorb_calls(run_calls(w, operations).await, "productSet", &mut outcome)
    };
    for (i, payload) in payloads {
        let Some(payload) = payload else { continue };
        let errors = user_errors(&payload);
        if errors.is_empty() {
            if let Some(product) = upserted(i, &payload) {
                result.products.push(product);
            }
        } else {
            // productSet reports paths under `input`: they are put under the product instead.
            outcome.user_errors.extend(errors.iter().map(|e| {
                let skip = usize::from(e["field"][0] == "input");
                renamed("products", i, e, skip)
            }));
        }
    }
    let written = result.products.len();
    (Some(result), finish(outcome, written))
}

/// Call results -> (item, payload under `field`), failed calls recorded in `outcome`.
fn absorb_calls(
    results: Vec<(usize, Result<Value, CallError>)>,
    field: &str,
    outcome: &mut Outcome,
) -> Vec<(usize, Option<Value>)> {
    results
        .into_iter()
        .map(|(i, result)| {
            outcome.calls += 1;
            match result {
                Ok(mut data) => (i, Some(data[field].take())),
                Err(e) => {
                    outcome.failed_calls.push((i, e));
                    (i, None)
                }
            }
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------------------------
// Inventory item costs

/// Sets unit costs, one inventoryItemUpdate per item.
pub async fn set_inventory_item_costs(w: &Writer<'_>, set: &pb::SetInventoryItemCosts) -> Outcome {
    let mut outcome = Outcome::default();
    if set.costs.is_empty() {
        outcome.user_errors.push(
            json!({"code": "INVALID_REQUEST", "field": ["costs"], "message": "no cost to set"}),
        );
        return finish(outcome, 0);
    }
    let mut operations = Vec::new();
    for (i, c) in set.costs.iter().enumerate() {
        let mut errors = Vec::new();
        if !c
            .inventory_item_id
            .starts_with("gid://shopify/InventoryItem/")
        {
            errors.push(invalid(
                "costs",
                i,
                &["inventory_item_id"],
                "INVALID",
                format!(
                    "{:?} is not an inventory item id (gid://shopify/InventoryItem/<id>)",
                    c.inventory_item_id
                ),
            ));
        }
        let cost = match &c.cost {
            Some(cost) => checked_money(&mut errors, ("costs", i), &["cost"], cost),
            None => {
                errors.push(invalid(
                    "costs",
                    i,
                    &["cost"],
                    "BLANK",
                    "no cost given".to_string(),
                ));
                String::new()
            }
        };
        if !errors.is_empty() {
            outcome.user_errors.extend(errors);
            continue;
        }
        operations.push((
            i,
            Operation {
                document: documents::INVENTORY_ITEM_COST,
                variables: json!({"id": c.inventory_item_id, "input": {"cost": cost}}),
                expected_cost: MUTATION_COST,
            },
        ));
    }
    let written =
        run_one_per_item(w, operations, "inventoryItemUpdate", "costs", &mut outcome).await;
    finish(outcome, written)
}

/// Runs one call per input item (index, call) and counts the items Shopify applied; its userErrors are renamed to
/// `<list>.<index>...` so each names its item.
async fn run_one_per_item(
    w: &Writer<'_>,
    operations: Vec<(usize, Operation)>,
    payload_field: &str,
    list: &str,
    outcome: &mut Outcome,
) -> usize {
    let mut written = 0;
    for (i, payload) in absorb_calls(run_calls(w, operations).await, payload_field, outcome) {
        let Some(payload) = payload else { continue };
        let errors = user_errors(&payload);
        if errors.is_empty() {
            written += 1;
        }
        outcome
            .user_errors
            .extend(errors.iter().map(|e| renamed(list, i, e, 0)));
    }
    written
}

// ------------------------------------------------------------------------------------------------------------------
// Metafields

/// Sets metafields, 25 per metafieldsSet, or in one bulk mutation above the threshold. Shopify applies a call all or
/// nothing: when it refuses some metafields of a call (userErrors naming them), the others of that call are sent
/// again once, so only the refused ones fail.
pub async fn set_metafields(
    w: &Writer<'_>,
    set: &pb::SetMetafields,
) -> (Option<pb::MetafieldsSet>, Outcome) {
    let mut outcome = Outcome::default();
    if set.metafields.is_empty() {
        outcome.user_errors.push(json!({"code": "INVALID_REQUEST", "field": ["metafields"], "message": "no metafield to set"}));
        return (None, finish(outcome, 0));
    }
    // (input index, variables entry)
    let mut valid: Vec<(usize, Value)> = Vec::new();
    for (i, m) in set.metafields.iter().enumerate() {
        let mut errors = Vec::new();
        if !m.owner_id.starts_with("gid://shopify/") {
            errors.push(invalid(
                "metafields",
                i,
                &["owner_id"],
                "INVALID",
                format!(
                    "{:?} is not a Shopify id (gid://shopify/<Type>/<id>)",
                    m.owner_id
                ),
            ));
        }
        match &m.metafield {
            Some(value) => check_metafield(&mut errors, ("metafields", i), &[], value),
            None => errors.push(invalid(
                "metafields",
                i,
                &["metafield"],
                "BLANK",
                "no metafield given".to_string(),
            )),
        }
        if errors.is_empty() {
            let mut entry = metafield_json(m.metafield.as_ref().unwrap_or(&Default::default()));
            entry["ownerId"] = json!(m.owner_id);
            valid.push((i, entry));
        } else {
            outcome.user_errors.extend(errors);
        }
    }
    let batches: Vec<Vec<(usize, Value)>> =
        valid.chunks(METAFIELDS_BATCH).map(<[_]>::to_vec).collect();
    let batch_variables = |batch: &[(usize, Value)]| json!({"metafields": batch.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()});
    let mut result = pb::MetafieldsSet::default();
    // Per batch: its payload (None: the call failed).
    let payloads: Vec<(usize, Option<Value>)> = if valid.len() > w.bulk_mutation_threshold {
        let lines = batches.iter().map(|b| batch_variables(b)).collect();
        match run_bulk_mutation(
            w,
            "metafields",
            documents::METAFIELDS_SET,
            lines,
            &mut outcome,
        )
        .await
        {
            Ok(done) => {
                result.bulk_operation_id = done.id.clone();
                (0..batches.len())
                    .map(|b| {
                        (
                            b,
                            line_payload(
                                &done,
                                b,
                                "metafieldsSet",
                                &mut outcome,
                                "metafields",
                                &batches[b].iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                            ),
                        )
                    })
                    .collect()
            }
            Err(Stopped) => return (None, finish(outcome, 0)),
        }
    } else {
        let operations = batches
            .iter()
            .enumerate()
            .map(|(b, batch)| (b, metafields_call(batch_variables(batch), batch.len())))
            .collect();
        absorb_calls(
            run_calls(w, operations).await,
            "metafieldsSet",
            &mut outcome,
        )
    };
    // Batches Shopify refused in part: their other metafields, sent again.
    let mut resend: Vec<(usize, Vec<(usize, Value)>)> = Vec::new();
    for (b, payload) in payloads {
        let Some(payload) = payload else { continue };
        let batch = &batches[b];
        let errors = user_errors(&payload);
        if errors.is_empty() {
            record_set(&mut result, batch, &payload);
            continue;
        }
        if let Some(rest) = refused(batch, &errors, &mut outcome) {
            resend.push((b, rest));
        }
    }
    if !resend.is_empty() {
        let operations = resend
            .iter()
            .enumerate()
            .map(|(n, (_, rest))| (n, metafields_call(batch_variables(rest), rest.len())))
            .collect();
        for (n, payload) in absorb_calls(
            run_calls(w, operations).await,
            "metafieldsSet",
            &mut outcome,
        ) {
            let Some(payload) = payload else { continue };
            let rest = &resend[n].1;
            let errors = user_errors(&payload);
            if errors.is_empty() {
                record_set(&mut result, rest, &payload);
            } else {
                // Refused again: reported against the first of them (the call applied nothing).
                outcome.user_errors.extend(errors.iter().map(|e| {
                    let at = e["field"][1]
                        .as_str()
                        .and_then(|x| x.parse::<usize>().ok())
                        .and_then(|x| rest.get(x))
                        .map_or(rest[0].0, |entry| entry.0);
                    renamed("metafields", at, e, 2)
                }));
            }
        }
    }
    result.metafields.sort_by_key(|m| m.index);
    let written = result.metafields.len();
    (Some(result), finish(outcome, written))
}

/// Records the userErrors of a refused metafieldsSet call against the metafields they name, and returns the call's
/// other metafields, to be sent again (None when an error names no metafield, or none is left).
fn refused(
    batch: &[(usize, Value)],
    errors: &[Value],
    outcome: &mut Outcome,
) -> Option<Vec<(usize, Value)>> {
    // metafieldsSet names a refused entry by its position in the call: ["metafields", "<i>", ...].
    let mut refused = std::collections::BTreeSet::new();
    let mut whole_call = false;
    for e in errors {
        match e["field"][1]
            .as_str()
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n < batch.len())
        {
            Some(n) => {
                refused.insert(n);
                outcome
                    .user_errors
                    .push(renamed("metafields", batch[n].0, e, 2));
            }
            None => {
                whole_call = true;
                outcome
                    .user_errors
                    .push(renamed("metafields", batch[0].0, e, 1));
            }
        }
    }
    let rest: Vec<(usize, Value)> = batch
        .iter()
        .enumerate()
        .filter(|(n, _)| !refused.contains(n))
        .map(|(_, entry)| entry.clone())
        .collect();
    (!whole_call && !rest.is_empty()).then_some(rest)
}

fn metafields_call(variables: Value, entries: usize) -> Operation {
    Operation {
        document: documents::METAFIELDS_SET,
        variables,
        expected_cost: MUTATION_COST + 2.0 + entries as f64,
    }
}

/// The ids metafieldsSet returned, in the order sent, by input index.
fn record_set(result: &mut pb::MetafieldsSet, sent: &[(usize, Value)], payload: &Value) {
    for ((i, _), m) in sent
        .iter()
        .zip(payload["metafields"].as_array().into_iter().flatten())
    {
        result.metafields.push(pb::SetMetafield {
            index: *i as u32,
            id: m["id"].as_str().unwrap_or_default().to_string(),
        });
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Publishing

/// Publishes each product to every publication: one publishablePublish per product.
pub async fn publish_products(w: &Writer<'_>, publish: &pb::PublishProducts) -> Outcome {
    let mut outcome = Outcome::default();
    let publications: Vec<&str> = publish.publication_ids.iter().map(|p| p.trim()).collect();
    let bad_publication = publications
        .iter()
        .position(|p| !p.starts_with("gid://shopify/Publication/"));
    if publish.product_ids.is_empty() || publications.is_empty() || bad_publication.is_some() {
        let (field, message) = match bad_publication {
            Some(i) => (
                json!(["publication_ids", i.to_string()]),
                format!(
                    "{:?} is not a publication id (gid://shopify/Publication/<id>)",
                    publications[i]
                ),
            ),
            None => (
                json!(["product_ids"]),
                "name at least one product and one publication".to_string(),
            ),
        };
        outcome
            .user_errors
            .push(json!({"code": "INVALID_REQUEST", "field": field, "message": message}));
        return finish(outcome, 0);
    }
    let input: Vec<Value> = publications
        .iter()
        .map(|p| json!({"publicationId": p}))
        .collect();
    let mut operations = Vec::new();
    for (i, product) in publish.product_ids.iter().enumerate() {
        let product = product.trim();
        if !product.starts_with("gid://shopify/Product/") {
            outcome.user_errors.push(invalid(
                "product_ids",
                i,
                &[],
                "INVALID",
                format!("{product:?} is not a product id (gid://shopify/Product/<id>)"),
            ));
            continue;
        }
        operations.push((
            i,
            Operation {
                document: documents::PUBLISH,
                variables: json!({"id": product, "input": input}),
                expected_cost: MUTATION_COST,
            },
        ));
    }
    let written = run_one_per_item(
        w,
        operations,
        "publishablePublish",
        "product_ids",
        &mut outcome,
    )
    .await;
    finish(outcome, written)
}

// ------------------------------------------------------------------------------------------------------------------
// Smart collections

/// Creates a smart collection from its rules.
pub async fn create_smart_collection(
    w: &Writer<'_>,
    create: &pb::CreateSmartCollection,
) -> (Option<pb::CollectionCreated>, Outcome) {
    let mut outcome = Outcome::default();
    let mut problem = |field: Value, code: &str, message: String| {
        outcome
            .user_errors
            .push(json!({"code": code, "field": field, "message": message}));
    };
    if create.title.trim().is_empty() {
        problem(
            json!(["title"]),
            "BLANK",
            "a collection needs a title".into(),
        );
    }
    if create.title.chars().count() > 255 {
        problem(
            json!(["title"]),
            "TOO_LONG",
            "a title has at most 255 characters".into(),
        );
    }
    // A collection is created by handle, never anonymously: the handle is how a command re-run after a crash finds
    // the collection its first run created (below) instead of creating a second one.
    if create.handle.trim().is_empty() {
        problem(
            json!(["handle"]),
            "MISSING_IDENTIFIER",
            "give the collection a handle (it keeps a re-sent command from creating it twice)"
                .into(),
        );
    }
    if create.rules.is_empty() {
        problem(
            json!(["rules"]),
            "BLANK",
            "a smart collection needs at least one rule".into(),
        );
    }
    let mut rules = Vec::new();
    for (i, rule) in create.rules.iter().enumerate() {
        let column = pb::CollectionRuleColumn::try_from(rule.column).unwrap_or_default();
        let relation = pb::CollectionRuleRelation::try_from(rule.relation).unwrap_or_default();
        if column == pb::CollectionRuleColumn::Unspecified
            || relation == pb::CollectionRuleRelation::Unspecified
        {
            problem(
                json!(["rules", i.to_string()]),
                "INVALID",
                "a rule needs a column and a relation".into(),
            );
            continue;
        }
        rules.push(json!({
            "column": shopify_name(column.as_str_name(), "COLLECTION_RULE_COLUMN_"),
            "relation": shopify_name(relation.as_str_name(), "COLLECTION_RULE_RELATION_"),
            "condition": rule.condition,
        }));
    }
    if !outcome.user_errors.is_empty() {
        return (None, finish(outcome, 0));
    }
    let lookup = Operation {
        document: documents::COLLECTION_BY_HANDLE,
        variables: json!({ "handle": create.handle }),
        expected_cost: 1.0,
    };
    outcome.calls += 1;
    match w.executor.call(w.shop, w.lane, &lookup).await {
        Ok(found) => {
            if let Some(id) = found["collectionByIdentifier"]["id"].as_str() {
                tracing::info!(
                    collection = id,
                    "a collection with this handle exists: answered as created"
                );
                let existing = pb::CollectionCreated {
                    id: id.to_string(),
                    handle: create.handle.clone(),
                };
                return (Some(existing), finish(outcome, 1));
            }
        }
        Err(e) => {
            outcome.failed_calls.push((0, e));
            return (None, finish(outcome, 0));
        }
    }
    let mut input = json!({
        "title": create.title,
        "handle": create.handle,
        "ruleSet": {"appliedDisjunctively": create.applied_disjunctively, "rules": rules},
    });
    if !create.description_html.is_empty() {
        input["descriptionHtml"] = json!(create.description_html);
    }
    let op = Operation {
        document: documents::COLLECTION_CREATE,
        variables: json!({ "input": input }),
        expected_cost: MUTATION_COST,
    };
    let payload = absorb_calls(
        run_calls(w, vec![(0, op)]).await,
        "collectionCreate",
        &mut outcome,
    )
    .pop()
    .and_then(|(_, p)| p);
    let created = payload.as_ref().and_then(|p| {
        let id = p["collection"]["id"].as_str()?;
        Some(pb::CollectionCreated {
            id: id.to_string(),
            handle: p["collection"]["handle"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    });
    if let Some(p) = &payload {
        outcome.user_errors.extend(user_errors(p));
    }
    let written = usize::from(created.is_some());
    (created, finish(outcome, written))
}

/// A variant's barcode as 2026-10's `barcodes` entry (`{type, value}`; `barcode` is deprecated there:
/// https://shopify.dev/changelog/product-variant-barcode-is-being-replaced-by-barcodes). The type is inferred from the
/// code's form, which the changelog does not spell out [INF]: 8 or 13 digits EAN (13 starting 978/979: ISBN), 12
/// digits UPC, 14 digits GTIN, 10 characters of an ISBN-10, `B0` and 8 letters or digits ASIN. None when no type fits:
/// the caller then sends the deprecated `barcode`, still accepted in 2026-10, rather than guess.
pub(crate) fn barcode_input(code: &str) -> Option<Value> {
    let code = code.trim();
    if !code.is_ascii() {
        return None;
    }
    let digits = code.bytes().all(|b| b.is_ascii_digit());
    let kind = match code.len() {
        8 if digits => "EAN",
        12 if digits => "UPC",
        13 if digits && (code.starts_with("978") || code.starts_with("979")) => "ISBN",
        13 if digits => "EAN",
        14 if digits => "GTIN",
        10 if code.starts_with("B0") && code.bytes().all(|b| b.is_ascii_alphanumeric()) => "ASIN",
        10 if code[..9].bytes().all(|b| b.is_ascii_digit())
            && code[9..].bytes().all(|b| b.is_ascii_digit() || b == b'X') =>
        {
            "ISBN"
        }
        _ => return None,
    };
    Some(json!({ "type": kind, "value": code }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopbridge_proto::common::Money;

    fn money(amount: &str) -> Option<Money> {
        Some(Money {
            amount: amount.into(),
            currency_code: "USD".into(),
        })
    }

    #[test]
    fn decimals_are_plain_numbers() {
        for ok in ["0", "12", "12.50", "-3.1"] {
            assert!(decimal(ok), "{ok}");
        }
        for bad in ["", "1e3", "12.", ".5", "1,5", "abc", "NaN"] {
            assert!(!decimal(bad), "{bad}");
        }
    }

    #[test]
    fn a_product_becomes_product_set_variables_with_money_as_strings() {
        let product = pb::ProductInput {
            identifier: Some(pb::product_input::Identifier::Handle("tee".into())),
            title: "Tee".into(),
            status: pb::ProductStatus::Draft as i32,
            options: vec![pb::ProductOptionInput {
                name: "Size".into(),
                values: vec!["M".into()],
            }],
            variants: vec![pb::VariantInput {
                option_values: vec![pb::VariantOptionValue {
                    option_name: "Size".into(),
                    name: "M".into(),
                }],
                sku: "TEE-M".into(),
                price: money("19.90"),
                cost: money("4.10"),
                weight: Some(pb::Weight {
                    value: "0.25".into(),
                    unit: pb::WeightUnit::Kilograms as i32,
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let (vars, _) = product_set_variables(0, &product).unwrap();
        assert_eq!(vars["identifier"], json!({"handle": "tee"}));
        assert_eq!(vars["input"]["handle"], "tee");
        assert_eq!(vars["input"]["status"], "DRAFT");
        let variant = &vars["input"]["variants"][0];
        assert_eq!(variant["price"], "19.90");
        assert_eq!(variant["inventoryItem"]["cost"], "4.10");
        assert_eq!(
            variant["inventoryItem"]["measurement"]["weight"],
            json!({"value": 0.25, "unit": "KILOGRAMS"})
        );
        assert_eq!(vars["input"]["productOptions"][0]["values"][0]["name"], "M");
    }

    #[test]
    fn bad_products_are_named_and_not_sent() {
        let product = pb::ProductInput {
            variants: (0..2049).map(|_| pb::VariantInput::default()).collect(),
            metafields: vec![pb::MetafieldValue {
                namespace: "x".into(),
                key: "k".into(),
                r#type: String::new(),
                value: "v".into(),
            }],
            ..Default::default()
        };
        let errors = product_set_variables(4, &product).unwrap_err();
        let fields: Vec<String> = errors
            .iter()
            .map(|e| {
                e["field"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .collect();
        assert!(
            fields.contains(&"products.4.handle".to_string()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"products.4.variants".to_string()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"products.4.metafields.namespace".to_string()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"products.4.metafields.key".to_string()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"products.4.metafields.type".to_string()),
            "{fields:?}"
        );
        let price = pb::ProductInput {
            identifier: Some(pb::product_input::Identifier::Handle("t".into())),
            title: "T".into(),
            variants: vec![pb::VariantInput {
                price: money("12,50"),
                ..Default::default()
            }],
            ..Default::default()
        };
        let errors = product_set_variables(0, &price).unwrap_err();
        assert_eq!(
            errors[0]["field"],
            json!(["products", "0", "variants", "0", "price"])
        );
    }

    #[test]
    fn barcodes_are_typed_by_their_form_or_left_to_the_old_field() {
        let typed =
            |code: &str| barcode_input(code).map(|b| b["type"].as_str().unwrap().to_string());
        assert_eq!(typed("012345678905").as_deref(), Some("UPC"));
        assert_eq!(typed("4006381333931").as_deref(), Some("EAN"));
        assert_eq!(typed("96385074").as_deref(), Some("EAN"));
        assert_eq!(typed("9780306406157").as_deref(), Some("ISBN"));
        assert_eq!(typed("030640615X").as_deref(), Some("ISBN"));
        assert_eq!(typed("10012345678902").as_deref(), Some("GTIN"));
        assert_eq!(typed("B08N5WRWNW").as_deref(), Some("ASIN"));
        assert_eq!(typed("BAR-1"), None);
        assert_eq!(typed("ÄÖÜ1234567"), None);
        assert_eq!(
            barcode_input(" 012345678905 ").unwrap(),
            json!({"type": "UPC", "value": "012345678905"})
        );
    }
}
