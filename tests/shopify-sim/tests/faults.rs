//! Faults on demand, the variant-creation throttle, slow webhook receivers and app/uninstalled.

mod common;
use common::receiver::Receiver;
use serde_json::json;
use shopify_sim::FaultConfig;
use std::time::{Duration, Instant};

#[tokio::test]
async fn http_faults() {
    let t = common::start(None).await;
    let q = "{ shop { name } }";
    t.client
        .set_faults(&FaultConfig {
            error_rate: 1.0,
            error_status: Some(503),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        t.client
            .graphql(&t.shop, &t.token, q, json!({}))
            .await
            .unwrap()
            .0,
        503
    );

    t.client
        .set_faults(&FaultConfig {
            rate_429: 1.0,
            retry_after_secs: Some(2.0),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = t
        .client
        .shop_http(&t.shop)
        .post(t.client.graphql_url(&t.shop, "2025-10"))
        .header("X-Shopify-Access-Token", &t.token)
        .json(&json!({"query": q}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2.0");

    t.client
        .set_faults(&FaultConfig {
            drop_rate: 1.0,
            ..Default::default()
        })
        .await
        .unwrap();
    let sent = t
        .client
        .shop_http(&t.shop)
        .post(t.client.graphql_url(&t.shop, "2025-10"))
        .header("X-Shopify-Access-Token", &t.token)
        .json(&json!({"query": q}))
        .send()
        .await;
    match sent {
        Err(_) => {}
        Ok(resp) => assert!(resp.bytes().await.is_err(), "the body must be cut"),
    }

    t.client
        .set_faults(&FaultConfig {
            throttle_rate: 1.0,
            ..Default::default()
        })
        .await
        .unwrap();
    let (s, b) = t
        .client
        .graphql(&t.shop, &t.token, q, json!({}))
        .await
        .unwrap();
    assert_eq!(s, 200);
    assert_eq!(b["errors"][0]["extensions"]["code"], "THROTTLED");
    assert_eq!(
        b["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"],
        0
    );

    t.client
        .set_faults(&FaultConfig {
            latency_ms: 150,
            ..Default::default()
        })
        .await
        .unwrap();
    let start = Instant::now();
    let (s, _) = t
        .client
        .graphql(&t.shop, &t.token, q, json!({}))
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(s, 200);

    // Faults limited to another shop leave this one alone.
    t.client
        .set_faults(&FaultConfig {
            error_rate: 1.0,
            shops: vec!["other.myshopify.com".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    t.sim.clock().advance(Duration::from_secs(60));
    assert_eq!(
        t.client
            .graphql(&t.shop, &t.token, q, json!({}))
            .await
            .unwrap()
            .0,
        200
    );
    let stats = t.client.stats(&t.shop).await.unwrap();
    assert!(stats["faults_injected"].as_u64().unwrap() >= 4);
}

#[tokio::test]
async fn a_lost_answer_comes_after_the_work_is_done() {
    let t = common::start(Some(common::small_seed())).await;
    let p = t.first_product().await;
    let q =
        "mutation T($id: ID!) { tagsAdd(id: $id, tags: [\"lost\"]) { userErrors { message } } }";
    t.client
        .set_faults(&FaultConfig {
            lost_answer_rate: 1.0,
            ..Default::default()
        })
        .await
        .unwrap();
    let sent = t
        .client
        .shop_http(&t.shop)
        .post(t.client.graphql_url(&t.shop, "2026-10"))
        .header("X-Shopify-Access-Token", &t.token)
        .json(&json!({"query": q, "variables": {"id": p["id"]}}))
        .send()
        .await;
    match sent {
        Err(_) => {}
        Ok(resp) => assert!(resp.bytes().await.is_err(), "the body must be cut"),
    }
    t.client.set_faults(&FaultConfig::default()).await.unwrap();
    let d = t
        .ok(
            "query P($id: ID!) { product(id: $id) { tags } }",
            json!({"id": p["id"]}),
        )
        .await;
    assert!(
        d["product"]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("lost")),
        "the mutation ran: {d}"
    );
    let stats = t.client.stats(&t.shop).await.unwrap();
    assert_eq!(stats["mutations"]["tagsAdd"], 1);
    assert_eq!(stats["faults_injected"], 1);
}

#[tokio::test]
async fn variant_creation_throttle_past_50000_variants() {
    let seed = shopify_sim::client::SeedRequestJson {
        products: 50,
        variants_per_product: 1000,
        locations: 1,
        orders: 0,
        seed: 1,
    };
    let t = common::start(Some(seed)).await;
    let p = t.first_product().await;
    let create = "mutation C($id: ID!, $v: [ProductVariantsBulkInput!]!) { productVariantsBulkCreate(productId: $id, variants: $v) { productVariants { id } userErrors { message } } }";
    let batch = |from: usize, n: usize| -> Vec<serde_json::Value> {
        (from..from + n).map(|i| json!({"optionValues": [{"optionName": "Size", "name": format!("N{i}")}], "price": "1.00"})).collect()
    };
    // 4 × 250 = 1,000 new variants today: allowed.
    for k in 0..4 {
        let d = t
            .ok(create, json!({"id": p["id"], "v": batch(k * 250, 250)}))
            .await;
        assert_eq!(
            d["productVariantsBulkCreate"]["userErrors"],
            json!([]),
            "batch {k}"
        );
    }
    let d = t
        .ok(create, json!({"id": p["id"], "v": batch(1000, 1)}))
        .await;
    assert!(
        d["productVariantsBulkCreate"]["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("daily variant creation limit")
    );
    // A day later the allowance is back.
    t.sim.clock().advance(Duration::from_secs(86_401));
    let d = t
        .ok(create, json!({"id": p["id"], "v": batch(1000, 1)}))
        .await;
    assert_eq!(d["productVariantsBulkCreate"]["userErrors"], json!([]));
}

#[tokio::test]
async fn slow_receivers_are_retried_and_uninstall_is_announced() {
    let mut cfg = common::config();
    cfg.webhook_timeout = Duration::from_millis(200);
    let t = common::start_with(cfg, "standard", None).await;
    // A receiver slower than the timeout: every attempt fails.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}/slow", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/slow",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            "late"
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let fast = Receiver::start(0).await;
    for uri in [&slow_url, &fast.url] {
        t.ok("mutation S($u: String!) { webhookSubscriptionCreate(topic: APP_UNINSTALLED, webhookSubscription: {uri: $u}) { userErrors { message } } }", json!({"u": uri})).await;
    }
    let r = reqwest::Client::new()
        .post(format!(
            "{}/_sim/shops/{}/uninstall",
            t.sim.base_url(),
            t.shop
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = fast.wait_for(1).await;
    assert_eq!(got[0].headers["x-shopify-topic"], "app/uninstalled");
    // Tokens are revoked.
    assert_eq!(
        t.client
            .graphql(&t.shop, &t.token, "{ shop { name } }", json!({}))
            .await
            .unwrap()
            .0,
        401
    );
    // Re-creating the shop (a reinstall) hands out a fresh offline token.
    let again = t.client.create_shop(&t.shop, "standard").await.unwrap();
    assert_ne!(again, t.token);
    assert_eq!(
        t.client
            .graphql(&t.shop, &again, "{ shop { name } }", json!({}))
            .await
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        t.client.create_shop(&t.shop, "standard").await.unwrap(),
        again,
        "idempotent"
    );
    // 1 + 3 retries (20, 40, 80 ms backoff), each timing out at 200 ms.
    let mut slow = None;
    for _ in 0..100 {
        let log = t.client.read(&t.shop, "webhooks").await.unwrap();
        slow = log
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["uri"] == slow_url.as_str())
            .cloned();
        if slow.as_ref().is_some_and(|d| d["attempts"] == 4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let slow = slow.unwrap();
    assert_eq!(slow["attempts"], 4);
    assert_eq!(slow["delivered"], false);
}

#[tokio::test]
async fn concurrent_requests_are_counted() {
    let t = common::start(None).await;
    t.client
        .set_faults(&FaultConfig {
            latency_ms: 200,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (c, shop, token) = (t.client.clone(), t.shop.clone(), t.token.clone());
        tasks.push(tokio::spawn(async move {
            c.graphql(&shop, &token, "{ shop { name } }", json!({}))
                .await
                .unwrap()
                .0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let stats = t.client.stats(&t.shop).await.unwrap();
    assert!(
        stats["max_concurrent_requests"].as_u64().unwrap() >= 4,
        "{stats}"
    );
    assert_eq!(stats["graphql_requests"], 6);
}
