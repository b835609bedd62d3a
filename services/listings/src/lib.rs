//! The listings service: the catalog: Import, Sync & Link, and Publish Listings.
//!
//! Built with [`build`] from its settings (ports bound first, so port 0 works in tests), then run with
//! [`Application::run_until_stopped`].

use serde::Deserialize;
use shopbridge_platform::service::{Application, Runtime, ServiceParts, ServiceSpec};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/listings");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "listings",
    binary: "shopbridge-listings",
    about: "Shopbridge listings service: the catalog: Import, Sync & Link, and Publish Listings",
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
