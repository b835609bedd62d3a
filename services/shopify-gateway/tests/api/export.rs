//! Catalog export through bulk operations against the simulator.

use std::{collections::HashSet, time::Duration};

use shopbridge_gateway::{
    bulk::query::{Exporter, PollSettings},
    operations::catalog::export::export,
};
use shopbridge_platform::testing::TestDb;
use shopify_sim::client::SeedRequestJson;

use crate::budget::fixture;

fn exporter<'a>(f: &'a crate::budget::Fixture, db: &'a TestDb) -> Exporter<'a> {
    Exporter {
        executor: &f.executor,
        pool: &db.pool,
        download: reqwest::Client::new(),
        poll: PollSettings {
            first: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
    }
}

#[tokio::test]
async fn a_catalog_export_has_every_product_and_variant_once_with_quantities_per_location() {
    let f = fixture().await;
    let db = TestDb::new(&shopbridge_gateway::MIGRATOR).await;
    let domain = "export-shop.myshopify.com";
    let token = f.client.create_shop(domain, "standard").await.unwrap();
    let seed = SeedRequestJson {
        products: 120,
        variants_per_product: 3,
        locations: 2,
        orders: 0,
        seed: 3,
    };
    f.client.seed(domain, &seed).await.unwrap();
    let shop = shopbridge_gateway::shopify::executor::ShopCredentials {
        domain: domain.into(),
        token: token.into(),
        fence: None,
    };

    let products = export(&exporter(&f, &db), &shop, "cmd-export-1")
        .await
        .expect("export");

    let store = f.client.read(domain, "products").await.unwrap();
    let store_products = store.as_array().unwrap();
    assert_eq!(products.len(), store_products.len());
    let exported: HashSet<&str> = products
        .iter()
        .flat_map(|p| p.variants.iter().map(|v| v.id.as_str()))
        .collect();
    let variant_count: usize = products.iter().map(|p| p.variants.len()).sum();
    assert_eq!(exported.len(), variant_count, "no variant twice");
    let expected: HashSet<&str> = store_products
        .iter()
        .flat_map(|p| {
            p["variants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].as_str().unwrap())
        })
        .collect();
    assert_eq!(exported, expected);
    for product in &products {
        let in_store = store_products
            .iter()
            .find(|p| p["id"] == product.id.as_str())
            .unwrap();
        assert_eq!(product.title, in_store["title"].as_str().unwrap());
        for variant in &product.variants {
            assert!(!variant.inventory_item_id.is_empty());
            let stored = in_store["variants"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["id"] == variant.id.as_str())
                .unwrap();
            assert_eq!(variant.sku, stored["sku"].as_str().unwrap_or_default());
            let total: i64 = variant.quantities.iter().map(|q| q.available).sum();
            assert_eq!(
                Some(total),
                stored["inventory_quantity"].as_i64(),
                "{}",
                variant.id
            );
        }
    }
    let stats = f.client.stats(domain).await.unwrap();
    assert_eq!(stats["bulk_operations"], 3);
    db.drop_db().await;
}

/// A gateway that dies while Shopify runs the bulk query finds the operation in its database after the restart and
/// polls it to the end: no second bulk operation is started.
#[tokio::test]
async fn an_export_interrupted_while_polling_resumes_the_same_bulk_operation() {
    let f = fixture().await;
    let db = TestDb::new(&shopbridge_gateway::MIGRATOR).await;
    let domain = "resume-shop.myshopify.com";
    let token = f.client.create_shop(domain, "standard").await.unwrap();
    let seed = SeedRequestJson {
        products: 30,
        variants_per_product: 2,
        locations: 1,
        orders: 0,
        seed: 4,
    };
    f.client.seed(domain, &seed).await.unwrap();
    let shop = shopbridge_gateway::shopify::executor::ShopCredentials {
        domain: domain.into(),
        token: token.into(),
        fence: None,
    };
    // Shopify takes 3 s to start the bulk query, so the first attempt is still polling when it dies.
    let faults: shopify_sim::FaultConfig =
        serde_json::from_value(serde_json::json!({"bulk_delay_ms": 3000, "shops": [domain]}))
            .unwrap();
    f.client.set_faults(&faults).await.unwrap();

    // The first attempt dies as soon as its bulk operation is recorded (a crash while polling).
    {
        let first = exporter(&f, &db);
        let attempt = export(&first, &shop, "cmd-resume");
        tokio::pin!(attempt);
        let recorded = async {
            loop {
                let started: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM bulk_operations WHERE command_id = 'cmd-resume'",
                )
                .fetch_one(&db.pool)
                .await
                .unwrap();
                if started == 1 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            result = &mut attempt => panic!("the first attempt finished before it could be interrupted: {:?}", result.map(|p| p.len())),
            _ = recorded => {}
        }
    }
    let status: String =
        sqlx::query_scalar("SELECT status FROM bulk_operations WHERE command_id = 'cmd-resume'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        status, "RUNNING",
        "interrupted while Shopify was still running it"
    );

    let products = export(&exporter(&f, &db), &shop, "cmd-resume")
        .await
        .expect("resumed export");
    assert_eq!(products.len(), 30);
    assert_eq!(products.iter().map(|p| p.variants.len()).sum::<usize>(), 60);
    let stats = f.client.stats(domain).await.unwrap();
    assert_eq!(
        stats["bulk_operations"], 3,
        "one per stage, none started twice"
    );
    db.drop_db().await;
}
