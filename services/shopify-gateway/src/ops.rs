//! Gateway operations that take more than one call: each splits its work into Shopify-sized calls (250 quantities per
//! `inventorySetQuantities`, one product per `productVariantsBulkUpdate`), runs them through the executor (so the
//! budget paces them). A retried or re-delivered command never applies a call twice: inventory calls carry an
//! `@idempotent` key derived from the command id (see `idempotency`), price updates set absolute values.

use futures::{StreamExt, stream};
use serde_json::{Value, json};

use crate::{
    budget::Lane,
    documents,
    executor::{CallError, Executor, Operation, ShopCredentials},
    idempotency::{self, Verdict},
};

/// Shopify's cap on quantities per `inventorySetQuantities`.
pub const INVENTORY_BATCH: usize = 250;
/// Calls of one command in flight at once; the budget decides the real pace.
const CALL_CONCURRENCY: usize = 8;
/// Shopify's documented base cost of a mutation; payload objects are free, and Shopify's own figure replaces it.
const MUTATION_COST: f64 = 10.0;

/// One quantity to set, with the quantity we believe Shopify has (compare-and-swap: `changeFromQuantity`), if known.
#[derive(Debug, Clone)]
pub struct QuantitySet {
    pub inventory_item_id: String,
    pub location_id: String,
    pub quantity: i64,
    pub compare_quantity: Option<i64>,
}

/// A product's new variant prices (`compare_at_price` None clears it).
#[derive(Debug, Clone)]
pub struct ProductPrices {
    pub product_id: String,
    pub variants: Vec<VariantPrice>,
}

#[derive(Debug, Clone)]
pub struct VariantPrice {
    pub variant_id: String,
    pub price: String,
    pub compare_at_price: Option<String>,
}

/// What a multi-call operation achieved: per-item problems Shopify reported, and calls that failed outright.
#[derive(Debug, Default)]
pub struct Outcome {
    pub calls: usize,
    pub user_errors: Vec<Value>,
    pub failed_calls: Vec<(usize, CallError)>,
    /// An all-or-nothing operation applied nothing (its problems say why), even if no call failed.
    pub failed: bool,
    /// Work Shopify accepted for the command (a bulk mutation) could not be followed to its end, for a reason that
    /// passes: the command gets no result now and is delivered again, resuming where it was (on its last delivery
    /// it is answered instead).
    pub unfinished: Option<String>,
}

impl Outcome {
    fn absorb(&mut self, index: usize, result: Result<Value, CallError>, payload_field: &str) {
        self.calls += 1;
        match result {
            Ok(data) => {
                if let Some(errors) = data[payload_field]["userErrors"].as_array() {
                    self.user_errors.extend(errors.iter().cloned());
                }
            }
            Err(e) => self.failed_calls.push((index, e)),
        }
    }
}

async fn run_calls(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    operations: Vec<Operation>,
    payload_field: &str,
) -> Outcome {
    let results: Vec<(usize, Result<Value, CallError>)> =
        stream::iter(operations.into_iter().enumerate())
            .map(|(i, op)| async move { (i, executor.call(shop, lane, &op).await) })
            .buffer_unordered(CALL_CONCURRENCY)
            .collect()
            .await;
    collect(results, payload_field)
}

/// Sets quantities ("available") in batches of 250, compare-and-swap (`changeFromQuantity`) where the previous
/// quantity is known, explicit null where not. Each call carries its idempotency key (see `idempotency`), so a retry
/// after a lost answer, or a redelivered command, applies once. A `CHANGE_FROM_QUANTITY_STALE` user error is the
/// caller's to decide on (re-read, then set again or not): it is reported, never retried here.
pub async fn set_inventory(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    command_id: &str,
    quantities: &[QuantitySet],
) -> Outcome {
    let inputs: Vec<Value> = quantities
        .chunks(INVENTORY_BATCH)
        .map(|batch| {
            let quantities: Vec<Value> = batch
                .iter()
                .map(|q| {
                    json!({
                        "inventoryItemId": q.inventory_item_id,
                        "locationId": q.location_id,
                        "quantity": q.quantity,
                        "changeFromQuantity": q.compare_quantity,
                    })
                })
                .collect();
            json!({ "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": format!("gid://shopbridge/Command/{command_id}"),
                "quantities": quantities,
            }})
        })
        .collect();
    let results: Vec<(usize, Result<Value, CallError>)> =
        stream::iter(inputs.into_iter().enumerate())
            .map(|(i, variables)| async move {
                let call = IdempotentCall {
                    command_id,
                    what: "inventory",
                    index: i,
                };
                let result = idempotent_call(
                    executor,
                    shop,
                    lane,
                    documents::INVENTORY_SET,
                    variables,
                    call,
                    "inventorySetQuantities",
                )
                .await;
                (i, result)
            })
            .buffer_unordered(CALL_CONCURRENCY)
            .collect()
            .await;
    collect(results, "inventorySetQuantities")
}

/// Which call of which command an idempotent call is: its key is derived from this and its variables.
#[derive(Debug, Clone, Copy)]
pub struct IdempotentCall<'a> {
    pub command_id: &'a str,
    /// The kind of call within the command (`inventory`).
    pub what: &'a str,
    pub index: usize,
}

/// One call of an `@idempotent` mutation (`document` declares `$idempotencyKey`), keyed by (command, what, index)
/// and its variables; handles the `IDEMPOTENCY_*` user errors as Shopify documents them: a concurrent request with
/// the key is waited for and sent again with the same key, a failed earlier attempt is sent again with a new key, and
/// a key mismatch (a bug: keys follow the variables) is logged and reported with the answer's user errors.
pub async fn idempotent_call(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    document: crate::documents::Document,
    variables: Value,
    call: IdempotentCall<'_>,
    payload_field: &str,
) -> Result<Value, CallError> {
    let IdempotentCall {
        command_id,
        what,
        index,
    } = call;
    let mut attempt = 0u32;
    let mut waits = 0u32;
    loop {
        let key = idempotency::key(command_id, what, index, attempt, &variables);
        let mut with_key = variables.clone();
        with_key[idempotency::VARIABLE] = Value::String(key.clone());
        let op = Operation {
            document,
            variables: with_key,
            expected_cost: MUTATION_COST,
        };
        let data = executor.call(shop, lane, &op).await?;
        match idempotency::verdict(&data[payload_field]["userErrors"]) {
            Verdict::Done => return Ok(data),
            Verdict::RetrySameKey if waits < idempotency::MAX_CONCURRENT_WAITS => {
                waits += 1;
                tracing::info!(
                    key,
                    "the same idempotency key is in progress at shopify; waiting"
                );
                tokio::time::sleep(idempotency::CONCURRENT_WAIT).await;
            }
            Verdict::RetryNewKey if attempt < idempotency::MAX_NEW_KEYS => {
                attempt += 1;
                tracing::info!(
                    key,
                    "the idempotency key's earlier attempt failed; sending again under a new key"
                );
            }
            Verdict::KeyMismatch => {
                tracing::error!(
                    key,
                    "shopify saw this idempotency key with other variables; keys follow the variables, so this is a bug"
                );
                return Ok(data);
            }
            Verdict::RetrySameKey | Verdict::RetryNewKey => return Ok(data),
        }
    }
}

fn collect(mut results: Vec<(usize, Result<Value, CallError>)>, payload_field: &str) -> Outcome {
    results.sort_by_key(|(i, _)| *i);
    let mut outcome = Outcome::default();
    for (i, result) in results {
        outcome.absorb(i, result, payload_field);
    }
    outcome
}

/// Updates variant prices, one `productVariantsBulkUpdate` per product.
pub async fn update_variant_prices(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    products: &[ProductPrices],
) -> Outcome {
    let operations = products
        .iter()
        .map(|product| {
            let variants: Vec<Value> = product
                .variants
                .iter()
                .map(|v| json!({ "id": v.variant_id, "price": v.price, "compareAtPrice": v.compare_at_price }))
                .collect();
            Operation {
                document: documents::VARIANTS_UPDATE_PRICES,
                variables: json!({ "productId": product.product_id, "variants": variants }),
                expected_cost: MUTATION_COST,
            }
        })
        .collect();
    run_calls(
        executor,
        shop,
        lane,
        operations,
        "productVariantsBulkUpdate",
    )
    .await
}

/// Identifiers searched per `productVariants` call (the query string stays short).
pub const LOOKUP_BATCH: usize = 50;
/// Variants per page of a lookup: 2 + 100 x 3 objects = 302 points.
const LOOKUP_PAGE: u32 = 100;

/// Which variant field a lookup searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupField {
    Sku,
    Barcode,
}

/// A Shopify variant found by SKU or barcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantMatch {
    pub variant_id: String,
    pub product_id: String,
    pub inventory_item_id: String,
    pub sku: String,
    pub barcode: String,
}

/// Finds the variants whose SKU (or barcode) is one of `values`. Several variants may share a value: all are
/// returned, and telling them apart is the caller's business. A value Shopify's search cannot express (a double
/// quote) is reported as a problem instead of being searched.
pub async fn lookup_variants(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    field: LookupField,
    values: &[String],
) -> (Vec<VariantMatch>, Outcome) {
    let (name, key) = match field {
        LookupField::Sku => ("sku", "sku"),
        LookupField::Barcode => ("barcode", "barcode"),
    };
    let mut outcome = Outcome::default();
    let (searchable, unsearchable): (Vec<&String>, Vec<&String>) = values
        .iter()
        .filter(|v| !v.is_empty())
        .partition(|v| !v.contains('"'));
    outcome.user_errors.extend(unsearchable.into_iter().map(|v| {
        json!({"code": "UNSEARCHABLE_VALUE", "field": [name], "message": format!("{name} {v:?} contains a double quote, which Shopify's search cannot express")})
    }));
    let wanted: std::collections::HashSet<&str> = searchable.iter().map(|v| v.as_str()).collect();
    let mut matches = Vec::new();
    for (i, batch) in searchable.chunks(LOOKUP_BATCH).enumerate() {
        let query = batch
            .iter()
            .map(|v| format!("{name}:\"{v}\""))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut after: Option<String> = None;
        loop {
            let op = Operation {
                document: documents::VARIANTS_LOOKUP,
                variables: json!({ "first": LOOKUP_PAGE, "after": after, "query": query }),
                expected_cost: 2.0 + f64::from(LOOKUP_PAGE) * 3.0,
            };
            outcome.calls += 1;
            let data = match executor.call(shop, lane, &op).await {
                Ok(data) => data,
                Err(e) => {
                    outcome.failed_calls.push((i, e));
                    break;
                }
            };
            let connection = &data["productVariants"];
            for node in connection["nodes"].as_array().into_iter().flatten() {
                let found = VariantMatch {
                    variant_id: node["id"].as_str().unwrap_or_default().to_string(),
                    product_id: node["product"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    inventory_item_id: node["inventoryItem"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    sku: node["sku"].as_str().unwrap_or_default().to_string(),
                    barcode: node["barcode"].as_str().unwrap_or_default().to_string(),
                };
                // Shopify's search is by token and case-insensitive: keep exact matches only.
                let value = if key == "sku" {
                    &found.sku
                } else {
                    &found.barcode
                };
                if wanted.contains(value.as_str()) {
                    matches.push(found);
                }
            }
            match connection["pageInfo"]["endCursor"].as_str() {
                Some(cursor) if connection["pageInfo"]["hasNextPage"] == true => {
                    after = Some(cursor.to_string())
                }
                _ => break,
            }
        }
    }
    (matches, outcome)
}

/// Every node of a paginated connection at the top of `document` (`first`/`after` variables, `pageInfo` selected),
/// `page` at a time; `field` names the connection in the response.
pub async fn all_nodes(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    document: crate::documents::Document,
    field: &str,
    page: u32,
    node_cost: f64,
) -> Result<Vec<Value>, crate::executor::CallError> {
    let mut nodes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let op = Operation {
            document,
            variables: json!({ "first": page, "after": after }),
            expected_cost: 2.0 + f64::from(page) * node_cost,
        };
        let data = executor.call(shop, lane, &op).await?;
        let connection = &data[field];
        nodes.extend(
            connection["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned(),
        );
        match connection["pageInfo"]["endCursor"].as_str() {
            Some(cursor) if connection["pageInfo"]["hasNextPage"] == true => {
                after = Some(cursor.to_string())
            }
            _ => return Ok(nodes),
        }
    }
}

/// One mutation whose payload is `payload_field { userErrors }`: any user error (or a failed call) fails it.
async fn single_mutation(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    op: Operation,
    payload_field: &str,
) -> (Value, Outcome) {
    let mut outcome = Outcome::default();
    let result = executor.call(shop, lane, &op).await;
    let data = result.as_ref().ok().cloned().unwrap_or(Value::Null);
    outcome.absorb(0, result, payload_field);
    outcome.failed = !outcome.user_errors.is_empty() || !outcome.failed_calls.is_empty();
    (data, outcome)
}

fn invalid(field: &str, message: &str) -> Outcome {
    Outcome {
        user_errors: vec![json!({"code": "INVALID_REQUEST", "field": [field], "message": message})],
        failed: true,
        ..Default::default()
    }
}

/// Adds `tags` to an order (tagsAdd keeps tags it already has once, so a repeat changes nothing).
pub async fn tag_order(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    order_id: &str,
    tags: &[String],
) -> Outcome {
    let tags: Vec<&str> = tags
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect();
    if !order_id.starts_with("gid://shopify/Order/") {
        return invalid(
            "order_id",
            "order_id must be an order GID (gid://shopify/Order/<id>)",
        );
    }
    if tags.is_empty() {
        return invalid("tags", "no tag to add");
    }
    let op = Operation {
        document: documents::ORDER_TAG,
        variables: json!({ "id": order_id, "tags": tags }),
        expected_cost: MUTATION_COST,
    };
    single_mutation(executor, shop, lane, op, "tagsAdd").await.1
}

/// Closes an order; returns whether Shopify reports it closed.
pub async fn close_order(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    order_id: &str,
) -> (Option<bool>, Outcome) {
    if !order_id.starts_with("gid://shopify/Order/") {
        return (
            None,
            invalid(
                "order_id",
                "order_id must be an order GID (gid://shopify/Order/<id>)",
            ),
        );
    }
    let op = Operation {
        document: documents::ORDER_CLOSE,
        variables: json!({ "input": { "id": order_id } }),
        expected_cost: MUTATION_COST,
    };
    let (data, outcome) = single_mutation(executor, shop, lane, op, "orderClose").await;
    (data["orderClose"]["order"]["closed"].as_bool(), outcome)
}
