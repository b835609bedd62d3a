//! Two gateway replicas: they share the 16 partitions, and when one dies the other takes its partitions over
//! within the lease time; every command is answered exactly once throughout.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use async_nats::jetstream::kv;
use futures::StreamExt;
use secrecy::SecretString;
use shopbridge_gateway::{
    commands::{ChannelCredentials, CommandHandler, CredentialError, CredentialSource},
    partitions::leases::{LeaseSettings, Leases, PartitionManager},
    shopify::{
        ShopifyHttp, ShopifySettings,
        budget::{Budget, BudgetSettings},
        executor::{Executor, RetrySettings},
    },
};
use shopbridge_platform::{
    bus::{EventMeta, names},
    config::ConsumerSettings,
    testing::{TestDb, TestNats, eventually},
};
use shopbridge_proto::gateway as pb;
use shopify_sim::{SimClient, SimConfig, Simulator};
use tokio_util::sync::CancellationToken;

struct Tokens(HashMap<String, SecretString>);

/// The channel id is the shop's domain.
impl CredentialSource for Tokens {
    fn credentials<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<ChannelCredentials, CredentialError>> + Send + 'a>>
    {
        Box::pin(async move {
            let token = self
                .0
                .get(channel_id)
                .cloned()
                .ok_or_else(|| CredentialError::NotFound(channel_id.into()))?;
            Ok(ChannelCredentials {
                shop_domain: channel_id.to_string(),
                token,
            })
        })
    }
}

const LEASES: LeaseSettings = LeaseSettings {
    renew_interval_ms: 200,
    lease_secs: 3,
    release_grace_ms: 1000,
};

/// One replica: its own executor (so its own budgets), its own lease fence, the shared database and NATS.
fn replica(
    sim: &shopify_sim::SimHandle,
    db: &TestDb,
    nats: &TestNats,
    kv: kv::Store,
    tokens: &HashMap<String, SecretString>,
) -> (Leases, PartitionManager) {
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
        deadline_secs: 60,
    };
    let executor = Executor::new(
        ShopifyHttp::new(settings).unwrap(),
        Budget::new(BudgetSettings::default()),
        retry,
    );
    let fence = Leases::new(&LEASES);
    // A killed replica's claims are taken over within seconds, not the production minute.
    let handler = Arc::new(
        CommandHandler::new(
            Arc::new(executor),
            Arc::new(Tokens(tokens.clone())),
            db.pool.clone(),
            reqwest::Client::new(),
            Some(fence.clone()),
        )
        .with_settings(shopbridge_gateway::commands::CommandSettings {
            claim_takeover: Duration::from_secs(2),
            ..Default::default()
        }),
    );
    let consumer = ConsumerSettings {
        concurrency: 4,
        batch_size: 1,
        backoff_ms: vec![100],
        max_failures: 10,
    };
    let spawn = shopbridge_gateway::spawner(
        db.pool.clone(),
        nats.js.clone(),
        nats.namespace.clone(),
        consumer,
        handler,
    );
    (
        fence.clone(),
        PartitionManager::new(kv, LEASES, fence, spawn),
    )
}

async fn send_all(nats: &TestNats, shops: &[String], round: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, shop) in shops.iter().enumerate() {
        let command = pb::Command {
            command_id: format!("round{round}-shop{i}"),
            shop_domain: shop.clone(),
            channel_id: shop.clone(),
            lane: pb::Lane::Orders as i32,
            operation: Some(pb::command::Operation::GetShopInfo(pb::GetShopInfo {})),
        };
        let subject = names::command_subject::<pb::Command>(shop, "orders");
        nats.publish(
            &subject,
            &command.command_id,
            &EventMeta::default(),
            &command,
        )
        .await;
        ids.push(command.command_id);
    }
    ids
}

async fn answered(nats: &TestNats) -> Vec<String> {
    nats.events::<pb::CommandResult>()
        .await
        .into_iter()
        .map(|r| r.command_id)
        .collect()
}

async fn until_answered(nats: &TestNats, want: usize) -> Vec<String> {
    eventually("every command answered", || async {
        answered(nats).await.len() >= want
    })
    .await;
    answered(nats).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_partitions_and_a_survivor_takes_over_a_dead_ones_without_duplicates() {
    shopbridge_platform::telemetry::init_for_tests();
    let sim = Simulator::start_on(SimConfig::default(), "127.0.0.1:0")
        .await
        .unwrap();
    let client = SimClient::new(sim.addr());
    let mut tokens = HashMap::new();
    let shops: Vec<String> = (0..8)
        .map(|i| format!("replica-shop-{i}.myshopify.com"))
        .collect();
    for shop in &shops {
        tokens.insert(
            shop.clone(),
            SecretString::from(client.create_shop(shop, "standard").await.unwrap()),
        );
    }
    let db = TestDb::new(&shopbridge_gateway::MIGRATOR).await;
    let nats = TestNats::new().await;
    // This test's leases expire after 3 s instead of the deployed 15 s.
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
    // And a dead replica's in-flight commands come back after 5 s instead of the deployed 60 s ack wait.
    let mut topology =
        shopbridge_platform::bus::topology::Topology::embedded().without_size_bounds();
    for consumer in &mut topology.consumers {
        consumer.ack_wait_secs = 5;
    }
    topology.apply(&nats.js, &nats.namespace).await.unwrap();
    // The replicas' outbox relay (one suffices: they share the database).
    let relay = shopbridge_platform::bus::Relay::new(
        db.pool.clone(),
        nats.js.clone(),
        nats.namespace.clone(),
        shopbridge_platform::config::OutboxSettings {
            poll_interval_ms: 50,
            batch_size: 100,
            retention_hours: 1,
        },
    );
    let stop_relay = CancellationToken::new();
    tokio::spawn(relay.run(stop_relay.clone()));

    let (leases_a, manager_a) = replica(&sim, &db, &nats, kv.clone(), &tokens);
    let replica_a = tokio::spawn(manager_a.run(CancellationToken::new()));
    eventually("replica A holds every partition", || async {
        leases_a.partitions().len() == 16
    })
    .await;

    let (leases_b, manager_b) = replica(&sim, &db, &nats, kv.clone(), &tokens);
    let stop_b = CancellationToken::new();
    let replica_b = tokio::spawn(manager_b.run(stop_b.clone()));
    eventually("the partitions are shared", || async {
        leases_a.partitions().len() == 8 && leases_b.partitions().len() == 8
    })
    .await;
    let a: HashSet<u32> = leases_a.partitions().into_iter().collect();
    assert!(
        leases_b.partitions().iter().all(|p| !a.contains(p)),
        "no partition held twice"
    );

    let first = send_all(&nats, &shops, 1).await;
    let ids = until_answered(&nats, first.len()).await;
    assert_eq!(ids.len(), first.len(), "{ids:?}");

    // Replica A dies without releasing its leases; B takes them over once they expire.
    replica_a.abort();
    let second = send_all(&nats, &shops, 2).await;
    eventually("replica B holds every partition", || async {
        leases_b.partitions().len() == 16
    })
    .await;
    let ids = until_answered(&nats, first.len() + second.len()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ids_again = answered(&nats).await;
    let unique: HashSet<&String> = ids_again.iter().collect();
    assert_eq!(ids.len(), first.len() + second.len(), "{ids:?}");
    assert_eq!(
        unique.len(),
        ids_again.len(),
        "no command answered twice: {ids_again:?}"
    );
    for shop in &shops {
        let stats = client.stats(shop).await.unwrap();
        assert_eq!(stats["graphql_requests"], 2, "{shop}: one call per command");
        assert_eq!(stats["throttled"], 0);
    }

    stop_b.cancel();
    replica_b.await.unwrap().unwrap();
    stop_relay.cancel();
    let left: Vec<String> = kv
        .keys()
        .await
        .unwrap()
        .filter_map(|k| async { k.ok() })
        .collect()
        .await;
    assert!(
        left.iter().all(|k| !k.starts_with("partition.")),
        "B released its leases on shutdown: {left:?}"
    );
    nats.cleanup().await;
    db.drop_db().await;
}
