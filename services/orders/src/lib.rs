//! The orders service: Get Orders (orders, line items, addresses with PII retention, import history) and, later,
//! Sync Orders.
//!
//! Built with [`build`] from its settings (ports bound first, so port 0 works in tests), then run with
//! [`Application::run_until_stopped`].
//!
//! - [`domain`]: settings, mapping template, the stored order and the rules (pure);
//! - [`import`]: Get Orders runs and webhooks (consumers, run state, applying one order, reports);
//! - [`store`]: orders in the database; [`pii`]: retention and Shopify's compliance requests;
//! - [`api`]: the gRPC API; [`settings`], [`error`].

pub mod api;
pub mod domain;
pub mod error;
pub mod import;
pub mod pii;
pub mod settings;
pub mod store;

use std::{sync::Arc, time::Duration};

use shopbridge_platform::{
    auth_token::TokenVerifier,
    bus::ConsumerRunner,
    grpc::{Authenticator, auth_interceptor},
    service::{Application, Runtime, ServiceParts, ServiceSpec},
};
use shopbridge_proto::orders::orders_service_server::OrdersServiceServer;

pub use crate::settings::ServiceSettings;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/orders");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "orders",
    binary: "shopbridge-orders",
    about: "Shopbridge orders service: Get Orders and Sync Orders: orders, shipments and their Shopify fulfillments",
    defaults: include_str!("../config/default.toml"),
    migrator: &MIGRATOR,
};

pub type Settings = shopbridge_platform::config::Settings<ServiceSettings>;

/// The one place the service is wired: the gRPC API behind token verification, the four consumers of Get Orders,
/// the run timeout check, the PII retention sweep, and the refresh of auth's keys.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let runtime = Runtime::start(&SPEC, &settings).await?;
    let service = &settings.service;
    let pool = runtime.pool.clone();

    let verifier = TokenVerifier::from_settings(&service.auth)?;
    if let Err(e) = verifier.refresh().await {
        tracing::warn!(error = %format!("{e:#}"), "auth's key set is not reachable yet; API calls are refused until it is");
    }
    let authenticator: Arc<dyn Authenticator> = Arc::new(verifier.clone());

    let mut parts = ServiceParts::default();
    parts.grpc = parts
        .grpc
        .add_service(OrdersServiceServer::with_interceptor(
            api::Api::new(pool.clone()),
            auth_interceptor(authenticator),
        ));

    let consumer = |name: &'static str| (runtime.js.clone(), runtime.namespace.clone(), name);
    let (js, ns, name) = consumer("orders-runs");
    let runs = ConsumerRunner::new(
        pool.clone(),
        js,
        ns,
        "EVENTS",
        name,
        import::handlers::RunsHandler {
            tuning: service.get_orders.clone(),
        },
        runtime.consumer.clone(),
    );
    let (js, ns, name) = consumer("orders-gateway");
    let gateway = ConsumerRunner::new(
        pool.clone(),
        js,
        ns,
        "EVENTS",
        name,
        import::handlers::GatewayHandler,
        shopbridge_platform::config::ConsumerSettings {
            concurrency: service.get_orders.page_consumer_concurrency,
            batch_size: service.get_orders.page_consumer_batch_size,
            ..runtime.consumer.clone()
        },
    );
    let (js, ns, name) = consumer("orders-webhooks");
    let webhooks = ConsumerRunner::new(
        pool.clone(),
        js,
        ns,
        "EVENTS",
        name,
        import::handlers::WebhookHandler,
        runtime.consumer.clone(),
    );
    let (js, ns, name) = consumer("orders-channels");
    let channels = ConsumerRunner::new(
        pool.clone(),
        js,
        ns,
        "EVENTS",
        name,
        import::handlers::ChannelsHandler,
        runtime.consumer.clone(),
    );
    let refresh_every = service.auth_keys_refresh();
    let timeout = Duration::from_secs(service.get_orders.fetch_timeout_secs.max(1));
    let check_every = Duration::from_secs(service.get_orders.timeout_check_secs.max(1));
    let sweep_every = Duration::from_secs(service.pii.sweep_interval_secs.max(1));
    let sweep_batch = service.pii.sweep_batch;
    let (timeout_pool, sweep_pool) = (pool.clone(), pool);
    parts = parts
        .task("token-keys", move |cancel| {
            verifier.refresh_periodically(refresh_every, cancel)
        })
        .task("runs-consumer", move |cancel| runs.run(cancel))
        .task("gateway-consumer", move |cancel| gateway.run(cancel))
        .task("webhooks-consumer", move |cancel| webhooks.run(cancel))
        .task("channels-consumer", move |cancel| channels.run(cancel))
        .task("run-timeouts", move |cancel| {
            import::runs::time_out_loop(timeout_pool, timeout, check_every, cancel)
        })
        .task("pii-retention", move |cancel| {
            pii::sweep_loop(sweep_pool, sweep_every, sweep_batch, cancel)
        });
    Ok(Application::new(runtime, parts))
}
