//! Issue 4, crash: a gateway killed in the middle of a bulk catalog export. A new instance on the same database takes
//! the partition over, polls the same bulk operation to the end (Shopify is not asked for another) and publishes the
//! catalog once. An instance here is what `build()` assembles for commands (partition manager with the production
//! spawner, handler, outbox relay, a pool of its own), with a fixed token source standing in for auth.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_nats::jetstream::kv;
use secrecy::SecretString;
use shopbridge_gateway::{
    commands::CommandHandler,
    partitions::leases::{LeaseSettings, Leases, PartitionManager},
};
use shopbridge_platform::{
    bus::{EventMeta, Relay, names},
    config::OutboxSettings,
    testing::{TestDb, TestNats, eventually},
};
use shopbridge_proto::gateway as pb;
use shopify_sim::{SimClient, SimConfig, Simulator, client::SeedRequestJson};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::harness::{Tokens, consumer_settings, executor_via};

const SHOP: &str = "crash-shop.myshopify.com";
pub const LEASES: LeaseSettings = LeaseSettings {
    renew_interval_ms: 200,
    lease_secs: 3,
    release_grace_ms: 1000,
};

/// One running gateway instance; dropping its tasks and pool is the crash. Shared with the other crash checks
/// (catalog_writes: a bulk mutation).
pub struct Instance {
    tasks: Vec<JoinHandle<()>>,
    pub pool: sqlx::PgPool,
    pub leases: Leases,
}

pub async fn start_instance(
    sim: &shopify_sim::SimHandle,
    db: &TestDb,
    nats: &TestNats,
    kv: kv::Store,
    tokens: &HashMap<String, SecretString>,
) -> Instance {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect(&db.url)
        .await
        .unwrap();
    let executor = executor_via(sim.addr(), 60);
    let fence = Leases::new(&LEASES);
    // A killed replica's claims are taken over within seconds, not the production minute.
    let handler = Arc::new(
        CommandHandler::new(
            Arc::new(executor),
            Arc::new(Tokens(tokens.clone())),
            pool.clone(),
            reqwest::Client::new(),
            Some(fence.clone()),
        )
        .with_settings(shopbridge_gateway::commands::CommandSettings {
            claim_takeover: Duration::from_secs(2),
            ..Default::default()
        }),
    );
    let spawn = shopbridge_gateway::spawner(
        pool.clone(),
        nats.js.clone(),
        nats.namespace.clone(),
        consumer_settings(),
        handler,
    );
    let manager = PartitionManager::new(kv, LEASES, fence.clone(), spawn);
    let relay = Relay::new(
        pool.clone(),
        nats.js.clone(),
        nats.namespace.clone(),
        OutboxSettings {
            poll_interval_ms: 50,
            batch_size: 500,
            retention_hours: 1,
        },
    );
    let cancel = CancellationToken::new();
    let tasks = vec![
        tokio::spawn({
            let cancel = cancel.clone();
            async move {
                let _ = manager.run(cancel).await;
            }
        }),
        tokio::spawn(async move {
            let _ = relay.run(cancel).await;
        }),
    ];
    Instance {
        tasks,
        pool,
        leases: fence,
    }
}

impl Instance {
    /// The process dies: nothing is released, nothing more is committed.
    pub async fn kill(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        self.pool.close().await;
    }
}

async fn bulk_rows(db: &TestDb) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT stage, bulk_id, status FROM bulk_operations WHERE command_id = 'export-crash' ORDER BY started_at")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_export_resumes_the_same_bulk_operation_and_publishes_each_product_once()
 {
    shopbridge_platform::telemetry::init_for_tests();
    let sim = Simulator::start_on(SimConfig::default(), "127.0.0.1:0")
        .await
        .unwrap();
    let client = SimClient::new(sim.addr());
    let token = client.create_shop(SHOP, "standard").await.unwrap();
    let seed = SeedRequestJson {
        products: 600,
        variants_per_product: 2,
        locations: 1,
        orders: 0,
        seed: 9,
    };
    client.seed(SHOP, &seed).await.unwrap();
    let tokens = HashMap::from([(SHOP.to_string(), SecretString::from(token))]);
    // Shopify takes 1.5 s to start each bulk query: the first instance is polling when it dies.
    let faults: shopify_sim::FaultConfig =
        serde_json::from_value(serde_json::json!({"bulk_delay_ms": 1500, "shops": [SHOP]}))
            .unwrap();
    client.set_faults(&faults).await.unwrap();

    let db = TestDb::new(&shopbridge_gateway::MIGRATOR).await;
    let nats = TestNats::new().await;
    // Unacknowledged commands come back after 3 s and leases expire after 3 s (deployed: 60 s and 15 s); the lease
    // bucket is changed after the topology is applied, which would set it back.
    let mut topology =
        shopbridge_platform::bus::topology::Topology::embedded().without_size_bounds();
    for consumer in &mut topology.consumers {
        consumer.ack_wait_secs = 3;
    }
    topology.apply(&nats.js, &nats.namespace).await.unwrap();
    let bucket = nats.namespace.resource("gateway-leases");
    nats.js
        .update_key_value(kv::Config {
            bucket: bucket.clone(),
            history: 1,
            max_age: Duration::from_secs(LEASES.lease_secs),
            ..Default::default()
        })
        .await
        .unwrap();
    let kv = nats.js.get_key_value(&bucket).await.unwrap();

    let first = start_instance(&sim, &db, &nats, kv.clone(), &tokens).await;
    let partition = names::partition_for(SHOP, names::GATEWAY_PARTITIONS);
    eventually("the first instance holds the shop's partition", || async {
        first.leases.holds(partition)
    })
    .await;
    let export = pb::Command {
        command_id: "export-crash".into(),
        shop_domain: SHOP.into(),
        channel_id: SHOP.into(),
        lane: pb::Lane::Import as i32,
        operation: Some(pb::command::Operation::ExportCatalog(pb::ExportCatalog {})),
    };
    nats.publish(
        &names::command_subject::<pb::Command>(SHOP, "import"),
        "export-crash",
        &EventMeta::tenant("t1"),
        &export,
    )
    .await;
    eventually("the first bulk operation is recorded", || async {
        !bulk_rows(&db).await.is_empty()
    })
    .await;
    first.kill().await;
    let before = bulk_rows(&db).await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0].2, "RUNNING", "killed while Shopify ran it");
    assert_eq!(client.stats(SHOP).await.unwrap()["bulk_operations"], 1);

    let second = start_instance(&sim, &db, &nats, kv.clone(), &tokens).await;
    eventually("the export is answered", || async {
        nats.events::<pb::CommandResult>()
            .await
            .iter()
            .any(|r| r.command_id == "export-crash")
    })
    .await;
    let results = nats.events::<pb::CommandResult>().await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(
        results[0].status,
        pb::command_result::Status::Succeeded as i32,
        "{:?}",
        results[0]
    );
    let after = bulk_rows(&db).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(
        (&after[0].0, &after[0].1),
        (&before[0].0, &before[0].1),
        "the same operation"
    );
    assert!(after.iter().all(|r| r.2 == "COMPLETED"), "{after:?}");
    assert_eq!(
        client.stats(SHOP).await.unwrap()["bulk_operations"],
        3,
        "one per stage: none started twice"
    );

    let batches: Vec<pb::CatalogBatch> = nats
        .events::<pb::CatalogBatch>()
        .await
        .into_iter()
        .filter(|b| b.command_id == "export-crash")
        .collect();
    let products: Vec<&str> = batches
        .iter()
        .flat_map(|b| b.products.iter().map(|p| p.id.as_str()))
        .collect();
    let unique: std::collections::HashSet<&str> = products.iter().copied().collect();
    assert_eq!(products.len(), 600, "every product published");
    assert_eq!(unique.len(), 600, "no product twice");
    assert_eq!(batches.len(), 3);
    assert!(batches.iter().all(|b| b.total_batches == 3));

    second.kill().await;
    nats.cleanup().await;
    db.drop_db().await;
}
