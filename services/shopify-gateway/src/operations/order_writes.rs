//! Writes to an order: tags (tagsAdd keeps tags it already has once, so a repeat changes nothing) and close.

use super::MUTATION_COST;
use crate::{
    outcome::Outcome,
    shopify::{
        budget::Lane,
        executor::{Executor, ShopCredentials},
        wire::{
            Id,
            orders::{OrderClose, OrderTag},
        },
    },
};

const NOT_AN_ORDER: &str = "order_id must be an order GID (gid://shopify/Order/<id>)";

/// Adds `tags` to an order.
pub async fn tag_order(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    order_id: &str,
    tags: &[String],
) -> Outcome {
    let tags: Vec<String> = tags
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    if !order_id.starts_with("gid://shopify/Order/") {
        return Outcome::refused("order_id", NOT_AN_ORDER);
    }
    if tags.is_empty() {
        return Outcome::refused("tags", "no tag to add");
    }
    let request = OrderTag {
        id: order_id.to_string(),
        tags,
    };
    let answer = executor.send(shop, lane, &request, MUTATION_COST).await;
    single(answer.map(|data| data.tags_add.map(|p| p.user_errors).unwrap_or_default()))
}

/// Closes an order; returns whether Shopify reports it closed.
pub async fn close_order(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    order_id: &str,
) -> (Option<bool>, Outcome) {
    if !order_id.starts_with("gid://shopify/Order/") {
        return (None, Outcome::refused("order_id", NOT_AN_ORDER));
    }
    let request = OrderClose {
        input: Id {
            id: order_id.to_string(),
        },
    };
    match executor.send(shop, lane, &request, MUTATION_COST).await {
        Ok(data) => {
            let payload = data.order_close;
            let closed = payload
                .as_ref()
                .and_then(|p| p.order.as_ref())
                .map(|o| o.closed);
            let errors = payload.map(|p| p.user_errors).unwrap_or_default();
            (closed, single(Ok(errors)))
        }
        Err(e) => (None, single(Err(e))),
    }
}

/// The outcome of one all-or-nothing mutation: any user error (or a failed call) fails it.
fn single(
    result: Result<Vec<crate::shopify::wire::UserError>, crate::shopify::executor::CallError>,
) -> Outcome {
    let mut outcome = Outcome::default();
    outcome.absorb(0, result);
    outcome.failed = !outcome.user_errors.is_empty() || !outcome.failed_calls.is_empty();
    outcome
}
