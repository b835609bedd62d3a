//! The scheduler service: schedules per (channel, operation), Run now, the run registry and each run's log.
//!
//! Built with [`build`] from its settings (ports bound first, so port 0 works in tests), then run with
//! [`Application::run_until_stopped`]. [`build`] is the one place the service is wired:
//!
//! - [`api`] (with [`watch`]): the gRPC `SchedulerService`, behind auth's tokens;
//! - [`schedules`], [`timing`]: schedules and when they are due (interval or cron in a time zone, catch-up);
//! - [`leader`], [`fire`]: one replica leads through a JetStream KV lease and fires due schedules, fenced;
//! - [`registry`], [`runlog`]: runs and their logs; [`reports`]: what the owners of operations report;
//! - [`channels`]: the channels auth tells us about (state, shop); [`maintenance`]: start timeouts, retention.

pub mod api;
pub mod channels;
pub mod config;
pub mod convert;
pub mod domain;
pub mod fire;
pub mod leader;
pub mod maintenance;
pub mod metrics;
pub mod registry;
pub mod reports;
pub mod runlog;
pub mod schedules;
pub mod timing;
pub mod watch;

use std::{sync::Arc, time::Duration};

use shopbridge_platform::{
    auth_token::TokenVerifier,
    bus::ConsumerRunner,
    grpc::{Authenticator, auth_interceptor},
    service::{Application, Runtime, ServiceParts, ServiceSpec},
};
use shopbridge_proto::scheduler::scheduler_service_server::SchedulerServiceServer;
use tokio_util::sync::CancellationToken;

pub use crate::config::ServiceSettings;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/scheduler");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "scheduler",
    binary: "shopbridge-scheduler",
    about: "Shopbridge scheduler service: schedules, Run Sync, run history and run logs",
    defaults: include_str!("../config/default.toml"),
    migrator: &MIGRATOR,
};

pub type Settings = shopbridge_platform::config::Settings<ServiceSettings>;

/// The name of the leader lease bucket in the topology.
pub const LEASE_BUCKET: &str = "scheduler-leases";

pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let service = Arc::new(settings.service.clone());
    let runtime = Runtime::start(&SPEC, &settings).await?;
    let pool = runtime.pool.clone();
    let replica = service.replica_name();
    tracing::info!(
        replica = %replica,
        operations = ?service.operations.iter().map(|op| op.as_str()).collect::<Vec<_>>(),
        "scheduler configured"
    );

    let verifier = TokenVerifier::from_settings(&service.auth)?;
    let authenticator: Arc<dyn Authenticator> = Arc::new(verifier.clone());
    let shutdown = CancellationToken::new();
    let api = api::Api {
        pool: pool.clone(),
        settings: service.clone(),
        shutdown: shutdown.clone(),
    };
    let mut parts = ServiceParts::default();
    parts.grpc = parts
        .grpc
        .add_service(SchedulerServiceServer::with_interceptor(
            api,
            auth_interceptor(authenticator),
        ));

    let refresh_every = Duration::from_secs(service.jwks_refresh_secs);
    parts = parts.task("token-keys", move |cancel| {
        verifier.refresh_periodically(refresh_every, cancel)
    });
    // Open WatchRun streams end when the service stops, so the gRPC server's graceful shutdown does not wait on them.
    parts = parts.task("watch-shutdown", move |cancel| async move {
        cancel.cancelled().await;
        shutdown.cancel();
        Ok(())
    });

    let channels = ConsumerRunner::new(
        pool.clone(),
        runtime.js.clone(),
        runtime.namespace.clone(),
        "EVENTS",
        "scheduler-channels",
        channels::ChannelHandler,
        runtime.consumer.clone(),
    );
    parts = parts.task("channels-consumer", move |cancel| channels.run(cancel));
    let reports = ConsumerRunner::new(
        pool.clone(),
        runtime.js.clone(),
        runtime.namespace.clone(),
        "EVENTS",
        "scheduler-run-reports",
        reports::ReportHandler,
        runtime.consumer.clone(),
    );
    parts = parts.task("run-reports-consumer", move |cancel| reports.run(cancel));

    let leadership = leader::Leadership::new(&service.leader);
    let js = runtime.js.clone();
    let bucket = runtime.namespace.resource(LEASE_BUCKET);
    let elector_pool = pool.clone();
    let elector_replica = replica.clone();
    let leader_settings = service.leader.clone();
    let elector_leadership = leadership.clone();
    parts = parts.task("leader-election", move |cancel| async move {
        let kv = js.get_key_value(&bucket).await.map_err(|e| {
            anyhow::anyhow!("key-value bucket {bucket} is missing (apply the NATS topology): {e}")
        })?;
        leader::Elector::new(
            kv,
            elector_pool,
            elector_replica,
            leader_settings,
            elector_leadership,
        )
        .run(cancel)
        .await
    });
    let fire_loop = fire::FireLoop {
        pool: pool.clone(),
        leadership,
        replica,
        operations: service.operations.clone(),
        tick: service.tick(),
        catch_up_after: service.catch_up_after(),
        fence_stale_after: service.leader.lease() * 2,
    };
    parts = parts.task("fire-loop", move |cancel| fire_loop.run(cancel));
    let maintenance = maintenance::Maintenance {
        pool,
        interval: service.maintenance_interval(),
        start_timeout: service.start_timeout(),
        retention_days: service.retention_days,
    };
    parts = parts.task("maintenance", move |cancel| maintenance.run(cancel));
    Ok(Application::new(runtime, parts))
}
