use shopbridge_platform::{
    db::{self, MOVED_BUS_MIGRATION_CHECKSUMS, PLATFORM_MIGRATIONS_TABLE},
    testing::TestDb,
};
use sqlx::{
    PgPool, SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
};

static AUTH: Migrator = sqlx::migrate!("../../migrations/auth");
static GATEWAY: Migrator = sqlx::migrate!("../../migrations/gateway");
static LISTINGS: Migrator = sqlx::migrate!("../../migrations/listings");
static ORDERS: Migrator = sqlx::migrate!("../../migrations/orders");
static SCHEDULER: Migrator = sqlx::migrate!("../../migrations/scheduler");

/// The bus migrations as every service carried them before the platform set (copied from git, byte for byte).
const OLD_BUS_TABLES: &str = include_str!("old_bus_migrations/0001_bus_tables.sql");
const OLD_OUTBOX_WITHOUT_NOTIFY: &str =
    include_str!("old_bus_migrations/0002_outbox_without_notify.sql");

/// Each service's set, and the versions its bus migrations had in it.
fn services() -> [(&'static str, &'static Migrator, i64, i64); 5] {
    [
        ("auth", &AUTH, 1, 3),
        ("gateway", &GATEWAY, 1, 5),
        ("listings", &LISTINGS, 1, 2),
        ("orders", &ORDERS, 1, 2),
        ("scheduler", &SCHEDULER, 1, 2),
    ]
}

/// A service's set as the code before the platform set had it: its own migrations and the bus copies.
fn old_set(own: &Migrator, bus_tables: i64, without_notify: i64) -> Migrator {
    let mut migrations: Vec<Migration> = own.iter().cloned().collect();
    migrations.push(Migration::new(
        bus_tables,
        "bus tables".into(),
        MigrationType::Simple,
        OLD_BUS_TABLES.into_sql_str(),
        false,
    ));
    migrations.push(Migration::new(
        without_notify,
        "outbox without notify".into(),
        MigrationType::Simple,
        OLD_OUTBOX_WITHOUT_NOTIFY.into_sql_str(),
        false,
    ));
    Migrator::with_migrations(migrations)
}

/// The bus tables' columns, indexes and triggers, as text to compare.
async fn bus_schema(pool: &PgPool) -> Vec<String> {
    let mut schema: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' ', table_name, column_name, data_type, is_nullable, column_default)
         FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name IN ('outbox', 'inbox', 'dead_letters')
         ORDER BY table_name, column_name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes
         WHERE schemaname = 'public' AND tablename IN ('outbox', 'inbox', 'dead_letters') ORDER BY indexname",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'outbox'::regclass AND NOT tgisinternal",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let functions: Vec<String> =
        sqlx::query_scalar("SELECT proname::text FROM pg_proc WHERE proname = 'outbox_notify'")
            .fetch_all(pool)
            .await
            .unwrap();
    schema.extend(indexes);
    schema.extend(triggers.into_iter().map(|t| format!("trigger {t}")));
    schema.extend(functions.into_iter().map(|f| format!("function {f}")));
    schema
}

async fn versions(pool: &PgPool, table: &str) -> Vec<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {table} WHERE success ORDER BY version"
    )))
    .fetch_all(pool)
    .await
    .unwrap()
}

fn all_versions(migrator: &Migrator) -> Vec<i64> {
    migrator.iter().map(|m| m.version).collect()
}

#[test]
fn the_moved_checksums_are_those_of_the_bus_migrations_every_service_carried() {
    let hex = |sql: &'static str| {
        Migration::new(
            1,
            "x".into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
        .checksum
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
    };
    assert_eq!(
        MOVED_BUS_MIGRATION_CHECKSUMS.map(String::from),
        [hex(OLD_BUS_TABLES), hex(OLD_OUTBOX_WITHOUT_NOTIFY)]
    );
}

#[tokio::test]
async fn a_fresh_database_gets_the_bus_tables_from_the_platform_set_then_the_services_own() {
    for (service, own, _, _) in services() {
        let db = TestDb::empty().await;
        db::migrate(&db.pool, own).await.unwrap();
        db::ensure_migrated(&db.pool, own)
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"));
        assert_eq!(
            versions(&db.pool, PLATFORM_MIGRATIONS_TABLE).await,
            all_versions(db::platform_migrator()),
            "{service}"
        );
        assert_eq!(
            versions(&db.pool, "_sqlx_migrations").await,
            all_versions(own),
            "{service}"
        );
        // Both sets again: nothing to do, nothing refused.
        db::migrate(&db.pool, own).await.unwrap();
        let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(outbox, 0, "{service}");
        db.drop_db().await;
    }
}

/// A database migrated by the code before the platform set (the bus tables among the service's own versions) takes
/// the new code: the platform set finds its tables there and keeps their rows, the service's set runs without the
/// moved versions, and the schema ends as a fresh database's.
#[tokio::test]
async fn a_database_migrated_by_the_services_former_bus_copies_takes_the_platform_set() {
    for (service, own, bus_tables, without_notify) in services() {
        let fresh = TestDb::new(own).await;

        let db = TestDb::empty().await;
        let old = old_set(own, bus_tables, without_notify);
        old.run(&db.pool).await.unwrap();
        let id = uuid::Uuid::now_v7();
        sqlx::query(
            "INSERT INTO outbox (id, subject, type_name, payload) VALUES ($1, 'events.x', 'x.X', '\\x01')",
        )
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
        let err = db::ensure_migrated(&db.pool, own).await.unwrap_err();
        assert!(
            err.to_string().contains("missing platform versions"),
            "{service}: {err}"
        );

        db::migrate(&db.pool, own)
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"));
        db::ensure_migrated(&db.pool, own).await.unwrap();
        // And again, as every later deploy does.
        db::migrate(&db.pool, own).await.unwrap();

        assert_eq!(
            bus_schema(&db.pool).await,
            bus_schema(&fresh.pool).await,
            "{service}: the upgraded bus tables are a fresh database's"
        );
        assert_eq!(
            versions(&db.pool, "_sqlx_migrations").await,
            all_versions(&old),
            "{service}: the old versions stay as history"
        );
        assert_eq!(
            versions(&db.pool, PLATFORM_MIGRATIONS_TABLE).await,
            all_versions(db::platform_migrator())
        );
        let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(kept, 1, "{service}: the unsent row is still there");
        db.drop_db().await;
        fresh.drop_db().await;
    }
}

/// Only the moved bus versions may be missing from the service's set: a version this binary does not know (the
/// database is newer than the binary) is still refused.
#[tokio::test]
async fn a_history_with_a_version_the_binary_does_not_know_is_still_refused() {
    let db = TestDb::empty().await;
    let mut newer: Vec<Migration> = old_set(&LISTINGS, 1, 2).iter().cloned().collect();
    newer.push(Migration::new(
        99,
        "from a newer binary".into(),
        MigrationType::Simple,
        "CREATE TABLE newer (id INT)".into_sql_str(),
        false,
    ));
    Migrator::with_migrations(newer)
        .run(&db.pool)
        .await
        .unwrap();
    let err = db::migrate(&db.pool, &LISTINGS).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("migration 99 was previously applied"),
        "{err}"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn a_service_refuses_to_serve_an_unmigrated_database_and_names_what_is_missing() {
    let db = TestDb::empty().await;
    let err = db::ensure_migrated(&db.pool, &LISTINGS)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing platform versions [1"), "{err}");
    assert!(err.contains("service versions [3, 4]"), "{err}");
    db.drop_db().await;
}
