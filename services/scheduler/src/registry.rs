//! The run registry: every run requested (by "Run now" or a schedule), skipped, cancelled or finished, with the
//! counters its owner reported. A run request is written in the same transaction as its `RunRequested` outbox row,
//! so a run is published if and only if it is recorded. Two unique indexes keep the rules whatever the number of
//! replicas: one run per (channel, operation, due time), and never two runs of one (channel, operation) in progress.

use chrono::{DateTime, Utc};
use shopbridge_platform::{
    bus::{EventMeta, OutboxMessage, outbox},
    error::ApiError,
};
use shopbridge_proto::{runs, scheduler as pb};
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    convert,
    domain::{IN_PROGRESS, Operation, RunStatus, Trigger},
    metrics,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Run {
    pub run_id: Uuid,
    pub tenant_id: String,
    pub channel_id: String,
    pub operation: String,
    pub trigger: String,
    pub status: String,
    pub due_at: Option<DateTime<Utc>>,
    pub fired_by: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub processed: i64,
    pub created: i64,
    pub linked: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
    pub total: i64,
    pub stage: String,
    pub error: String,
    pub errors: i64,
    pub warnings: i64,
    pub version: i64,
}

pub const COLUMNS: &str = "run_id, tenant_id, channel_id, operation, trigger, status, due_at, fired_by, requested_at, \
                           started_at, finished_at, processed, created, linked, updated, skipped, failed, total, stage, \
                           error, errors, warnings, version";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Run {
    pub fn status(&self) -> Option<RunStatus> {
        RunStatus::parse(&self.status)
    }

    pub fn is_final(&self) -> bool {
        self.status().is_none_or(RunStatus::is_final)
    }

    pub fn to_proto(&self) -> pb::Run {
        pb::Run {
            run_id: self.run_id.to_string(),
            channel_id: self.channel_id.clone(),
            operation: Operation::parse(&self.operation).map_or(0, |op| op.to_proto() as i32),
            trigger: Trigger::parse(&self.trigger).map_or(0, |t| t.to_proto() as i32),
            status: self.status().map_or(0, |s| s.to_proto() as i32),
            counters: Some(runs::Counters {
                processed: count(self.processed),
                created: count(self.created),
                linked: count(self.linked),
                updated: count(self.updated),
                skipped: count(self.skipped),
                failed: count(self.failed),
            }),
            total: count(self.total),
            stage: self.stage.clone(),
            error: self.error.clone(),
            due_at: self.due_at.map(convert::timestamp),
            requested_at: Some(convert::timestamp(self.requested_at)),
            started_at: self.started_at.map(convert::timestamp),
            finished_at: self.finished_at.map(convert::timestamp),
            errors: count(self.errors),
            warnings: count(self.warnings),
        }
    }
}

/// A run about to be requested.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run_id: Uuid,
    pub tenant_id: String,
    pub channel_id: String,
    pub shop_domain: String,
    pub operation: Operation,
    pub trigger: Trigger,
    pub due_at: Option<DateTime<Utc>>,
    pub fired_by: Option<String>,
    pub requested_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("a run of this channel operation is in progress")]
    InProgress,
    #[error("this due time has fired already")]
    AlreadyFired,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn meta(tenant_id: &str, channel_id: &str, run_id: Uuid) -> EventMeta {
    EventMeta::tenant(tenant_id)
        .with_channel(channel_id)
        .with_correlation(run_id.to_string())
}

/// Records a REQUESTED run and enqueues its `RunRequested`, in `tx`. The caller commits and wakes the relay.
pub async fn request(
    tx: &mut Transaction<'static, Postgres>,
    new: &NewRun,
) -> Result<Run, RequestError> {
    sqlx::query("SAVEPOINT request_run")
        .execute(&mut **tx)
        .await?;
    let inserted = sqlx::query_as::<_, Run>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO runs (run_id, tenant_id, channel_id, operation, trigger, status, due_at, fired_by, requested_at)
         VALUES ($1, $2, $3, $4, $5, 'REQUESTED', $6, $7, $8)
         RETURNING {COLUMNS}"
    )))
    .bind(new.run_id)
    .bind(&new.tenant_id)
    .bind(&new.channel_id)
    .bind(new.operation.as_str())
    .bind(new.trigger.as_str())
    .bind(new.due_at)
    .bind(&new.fired_by)
    .bind(new.requested_at)
    .fetch_one(&mut **tx)
    .await;
    let run = match inserted {
        Ok(run) => {
            sqlx::query("RELEASE SAVEPOINT request_run")
                .execute(&mut **tx)
                .await?;
            run
        }
        Err(e) => {
            sqlx::query("ROLLBACK TO SAVEPOINT request_run")
                .execute(&mut **tx)
                .await?;
            return Err(match constraint(&e) {
                Some("runs_one_in_progress") => RequestError::InProgress,
                Some("runs_one_per_due_time") => RequestError::AlreadyFired,
                _ => RequestError::Database(e),
            });
        }
    };
    let event = runs::RunRequested {
        run_id: new.run_id.to_string(),
        tenant_id: new.tenant_id.clone(),
        channel_id: new.channel_id.clone(),
        shop_domain: new.shop_domain.clone(),
        operation: new.operation.to_proto() as i32,
        trigger: new.trigger.to_proto() as i32,
        requested_at: Some(convert::timestamp(new.requested_at)),
    };
    outbox::enqueue(
        tx,
        OutboxMessage::event(meta(&new.tenant_id, &new.channel_id, new.run_id), &event),
    )
    .await?;
    Ok(run)
}

fn constraint(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

/// Records a due time that found a run in progress: a SKIPPED run with the reason, nothing published.
pub async fn record_skipped(
    tx: &mut Transaction<'static, Postgres>,
    new: &NewRun,
    in_progress: Uuid,
) -> Result<Run, RequestError> {
    let reason = format!(
        "skipped: run {in_progress} of {} on this channel was still in progress at the due time",
        new.operation.title()
    );
    sqlx::query_as::<_, Run>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO runs (run_id, tenant_id, channel_id, operation, trigger, status, due_at, fired_by, requested_at,
                           finished_at, error)
         VALUES ($1, $2, $3, $4, $5, 'SKIPPED', $6, $7, $8, $8, $9)
         RETURNING {COLUMNS}"
    )))
    .bind(new.run_id)
    .bind(&new.tenant_id)
    .bind(&new.channel_id)
    .bind(new.operation.as_str())
    .bind(new.trigger.as_str())
    .bind(new.due_at)
    .bind(&new.fired_by)
    .bind(new.requested_at)
    .bind(reason)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| match constraint(&e) {
        Some("runs_one_per_due_time") => RequestError::AlreadyFired,
        _ => RequestError::Database(e),
    })
}

/// The run of (channel, operation) in progress, if any.
pub async fn in_progress(
    db: impl PgExecutor<'_>,
    channel_id: &str,
    operation: Operation,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT run_id FROM runs WHERE channel_id = $1 AND operation = $2 AND status = ANY($3)",
    )
    .bind(channel_id)
    .bind(operation.as_str())
    .bind(&IN_PROGRESS[..])
    .fetch_optional(db)
    .await
}

/// "Run now": a MANUAL run, or FAILED_PRECONDITION naming the run in progress.
pub async fn run_now(pool: &PgPool, new: &NewRun) -> Result<Run, ApiError> {
    let mut tx = pool.begin().await?;
    match request(&mut tx, new).await {
        Ok(run) => {
            tx.commit().await?;
            outbox::wake();
            metrics::run_requested(new.operation, new.trigger);
            tracing::info!(run_id = %run.run_id, channel_id = %new.channel_id, operation = %new.operation, "run requested");
            Ok(run)
        }
        Err(RequestError::InProgress) => {
            drop(tx);
            let busy = in_progress(pool, &new.channel_id, new.operation).await?;
            Err(ApiError::FailedPrecondition(format!(
                "a run of {} is already in progress on channel {} (run {}): wait for it to finish or cancel it",
                new.operation.title(),
                new.channel_id,
                busy.map_or_else(|| "just finished".to_string(), |id| id.to_string())
            )))
        }
        Err(RequestError::AlreadyFired) => Err(ApiError::Internal(anyhow::anyhow!(
            "a manual run collided with a due time"
        ))),
        Err(RequestError::Database(e)) => Err(e.into()),
    }
}

/// The caller's run, or NOT_FOUND (also another tenant's).
pub async fn get(db: impl PgExecutor<'_>, tenant_id: &str, run_id: Uuid) -> Result<Run, ApiError> {
    sqlx::query_as::<_, Run>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM runs WHERE run_id = $1 AND tenant_id = $2"
    )))
    .bind(run_id)
    .bind(tenant_id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| run_not_found(run_id))
}

pub fn run_not_found(run_id: Uuid) -> ApiError {
    ApiError::NotFound(format!(
        "run {run_id} not found; list runs with `shopbridge runs list`"
    ))
}

/// A request's run id, or INVALID_ARGUMENT.
pub fn parse_run_id(run_id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(run_id.trim()).map_err(|_| {
        ApiError::InvalidArgument(format!(
            "run_id `{run_id}` is not a run id (a UUID, as RunNow and ListRuns return)"
        ))
    })
}

/// Filters of ListRuns (each optional).
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub channel_id: Option<String>,
    pub operation: Option<Operation>,
    pub statuses: Vec<RunStatus>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// One page of the tenant's runs, newest first, and the token of the next page.
pub async fn list(
    pool: &PgPool,
    tenant_id: &str,
    filter: &RunFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<(Vec<Run>, Option<String>), ApiError> {
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let mut runs = sqlx::query_as::<_, Run>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM runs
         WHERE tenant_id = $1
           AND ($2::text IS NULL OR channel_id = $2)
           AND ($3::text IS NULL OR operation = $3)
           AND (cardinality($4::text[]) = 0 OR status = ANY($4))
           AND ($5::timestamptz IS NULL OR requested_at >= $5)
           AND ($6::timestamptz IS NULL OR requested_at < $6)
           AND ($7::timestamptz IS NULL OR (requested_at, run_id) < ($7, $8))
         ORDER BY requested_at DESC, run_id DESC
         LIMIT $9"
    )))
    .bind(tenant_id)
    .bind(filter.channel_id.as_deref())
    .bind(filter.operation.map(Operation::as_str))
    .bind(&statuses)
    .bind(filter.since)
    .bind(filter.until)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let next = if runs.len() as i64 > limit {
        runs.truncate(usize::try_from(limit).unwrap_or(0));
        runs.last()
            .map(|last| convert::page_token(last.requested_at, last.run_id))
    } else {
        None
    };
    Ok((runs, next))
}

/// Cancels a run: one nobody started is CANCELLED at once; a running one is CANCELLING until its owner reports.
/// Either way its owner is told with `RunCancelRequested`.
pub async fn cancel(pool: &PgPool, tenant_id: &str, run_id: Uuid) -> Result<Run, ApiError> {
    let mut tx = pool.begin().await?;
    let run = sqlx::query_as::<_, Run>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM runs WHERE run_id = $1 AND tenant_id = $2 FOR UPDATE"
    )))
    .bind(run_id)
    .bind(tenant_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| run_not_found(run_id))?;
    let status = run
        .status()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("unknown stored status")))?;
    let (sql, finished) = match status {
        RunStatus::Cancelling => return Ok(run),
        RunStatus::Requested if run.started_at.is_none() => (
            "UPDATE runs SET status = 'CANCELLED', finished_at = now(),
                 error = 'cancelled before it started', version = version + 1
             WHERE run_id = $1",
            true,
        ),
        RunStatus::Requested | RunStatus::Running => (
            "UPDATE runs SET status = 'CANCELLING', version = version + 1 WHERE run_id = $1",
            false,
        ),
        done => {
            return Err(ApiError::FailedPrecondition(format!(
                "run {run_id} has already finished ({done}); there is nothing to cancel"
            )));
        }
    };
    sqlx::query(sql).bind(run_id).execute(&mut *tx).await?;
    let operation = Operation::parse(&run.operation);
    let event = runs::RunCancelRequested {
        run_id: run_id.to_string(),
        tenant_id: run.tenant_id.clone(),
        channel_id: run.channel_id.clone(),
        operation: operation.map_or(0, |op| op.to_proto() as i32),
    };
    outbox::enqueue(
        &mut tx,
        OutboxMessage::event(meta(&run.tenant_id, &run.channel_id, run_id), &event),
    )
    .await?;
    let run = get(&mut *tx, tenant_id, run_id).await?;
    tx.commit().await?;
    outbox::wake();
    if finished && let Some(op) = operation {
        metrics::run_finished(op, RunStatus::Cancelled);
    }
    tracing::info!(%run_id, status = %run.status, "run cancel requested");
    Ok(run)
}

/// Fails the runs still REQUESTED `timeout` after they were requested: their owner never picked them up. Each gets
/// an actionable error and log entry, and a `RunCancelRequested` so an owner that wakes up late does not start it.
pub async fn fail_unstarted(pool: &PgPool, timeout: std::time::Duration) -> anyhow::Result<usize> {
    let cutoff = Utc::now() - chrono::Duration::from_std(timeout)?;
    let mut tx = pool.begin().await?;
    let stale = sqlx::query_as::<_, Run>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM runs WHERE status = 'REQUESTED' AND requested_at < $1
         ORDER BY requested_at LIMIT 500 FOR UPDATE SKIP LOCKED"
    )))
    .bind(cutoff)
    .fetch_all(&mut *tx)
    .await?;
    for run in &stale {
        let operation = Operation::parse(&run.operation);
        let owner = operation.map_or("owning", Operation::owner);
        let error = format!(
            "the {owner} service did not pick up the run within {} s; check that it is running",
            timeout.as_secs()
        );
        sqlx::query(
            "UPDATE runs SET status = 'FAILED', finished_at = now(), error = $2, errors = errors + 1,
                             version = version + 1
             WHERE run_id = $1",
        )
        .bind(run.run_id)
        .bind(&error)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO run_log (run_id, key, level, code, message, action, at)
             VALUES ($1, 'RUN_NOT_STARTED', 3, 'RUN_NOT_STARTED', $2, $3, now())
             ON CONFLICT DO NOTHING",
        )
        .bind(run.run_id)
        .bind(&error)
        .bind(format!(
            "check that the {owner} service is running and consuming run requests, then run it again"
        ))
        .execute(&mut *tx)
        .await?;
        let event = runs::RunCancelRequested {
            run_id: run.run_id.to_string(),
            tenant_id: run.tenant_id.clone(),
            channel_id: run.channel_id.clone(),
            operation: operation.map_or(0, |op| op.to_proto() as i32),
        };
        outbox::enqueue(
            &mut tx,
            OutboxMessage::event(meta(&run.tenant_id, &run.channel_id, run.run_id), &event),
        )
        .await?;
    }
    tx.commit().await?;
    if !stale.is_empty() {
        outbox::wake();
    }
    for run in &stale {
        if let Some(op) = Operation::parse(&run.operation) {
            metrics::run_finished(op, RunStatus::Failed);
        }
        tracing::warn!(run_id = %run.run_id, operation = %run.operation, "run never started; marked failed");
    }
    Ok(stale.len())
}

/// Deletes finished runs (and, by cascade, their logs) that finished more than `days` ago, a batch at a time.
pub async fn delete_expired(pool: &PgPool, days: u32) -> sqlx::Result<u64> {
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    let mut deleted = 0;
    loop {
        let done = sqlx::query(
            "DELETE FROM runs WHERE run_id IN (
                 SELECT run_id FROM runs WHERE finished_at < now() - make_interval(days => $1) LIMIT 1000)",
        )
        .bind(days)
        .execute(pool)
        .await?
        .rows_affected();
        deleted += done;
        if done < 1000 {
            return Ok(deleted);
        }
    }
}
