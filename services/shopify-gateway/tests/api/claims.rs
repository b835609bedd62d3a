//! Commands run with no database transaction open while they call Shopify: claimed first (committed), answered in a
//! second transaction. A claim left by a replica that died is taken over; a live one makes a second delivery wait.

use std::time::Duration;

use shopbridge_proto::gateway::{self as pb, command::Operation as Op};

use crate::harness::{Harness, command, seed, succeeded};

const SHOP: &str = "claims-shop.myshopify.com";

fn info(id: &str) -> pb::Command {
    command(id, SHOP, Op::GetShopInfo(pb::GetShopInfo {}))
}

async fn count(h: &Harness, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&h.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_command_calling_shopify_holds_its_claim_but_no_transaction() {
    let h = Harness::start(&[(SHOP, seed(1, 1, 0))]).await;
    // Each call takes 2 s at Shopify: long enough to look at the database while it is under way.
    let slow =
        serde_json::from_value(serde_json::json!({"latency_ms": 2000, "shops": [SHOP]})).unwrap();
    h.f.client.set_faults(&slow).await.unwrap();
    h.send(&info("slow-info")).await;
    shopbridge_platform::testing::eventually("the command claimed", || async {
        count(
            &h,
            "SELECT count(*) FROM command_claims WHERE command_id = 'slow-info'",
        )
        .await
            == 1
    })
    .await;
    let idle_in_transaction = count(
        &h,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
    )
    .await;
    assert_eq!(
        idle_in_transaction, 0,
        "no transaction is held while Shopify answers"
    );
    let result = h.result_of("slow-info").await;
    assert!(succeeded(&result), "{result:?}");
    assert_eq!(
        count(&h, "SELECT count(*) FROM command_claims").await,
        0,
        "the claim goes with the result"
    );
    h.finish().await;
}

#[tokio::test]
async fn a_dead_replicas_claim_is_taken_over_and_a_live_one_is_waited_for() {
    let h = Harness::start(&[(SHOP, seed(1, 1, 0))]).await;
    // A replica that died an hour ago while running "orphan": its claim stopped beating.
    sqlx::query(
        "INSERT INTO command_claims (command_id, owner, heartbeat_at) \
         VALUES ('orphan', 'dead-replica', now() - interval '1 hour'), ('busy', 'live-replica', now())",
    )
    .execute(&h.db.pool)
    .await
    .unwrap();
    h.send(&info("orphan")).await;
    let taken_over = h.result_of("orphan").await;
    assert!(succeeded(&taken_over), "{taken_over:?}");

    // "busy" is being run by a live replica: this delivery waits for it instead of running it a second time.
    h.send(&info("busy")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !h.results().await.iter().any(|r| r.command_id == "busy"),
        "not run while another replica holds it"
    );
    assert_eq!(
        h.stats(SHOP).await["graphql_requests"],
        1,
        "only the orphan called"
    );
    // The live replica answers it (its result recorded, its claim gone): the waiting delivery publishes that answer.
    let answer = pb::CommandResult {
        command_id: "busy".into(),
        shop_domain: SHOP.into(),
        status: pb::command_result::Status::Succeeded as i32,
        calls: 1,
        ..Default::default()
    };
    sqlx::query(
        "INSERT INTO command_results (command_id, shop_domain, status, calls, result) VALUES ('busy', $1, 'SUCCEEDED', 1, $2)",
    )
    .bind(SHOP)
    .bind(prost::Message::encode_to_vec(&answer))
    .execute(&h.db.pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM command_claims WHERE command_id = 'busy'")
        .execute(&h.db.pool)
        .await
        .unwrap();
    let busy = h.result_of("busy").await;
    assert_eq!(busy, answer);
    assert_eq!(h.stats(SHOP).await["graphql_requests"], 1, "never run here");
    h.finish().await;
}
