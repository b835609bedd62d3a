//! The `[service]` section of the listings service's settings (documented in `config/default.toml`).

use std::time::Duration;

use serde::Deserialize;
use shopbridge_platform::auth_token::VerifierSettings;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// How often auth's key set is fetched again (keys retired at auth disappear, new ones arrive).
    pub auth_keys_refresh_secs: u64,
    /// Token verification: auth's JWKS document and the accepted issuer.
    pub auth: VerifierSettings,
    pub import: ImportTuning,
}

/// Tuning of Import Listings runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportTuning {
    /// How often the applier looks for runs to apply (it is also woken at once by this process's consumers).
    pub poll_interval_ms: u64,
    /// Runs applied at once by this process.
    pub max_concurrent_runs: usize,
    /// Batches of one run applied at once by this process (each in its own transaction).
    pub apply_workers: usize,
    /// The consumer of catalog batches: batches handled at once, and per transaction. Batches are large (up to 250
    /// products each), so fewer are held in memory than the service-wide `[consumer]` settings allow.
    pub batch_consumer_concurrency: usize,
    pub batch_consumer_batch_size: usize,
    /// How long after a successful export result with no batch at all the run is taken as an empty catalog.
    pub empty_export_grace_ms: u64,
    /// A run still waiting for the gateway after this long fails (the gateway never answered).
    pub export_timeout_secs: u64,
    /// Attempts at applying one batch (database failures) before the run fails.
    pub max_batch_attempts: u32,
}

impl ServiceSettings {
    pub fn auth_keys_refresh(&self) -> Duration {
        Duration::from_secs(self.auth_keys_refresh_secs.max(1))
    }
}

impl ImportTuning {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }

    pub fn empty_export_grace(&self) -> Duration {
        Duration::from_millis(self.empty_export_grace_ms)
    }

    pub fn export_timeout(&self) -> Duration {
        Duration::from_secs(self.export_timeout_secs)
    }
}
