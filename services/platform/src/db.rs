//! The service's PostgreSQL pool and its migrations.

use std::{sync::LazyLock, time::Duration};

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

/// The history table of the platform's migration set (a service's own set keeps sqlx's `_sqlx_migrations`).
pub const PLATFORM_MIGRATIONS_TABLE: &str = "_platform_migrations";

/// The bus tables every service's database holds (outbox, inbox, dead letters: `migrations/platform/`), applied by
/// [`migrate`] before the service's own set and recorded in [`PLATFORM_MIGRATIONS_TABLE`], so the two sets number
/// their versions independently.
pub fn platform_migrator() -> &'static Migrator {
    static PLATFORM: LazyLock<Migrator> = LazyLock::new(|| {
        let mut migrator = sqlx::migrate!("../../migrations/platform");
        migrator.dangerous_set_table_name(PLATFORM_MIGRATIONS_TABLE);
        migrator
    });
    &PLATFORM
}

/// sqlx checksums (SHA-384 of the file, hex) of the bus migrations every service carried before the platform set took
/// them over: `0001_bus_tables.sql` and `00NN_outbox_without_notify.sql`, byte-identical in every service. A database
/// migrated by that code has them in its `_sqlx_migrations` under the service's version numbers. They stay there as
/// history (an older binary still finds its versions); [`migrate`] runs the service's set without them.
pub const MOVED_BUS_MIGRATION_CHECKSUMS: [&str; 2] = [
    "534bd07adb8ddc438dd7d7afac0ca98ae11db67663bdfe2452651c0c8b63eca942df53c8d4e7f01e96545fc3008b4a09",
    "3c583aa951bbb0833d171b59ebd4e5a08d949a0b5b70a0999e300690348ef4b6e18a6a642a94cee35ed49611dabe132d",
];

/// Applies the platform's migrations (the bus tables), then the service's own.
pub async fn migrate(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<()> {
    platform_migrator()
        .run(pool)
        .await
        .map_err(|e| anyhow::anyhow!("database migration failed (platform bus tables): {e}"))?;
    let history = service_history(pool).await?;
    let (moved, unknown): (Vec<_>, Vec<_>) = history
        .iter()
        .filter(|(version, _)| !migrator.version_exists(*version))
        .partition(|(_, checksum)| MOVED_BUS_MIGRATION_CHECKSUMS.contains(&checksum.as_str()));
    let result = if moved.is_empty() {
        migrator.run(pool).await
    } else {
        // sqlx refuses a history holding versions its set lacks; only the moved bus versions may be absent. Any other
        // (a binary older than its database) is refused as sqlx would.
        if let Some((version, _)) = unknown.first() {
            anyhow::bail!(
                "database migration failed: migration {version} was previously applied but is missing in the resolved migrations"
            );
        }
        let mut own = Migrator::with_migrations(migrator.iter().cloned().collect());
        own.set_ignore_missing(true);
        own.run(pool).await
    };
    result.map_err(|e| anyhow::anyhow!("database migration failed: {e}"))
}

/// (version, hex checksum) of every migration in the service's history; none before its first migration.
async fn service_history(pool: &PgPool) -> anyhow::Result<Vec<(i64, String)>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_as("SELECT version, encode(checksum, 'hex') FROM _sqlx_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))
}

/// Refuses to serve on a schema older than the binary: in Kubernetes the migration job runs before the rollout.
pub async fn ensure_migrated(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<()> {
    let platform = missing_versions(pool, PLATFORM_MIGRATIONS_TABLE, platform_migrator()).await;
    let own = missing_versions(pool, "_sqlx_migrations", migrator).await;
    anyhow::ensure!(
        platform.is_empty() && own.is_empty(),
        "the database schema is not migrated (missing platform versions {platform:?}, service versions {own:?}): run the service's `migrate` command first"
    );
    Ok(())
}

/// The versions of `migrator` not applied according to `table` (all of them when the table does not exist).
async fn missing_versions(pool: &PgPool, table: &str, migrator: &Migrator) -> Vec<i64> {
    let applied: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {table} WHERE success"
    )))
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect()
}
