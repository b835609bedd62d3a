//! `POST /shopify/webhooks`: verify the HMAC over the raw body in constant time before anything else (401 and
//! nothing recorded otherwise), record the delivery and its typed event in one transaction (outbox), answer 200.
//! A delivery whose event id was seen before is answered 200 and publishes nothing.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use shopbridge_platform::bus::{EventMeta, OutboxMessage, outbox};
use shopbridge_proto::gateway as pb;
use sqlx::PgPool;

/// The route path Shopify is configured to call.
pub const PATH: &str = "/shopify/webhooks";

/// `true` when `signature` (the `X-Shopify-Hmac-Sha256` header, base64) is the HMAC-SHA256 of `body` under one of the
/// app's secrets (the current one, and the previous one while Shopify still signs with it after a rotation).
pub fn verify(secrets: &[SecretString], body: &[u8], signature: &str) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    secrets
        .iter()
        .filter(|s| !s.expose_secret().is_empty())
        .any(|secret| {
            let key =
                ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
            ring::hmac::verify(&key, body, &expected).is_ok()
        })
}

#[derive(Clone)]
pub struct WebhookState {
    pub pool: PgPool,
    pub secrets: Arc<Vec<SecretString>>,
}

pub fn router(state: WebhookState) -> axum::Router {
    axum::Router::new()
        .route(PATH, post(receive))
        .with_state(state)
}

/// Shopify sends `X-Shopify-*`; its newer event deliveries send `Shopify-*`. Header names are case-insensitive.
fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(format!("x-shopify-{name}"))
        .or_else(|| headers.get(format!("shopify-{name}")))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn timestamp(value: Option<&str>) -> Option<prost_types::Timestamp> {
    let parsed = chrono::DateTime::parse_from_rfc3339(value?).ok()?;
    Some(prost_types::Timestamp {
        seconds: parsed.timestamp(),
        nanos: parsed.timestamp_subsec_nanos() as i32,
    })
}

async fn receive(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Some(signature) = header(&headers, "hmac-sha256") else {
        metrics::counter!("gateway_webhooks_rejected_total", "reason" => "unsigned").increment(1);
        return (StatusCode::UNAUTHORIZED, "missing X-Shopify-Hmac-Sha256");
    };
    if !verify(&state.secrets, &body, &signature) {
        metrics::counter!("gateway_webhooks_rejected_total", "reason" => "bad_signature")
            .increment(1);
        tracing::warn!("webhook with an invalid signature rejected");
        return (StatusCode::UNAUTHORIZED, "invalid signature");
    }
    let (Some(topic), Some(shop)) = (header(&headers, "topic"), header(&headers, "shop-domain"))
    else {
        return (
            StatusCode::BAD_REQUEST,
            "missing X-Shopify-Topic or X-Shopify-Shop-Domain",
        );
    };
    let Some(event_id) = header(&headers, "event-id").or_else(|| header(&headers, "webhook-id"))
    else {
        return (StatusCode::BAD_REQUEST, "missing X-Shopify-Event-Id");
    };
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(_) => return (StatusCode::BAD_REQUEST, "body is not JSON"),
    };
    let delivery = pb::WebhookDelivery {
        shop_domain: shop.to_ascii_lowercase(),
        topic: topic.clone(),
        event_id: event_id.clone(),
        api_version: header(&headers, "api-version").unwrap_or_default(),
        triggered_at: timestamp(header(&headers, "triggered-at").as_deref()),
    };
    let message = typed_event(delivery, &payload, &body);
    match record(&state.pool, &event_id, &shop, &topic, message).await {
        Ok(true) => {
            metrics::counter!("gateway_webhooks_accepted_total", "topic" => topic.clone())
                .increment(1);
            tracing::info!(shop = %shop, topic = %topic, event_id = %event_id, "webhook accepted");
            (StatusCode::OK, "accepted")
        }
        Ok(false) => {
            metrics::counter!("gateway_webhooks_duplicates_total", "topic" => topic).increment(1);
            (StatusCode::OK, "duplicate")
        }
        Err(e) => {
            // Not recorded: Shopify retries, which is what we want.
            tracing::error!(error = %e, "could not record a webhook delivery");
            (StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}

/// Records the delivery and its event in one transaction; `false` for a duplicate.
async fn record(
    pool: &PgPool,
    event_id: &str,
    shop: &str,
    topic: &str,
    message: Option<OutboxMessage>,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries (event_id, shop_domain, topic) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(event_id)
    .bind(shop)
    .bind(topic)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        match message {
            Some(message) => {
                outbox::enqueue(&mut tx, message).await?;
            }
            None => tracing::info!(topic, "webhook topic without a consumer; recorded only"),
        }
    }
    tx.commit().await?;
    Ok(inserted)
}

fn text(payload: &Value, key: &str) -> String {
    match &payload[key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// The typed event for a topic; `None` for a topic nobody consumes.
fn typed_event(
    delivery: pb::WebhookDelivery,
    payload: &Value,
    raw: &[u8],
) -> Option<OutboxMessage> {
    let meta = EventMeta::default().with_correlation(delivery.event_id.clone());
    let updated_at = timestamp(payload["updated_at"].as_str());
    let gid = |kind: &str, key: &str| {
        let explicit = text(payload, "admin_graphql_api_id");
        if !explicit.is_empty() {
            explicit
        } else {
            format!("gid://shopify/{kind}/{}", text(payload, key))
        }
    };
    let message = match delivery.topic.as_str() {
        "orders/create" | "orders/updated" => OutboxMessage::event(
            meta,
            &pb::ShopifyOrderChanged {
                order_id: gid("Order", "id"),
                name: text(payload, "name"),
                updated_at,
                payload_json: raw.to_vec(),
                delivery: Some(delivery),
            },
        ),
        "products/update" => OutboxMessage::event(
            meta,
            &pb::ShopifyProductChanged {
                product_id: gid("Product", "id"),
                updated_at,
                payload_json: raw.to_vec(),
                delivery: Some(delivery),
            },
        ),
        "inventory_levels/update" => OutboxMessage::event(
            meta,
            &pb::ShopifyInventoryLevelChanged {
                inventory_item_id: format!(
                    "gid://shopify/InventoryItem/{}",
                    text(payload, "inventory_item_id")
                ),
                location_id: format!("gid://shopify/Location/{}", text(payload, "location_id")),
                available: payload["available"].as_i64(),
                updated_at,
                delivery: Some(delivery),
            },
        ),
        "app/uninstalled" => OutboxMessage::event(
            meta,
            &pb::ShopifyAppUninstalled {
                delivery: Some(delivery),
            },
        ),
        "bulk_operations/finish" => OutboxMessage::event(
            meta,
            &pb::ShopifyBulkOperationFinished {
                bulk_operation_id: text(payload, "admin_graphql_api_id"),
                status: text(payload, "status"),
                error_code: text(payload, "error_code"),
                delivery: Some(delivery),
            },
        ),
        "customers/data_request" | "customers/redact" | "shop/redact" => OutboxMessage::event(
            meta,
            &pb::ShopifyComplianceRequest {
                payload_json: raw.to_vec(),
                delivery: Some(delivery),
            },
        ),
        _ => return None,
    };
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vectors {
        webhook: Vec<Value>,
    }

    #[test]
    fn the_shared_hmac_vectors_verify_and_a_changed_byte_does_not() {
        let raw = include_str!("../../../../shared/data/shopify/hmac_test_vectors.json");
        let vectors: Vectors = serde_json::from_str(raw).unwrap();
        assert!(!vectors.webhook.is_empty());
        for v in vectors.webhook {
            let secret = SecretString::from(v["secret"].as_str().unwrap().to_string());
            let body = v["raw_body"].as_str().unwrap();
            let signature = v["expected_header_X-Shopify-Hmac-Sha256"].as_str().unwrap();
            assert!(
                verify(std::slice::from_ref(&secret), body.as_bytes(), signature),
                "{}",
                v["name"]
            );
            let mut tampered = body.as_bytes().to_vec();
            tampered[0] ^= 1;
            assert!(!verify(std::slice::from_ref(&secret), &tampered, signature));
            let wrong = SecretString::from("not-the-secret".to_string());
            assert!(!verify(
                std::slice::from_ref(&wrong),
                body.as_bytes(),
                signature
            ));
            // The previous secret still verifies during a rotation.
            assert!(verify(&[wrong, secret], body.as_bytes(), signature));
        }
        assert!(!verify(
            &[SecretString::from("x".to_string())],
            b"{}",
            "not base64!"
        ));
    }
}
