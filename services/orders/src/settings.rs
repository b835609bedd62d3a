//! The `[service]` section of the orders service's settings (documented in `config/default.toml`).

use std::time::Duration;

use serde::Deserialize;
use shopbridge_platform::auth_token::VerifierSettings;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// How often auth's key set is fetched again.
    pub auth_keys_refresh_secs: u64,
    /// Token verification: auth's JWKS document and the accepted issuer.
    pub auth: VerifierSettings,
    pub get_orders: GetOrdersTuning,
    pub pii: PiiTuning,
}

/// Tuning of Get Orders runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetOrdersTuning {
    /// Runs fetch with one bulk operation instead of pages.
    pub bulk: bool,
    /// Orders per Shopify page (0: the gateway chooses).
    pub page_size: u32,
    /// A run not answered by the gateway after this long fails.
    pub fetch_timeout_secs: u64,
    /// How often runs waiting too long are looked for.
    pub timeout_check_secs: u64,
    /// The consumer of order pages: pages at once, and per transaction.
    pub page_consumer_concurrency: usize,
    pub page_consumer_batch_size: usize,
}

/// PII retention.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiTuning {
    pub sweep_interval_secs: u64,
    pub sweep_batch: i64,
}

impl ServiceSettings {
    pub fn auth_keys_refresh(&self) -> Duration {
        Duration::from_secs(self.auth_keys_refresh_secs.max(1))
    }
}
