//! The applier: a task of the service that moves complete exports to applying and applies their batches, one task
//! per run (up to `service.import.max_concurrent_runs`) with `service.import.apply_workers` workers, each applying
//! one batch after another in its own transaction ([`super::apply`]). It wakes when this process's consumers stage
//! something and polls for the rest (other replicas, restarts: the batches a dead process did not commit are
//! applied by whoever comes next).

use std::{collections::HashSet, sync::Arc, time::Duration};

use shopbridge_proto::runs as pb;
use sqlx::PgPool;
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    apply::{self, Step},
    problems,
    runs::{self, State},
};
use crate::settings::ImportTuning;

/// How often finished runs' leftovers and stale exports are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub struct Applier {
    pool: PgPool,
    wake: Arc<Notify>,
    tuning: ImportTuning,
}

impl Applier {
    pub fn new(pool: PgPool, wake: Arc<Notify>, tuning: ImportTuning) -> Self {
        Self { pool, wake, tuning }
    }

    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut active: HashSet<Uuid> = HashSet::new();
        let mut tasks: JoinSet<Uuid> = JoinSet::new();
        let mut last_sweep: Option<std::time::Instant> = None;
        loop {
            if last_sweep.is_none_or(|at| at.elapsed() > SWEEP_EVERY) {
                last_sweep = Some(std::time::Instant::now());
                if let Err(e) = runs::sweep(&self.pool, self.tuning.export_timeout()).await {
                    tracing::warn!(error = %e, "sweeping import runs failed; retrying later");
                }
            }
            if let Err(e) = runs::promote_ready(&self.pool, self.tuning.empty_export_grace()).await
            {
                tracing::warn!(error = %e, "checking exports for completeness failed; retrying");
            }
            match runs::applying(&self.pool).await {
                Ok(ids) => {
                    for run_id in ids {
                        if active.len() >= self.tuning.max_concurrent_runs.max(1) {
                            break;
                        }
                        if active.insert(run_id) {
                            tasks.spawn(apply_run(
                                self.pool.clone(),
                                run_id,
                                cancel.clone(),
                                self.tuning.clone(),
                            ));
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing runs to apply failed; retrying"),
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.wake.notified() => {}
                Some(done) = tasks.join_next() => {
                    if let Ok(run_id) = done {
                        active.remove(&run_id);
                    }
                }
                _ = tokio::time::sleep(self.tuning.poll_interval()) => {}
            }
        }
        // Each task stops after the batch it is applying (one transaction).
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// Applies a run's batches with `apply_workers` workers until none is left.
async fn apply_run(
    pool: PgPool,
    run_id: Uuid,
    cancel: CancellationToken,
    tuning: ImportTuning,
) -> Uuid {
    let mut workers = JoinSet::new();
    for _ in 0..tuning.apply_workers.max(1) {
        workers.spawn(worker(
            pool.clone(),
            run_id,
            cancel.clone(),
            tuning.max_batch_attempts,
        ));
    }
    while workers.join_next().await.is_some() {}
    run_id
}

/// Applies batches of the run one after the other until none is left for it, retrying a failing batch with backoff;
/// after `max_attempts` failures in a row the run fails (what was applied stays; a new run picks the rest up).
async fn worker(pool: PgPool, run_id: Uuid, cancel: CancellationToken, max_attempts: u32) {
    let mut failures = 0u32;
    while !cancel.is_cancelled() {
        match apply::apply_next(&pool, run_id).await {
            Ok(Step::Applied) => failures = 0,
            Ok(Step::Busy | Step::Done) => break,
            Err(e) => {
                failures += 1;
                tracing::warn!(%run_id, attempt = failures, error = %format!("{e:#}"), "applying a batch failed");
                if failures >= max_attempts.max(1) {
                    if let Err(e) = give_up(&pool, run_id).await {
                        tracing::error!(%run_id, error = %e, "could not fail the run; it will be tried again");
                    }
                    break;
                }
                let delay = Duration::from_millis(200 * 2u64.pow(failures.min(8)));
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay.min(Duration::from_secs(30))) => {}
                }
            }
        }
    }
}

async fn give_up(pool: &PgPool, run_id: Uuid) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    runs::exclusive(&mut tx, run_id).await?;
    if let Some(run) = runs::lock(&mut tx, run_id).await?
        && run.state == State::Applying
    {
        let problem = problems::apply_failed(
            &run.reference.channel_id.to_string(),
            run.applied_batches,
            run.total_batches,
        );
        let error = problem.message.clone();
        runs::finish(
            &mut tx,
            &run.reference,
            pb::Outcome::Failed,
            &error,
            vec![problem],
        )
        .await?;
    }
    tx.commit().await
}
