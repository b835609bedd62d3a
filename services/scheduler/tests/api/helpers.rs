//! What the scheduler's tests share: a fresh database and NATS namespace, auth's key set served over HTTP with test
//! tokens signed by its key, channels driven by publishing auth's ChannelStateChanged, scheduler replicas started
//! in-process, and a test double of an operation's owner that consumes RunRequested and reports back.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{self, consumer::pull, kv};
use futures::StreamExt;
use ring::{rand::SystemRandom, signature::Ed25519KeyPair};
use shopbridge_platform::{
    auth_token::{Claims, JWKS_PATH, Jwks, public_jwk, sign},
    bus::{EventMeta, names::event_subject, outbox::envelope_headers},
    testing::{TestDb, TestNats, eventually, service_settings},
};
use shopbridge_proto::{
    auth::{ChannelState, ChannelStateChanged},
    common::Operation,
    runs::{self, RunCancelRequested, RunRequested},
    scheduler::{self as pb, scheduler_service_client::SchedulerServiceClient},
};
use shopbridge_scheduler::{MIGRATOR, SPEC, ServiceSettings, Settings};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{Request, transport::Channel};

pub const KID: &str = "test-key";
pub const ISSUER: &str = "shopbridge-auth";
pub const READ: &str = "runs:read";
pub const WRITE: &str = "runs:write";

pub fn key_pair() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

/// One test's world: database, NATS namespace, auth's key set on HTTP.
pub struct Env {
    pub db: TestDb,
    pub nats: TestNats,
    pub key: Ed25519KeyPair,
    pub jwks_url: String,
    jwks_server: JoinHandle<()>,
}

/// A scheduler replica running in this process.
pub struct Scheduler {
    pub grpc_addr: SocketAddr,
    cancel: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Env {
    pub async fn new() -> Self {
        shopbridge_platform::telemetry::init_for_tests();
        let db = TestDb::new(&MIGRATOR).await;
        let nats = TestNats::new().await;
        let key = key_pair();
        let jwks = Jwks {
            keys: vec![public_jwk(KID, &key)],
        };
        let app = axum::Router::new().route(
            JWKS_PATH,
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks_url = format!("http://{}{JWKS_PATH}", listener.local_addr().unwrap());
        let jwks_server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            db,
            nats,
            key,
            jwks_url,
            jwks_server,
        }
    }

    /// The scheduler's settings for this test: its defaults, the test's database, namespace and key set, two
    /// operations available, fast ticks; `extra` overrides.
    pub fn settings(&self, replica: &str, extra: &[(&str, &str)]) -> Settings {
        let mut env: Vec<(&str, &str)> = vec![
            ("SHOPBRIDGE__SERVICE__AUTH__JWKS_URL", &self.jwks_url),
            (
                "SHOPBRIDGE__SERVICE__OPERATIONS",
                "IMPORT_LISTINGS,SYNC_LISTINGS",
            ),
            ("SHOPBRIDGE__SERVICE__REPLICA_ID", replica),
            ("SHOPBRIDGE__SERVICE__TICK_MS", "100"),
            ("SHOPBRIDGE__SERVICE__WATCH_POLL_MS", "100"),
            ("SHOPBRIDGE__SERVICE__MAINTENANCE_INTERVAL_SECS", "1"),
            ("SHOPBRIDGE__CONSUMER__BACKOFF_MS", "100,500"),
        ];
        env.extend_from_slice(extra);
        service_settings::<ServiceSettings>(&SPEC, &self.db.url, &self.nats.namespace, &env)
    }

    /// Starts a replica with [`Env::settings`].
    pub async fn start(&self, replica: &str, extra: &[(&str, &str)]) -> Scheduler {
        let app = shopbridge_scheduler::build(self.settings(replica, extra))
            .await
            .expect("build scheduler");
        let grpc_addr = app.grpc_addr();
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(app.run_until_stopped(cancel.clone()));
        Scheduler {
            grpc_addr,
            cancel,
            handle,
        }
    }

    /// The leader lease lasts `secs` in this test (the deployed bucket keeps keys 15 s).
    pub async fn shorten_leases(&self, secs: u64) {
        self.nats
            .js
            .update_key_value(kv::Config {
                bucket: self
                    .nats
                    .namespace
                    .resource(shopbridge_scheduler::LEASE_BUCKET),
                history: 1,
                max_age: Duration::from_secs(secs),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    /// A token of `tenant` with `scopes`, signed by auth's test key.
    pub fn token(&self, tenant: &str, scopes: &[&str]) -> String {
        let now = chrono::Utc::now().timestamp();
        self.token_with(tenant, scopes, now, now + 300, &self.key)
    }

    pub fn token_with(
        &self,
        tenant: &str,
        scopes: &[&str],
        iat: i64,
        exp: i64,
        key: &Ed25519KeyPair,
    ) -> String {
        let claims = Claims {
            iss: ISSUER.into(),
            sub: "test-client".into(),
            tenant: tenant.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            iat,
            exp,
        };
        sign(&claims, KID, key)
    }

    /// Publishes auth's ChannelStateChanged and waits until the scheduler recorded it.
    pub async fn channel_state(&self, tenant: &str, channel: &str, state: ChannelState) {
        let change = ChannelStateChanged {
            tenant_id: tenant.into(),
            channel_id: channel.into(),
            shop_domain: shop_of(channel),
            previous_state: 0,
            state: state as i32,
            last_error: String::new(),
            changed_at: Some(now_ts()),
        };
        self.nats
            .publish(
                &event_subject::<ChannelStateChanged>(),
                &uuid::Uuid::new_v4().to_string(),
                &EventMeta::tenant(tenant).with_channel(channel),
                &change,
            )
            .await;
        let want = state.as_str_name().trim_start_matches("CHANNEL_STATE_");
        eventually("the scheduler records the channel state", || async {
            let stored: Option<String> =
                sqlx::query_scalar("SELECT state FROM channels WHERE channel_id = $1")
                    .bind(channel)
                    .fetch_optional(&self.db.pool)
                    .await
                    .unwrap();
            stored.as_deref() == Some(want)
        })
        .await;
    }

    /// A new active channel of `tenant`.
    pub async fn active_channel(&self, tenant: &str) -> String {
        let channel = uuid::Uuid::new_v4().to_string();
        self.channel_state(tenant, &channel, ChannelState::Active)
            .await;
        channel
    }

    /// Publishes a run report as an owner would.
    pub async fn report<M: prost::Message + prost::Name>(&self, message_id: &str, message: &M) {
        self.nats
            .publish(
                &event_subject::<M>(),
                message_id,
                &EventMeta::default(),
                message,
            )
            .await;
    }

    /// Waits until the scheduler's report consumer applied (or dropped as a duplicate) message `message_id`.
    pub async fn wait_applied(&self, message_id: &str) {
        eventually("the report is applied", || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_id = $1")
                .bind(message_id)
                .fetch_one(&self.db.pool)
                .await
                .unwrap();
            n == 1
        })
        .await;
    }

    /// The scheduled runs of a channel, oldest due time first.
    pub async fn scheduled_runs(&self, channel: &str) -> Vec<ScheduledRun> {
        sqlx::query_as(
            "SELECT due_at, status, trigger, fired_by, run_id, requested_at FROM runs
             WHERE channel_id = $1 AND due_at IS NOT NULL ORDER BY due_at",
        )
        .bind(channel)
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }

    pub async fn finish(self) {
        self.jwks_server.abort();
        self.nats.cleanup().await;
        self.db.drop_db().await;
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScheduledRun {
    pub due_at: chrono::DateTime<chrono::Utc>,
    pub status: String,
    pub trigger: String,
    pub fired_by: Option<String>,
    pub run_id: uuid::Uuid,
    pub requested_at: chrono::DateTime<chrono::Utc>,
}

pub fn shop_of(channel: &str) -> String {
    format!("shop-{}.myshopify.com", &channel[..8])
}

pub fn now_ts() -> prost_types::Timestamp {
    let now = chrono::Utc::now();
    prost_types::Timestamp {
        seconds: now.timestamp(),
        nanos: now.timestamp_subsec_nanos() as i32,
    }
}

impl Scheduler {
    pub async fn client(&self) -> SchedulerServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.grpc_addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to the scheduler");
        SchedulerServiceClient::new(channel)
    }

    /// A graceful stop (the leader lease is released).
    pub async fn stop(self) {
        self.cancel.cancel();
        self.handle.await.unwrap().unwrap();
    }

    /// A crash: every task dropped where it is, nothing released.
    pub async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
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

pub fn interval_schedule(channel: &str, seconds: u32) -> pb::Schedule {
    pb::Schedule {
        channel_id: channel.into(),
        operation: Operation::ImportListings as i32,
        enabled: true,
        timing: Some(pb::schedule::Timing::IntervalSeconds(seconds)),
        ..Default::default()
    }
}

pub async fn set_schedule(
    client: &mut SchedulerServiceClient<Channel>,
    token: &str,
    schedule: pb::Schedule,
) -> pb::Schedule {
    client
        .set_schedule(authed(
            pb::SetScheduleRequest {
                schedule: Some(schedule),
            },
            token,
        ))
        .await
        .expect("set schedule")
        .into_inner()
        .schedule
        .unwrap()
}

pub async fn get_run(
    client: &mut SchedulerServiceClient<Channel>,
    token: &str,
    run_id: &str,
) -> pb::Run {
    client
        .get_run(authed(
            pb::GetRunRequest {
                run_id: run_id.into(),
            },
            token,
        ))
        .await
        .expect("get run")
        .into_inner()
        .run
        .unwrap()
}

pub fn status_of(run: &pb::Run) -> pb::RunStatus {
    pb::RunStatus::try_from(run.status).unwrap()
}

/// How the owner test double answers run requests.
#[derive(Debug, Clone, Copy)]
pub enum OwnerMode {
    /// Records them and does nothing (the test reports by hand).
    Silent,
    /// Starts each run at once, and finishes it SUCCEEDED after `hold`.
    Complete { hold: Duration },
}

/// Stands in for the service that owns the operations: consumes RunRequested and RunCancelRequested from the bus
/// (an ephemeral consumer of the test's namespace) and, in `Complete` mode, reports the run started and finished.
pub struct Owner {
    pub requested: Arc<Mutex<Vec<RunRequested>>>,
    pub cancels: Arc<Mutex<Vec<RunCancelRequested>>>,
    task: JoinHandle<()>,
}

impl Owner {
    pub async fn start(nats: &TestNats, mode: OwnerMode) -> Self {
        let consumer = nats
            .js
            .get_stream(nats.namespace.resource("EVENTS"))
            .await
            .unwrap()
            .create_consumer(pull::Config {
                filter_subjects: vec![
                    nats.namespace.subject(&event_subject::<RunRequested>()),
                    nats.namespace
                        .subject(&event_subject::<RunCancelRequested>()),
                ],
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let requested = Arc::new(Mutex::new(Vec::new()));
        let cancels = Arc::new(Mutex::new(Vec::new()));
        let (js, namespace) = (nats.js.clone(), nats.namespace.clone());
        let (req, can) = (requested.clone(), cancels.clone());
        let task = tokio::spawn(async move {
            while let Some(Ok(message)) = messages.next().await {
                let _ = message.ack().await;
                let type_name = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Shopbridge-Type"))
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default();
                if type_name == <RunCancelRequested as prost::Name>::full_name() {
                    let cancel =
                        <RunCancelRequested as prost::Message>::decode(message.payload.as_ref())
                            .unwrap();
                    can.lock().unwrap().push(cancel);
                    continue;
                }
                let run =
                    <RunRequested as prost::Message>::decode(message.payload.as_ref()).unwrap();
                req.lock().unwrap().push(run.clone());
                if let OwnerMode::Complete { hold } = mode {
                    let (js, namespace) = (js.clone(), namespace.clone());
                    tokio::spawn(async move {
                        complete(&js, &namespace, &run, hold).await;
                    });
                }
            }
        });
        Self {
            requested,
            cancels,
            task,
        }
    }

    pub fn requested(&self) -> Vec<RunRequested> {
        self.requested.lock().unwrap().clone()
    }

    /// Waits for the request of `run_id` and returns it.
    pub async fn wait_requested(&self, run_id: &str) -> RunRequested {
        eventually("the owner receives the run request", || async {
            self.requested().iter().any(|r| r.run_id == run_id)
        })
        .await;
        self.requested()
            .into_iter()
            .find(|r| r.run_id == run_id)
            .unwrap()
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

async fn publish_raw<M: prost::Message + prost::Name>(
    js: &jetstream::Context,
    namespace: &shopbridge_platform::bus::Namespace,
    message_id: String,
    message: &M,
) {
    let headers = envelope_headers(&M::full_name(), &EventMeta::default(), &Default::default());
    let publish = jetstream::message::PublishMessage::build()
        .headers(headers)
        .message_id(message_id)
        .payload(message.encode_to_vec().into());
    js.send_publish(namespace.subject(&event_subject::<M>()), publish)
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn complete(
    js: &jetstream::Context,
    namespace: &shopbridge_platform::bus::Namespace,
    run: &RunRequested,
    hold: Duration,
) {
    let started = runs::RunStarted {
        run_id: run.run_id.clone(),
        tenant_id: run.tenant_id.clone(),
        channel_id: run.channel_id.clone(),
        operation: run.operation,
        started_at: Some(now_ts()),
    };
    publish_raw(js, namespace, format!("{}-started", run.run_id), &started).await;
    tokio::time::sleep(hold).await;
    let finished = runs::RunFinished {
        run_id: run.run_id.clone(),
        tenant_id: run.tenant_id.clone(),
        channel_id: run.channel_id.clone(),
        operation: run.operation,
        outcome: runs::Outcome::Succeeded as i32,
        counters: Some(runs::Counters {
            processed: 1,
            ..Default::default()
        }),
        error: String::new(),
        finished_at: Some(now_ts()),
    };
    publish_raw(js, namespace, format!("{}-finished", run.run_id), &finished).await;
}

pub fn new_tenant() -> String {
    uuid::Uuid::new_v4().to_string()
}
