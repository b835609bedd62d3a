//! Housekeeping every replica does (each step is idempotent and safe to run on several replicas at once): runs that
//! nobody started within `service.start_timeout_secs` fail with an actionable error, and finished runs older than
//! `service.retention_days` are deleted with their logs.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::registry;

pub struct Maintenance {
    pub pool: PgPool,
    pub interval: Duration,
    pub start_timeout: Duration,
    pub retention_days: u32,
}

impl Maintenance {
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        loop {
            self.once().await;
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// One pass; failures are logged and retried at the next pass.
    pub async fn once(&self) {
        if let Err(e) = registry::fail_unstarted(&self.pool, self.start_timeout).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot fail unstarted runs; retrying later");
        }
        match registry::delete_expired(&self.pool, self.retention_days).await {
            Ok(0) => {}
            Ok(deleted) => {
                tracing::info!(
                    deleted,
                    retention_days = self.retention_days,
                    "expired runs deleted"
                )
            }
            Err(e) => tracing::warn!(error = %e, "cannot delete expired runs; retrying later"),
        }
    }
}
