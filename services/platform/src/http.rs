//! The HTTP side of every service: `/healthz` (the process is alive), `/readyz` (database and NATS reachable right
//! now), `/metrics` (Prometheus text), plus the service's own routes (webhooks, OAuth callback).

use std::{sync::OnceLock, time::Duration};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

/// How long a metric series may go without an update before `/metrics` drops it: per-shop series (the gateway labels
/// calls, budget waits and queues by shop) of shops this replica no longer serves would otherwise stay forever.
pub const METRIC_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The process-wide Prometheus recorder (installed once; several services in one test process share it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .idle_timeout(metrics_util::MetricKindMask::ALL, Some(METRIC_IDLE_TIMEOUT))
                .build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// What `/readyz` checks.
#[derive(Clone)]
pub struct Readiness {
    pub pool: PgPool,
    pub nats: async_nats::Client,
}

impl Readiness {
    /// The reasons the service is not ready; empty when it is.
    pub async fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let db = tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await;
        match db {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => problems.push(format!("database: {e}")),
            Err(_) => problems.push("database: no answer within 2s".into()),
        }
        if self.nats.connection_state() != async_nats::connection::State::Connected {
            problems.push(format!("nats: {}", self.nats.connection_state()));
        }
        problems
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    let problems = readiness.problems().await;
    if problems.is_empty() {
        (StatusCode::OK, "ready".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}", problems.join("; ")),
        )
    }
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        metrics_handle().render(),
    )
}

/// The standard routes merged with the service's own.
pub fn router(readiness: Readiness, service_routes: Router) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness)
        .route("/metrics", get(metrics_text))
        .merge(service_routes)
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
