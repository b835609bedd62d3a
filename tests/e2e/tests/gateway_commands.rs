//! auth + shopify-gateway + the Shopify simulator, over real NATS and PostgreSQL: a channel connected in auth, a
//! command on the gateway's partition and lane, the gateway reading the channel's token from auth with its service
//! identity, calling the (simulated) shop, and answering with one CommandResult event.

use std::{sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use shopbridge_auth::{
    clients,
    domain::ShopDomain,
    shop_verifier::{ShopInfo, ShopVerifier, VerifyFuture},
};
use shopbridge_platform::{
    bus::{EventMeta, names},
    testing::{TestDb, TestNats, eventually, service_settings},
};
use shopbridge_proto::{
    auth::{self as auth_pb, channel_service_client::ChannelServiceClient},
    gateway as pb,
};
use shopify_sim::{SimClient, SimConfig, Simulator};
use tokio_util::sync::CancellationToken;

/// Accepts the store without asking the gateway: this test is about commands (the gateway-backed verification is
/// tested in shopify_connect.rs).
struct AcceptingVerifier;

impl ShopVerifier for AcceptingVerifier {
    fn verify<'a>(&'a self, _: &'a ShopDomain, _: &'a SecretString) -> VerifyFuture<'a> {
        Box::pin(async {
            Ok(ShopInfo {
                name: "Simulated shop".into(),
                plan: "standard".into(),
            })
        })
    }
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn a_shop_info_command_reads_credentials_from_auth_and_runs_once_when_sent_twice() {
    shopbridge_platform::telemetry::init_for_tests();
    let sim = Simulator::start_on(SimConfig::default(), "127.0.0.1:0")
        .await
        .unwrap();
    let sim_client = SimClient::new(sim.addr());
    let shop = "e2e-shop.myshopify.com";
    let shop_token = sim_client.create_shop(shop, "advanced").await.unwrap();
    let nats = TestNats::new().await;
    let cancel = CancellationToken::new();

    // auth, with a connected channel.
    let auth_db = TestDb::new(&shopbridge_auth::MIGRATOR).await;
    let auth_settings: shopbridge_auth::Settings = service_settings(
        &shopbridge_auth::SPEC,
        &auth_db.url,
        &nats.namespace,
        &[("SHOPBRIDGE__SERVICE__PBKDF2_ITERATIONS", "1000")],
    );
    let auth = shopbridge_auth::build_with(auth_settings, Arc::new(AcceptingVerifier))
        .await
        .unwrap();
    let auth_url = format!("http://{}", auth.grpc_addr());
    tokio::spawn(auth.run_until_stopped(cancel.clone()));
    let admin = clients::bootstrap_admin(&auth_db.pool, "merchant", 1000)
        .await
        .unwrap();
    let gateway_identity = clients::bootstrap_gateway(&auth_db.pool, 1000)
        .await
        .unwrap();
    let channel = tonic::transport::Channel::from_shared(auth_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let admin_token =
        shopbridge_proto::auth::token_service_client::TokenServiceClient::new(channel.clone())
            .issue_token(auth_pb::IssueTokenRequest {
                client_id: admin.client_id.clone(),
                client_secret: admin.client_secret.expose_secret().to_string(),
            })
            .await
            .unwrap()
            .into_inner()
            .access_token;
    let mut channels = ChannelServiceClient::new(channel);
    let created = channels
        .create_channel(authed(
            auth_pb::CreateChannelRequest {
                name: "main".into(),
            },
            &admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    channels
        .connect_with_token(authed(
            auth_pb::ConnectWithTokenRequest {
                channel_id: created.channel_id.clone(),
                shop_domain: format!("https://{shop}/"),
                access_token: shop_token.clone(),
                granted_scopes: vec!["read_products".into()],
            },
            &admin_token,
        ))
        .await
        .unwrap();

    // The gateway, signed in to auth with its service identity, pointed at the simulator.
    let gateway_db = TestDb::empty().await;
    let port = sim.addr().port().to_string();
    let connect_to = sim.addr().to_string();
    let secret = gateway_identity.client_secret.expose_secret().to_string();
    let gateway_settings: shopbridge_gateway::Settings = service_settings(
        &shopbridge_gateway::SPEC,
        &gateway_db.url,
        &nats.namespace,
        &[
            ("SHOPBRIDGE__SERVICE__AUTH__URL", &auth_url),
            (
                "SHOPBRIDGE__SERVICE__AUTH__CLIENT_ID",
                &gateway_identity.client_id,
            ),
            ("SHOPBRIDGE__SERVICE__AUTH__CLIENT_SECRET", &secret),
            ("SHOPBRIDGE__SERVICE__SHOPIFY__SCHEME", "http"),
            ("SHOPBRIDGE__SERVICE__SHOPIFY__PORT", &port),
            ("SHOPBRIDGE__SERVICE__SHOPIFY__CONNECT_TO", &connect_to),
        ],
    );
    let gateway = shopbridge_gateway::build(gateway_settings).await.unwrap();
    let gateway_metrics = format!("http://{}/metrics", gateway.http_addr());
    tokio::spawn(gateway.run_until_stopped(cancel.clone()));

    let command = pb::Command {
        command_id: "verify-1".into(),
        shop_domain: shop.into(),
        channel_id: created.channel_id.clone(),
        lane: pb::Lane::Orders as i32,
        operation: Some(pb::command::Operation::GetShopInfo(pb::GetShopInfo {})),
    };
    let subject = names::command_subject::<pb::Command>(shop, "orders");
    for message_id in ["row-1", "row-2"] {
        nats.publish(&subject, message_id, &EventMeta::tenant("t"), &command)
            .await;
    }
    // Each send is answered (the re-send with the first answer again); the command ran once.
    eventually("the command's results", || async {
        nats.events::<pb::CommandResult>().await.len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answers = nats.events::<pb::CommandResult>().await;

    assert_eq!(
        answers.len(),
        2,
        "one result per send of the command: {answers:?}"
    );
    assert_eq!(answers[0], answers[1], "the re-send gets the same answer");
    let answer = &answers[0];
    assert_eq!(
        answer.status,
        pb::command_result::Status::Succeeded as i32,
        "{answer:?}"
    );
    let Some(pb::command_result::Result::ShopInfo(info)) = &answer.result else {
        panic!("no shop info: {answer:?}")
    };
    assert!(!info.name.is_empty());
    let stats = sim_client.stats(shop).await.unwrap();
    assert_eq!(
        stats["graphql_requests"], 1,
        "the re-sent command made no second call"
    );
    let metrics = reqwest::get(&gateway_metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "gateway_calls_total",
        "gateway_points_available",
        "gateway_points_consumed_total",
        "gateway_budget_wait_seconds",
    ] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains(shop));
        assert!(line.is_some(), "{name} for {shop} on /metrics");
    }

    // No secret of the whole flow reached a log line, at any level down to debug.
    let logs = shopbridge_platform::telemetry::captured_logs();
    assert!(logs.contains("command done"), "the capture works");
    for (what, secret) in [
        ("the shop's token", shop_token.as_str()),
        (
            "the gateway's client secret",
            gateway_identity.client_secret.expose_secret(),
        ),
        (
            "the admin's client secret",
            admin.client_secret.expose_secret(),
        ),
        ("the admin's access token", admin_token.as_str()),
    ] {
        assert!(!logs.contains(secret), "{what} appears in the logs");
    }

    cancel.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    nats.cleanup().await;
    auth_db.drop_db().await;
    gateway_db.drop_db().await;
}
