//! Simulator state, configuration and start-up: shops (store, bucket, stats, tokens) keyed by
//! their myshopify domain, and the axum router that serves Shopify's paths and `/_sim/`.

use crate::bucket::{Bucket, Plan};
use crate::clock::Clock;
use crate::faults::Faults;
use crate::model::Store;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The app's API key (`client_id`) and secret: OAuth and webhook HMACs use the secret.
    pub client_id: String,
    pub client_secret: String,
    /// Scopes granted by `/admin/oauth/authorize` when the request names none.
    pub default_scopes: String,
    /// Concurrent bulk operations per shop, all types together: 5 from API 2026-01
    /// (https://shopify.dev/changelog/faster-bulk-operations); 1 makes a shop run one at a time.
    pub bulk_concurrency: usize,
    pub clock: Clock,
    /// Webhook retries: first delay, doubled each time; Shopify retries 8 times over 4 hours.
    pub webhook_retry_base: Duration,
    pub webhook_max_retries: u32,
    /// A delivery slower than this counts as failed (Shopify: 5 s).
    pub webhook_timeout: Duration,
    /// Single-query cost limit (Shopify: 1,000). Raise it only to execute documents that the
    /// documented cost rules price above the limit.
    pub max_query_cost: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            client_id: "sim-client-id".into(),
            client_secret: "sim-client-secret".into(),
            default_scopes: "read_products,write_products,read_inventory,write_inventory,read_orders,write_orders,\
read_publications,write_publications,read_merchant_managed_fulfillment_orders,write_merchant_managed_fulfillment_orders"
                .into(),
            bulk_concurrency: 5,
            clock: Clock::Real,
            // 60 s doubling over 8 retries ≈ 4.25 h, Shopify's "8 retries over 4 hours".
            webhook_retry_base: Duration::from_secs(60),
            webhook_max_retries: 8,
            webhook_timeout: Duration::from_secs(5),
            max_query_cost: crate::cost::MAX_SINGLE_QUERY_COST,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub graphql_requests: u64,
    pub throttled: u64,
    pub max_cost_exceeded: u64,
    pub validation_errors: u64,
    pub points_requested: u64,
    pub points_consumed: u64,
    pub mutations: BTreeMap<String, u64>,
    pub duplicate_idempotency_keys: u64,
    pub max_concurrent_requests: u64,
    pub faults_injected: u64,
    pub unauthorized: u64,
    pub webhook_deliveries: u64,
    pub webhook_failures: u64,
    pub bulk_operations: u64,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub expires_at: Option<f64>,
    pub online: bool,
    pub scope: String,
}

#[derive(Clone, Debug)]
pub struct RefreshToken {
    pub expires_at: f64,
    pub scope: String,
}

pub struct Shop {
    pub domain: String,
    pub store: Mutex<Store>,
    pub bucket: Mutex<Bucket>,
    pub stats: Mutex<Stats>,
    pub tokens: Mutex<HashMap<String, Token>>,
    pub refresh_tokens: Mutex<HashMap<String, RefreshToken>>,
    pub in_flight: AtomicU64,
    pub deliveries: Mutex<Vec<crate::webhooks::DeliveryRecord>>,
}

impl Shop {
    pub fn plan(&self) -> Plan {
        self.store.lock().unwrap().plan
    }
}

/// Counts a request in flight for `max_concurrent_requests`.
pub struct InFlight<'a>(&'a Shop);

impl<'a> InFlight<'a> {
    pub fn enter(shop: &'a Shop) -> Self {
        let n = shop.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let mut s = shop.stats.lock().unwrap();
        s.max_concurrent_requests = s.max_concurrent_requests.max(n);
        InFlight(shop)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct OAuthCode {
    pub shop: String,
    pub scope: String,
    pub online: bool,
    pub created: f64,
}

pub struct Sim {
    pub config: SimConfig,
    pub base_url: String,
    pub shops: RwLock<HashMap<String, Arc<Shop>>>,
    pub faults: Faults,
    pub oauth_codes: Mutex<HashMap<String, OAuthCode>>,
    pub http: reqwest::Client,
}

impl Sim {
    pub fn shop(&self, domain: &str) -> Option<Arc<Shop>> {
        self.shops
            .read()
            .unwrap()
            .get(&domain.to_ascii_lowercase())
            .cloned()
    }

    pub fn now_secs(&self) -> f64 {
        self.config.clock.now_secs()
    }

    /// Creates a shop (or returns the existing one) with an offline access token.
    pub fn create_shop(&self, domain: &str, plan: Plan) -> (Arc<Shop>, String) {
        let domain = domain.to_ascii_lowercase();
        let mut shops = self.shops.write().unwrap();
        if let Some(s) = shops.get(&domain) {
            // An existing shop answers with its offline token (a new one after an uninstall).
            let mut tokens = s.tokens.lock().unwrap();
            let offline = tokens
                .iter()
                .find(|(_, t)| !t.online && t.expires_at.is_none())
                .map(|(k, _)| k.clone());
            let tok = offline.unwrap_or_else(|| {
                let t = new_token();
                tokens.insert(
                    t.clone(),
                    Token {
                        expires_at: None,
                        online: false,
                        scope: self.config.default_scopes.clone(),
                    },
                );
                t
            });
            return (s.clone(), tok);
        }
        let now = self.config.clock.now();
        let token = new_token();
        let shop = Arc::new(Shop {
            domain: domain.clone(),
            store: Mutex::new(Store::new(&domain, plan, now)),
            bucket: Mutex::new(Bucket::new(plan, self.now_secs())),
            stats: Mutex::new(Stats::default()),
            tokens: Mutex::new(
                [(
                    token.clone(),
                    Token {
                        expires_at: None,
                        online: false,
                        scope: self.config.default_scopes.clone(),
                    },
                )]
                .into_iter()
                .collect(),
            ),
            refresh_tokens: Mutex::new(HashMap::new()),
            in_flight: AtomicU64::new(0),
            deliveries: Mutex::new(Vec::new()),
        });
        shops.insert(domain, shop.clone());
        (shop, token)
    }
}

/// Shopify admin tokens look like `shpat_` + 32 hex digits.
pub fn new_token() -> String {
    format!("shpat_{}", uuid::Uuid::new_v4().simple())
}

/// A running simulator.
pub struct SimHandle {
    pub sim: Arc<Sim>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> &str {
        &self.sim.base_url
    }
    pub fn clock(&self) -> &Clock {
        &self.sim.config.clock
    }
    pub fn config(&self) -> &SimConfig {
        &self.sim.config
    }
    /// Creates a shop in-process; returns its offline access token.
    pub fn create_shop(&self, domain: &str, plan: Plan) -> String {
        self.sim.create_shop(domain, plan).1
    }
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub struct Simulator;

impl Simulator {
    /// Serves on an already-bound listener (bind `127.0.0.1:0` in tests).
    pub async fn start(config: SimConfig, listener: TcpListener) -> std::io::Result<SimHandle> {
        let addr = listener.local_addr()?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .build()
            .map_err(std::io::Error::other)?;
        let sim = Arc::new(Sim {
            config,
            base_url: format!("http://{addr}"),
            shops: RwLock::new(HashMap::new()),
            faults: Faults::default(),
            oauth_codes: Mutex::new(HashMap::new()),
            http,
        });
        let app = crate::routes::router(sim.clone());
        // Plain HTTP and HTTPS share the port.
        let listener = crate::tls::SimListener::new(listener)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(SimHandle {
            sim,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Binds `addr` (e.g. "127.0.0.1:0") and serves.
    pub async fn start_on(config: SimConfig, addr: &str) -> std::io::Result<SimHandle> {
        Simulator::start(config, TcpListener::bind(addr).await?).await
    }
}
