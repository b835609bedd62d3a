//! Shopify's real URLs work unchanged: HTTPS on the simulator's port, the shop chosen by name.

mod common;
use serde_json::{Value, json};
use shopify_sim::SimClient;

#[tokio::test]
async fn real_https_urls_reach_the_simulator() {
    let t = common::start(None).await;
    let url = SimClient::real_graphql_url(&t.shop, "2025-10");
    assert_eq!(
        url,
        "https://test-shop.myshopify.com/admin/api/2025-10/graphql.json"
    );
    let r = t
        .client
        .shop_https(&t.shop)
        .post(&url)
        .header("X-Shopify-Access-Token", &t.token)
        .json(&json!({"query": "{ shop { myshopifyDomain } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        b["data"]["shop"]["myshopifyDomain"],
        "test-shop.myshopify.com"
    );

    // Another shop on the same address is told apart by name.
    let other = t
        .client
        .create_shop("second-shop.myshopify.com", "advanced")
        .await
        .unwrap();
    let b: Value = t
        .client
        .shop_https("second-shop.myshopify.com")
        .post(SimClient::real_graphql_url(
            "second-shop.myshopify.com",
            "2025-10",
        ))
        .header("X-Shopify-Access-Token", &other)
        .json(&json!({"query": "{ shop { myshopifyDomain } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        b["data"]["shop"]["myshopifyDomain"],
        "second-shop.myshopify.com"
    );
    assert_eq!(
        b["extensions"]["cost"]["throttleStatus"]["maximumAvailable"],
        4000.0
    );

    // A client that does not trust the test CA cannot connect: it really is TLS.
    let untrusting = reqwest::Client::builder()
        .resolve(&t.shop, t.sim.addr())
        .tls_certs_only([])
        .build()
        .unwrap();
    assert!(
        untrusting
            .post(&url)
            .json(&json!({"query": "{ shop { name } }"}))
            .send()
            .await
            .is_err()
    );
}
