//! The operations built on `shopify`: each takes a command's request, splits it into Shopify-sized calls, runs them
//! through the executor (the budget paces them) and reports an `Outcome`. One operation per module.

pub mod access;
pub mod catalog;
pub mod fulfillments;
pub mod inventory;
pub mod lookup;
pub mod order_writes;
pub mod orders;
pub mod pages;
pub mod prices;
pub mod webhook_subscriptions;

use futures::{StreamExt, stream};

use crate::shopify::{
    budget::Lane,
    executor::{CallError, Executor, ShopCredentials},
    wire::Request,
};

/// Calls of one command in flight at once; the budget decides the real pace.
pub const CALL_CONCURRENCY: usize = 8;
/// Shopify's documented base cost of a mutation; payload objects are free, and Shopify's own figure replaces it.
pub const MUTATION_COST: f64 = 10.0;

/// Sends `requests`, at most [`CALL_CONCURRENCY`] at once, each expected to cost `cost`; returns their answers by
/// index, in input order.
pub async fn run_calls<R: Request>(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    requests: Vec<R>,
    cost: f64,
) -> Vec<(usize, Result<R::Response, CallError>)> {
    let costed = requests.into_iter().map(|r| (r, cost)).collect();
    run_costed(executor, shop, lane, costed).await
}

/// Like [`run_calls`], each request with its own expected cost.
pub async fn run_costed<R: Request>(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    requests: Vec<(R, f64)>,
) -> Vec<(usize, Result<R::Response, CallError>)> {
    stream::iter(requests.into_iter().enumerate())
        .map(|(i, (request, cost))| async move {
            (i, executor.send(shop, lane, &request, cost).await)
        })
        .buffered(CALL_CONCURRENCY)
        .collect()
        .await
}
