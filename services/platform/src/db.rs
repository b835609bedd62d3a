//! The service's PostgreSQL pool and its migrations.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::{PgPool, migrate::Migrator, postgres::PgPoolOptions};

use crate::config::DatabaseSettings;

pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options: sqlx::postgres::PgConnectOptions =
        settings.url.expose_secret().parse().map_err(|e| {
            anyhow::anyhow!("configuration key `database.url` is not a PostgreSQL URL: {e}")
        })?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(settings.connect_timeout_secs))
        .connect_with(options.clone())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to database `{}` on {}:{} (database.url): {e}",
                options.get_database().unwrap_or("?"),
                options.get_host(),
                options.get_port()
            )
        })?;
    Ok(pool)
}

/// Applies the service's embedded migrations.
pub async fn migrate(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<()> {
    migrator
        .run(pool)
        .await
        .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))
}

/// Refuses to serve on a schema older than the binary: in Kubernetes the migration job runs before the rollout.
pub async fn ensure_migrated(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<()> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    let missing: Vec<i64> = migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the database schema is not migrated (missing versions {missing:?}): run the service's `migrate` command first"
    );
    Ok(())
}
