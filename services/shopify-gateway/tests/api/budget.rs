//! The budget and executor against the simulator at Shopify's standard plan (2,000 points, 100/s): large syncs finish
//! with zero THROTTLED responses, urgent work overtakes a backlog, shops do not wait on each other, and faults end with
//! every call applied exactly once.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::Value;
use shopbridge_gateway::{
    operations::{
        inventory::{self, QuantitySet},
        prices::{self, ProductPrices, VariantPrice},
    },
    shopify::{
        ShopifyHttp, ShopifySettings,
        budget::{Budget, BudgetSettings, Lane},
        documents,
        executor::{Executor, Operation, RetrySettings, ShopCredentials},
    },
};
use shopify_sim::{SimClient, SimConfig, Simulator, client::SeedRequestJson};

pub struct Fixture {
    pub _sim: shopify_sim::SimHandle,
    pub client: SimClient,
    pub executor: std::sync::Arc<Executor>,
}

pub async fn fixture() -> Fixture {
    let sim = Simulator::start_on(SimConfig::default(), "127.0.0.1:0")
        .await
        .expect("simulator");
    let client = SimClient::new(sim.addr());
    let settings = ShopifySettings {
        api_version: "2026-10".into(),
        scheme: "http".into(),
        port: sim.addr().port(),
        connect_to: sim.addr().to_string(),
        request_timeout_secs: 10,
    };
    let retry = RetrySettings {
        base_delay_ms: 20,
        max_delay_ms: 500,
        deadline_secs: 120,
    };
    let executor = Executor::new(
        ShopifyHttp::new(settings).unwrap(),
        Budget::new(BudgetSettings::default()),
        retry,
    );
    Fixture {
        _sim: sim,
        client,
        executor: std::sync::Arc::new(executor),
    }
}

pub async fn shop(
    f: &Fixture,
    domain: &str,
    products: usize,
    variants: usize,
    orders: usize,
) -> ShopCredentials {
    let token = f.client.create_shop(domain, "standard").await.unwrap();
    let seed = SeedRequestJson {
        products,
        variants_per_product: variants,
        locations: 1,
        orders,
        seed: 7,
    };
    f.client.seed(domain, &seed).await.unwrap();
    ShopCredentials {
        domain: domain.to_string(),
        token: SecretString::from(token),
        fence: None,
    }
}

async fn stats(f: &Fixture, domain: &str) -> Value {
    f.client.stats(domain).await.unwrap()
}

fn price_updates(products: &Value, take: usize, price: &str) -> Vec<ProductPrices> {
    products
        .as_array()
        .unwrap()
        .iter()
        .take(take)
        .map(|p| ProductPrices {
            product_id: p["id"].as_str().unwrap().to_string(),
            variants: p["variants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| VariantPrice {
                    variant_id: v["id"].as_str().unwrap().to_string(),
                    price: price.to_string(),
                    compare_at_price: None,
                })
                .collect(),
        })
        .collect()
}

fn inventory_sets(inventory: &Value, delta: i64) -> Vec<QuantitySet> {
    inventory
        .as_array()
        .unwrap()
        .iter()
        .map(|level| {
            let available = level["quantities"]["available"].as_i64().unwrap_or(0);
            QuantitySet {
                inventory_item_id: level["inventory_item_id"].as_str().unwrap().to_string(),
                location_id: level["location_id"].as_str().unwrap().to_string(),
                quantity: available + delta,
                compare_quantity: Some(available),
            }
        })
        .collect()
}

#[tokio::test]
async fn a_20000_variant_inventory_sync_finishes_with_zero_throttled_responses() {
    let f = fixture().await;
    let shop = shop(&f, "inventory-shop.myshopify.com", 2000, 10, 0).await;
    let inventory = f.client.read(&shop.domain, "inventory").await.unwrap();
    let sets = inventory_sets(&inventory, 5);
    assert_eq!(sets.len(), 20_000);

    let outcome =
        inventory::set_inventory(&f.executor, &shop, Lane::Sync, "cmd-inv-1", &sets).await;
    assert!(
        outcome.failed_calls.is_empty(),
        "{:?}",
        outcome.failed_calls
    );
    assert!(
        outcome.user_errors.is_empty(),
        "{:?}",
        &outcome.user_errors[..outcome.user_errors.len().min(3)]
    );

    let s = stats(&f, &shop.domain).await;
    assert_eq!(s["throttled"], 0);
    assert_eq!(
        s["mutations"]["inventorySetQuantities"], 80,
        "20,000 quantities in calls of 250"
    );
    assert_eq!(s["duplicate_idempotency_keys"], 0);
    let after = f.client.read(&shop.domain, "inventory").await.unwrap();
    let expected: std::collections::HashMap<_, _> = sets
        .iter()
        .map(|q| {
            (
                (q.inventory_item_id.clone(), q.location_id.clone()),
                q.quantity,
            )
        })
        .collect();
    for level in after.as_array().unwrap() {
        let key = (
            level["inventory_item_id"].as_str().unwrap().to_string(),
            level["location_id"].as_str().unwrap().to_string(),
        );
        assert_eq!(
            level["quantities"]["available"].as_i64(),
            expected.get(&key).copied(),
            "{key:?}"
        );
    }
}

/// 300 products x 10 points is more than the 2,000-point bucket holds: the run must wait for refills, never be
/// throttled. (`make bench ONLY=gateway` runs the full 2,000-product update.)
#[tokio::test]
async fn a_price_update_larger_than_the_bucket_waits_for_refills_and_is_never_throttled() {
    let f = fixture().await;
    let shop = shop(&f, "price-shop.myshopify.com", 300, 2, 0).await;
    let products = f.client.read(&shop.domain, "products").await.unwrap();
    let updates = price_updates(&products, 300, "12.34");

    let outcome = prices::update_variant_prices(&f.executor, &shop, Lane::Sync, &updates).await;
    assert!(
        outcome.failed_calls.is_empty(),
        "{:?}",
        outcome.failed_calls
    );
    assert!(outcome.user_errors.is_empty(), "{:?}", outcome.user_errors);

    let s = stats(&f, &shop.domain).await;
    assert_eq!(s["throttled"], 0);
    assert_eq!(s["mutations"]["productVariantsBulkUpdate"], 300);
    assert!(
        s["points_consumed"].as_u64().unwrap() > 2000,
        "the run needed refills: {s}"
    );
    let after = f.client.read(&shop.domain, "products").await.unwrap();
    for product in after.as_array().unwrap() {
        for variant in product["variants"].as_array().unwrap() {
            assert_eq!(variant["price"], "12.34");
        }
    }
}

#[tokio::test]
async fn urgent_order_work_overtakes_a_sync_backlog_and_other_shops_do_not_wait() {
    let f = fixture().await;
    let a = shop(&f, "busy-shop.myshopify.com", 600, 1, 3).await;
    let b = shop(&f, "quiet-shop.myshopify.com", 1, 1, 0).await;
    let products = f.client.read(&a.domain, "products").await.unwrap();
    let updates = price_updates(&products, 600, "9.99");

    let executor = f.executor.clone();
    let backlog_shop = ShopCredentials {
        domain: a.domain.clone(),
        token: a.token.clone(),
        fence: None,
    };
    let backlog = tokio::spawn(async move {
        prices::update_variant_prices(&executor, &backlog_shop, Lane::Sync, &updates).await
    });
    // Wait until the backlog has drained the bucket and calls are queueing.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let snapshot = f.executor.budget().snapshot(&a.domain);
        if snapshot.available < 100.0 && snapshot.waiting[Lane::Sync as usize] > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog never built up: {snapshot:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let orders = f.client.read(&a.domain, "orders").await.unwrap();
    let order_id = orders[0]["id"].as_str().unwrap().to_string();
    let tag = Operation {
        document: documents::ORDER_TAG,
        variables: serde_json::json!({ "id": order_id, "tags": ["shipped-by-shopbridge"] }),
        expected_cost: 10.0,
    };
    let started = Instant::now();
    f.executor
        .call(&a, Lane::Orders, &tag)
        .await
        .expect("order tag");
    let urgent = started.elapsed();
    assert!(
        urgent < Duration::from_secs(1),
        "the order call waited {urgent:?} behind the backlog"
    );

    let info = Operation {
        document: documents::SHOP_INFO,
        variables: serde_json::json!({}),
        expected_cost: 2.0,
    };
    let started = Instant::now();
    f.executor
        .call(&b, Lane::Import, &info)
        .await
        .expect("shop b");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shop b waited on shop a"
    );
    assert!(
        f.executor.budget().snapshot(&a.domain).waiting[Lane::Sync as usize] > 0,
        "the backlog was still queued"
    );

    backlog.abort();
    assert_eq!(stats(&f, &a.domain).await["throttled"], 0);
}

#[tokio::test]
async fn under_5xx_429_and_dropped_connections_every_call_is_applied_exactly_once() {
    let f = fixture().await;
    let shop = shop(&f, "flaky-shop.myshopify.com", 100, 3, 0).await;
    let faults: shopify_sim::FaultConfig = serde_json::from_value(serde_json::json!({
        "error_rate": 0.1, "error_status": 503, "rate_429": 0.1, "retry_after_secs": 0.2, "drop_rate": 0.1,
        "throttle_rate": 0.0, "latency_ms": 0, "webhook_duplicate_rate": 0.0, "webhook_reorder_rate": 0.0,
        "shops": [], "seed": 11
    }))
    .unwrap();
    f.client.set_faults(&faults).await.unwrap();

    let products = f.client.read(&shop.domain, "products").await.unwrap();
    let updates = price_updates(&products, 100, "5.55");
    let prices = prices::update_variant_prices(&f.executor, &shop, Lane::Sync, &updates).await;
    let inventory = f.client.read(&shop.domain, "inventory").await.unwrap();
    let sets = inventory_sets(&inventory, 1);
    let stock =
        inventory::set_inventory(&f.executor, &shop, Lane::Sync, "cmd-flaky-stock", &sets).await;
    assert!(prices.failed_calls.is_empty() && stock.failed_calls.is_empty());

    let s = stats(&f, &shop.domain).await;
    assert!(
        s["faults_injected"].as_u64().unwrap() > 10,
        "faults really happened: {s}"
    );
    assert_eq!(s["mutations"]["productVariantsBulkUpdate"], 100);
    assert_eq!(
        s["mutations"]["inventorySetQuantities"], 2,
        "300 quantities: two calls"
    );
    assert_eq!(s["duplicate_idempotency_keys"], 0);
    let after = f.client.read(&shop.domain, "products").await.unwrap();
    assert!(after.as_array().unwrap().iter().all(|p| {
        p["variants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["price"] == "5.55")
    }));
}

/// Shopify applies an inventory write but its answer is lost: the executor sends the same call again, with the same
/// `@idempotent` key, and Shopify answers the first result without applying it twice. Without the key the second
/// attempt would fail (its `changeFromQuantity` is stale by then) or, without a compare, apply again.
#[tokio::test]
async fn an_inventory_write_whose_answer_was_lost_is_applied_once_through_its_idempotency_key() {
    let f = fixture().await;
    let shop = shop(&f, "lost-stock-shop.myshopify.com", 250, 4, 0).await;
    let inventory = f.client.read(&shop.domain, "inventory").await.unwrap();
    let sets = inventory_sets(&inventory, 3);
    assert_eq!(sets.len(), 1000);
    let faults: shopify_sim::FaultConfig = serde_json::from_value(serde_json::json!({
        "lost_answer_rate": 0.5, "shops": [shop.domain], "seed": 5
    }))
    .unwrap();
    f.client.set_faults(&faults).await.unwrap();

    let outcome =
        inventory::set_inventory(&f.executor, &shop, Lane::Sync, "cmd-lost-stock", &sets).await;
    assert!(
        outcome.failed_calls.is_empty(),
        "{:?}",
        outcome.failed_calls
    );
    assert!(outcome.user_errors.is_empty(), "{:?}", outcome.user_errors);

    let s = stats(&f, &shop.domain).await;
    let lost = s["faults_injected"].as_u64().unwrap();
    assert!(lost > 0, "answers were lost: {s}");
    assert_eq!(
        s["duplicate_idempotency_keys"], lost,
        "every call whose answer was lost was sent again and answered from its key: {s}"
    );
    assert_eq!(
        s["mutations"]["inventorySetQuantities"].as_u64().unwrap(),
        4 + lost,
        "four calls, each lost answer sent again once or more: {s}"
    );
    let after = f.client.read(&shop.domain, "inventory").await.unwrap();
    for level in after.as_array().unwrap() {
        let before = inventory
            .as_array()
            .unwrap()
            .iter()
            .find(|l| {
                l["inventory_item_id"] == level["inventory_item_id"]
                    && l["location_id"] == level["location_id"]
            })
            .unwrap();
        assert_eq!(
            level["quantities"]["available"].as_i64().unwrap(),
            before["quantities"]["available"].as_i64().unwrap() + 3,
            "applied once: {level}"
        );
    }
}

/// The version requested is the configured one; the version Shopify answered with is recorded per shop, and differs
/// when the requested one is no longer served (Shopify falls forward to the oldest it serves).
#[tokio::test]
async fn the_api_version_a_shop_answered_with_is_recorded() {
    let f = fixture().await;
    let shop = shop(&f, "version-shop.myshopify.com", 1, 1, 0).await;
    let info = Operation {
        document: documents::SHOP_INFO,
        variables: serde_json::json!({}),
        expected_cost: 2.0,
    };
    assert_eq!(f.executor.served_version(&shop.domain), None);
    f.executor
        .call(&shop, Lane::Import, &info)
        .await
        .expect("shop info");
    assert_eq!(
        f.executor.served_version(&shop.domain).as_deref(),
        Some("2026-10")
    );

    let settings = ShopifySettings {
        api_version: "2025-10".into(),
        scheme: "http".into(),
        port: f._sim.addr().port(),
        connect_to: f._sim.addr().to_string(),
        request_timeout_secs: 10,
    };
    let old = Executor::new(
        ShopifyHttp::new(settings).unwrap(),
        Budget::new(BudgetSettings::default()),
        RetrySettings {
            base_delay_ms: 20,
            max_delay_ms: 500,
            deadline_secs: 10,
        },
    );
    old.call(&shop, Lane::Import, &info)
        .await
        .expect("shop info");
    assert_eq!(
        old.served_version(&shop.domain).as_deref(),
        Some("2026-01"),
        "2025-10 is no longer served: answered as the oldest version served"
    );
}

#[tokio::test]
async fn a_deposed_replica_sends_no_call() {
    let f = fixture().await;
    let mut shop = shop(&f, "fenced-shop.myshopify.com", 1, 1, 0).await;
    let holds = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let fence = holds.clone();
    shop.fence = Some(std::sync::Arc::new(move || {
        fence.load(std::sync::atomic::Ordering::SeqCst)
    }));
    let info = shopbridge_gateway::shopify::wire::access::ShopInfo {};
    f.executor
        .send(&shop, Lane::Orders, &info, 2.0)
        .await
        .expect("sent while the lease is held");
    holds.store(false, std::sync::atomic::Ordering::SeqCst);
    let refused = f.executor.send(&shop, Lane::Orders, &info, 2.0).await;
    assert!(
        matches!(
            refused,
            Err(shopbridge_gateway::shopify::executor::CallError::Fatal {
                kind: shopbridge_gateway::shopify::FatalKind::Deposed,
                ..
            })
        ),
        "{refused:?}"
    );
    let stats = f.client.stats(&shop.domain).await.unwrap();
    assert_eq!(stats["graphql_requests"], 1, "the second call never left");
}
