//! The budget at Shopify's standard plan (2,000 points, 100/s), against the simulator, for a 20,000-variant inventory
//! sync and a 2,000-product price update. For each: wall time divided by the theoretical minimum (actual points
//! consumed, minus the starting bucket, divided by the restore rate) and the THROTTLED count, for the gateway's
//! executor and, as the baseline in the same run, a naive client that sends and, on THROTTLED, sleeps 1 s and
//! retries. Both use 8 concurrent calls. Run with `make bench ONLY=gateway`; figures go to target/bench/gateway.json.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use secrecy::SecretString;
use serde_json::{Value, json};
use shopbridge_gateway::{
    operations::{
        inventory::{self, QuantitySet},
        prices::{self, ProductPrices, VariantPrice},
    },
    shopify::{
        ShopifyHttp, ShopifySettings,
        budget::{Budget, BudgetSettings, Lane},
        documents,
        executor::{Executor, RetrySettings, ShopCredentials},
    },
};
use shopify_sim::{SimClient, SimConfig, Simulator, client::SeedRequestJson};

const BUCKET: f64 = 2000.0;
const RESTORE: f64 = 100.0;
const CONCURRENCY: usize = 8;

struct Run {
    wall: f64,
    throttled: u64,
    points: u64,
}

impl Run {
    fn minimum(&self) -> f64 {
        ((self.points as f64 - BUCKET) / RESTORE).max(0.0)
    }
    fn ratio(&self) -> Option<f64> {
        let min = self.minimum();
        (min > 0.0).then(|| self.wall / min)
    }
}

/// One call per operation, as a naive client would make them.
#[derive(Clone)]
struct Call {
    document: &'static str,
    variables: Value,
}

async fn naive(client: &SimClient, shop: &str, token: &str, calls: Vec<Call>) {
    stream::iter(calls)
        .for_each_concurrent(CONCURRENCY, |call| async move {
            loop {
                let (status, body) = client
                    .graphql(shop, token, call.document, call.variables.clone())
                    .await
                    .unwrap();
                let throttled = body["errors"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|e| e["extensions"]["code"] == "THROTTLED"));
                if status == 200 && !throttled {
                    // A baseline whose calls fail would measure nothing.
                    assert!(
                        body["errors"].is_null(),
                        "the naive client's call failed: {body}"
                    );
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
        .await;
}

fn inventory_calls(sets: &[QuantitySet]) -> Vec<Call> {
    sets.chunks(inventory::INVENTORY_BATCH)
        .enumerate()
        .map(|(i, batch)| Call {
            document: documents::INVENTORY_SET.text,
            variables: json!({"idempotencyKey": format!("naive-inv:{i}"), "input": {"name": "available", "reason": "correction",
                "quantities": batch.iter().map(|q| json!({"inventoryItemId": q.inventory_item_id, "locationId": q.location_id, "quantity": q.quantity, "changeFromQuantity": null})).collect::<Vec<_>>()}}),
        })
        .collect()
}

fn price_calls(products: &[ProductPrices]) -> Vec<Call> {
    products
        .iter()
        .map(|p| Call {
            document: documents::VARIANTS_UPDATE_PRICES.text,
            variables: json!({"productId": p.product_id, "variants": p.variants.iter().map(|v| json!({"id": v.variant_id, "price": v.price})).collect::<Vec<_>>()}),
        })
        .collect()
}

async fn fresh_shop(
    client: &SimClient,
    name: &str,
    products: usize,
    variants: usize,
) -> (String, String) {
    let domain = format!("{name}.myshopify.com");
    let token = client.create_shop(&domain, "standard").await.unwrap();
    let seed = SeedRequestJson {
        products,
        variants_per_product: variants,
        locations: 1,
        orders: 0,
        seed: 1,
    };
    client.seed(&domain, &seed).await.unwrap();
    (domain, token)
}

async fn measure(client: &SimClient, domain: &str, work: impl Future<Output = ()>) -> Run {
    let started = Instant::now();
    work.await;
    let wall = started.elapsed().as_secs_f64();
    let s = client.stats(domain).await.unwrap();
    Run {
        wall,
        throttled: s["throttled"].as_u64().unwrap(),
        points: s["points_consumed"].as_u64().unwrap(),
    }
}

fn quantities(inventory: &Value) -> Vec<QuantitySet> {
    inventory
        .as_array()
        .unwrap()
        .iter()
        .map(|l| QuantitySet {
            inventory_item_id: l["inventory_item_id"].as_str().unwrap().into(),
            location_id: l["location_id"].as_str().unwrap().into(),
            quantity: 42,
            compare_quantity: None,
        })
        .collect()
}

fn prices(products: &Value) -> Vec<ProductPrices> {
    products
        .as_array()
        .unwrap()
        .iter()
        .map(|p| ProductPrices {
            product_id: p["id"].as_str().unwrap().into(),
            variants: p["variants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| VariantPrice {
                    variant_id: v["id"].as_str().unwrap().into(),
                    price: "19.99".into(),
                    compare_at_price: None,
                })
                .collect(),
        })
        .collect()
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sim = Simulator::start_on(SimConfig::default(), "127.0.0.1:0").await.unwrap();
        let client = SimClient::new(sim.addr());
        let settings = ShopifySettings {
            api_version: "2026-10".into(),
            scheme: "http".into(),
            port: sim.addr().port(),
            connect_to: sim.addr().to_string(),
            request_timeout_secs: 30,
        };
        let retry = RetrySettings { base_delay_ms: 100, max_delay_ms: 5000, deadline_secs: 900 };
        let budget = BudgetSettings { max_in_flight_per_shop: CONCURRENCY, ..BudgetSettings::default() };
        let executor = Arc::new(Executor::new(ShopifyHttp::new(settings).unwrap(), Budget::new(budget), retry));

        let mut rows = Vec::new();
        for (scenario, products, variants) in [("inventory_sync_20000_variants", 2000, 10), ("price_update_2000_products", 2000, 3)] {
            for client_kind in ["gateway", "naive"] {
                let (domain, token) = fresh_shop(&client, &format!("{scenario}-{client_kind}").replace('_', "-"), products, variants).await;
                let shop = ShopCredentials { domain: domain.clone(), token: SecretString::from(token.clone()), fence: None };
                let run = if scenario.starts_with("inventory") {
                    let sets = quantities(&client.read(&domain, "inventory").await.unwrap());
                    match client_kind {
                        "gateway" => measure(&client, &domain, async {
                            let o = inventory::set_inventory(&executor, &shop, Lane::Sync, "bench-inv", &sets).await;
                            assert!(o.failed_calls.is_empty());
                        }).await,
                        _ => measure(&client, &domain, naive(&client, &domain, &token, inventory_calls(&sets))).await,
                    }
                } else {
                    let updates = prices(&client.read(&domain, "products").await.unwrap());
                    match client_kind {
                        "gateway" => measure(&client, &domain, async {
                            let o = prices::update_variant_prices(&executor, &shop, Lane::Sync, &updates).await;
                            assert!(o.failed_calls.is_empty());
                        }).await,
                        _ => measure(&client, &domain, naive(&client, &domain, &token, price_calls(&updates))).await,
                    }
                };
                eprintln!("{scenario} {client_kind}: {:.1} s, {} throttled", run.wall, run.throttled);
                rows.push((scenario, client_kind, run));
            }
        }

        println!("gateway budget benchmark (simulator, standard plan 2,000 points / 100 per s, {CONCURRENCY} concurrent calls)");
        println!("{:<32} {:<8} {:>9} {:>9} {:>9} {:>14} {:>10}", "scenario", "client", "wall s", "points", "min s", "wall/min", "throttled");
        let mut figures = Vec::new();
        for (scenario, kind, run) in &rows {
            let ratio = run.ratio().map_or("fits bucket".to_string(), |r| format!("{r:.3}"));
            println!("{scenario:<32} {kind:<8} {:>9.1} {:>9} {:>9.1} {ratio:>14} {:>10}", run.wall, run.points, run.minimum(), run.throttled);
            figures.push(json!({"name": format!("{scenario}_{kind}_wall"), "value": run.wall, "unit": "s"}));
            figures.push(json!({"name": format!("{scenario}_{kind}_throttled"), "value": run.throttled, "unit": "responses"}));
            figures.push(json!({"name": format!("{scenario}_{kind}_wall_over_minimum"), "value": run.ratio(), "unit": "ratio",
                "baseline": run.minimum(), "ratio": run.ratio()}));
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("gateway.json"), serde_json::to_string_pretty(&figures).unwrap()).unwrap();
        println!("figures written to target/bench/gateway.json");
    });
}
