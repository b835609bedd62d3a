//! What becomes of a handled message: acked, redelivered after a backoff, dead-lettered, parked or given back.
//!
//! Only real failures count toward the dead letters: a `Retry` while the database answers is recorded in
//! `consumer_failures`, and the message is dead-lettered at its `consumer.max_failures`-th. A `Retry` while the
//! database does not answer, or a dead letter that cannot be written, keeps the message parked (see `database`); a
//! `Release` gives it back to JetStream at once without counting anything.

use std::time::Duration;

use async_nats::jetstream::AckKind;
use tracing::Instrument;

use super::{
    ConsumerRunner, Handler, HandlerError,
    parking::Parking,
    prepared::{Prepared, headers_json},
};
use crate::bus::inbox::{self, DeadLetter};

pub(super) enum Outcome {
    Applied,
    Duplicate,
    Retry(Duration),
    /// Given back for another consumer or a later delivery; not a failure.
    Released,
    DeadLettered,
    Deferred(Duration),
}

/// How long a message kept through a database outage waits before it is tried again (the probe resumes pulling).
const DATABASE_DOWN_DELAY: Duration = Duration::from_secs(2);

impl<H: Handler> ConsumerRunner<H> {
    /// Applies a batch in one transaction (one commit for many messages), then acknowledges each message as it
    /// fared: applied and duplicates acked, failures redelivered with backoff or dead-lettered, deferred ones parked.
    pub(super) async fn process(
        &self,
        batch: Vec<Prepared<H::Message>>,
        progress_every: Duration,
        parking: &Parking<H::Message>,
    ) {
        let started = std::time::Instant::now();
        let results = self.apply(&batch, progress_every).await;
        let mut deferred = Vec::new();
        for (prepared, result) in batch.into_iter().zip(results) {
            let outcome = self
                .outcome(&prepared, result)
                .instrument(prepared.span.clone())
                .await;
            let message = &prepared.message;
            let acked = match outcome {
                Outcome::Applied | Outcome::Duplicate => message.double_ack().await,
                Outcome::Retry(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
                Outcome::Released => message.ack_with(AckKind::Nak(None)).await,
                Outcome::DeadLettered => message.ack_with(AckKind::Term).await,
                Outcome::Deferred(_) => Ok(()),
            };
            let label = match outcome {
                Outcome::Applied => "applied",
                Outcome::Duplicate => "duplicate",
                Outcome::Retry(_) => "retry",
                Outcome::Released => "released",
                Outcome::DeadLettered => "dead_lettered",
                Outcome::Deferred(_) => "deferred",
            };
            metrics::counter!("bus_messages_total", "consumer" => self.durable.clone(), "outcome" => label).increment(1);
            if let Err(e) = acked {
                // The message comes back after ack_wait; the inbox absorbs it if it was applied.
                tracing::warn!(parent: &prepared.span, error = %e, "acknowledgement failed");
            }
            if let Outcome::Deferred(delay) = outcome {
                deferred.push((prepared, delay));
            }
        }
        metrics::histogram!("bus_batch_seconds", "consumer" => self.durable.clone())
            .record(started.elapsed().as_secs_f64());
        for (prepared, delay) in deferred {
            self.park(prepared, delay, progress_every, parking);
        }
    }

    async fn outcome(
        &self,
        prepared: &Prepared<H::Message>,
        result: Option<Result<bool, HandlerError>>,
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
            Err(HandlerError::Retry(e)) => self.failed(prepared, e, dead).await,
            // JetStream would not deliver it again after a NAK on its last delivery: record it instead of losing it.
            Err(HandlerError::Release(e))
                if prepared.max_deliver > 0 && prepared.delivered >= prepared.max_deliver as u64 =>
            {
                self.dead_letter(dead(format!(
                    "given back on JetStream's last delivery ({delivered}, the consumer's max_deliver): {e:#}"
                )))
                .await
            }
            Err(HandlerError::Release(e)) => {
                tracing::info!(reason = %format!("{e:#}"), "message given back (not counted as a failure)");
                Outcome::Released
            }
            // Not a failure: no warning, no delivery counted (parked, not NAKed).
            Err(HandlerError::Defer(delay)) => {
                tracing::debug!(?delay, "handler deferred the message");
                Outcome::Deferred(delay)
            }
        }
    }

    /// A `Retry`: kept through a database outage, else counted, then redelivered after a backoff or dead-lettered.
    async fn failed<'a>(
        &'a self,
        prepared: &'a Prepared<H::Message>,
        error: anyhow::Error,
        dead: impl FnOnce(String) -> DeadLetter<'a>,
    ) -> Outcome {
        let error = format!("{error:#}");
        if !self.database.check().await {
            tracing::warn!(%error, "handler failed while the database is unavailable; message kept, not counted");
            return Outcome::Deferred(DATABASE_DOWN_DELAY);
        }
        let failures = prepared.failures + 1;
        if prepared.last_delivery {
            return self
                .dead_letter(dead(format!(
                    "gave up after {failures} failures ({} deliveries): {error}",
                    prepared.delivered
                )))
                .await;
        }
        let Some(message_id) = prepared.message_id.as_deref() else {
            return Outcome::Retry(self.settings.backoff(u64::from(failures)));
        };
        match inbox::record_failure(&self.pool, &self.durable, message_id, &error).await {
            Ok(failures) => {
                tracing::warn!(%error, failures, "handler failed; will retry");
                Outcome::Retry(self.settings.backoff(u64::from(failures)))
            }
            Err(e) => {
                tracing::warn!(%error, record_error = %e, "handler failed and its failure could not be recorded; kept");
                self.database.mark_down();
                Outcome::Deferred(DATABASE_DOWN_DELAY)
            }
        }
    }

    async fn dead_letter(&self, letter: DeadLetter<'_>) -> Outcome {
        match inbox::dead_letter(&self.pool, letter).await {
            Ok(()) => Outcome::DeadLettered,
            // Never terminate a message we could not record, and never spend a delivery on it: on its last delivery
            // a NAK would never be redelivered. Keep it until the database takes the dead letter.
            Err(e) => {
                tracing::error!(error = %e, "could not record a dead letter; the message is kept until the database answers");
                self.database.mark_down();
                Outcome::Deferred(DATABASE_DOWN_DELAY)
            }
        }
    }
}
