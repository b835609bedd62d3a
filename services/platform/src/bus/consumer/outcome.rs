//! What becomes of a handled message: acked, redelivered after a backoff, dead-lettered, parked or given back.

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
    DeadLettered,
    Deferred(Duration),
}

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
                Outcome::DeadLettered => message.ack_with(AckKind::Term).await,
                Outcome::Deferred(_) => Ok(()),
            };
            let label = match outcome {
                Outcome::Applied => "applied",
                Outcome::Duplicate => "duplicate",
                Outcome::Retry(_) => "retry",
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
            Err(HandlerError::Retry(e)) if prepared.last_delivery => {
                self.dead_letter(dead(format!("gave up after {delivered} deliveries: {e:#}")))
                    .await
            }
            Err(HandlerError::Retry(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "handler failed; will retry");
                Outcome::Retry(self.settings.backoff(delivered))
            }
            // Not a failure: no warning, no delivery counted (parked, not NAKed).
            Err(HandlerError::Defer(delay)) => {
                tracing::debug!(?delay, "handler deferred the message");
                Outcome::Deferred(delay)
            }
        }
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
