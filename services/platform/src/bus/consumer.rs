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

/// One handler shared by several consumers (the gateway's partitions share one executor, so one budget per shop).
impl<H: Handler> Handler for Arc<H> {
    type Message = H::Message;

    fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope<Self::Message>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a {
        H::handle(self, tx, event)
    }
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

        let batch_size = self.settings.batch_size.max(1);
        let messages = consumer
            .stream()
            .max_messages_per_batch(concurrency * batch_size)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await?;
        tracing::info!(consumer = %durable, stream = %stream_name, concurrency, batch_size, "consumer started");
        let this = &self;
        messages
            .take_until(cancel.cancelled())
            .ready_chunks(batch_size)
            .for_each_concurrent(concurrency, |pulled| async move {
                let mut batch = Vec::with_capacity(pulled.len());
                for message in pulled {
                    match message {
                        Ok(message) => batch.push(this.prepare(message)),
                        Err(e) => tracing::warn!(consumer = %this.durable, error = %e, "pull failed; continuing"),
                    }
                }
                this.process(batch, max_deliver, progress_every).await;
            })
            .await;
        tracing::info!(consumer = %durable, "consumer stopped");
        Ok(())
    }

    /// Reads a message's envelope and decodes its payload (the failure is kept as the dead-letter reason).
    fn prepare(&self, message: jetstream::Message) -> Prepared<H::Message> {
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
            span,
            envelope,
        }
    }

    /// Applies a batch in one transaction (one commit for many messages), then acknowledges each message as it
    /// fared: applied and duplicates acked, failures redelivered with backoff or dead-lettered.
    async fn process(
        &self,
        batch: Vec<Prepared<H::Message>>,
        max_deliver: i64,
        progress_every: Duration,
    ) {
        let started = std::time::Instant::now();
        let results = self.apply(&batch, progress_every).await;
        for (prepared, result) in batch.iter().zip(results) {
            let outcome = self
                .outcome(prepared, result, max_deliver)
                .instrument(prepared.span.clone())
                .await;
            let message = &prepared.message;
            let acked = match outcome {
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
            if let Err(e) = acked {
                // The message comes back after ack_wait; the inbox absorbs it if it was applied.
                tracing::warn!(parent: &prepared.span, error = %e, "acknowledgement failed");
            }
        }
        metrics::histogram!("bus_batch_seconds", "consumer" => self.durable.clone())
            .record(started.elapsed().as_secs_f64());
    }

    async fn outcome(
        &self,
        prepared: &Prepared<H::Message>,
        result: Option<Result<bool, HandlerError>>,
        max_deliver: i64,
    ) -> Outcome {
        let delivered = prepared.delivered;
        let dead = |reason: String| DeadLetter {
            consumer: &self.durable,
            subject: &prepared.subject,
            message_id: prepared.message_id.as_deref(),
            type_name: prepared.type_name.as_deref(),
            headers: headers_json(&prepared.headers),
            payload: &prepared.message.payload,
            reason,
            deliveries: delivered as i64,
        };
        let result = match (&prepared.envelope, result) {
            (Err(reason), _) => return self.dead_letter(dead(reason.clone())).await,
            (Ok(_), Some(result)) => result,
            (Ok(_), None) => Err(HandlerError::Retry(anyhow::anyhow!("not applied"))),
        };
        match result {
            Ok(true) => Outcome::Applied,
            Ok(false) => Outcome::Duplicate,
            Err(HandlerError::Reject(e)) => {
                self.dead_letter(dead(format!("rejected by handler: {e:#}")))
                    .await
            }
            Err(HandlerError::Retry(e)) if max_deliver > 0 && delivered >= max_deliver as u64 => {
                self.dead_letter(dead(format!("gave up after {delivered} deliveries: {e:#}")))
                    .await
            }
            Err(HandlerError::Retry(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "handler failed; will retry");
                Outcome::Retry(self.settings.backoff(delivered))
            }
        }
    }

    /// Runs the handler for every decodable message of the batch in one transaction, each with its inbox row inside
    /// a savepoint so one failure does not undo the others. Per message: `Ok(true)`
    /// applied, `Ok(false)` already applied before, `Err` not applied; `None` for an undecodable message.
    async fn apply(
        &self,
        batch: &[Prepared<H::Message>],
        progress_every: Duration,
    ) -> Vec<Option<Result<bool, HandlerError>>> {
        let decodable = batch.iter().filter(|p| p.envelope.is_ok()).count();
        let mut results: Vec<Option<Result<bool, HandlerError>>> =
            batch.iter().map(|_| None).collect();
        if decodable == 0 {
            return results;
        }
        let retry_all = |e: &sqlx::Error, results: &mut Vec<Option<Result<bool, HandlerError>>>| {
            for (slot, prepared) in results.iter_mut().zip(batch) {
                if prepared.envelope.is_ok() {
                    *slot = Some(Err(HandlerError::Retry(anyhow::anyhow!("database: {e}"))));
                }
            }
        };
        let mut tx = match self.pool.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                retry_all(&e, &mut results);
                return results;
            }
        };
        {
            let work = async {
                for (slot, prepared) in results.iter_mut().zip(batch) {
                    let Ok(envelope) = &prepared.envelope else {
                        continue;
                    };
                    *slot = Some(
                        self.apply_one(&mut tx, envelope)
                            .instrument(prepared.span.clone())
                            .await,
                    );
                }
            };
            tokio::pin!(work);
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + progress_every,
                progress_every,
            );
            loop {
                tokio::select! {
                    _ = &mut work => break,
                    // Tell JetStream we are still working, so long handlers are not redelivered under our feet.
                    _ = ticker.tick() => {
                        for prepared in batch {
                            let _ = prepared.message.ack_with(AckKind::Progress).await;
                        }
                    }
                }
            }
        }
        let applied = results.iter().any(|r| matches!(r, Some(Ok(true))));
        match tx.commit().await {
            Ok(()) if applied => super::outbox::wake(),
            Ok(()) => {}
            Err(e) => {
                for slot in results.iter_mut() {
                    if matches!(slot, Some(Ok(_))) {
                        *slot = Some(Err(HandlerError::Retry(anyhow::anyhow!(
                            "commit failed: {e}"
                        ))));
                    }
                }
            }
        }
        results
    }

    /// One message inside a savepoint of the batch's transaction, so its failure undoes only its own writes.
    async fn apply_one(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        envelope: &Envelope<H::Message>,
    ) -> Result<bool, HandlerError> {
        let retry = |e: sqlx::Error| HandlerError::Retry(e.into());
        sqlx::query("SAVEPOINT consume")
            .execute(&mut **tx)
            .await
            .map_err(retry)?;
        let result = match inbox::record(tx, &self.durable, &envelope.message_id)
            .await
            .map_err(retry)
        {
            Ok(false) => {
                tracing::debug!("already applied; acknowledging the redelivery");
                Ok(false)
            }
            Ok(true) => self.handler.handle(tx, envelope).await.map(|()| true),
            Err(e) => Err(e),
        };
        let end = if result.is_ok() {
            "RELEASE SAVEPOINT consume"
        } else {
            "ROLLBACK TO SAVEPOINT consume"
        };
        sqlx::query(end).execute(&mut **tx).await.map_err(retry)?;
        result
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

/// A pulled message with its envelope read.
struct Prepared<M> {
    message: jetstream::Message,
    headers: async_nats::HeaderMap,
    subject: String,
    message_id: Option<String>,
    type_name: Option<String>,
    delivered: u64,
    span: tracing::Span,
    /// The decoded envelope, or why the message cannot be decoded.
    envelope: Result<Envelope<M>, String>,
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
