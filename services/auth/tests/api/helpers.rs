use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use shopbridge_auth::{
    MIGRATOR, SPEC, ServiceSettings, Settings,
    clients::{self, NewClient},
    domain::ShopDomain,
    shop_access::{AccessError, AccessFuture, Grant, ShopifyAccess},
    shop_verifier::{ShopInfo, ShopVerifier, VerifyError, VerifyFuture},
};
use shopbridge_platform::testing::{TestDb, TestNats, service_settings};
use shopbridge_proto::auth::{
    self as pb, admin_service_client::AdminServiceClient,
    channel_service_client::ChannelServiceClient, token_service_client::TokenServiceClient,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{Request, transport::Channel};

/// A test encryption key (base64 of 32 bytes of 0x01) and a second one for rotations.
pub const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
pub const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// Low, so hashing client secrets does not dominate the suite; production uses the default.
pub const TEST_PBKDF2_ITERATIONS: u32 = 1000;

/// The one store the fake Shopify knows, and the token that opens it.
pub const GOOD_SHOP: &str = "good-shop.myshopify.com";
pub const GOOD_TOKEN: &str = "shpat_0123456789abcdef0123456789abcdef";

/// Stands in for the gateway's verification: one known store, one valid token; records every call.
#[derive(Default)]
pub struct FakeShopify {
    pub calls: Mutex<Vec<String>>,
}

impl ShopVerifier for FakeShopify {
    fn verify<'a>(&'a self, shop: &'a ShopDomain, token: &'a SecretString) -> VerifyFuture<'a> {
        self.calls.lock().unwrap().push(shop.to_string());
        Box::pin(async move {
            if shop.as_str() != GOOD_SHOP {
                return Err(VerifyError::UnknownShop);
            }
            if token.expose_secret() != GOOD_TOKEN {
                return Err(VerifyError::InvalidToken);
            }
            Ok(ShopInfo {
                name: "Good Shop".into(),
                plan: "basic".into(),
            })
        })
    }
}

/// Stands in for shopify-gateway's code exchange and token refresh: grants `scopes` (as Shopify lists them) with a
/// fresh token per call, expiring ones when asked; records every call (shop, secret presented).
pub struct FakeAccess {
    pub scopes: Mutex<Vec<String>>,
    pub exchanges: Mutex<Vec<(String, String)>>,
    pub refreshes: Mutex<Vec<(String, String)>>,
    /// When set, refreshes are refused with this reason.
    pub refuse_refresh: Mutex<Option<String>>,
    counter: std::sync::atomic::AtomicU32,
}

impl Default for FakeAccess {
    fn default() -> Self {
        Self {
            scopes: Mutex::new(
                shopbridge_auth::config::DEFAULT_SCOPES
                    .split(',')
                    .map(str::to_string)
                    .collect(),
            ),
            exchanges: Mutex::default(),
            refreshes: Mutex::default(),
            refuse_refresh: Mutex::default(),
            counter: Default::default(),
        }
    }
}

impl FakeAccess {
    fn grant(&self, expiring: bool) -> Grant {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Grant {
            access_token: SecretString::from(format!("shpat_granted_{n}")),
            scopes: self.scopes.lock().unwrap().clone(),
            expires_in: expiring.then(|| Duration::from_secs(3600)),
            refresh_token: expiring.then(|| SecretString::from(format!("shprt_granted_{n}"))),
            refresh_token_expires_in: expiring.then(|| Duration::from_secs(90 * 86_400)),
        }
    }
}

impl ShopifyAccess for FakeAccess {
    fn exchange_code<'a>(
        &'a self,
        shop: &'a ShopDomain,
        code: &'a SecretString,
        expiring: bool,
    ) -> AccessFuture<'a> {
        self.exchanges
            .lock()
            .unwrap()
            .push((shop.to_string(), code.expose_secret().to_string()));
        Box::pin(async move { Ok(self.grant(expiring)) })
    }

    fn refresh_token<'a>(
        &'a self,
        shop: &'a ShopDomain,
        refresh_token: &'a SecretString,
    ) -> AccessFuture<'a> {
        self.refreshes
            .lock()
            .unwrap()
            .push((shop.to_string(), refresh_token.expose_secret().to_string()));
        Box::pin(async move {
            if let Some(reason) = self.refuse_refresh.lock().unwrap().clone() {
                return Err(AccessError::Refused(reason));
            }
            Ok(self.grant(true))
        })
    }
}

/// The test app's OAuth client id and secret (`oauth_env`).
pub const APP_CLIENT_ID: &str = "test-app-id";
pub const APP_CLIENT_SECRET: &str = "test-app-secret";

/// Key `k1`, the test app's OAuth credentials, and `extra`.
pub fn oauth_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = env_with_keys(&[("k1", K1)], "k1");
    env.push((
        "SHOPBRIDGE__SERVICE__OAUTH__CLIENT_ID".into(),
        APP_CLIENT_ID.into(),
    ));
    env.push((
        "SHOPBRIDGE__SERVICE__OAUTH__CLIENT_SECRET".into(),
        APP_CLIENT_SECRET.into(),
    ));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

pub fn env_with_keys(keys: &[(&str, &str)], active: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = keys
        .iter()
        .map(|(kid, key)| {
            (
                format!(
                    "SHOPBRIDGE__SERVICE__ENCRYPTION_KEYS__{}",
                    kid.to_uppercase()
                ),
                key.to_string(),
            )
        })
        .collect();
    env.push((
        "SHOPBRIDGE__SERVICE__ACTIVE_ENCRYPTION_KEY".into(),
        active.into(),
    ));
    env.push((
        "SHOPBRIDGE__SERVICE__PBKDF2_ITERATIONS".into(),
        TEST_PBKDF2_ITERATIONS.to_string(),
    ));
    env
}

pub struct TestApp {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub db: TestDb,
    pub nats: TestNats,
    pub shopify: Arc<FakeShopify>,
    pub access: Arc<FakeAccess>,
    pub settings: Settings,
    cancel: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    /// The service with key `k1`, a low PBKDF2 count and the fake Shopify.
    pub async fn spawn() -> Self {
        Self::spawn_with(env_with_keys(&[("k1", K1)], "k1"), true).await
    }

    /// `fake_shopify == false` builds the service as deployed today (no gateway).
    pub async fn spawn_with(env: Vec<(String, String)>, fake_shopify: bool) -> Self {
        let mode = if fake_shopify {
            Mode::FakeShopify
        } else {
            Mode::AsConfigured
        };
        Self::spawn_mode(env, mode).await
    }

    /// The service with the fake Shopify and the fake gateway's code exchange and refresh (OAuth tests).
    pub async fn spawn_oauth(env: Vec<(String, String)>) -> Self {
        Self::spawn_mode(env, Mode::FakeShopifyAndAccess).await
    }

    async fn spawn_mode(env: Vec<(String, String)>, mode: Mode) -> Self {
        shopbridge_platform::telemetry::init_for_tests();
        let db = TestDb::new(&MIGRATOR).await;
        let nats = TestNats::new().await;
        Self::start(db, nats, env, mode).await
    }

    async fn start(db: TestDb, nats: TestNats, env: Vec<(String, String)>, mode: Mode) -> Self {
        let env_refs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let settings: Settings =
            service_settings::<ServiceSettings>(&SPEC, &db.url, &nats.namespace, &env_refs);
        let shopify = Arc::new(FakeShopify::default());
        let access = Arc::new(FakeAccess::default());
        let app = match mode {
            Mode::FakeShopify => {
                shopbridge_auth::build_with(settings.clone(), shopify.clone()).await
            }
            Mode::FakeShopifyAndAccess => {
                shopbridge_auth::build_with_access(
                    settings.clone(),
                    shopify.clone(),
                    access.clone(),
                )
                .await
            }
            Mode::AsConfigured => shopbridge_auth::build(settings.clone()).await,
        }
        .expect("build auth");
        let grpc_addr = app.grpc_addr();
        let http_addr = app.http_addr();
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(app.run_until_stopped(cancel.clone()));
        Self {
            grpc_addr,
            http_addr,
            db,
            nats,
            shopify,
            access,
            settings,
            cancel,
            handle,
        }
    }

    /// Stops the service and tries to start it again on the same database with other settings: the start's error.
    pub async fn restart_refused_with(self, env: Vec<(String, String)>) -> anyhow::Error {
        self.cancel.cancel();
        self.handle.await.unwrap().unwrap();
        let env_refs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let settings: Settings = service_settings::<ServiceSettings>(
            &SPEC,
            &self.db.url,
            &self.nats.namespace,
            &env_refs,
        );
        match shopbridge_auth::build_with(settings, self.shopify.clone()).await {
            Ok(_) => panic!("auth started with settings it should refuse"),
            Err(e) => e,
        }
    }

    /// Stops the service and starts it again on the same database and namespace with other settings.
    pub async fn restart_with(self, env: Vec<(String, String)>) -> Self {
        self.cancel.cancel();
        self.handle.await.unwrap().unwrap();
        Self::start(self.db, self.nats, env, Mode::FakeShopify).await
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc_addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to auth")
    }

    pub async fn tokens(&self) -> TokenServiceClient<Channel> {
        TokenServiceClient::new(self.channel().await)
    }

    pub async fn channels(&self) -> ChannelServiceClient<Channel> {
        ChannelServiceClient::new(self.channel().await)
    }

    pub async fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel().await)
    }

    /// An administrator of tenant `name` (every scope), as `bootstrap-admin` makes one.
    pub async fn bootstrap_admin(&self, tenant: &str) -> NewClient {
        clients::bootstrap_admin(&self.db.pool, tenant, TEST_PBKDF2_ITERATIONS)
            .await
            .unwrap()
    }

    /// A client of `admin`'s tenant with exactly `scopes`.
    pub async fn client_with_scopes(&self, admin: &NewClient, scopes: &[&str]) -> NewClient {
        clients::create_client(
            &self.db.pool,
            admin.tenant_id,
            "test client",
            scopes.iter().map(|s| s.to_string()).collect(),
            TEST_PBKDF2_ITERATIONS,
        )
        .await
        .unwrap()
    }

    pub async fn token_for(&self, client: &NewClient) -> String {
        self.tokens()
            .await
            .issue_token(pb::IssueTokenRequest {
                client_id: client.client_id.clone(),
                client_secret: client.client_secret.expose_secret().to_string(),
            })
            .await
            .expect("issue token")
            .into_inner()
            .access_token
    }

    pub fn jwks_url(&self) -> String {
        format!(
            "http://{}{}",
            self.http_addr,
            shopbridge_platform::auth_token::JWKS_PATH
        )
    }

    /// Creates a channel as `token`'s tenant.
    pub async fn create_channel(&self, token: &str, name: &str) -> pb::Channel {
        self.channels()
            .await
            .create_channel(authed(
                pb::CreateChannelRequest { name: name.into() },
                token,
            ))
            .await
            .expect("create channel")
            .into_inner()
            .channel
            .unwrap()
    }

    /// The raw stored row of a channel: (shop_domain, access_token_enc, state).
    pub async fn raw_channel(&self, id: &str) -> (Option<String>, Option<String>, String) {
        sqlx::query_as(
            "SELECT shop_domain, access_token_enc, state FROM channels WHERE id = $1::uuid",
        )
        .bind(id)
        .fetch_one(&self.db.pool)
        .await
        .unwrap()
    }

    /// The type names of the outbox rows of a channel, oldest first.
    pub async fn outbox_types(&self, channel_id: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT type_name FROM outbox WHERE channel_id = $1 ORDER BY id")
            .bind(channel_id)
            .fetch_all(&self.db.pool)
            .await
            .unwrap()
    }

    /// Waits until the relay has published every outbox row.
    pub async fn wait_for_relay(&self) {
        for _ in 0..100 {
            let unsent: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
                    .fetch_one(&self.db.pool)
                    .await
                    .unwrap();
            if unsent == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the outbox relay did not publish within 5s");
    }

    pub async fn finish(self) {
        self.cancel.cancel();
        let _ = self.handle.await;
        self.nats.cleanup().await;
        self.db.drop_db().await;
    }
}

#[derive(Clone, Copy)]
enum Mode {
    /// `build`: the gateway if configured, else none.
    AsConfigured,
    FakeShopify,
    FakeShopifyAndAccess,
}

/// `message` with `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}

/// The (unverified) header and claims of a token, as JSON.
pub fn decode_parts(token: &str) -> (serde_json::Value, serde_json::Value) {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let mut parts = token.split('.');
    let header = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    let claims = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&header).unwrap(),
        serde_json::from_slice(&claims).unwrap(),
    )
}

/// Re-encodes one part of a token (0 header, 1 claims) after `edit`, keeping the other parts.
pub fn edit_part(token: &str, index: usize, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut value: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[index]).unwrap()).unwrap();
    edit(&mut value);
    parts[index] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&value).unwrap());
    parts.join(".")
}

/// Calls ListChannels with `token` and returns the status code (Ok for success).
pub async fn list_code(app: &TestApp, token: &str) -> tonic::Code {
    match app
        .channels()
        .await
        .list_channels(authed(pb::ListChannelsRequest {}, token))
        .await
    {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}
