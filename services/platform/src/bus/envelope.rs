//! What travels with every message: the header names of the envelope convention (see
//! `proto/shopbridge/common/v1/envelope.proto`), the metadata a publisher sets, and decoding on the consumer side.

use prost::{Message, Name};

pub mod headers {
    /// The message's full protobuf name.
    pub const TYPE: &str = "Shopbridge-Type";
    /// JetStream's deduplication header; our idempotency key.
    pub const MSG_ID: &str = "Nats-Msg-Id";
    /// On a replayed dead letter: the message id it was first published with. Consumers dedupe on it (their inbox),
    /// while JetStream sees the replay under an id of its own, so a replay is not dropped as a duplicate.
    pub const REPLAY_OF: &str = "Shopbridge-Replay-Of";
    pub const TENANT: &str = "Shopbridge-Tenant";
    pub const CHANNEL: &str = "Shopbridge-Channel";
    pub const CORRELATION: &str = "Shopbridge-Correlation";
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
}

/// Who and what a message concerns. Set by the publisher, carried as headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventMeta {
    pub tenant_id: Option<String>,
    pub channel_id: Option<String>,
    pub correlation_id: Option<String>,
}

impl EventMeta {
    pub fn tenant(tenant_id: impl Into<String>) -> Self {
        Self {
            tenant_id: Some(tenant_id.into()),
            ..Self::default()
        }
    }

    pub fn with_channel(mut self, channel_id: impl Into<String>) -> Self {
        self.channel_id = Some(channel_id.into());
        self
    }

    pub fn with_correlation(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = Some(correlation_id.into());
        self
    }
}

/// A decoded message with its envelope.
#[derive(Debug, Clone)]
pub struct Envelope<M> {
    pub message_id: String,
    pub subject: String,
    pub meta: EventMeta,
    pub message: M,
    /// 1 on the first delivery.
    pub delivered: u64,
    /// The consumer's `max_deliver` is reached: a [`HandlerError::Retry`](super::HandlerError::Retry) of this
    /// delivery dead-letters the message instead of redelivering it (a handler that must answer its sender does so
    /// now).
    pub last_delivery: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message type `{0}` is not handled by this consumer")]
    UnexpectedType(String),
    #[error("payload of `{type_name}` does not decode: {source}")]
    Payload {
        type_name: String,
        source: prost::DecodeError,
    },
}

/// How a consumer turns a (type name, payload) pair into its message. Implemented for every generated protobuf
/// message; a consumer of several types implements it for an enum of them.
pub trait Decode: Sized + Send + 'static {
    fn decode(type_name: &str, payload: &[u8]) -> Result<Self, DecodeError>;
}

impl<M: Message + Name + Default + 'static> Decode for M {
    fn decode(type_name: &str, payload: &[u8]) -> Result<Self, DecodeError> {
        if type_name != M::full_name() {
            return Err(DecodeError::UnexpectedType(type_name.to_string()));
        }
        M::decode(payload).map_err(|source| DecodeError::Payload {
            type_name: type_name.to_string(),
            source,
        })
    }
}
