//! Commands over the bus: a command on its partition and lane is run against the (simulated) shop and answered; a
//! re-sent command makes no second Shopify call and is answered with its first result again, and a command naming
//! another shop than its channel's is refused without a call.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use secrecy::SecretString;
use shopbridge_gateway::commands::{
    ChannelCredentials, CommandHandler, CredentialError, CredentialSource,
};
use shopbridge_platform::{
    bus::{ConsumerRunner, EventMeta, Relay, names},
    config::{ConsumerSettings, OutboxSettings},
    testing::{TestDb, TestNats, eventually},
};
use shopbridge_proto::{common::Money, gateway as pb};
use tokio_util::sync::CancellationToken;

use crate::budget::{fixture, shop};

/// Shops and tokens by channel, standing in for auth.
struct StaticCredentials(HashMap<String, (String, SecretString)>);

impl CredentialSource for StaticCredentials {
    fn credentials<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<ChannelCredentials, CredentialError>> + Send + 'a>>
    {
        Box::pin(async move {
            let (shop_domain, token) = self
                .0
                .get(channel_id)
                .cloned()
                .ok_or_else(|| CredentialError::NotFound(channel_id.into()))?;
            Ok(ChannelCredentials { shop_domain, token })
        })
    }
}

async fn send(nats: &TestNats, message_id: &str, command: &pb::Command, lane: &str) {
    let subject = names::command_subject::<pb::Command>(&command.shop_domain, lane);
    nats.publish(&subject, message_id, &EventMeta::tenant("t1"), command)
        .await;
}

#[tokio::test]
async fn a_command_sent_twice_runs_once_and_each_send_gets_its_result() {
    shopbridge_platform::telemetry::init_for_tests();
    let f = fixture().await;
    let credentials = shop(&f, "command-shop.myshopify.com", 5, 2, 0).await;
    let db = TestDb::new(&shopbridge_gateway::MIGRATOR).await;
    let nats = TestNats::new().await;
    let cancel = CancellationToken::new();

    let handler = CommandHandler::new(
        f.executor.clone(),
        Arc::new(StaticCredentials(HashMap::from([(
            "channel-1".to_string(),
            (credentials.domain.clone(), credentials.token.clone()),
        )]))),
        db.pool.clone(),
        reqwest::Client::new(),
        None,
    );
    let partition = names::partition_token(names::partition_for(
        &credentials.domain,
        names::GATEWAY_PARTITIONS,
    ));
    let runner = ConsumerRunner::new(
        db.pool.clone(),
        nats.js.clone(),
        nats.namespace.clone(),
        "GATEWAY_COMMANDS",
        &format!("gateway-{partition}-sync"),
        handler,
        ConsumerSettings {
            concurrency: 8,
            batch_size: 1,
            backoff_ms: vec![100],
            max_failures: 10,
        },
    );
    tokio::spawn(runner.run(cancel.clone()));
    let relay = Relay::new(
        db.pool.clone(),
        nats.js.clone(),
        nats.namespace.clone(),
        OutboxSettings {
            poll_interval_ms: 100,
            batch_size: 100,
            retention_hours: 1,
        },
    );
    tokio::spawn(relay.run(cancel.clone()));

    let products = f
        .client
        .read(&credentials.domain, "products")
        .await
        .unwrap();
    let update = pb::UpdateVariantPrices {
        products: products
            .as_array()
            .unwrap()
            .iter()
            .map(|p| pb::ProductPrices {
                product_id: p["id"].as_str().unwrap().into(),
                variants: p["variants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| pb::VariantPrice {
                        variant_id: v["id"].as_str().unwrap().into(),
                        price: Some(Money {
                            amount: "7.50".into(),
                            currency_code: "USD".into(),
                        }),
                        compare_at_price: None,
                    })
                    .collect(),
            })
            .collect(),
    };
    let command = pb::Command {
        command_id: "cmd-42".into(),
        shop_domain: credentials.domain.clone(),
        channel_id: "channel-1".into(),
        lane: pb::Lane::Sync as i32,
        operation: Some(pb::command::Operation::UpdateVariantPrices(update)),
    };
    send(&nats, "outbox-row-1", &command, "sync").await;
    // The sender re-sends the same command later (a new outbox row, so JetStream does not dedupe it).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send(&nats, "outbox-row-2", &command, "sync").await;
    let unknown = pb::Command {
        command_id: "cmd-43".into(),
        channel_id: "channel-unknown".into(),
        ..command.clone()
    };
    send(&nats, "outbox-row-3", &unknown, "sync").await;
    // A command naming another shop than its channel's (on the same partition, so this consumer gets it): the
    // channel's token must not go there.
    let partition_of = |d: &str| names::partition_for(d, names::GATEWAY_PARTITIONS);
    let other = (0..)
        .map(|i| format!("other-{i}.myshopify.com"))
        .find(|d| partition_of(d) == partition_of(&credentials.domain))
        .unwrap();
    f.client.create_shop(&other, "standard").await.unwrap();
    let elsewhere = pb::Command {
        command_id: "cmd-44".into(),
        shop_domain: other.clone(),
        ..command.clone()
    };
    send(&nats, "outbox-row-4", &elsewhere, "sync").await;

    // cmd-42 is answered twice, once per send, with the same result (the re-send runs nothing); cmd-43 and cmd-44
    // once each.
    eventually("every send answered", || async {
        nats.events::<pb::CommandResult>().await.len() >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answered = nats.events::<pb::CommandResult>().await;
    assert_eq!(answered.len(), 4, "no late duplicate: {answered:?}");
    let cmd42: Vec<_> = answered
        .iter()
        .filter(|r| r.command_id == "cmd-42")
        .collect();
    assert_eq!(cmd42.len(), 2, "{answered:?}");
    assert_eq!(cmd42[0], cmd42[1], "the re-send gets the original result");

    let ok = cmd42[0];
    assert_eq!(
        ok.status,
        pb::command_result::Status::Succeeded as i32,
        "{ok:?}"
    );
    assert_eq!(ok.calls, 5);
    let failed = answered.iter().find(|r| r.command_id == "cmd-43").unwrap();
    assert_eq!(failed.status, pb::command_result::Status::Failed as i32);
    assert_eq!(failed.problems[0].code, "NO_CREDENTIALS");
    let refused = answered.iter().find(|r| r.command_id == "cmd-44").unwrap();
    assert_eq!(refused.status, pb::command_result::Status::Failed as i32);
    assert_eq!(refused.problems[0].code, "SHOP_MISMATCH", "{refused:?}");
    assert_eq!(refused.calls, 0);
    let other_stats = f.client.stats(&other).await.unwrap();
    assert_eq!(
        (
            &other_stats["graphql_requests"],
            &other_stats["unauthorized"]
        ),
        (&serde_json::json!(0), &serde_json::json!(0)),
        "nothing was sent to the other shop: {other_stats}"
    );

    let stats = f.client.stats(&credentials.domain).await.unwrap();
    assert_eq!(
        stats["mutations"]["productVariantsBulkUpdate"], 5,
        "the re-sent command made no call"
    );
    assert_eq!(stats["duplicate_idempotency_keys"], 0);

    cancel.cancel();
    nats.cleanup().await;
    db.drop_db().await;
}
