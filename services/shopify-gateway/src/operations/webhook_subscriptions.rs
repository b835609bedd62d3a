//! Webhook subscriptions: list what the shop has, create only the missing (topic, address) pairs. Running it again
//! changes nothing, which also makes it the repair for subscriptions Shopify removed after failed deliveries.

use shopbridge_proto::gateway as pb;

use super::{MUTATION_COST, pages};
use crate::{
    outcome::Outcome,
    shopify::{
        budget::Lane,
        executor::{Executor, ShopCredentials},
        wire::{
            UserError,
            access::{
                WebhookSubscribe, WebhookSubscription, WebhookSubscriptionInput,
                WebhookSubscriptions,
            },
        },
    },
};

/// Subscriptions per listing call: 2 + 100 x 1 points.
const PAGE: u32 = 100;

/// Shopify's enum name for a topic given as the enum (`ORDERS_CREATE`) or as the header names it
/// (`orders/create`); None if it cannot be a topic.
pub fn topic_enum(topic: &str) -> Option<String> {
    let name = topic.trim().replace('/', "_").to_ascii_uppercase();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    valid.then_some(name)
}

fn problem(code: &str, field: &[&str], message: impl Into<String>) -> UserError {
    UserError::new(code, field, message)
}

fn subscription(node: &WebhookSubscription, created: bool) -> pb::WebhookSubscription {
    pb::WebhookSubscription {
        id: node.id.clone(),
        topic: node.topic.clone(),
        callback_url: node.uri.clone(),
        created,
    }
}

/// Makes sure the shop delivers each of `topics` to `callback_url`.
pub async fn register(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    request: &pb::RegisterWebhooks,
) -> (pb::WebhooksRegistered, Outcome) {
    let mut outcome = Outcome::default();
    let mut registered = pb::WebhooksRegistered::default();
    let url = request.callback_url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        outcome.user_errors.push(problem(
            "INVALID_REQUEST",
            &["callback_url"],
            "callback_url must be an https:// address",
        ));
        outcome.failed = true;
        return (registered, outcome);
    }
    let mut topics: Vec<String> = Vec::new();
    for (i, topic) in request.topics.iter().enumerate() {
        match topic_enum(topic) {
            Some(name) if !topics.contains(&name) => topics.push(name),
            Some(_) => {}
            None => outcome.user_errors.push(problem(
                "INVALID_TOPIC",
                &["topics", &i.to_string()],
                format!("{topic:?} is not a Shopify webhook topic"),
            )),
        }
    }
    if topics.is_empty() {
        if outcome.user_errors.is_empty() {
            outcome.user_errors.push(problem(
                "INVALID_REQUEST",
                &["topics"],
                "no topic to subscribe",
            ));
        }
        outcome.failed = true;
        return (registered, outcome);
    }
    outcome.calls += 1;
    let existing = match pages::all_nodes(
        executor,
        shop,
        lane,
        WebhookSubscriptions,
        |data| data.webhook_subscriptions,
        PAGE,
        1.0,
    )
    .await
    {
        Ok(nodes) => nodes,
        Err(e) => {
            outcome.failed_calls.push((0, e));
            outcome.failed = true;
            return (registered, outcome);
        }
    };
    for topic in topics {
        if let Some(found) = existing.iter().find(|s| s.topic == topic && s.uri == url) {
            registered.subscriptions.push(subscription(found, false));
            continue;
        }
        let request = WebhookSubscribe {
            topic: topic.clone(),
            sub: WebhookSubscriptionInput {
                uri: url.to_string(),
                format: "JSON",
            },
        };
        let index = outcome.calls;
        outcome.calls += 1;
        match executor.send(shop, lane, &request, MUTATION_COST).await {
            Ok(data) => {
                let (created, errors) = data
                    .webhook_subscription_create
                    .map(|p| (p.webhook_subscription, p.user_errors))
                    .unwrap_or_default();
                if let Some(created) = &created {
                    registered.subscriptions.push(subscription(created, true));
                } else if errors.is_empty() {
                    outcome.user_errors.push(problem(
                        "USER_ERROR",
                        &["topics"],
                        format!("Shopify created no subscription for {topic}"),
                    ));
                } else {
                    outcome.user_errors.extend(errors);
                }
            }
            // A topic the API version does not know fails the whole call (variable coercion): report it for this
            // topic and carry on with the others.
            Err(e) => outcome.failed_calls.push((index, e)),
        }
    }
    (registered, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_accepted_as_enum_or_header_names() {
        assert_eq!(
            topic_enum("orders/create").as_deref(),
            Some("ORDERS_CREATE")
        );
        assert_eq!(
            topic_enum("BULK_OPERATIONS_FINISH").as_deref(),
            Some("BULK_OPERATIONS_FINISH")
        );
        assert_eq!(topic_enum("orders create"), None);
        assert_eq!(topic_enum(""), None);
    }
}
