//! The system around orders, in one process over real NATS and PostgreSQL: auth (a tenant, API clients, a channel
//! connected with the shop's token), shopify-gateway (its service identity, pointed at the simulator, receiving the
//! shop's webhooks), the Shopify simulator, and orders itself; each service on its own fresh database, all in one NATS namespace. Services can be
//! stopped (graceful), crashed (their task aborted mid-work) and started again on the same database.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use shopbridge_auth::{
    clients::{self, NewClient},
    domain::ShopDomain,
    shop_verifier::{ShopInfo, ShopVerifier, VerifyFuture},
};
use shopbridge_orders::ServiceSettings;
use shopbridge_platform::{
    bus::{EventMeta, Namespace, names::event_subject, topology::Topology},
    service::Application,
    testing::{TestDb, TestNats, service_settings},
};
use shopbridge_proto::{
    auth as auth_pb,
    common::Operation,
    orders::{self as pb, orders_service_client::OrdersServiceClient},
    runs,
};
use shopify_sim::{SimClient, SimConfig, SimHandle, Simulator};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};
use uuid::Uuid;

pub const PBKDF2_ITERATIONS: u32 = 1000;

/// Stands in for the gateway-backed check auth will use when a store is connected: accepts any token (a wrong one
/// is then refused by the simulator when the gateway uses it).
struct AcceptingVerifier;

impl ShopVerifier for AcceptingVerifier {
    fn verify<'a>(&'a self, _: &'a ShopDomain, _: &'a SecretString) -> VerifyFuture<'a> {
        Box::pin(async {
            Ok(ShopInfo {
                name: "Simulated shop".into(),
                plan: "enterprise".into(),
            })
        })
    }
}

/// A running service: its gRPC address and how to stop it.
pub struct Service {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    cancel: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Service {
    pub fn spawn(app: Application) -> Self {
        let grpc = app.grpc_addr();
        let http = app.http_addr();
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(app.run_until_stopped(cancel.clone()));
        Self {
            grpc,
            http,
            cancel,
            handle,
        }
    }

    /// A graceful stop (SIGTERM): in-flight work finishes.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.handle.await;
    }

    /// A crash: the service's task and everything it started die where they are.
    pub async fn crash(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub type Client = OrdersServiceClient<InterceptedService<Channel, Bearer>>;

/// A tenant of auth with an API client and its token.
pub struct Tenant {
    pub id: Uuid,
    pub token: String,
}

#[derive(Clone, Copy)]
pub struct Options {
    /// Start shopify-gateway (tests of the API alone do not need it).
    pub gateway: bool,
    /// Compress the topology's timers (redelivery after 4-5 s instead of 60-120 s, partition leases of 2 s), so a
    /// crashed service's work comes back within a test's time. Same topology otherwise.
    pub fast_timers: bool,
    /// Start orders in-process.
    pub orders: bool,
    /// Runs fetch orders with a bulk operation (service.get_orders.bulk).
    pub bulk: bool,
}

pub struct Stack {
    pub nats: TestNats,
    pub sim: SimHandle,
    pub sim_client: SimClient,
    pub shop: String,
    pub shop_token: String,
    pub auth: Service,
    pub auth_db: TestDb,
    pub tenant: Tenant,
    pub channel_id: String,
    pub gateway: Option<Service>,
    pub gateway_db: TestDb,
    gateway_identity: NewClient,
    pub orders: Option<Service>,
    pub orders_db: TestDb,
    options: Options,
    namespace: Namespace,
}

/// The topology of deploy/nats/topology.yaml with shorter timers (see [`Options::fast_timers`]).
fn fast_topology() -> Topology {
    // Without the streams' size bounds, as TestNats does: each test's namespace would reserve 5 GiB otherwise.
    let mut topology = Topology::embedded().without_size_bounds();
    for consumer in &mut topology.consumers {
        // 20 s, not less: thousands of TagOrder commands wait for the shop's cost budget, and a shorter ack wait
        // redelivers them so often that a slow machine spends their max_deliver (100) before they run.
        if consumer.name.starts_with("gateway-") {
            consumer.ack_wait_secs = 20;
        }
        if consumer.name.starts_with("orders-") {
            consumer.ack_wait_secs = 5;
        }
    }
    for bucket in &mut topology.key_value {
        if bucket.bucket == "gateway-leases" {
            bucket.ttl_secs = 2;
        }
    }
    topology
}

async fn nats(options: Options) -> TestNats {
    if !options.fast_timers {
        return TestNats::new().await;
    }
    let url = shopbridge_platform::testing::nats_url();
    let client = async_nats::connect(&url).await.expect("NATS");
    let js = async_nats::jetstream::new(client.clone());
    let namespace = Namespace::unique_for_test();
    fast_topology()
        .apply(&js, &namespace)
        .await
        .expect("apply topology");
    TestNats {
        client,
        js,
        namespace,
    }
}

impl Stack {
    pub async fn start(options: Options) -> Self {
        shopbridge_platform::telemetry::init_for_tests();
        let sim = Simulator::start_on(SimConfig::default(), "127.0.0.1:0")
            .await
            .expect("simulator");
        let sim_client = SimClient::new(sim.addr());
        let shop = format!(
            "orders-{}.myshopify.com",
            &Uuid::new_v4().simple().to_string()[..10]
        );
        let shop_token = sim_client
            .create_shop(&shop, "enterprise")
            .await
            .expect("shop");
        let nats = nats(options).await;
        let namespace = nats.namespace.clone();

        let auth_db = TestDb::new(&shopbridge_auth::MIGRATOR).await;
        let auth_settings: shopbridge_auth::Settings = service_settings(
            &shopbridge_auth::SPEC,
            &auth_db.url,
            &namespace,
            &[("SHOPBRIDGE__SERVICE__PBKDF2_ITERATIONS", "1000")],
        );
        let auth = Service::spawn(
            shopbridge_auth::build_with(auth_settings, Arc::new(AcceptingVerifier))
                .await
                .expect("auth"),
        );
        let admin = clients::bootstrap_admin(&auth_db.pool, "merchant", PBKDF2_ITERATIONS)
            .await
            .unwrap();
        let gateway_identity = clients::bootstrap_gateway(&auth_db.pool, PBKDF2_ITERATIONS)
            .await
            .unwrap();
        let token = issue_token(auth.grpc, &admin).await;
        let tenant = Tenant {
            id: admin.tenant_id,
            token,
        };

        let mut stack = Self {
            nats,
            sim,
            sim_client,
            shop: shop.clone(),
            shop_token: shop_token.clone(),
            auth,
            auth_db,
            tenant,
            channel_id: String::new(),
            gateway: None,
            gateway_db: TestDb::empty().await,
            gateway_identity,
            orders: None,
            orders_db: TestDb::empty().await,
            options,
            namespace,
        };
        stack.channel_id = stack.connect_channel("main", &shop, &shop_token).await;
        if options.gateway {
            stack.start_gateway().await;
        }
        if options.orders {
            stack.start_orders().await;
        }
        stack
    }

    /// A channel of the tenant connected to `shop` with `shop_token` (any token: a wrong one fails later).
    pub async fn connect_channel(&self, name: &str, shop: &str, shop_token: &str) -> String {
        let channel = self.auth_channel().await;
        let mut channels = auth_pb::channel_service_client::ChannelServiceClient::new(channel);
        let created = channels
            .create_channel(authed(
                auth_pb::CreateChannelRequest { name: name.into() },
                &self.tenant.token,
            ))
            .await
            .expect("create channel")
            .into_inner()
            .channel
            .unwrap();
        channels
            .connect_with_token(authed(
                auth_pb::ConnectWithTokenRequest {
                    channel_id: created.channel_id.clone(),
                    shop_domain: shop.to_string(),
                    access_token: shop_token.to_string(),
                    granted_scopes: vec!["read_orders".into(), "write_orders".into()],
                },
                &self.tenant.token,
            ))
            .await
            .expect("connect channel");
        created.channel_id
    }

    async fn auth_channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.auth.grpc))
            .unwrap()
            .connect()
            .await
            .expect("connect to auth")
    }

    pub fn jwks_url(&self) -> String {
        format!(
            "http://{}{}",
            self.auth.http,
            shopbridge_platform::auth_token::JWKS_PATH
        )
    }

    /// The gateway's `[service]` settings for this stack (auth as its credential source, the simulator as Shopify), as
    /// environment variables: for the in-process gateway and for the benchmark's gateway binary alike.
    pub fn gateway_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            (
                "SHOPBRIDGE__SERVICE__AUTH__URL",
                format!("http://{}", self.auth.grpc),
            ),
            (
                "SHOPBRIDGE__SERVICE__AUTH__CLIENT_ID",
                self.gateway_identity.client_id.clone(),
            ),
            (
                "SHOPBRIDGE__SERVICE__AUTH__CLIENT_SECRET",
                self.gateway_identity
                    .client_secret
                    .expose_secret()
                    .to_string(),
            ),
            ("SHOPBRIDGE__SERVICE__SHOPIFY__SCHEME", "http".into()),
            (
                "SHOPBRIDGE__SERVICE__SHOPIFY__PORT",
                self.sim.addr().port().to_string(),
            ),
            (
                "SHOPBRIDGE__SERVICE__SHOPIFY__CONNECT_TO",
                self.sim.addr().to_string(),
            ),
            (
                "SHOPBRIDGE__SERVICE__WEBHOOKS__CLIENT_SECRET",
                self.sim.config().client_secret.clone(),
            ),
        ];
        if self.options.fast_timers {
            env.push(("SHOPBRIDGE__SERVICE__LEASES__LEASE_SECS", "2".into()));
            env.push((
                "SHOPBRIDGE__SERVICE__LEASES__RENEW_INTERVAL_MS",
                "300".into(),
            ));
        }
        env
    }

    pub async fn start_gateway(&mut self) {
        assert!(self.gateway.is_none(), "the gateway runs already");
        let env = self.gateway_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let settings: shopbridge_gateway::Settings = service_settings(
            &shopbridge_gateway::SPEC,
            &self.gateway_db.url,
            &self.namespace,
            &env,
        );
        self.gateway = Some(Service::spawn(
            shopbridge_gateway::build(settings).await.expect("gateway"),
        ));
    }

    pub async fn start_orders(&mut self) {
        assert!(self.orders.is_none(), "orders runs already");
        let jwks = self.jwks_url();
        let settings: shopbridge_orders::Settings = service_settings::<ServiceSettings>(
            &shopbridge_orders::SPEC,
            &self.orders_db.url,
            &self.namespace,
            &[
                ("SHOPBRIDGE__SERVICE__AUTH__JWKS_URL", jwks.as_str()),
                (
                    "SHOPBRIDGE__SERVICE__GET_ORDERS__BULK",
                    if self.options.bulk { "true" } else { "false" },
                ),
            ],
        );
        self.orders = Some(Service::spawn(
            shopbridge_orders::build(settings).await.expect("orders"),
        ));
    }

    /// The scheduler, in-process, offering GET_ORDERS (it learns the channel from auth's events).
    pub async fn start_scheduler(&self) -> Service {
        let jwks = self.jwks_url();
        let db = TestDb::new(&shopbridge_scheduler::MIGRATOR).await;
        let settings: shopbridge_scheduler::Settings = service_settings(
            &shopbridge_scheduler::SPEC,
            &db.url,
            &self.namespace,
            &[
                ("SHOPBRIDGE__SERVICE__AUTH__JWKS_URL", jwks.as_str()),
                ("SHOPBRIDGE__SERVICE__OPERATIONS", "GET_ORDERS"),
                ("SHOPBRIDGE__SERVICE__TICK_MS", "100"),
                ("SHOPBRIDGE__SERVICE__WATCH_POLL_MS", "100"),
            ],
        );
        // The database lives as long as the test process; each test's is unique.
        std::mem::forget(db);
        Service::spawn(
            shopbridge_scheduler::build(settings)
                .await
                .expect("scheduler"),
        )
    }

    pub async fn crash_orders(&mut self) {
        self.orders.take().expect("orders runs").crash().await;
    }

    pub async fn crash_gateway(&mut self) {
        self.gateway.take().expect("the gateway runs").crash().await;
    }

    /// A client of the orders API with `token`.
    pub async fn client_with(&self, token: &str) -> Client {
        let orders = self.orders.as_ref().expect("orders runs");
        client_at(orders.grpc, token)
            .await
            .expect("connect to orders")
    }

    /// A client of the orders API as the stack's tenant.
    pub async fn client(&self) -> Client {
        self.client_with(&self.tenant.token).await
    }

    /// Another tenant, with an API client holding `scopes`.
    pub async fn other_tenant(&self, name: &str, scopes: &[&str]) -> Tenant {
        let tenant_id = clients::tenant_by_name(&self.auth_db.pool, name)
            .await
            .unwrap();
        self.client_of(tenant_id, scopes).await
    }

    /// A client of an existing tenant with exactly `scopes`.
    pub async fn client_of(&self, tenant_id: Uuid, scopes: &[&str]) -> Tenant {
        let client = clients::create_client(
            &self.auth_db.pool,
            tenant_id,
            "test client",
            scopes.iter().map(|s| s.to_string()).collect(),
            PBKDF2_ITERATIONS,
        )
        .await
        .unwrap();
        let token = issue_token(self.auth.grpc, &client).await;
        Tenant {
            id: tenant_id,
            token,
        }
    }

    /// Replaces the channel's Get Orders settings.
    pub async fn set_settings(&self, settings: pb::GetOrdersSettings) {
        self.client()
            .await
            .set_get_orders_settings(pb::SetGetOrdersSettingsRequest {
                settings: Some(pb::GetOrdersSettings {
                    channel_id: self.channel_id.clone(),
                    ..settings
                }),
            })
            .await
            .expect("set get orders settings");
    }

    /// Publishes a RunRequested as the scheduler would; returns the run id.
    pub async fn request_run_on(
        &self,
        channel_id: &str,
        shop: &str,
        operation: Operation,
    ) -> String {
        let run_id = Uuid::now_v7().to_string();
        let request = runs::RunRequested {
            run_id: run_id.clone(),
            tenant_id: self.tenant.id.to_string(),
            channel_id: channel_id.to_string(),
            shop_domain: shop.to_string(),
            operation: operation as i32,
            trigger: runs::Trigger::Manual as i32,
            requested_at: None,
        };
        self.nats
            .publish(
                &event_subject::<runs::RunRequested>(),
                &format!("request-{run_id}"),
                &self.meta(channel_id, &run_id),
                &request,
            )
            .await;
        run_id
    }

    pub async fn request_get_orders(&self) -> String {
        self.request_run_on(&self.channel_id, &self.shop, Operation::GetOrders)
            .await
    }

    pub async fn cancel_run(&self, run_id: &str) {
        let cancel = runs::RunCancelRequested {
            run_id: run_id.to_string(),
            tenant_id: self.tenant.id.to_string(),
            channel_id: self.channel_id.clone(),
            operation: Operation::GetOrders as i32,
        };
        self.nats
            .publish(
                &event_subject::<runs::RunCancelRequested>(),
                &format!("cancel-{run_id}"),
                &self.meta(&self.channel_id, run_id),
                &cancel,
            )
            .await;
    }

    fn meta(&self, channel_id: &str, run_id: &str) -> EventMeta {
        EventMeta::tenant(self.tenant.id.to_string())
            .with_channel(channel_id)
            .with_correlation(run_id)
    }

    /// The run's RunFinished, waiting for it up to `within`.
    pub async fn finished_within(&self, run_id: &str, within: Duration) -> runs::RunFinished {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let finished = self.nats.events::<runs::RunFinished>().await;
            let mine: Vec<runs::RunFinished> = finished
                .into_iter()
                .filter(|f| f.run_id == run_id)
                .collect();
            if let Some(first) = mine.first() {
                assert_eq!(mine.len(), 1, "one RunFinished per run: {mine:?}");
                return first.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {run_id} did not finish within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn finished(&self, run_id: &str) -> runs::RunFinished {
        self.finished_within(run_id, Duration::from_secs(90)).await
    }

    /// Every log entry of the run, by key (a key reported twice is one entry, as the registry keeps it).
    pub async fn log(&self, run_id: &str) -> Vec<runs::LogEntry> {
        let mut entries: Vec<runs::LogEntry> = self
            .nats
            .events::<runs::RunLogged>()
            .await
            .into_iter()
            .filter(|l| l.run_id == run_id)
            .flat_map(|l| l.entries)
            .collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        entries.dedup_by(|a, b| a.key == b.key);
        entries
    }

    /// Every order of the stack's tenant, through the API, in order id order.
    pub async fn orders(&self) -> Vec<pb::Order> {
        self.orders_where(pb::ListOrdersRequest::default()).await
    }

    pub async fn orders_where(&self, filter: pb::ListOrdersRequest) -> Vec<pb::Order> {
        let mut client = self.client().await;
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_orders(pb::ListOrdersRequest {
                    page: Some(shopbridge_proto::common::PageRequest {
                        page_size: 200,
                        page_token: token.clone(),
                    }),
                    ..filter.clone()
                })
                .await
                .expect("list orders")
                .into_inner();
            all.extend(page.orders);
            token = page.page.unwrap_or_default().next_page_token;
            if token.is_empty() {
                assert_eq!(
                    all.len() as u64,
                    page.total,
                    "the pages add up to the total"
                );
                return all;
            }
        }
    }

    /// The gateway's webhook endpoint.
    pub fn webhooks_url(&self) -> String {
        let gateway = self.gateway.as_ref().expect("the gateway runs");
        format!("http://{}/shopify/webhooks", gateway.http)
    }

    /// Subscribes the shop's order webhooks to the gateway (what RegisterWebhooks does once the gateway's
    /// `service.webhooks.topics` lists them).
    pub async fn subscribe_order_webhooks(&self) {
        self.subscribe_order_webhooks_at(&self.webhooks_url()).await
    }

    /// Subscribes the shop's order webhooks to `uri`.
    pub async fn subscribe_order_webhooks_at(&self, uri: &str) {
        for topic in ["ORDERS_CREATE", "ORDERS_UPDATED"] {
            let (status, body) = self
                .sim_client
                .graphql(
                    &self.shop,
                    &self.shop_token,
                    "mutation Subscribe($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) { \
                     webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) { \
                     webhookSubscription { id } userErrors { field message } } }",
                    serde_json::json!({"topic": topic, "sub": {"uri": uri, "format": "JSON"}}),
                )
                .await
                .expect("subscribe");
            assert_eq!(status, 200, "{body}");
            assert!(body["errors"].is_null(), "{body}");
        }
    }

    /// The shop's locations (the primary one first).
    pub async fn locations(&self) -> Vec<String> {
        let (_, body) = self
            .sim_client
            .graphql(
                &self.shop,
                &self.shop_token,
                "query Locations { locations(first: 20) { nodes { id } } }",
                serde_json::json!({}),
            )
            .await
            .expect("locations");
        let mut ids: Vec<String> = body["data"]["locations"]["nodes"]
            .as_array()
            .expect("locations")
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort_by_key(|id| {
            id.rsplit('/')
                .next()
                .unwrap_or("")
                .parse::<u64>()
                .unwrap_or(0)
        });
        ids
    }

    pub async fn finish(mut self) {
        if let Some(orders) = self.orders.take() {
            orders.stop().await;
        }
        if let Some(gateway) = self.gateway.take() {
            gateway.crash().await;
        }
        self.auth.stop().await;
        self.nats.cleanup().await;
        self.auth_db.drop_db().await;
        self.gateway_db.drop_db().await;
        self.orders_db.drop_db().await;
        self.sim.shutdown().await;
    }
}

/// A client of the orders API at `addr` with `token`.
pub async fn client_at(addr: SocketAddr, token: &str) -> Result<Client, tonic::transport::Error> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a URI")
        .connect()
        .await?;
    let bearer = Bearer(format!("Bearer {token}").parse().expect("ascii token"));
    Ok(OrdersServiceClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(64 * 1024 * 1024))
}

pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}

pub async fn issue_token(auth_grpc: SocketAddr, client: &NewClient) -> String {
    let channel = Channel::from_shared(format!("http://{auth_grpc}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to auth");
    auth_pb::token_service_client::TokenServiceClient::new(channel)
        .issue_token(auth_pb::IssueTokenRequest {
            client_id: client.client_id.clone(),
            client_secret: client.client_secret.expose_secret().to_string(),
        })
        .await
        .expect("issue token")
        .into_inner()
        .access_token
}
