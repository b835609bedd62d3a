//! Test harness: an in-process simulator on 127.0.0.1:0 with a manual clock.
#![allow(dead_code)]
pub mod receiver;

use serde_json::{Value, json};
use shopify_sim::client::SeedRequestJson;
use shopify_sim::{Clock, SimClient, SimConfig, SimHandle, Simulator};
use std::time::Duration;

pub struct T {
    pub sim: SimHandle,
    pub client: SimClient,
    pub shop: String,
    pub token: String,
}

pub fn config() -> SimConfig {
    SimConfig {
        client_id: "test-client".into(),
        client_secret: "hush".into(),
        clock: Clock::manual(),
        webhook_retry_base: Duration::from_millis(20),
        webhook_max_retries: 3,
        webhook_timeout: Duration::from_millis(500),
        ..SimConfig::default()
    }
}

pub async fn start_with(config: SimConfig, plan: &str, seed: Option<SeedRequestJson>) -> T {
    let sim = Simulator::start_on(config, "127.0.0.1:0")
        .await
        .expect("start");
    let client = SimClient::new(sim.addr());
    let shop = "test-shop.myshopify.com".to_string();
    let token = client.create_shop(&shop, plan).await.expect("create shop");
    if let Some(s) = seed {
        client.seed(&shop, &s).await.expect("seed");
    }
    T {
        sim,
        client,
        shop,
        token,
    }
}

pub async fn start(seed: Option<SeedRequestJson>) -> T {
    start_with(config(), "plus", seed).await
}

pub fn small_seed() -> SeedRequestJson {
    SeedRequestJson {
        products: 12,
        variants_per_product: 3,
        locations: 2,
        orders: 8,
        seed: 7,
    }
}

impl T {
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self
            .client
            .graphql(&self.shop, &self.token, query, variables)
            .await
            .expect("graphql");
        assert_eq!(status, 200, "HTTP status for {query}: {body}");
        body
    }

    /// Runs a document and asserts there are no top-level errors.
    pub async fn ok(&self, query: &str, variables: Value) -> Value {
        let b = self.gql(query, variables).await;
        assert!(b.get("errors").is_none(), "errors for {query}: {b}");
        b["data"].clone()
    }

    pub async fn first_product(&self) -> Value {
        let d = self
            .ok("{ products(first: 1) { nodes { id variants(first: 10) { nodes { id sku inventoryItem { id } } } } } }", json!({}))
            .await;
        d["products"]["nodes"][0].clone()
    }

    pub async fn location_ids(&self) -> Vec<String> {
        let d = self
            .ok("{ locations(first: 10) { nodes { id } } }", json!({}))
            .await;
        d["locations"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_string())
            .collect()
    }
}
