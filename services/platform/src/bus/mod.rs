//! The event bus: typed protobuf messages over NATS JetStream, published through a transactional outbox and consumed
//! through an inbox, so that a crash at any point neither loses nor doubles an effect.

pub mod consumer;
pub mod dead_letters;
pub mod envelope;
pub mod inbox;
pub mod names;
pub mod outbox;
pub mod retention;
pub mod topology;

pub use consumer::{ConsumerRunner, Handler, HandlerError};
pub use envelope::{Decode, Envelope, EventMeta, headers as header_names};
pub use names::Namespace;
pub use outbox::{OutboxMessage, Relay};

/// Connects to NATS with the service's settings.
pub async fn connect(
    settings: &crate::config::NatsSettings,
    name: &str,
) -> anyhow::Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(std::time::Duration::from_secs(
            settings.connect_timeout_secs,
        ))
        .retry_on_initial_connect();
    if !settings.credentials_file.is_empty() {
        options = options
            .credentials_file(&settings.credentials_file)
            .await
            .map_err(|e| anyhow::anyhow!("configuration key `nats.credentials_file`: {e}"))?;
    }
    let client = options.connect(settings.url.as_str()).await.map_err(|e| {
        anyhow::anyhow!("cannot connect to NATS at {} (nats.url): {e}", settings.url)
    })?;
    Ok(client)
}
