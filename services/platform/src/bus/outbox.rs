//! The transactional outbox. A service writes the message into `outbox` in the same transaction as the change that
//! causes it; the relay publishes committed rows to JetStream with `Nats-Msg-Id` = row id, waits for the acks and marks
//! the rows sent. A relay killed after publishing and before marking publishes the rows again on restart: JetStream
//! drops the copies inside the stream's duplicate window, and the consumers' inbox drops any that arrive later.
//!
//! The relay polls (an indexed query for unsent rows) and is woken at once by [`wake`] from writers in its own
//! process. It does not use NOTIFY: a PostgreSQL transaction that notifies takes a database-wide lock at commit, which
//! serialises every producer's commit behind one fsync (measured: see the pipeline benchmark).

use std::{collections::HashMap, time::Duration};

use async_nats::{HeaderMap, jetstream};
use futures::future::join_all;
use prost::{Message, Name};
use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    envelope::{EventMeta, headers},
    names::{Namespace, event_subject},
};
use crate::config::OutboxSettings;

/// Wakes the relays of this process (they also poll, for rows committed by other processes).
static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Tells this process's relays that outbox rows were committed. Call it after a commit that enqueued messages; the
/// consumer runner calls it after every handler commit.
pub fn wake() {
    WAKE.notify_waiters();
}

/// A message ready to be written to the outbox.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub subject: String,
    pub type_name: String,
    pub payload: Vec<u8>,
    pub meta: EventMeta,
}

impl OutboxMessage {
    /// An event on its standard subject (`events.<service>.v1.<Message>`).
    pub fn event<M: Message + Name>(meta: EventMeta, message: &M) -> Self {
        Self::to_subject(event_subject::<M>(), meta, message)
    }

    /// A message on an explicit subject (commands to a gateway partition).
    pub fn to_subject<M: Message + Name>(subject: String, meta: EventMeta, message: &M) -> Self {
        Self {
            subject,
            type_name: M::full_name(),
            payload: message.encode_to_vec(),
            meta,
        }
    }
}

/// Writes `message` in the caller's transaction; nothing is published unless the transaction commits.
/// The current trace context is stored with it, so the consumer's span continues the caller's trace.
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    message: OutboxMessage,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    let mut trace = HashMap::new();
    crate::telemetry::inject_current(|k, v| {
        trace.insert(k.to_string(), v);
    });
    sqlx::query(
        "INSERT INTO outbox (id, subject, type_name, payload, tenant_id, channel_id, correlation_id, trace_headers)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(&message.subject)
    .bind(&message.type_name)
    .bind(&message.payload)
    .bind(&message.meta.tenant_id)
    .bind(&message.meta.channel_id)
    .bind(&message.meta.correlation_id)
    .bind(sqlx::types::Json(trace))
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Publishes committed outbox rows.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    namespace: Namespace,
    settings: OutboxSettings,
}

struct PendingRow {
    id: Uuid,
    subject: String,
    type_name: String,
    payload: bytes::Bytes,
    meta: EventMeta,
    trace: HashMap<String, String>,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        js: jetstream::Context,
        namespace: Namespace,
        settings: OutboxSettings,
    ) -> Self {
        Self {
            pool,
            js,
            namespace,
            settings,
        }
    }

    /// Runs until `cancel`: drains when woken by [`wake`], and every poll interval.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut last_cleanup = std::time::Instant::now();
        loop {
            loop {
                match self.drain_batch(true).await {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox relay could not publish; retrying");
                        tokio::time::sleep(self.settings.poll_interval()).await;
                        break;
                    }
                }
            }
            if last_cleanup.elapsed() > Duration::from_secs(300) {
                last_cleanup = std::time::Instant::now();
                if let Err(e) = self.delete_sent().await {
                    tracing::warn!(error = %e, "outbox cleanup failed");
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = WAKE.notified() => {}
                _ = tokio::time::sleep(self.settings.poll_interval()) => {}
            }
        }
    }

    /// Publishes one batch of unsent rows and marks them sent; returns how many were sent.
    /// With `mark == false` it stops right after the acks, as a crash there would (tests use it).
    async fn drain_batch(&self, mark: bool) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, subject, type_name, payload, tenant_id, channel_id, correlation_id, trace_headers
             FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(i64::from(self.settings.batch_size))
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let rows: Vec<PendingRow> = rows
            .into_iter()
            .map(|r| PendingRow {
                id: r.get("id"),
                subject: r.get("subject"),
                type_name: r.get("type_name"),
                payload: bytes::Bytes::from(r.get::<Vec<u8>, _>("payload")),
                meta: EventMeta {
                    tenant_id: r.get("tenant_id"),
                    channel_id: r.get("channel_id"),
                    correlation_id: r.get("correlation_id"),
                },
                trace: r
                    .get::<sqlx::types::Json<HashMap<String, String>>, _>("trace_headers")
                    .0,
            })
            .collect();

        // Send the whole batch before waiting for any ack: one round trip per batch, not per message.
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            // Headers first: `headers()` replaces the whole map, including the id `message_id()` sets.
            let publish = jetstream::message::PublishMessage::build()
                .headers(envelope_headers(&row.type_name, &row.meta, &row.trace))
                .message_id(row.id.to_string())
                // A reference-counted handle: no copy of the payload per publish.
                .payload(row.payload.clone());
            pending.push(
                self.js
                    .send_publish(self.namespace.subject(&row.subject), publish),
            );
        }
        let mut acked = Vec::with_capacity(rows.len());
        let mut failures = 0usize;
        for (row, result) in rows.iter().zip(join_all(pending).await) {
            let ack = match result {
                Ok(future) => future.await,
                Err(e) => Err(e),
            };
            match ack {
                Ok(ack) => {
                    if ack.duplicate {
                        metrics::counter!("outbox_duplicates_dropped_total").increment(1);
                    }
                    acked.push(row.id)
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(outbox_id = %row.id, subject = %row.subject, error = %e, "publish not acknowledged");
                }
            }
        }
        if !mark {
            return Ok(acked.len());
        }
        sqlx::query("UPDATE outbox SET sent_at = now() WHERE id = ANY($1)")
            .bind(&acked)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        metrics::counter!("outbox_published_total").increment(acked.len() as u64);
        anyhow::ensure!(
            failures == 0,
            "{failures} outbox messages were not acknowledged by JetStream"
        );
        Ok(acked.len())
    }

    async fn delete_sent(&self) -> sqlx::Result<u64> {
        let hours = i64::try_from(self.settings.retention_hours).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "DELETE FROM outbox WHERE sent_at < now() - make_interval(hours => $1::int)",
        )
        .bind(hours.min(i64::from(i32::MAX)) as i32)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Publishes one batch as [`Relay::run`] would, then stops before marking it sent: a simulated crash.
    #[cfg(feature = "test-support")]
    pub async fn publish_batch_then_crash(&self) -> anyhow::Result<usize> {
        self.drain_batch(false).await
    }

    /// Publishes and marks one batch (tests drive the relay step by step with it).
    #[cfg(feature = "test-support")]
    pub async fn drain_once(&self) -> anyhow::Result<usize> {
        self.drain_batch(true).await
    }
}

/// Builds the envelope headers (the message id is set by `PublishMessage::message_id`).
pub fn envelope_headers(
    type_name: &str,
    meta: &EventMeta,
    trace: &HashMap<String, String>,
) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(headers::TYPE, type_name);
    if let Some(t) = &meta.tenant_id {
        map.insert(headers::TENANT, t.as_str());
    }
    if let Some(c) = &meta.channel_id {
        map.insert(headers::CHANNEL, c.as_str());
    }
    if let Some(c) = &meta.correlation_id {
        map.insert(headers::CORRELATION, c.as_str());
    }
    for (k, v) in trace {
        map.insert(k.as_str(), v.as_str());
    }
    map
}
