//! kill -9 of orders and of the gateway in the middle of a large import: no order lost, none doubled, each tagged
//! once. 500 orders by default; `SHOPBRIDGE_ORDERS_CRASH_ORDERS=5000` for the size (the import takes about a
//! minute; tagging takes much longer, since each tag is one Shopify call paced by the shop's cost budget).

use std::time::{Duration, Instant};

use serde_json::json;
use shopbridge_proto::{orders as pb, runs};

use crate::support::stack::{Options, Stack};

const TAG: &str = "Received by Shopbridge";

fn orders_to_place() -> usize {
    std::env::var("SHOPBRIDGE_ORDERS_CRASH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

async fn place_many(stack: &Stack, n: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let url = format!(
        "http://{}/_sim/shops/{}/orders/custom",
        stack.sim.addr(),
        stack.shop
    );
    let mut ids = Vec::with_capacity(n);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (client, url) = (client.clone(), url.clone());
        set.spawn(async move {
            let body = json!({"lines": [{"sku": format!("SKU-{}", i % 97), "title": "Tee", "quantity": 1 + i % 3}],
                              "customer": {"first_name": "C", "last_name": i.to_string(),
                                           "email": format!("c{i}@example.com")}});
            let r = client.post(&url).json(&body).send().await.expect("place");
            assert!(r.status().is_success());
            let v: serde_json::Value = r.json().await.unwrap();
            v["id"].as_str().unwrap().to_string()
        });
        if set.len() >= 16 {
            ids.push(set.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(id) = set.join_next().await {
        ids.push(id.unwrap());
    }
    ids
}

async fn stored(stack: &Stack) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&stack.orders_db.pool)
        .await
        .unwrap_or(0)
}

#[tokio::test]
async fn killing_orders_and_the_gateway_during_an_import_loses_and_doubles_nothing_and_tags_each_once()
 {
    let n = orders_to_place();
    let mut stack = Stack::start(Options {
        gateway: true,
        fast_timers: true,
        orders: true,
        bulk: true,
    })
    .await;
    stack
        .set_settings(pb::GetOrdersSettings {
            enabled: true,
            import_orders_without_location: true,
            fulfillment_statuses: vec![pb::FulfillmentStatus::Unfulfilled as i32],
            financial_statuses: vec![pb::FinancialStatus::Any as i32],
            pii_retention: pb::PiiRetention::Indefinitely as i32,
            tag_after_import: TAG.into(),
            updated_within_days: 14,
            ..Default::default()
        })
        .await;
    let placed = Instant::now();
    let ids = place_many(&stack, n).await;
    eprintln!("placed {n} orders in {:?}", placed.elapsed());

    let started = Instant::now();
    let run_id = stack.request_get_orders().await;
    // The gateway dies while the bulk operation runs, and comes back (it polls the same operation, never a second).
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.crash_gateway().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.start_gateway().await;
    // Orders dies while pages are being applied, and comes back.
    let deadline = Instant::now() + Duration::from_secs(120);
    while stored(&stack).await == 0 {
        assert!(Instant::now() < deadline, "no order stored within 120 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_crash = stored(&stack).await;
    stack.crash_orders().await;
    eprintln!(
        "orders killed with {at_crash} of {n} stored, {:?} after the request",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.start_orders().await;

    let finished = stack
        .finished_within(&run_id, Duration::from_secs(300))
        .await;
    eprintln!(
        "run finished {:?} after the request: {finished:?}",
        started.elapsed()
    );
    assert_eq!(
        finished.outcome,
        runs::Outcome::Succeeded as i32,
        "{finished:?}"
    );
    let pool = &stack.orders_db.pool;
    let (count, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT shopify_order_id) FROM orders")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        (count, distinct),
        (n as i64, n as i64),
        "none lost, none doubled"
    );
    let imported: i64 =
        sqlx::query_scalar("SELECT count(*) FROM order_history WHERE kind = 'imported'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(imported, n as i64, "each imported once");
    // One OrderImported per order, written with it (the outbox; JetStream dedupes re-publications by its row id).
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE type_name = 'shopbridge.orders.v1.OrderImported'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(events, n as i64, "an OrderImported for every order, once");

    // Every order tagged, once: the tag results come back, and Shopify holds the tag once.
    let tag_budget = Duration::from_secs(120) + Duration::from_millis(400) * n as u32;
    let deadline = Instant::now() + tag_budget;
    loop {
        let tagged: i64 =
            sqlx::query_scalar("SELECT count(*) FROM orders WHERE tagged_at IS NOT NULL")
                .fetch_one(pool)
                .await
                .unwrap();
        if tagged == n as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{tagged} of {n} tagged within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("all {n} tagged {:?} after the request", started.elapsed());
    let tag_entries: i64 =
        sqlx::query_scalar("SELECT count(*) FROM order_history WHERE kind = 'tagged'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(tag_entries, n as i64);
    let shopify = stack.sim_client.read(&stack.shop, "orders").await.unwrap();
    let ids: std::collections::HashSet<String> = ids.into_iter().collect();
    let mut checked = 0;
    for order in shopify.as_array().unwrap() {
        if ids.contains(order["id"].as_str().unwrap_or_default()) {
            let tags: Vec<&str> = order["tags"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|t| t.as_str())
                .collect();
            assert_eq!(tags, [TAG], "{order}");
            checked += 1;
        }
    }
    assert_eq!(checked, n);
    stack.finish().await;
}
