//! The skeleton every service shares: bind the ports first (port 0 works in tests), connect to the database and NATS,
//! then run the gRPC server, the HTTP server, the outbox relay and the service's own tasks under one cancellation token
//! until shutdown. When a task dies the service says which, and stops.

use std::{future::Future, net::SocketAddr, pin::Pin, time::Duration};

use async_nats::jetstream;
use sqlx::{PgPool, migrate::Migrator};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;

use crate::{
    bus::{Namespace, Relay},
    config::{ConsumerSettings, OutboxLimits, OutboxSettings, RetentionSettings, Settings},
    grpc::GrpcParts,
    http::Readiness,
};

/// How long shutdown may take before the remaining tasks are abandoned (Kubernetes waits 30 s; we promise 10).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// What identifies a service binary.
pub struct ServiceSpec {
    /// Short name: `auth`, `listings`, ... (logs, metrics, trace resource).
    pub name: &'static str,
    /// Binary name, e.g. `shopbridge-auth`.
    pub binary: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// The built-in defaults (the service's `config/default.toml`).
    pub defaults: &'static str,
    pub migrator: &'static Migrator,
}

type TaskFn = Box<
    dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>
        + Send,
>;

/// What a service adds to the skeleton.
pub struct ServiceParts {
    pub grpc: GrpcParts,
    pub http: axum::Router,
    tasks: Vec<(&'static str, TaskFn)>,
}

impl Default for ServiceParts {
    fn default() -> Self {
        Self {
            grpc: GrpcParts::new(),
            http: axum::Router::new(),
            tasks: Vec::new(),
        }
    }
}

impl ServiceParts {
    /// Adds HTTP routes of the service's own (webhooks, OAuth callback) beside health, readiness and metrics.
    pub fn http_routes(mut self, routes: axum::Router) -> Self {
        self.http = self.http.merge(routes);
        self
    }

    /// Adds a background task (a consumer, a scheduler loop); it must return when the token is cancelled.
    pub fn task<F, Fut>(mut self, name: &'static str, task: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.tasks
            .push((name, Box::new(move |cancel| Box::pin(task(cancel)))));
        self
    }
}

/// Connections and bound listeners of a service, before it runs.
pub struct Runtime {
    pub name: &'static str,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub namespace: Namespace,
    pub outbox: OutboxSettings,
    pub outbox_limits: OutboxLimits,
    pub consumer: ConsumerSettings,
    pub retention: RetentionSettings,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
}

impl Runtime {
    pub async fn start<S>(spec: &ServiceSpec, settings: &Settings<S>) -> anyhow::Result<Self> {
        // Install the Prometheus recorder before anything records: metrics recorded earlier would be lost.
        crate::http::metrics_handle();
        let grpc_listener = TcpListener::bind(settings.grpc.listen).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (grpc.listen): {e}",
                settings.grpc.listen
            )
        })?;
        let http_listener = TcpListener::bind(settings.http.listen).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (http.listen): {e}",
                settings.http.listen
            )
        })?;
        let pool = crate::db::connect(&settings.database).await?;
        if settings.database.migrate_on_start {
            crate::db::migrate(&pool, spec.migrator).await?;
        } else {
            crate::db::ensure_migrated(&pool, spec.migrator).await?;
        }
        crate::bus::outbox::set_max_payload_bytes(settings.outbox.max_payload_bytes);
        let nats = crate::bus::connect(&settings.nats, spec.binary).await?;
        let js = jetstream::new(nats.clone());
        let namespace = Namespace::new(&settings.nats.namespace)?;
        Ok(Self {
            name: spec.name,
            pool,
            nats,
            js,
            namespace,
            outbox: settings.outbox.relay(),
            outbox_limits: settings.outbox.limits(),
            consumer: settings.consumer.clone(),
            retention: settings.retention.clone(),
            grpc_listener,
            http_listener,
        })
    }

    pub fn relay(&self) -> Relay {
        Relay::new(
            self.pool.clone(),
            self.js.clone(),
            self.namespace.clone(),
            self.outbox.clone(),
        )
        .with_limits(self.outbox_limits)
    }
}

/// A built service: ports bound, ready to run.
pub struct Application {
    runtime: Runtime,
    parts: ServiceParts,
}

impl Application {
    pub fn new(runtime: Runtime, parts: ServiceParts) -> Self {
        Self { runtime, parts }
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.runtime
            .grpc_listener
            .local_addr()
            .expect("bound listener")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.runtime
            .http_listener
            .local_addr()
            .expect("bound listener")
    }

    pub fn pool(&self) -> &PgPool {
        &self.runtime.pool
    }

    /// Runs until `shutdown` is cancelled or a task fails; in-flight work finishes within [`SHUTDOWN_GRACE`].
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { runtime, parts } = self;
        let name = runtime.name;
        let stop = shutdown.child_token();
        let readiness = Readiness {
            pool: runtime.pool.clone(),
            nats: runtime.nats.clone(),
        };
        let health = parts.grpc.health.clone();
        let relay = runtime.relay();
        tracing::info!(
            service = name,
            grpc = %runtime.grpc_listener.local_addr()?,
            http = %runtime.http_listener.local_addr()?,
            "service started"
        );

        let mut tasks: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
        let grpc_stop = stop.clone();
        let grpc_routes = parts.grpc.routes;
        let grpc_listener = runtime.grpc_listener;
        tasks.spawn(async move {
            (
                "grpc",
                crate::grpc::serve(grpc_listener, grpc_routes, grpc_stop.cancelled_owned()).await,
            )
        });
        let http_stop = stop.clone();
        let router = crate::http::router(readiness.clone(), parts.http);
        let http_listener = runtime.http_listener;
        tasks.spawn(async move {
            (
                "http",
                crate::http::serve(http_listener, router, http_stop.cancelled_owned()).await,
            )
        });
        let relay_stop = stop.clone();
        tasks.spawn(async move { ("outbox-relay", relay.run(relay_stop).await) });
        let (prune_pool, prune_stop) = (runtime.pool.clone(), stop.clone());
        let retention = runtime.retention.clone();
        tasks.spawn(async move {
            (
                "bus-retention",
                crate::bus::retention::run(prune_pool, retention, prune_stop).await,
            )
        });
        let watch_stop = stop.clone();
        tasks.spawn(async move {
            (
                "readiness",
                watch_readiness(readiness, health, watch_stop).await,
            )
        });
        for (task_name, task) in parts.tasks {
            let task_stop = stop.clone();
            tasks.spawn(async move { (task_name, task(task_stop).await) });
        }

        let mut failure = None;
        tokio::select! {
            biased;
            _ = stop.cancelled() => tracing::info!(service = name, "shutting down"),
            Some(joined) = tasks.join_next() => {
                let (task, result) = joined.unwrap_or(("unknown", Err(anyhow::anyhow!("task panicked"))));
                // A task that ends because shutdown began is not a failure.
                if stop.is_cancelled() && result.is_ok() {
                    tracing::info!(service = name, "shutting down");
                } else {
                let err = result.err().unwrap_or_else(|| anyhow::anyhow!("stopped unexpectedly"));
                tracing::error!(service = name, task, error = %format!("{err:#}"), "task failed; stopping the service");
                failure = Some(anyhow::anyhow!("task `{task}` failed: {err:#}"));
                stop.cancel();
                }
            }
        }
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while let Some(joined) = tasks.join_next().await {
                if let Ok((task, Err(e))) = joined {
                    tracing::warn!(service = name, task, error = %format!("{e:#}"), "task ended with an error during shutdown");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                service = name,
                "tasks still running after the grace period; abandoning them"
            );
            tasks.abort_all();
        }
        runtime.pool.close().await;
        tracing::info!(service = name, "service stopped");
        failure.map_or(Ok(()), Err)
    }
}

/// Keeps the gRPC health status in step with readiness.
async fn watch_readiness(
    readiness: Readiness,
    health: tonic_health::server::HealthReporter,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut last = None;
    loop {
        let problems = readiness.problems().await;
        let status = if problems.is_empty() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            if !problems.is_empty() {
                tracing::warn!(problems = %problems.join("; "), "not ready");
            }
            health.set_service_status("", status).await;
            last = Some(status);
        }
        tokio::select! {
            _ = stop.cancelled() => {
                health.set_service_status("", ServingStatus::NotServing).await;
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
