//! A pulled message with its envelope read: headers, decoded payload (or why it cannot be decoded), its span.

use std::time::Instant;

use async_nats::jetstream;

use super::{ConsumerRunner, Handler};
use crate::bus::envelope::{Decode, Envelope, EventMeta, headers};

/// A pulled message with its envelope read.
pub(super) struct Prepared<M> {
    pub(super) message: jetstream::Message,
    pub(super) headers: async_nats::HeaderMap,
    pub(super) subject: String,
    pub(super) message_id: Option<String>,
    pub(super) type_name: Option<String>,
    pub(super) delivered: u64,
    /// The consumer's `max_deliver` is reached: a failure is dead-lettered, not redelivered.
    pub(super) last_delivery: bool,
    /// When JetStream's ack timer for it last restarted (delivery or progress ack), as far as the runner knows (not
    /// counting the park task's progress acks while it waited in the hand-back channel: an earlier time only makes
    /// the next progress ack come sooner).
    pub(super) progress_at: Instant,
    pub(super) span: tracing::Span,
    /// The decoded envelope, or why the message cannot be decoded.
    pub(super) envelope: Result<Envelope<M>, String>,
}

impl<H: Handler> ConsumerRunner<H> {
    /// Reads a message's envelope and decodes its payload (the failure is kept as the dead-letter reason).
    pub(super) fn prepare(
        &self,
        message: jetstream::Message,
        max_deliver: i64,
    ) -> Prepared<H::Message> {
        let headers = message.headers.clone().unwrap_or_default();
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
        let message_id = header(headers::MSG_ID);
        let type_name = header(headers::TYPE);
        let progress_at = Instant::now();
        let delivered = message
            .info()
            .map(|i| i.delivered.max(1) as u64)
            .unwrap_or(1);
        let last_delivery = max_deliver > 0 && delivered >= max_deliver as u64;
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
