//! The `[service]` section of auth's settings.
//!
//! Every key has a built-in default (listed, commented, in `config/default.toml`): the platform's own config tests
//! load auth's `default.toml` with an empty service section, so the keys are not spelled out there.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Deserialize;

/// The development encryption key id. Values encrypted under it are readable by anyone with this source code.
pub const DEVELOPMENT_KEY_ID: &str = "dev";
/// The development encryption key: 32 ASCII bytes, `shopbridge-DEVELOPMENT-key-only!`. NEVER use it in production.
pub const DEVELOPMENT_KEY_BASE64: &str = "c2hvcGJyaWRnZS1ERVZFTE9QTUVOVC1rZXktb25seSE=";

/// Checked when the settings load (a wrong key stops the service at start, exit code 78, naming the key).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawServiceSettings")]
pub struct ServiceSettings {
    /// The `iss` claim of issued tokens (and the only issuer auth itself accepts).
    pub issuer: String,
    /// Lifetime of access tokens.
    pub access_token_ttl_secs: u64,
    /// Clock skew tolerated on `exp` and `iat`.
    pub token_leeway_secs: u64,
    /// PBKDF2-HMAC-SHA256 iterations for new client secrets (stored with each hash, so changing it affects only new
    /// secrets).
    pub pbkdf2_iterations: u32,
    /// Encryption keys of secrets at rest, by key id: base64 of 32 random bytes each.
    pub encryption_keys: BTreeMap<String, SecretString>,
    /// The key id new values are encrypted with; every other key only decrypts.
    pub active_encryption_key: String,
}

/// The section as written, before its values are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServiceSettings {
    issuer: String,
    access_token_ttl_secs: u64,
    token_leeway_secs: u64,
    pbkdf2_iterations: u32,
    encryption_keys: BTreeMap<String, SecretString>,
    active_encryption_key: String,
}

impl Default for RawServiceSettings {
    fn default() -> Self {
        let d = ServiceSettings::default();
        Self {
            issuer: d.issuer,
            access_token_ttl_secs: d.access_token_ttl_secs,
            token_leeway_secs: d.token_leeway_secs,
            pbkdf2_iterations: d.pbkdf2_iterations,
            encryption_keys: d.encryption_keys,
            active_encryption_key: d.active_encryption_key,
        }
    }
}

impl TryFrom<RawServiceSettings> for ServiceSettings {
    type Error = String;

    fn try_from(raw: RawServiceSettings) -> Result<Self, String> {
        let settings = Self {
            issuer: raw.issuer,
            access_token_ttl_secs: raw.access_token_ttl_secs,
            token_leeway_secs: raw.token_leeway_secs,
            pbkdf2_iterations: raw.pbkdf2_iterations,
            encryption_keys: raw.encryption_keys,
            active_encryption_key: raw.active_encryption_key,
        };
        if settings.issuer.trim().is_empty() {
            return Err("configuration key `service.issuer`: must not be empty".into());
        }
        if settings.access_token_ttl_secs == 0 {
            return Err(
                "configuration key `service.access_token_ttl_secs`: must be at least 1".into(),
            );
        }
        if settings.pbkdf2_iterations == 0 {
            return Err("configuration key `service.pbkdf2_iterations`: must be at least 1".into());
        }
        crate::crypto::Encryptor::from_settings(&settings).map_err(|e| e.to_string())?;
        Ok(settings)
    }
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            issuer: "shopbridge-auth".into(),
            access_token_ttl_secs: 900,
            token_leeway_secs: 30,
            pbkdf2_iterations: 600_000,
            encryption_keys: BTreeMap::from([(
                DEVELOPMENT_KEY_ID.to_string(),
                SecretString::from(DEVELOPMENT_KEY_BASE64),
            )]),
            active_encryption_key: DEVELOPMENT_KEY_ID.into(),
        }
    }
}

impl ServiceSettings {
    /// How long a retired signing key stays published: until every token it signed has expired.
    pub fn signing_key_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.access_token_ttl_secs + self.token_leeway_secs)
    }
}
