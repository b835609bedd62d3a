//! Webhook deliveries: one POST per (event, subscription) with Shopify's `X-Shopify-*` headers
//! and HMAC, retried with exponential backoff on a non-2xx answer or one slower than the timeout.

use crate::model::Event;
use crate::sim::{Shop, Sim};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Serialize)]
pub struct DeliveryRecord {
    pub topic: String,
    pub uri: String,
    pub webhook_id: String,
    pub event_id: String,
    pub attempts: u32,
    pub delivered: bool,
    pub last_status: Option<u16>,
}

/// `orders/create` -> `ORDERS_CREATE` (the GraphQL enum spelling).
pub fn topic_enum(topic: &str) -> String {
    topic.replace('/', "_").to_ascii_uppercase()
}

/// Sends each event to every subscription for its topic, in the background.
pub fn dispatch(sim: &Arc<Sim>, shop: &Arc<Shop>, events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    let subs: Vec<(String, String)> = {
        let st = shop.store.lock().unwrap();
        st.webhook_subs
            .values()
            .map(|w| (w.topic.clone(), w.uri.clone()))
            .collect()
    };
    for ev in events {
        let te = topic_enum(ev.topic);
        let event_id = uuid::Uuid::new_v4().to_string();
        let body = serde_json::to_vec(&ev.payload).unwrap_or_default();
        for (_, uri) in subs.iter().filter(|(t, _)| *t == te) {
            let copies = if sim.faults.webhook_duplicate(&shop.domain) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let d = Delivery {
                    topic: ev.topic.to_string(),
                    uri: uri.clone(),
                    body: body.clone(),
                    webhook_id: uuid::Uuid::new_v4().to_string(),
                    event_id: event_id.clone(),
                    triggered_at: crate::model::ts(&sim.config.clock.now()),
                };
                tokio::spawn(deliver(sim.clone(), shop.clone(), d));
            }
        }
    }
}

struct Delivery {
    topic: String,
    uri: String,
    body: Vec<u8>,
    webhook_id: String,
    event_id: String,
    triggered_at: String,
}

async fn deliver(sim: Arc<Sim>, shop: Arc<Shop>, d: Delivery) {
    let delay = sim.faults.webhook_delay_ms(&shop.domain);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let hmac = crate::hmac::webhook_signature(&sim.config.client_secret, &d.body);
    let idx = {
        let mut log = shop.deliveries.lock().unwrap();
        log.push(DeliveryRecord {
            topic: d.topic.clone(),
            uri: d.uri.clone(),
            webhook_id: d.webhook_id.clone(),
            event_id: d.event_id.clone(),
            attempts: 0,
            delivered: false,
            last_status: None,
        });
        log.len() - 1
    };
    let mut backoff = sim.config.webhook_retry_base;
    for attempt in 0..=sim.config.webhook_max_retries {
        let res = sim
            .http
            .post(&d.uri)
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", &d.topic)
            .header("X-Shopify-Hmac-Sha256", &hmac)
            .header("X-Shopify-Shop-Domain", &shop.domain)
            .header("X-Shopify-API-Version", crate::schema::API_VERSION)
            .header("X-Shopify-Webhook-Id", &d.webhook_id)
            .header("X-Shopify-Event-Id", &d.event_id)
            .header("X-Shopify-Triggered-At", &d.triggered_at)
            .timeout(sim.config.webhook_timeout)
            .body(d.body.clone())
            .send()
            .await;
        let status = res.as_ref().ok().map(|r| r.status().as_u16());
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        {
            let mut log = shop.deliveries.lock().unwrap();
            if let Some(r) = log.get_mut(idx) {
                r.attempts = attempt + 1;
                r.delivered = ok;
                r.last_status = status;
            }
            let mut s = shop.stats.lock().unwrap();
            s.webhook_deliveries += 1;
            if !ok {
                s.webhook_failures += 1;
            }
        }
        if ok {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}
