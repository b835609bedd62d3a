//! The transactional outbox. A service writes the message into `outbox` in the same transaction as the change that
//! causes it; the relay publishes committed rows to JetStream with `Nats-Msg-Id` = row id, waits for the acks and marks
//! the rows sent. A relay killed after publishing and before marking publishes the rows again on restart: JetStream
//! drops the copies inside the stream's duplicate window, and the consumers' inbox drops any that arrive later.
//!
//! The relay polls (an indexed query for unsent rows) and is woken at once by [`wake`] from writers in its own
//! process. It does not use NOTIFY: a PostgreSQL transaction that notifies takes a database-wide lock at commit, which
//! serialises every producer's commit behind one fsync (measured: see the pipeline benchmark).
//!
//! Sizes are bounded at both ends. [`enqueue`] refuses a payload above `outbox.max_payload_bytes` (default 900 KiB,
//! under NATS's default `max_payload` of 1 MiB), so a producer learns at write time, not when the relay publishes. A
//! relay batch holds at most `outbox.batch_size` rows and stops at `outbox.batch_max_bytes` of payload (always at least
//! one row): the query sums the sizes of the oldest unsent rows (`octet_length`, taken from the stored value's header
//! without fetching TOASTed data) and loads only the ones within the budget, so a burst of large rows (a catalog
//! export) is never in memory at once. The largest batch is thus the larger of the budget and the largest row.
//!
//! A row JetStream refuses for good is marked failed (`failed_at`, `failure_reason`) with a warning and the metric
//! `outbox_failed_total`, and the relay goes on with the rows behind it: a message larger than the server's
//! `max_payload` or the stream's maximum message size, or a subject no stream takes (no responders, and the JetStream
//! API confirms no stream matches it). Anything else (a timeout, a broken connection, NATS restarting, JetStream
//! answering no responders while a stream does match) leaves the row unsent, to be published again.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use async_nats::{
    HeaderMap,
    jetstream::{self, ErrorCode, context::PublishError, context::PublishErrorKind},
};
use futures::future::join_all;
use prost::{Message, Name};
use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    envelope::{EventMeta, headers},
    names::{Namespace, event_subject},
};
use crate::config::{OutboxLimits, OutboxSettings};

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

/// The largest payload [`enqueue`] accepts, for the whole process (`outbox.max_payload_bytes`, set at start).
static MAX_PAYLOAD_BYTES: AtomicUsize = AtomicUsize::new(900 * 1024);

/// Sets the largest payload [`enqueue`] accepts in this process; the service runtime sets it from
/// `outbox.max_payload_bytes` at start.
pub fn set_max_payload_bytes(bytes: usize) {
    MAX_PAYLOAD_BYTES.store(bytes, Ordering::Relaxed);
}

/// The largest payload [`enqueue`] accepts in this process.
pub fn max_payload_bytes() -> usize {
    MAX_PAYLOAD_BYTES.load(Ordering::Relaxed)
}

/// [`enqueue`] refused a payload larger than `outbox.max_payload_bytes`. It comes as the source of a
/// [`sqlx::Error::Encode`]; [`PayloadTooLarge::of`] finds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the message on `{subject}` is {size} bytes, over the outbox's limit of {limit} bytes (outbox.max_payload_bytes): split it"
)]
pub struct PayloadTooLarge {
    pub subject: String,
    pub size: usize,
    pub limit: usize,
}

impl PayloadTooLarge {
    /// The refusal inside an error returned by [`enqueue`], if that is what it is.
    pub fn of(error: &sqlx::Error) -> Option<&Self> {
        match error {
            sqlx::Error::Encode(source) => source.downcast_ref(),
            _ => None,
        }
    }
}

/// Writes `message` in the caller's transaction; nothing is published unless the transaction commits.
/// The current trace context is stored with it, so the consumer's span continues the caller's trace.
///
/// A payload above `outbox.max_payload_bytes` is refused with [`sqlx::Error::Encode`] holding a [`PayloadTooLarge`]
/// (it names the subject and the size), and nothing is written: NATS would refuse it when the relay publishes.
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    message: OutboxMessage,
) -> sqlx::Result<Uuid> {
    let limit = max_payload_bytes();
    if message.payload.len() > limit {
        metrics::counter!("outbox_payload_refused_total").increment(1);
        return Err(sqlx::Error::Encode(Box::new(PayloadTooLarge {
            subject: message.subject,
            size: message.payload.len(),
            limit,
        })));
    }
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
    limits: OutboxLimits,
}

struct PendingRow {
    id: Uuid,
    subject: String,
    type_name: String,
    payload: bytes::Bytes,
    meta: EventMeta,
    trace: HashMap<String, String>,
}

/// What one relay batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Rows loaded: their payloads were in memory at once.
    pub rows: usize,
    /// The payload bytes of those rows: at most `outbox.batch_max_bytes`, unless the batch is one larger row.
    pub payload_bytes: usize,
    /// Rows JetStream acknowledged, marked sent.
    pub sent: usize,
    /// Rows JetStream refused for good, marked failed.
    pub failed: usize,
    /// Rows left unsent after a passing failure, to be published again.
    pub retry: usize,
}

/// What became of one publish.
#[derive(Clone)]
enum Publish {
    Acked,
    /// JetStream will never take this message; the reason is stored with the row.
    Refused {
        kind: &'static str,
        reason: String,
    },
    /// A passing failure (timeout, connection, restart): publish again later.
    Retry(String),
}

impl Relay {
    /// A relay with the default [`OutboxLimits`]; see [`Relay::with_limits`].
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
            limits: OutboxLimits::default(),
        }
    }

    /// The same relay with these limits (the batch byte budget).
    pub fn with_limits(mut self, limits: OutboxLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Runs until `cancel`: drains when woken by [`wake`], and every poll interval.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut last_cleanup = std::time::Instant::now();
        loop {
            loop {
                match self.drain_batch(true).await {
                    Ok(report) if report.rows == 0 => break,
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

    /// Publishes one batch of unsent rows, marks them sent (or failed, when JetStream refuses one for good) and
    /// reports it. With `mark == false` it stops right after the acks, as a crash there would (tests use it). A
    /// passing failure of any row is an error, after the others are marked.
    async fn drain_batch(&self, mark: bool) -> anyhow::Result<BatchReport> {
        let mut tx = self.pool.begin().await?;
        // The oldest unsent rows, up to batch_size, and of those the prefix whose payloads fit the byte budget (the
        // first always): sizes come from octet_length, which does not fetch TOASTed data, so rows past the budget
        // are never loaded. Rows another relay holds are skipped.
        let rows = sqlx::query(
            "SELECT id, subject, type_name, payload, tenant_id, channel_id, correlation_id, trace_headers
             FROM outbox
             WHERE id = ANY(ARRAY(
                 SELECT id FROM (
                     SELECT id, row_number() OVER w AS n, sum(size) OVER w AS running
                     FROM (
                         SELECT id, octet_length(payload) AS size FROM outbox
                         WHERE sent_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT $1
                     ) head
                     WINDOW w AS (ORDER BY id)
                 ) sized
                 WHERE n = 1 OR running <= $2
             ))
             AND sent_at IS NULL AND failed_at IS NULL
             ORDER BY id
             FOR UPDATE SKIP LOCKED",
        )
        .bind(i64::from(self.settings.batch_size))
        .bind(i64::try_from(self.limits.batch_max_bytes).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(BatchReport::default());
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
        let mut report = BatchReport {
            rows: rows.len(),
            payload_bytes: rows.iter().map(|r| r.payload.len()).sum(),
            ..BatchReport::default()
        };
        metrics::histogram!("outbox_batch_payload_bytes").record(report.payload_bytes as f64);

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
        let mut refused: Vec<(Uuid, String)> = Vec::new();
        // Whether a stream takes a subject, asked once per subject of the batch.
        let mut stream_checks: HashMap<String, Publish> = HashMap::new();
        // Every ack is awaited at once: with NATS unreachable a batch costs one ack timeout, not one per row.
        let acks = join_all(
            join_all(pending)
                .await
                .into_iter()
                .map(|sent| async move { sent?.await }),
        )
        .await;
        for (row, ack) in rows.iter().zip(acks) {
            let outcome = match ack {
                Ok(ack) => {
                    if ack.duplicate {
                        metrics::counter!("outbox_duplicates_dropped_total").increment(1);
                    }
                    Publish::Acked
                }
                Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                    match stream_checks.get(&row.subject) {
                        Some(known) => known.clone(),
                        None => {
                            let checked = self.check_stream(&row.subject).await;
                            stream_checks.insert(row.subject.clone(), checked.clone());
                            checked
                        }
                    }
                }
                Err(e) => classify(&e, row.payload.len()),
            };
            match outcome {
                Publish::Acked => acked.push(row.id),
                Publish::Refused { kind, reason } => {
                    tracing::warn!(
                        outbox_id = %row.id,
                        subject = %row.subject,
                        payload_bytes = row.payload.len(),
                        reason = %reason,
                        "jetstream refuses this outbox message for good; marked failed"
                    );
                    metrics::counter!("outbox_failed_total", "reason" => kind).increment(1);
                    refused.push((row.id, reason));
                }
                Publish::Retry(error) => {
                    report.retry += 1;
                    tracing::warn!(outbox_id = %row.id, subject = %row.subject, error = %error, "publish not acknowledged");
                }
            }
        }
        report.sent = acked.len();
        report.failed = refused.len();
        if !mark {
            return Ok(report);
        }
        sqlx::query("UPDATE outbox SET sent_at = now() WHERE id = ANY($1)")
            .bind(&acked)
            .execute(&mut *tx)
            .await?;
        if !refused.is_empty() {
            let (ids, reasons): (Vec<Uuid>, Vec<String>) = refused.into_iter().unzip();
            sqlx::query(
                "UPDATE outbox SET failed_at = now(), failure_reason = f.reason
                 FROM unnest($1::uuid[], $2::text[]) AS f(id, reason) WHERE outbox.id = f.id",
            )
            .bind(&ids)
            .bind(&reasons)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        metrics::counter!("outbox_published_total").increment(report.sent as u64);
        anyhow::ensure!(
            report.retry == 0,
            "{} outbox messages were not acknowledged by JetStream",
            report.retry
        );
        Ok(report)
    }

    /// After "no responders" to a publish on `subject`: refused for good only when the JetStream API answers that no
    /// stream takes the subject. While JetStream restarts or elects a leader it may answer no responders too, and then
    /// either a stream still matches or the API does not answer: publish again.
    async fn check_stream(&self, subject: &str) -> Publish {
        let full = self.namespace.subject(subject);
        match self.js.stream_by_subject(full.as_str()).await {
            Err(e) if e.kind() == jetstream::context::GetStreamByNameErrorKind::NotFound => {
                Publish::Refused {
                    kind: "no_stream",
                    reason: format!("no JetStream stream takes the subject `{full}`"),
                }
            }
            Err(e) => Publish::Retry(format!(
                "no responders, and the streams could not be listed: {e}"
            )),
            Ok(stream) => Publish::Retry(format!(
                "no responders, though stream {stream} takes the subject"
            )),
        }
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
        Ok(self.drain_batch(false).await?.sent)
    }

    /// Publishes and marks one batch (tests drive the relay step by step with it); returns how many were sent.
    #[cfg(feature = "test-support")]
    pub async fn drain_once(&self) -> anyhow::Result<usize> {
        Ok(self.drain_batch(true).await?.sent)
    }

    /// Like [`Relay::drain_once`], with the batch's whole report.
    #[cfg(feature = "test-support")]
    pub async fn drain_once_reporting(&self) -> anyhow::Result<BatchReport> {
        self.drain_batch(true).await
    }
}

/// Whether JetStream (or the client, before sending) refused a message for good: too large for the server's
/// `max_payload` or the stream's maximum message or header size. Everything else is worth another try.
fn classify(error: &PublishError, payload_bytes: usize) -> Publish {
    if error.kind() == PublishErrorKind::MaxPayloadExceeded {
        return Publish::Refused {
            kind: "too_large",
            reason: format!("{payload_bytes} payload bytes: {error}"),
        };
    }
    let code = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .map(jetstream::Error::error_code);
    match code {
        Some(
            ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM | ErrorCode::STREAM_HEADER_EXCEEDS_MAXIMUM,
        ) => Publish::Refused {
            kind: "too_large",
            reason: format!("{payload_bytes} payload bytes: {error}"),
        },
        _ => Publish::Retry(error.to_string()),
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
