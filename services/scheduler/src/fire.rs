//! The fire loop: while this replica leads, every tick it fires the schedules that are due. One due time is one
//! transaction: raise the leader fence, move the schedule past the due time (compare-and-set), and record either a
//! REQUESTED run with its RunRequested outbox row or, when a run of the same (channel, operation) is still in
//! progress, a SKIPPED run with the reason.

use std::time::Duration;

use chrono::Utc;
use shopbridge_platform::bus::outbox;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    domain::Operation,
    leader::{Leadership, fence},
    metrics,
    registry::{self, NewRun, RequestError},
    schedules::{self, Due},
    timing,
};

/// Schedules read per query; a tick keeps reading until nothing is due.
const BATCH: i64 = 200;
/// Bound on the queries of one tick, so a tick ends even if something keeps becoming due.
const MAX_ROUNDS_PER_TICK: usize = 100;

pub struct FireLoop {
    pub pool: PgPool,
    pub leadership: Leadership,
    pub replica: String,
    pub operations: Vec<Operation>,
    pub tick: Duration,
    pub catch_up_after: chrono::Duration,
    /// Fence writes older than this are stale (twice the lease).
    pub fence_stale_after: Duration,
}

/// What became of one due schedule.
enum Fired {
    Requested,
    Skipped,
    /// The schedule changed, or another leader fired it, meanwhile.
    Moved,
    /// A newer leader holds the fence: stop firing.
    Deposed,
}

impl FireLoop {
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        loop {
            if let Some(revision) = self.leadership.current()
                && let Err(e) = self.fire_due(revision).await
            {
                tracing::warn!(error = %format!("{e:#}"), "firing due schedules failed; retrying next tick");
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.tick) => {}
            }
        }
    }

    /// Fires everything due now (a due time may be followed by another one already due: it fires in a later round).
    async fn fire_due(&self, revision: u64) -> anyhow::Result<()> {
        for _ in 0..MAX_ROUNDS_PER_TICK {
            let due = schedules::due(&self.pool, Utc::now(), &self.operations, BATCH).await?;
            if due.is_empty() {
                return Ok(());
            }
            let mut progressed = false;
            for schedule in &due {
                // A lease that lapsed meanwhile stops the firing (the fence would refuse it anyway).
                if self.leadership.current() != Some(revision) {
                    return Ok(());
                }
                match self.fire_one(revision, schedule).await? {
                    Fired::Requested | Fired::Skipped => progressed = true,
                    Fired::Moved => {}
                    Fired::Deposed => {
                        tracing::warn!(replica = %self.replica, revision, "a newer leader holds the fence; not firing");
                        return Ok(());
                    }
                }
            }
            if !progressed {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn fire_one(&self, revision: u64, due: &Due) -> anyhow::Result<Fired> {
        let schedule = &due.schedule;
        let (Some(operation), Some(next_due_at)) = (schedule.operation(), schedule.next_due_at)
        else {
            return Ok(Fired::Moved);
        };
        let timing = match schedule.timing() {
            Ok(timing) => timing,
            Err(e) => {
                tracing::error!(channel_id = %schedule.channel_id, operation = %operation, error = %e, "stored schedule unreadable; not firing it");
                return Ok(Fired::Moved);
            }
        };
        let now = Utc::now();
        let Some(fire) = timing::plan(&timing, next_due_at, now, self.catch_up_after) else {
            return Ok(Fired::Moved);
        };
        let mut tx = self.pool.begin().await?;
        if !fence(&mut *tx, revision, &self.replica, self.fence_stale_after).await? {
            return Ok(Fired::Deposed);
        }
        if !schedules::advance(&mut tx, schedule, next_due_at, fire.due_at, fire.next_due).await? {
            return Ok(Fired::Moved);
        }
        let new = NewRun {
            run_id: Uuid::now_v7(),
            tenant_id: schedule.tenant_id.clone(),
            channel_id: schedule.channel_id.clone(),
            shop_domain: due.shop_domain.clone(),
            operation,
            trigger: fire.trigger,
            due_at: Some(fire.due_at),
            fired_by: Some(self.replica.clone()),
            requested_at: now,
        };
        let fired = match registry::in_progress(&mut *tx, &schedule.channel_id, operation).await? {
            Some(busy) => registry::record_skipped(&mut tx, &new, busy)
                .await
                .map(|_| Fired::Skipped),
            None => registry::request(&mut tx, &new)
                .await
                .map(|_| Fired::Requested),
        };
        let fired = match fired {
            Ok(fired) => fired,
            // A "Run now" committed between our look and our insert: the next tick records this due time as skipped.
            Err(RequestError::InProgress) => return Ok(Fired::Moved),
            Err(RequestError::AlreadyFired) => {
                tracing::warn!(channel_id = %schedule.channel_id, operation = %operation, due_at = %fire.due_at, "due time already fired; not firing it again");
                return Ok(Fired::Moved);
            }
            Err(RequestError::Database(e)) => return Err(e.into()),
        };
        tx.commit().await?;
        match fired {
            Fired::Requested => {
                outbox::wake();
                metrics::run_requested(operation, fire.trigger);
                tracing::info!(
                    run_id = %new.run_id,
                    channel_id = %schedule.channel_id,
                    operation = %operation,
                    trigger = fire.trigger.as_str(),
                    due_at = %fire.due_at,
                    missed_since = %next_due_at,
                    "schedule fired"
                );
            }
            Fired::Skipped => {
                metrics::fire_skipped(operation);
                tracing::info!(
                    channel_id = %schedule.channel_id,
                    operation = %operation,
                    due_at = %fire.due_at,
                    "due time skipped: a run is in progress"
                );
            }
            Fired::Moved | Fired::Deposed => {}
        }
        Ok(fired)
    }
}
