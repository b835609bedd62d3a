//! The shopify-gateway service: the only process that talks to Shopify. It owns each shop's cost budget
//! ([`budget`]), sends the GraphQL documents in `graphql/` ([`documents`]) through one [`executor`], and turns
//! verified webhooks into typed events ([`webhooks`]).

pub mod budget;
pub mod commands;
pub mod documents;
pub mod executor;
pub mod export;
pub mod ops;
pub mod shopify;
pub mod webhooks;

use std::sync::Arc;

use secrecy::SecretString;
use serde::Deserialize;
use shopbridge_platform::service::{Application, Runtime, ServiceParts, ServiceSpec};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/gateway");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "gateway",
    binary: "shopbridge-gateway",
    about: "Shopbridge gateway service: the only door to Shopify: per-shop cost budget, GraphQL commands, bulk operations, webhooks",
    defaults: include_str!("../config/default.toml"),
    migrator: &MIGRATOR,
};

/// The `[service]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    pub shopify: shopify::ShopifySettings,
    pub budget: BudgetSection,
    pub retry: executor::RetrySettings,
    pub webhooks: WebhookSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSection {
    pub max_in_flight_per_shop: usize,
    pub start_maximum: f64,
    pub start_restore_rate: f64,
}

impl From<&BudgetSection> for budget::BudgetSettings {
    fn from(s: &BudgetSection) -> Self {
        Self {
            max_in_flight_per_shop: s.max_in_flight_per_shop,
            start_maximum: s.start_maximum,
            start_restore_rate: s.start_restore_rate,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub client_secret: SecretString,
    pub previous_client_secret: SecretString,
}

pub type Settings = shopbridge_platform::config::Settings<ServiceSettings>;

/// The executor a service instance uses for every Shopify call.
pub fn executor(settings: &ServiceSettings) -> anyhow::Result<executor::Executor> {
    let http = shopify::ShopifyHttp::new(settings.shopify.clone())?;
    Ok(executor::Executor::new(
        http,
        budget::Budget::new((&settings.budget).into()),
        settings.retry.clone(),
    ))
}

pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let runtime = Runtime::start(&SPEC, &settings).await?;
    let hooks = &settings.service.webhooks;
    if secrecy::ExposeSecret::expose_secret(&hooks.client_secret).is_empty() {
        tracing::warn!(
            "service.webhooks.client_secret is empty: every webhook will be refused with 401"
        );
    }
    let webhook_state = webhooks::WebhookState {
        pool: runtime.pool.clone(),
        secrets: Arc::new(vec![
            hooks.client_secret.clone(),
            hooks.previous_client_secret.clone(),
        ]),
    };
    let parts = ServiceParts::default().http_routes(webhooks::router(webhook_state));
    Ok(Application::new(runtime, parts))
}
