//! Setting quantities: `inventorySetQuantities` in batches of 250, each call carrying an `@idempotent` key derived
//! from the command id (see `shopify::idempotency`), so a retry after a lost answer, or a redelivered command, applies
//! once.

use futures::{StreamExt, stream};

use super::{CALL_CONCURRENCY, MUTATION_COST};
use crate::{
    outcome::Outcome,
    shopify::{
        budget::Lane,
        executor::{CallError, Executor, ShopCredentials},
        idempotency::{self, Verdict},
        wire::{
            self, UserError,
            inventory::{InventoryQuantityInput, InventorySet, InventorySetQuantitiesInput},
        },
    },
};

/// Shopify's cap on quantities per `inventorySetQuantities`.
pub const INVENTORY_BATCH: usize = 250;

/// One quantity to set, with the quantity we believe Shopify has (compare-and-swap: `changeFromQuantity`), if known.
#[derive(Debug, Clone)]
pub struct QuantitySet {
    pub inventory_item_id: String,
    pub location_id: String,
    pub quantity: i64,
    pub compare_quantity: Option<i64>,
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
    let inputs: Vec<InventorySetQuantitiesInput> = quantities
        .chunks(INVENTORY_BATCH)
        .map(|batch| InventorySetQuantitiesInput {
            name: "available".into(),
            reason: "correction".into(),
            reference_document_uri: format!("gid://shopbridge/Command/{command_id}"),
            quantities: batch
                .iter()
                .map(|q| InventoryQuantityInput {
                    inventory_item_id: q.inventory_item_id.clone(),
                    location_id: q.location_id.clone(),
                    quantity: q.quantity,
                    change_from_quantity: q.compare_quantity,
                })
                .collect(),
        })
        .collect();
    let mut results: Vec<(usize, Result<Vec<UserError>, CallError>)> =
        stream::iter(inputs.into_iter().enumerate())
            .map(|(i, input)| async move {
                let call = IdempotentCall {
                    command_id,
                    what: "inventory",
                    index: i,
                };
                (i, idempotent_call(executor, shop, lane, input, call).await)
            })
            .buffer_unordered(CALL_CONCURRENCY)
            .collect()
            .await;
    results.sort_by_key(|(i, _)| *i);
    let mut outcome = Outcome::default();
    for (i, result) in results {
        outcome.absorb(i, result);
    }
    outcome
}

/// Which call of which command an idempotent call is: its key is derived from this and its variables.
#[derive(Debug, Clone, Copy)]
pub struct IdempotentCall<'a> {
    pub command_id: &'a str,
    /// The kind of call within the command (`inventory`).
    pub what: &'a str,
    pub index: usize,
}

/// One `inventorySetQuantities` call, keyed by (command, what, index) and its input; handles the `IDEMPOTENCY_*`
/// user errors as Shopify documents them: a concurrent request with the key is waited for and sent again with the
/// same key, a failed earlier attempt is sent again with a new key, and a key mismatch (a bug: keys follow the
/// variables) is logged and reported with the answer's user errors. Returns the answer's user errors.
pub async fn idempotent_call(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    input: InventorySetQuantitiesInput,
    call: IdempotentCall<'_>,
) -> Result<Vec<UserError>, CallError> {
    let IdempotentCall {
        command_id,
        what,
        index,
    } = call;
    let mut request = InventorySet {
        input,
        idempotency_key: String::new(),
    };
    let keyed = serde_json::json!({ "input": &request.input });
    let mut attempt = 0u32;
    let mut waits = 0u32;
    loop {
        request.idempotency_key = idempotency::key(command_id, what, index, attempt, &keyed);
        let key = &request.idempotency_key;
        let data = executor.send(shop, lane, &request, MUTATION_COST).await?;
        let errors = wire::inventory::user_errors(data.inventory_set_quantities.as_ref()).to_vec();
        match idempotency::verdict(&errors) {
            Verdict::Done => return Ok(errors),
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
                return Ok(errors);
            }
            Verdict::RetrySameKey | Verdict::RetryNewKey => return Ok(errors),
        }
    }
}
