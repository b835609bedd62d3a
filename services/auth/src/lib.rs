//! The auth service: tenants, API clients and tokens, Shopify channels and their credentials (encrypted at rest).
//!
//! Built with [`build`] from its settings (ports bound first, so port 0 works in tests), then run with
//! [`Application::run_until_stopped`].

use serde::Deserialize;
use shopbridge_platform::service::{Application, Runtime, ServiceParts, ServiceSpec};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/auth");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "auth",
    binary: "shopbridge-auth",
    about: "Shopbridge auth service: tenants, API clients and tokens, Shopify channels and their credentials (encrypted at rest)",
    defaults: include_str!("../config/default.toml"),
    migrator: &MIGRATOR,
};

/// The `[service]` section of the settings: nothing of its own yet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {}

pub type Settings = shopbridge_platform::config::Settings<ServiceSettings>;

pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let runtime = Runtime::start(&SPEC, &settings).await?;
    Ok(Application::new(runtime, ServiceParts::default()))
}
