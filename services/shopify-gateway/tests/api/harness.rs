//! A gateway driven over the bus for order-side tests: the production partition spawner (one consumer per lane of
//! each partition used, one handler, so one budget per shop), the outbox relay, the simulator behind the executor,
//! and helpers to send commands and await their results.

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use secrecy::SecretString;
use shopbridge_gateway::{
    commands::{ChannelCredentials, CommandHandler, CredentialError, CredentialSource},
    shopify::{
        ShopifyHttp, ShopifySettings,
        budget::{Budget, BudgetSettings},
        executor::{Executor, RetrySettings},
    },
};
use shopbridge_platform::{
    bus::{EventMeta, Relay, names},
    config::{ConsumerSettings, OutboxSettings},
    testing::{TestDb, TestNats, eventually, service_settings},
};
use shopbridge_proto::gateway as pb;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

use crate::budget::{Fixture, fixture};

/// An executor like the fixture's whose connections go to `connect_to` (reqwest connects to the port in the URL,
/// so that is the proxy's too), giving up on a call after `deadline_secs`.
pub(crate) fn executor_via(connect_to: SocketAddr, deadline_secs: u64) -> Executor {
    let settings = ShopifySettings {
        api_version: "2026-10".into(),
        scheme: "http".into(),
        port: connect_to.port(),
        connect_to: connect_to.to_string(),
        request_timeout_secs: 10,
    };
    let retry = RetrySettings {
        base_delay_ms: 20,
        max_delay_ms: 500,
        deadline_secs,
    };
    Executor::new(
        ShopifyHttp::new(settings).unwrap(),
        Budget::new(BudgetSettings::default()),
        retry,
    )
}

/// A TCP proxy in front of the simulator that notes when a watched string first passes towards Shopify: the moment
/// a request carrying it was sent (the simulator keeps no request log).
pub struct RecordingProxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<HashMap<String, Option<Instant>>>>,
}

impl RecordingProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<HashMap<String, Option<Instant>>>> = Arc::default();
        let watched = seen.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let seen = watched.clone();
                tokio::spawn(async move {
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_server, mut to_server) = outbound.into_split();
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                    });
                    // Keep the tail of the previous read, so a string split across reads is still seen.
                    let mut window: Vec<u8> = Vec::new();
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match from_client.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let now = Instant::now();
                        window.extend_from_slice(&buf[..n]);
                        {
                            let mut seen = seen.lock().unwrap();
                            for (needle, at) in seen.iter_mut() {
                                if at.is_none()
                                    && window.windows(needle.len()).any(|w| w == needle.as_bytes())
                                {
                                    *at = Some(now);
                                }
                            }
                        }
                        if window.len() > 256 {
                            window.drain(..window.len() - 256);
                        }
                        if to_server.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { addr, seen }
    }

    /// Starts watching for `needle` (at most 256 bytes).
    pub fn watch(&self, needle: &str) {
        self.seen.lock().unwrap().insert(needle.to_string(), None);
    }

    /// When `needle` was first sent, if it was.
    pub fn first_seen(&self, needle: &str) -> Option<Instant> {
        self.seen.lock().unwrap().get(needle).copied().flatten()
    }
}

/// Tokens by channel id, standing in for auth.
pub struct Tokens(pub HashMap<String, SecretString>);

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

pub struct Harness {
    pub f: Fixture,
    /// Between the executor and the simulator when started with [`Harness::start_recorded`].
    pub proxy: Option<RecordingProxy>,
    /// Access tokens by shop domain.
    pub tokens: HashMap<String, String>,
    pub db: TestDb,
    pub nats: TestNats,
    cancel: CancellationToken,
}

/// How the harness's gateway reaches the simulator.
enum Calls {
    Direct,
    Recorded,
    Impatient,
}

/// Consumer settings for tests: the deployed concurrency, quick redelivery.
pub fn consumer_settings() -> ConsumerSettings {
    ConsumerSettings {
        concurrency: 16,
        batch_size: 1,
        backoff_ms: vec![100, 500],
        max_failures: 10,
    }
}

impl Harness {
    /// Starts the simulator and one gateway consuming the partitions of `shops` (each shop's channel id is its
    /// domain), with the given seed per shop.
    pub async fn start(shops: &[(&str, shopify_sim::client::SeedRequestJson)]) -> Self {
        Self::start_with(shops, Calls::Direct).await
    }

    /// Like [`Harness::start`], with the gateway's Shopify calls going through a [`RecordingProxy`].
    pub async fn start_recorded(shops: &[(&str, shopify_sim::client::SeedRequestJson)]) -> Self {
        Self::start_with(shops, Calls::Recorded).await
    }

    /// Like [`Harness::start`], with the gateway giving up on a failing Shopify call after 2 s (120 s otherwise).
    pub async fn start_impatient(shops: &[(&str, shopify_sim::client::SeedRequestJson)]) -> Self {
        Self::start_with(shops, Calls::Impatient).await
    }

    async fn start_with(
        shops: &[(&str, shopify_sim::client::SeedRequestJson)],
        calls: Calls,
    ) -> Self {
        shopbridge_platform::telemetry::init_for_tests();
        let mut f = fixture().await;
        let proxy = match calls {
            Calls::Direct => None,
            Calls::Recorded => {
                let proxy = RecordingProxy::start(f._sim.addr()).await;
                f.executor = Arc::new(executor_via(proxy.addr, 120));
                Some(proxy)
            }
            Calls::Impatient => {
                f.executor = Arc::new(executor_via(f._sim.addr(), 2));
                None
            }
        };
        let db = TestDb::new(&shopbridge_gateway::MIGRATOR).await;
        let nats = TestNats::new().await;
        let mut tokens = HashMap::new();
        let mut plain = HashMap::new();
        for (domain, seed) in shops {
            let token = f.client.create_shop(domain, "standard").await.unwrap();
            f.client.seed(domain, seed).await.unwrap();
            plain.insert(domain.to_string(), token.clone());
            tokens.insert(domain.to_string(), SecretString::from(token));
        }
        // The command consumers and the relay run as deployed: the configured consumer concurrency, sharing one
        // pool of the configured size (the test's own queries use the test database's pool).
        let deployed: shopbridge_gateway::Settings =
            service_settings(&shopbridge_gateway::SPEC, &db.url, &nats.namespace, &[]);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(deployed.database.max_connections)
            .connect(&db.url)
            .await
            .unwrap();
        let handler = Arc::new(CommandHandler::new(
            f.executor.clone(),
            Arc::new(Tokens(tokens)),
            pool.clone(),
            reqwest::Client::new(),
            None,
        ));
        let cancel = CancellationToken::new();
        let spawn = shopbridge_gateway::spawner(
            pool.clone(),
            nats.js.clone(),
            nats.namespace.clone(),
            ConsumerSettings {
                backoff_ms: vec![100, 500],
                ..deployed.consumer
            },
            handler,
        );
        let mut partitions: Vec<u32> = shops
            .iter()
            .map(|(d, _)| names::partition_for(d, names::GATEWAY_PARTITIONS))
            .collect();
        partitions.sort_unstable();
        partitions.dedup();
        for partition in partitions {
            drop(spawn(partition, cancel.clone()));
        }
        let relay = Relay::new(
            pool,
            nats.js.clone(),
            nats.namespace.clone(),
            OutboxSettings {
                poll_interval_ms: 50,
                batch_size: 500,
                retention_hours: 1,
            },
        );
        tokio::spawn(relay.run(cancel.clone()));
        Self {
            f,
            proxy,
            tokens: plain,
            db,
            nats,
            cancel,
        }
    }

    /// Publishes `command` on its shop's partition and lane, with the command id as message id.
    pub async fn send(&self, command: &pb::Command) {
        self.send_as(command, &command.command_id).await;
    }

    /// Publishes `command` under another message id (a re-send JetStream does not deduplicate).
    pub async fn send_as(&self, command: &pb::Command, message_id: &str) {
        let lane = match pb::Lane::try_from(command.lane).unwrap_or(pb::Lane::Unspecified) {
            pb::Lane::Orders => "orders",
            pb::Lane::Sync => "sync",
            pb::Lane::Publish => "publish",
            pb::Lane::Import | pb::Lane::Unspecified => "import",
        };
        let subject = names::command_subject::<pb::Command>(&command.shop_domain, lane);
        self.nats
            .publish(&subject, message_id, &EventMeta::tenant("t1"), command)
            .await;
    }

    /// Every CommandResult published so far.
    pub async fn results(&self) -> Vec<pb::CommandResult> {
        self.nats.events::<pb::CommandResult>().await
    }

    /// Waits for the results of `ids`; returns them in the order asked.
    pub async fn results_of(&self, ids: &[&str]) -> Vec<pb::CommandResult> {
        eventually("the commands' results", || async {
            let results = self.results().await;
            ids.iter()
                .all(|id| results.iter().any(|r| r.command_id == *id))
        })
        .await;
        let results = self.results().await;
        ids.iter()
            .map(|id| {
                results
                    .iter()
                    .find(|r| r.command_id == *id)
                    .unwrap()
                    .clone()
            })
            .collect()
    }

    /// Waits until the command `id` is answered, by the gateway's own record of it (reading the EVENTS stream does
    /// not end while a backlog keeps publishing results); returns its status name.
    pub async fn answered(&self, id: &str) -> String {
        let status = || async {
            sqlx::query_scalar::<_, String>(
                "SELECT status FROM command_results WHERE command_id = $1",
            )
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await
            .unwrap()
        };
        eventually("the command answered", || async {
            status().await.is_some()
        })
        .await;
        status().await.unwrap()
    }

    pub async fn result_of(&self, id: &str) -> pb::CommandResult {
        self.results_of(&[id]).await.remove(0)
    }

    /// Runs a GraphQL document against the shop directly (test setup and checks, outside the gateway).
    pub async fn graphql(
        &self,
        domain: &str,
        query: &str,
        variables: serde_json::Value,
    ) -> serde_json::Value {
        let (status, body) = self
            .f
            .client
            .graphql(domain, &self.tokens[domain], query, variables)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }

    /// The shop's location ids.
    pub async fn locations(&self, domain: &str) -> Vec<String> {
        let data = self
            .graphql(
                domain,
                "{ locations(first: 50) { nodes { id } } }",
                serde_json::json!({}),
            )
            .await;
        data["locations"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Places an order as a customer would: (sku, quantity, location) per line; returns the order id.
    pub async fn place_order(&self, domain: &str, lines: &[(&str, i64, &str)]) -> String {
        let body = serde_json::json!({
            "line_items": lines.iter().map(|(sku, q, _)| serde_json::json!({"sku": sku, "quantity": q})).collect::<Vec<_>>(),
            "financial_status": "PAID",
            "locations": lines.iter().map(|(_, _, l)| *l).collect::<Vec<_>>(),
        });
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!(
                "http://{}/_sim/shops/{domain}/orders",
                self.f._sim.addr()
            ))
            .json(&body)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["id"].as_str().unwrap().to_string()
    }

    /// What the store holds (`orders`, `fulfillments`, `products`, ...).
    pub async fn read(&self, domain: &str, what: &str) -> serde_json::Value {
        self.f.client.read(domain, what).await.unwrap()
    }

    /// The ids of the shop's products.
    pub async fn product_ids(&self, domain: &str) -> Vec<String> {
        self.read(domain, "products")
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn stats(&self, domain: &str) -> serde_json::Value {
        self.f.client.stats(domain).await.unwrap()
    }

    pub async fn finish(self) {
        self.cancel.cancel();
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.nats.cleanup().await;
        self.db.drop_db().await;
    }
}

/// An orders-lane command for `shop` (channel id = shop domain).
pub fn command(id: &str, shop: &str, operation: pb::command::Operation) -> pb::Command {
    pb::Command {
        command_id: id.into(),
        shop_domain: shop.into(),
        channel_id: shop.into(),
        lane: pb::Lane::Orders as i32,
        operation: Some(operation),
    }
}

pub fn seed(
    products: usize,
    locations: usize,
    orders: usize,
) -> shopify_sim::client::SeedRequestJson {
    shopify_sim::client::SeedRequestJson {
        products,
        variants_per_product: 2,
        locations,
        orders,
        seed: 5,
    }
}

pub fn succeeded(result: &pb::CommandResult) -> bool {
    result.status == pb::command_result::Status::Succeeded as i32
}

pub fn codes(result: &pb::CommandResult) -> Vec<&str> {
    result.problems.iter().map(|p| p.code.as_str()).collect()
}

/// Waits until the gateway's consumers have taken the messages `message_ids` (recorded in the inbox).
pub async fn consumed(h: &Harness, message_ids: &[&str]) {
    let ids: Vec<String> = message_ids.iter().map(|s| s.to_string()).collect();
    eventually("the messages consumed", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_id = ANY($1)")
            .bind(&ids)
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
        n == ids.len() as i64
    })
    .await;
}
