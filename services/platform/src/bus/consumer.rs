//! The consumer runner: a durable pull consumer declared by the topology, explicit acks, bounded concurrency, progress
//! acks while a handler runs long, redelivery with backoff, and a dead-letter table for what cannot be handled.
//! The handler's effect and the inbox row commit together, so redelivery never applies an effect twice.

use std::{future::Future, sync::Arc, time::Duration};

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures::StreamExt;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    envelope::{Decode, Envelope, EventMeta, headers},
    inbox::{self, DeadLetter},
    names::Namespace,
};
use crate::config::ConsumerSettings;

/// Why a handler did not apply a message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth another try (a dependency is down, a conflict): redelivered with backoff until `max_deliver`.
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// Will never succeed (invalid content): dead-lettered at once.
    #[error("{0:#}")]
    Reject(anyhow::Error),
}

/// Applies one message inside the transaction that also records it in the inbox.
pub trait Handler: Send + Sync + 'static {
    type Message: Decode + Sync;

    fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope<Self::Message>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a;
}

/// Runs one durable consumer of the topology with a handler.
pub struct ConsumerRunner<H> {
    pool: PgPool,
    js: jetstream::Context,
    namespace: Namespace,
    stream: String,
    durable: String,
    handler: Arc<H>,
    settings: ConsumerSettings,
}

enum Outcome {
    Applied,
    Duplicate,
    Retry(Duration),
    DeadLettered,
}

impl<H: Handler> ConsumerRunner<H> {
    /// `stream` and `durable` are the names in the topology file (without namespace).
    pub fn new(
        pool: PgPool,
        js: jetstream::Context,
        namespace: Namespace,
        stream: &str,
        durable: &str,
        handler: H,
        settings: ConsumerSettings,
    ) -> Self {
        Self {
            pool,
            js,
            namespace,
            stream: stream.to_string(),
            durable: durable.to_string(),
            handler: Arc::new(handler),
            settings,
        }
    }

    /// Consumes until `cancel`; messages being handled then are finished, the rest go back to JetStream.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let stream_name = self.namespace.resource(&self.stream);
        let durable = self.namespace.resource(&self.durable);
        let mut consumer: PullConsumer = self
            .js
            .get_stream(&stream_name)
            .await
            .map_err(|e| {
                anyhow::anyhow!("stream {stream_name} is missing (apply the NATS topology): {e}")
            })?
            .get_consumer(&durable)
            .await
            .map_err(|e| {
                anyhow::anyhow!("consumer {durable} is missing (apply the NATS topology): {e}")
            })?;
        let info = consumer.info().await?.config.clone();
        let max_deliver = info.max_deliver;
        let progress_every = (info.ack_wait / 3).max(Duration::from_millis(100));
        let concurrency = self.settings.concurrency.max(1);

        let messages = consumer
            .stream()
            .max_messages_per_batch(concurrency)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await?;
        tracing::info!(consumer = %durable, stream = %stream_name, concurrency, "consumer started");
        let this = &self;
        messages
            .take_until(cancel.cancelled())
            .for_each_concurrent(concurrency, |message| async move {
                match message {
                    Ok(message) => this.process(message, max_deliver, progress_every).await,
                    Err(e) => tracing::warn!(consumer = %this.durable, error = %e, "pull failed; continuing"),
                }
            })
            .await;
        tracing::info!(consumer = %durable, "consumer stopped");
        Ok(())
    }

    async fn process(
        &self,
        message: jetstream::Message,
        max_deliver: i64,
        progress_every: Duration,
    ) {
        let headers = message.headers.clone().unwrap_or_default();
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
        let message_id = header(headers::MSG_ID);
        let type_name = header(headers::TYPE);
        let delivered = message
            .info()
            .map(|i| i.delivered.max(1) as u64)
            .unwrap_or(1);
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

        let started = std::time::Instant::now();
        let outcome = async {
            let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
            let dead = |reason: String| DeadLetter {
                consumer: &self.durable,
                subject: &subject,
                message_id: message_id.as_deref(),
                type_name: type_name.as_deref(),
                headers: headers_json(&headers),
                payload: &message.payload,
                reason,
                deliveries: delivered as i64,
            };
            let (Some(message_id), Some(type_name)) = (message_id.as_deref(), type_name.as_deref())
            else {
                let reason = format!(
                    "missing `{}` or `{}` header",
                    headers::MSG_ID,
                    headers::TYPE
                );
                return self.dead_letter(dead(reason)).await;
            };
            let decoded = match H::Message::decode(type_name, &message.payload) {
                Ok(decoded) => decoded,
                Err(e) => return self.dead_letter(dead(e.to_string())).await,
            };
            let envelope = Envelope {
                message_id: message_id.to_string(),
                subject: subject.clone(),
                meta: EventMeta {
                    tenant_id: header(headers::TENANT),
                    channel_id: header(headers::CHANNEL),
                    correlation_id: header(headers::CORRELATION),
                },
                message: decoded,
                delivered,
            };
            match self.apply(&message, &envelope, progress_every).await {
                Ok(true) => Outcome::Applied,
                Ok(false) => Outcome::Duplicate,
                Err(HandlerError::Reject(e)) => {
                    self.dead_letter(dead(format!("rejected by handler: {e:#}")))
                        .await
                }
                Err(HandlerError::Retry(e))
                    if max_deliver > 0 && delivered >= max_deliver as u64 =>
                {
                    self.dead_letter(dead(format!("gave up after {delivered} deliveries: {e:#}")))
                        .await
                }
                Err(HandlerError::Retry(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "handler failed; will retry");
                    Outcome::Retry(self.settings.backoff(delivered))
                }
            }
        }
        .instrument(span.clone())
        .await;

        let result = match outcome {
            Outcome::Applied | Outcome::Duplicate => message.double_ack().await,
            Outcome::Retry(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
            Outcome::DeadLettered => message.ack_with(AckKind::Term).await,
        };
        let label = match outcome {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Retry(_) => "retry",
            Outcome::DeadLettered => "dead_lettered",
        };
        metrics::counter!("bus_messages_total", "consumer" => self.durable.clone(), "outcome" => label).increment(1);
        metrics::histogram!("bus_handle_seconds", "consumer" => self.durable.clone())
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = result {
            // The message comes back after ack_wait; the inbox absorbs it if it was applied.
            tracing::warn!(parent: &span, error = %e, "acknowledgement failed");
        }
    }

    /// Runs the handler in a transaction with the inbox row; `Ok(false)` for a message already applied.
    async fn apply(
        &self,
        message: &jetstream::Message,
        envelope: &Envelope<H::Message>,
        progress_every: Duration,
    ) -> Result<bool, HandlerError> {
        let retry = |e: sqlx::Error| HandlerError::Retry(e.into());
        let mut tx = self.pool.begin().await.map_err(retry)?;
        if !inbox::record(&mut tx, &self.durable, &envelope.message_id)
            .await
            .map_err(retry)?
        {
            tracing::debug!("already applied; acknowledging the redelivery");
            return Ok(false);
        }
        {
            let handling = self.handler.handle(&mut tx, envelope);
            tokio::pin!(handling);
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + progress_every,
                progress_every,
            );
            loop {
                tokio::select! {
                    result = &mut handling => { result?; break; }
                    // Tell JetStream we are still working, so a long handler is not redelivered under our feet.
                    _ = ticker.tick() => { let _ = message.ack_with(AckKind::Progress).await; }
                }
            }
        }
        tx.commit().await.map_err(retry)?;
        // The handler may have written outbox rows: let this process's relay publish them now.
        super::outbox::wake();
        Ok(true)
    }

    async fn dead_letter(&self, letter: DeadLetter<'_>) -> Outcome {
        match inbox::dead_letter(&self.pool, letter).await {
            Ok(()) => Outcome::DeadLettered,
            // Never terminate a message we could not record: let it come back.
            Err(e) => {
                tracing::error!(error = %e, "could not record a dead letter; the message will be redelivered");
                Outcome::Retry(self.settings.backoff(1))
            }
        }
    }
}

fn headers_json(headers: &async_nats::HeaderMap) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| {
            let values: Vec<serde_json::Value> = v.iter().map(|v| v.as_str().into()).collect();
            (k.to_string(), serde_json::Value::Array(values))
        })
        .collect();
    serde_json::Value::Object(map)
}
