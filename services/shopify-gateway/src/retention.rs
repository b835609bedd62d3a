//! Retention of the gateway's own tables (`[service.retention]`): webhook deliveries seen (deduplication of
//! Shopify's retries, which stop within two days), answered commands with their results (a re-send within the period
//! gets its result again; later it is a new command) and finished bulk operations with their start records.
//! Unfinished bulk operations are never pruned: a restarted gateway resumes them. Rows go in small batches.

use std::time::Duration;

use serde::Deserialize;
use shopbridge_platform::bus::retention::{delete_in_batches, periodically};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    pub webhook_deliveries_days: u32,
    pub command_results_days: u32,
    pub bulk_operations_days: u32,
    pub every_secs: u64,
}

/// What one pass deleted, by table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub webhook_deliveries: u64,
    pub command_results: u64,
    pub bulk_operations: u64,
    pub bulk_starts: u64,
}

/// (table, condition on `$1` days): what one pass deletes.
const RULES: [(&str, &str); 4] = [
    ("webhook_deliveries", "received_at < now() - make_interval(days => $1)"),
    ("command_results", "finished_at < now() - make_interval(days => $1)"),
    (
        "bulk_operations",
        "finished_at IS NOT NULL AND finished_at < now() - make_interval(days => $1)",
    ),
    (
        "bulk_starts",
        "attempted_at < now() - make_interval(days => $1)
         AND NOT EXISTS (SELECT 1 FROM bulk_operations o
                         WHERE o.command_id = bulk_starts.command_id AND o.stage = bulk_starts.stage)",
    ),
];

/// Deletes what is past its retention, once.
pub async fn prune(pool: &PgPool, settings: &RetentionSettings) -> sqlx::Result<Pruned> {
    let days = [
        settings.webhook_deliveries_days,
        settings.command_results_days,
        settings.bulk_operations_days,
        settings.bulk_operations_days,
    ];
    let mut counts = [0u64; 4];
    for (((table, condition), days), count) in RULES.iter().zip(days).zip(counts.iter_mut()) {
        *count = delete_in_batches(pool, table, condition, days).await?;
    }
    Ok(Pruned {
        webhook_deliveries: counts[0],
        command_results: counts[1],
        bulk_operations: counts[2],
        bulk_starts: counts[3],
    })
}

/// Prunes every `every_secs` until `cancel`.
pub async fn run(
    pool: PgPool,
    settings: RetentionSettings,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let every = Duration::from_secs(settings.every_secs);
    periodically("gateway tables", every, cancel, || prune(&pool, &settings)).await
}
