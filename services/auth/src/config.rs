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

/// The scopes the channel operations need (import, sync, publish listings; get and sync orders), as Shopify names them.
/// A write scope implies its read scope; both are listed so the grant screen and the check read plainly.
pub const DEFAULT_SCOPES: &str = "read_products,write_products,read_inventory,write_inventory,read_locations,\
read_orders,write_orders,read_fulfillments,write_fulfillments,read_merchant_managed_fulfillment_orders,\
write_merchant_managed_fulfillment_orders,read_publications,write_publications";

/// `[service.oauth]`: the Shopify app auth connects stores with (the authorization-code grant).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthSettings {
    /// The app's client id (API key); empty disables BeginOAuth.
    pub client_id: String,
    /// The app's client secret: the callback's HMAC is checked with it (the gateway holds the same value).
    pub client_secret: SecretString,
    /// Comma-separated scopes requested, and required of the grant.
    pub scopes: String,
    /// Where Shopify sends the merchant back: auth's `GET /shopify/oauth/callback`, as Shopify reaches it; it must be
    /// one of the app's allowed redirection URLs.
    pub redirect_uri: String,
    /// How long a state nonce (the link BeginOAuth returns) stays usable.
    pub state_ttl_secs: u64,
    /// The largest accepted age (either way) of the redirect's `timestamp`.
    pub max_timestamp_age_secs: u64,
    /// Scheme and port of the authorize URL: `https` and 0 (default port) for Shopify; the simulator's otherwise.
    pub shop_scheme: String,
    pub shop_port: u16,
    /// Ask for expiring offline tokens (1 h, with a rotating refresh token); Shopify requires them of public apps
    /// from 2027-01-01.
    pub expiring_tokens: bool,
    /// Expiring tokens are refreshed when they expire within this margin.
    pub refresh_margin_secs: u64,
    /// How often the refresh task looks for tokens to refresh (and purges old state nonces).
    pub refresh_interval_secs: u64,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            client_secret: SecretString::from(""),
            scopes: DEFAULT_SCOPES.into(),
            redirect_uri: "http://127.0.0.1:8081/shopify/oauth/callback".into(),
            state_ttl_secs: 600,
            max_timestamp_age_secs: 90,
            shop_scheme: "https".into(),
            shop_port: 0,
            expiring_tokens: true,
            refresh_margin_secs: 600,
            refresh_interval_secs: 60,
        }
    }
}

impl OAuthSettings {
    /// The configured scopes, one each.
    pub fn scope_list(&self) -> Vec<String> {
        self.scopes
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Whether BeginOAuth can send a merchant to Shopify.
    pub fn enabled(&self) -> bool {
        !self.client_id.trim().is_empty()
            && !secrecy::ExposeSecret::expose_secret(&self.client_secret).is_empty()
    }

    fn check(&self) -> Result<(), String> {
        let scopes = self.scope_list();
        if scopes.is_empty() {
            return Err(
                "configuration key `service.oauth.scopes`: must name at least one scope".into(),
            );
        }
        if let Some(bad) = scopes
            .iter()
            .find(|s| !s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        {
            return Err(format!(
                "configuration key `service.oauth.scopes`: `{bad}` is not a Shopify scope (e.g. read_products)"
            ));
        }
        if !self.redirect_uri.starts_with("https://") && !self.redirect_uri.starts_with("http://") {
            return Err(
                "configuration key `service.oauth.redirect_uri`: must be an http(s) URL".into(),
            );
        }
        if !matches!(self.shop_scheme.as_str(), "https" | "http") {
            return Err("configuration key `service.oauth.shop_scheme`: `https` (or `http` for the simulator)".into());
        }
        for (key, value) in [
            ("state_ttl_secs", self.state_ttl_secs),
            ("max_timestamp_age_secs", self.max_timestamp_age_secs),
            ("refresh_interval_secs", self.refresh_interval_secs),
        ] {
            if value == 0 {
                return Err(format!(
                    "configuration key `service.oauth.{key}`: must be at least 1"
                ));
            }
        }
        Ok(())
    }
}

/// `[service.gateway]`: shopify-gateway's gRPC endpoint, for token verification, code exchange and refresh.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// e.g. `http://127.0.0.1:50054`; empty: no gateway (connecting a store answers UNAVAILABLE).
    pub url: String,
    /// The longest a call to the gateway may take.
    pub timeout_secs: u64,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_secs: 30,
        }
    }
}

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
    pub oauth: OAuthSettings,
    pub gateway: GatewaySettings,
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
    oauth: OAuthSettings,
    gateway: GatewaySettings,
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
            oauth: d.oauth,
            gateway: d.gateway,
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
            oauth: raw.oauth,
            gateway: raw.gateway,
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
        settings.oauth.check()?;
        if settings.gateway.timeout_secs == 0 {
            return Err(
                "configuration key `service.gateway.timeout_secs`: must be at least 1".into(),
            );
        }
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
            oauth: OAuthSettings::default(),
            gateway: GatewaySettings::default(),
        }
    }
}

impl ServiceSettings {
    /// How long a retired signing key stays published: until every token it signed has expired.
    pub fn signing_key_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.access_token_ttl_secs + self.token_leeway_secs)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use crate::Settings;

    fn load(env: &[(&str, &str)]) -> Result<Settings, String> {
        shopbridge_platform::config::load_from(
            crate::SPEC.defaults,
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn oauth_and_gateway_keys_default_and_read_the_environment() {
        let defaults = load(&[]).unwrap().service;
        assert!(!defaults.oauth.enabled());
        assert_eq!(defaults.oauth.scope_list().len(), 13);
        assert_eq!(defaults.gateway.url, "");
        let set = load(&[
            ("SHOPBRIDGE__SERVICE__OAUTH__CLIENT_ID", "app"),
            ("SHOPBRIDGE__SERVICE__OAUTH__CLIENT_SECRET", "shh"),
            (
                "SHOPBRIDGE__SERVICE__OAUTH__SCOPES",
                "write_products, read_orders",
            ),
            ("SHOPBRIDGE__SERVICE__OAUTH__SHOP_PORT", "8787"),
            ("SHOPBRIDGE__SERVICE__GATEWAY__URL", "http://gateway:50054"),
        ])
        .unwrap()
        .service;
        assert!(set.oauth.enabled());
        assert_eq!(set.oauth.client_secret.expose_secret(), "shh");
        assert_eq!(set.oauth.scope_list(), ["write_products", "read_orders"]);
        assert_eq!(set.oauth.shop_port, 8787);
        assert_eq!(set.gateway.url, "http://gateway:50054");
        assert!(
            !format!("{set:?}").contains("shh"),
            "the secret never prints"
        );
    }

    #[test]
    fn a_bad_oauth_key_fails_naming_it() {
        for (key, value, named) in [
            (
                "SHOPBRIDGE__SERVICE__OAUTH__SCOPES",
                "read products",
                "service.oauth.scopes",
            ),
            (
                "SHOPBRIDGE__SERVICE__OAUTH__SCOPES",
                " , ",
                "service.oauth.scopes",
            ),
            (
                "SHOPBRIDGE__SERVICE__OAUTH__REDIRECT_URI",
                "/cb",
                "service.oauth.redirect_uri",
            ),
            (
                "SHOPBRIDGE__SERVICE__OAUTH__SHOP_SCHEME",
                "ftp",
                "service.oauth.shop_scheme",
            ),
            (
                "SHOPBRIDGE__SERVICE__OAUTH__STATE_TTL_SECS",
                "0",
                "service.oauth.state_ttl_secs",
            ),
            ("SHOPBRIDGE__SERVICE__OAUTH__CLIENT_IDD", "x", "client_idd"),
            (
                "SHOPBRIDGE__SERVICE__GATEWAY__TIMEOUT_SECS",
                "0",
                "service.gateway.timeout_secs",
            ),
        ] {
            let err = load(&[(key, value)]).unwrap_err();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
    }
}
