//! A pulled message with its envelope read: headers, decoded payload (or why it cannot be decoded), its span.

use std::time::Instant;

use async_nats::jetstream;

use super::{ConsumerRunner, Handler};
use crate::bus::envelope::{Decode, Envelope, EventMeta, headers};

/// Whether a failure of this attempt is the last one allowed.
pub(super) fn is_last(failures: u32, max_failures: u32, delivered: u64, max_deliver: i64) -> bool {
    failures.saturating_add(1) >= max_failures.max(1)
        || (max_deliver > 0 && delivered >= max_deliver as u64)
}

/// A pulled message with its envelope read.
pub(super) struct Prepared<M> {
    pub(super) message: jetstream::Message,
    pub(super) headers: async_nats::HeaderMap,
    pub(super) subject: String,
    pub(super) message_id: Option<String>,
    pub(super) type_name: Option<String>,
    pub(super) delivered: u64,
    /// Real failures recorded before this delivery (`consumer_failures`; read only for redeliveries).
    pub(super) failures: u32,
    /// JetStream's `max_deliver` of the consumer (its safety net, counting every delivery).
    pub(super) max_deliver: i64,
    /// One more failure is the last allowed (`consumer.max_failures`), or JetStream's `max_deliver` is reached: a
    /// failure is dead-lettered, not redelivered.
    pub(super) last_delivery: bool,
    /// When JetStream's ack timer for it last restarted (delivery or progress ack), as far as the runner knows (not
    /// counting the park task's progress acks while it waited in the hand-back channel: an earlier time only makes
    /// the next progress ack come sooner).
    pub(super) progress_at: Instant,
    pub(super) span: tracing::Span,
    /// The decoded envelope, or why the message cannot be decoded.
    pub(super) envelope: Result<Envelope<M>, String>,
}

impl<M> Prepared<M> {
    /// Sets the failures recorded before this delivery, and what follows from them.
    pub(super) fn set_failures(&mut self, failures: u32, max_failures: u32) {
        self.failures = failures;
        self.last_delivery = is_last(failures, max_failures, self.delivered, self.max_deliver);
        if let Ok(envelope) = &mut self.envelope {
            envelope.last_delivery = self.last_delivery;
        }
    }
}

impl<H: Handler> ConsumerRunner<H> {
    /// Reads the real failures of the redelivered messages of a batch (a first delivery has none). Unreadable (the
    /// database is down): none are assumed; applying the batch then finds the database down and keeps the messages.
    pub(super) async fn load_failures(&self, batch: &mut [Prepared<H::Message>]) {
        let ids: Vec<String> = batch
            .iter()
            .filter(|p| p.delivered > 1)
            .filter_map(|p| p.message_id.clone())
            .collect();
        if ids.is_empty() {
            return;
        }
        let Ok(failures) = crate::bus::inbox::failures(&self.pool, &self.durable, &ids).await
        else {
            return;
        };
        for prepared in batch.iter_mut() {
            let Some(id) = prepared.message_id.as_deref() else {
                continue;
            };
            if let Some(n) = failures.get(id) {
                prepared.set_failures(*n, self.settings.max_failures);
            }
        }
    }

    /// Reads a message's envelope and decodes its payload (the failure is kept as the dead-letter reason).
    pub(super) fn prepare(
        &self,
        message: jetstream::Message,
        max_deliver: i64,
    ) -> Prepared<H::Message> {
        let headers = message.headers.clone().unwrap_or_default();
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
        // A replayed dead letter keeps the id it was first applied (or not) under.
        let message_id = header(headers::REPLAY_OF).or_else(|| header(headers::MSG_ID));
        let type_name = header(headers::TYPE);
        let progress_at = Instant::now();
        let delivered = message
            .info()
            .map(|i| i.delivered.max(1) as u64)
            .unwrap_or(1);
        let last_delivery = is_last(0, self.settings.max_failures, delivered, max_deliver);
        let subject = self.namespace.strip(message.subject.as_str()).to_string();
        let span = tracing::info_span!(
            "consume",
            consumer = %self.durable,
            subject = %subject,
            message_id = message_id.as_deref().unwrap_or("-"),
            delivered,
            tenant_id = header(headers::TENANT).as_deref().unwrap_or("-"),
            correlation_id = header(headers::CORRELATION).as_deref().unwrap_or("-"),
        );
        crate::telemetry::set_remote_parent(&span, header);
        let envelope = match (message_id.as_deref(), type_name.as_deref()) {
            (Some(id), Some(type_name)) => H::Message::decode(type_name, &message.payload)
                .map(|decoded| Envelope {
                    message_id: id.to_string(),
                    subject: subject.clone(),
                    meta: EventMeta {
                        tenant_id: header(headers::TENANT),
                        channel_id: header(headers::CHANNEL),
                        correlation_id: header(headers::CORRELATION),
                    },
                    message: decoded,
                    delivered,
                    last_delivery,
                })
                .map_err(|e| e.to_string()),
            _ => Err(format!(
                "missing `{}` or `{}` header",
                headers::MSG_ID,
                headers::TYPE
            )),
        };
        Prepared {
            message,
            headers,
            subject,
            message_id,
            type_name,
            delivered,
            failures: 0,
            max_deliver,
            last_delivery,
            progress_at,
            span,
            envelope,
        }
    }
}

pub(super) fn headers_json(headers: &async_nats::HeaderMap) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| {
            let values: Vec<serde_json::Value> = v.iter().map(|v| v.as_str().into()).collect();
            (k.to_string(), serde_json::Value::Array(values))
        })
        .collect();
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::is_last;

    #[test]
    fn the_last_attempt_is_set_by_real_failures_or_by_jetstreams_safety_net() {
        // Ten failures allowed: the tenth attempt after nine failures is the last, whatever the deliveries.
        assert!(!is_last(8, 10, 30, 100));
        assert!(is_last(9, 10, 30, 100));
        // Many deliveries without failures (restarts, rebalances) are not the last until JetStream's own bound.
        assert!(!is_last(0, 10, 99, 100));
        assert!(is_last(0, 10, 100, 100));
        assert!(!is_last(0, 10, 5000, -1));
    }
}
