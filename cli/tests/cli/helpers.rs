use std::{net::SocketAddr, path::PathBuf, process::Stdio, sync::Arc};

use secrecy::{ExposeSecret, SecretString};
use shopbridge_auth::{
    clients::{self, NewClient},
    domain::ShopDomain,
    shop_access::{AccessError, AccessFuture, ShopifyAccess},
    shop_verifier::{ShopInfo, ShopVerifier, VerifyError, VerifyFuture},
};
use shopbridge_platform::{
    bus::{EventMeta, names::event_subject},
    testing::{TestDb, TestNats, service_settings},
};
use shopbridge_proto::runs::RunRequested;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// Low, so hashing client secrets does not dominate the suite.
pub const PBKDF2_ITERATIONS: u32 = 1000;

/// The one store the fake Shopify knows, and the token that opens it.
pub const GOOD_SHOP: &str = "good-shop.myshopify.com";
pub const GOOD_TOKEN: &str = "shpat_0123456789abcdef0123456789abcdef";

/// The Shopify app auth connects stores with through OAuth.
pub const APP_CLIENT_ID: &str = "cli-test-app";
pub const APP_CLIENT_SECRET: &str = "cli-test-app-secret-0123456789";

/// Stands in for the gateway's verification of a store and token.
struct FakeShopify;

impl ShopVerifier for FakeShopify {
    fn verify<'a>(&'a self, shop: &'a ShopDomain, token: &'a SecretString) -> VerifyFuture<'a> {
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

/// Stands in for the gateway's code exchange: these tests only begin OAuth (the grant screen is a browser's part).
struct NoCodeExchange;

impl ShopifyAccess for NoCodeExchange {
    fn exchange_code<'a>(
        &'a self,
        _: &'a ShopDomain,
        _: &'a SecretString,
        _: bool,
    ) -> AccessFuture<'a> {
        Box::pin(async { Err(AccessError::Refused("no code exchange in CLI tests".into())) })
    }

    fn refresh_token<'a>(&'a self, _: &'a ShopDomain, _: &'a SecretString) -> AccessFuture<'a> {
        Box::pin(async { Err(AccessError::Refused("no refresh in CLI tests".into())) })
    }
}

/// auth, running in this process, with an administrator of one tenant.
pub struct Auth {
    pub addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub db: TestDb,
    pub nats: TestNats,
    pub admin: NewClient,
    cancel: CancellationToken,
}

impl Auth {
    pub async fn start() -> Self {
        shopbridge_platform::telemetry::init_for_tests();
        let db = TestDb::new(&shopbridge_auth::MIGRATOR).await;
        let nats = TestNats::new().await;
        let iterations = PBKDF2_ITERATIONS.to_string();
        let settings: shopbridge_auth::Settings = service_settings(
            &shopbridge_auth::SPEC,
            &db.url,
            &nats.namespace,
            &[
                ("SHOPBRIDGE__SERVICE__PBKDF2_ITERATIONS", &iterations),
                ("SHOPBRIDGE__SERVICE__OAUTH__CLIENT_ID", APP_CLIENT_ID),
                (
                    "SHOPBRIDGE__SERVICE__OAUTH__CLIENT_SECRET",
                    APP_CLIENT_SECRET,
                ),
            ],
        );
        let app = shopbridge_auth::build_with_access(
            settings,
            Arc::new(FakeShopify),
            Arc::new(NoCodeExchange),
        )
        .await
        .expect("build auth");
        let addr = app.grpc_addr();
        let http_addr = app.http_addr();
        let cancel = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(cancel.clone()));
        let admin = clients::bootstrap_admin(&db.pool, "merchant", PBKDF2_ITERATIONS)
            .await
            .expect("bootstrap admin");
        Self {
            addr,
            http_addr,
            db,
            nats,
            admin,
            cancel,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The CLI configured (through the environment) with the administrator's credentials.
    pub fn cli(&self) -> Cli {
        Cli::new()
            .env("SHOPBRIDGE_CLI_AUTH_URL", &self.url())
            .env("SHOPBRIDGE_CLI_CLIENT_ID", &self.admin.client_id)
            .env(
                "SHOPBRIDGE_CLI_CLIENT_SECRET",
                self.admin.client_secret.expose_secret(),
            )
    }

    pub async fn finish(self) {
        self.cancel.cancel();
        self.nats.cleanup().await;
        self.db.drop_db().await;
    }
}

/// auth and the scheduler on one NATS namespace, so the scheduler learns auth's channels as deployed; the test plays
/// the owner of the operations on the bus.
pub struct Stack {
    pub auth: Auth,
    pub scheduler_db: TestDb,
    pub scheduler_addr: SocketAddr,
    scheduler_cancel: CancellationToken,
}

impl Stack {
    pub async fn start() -> Self {
        let auth = Auth::start().await;
        let scheduler_db = TestDb::new(&shopbridge_scheduler::MIGRATOR).await;
        let jwks_url = format!(
            "http://{}{}",
            auth.http_addr,
            shopbridge_platform::auth_token::JWKS_PATH
        );
        let settings: shopbridge_scheduler::Settings = service_settings(
            &shopbridge_scheduler::SPEC,
            &scheduler_db.url,
            &auth.nats.namespace,
            &[
                ("SHOPBRIDGE__SERVICE__AUTH__JWKS_URL", &jwks_url),
                ("SHOPBRIDGE__SERVICE__OPERATIONS", "IMPORT_LISTINGS"),
                ("SHOPBRIDGE__SERVICE__WATCH_POLL_MS", "100"),
                ("SHOPBRIDGE__SERVICE__TICK_MS", "100"),
                ("SHOPBRIDGE__CONSUMER__BACKOFF_MS", "100,500"),
            ],
        );
        let app = shopbridge_scheduler::build(settings)
            .await
            .expect("build scheduler");
        let scheduler_addr = app.grpc_addr();
        let scheduler_cancel = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(scheduler_cancel.clone()));
        Self {
            auth,
            scheduler_db,
            scheduler_addr,
            scheduler_cancel,
        }
    }

    pub fn tenant_id(&self) -> String {
        self.auth.admin.tenant_id.to_string()
    }

    /// The CLI configured for auth and the scheduler.
    pub fn cli(&self) -> Cli {
        self.auth.cli().env(
            "SHOPBRIDGE_CLI_SCHEDULER_URL",
            &format!("http://{}", self.scheduler_addr),
        )
    }

    /// A channel `name`, connected through the CLI, once the scheduler knows it is active (from auth's event).
    pub async fn active_channel(&self, cli: &Cli, name: &str) -> String {
        let added = cli.run(&["channels", "add", name, "-o", "json"]).await;
        let id = added.expect_code(0).json()["channel_id"]
            .as_str()
            .unwrap()
            .to_string();
        cli.with("SHOPBRIDGE_CLI_SHOP_TOKEN", GOOD_TOKEN)
            .run(&["channels", "connect-token", name, "--shop", GOOD_SHOP])
            .await
            .expect_code(0);
        shopbridge_platform::testing::eventually(
            "the scheduler knows the channel is active",
            || async {
                let state: Option<String> =
                    sqlx::query_scalar("SELECT state FROM channels WHERE channel_id = $1")
                        .bind(&id)
                        .fetch_optional(&self.scheduler_db.pool)
                        .await
                        .unwrap();
                state.as_deref() == Some("ACTIVE")
            },
        )
        .await;
        id
    }

    /// Waits for the scheduler's request of a run on `channel_id` (as the owning service receives it).
    pub async fn requested_run(&self, channel_id: &str, not: &[&str]) -> RunRequested {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(45);
        while tokio::time::Instant::now() < deadline {
            let requested = self.auth.nats.events::<RunRequested>().await;
            if let Some(run) = requested
                .into_iter()
                .rfind(|r| r.channel_id == channel_id && !not.contains(&r.run_id.as_str()))
            {
                return run;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the scheduler did not request a run on channel {channel_id}");
    }

    /// Publishes a report about a run as its owning service would (message id = `key`).
    pub async fn report<M: prost::Message + prost::Name>(
        &self,
        run: &RunRequested,
        key: &str,
        message: &M,
    ) {
        self.auth
            .nats
            .publish(
                &event_subject::<M>(),
                &format!("{}-{key}", run.run_id),
                &EventMeta::tenant(run.tenant_id.clone())
                    .with_channel(run.channel_id.clone())
                    .with_correlation(run.run_id.clone()),
                message,
            )
            .await;
    }

    pub async fn finish(self) {
        self.scheduler_cancel.cancel();
        self.scheduler_db.drop_db().await;
        self.auth.finish().await;
    }
}

/// The listings service beside auth (no gateway: its API alone), for settings and catalog queries.
pub struct ListingsStack {
    pub auth: Auth,
    pub db: TestDb,
    pub addr: SocketAddr,
    cancel: CancellationToken,
}

impl ListingsStack {
    pub async fn start() -> Self {
        let auth = Auth::start().await;
        let db = TestDb::new(&shopbridge_listings::MIGRATOR).await;
        let jwks_url = format!(
            "http://{}{}",
            auth.http_addr,
            shopbridge_platform::auth_token::JWKS_PATH
        );
        let settings: shopbridge_listings::Settings = service_settings(
            &shopbridge_listings::SPEC,
            &db.url,
            &auth.nats.namespace,
            &[("SHOPBRIDGE__SERVICE__AUTH__JWKS_URL", &jwks_url)],
        );
        let app = shopbridge_listings::build(settings)
            .await
            .expect("build listings");
        let addr = app.grpc_addr();
        let cancel = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(cancel.clone()));
        Self {
            auth,
            db,
            addr,
            cancel,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn cli(&self) -> Cli {
        self.auth
            .cli()
            .env("SHOPBRIDGE_CLI_LISTINGS_URL", &self.url())
    }

    /// A token of the administrator, for seeding the catalog as a catalog system would.
    pub async fn admin_token(&self) -> String {
        let channel = tonic::transport::Channel::from_shared(self.auth.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        shopbridge_proto::auth::token_service_client::TokenServiceClient::new(channel)
            .issue_token(shopbridge_proto::auth::IssueTokenRequest {
                client_id: self.auth.admin.client_id.clone(),
                client_secret: self.auth.admin.client_secret.expose_secret().to_string(),
            })
            .await
            .unwrap()
            .into_inner()
            .access_token
    }

    pub async fn finish(self) {
        self.cancel.cancel();
        self.db.drop_db().await;
        self.auth.finish().await;
    }
}

/// The orders service beside auth (no gateway: its API alone), for Get Orders settings, mapping and order queries.
pub struct OrdersStack {
    pub auth: Auth,
    pub db: TestDb,
    pub addr: SocketAddr,
    cancel: CancellationToken,
}

impl OrdersStack {
    pub async fn start() -> Self {
        let auth = Auth::start().await;
        let db = TestDb::new(&shopbridge_orders::MIGRATOR).await;
        let jwks_url = format!(
            "http://{}{}",
            auth.http_addr,
            shopbridge_platform::auth_token::JWKS_PATH
        );
        let settings: shopbridge_orders::Settings = service_settings(
            &shopbridge_orders::SPEC,
            &db.url,
            &auth.nats.namespace,
            &[("SHOPBRIDGE__SERVICE__AUTH__JWKS_URL", &jwks_url)],
        );
        let app = shopbridge_orders::build(settings)
            .await
            .expect("build orders");
        let addr = app.grpc_addr();
        let cancel = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(cancel.clone()));
        Self {
            auth,
            db,
            addr,
            cancel,
        }
    }

    pub fn cli(&self) -> Cli {
        self.auth.cli().env(
            "SHOPBRIDGE_CLI_ORDERS_URL",
            &format!("http://{}", self.addr),
        )
    }

    pub async fn finish(self) {
        self.cancel.cancel();
        self.db.drop_db().await;
        self.auth.finish().await;
    }
}

/// The `shopbridge` binary with a config file of its own (in a fresh directory) and no inherited CLI settings.
pub struct Cli {
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    /// Whether dropping this removes `dir` (a copy made by `with` shares it).
    owns_dir: bool,
}

/// What one invocation did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as JSON; panics with both streams if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts the exit code, showing both streams when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code; {self:?}");
        self
    }

    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl Cli {
    pub fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("shopbridge-cli-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("test dir");
        Self {
            dir,
            env: Vec::new(),
            owns_dir: true,
        }
    }

    /// The same CLI (same config file) with one more environment variable.
    pub fn with(&self, key: &str, value: &str) -> Self {
        let mut env = self.env.clone();
        env.push((key.into(), value.into()));
        Self {
            dir: self.dir.clone(),
            env,
            owns_dir: false,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn config_file(&self) -> PathBuf {
        self.dir.join("cli.toml")
    }

    /// Runs `args` in the background (e.g. `run --wait`, while the test plays the owner).
    pub fn spawn(&self, args: &[&str]) -> tokio::task::JoinHandle<Run> {
        let cli = Self {
            dir: self.dir.clone(),
            env: self.env.clone(),
            owns_dir: false,
        };
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::spawn(async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli.run(&args).await
        })
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None).await
    }

    pub async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_shopbridge"));
        command.args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("SHOPBRIDGE_CLI_") || key == "XDG_CONFIG_HOME" || key == "COLUMNS" {
                command.env_remove(key);
            }
        }
        command
            .env("HOME", &self.dir)
            .env("SHOPBRIDGE_CLI_CONFIG", self.config_file())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start shopbridge");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.expect("write stdin");
        }
        drop(input);
        let out =
            tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
                .await
                .expect("shopbridge finished within 60 s")
                .expect("shopbridge ran");
        Run {
            code: out.status.code().expect("exit code, not a signal"),
            stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
        }
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn now() -> prost_types::Timestamp {
    let now = chrono::Utc::now();
    prost_types::Timestamp {
        seconds: now.timestamp(),
        nanos: now.timestamp_subsec_nanos() as i32,
    }
}
