//! The listings service: the catalog (listings, variants, quantities per location, links to Shopify) and Import
//! Listings; Sync & Link and Publish Listings come later.
//!
//! Built with [`build`] from its settings (ports bound first, so port 0 works in tests), then run with
//! [`Application::run_until_stopped`].
//!
//! - [`catalog`]: the catalog's types and queries;
//! - [`import_settings`]: Import Listings settings per channel;
//! - [`import`]: Import Listings runs (consumers, run state, matching, applier, reports);
//! - [`api`]: the gRPC API; [`settings`], [`error`], [`decimal`].

pub mod api;
pub mod catalog;
pub mod decimal;
pub mod error;
pub mod import;
pub mod import_settings;
pub mod settings;

use std::sync::Arc;

use shopbridge_platform::{
    auth_token::TokenVerifier,
    bus::ConsumerRunner,
    grpc::{Authenticator, auth_interceptor},
    service::{Application, Runtime, ServiceParts, ServiceSpec},
};
use shopbridge_proto::listings::listings_service_server::ListingsServiceServer;

pub use crate::settings::ServiceSettings;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/listings");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "listings",
    binary: "shopbridge-listings",
    about: "Shopbridge listings service: the catalog: Import, Sync & Link, and Publish Listings",
    defaults: include_str!("../config/default.toml"),
    migrator: &MIGRATOR,
};

pub type Settings = shopbridge_platform::config::Settings<ServiceSettings>;

/// The one place the service is wired: the gRPC API behind token verification, the two consumers of Import Listings
/// and its applier, and the refresh of auth's keys.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let runtime = Runtime::start(&SPEC, &settings).await?;
    let service = &settings.service;
    let pool = runtime.pool.clone();

    let verifier = TokenVerifier::from_settings(&service.auth)?;
    if let Err(e) = verifier.refresh().await {
        // Not fatal: auth may start after us; the refresh task and the first token with an unknown key retry.
        tracing::warn!(error = %format!("{e:#}"), "auth's key set is not reachable yet; API calls are refused until it is");
    }
    let authenticator: Arc<dyn Authenticator> = Arc::new(verifier.clone());

    let mut parts = ServiceParts::default();
    parts.grpc = parts
        .grpc
        .add_service(ListingsServiceServer::with_interceptor(
            api::Api::new(pool.clone()),
            auth_interceptor(authenticator),
        ));

    let wake = Arc::new(tokio::sync::Notify::new());
    let runs = ConsumerRunner::new(
        pool.clone(),
        runtime.js.clone(),
        runtime.namespace.clone(),
        "EVENTS",
        "listings-runs",
        import::handlers::RunsHandler,
        runtime.consumer.clone(),
    );
    let gateway = ConsumerRunner::new(
        pool.clone(),
        runtime.js.clone(),
        runtime.namespace.clone(),
        "EVENTS",
        "listings-gateway",
        import::handlers::GatewayHandler { wake: wake.clone() },
        shopbridge_platform::config::ConsumerSettings {
            concurrency: service.import.batch_consumer_concurrency,
            batch_size: service.import.batch_consumer_batch_size,
            ..runtime.consumer.clone()
        },
    );
    let applier = import::applier::Applier::new(pool, wake, service.import.clone());
    let refresh_every = service.auth_keys_refresh();
    parts = parts
        .task("token-keys", move |cancel| {
            verifier.refresh_periodically(refresh_every, cancel)
        })
        .task("runs-consumer", move |cancel| runs.run(cancel))
        .task("gateway-consumer", move |cancel| gateway.run(cancel))
        .task("import-applier", move |cancel| applier.run(cancel));
    Ok(Application::new(runtime, parts))
}
