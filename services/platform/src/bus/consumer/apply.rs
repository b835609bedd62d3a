//! Applying a batch: one transaction for the batch, a savepoint and an inbox row per message, progress acks while
//! the handler runs.

use std::time::Duration;

use async_nats::jetstream::AckKind;
use sqlx::{Postgres, Transaction};
use tracing::Instrument;

use super::{ConsumerRunner, Handler, HandlerError, prepared::Prepared};
use crate::bus::{Envelope, inbox};

impl<H: Handler> ConsumerRunner<H> {
    /// Runs the handler for every decodable message of the batch in one transaction, each with its inbox row inside
    /// a savepoint so one failure does not undo the others. Per message: `Ok(true)`
    /// applied, `Ok(false)` already applied before, `Err` not applied; `None` for an undecodable message.
    pub(super) async fn apply(
        &self,
        batch: &[Prepared<H::Message>],
        progress_every: Duration,
    ) -> Vec<Option<Result<bool, HandlerError>>> {
        // Messages the handler would defer anyway are deferred before a transaction (and a connection) is taken.
        let mut results: Vec<Option<Result<bool, HandlerError>>> = batch
            .iter()
            .map(|p| {
                let delay = self.handler.defer_hint(p.envelope.as_ref().ok()?)?;
                Some(Err(HandlerError::Defer(delay)))
            })
            .collect();
        // The handler's work outside the transaction: no connection is held while it runs.
        let prepare = async {
            for (slot, prepared) in results.iter_mut().zip(batch) {
                let (Ok(envelope), None) = (&prepared.envelope, &slot) else {
                    continue;
                };
                if let Err(e) = self
                    .handler
                    .prepare(envelope)
                    .instrument(prepared.span.clone())
                    .await
                {
                    *slot = Some(Err(e));
                }
            }
        };
        with_progress(batch, progress_every, prepare).await;
        let decodable = batch
            .iter()
            .zip(&results)
            .filter(|(p, r)| p.envelope.is_ok() && r.is_none())
            .count();
        if decodable == 0 {
            return results;
        }
        let retry_all = |e: &sqlx::Error, results: &mut Vec<Option<Result<bool, HandlerError>>>| {
            for (slot, prepared) in results.iter_mut().zip(batch) {
                if prepared.envelope.is_ok() && slot.is_none() {
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
        let work = async {
            for (slot, prepared) in results.iter_mut().zip(batch) {
                let (Ok(envelope), None) = (&prepared.envelope, &slot) else {
                    continue;
                };
                *slot = Some(
                    self.apply_one(&mut tx, envelope, prepared.failures > 0)
                        .instrument(prepared.span.clone())
                        .await,
                );
            }
        };
        with_progress(batch, progress_every, work).await;
        let applied = results.iter().any(|r| matches!(r, Some(Ok(true))));
        match tx.commit().await {
            Ok(()) if applied => crate::bus::outbox::wake(),
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
        had_failures: bool,
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
            Ok(true) => match self.handler.handle(tx, envelope).await {
                // Applied: its failures are history.
                Ok(()) if had_failures => {
                    inbox::clear_failures(&mut **tx, &self.durable, &envelope.message_id)
                        .await
                        .map(|()| true)
                        .map_err(retry)
                }
                result => result.map(|()| true),
            },
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
}

/// Runs `work`, telling JetStream every `every` that the batch is still being worked on, so long handlers are not
/// redelivered under our feet.
async fn with_progress<M>(
    batch: &[Prepared<M>],
    every: Duration,
    work: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(work);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = &mut work => return,
            _ = ticker.tick() => {
                for prepared in batch {
                    let _ = prepared.message.ack_with(AckKind::Progress).await;
                }
            }
        }
    }
}
