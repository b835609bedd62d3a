//! The gateway's tables are pruned past their retention, and what is still needed stays: an unfinished bulk
//! operation (a restarted gateway resumes it) and a recent answer (a re-send gets its result).

use shopbridge_gateway::retention::{self, RetentionSettings};
use shopbridge_platform::testing::TestDb;

async fn run(db: &TestDb, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&db.pool)
        .await
        .unwrap();
}

async fn ids(db: &TestDb, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn old_rows_are_pruned_and_unfinished_or_recent_ones_kept() {
    shopbridge_platform::telemetry::init_for_tests();
    let db = TestDb::new(&shopbridge_gateway::MIGRATOR).await;
    run(&db, "INSERT INTO webhook_deliveries (event_id, shop_domain, topic, received_at) VALUES
        ('old', 's', 'orders/create', now() - interval '8 days'), ('new', 's', 'orders/create', now())").await;
    run(&db, "INSERT INTO command_results (command_id, shop_domain, status, calls, finished_at) VALUES
        ('old', 's', 'STATUS_SUCCEEDED', 1, now() - interval '31 days'), ('new', 's', 'STATUS_SUCCEEDED', 1, now())").await;
    run(&db, "INSERT INTO bulk_operations (command_id, stage, shop_domain, bulk_id, status, started_at, finished_at) VALUES
        ('done-old', 'export', 's', 'gid://shopify/BulkOperation/1', 'COMPLETED', now() - interval '40 days', now() - interval '40 days'),
        ('running-old', 'export', 's', 'gid://shopify/BulkOperation/2', 'RUNNING', now() - interval '40 days', NULL),
        ('done-new', 'export', 's', 'gid://shopify/BulkOperation/3', 'COMPLETED', now(), now())").await;
    let settings = RetentionSettings {
        webhook_deliveries_days: 7,
        command_results_days: 30,
        bulk_operations_days: 30,
        every_secs: 3600,
    };
    let pruned = retention::prune(&db.pool, &settings).await.unwrap();
    assert_eq!(
        (
            pruned.webhook_deliveries,
            pruned.command_results,
            pruned.bulk_operations
        ),
        (1, 1, 1),
        "{pruned:?}"
    );
    assert_eq!(
        ids(&db, "SELECT event_id FROM webhook_deliveries").await,
        ["new"]
    );
    assert_eq!(
        ids(&db, "SELECT command_id FROM command_results").await,
        ["new"]
    );
    assert_eq!(
        ids(
            &db,
            "SELECT command_id FROM bulk_operations ORDER BY command_id"
        )
        .await,
        ["done-new", "running-old"],
        "an unfinished operation is kept however old"
    );
    db.drop_db().await;
}
