//! Test support: every test gets a fresh database (the platform's and the service's migrations applied, dropped
//! afterwards) and a fresh NATS namespace (the whole topology applied under a unique prefix), so the suite runs in
//! parallel against one NATS and one PostgreSQL. The servers come from `DATABASE_URL` / `NATS_URL`, defaulting to `make infra`'s.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_nats::jetstream;
use sqlx::{
    Connection, Executor, PgConnection, PgPool, migrate::Migrator, postgres::PgPoolOptions,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::{
    bus::{
        EventMeta, Namespace, names::event_subject, outbox::envelope_headers, topology::Topology,
    },
    config::Settings,
    service::ServiceSpec,
};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:55432/postgres";
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:54222";

/// A PostgreSQL server URL (its `postgres` database), where test databases are created.
pub fn database_server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_string())
}

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_string())
}

fn with_database(server_url: &str, database: &str) -> String {
    let (base, query) = server_url
        .split_once('?')
        .map_or((server_url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// A database of its own for one test.
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
    pub name: String,
}

impl TestDb {
    /// A fresh database with the platform's migrations (the bus tables), then `migrator`, applied as the service's
    /// `migrate` command would.
    pub async fn new(migrator: &Migrator) -> Self {
        let db = Self::empty().await;
        crate::db::migrate(&db.pool, migrator)
            .await
            .expect("migrate test database");
        db
    }

    /// A fresh database with the platform's migrations alone: the bus tables, no service's.
    pub async fn with_bus_tables() -> Self {
        let db = Self::empty().await;
        crate::db::platform_migrator()
            .run(&db.pool)
            .await
            .expect("migrate test database");
        db
    }

    /// A fresh database with nothing in it (for a binary that migrates it itself).
    pub async fn empty() -> Self {
        // Every test with a database has its logs checked for secrets.
        crate::telemetry::init_for_tests();
        crate::install_crypto_provider();
        let server = database_server_url();
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&server).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at {server} is not reachable ({e}); run `make infra`")
        });
        admin
            .execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .await
            .expect("create database");
        let url = with_database(&server, &name);
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(&url)
            .await
            .expect("connect test database");
        Self { pool, url, name }
    }

    /// Drops the database (connections are closed by force).
    pub async fn drop_db(self) {
        self.pool.close().await;
        if let Ok(mut admin) = PgConnection::connect(&database_server_url()).await {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
                    self.name
                )))
                .await;
        }
    }
}

/// The topology applied in a namespace of its own.
pub struct TestNats {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub namespace: Namespace,
}

impl TestNats {
    pub async fn new() -> Self {
        crate::telemetry::init_for_tests();
        let url = nats_url();
        let client = async_nats::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("NATS at {url} is not reachable ({e}); run `make infra`"));
        let js = jetstream::new(client.clone());
        let namespace = Namespace::unique_for_test();
        Topology::embedded()
            .without_size_bounds()
            .apply(&js, &namespace)
            .await
            .expect("apply topology");
        Self {
            client,
            js,
            namespace,
        }
    }

    pub async fn cleanup(self) {
        let _ = Topology::embedded().delete(&self.js, &self.namespace).await;
    }

    /// Publishes `message` on `subject` (without namespace) as a service's outbox relay would: envelope headers and
    /// `Nats-Msg-Id` = `message_id`.
    pub async fn publish<M: prost::Message + prost::Name>(
        &self,
        subject: &str,
        message_id: &str,
        meta: &EventMeta,
        message: &M,
    ) {
        let headers = envelope_headers(&M::full_name(), meta, &Default::default());
        let publish = jetstream::message::PublishMessage::build()
            .headers(headers)
            .message_id(message_id)
            .payload(message.encode_to_vec().into());
        self.js
            .send_publish(self.namespace.subject(subject), publish)
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    /// Every event of type `M` on the EVENTS stream so far, in order.
    pub async fn events<M: prost::Message + prost::Name + Default>(&self) -> Vec<M> {
        use futures::StreamExt;
        let consumer = self
            .js
            .get_stream(self.namespace.resource("EVENTS"))
            .await
            .expect("EVENTS stream")
            .create_consumer(jetstream::consumer::pull::Config {
                filter_subject: self.namespace.subject(&event_subject::<M>()),
                ..Default::default()
            })
            .await
            .expect("ephemeral consumer");
        let mut events = Vec::new();
        loop {
            let mut batch = consumer
                .fetch()
                .max_messages(500)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .expect("fetch");
            let before = events.len();
            while let Some(Ok(message)) = batch.next().await {
                events.push(M::decode(message.payload.as_ref()).expect("decodes"));
            }
            if events.len() == before {
                return events;
            }
        }
    }
}

/// Polls `check` until it holds; panics naming `what` after 45 s (generous: the suite shares two cores).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A service's settings for a test: its defaults with ephemeral ports, the test's database and NATS namespace.
pub fn service_settings<S: serde::de::DeserializeOwned>(
    spec: &ServiceSpec,
    database_url: &str,
    namespace: &Namespace,
    extra_env: &[(&str, &str)],
) -> Settings<S> {
    let ns = namespace.subject("x");
    let ns = ns.strip_suffix(".x").unwrap_or("");
    let mut env: Vec<(String, String)> = vec![
        ("SHOPBRIDGE__GRPC__LISTEN".into(), "127.0.0.1:0".into()),
        ("SHOPBRIDGE__HTTP__LISTEN".into(), "127.0.0.1:0".into()),
        ("SHOPBRIDGE__DATABASE__URL".into(), database_url.into()),
        ("SHOPBRIDGE__NATS__URL".into(), nats_url()),
        ("SHOPBRIDGE__NATS__NAMESPACE".into(), ns.to_string()),
    ];
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    crate::config::load_from(spec.defaults, None, env).expect("test settings")
}

/// A TCP proxy a test can cut, to make a dependency unreachable without stopping the shared server, or take down for
/// a while (an outage) and bring back.
pub struct TcpProxy {
    pub addr: SocketAddr,
    cut: CancellationToken,
    /// Cancelled (and replaced) at each outage: the connections of the current generation.
    connections: Arc<Mutex<CancellationToken>>,
    down: Arc<AtomicBool>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let cut = CancellationToken::new();
        let connections = Arc::new(Mutex::new(CancellationToken::new()));
        let down = Arc::new(AtomicBool::new(false));
        let stop = cut.clone();
        let (generations, is_down) = (connections.clone(), down.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                if is_down.load(Ordering::Acquire) {
                    // Down: the connection is closed at once, as a stopped server's port would refuse it.
                    drop(inbound);
                    continue;
                }
                let stop = stop.clone();
                let generation = generations.lock().expect("proxy lock").clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = generation.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Self {
            addr,
            cut,
            connections,
            down,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.cancel();
    }

    /// An outage: every open connection is dropped and new ones are closed at once, until [`TcpProxy::restore`].
    pub fn outage(&self) {
        self.down.store(true, Ordering::Release);
        let mut generation = self.connections.lock().expect("proxy lock");
        generation.cancel();
        *generation = CancellationToken::new();
    }

    /// Ends an outage: new connections go through again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::Release);
    }
}

/// The host and port of a URL like `postgres://u@127.0.0.1:55432/db` or `nats://127.0.0.1:4222`.
pub async fn socket_addr_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split(['/', '?']).next().unwrap_or(rest);
    tokio::net::lookup_host(host_port)
        .await
        .expect("resolve")
        .next()
        .expect("an address")
}

/// Replaces the host:port of `url` with `addr` (to route a service through a [`TcpProxy`]).
pub fn url_via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (userinfo, rest) = rest
        .rsplit_once('@')
        .map_or((None, rest), |(u, r)| (Some(u), r));
    let tail_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let tail = &rest[tail_start..];
    match userinfo {
        Some(u) => format!("{scheme}://{u}@{addr}{tail}"),
        None => format!("{scheme}://{addr}{tail}"),
    }
}
