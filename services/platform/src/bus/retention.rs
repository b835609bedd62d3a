//! Retention of the bus tables every service's database holds: applied message ids (`inbox`), dead letters and the
//! failure counts of messages (`consumer_failures`). Sent outbox rows are the relay's to delete.
//!
//! The inbox is the only deduplication once a message is older than JetStream's duplicate window, so it is kept longer
//! than anything can come again: the EVENTS stream's `max_age` (7 days, `deploy/nats/topology.yaml`) plus the longest
//! relay outage a deployment plans for (`retention.inbox_days`, 14 by default). Rows go in small batches so the
//! pruning never holds a long lock or a long transaction.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionSettings;

/// Rows deleted per statement.
const BATCH: i64 = 5000;

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub inbox: u64,
    pub dead_letters: u64,
    pub failures: u64,
}

/// Deletes what is past its retention, once.
pub async fn prune(pool: &PgPool, settings: &RetentionSettings) -> sqlx::Result<Pruned> {
    Ok(Pruned {
        inbox: delete_older(pool, "inbox", "received_at", settings.inbox_days).await?,
        dead_letters: delete_older(
            pool,
            "dead_letters",
            "recorded_at",
            settings.dead_letter_days,
        )
        .await?,
        // A failure count whose message was never seen again (it went to another deployment, its stream was purged).
        failures: delete_older(pool, "consumer_failures", "updated_at", settings.inbox_days)
            .await?,
    })
}

async fn delete_older(pool: &PgPool, table: &str, column: &str, days: u32) -> sqlx::Result<u64> {
    delete_in_batches(
        pool,
        table,
        &format!("{column} < now() - make_interval(days => $1)"),
        days,
    )
    .await
}

/// Deletes the rows of `table` matching `condition` (whose `$1` is `days`), a few thousand per statement, so no
/// pruning holds a long lock or a long transaction. `table` and `condition` are the caller's constants, never input.
pub async fn delete_in_batches(
    pool: &PgPool,
    table: &str,
    condition: &str,
    days: u32,
) -> sqlx::Result<u64> {
    let mut deleted = 0;
    loop {
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} WHERE {condition} LIMIT $2)"
        )))
        .bind(i32::try_from(days).unwrap_or(i32::MAX))
        .bind(BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        deleted += done;
        if done < BATCH as u64 {
            return Ok(deleted);
        }
    }
}

/// Runs `pass` every `every` (the first time one period after start) until `cancel`; a failed pass is logged (naming `what`) and tried again at the next.
pub async fn periodically<T, F, Fut>(
    what: &'static str,
    every: Duration,
    cancel: CancellationToken,
    mut pass: F,
) -> anyhow::Result<()>
where
    T: std::fmt::Debug + Default + PartialEq,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = sqlx::Result<T>>,
{
    // The first pass comes one period after start, not at start: a start (or a rolling deploy of every replica)
    // is no moment for a table-wide delete.
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every.max(Duration::from_secs(1))) => {}
        }
        match pass().await {
            Ok(pruned) if pruned != T::default() => tracing::info!(?pruned, "{what} pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning {what} failed; trying again later"),
        }
    }
}

/// Prunes every `retention.every_secs` until `cancel`.
pub async fn run(
    pool: PgPool,
    settings: RetentionSettings,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let every = Duration::from_secs(settings.every_secs);
    periodically("bus tables", every, cancel, || prune(&pool, &settings)).await
}
