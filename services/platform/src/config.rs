//! Layered settings: built-in defaults (a TOML string each service embeds), then an optional file, then the
//! environment (`SHOPBRIDGE__SECTION__KEY`). Every struct denies unknown keys, and every failure names the key's path,
//! so a typo fails at start instead of being silently ignored.

use std::{net::SocketAddr, path::Path, time::Duration};

use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use serde::{Deserialize, de::DeserializeOwned};

/// Prefix of every environment variable we read.
pub const ENV_PREFIX: &str = "SHOPBRIDGE";
/// Separator after the prefix and between section and key.
pub const ENV_SEPARATOR: &str = "__";
/// Environment variable naming an optional settings file (same as `--config`).
pub const CONFIG_FILE_ENV: &str = "SHOPBRIDGE_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration key `{key}`: {message}")]
    Key { key: String, message: String },
    #[error(
        "environment variable `{0}` is not read: Shopbridge settings are `SHOPBRIDGE__<SECTION>__<KEY>`, with two underscores after the prefix and between section and key"
    )]
    Separator(String),
    #[error("configuration file or defaults could not be read: {0}")]
    Source(String),
}

/// The settings every service reads. `S` is the service's own `[service]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings<S> {
    pub grpc: ListenSettings,
    pub http: ListenSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub telemetry: TelemetrySettings,
    pub outbox: OutboxSection,
    pub consumer: ConsumerSettings,
    pub retention: RetentionSettings,
    pub service: S,
}

/// The `[retention]` section: how long the bus tables keep what they hold (`bus::retention`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Applied message ids; keep above the EVENTS stream's max_age plus the longest relay outage.
    pub inbox_days: u32,
    pub dead_letter_days: u32,
    /// How often the pruning runs.
    pub every_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSettings {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    pub url: String,
    pub namespace: String,
    pub credentials_file: String,
    pub connect_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    pub log_level: String,
    pub otlp_endpoint: String,
}

/// The `[outbox]` section: the relay's pacing ([`OutboxSettings`]) and the outbox's size limits ([`OutboxLimits`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSection {
    pub poll_interval_ms: u64,
    pub batch_size: u32,
    pub batch_max_bytes: usize,
    pub max_payload_bytes: usize,
    pub retention_hours: u64,
}

impl OutboxSection {
    pub fn relay(&self) -> OutboxSettings {
        OutboxSettings {
            poll_interval_ms: self.poll_interval_ms,
            batch_size: self.batch_size,
            retention_hours: self.retention_hours,
        }
    }

    pub fn limits(&self) -> OutboxLimits {
        OutboxLimits {
            batch_max_bytes: self.batch_max_bytes,
            max_payload_bytes: self.max_payload_bytes,
        }
    }
}

/// How often the relay polls, how many rows a batch holds at most, how long sent rows are kept.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    pub poll_interval_ms: u64,
    pub batch_size: u32,
    pub retention_hours: u64,
}

impl OutboxSettings {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

/// The outbox's sizes: the payload bytes one relay batch loads at most (a batch always holds at least one row), and
/// the largest payload [`crate::bus::outbox::enqueue`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    pub batch_max_bytes: usize,
    pub max_payload_bytes: usize,
}

impl Default for OutboxLimits {
    /// The values in every service's `default.toml`.
    fn default() -> Self {
        Self {
            batch_max_bytes: 4 * 1024 * 1024,
            max_payload_bytes: 900 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSettings {
    /// Batches handled at once by each consumer.
    pub concurrency: usize,
    /// Messages applied in one transaction (one commit); 1 for handlers that run long (the gateway's commands).
    pub batch_size: usize,
    pub backoff_ms: Vec<u64>,
    /// Real failures of a message (handler errors while the database answers) before it is dead-lettered; deliveries
    /// for other reasons (restarts, rebalances, database outages) do not count. JetStream's `max_deliver` in the
    /// topology stays as a safety net above it.
    pub max_failures: u32,
}

impl ConsumerSettings {
    /// The delay before the next delivery after `failed_attempts` failures; the last step repeats.
    pub fn backoff(&self, failed_attempts: u64) -> Duration {
        let idx = (failed_attempts.saturating_sub(1) as usize)
            .min(self.backoff_ms.len().saturating_sub(1));
        Duration::from_millis(self.backoff_ms.get(idx).copied().unwrap_or(1000))
    }
}

/// A service with no keys of its own in `[service]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoServiceSettings {}

/// Loads settings from the embedded defaults, the optional file and the process environment.
pub fn load<T: DeserializeOwned>(
    defaults_toml: &str,
    file: Option<&Path>,
) -> Result<T, ConfigError> {
    load_from(defaults_toml, file, std::env::vars())
}

/// Like [`load`], with the environment given explicitly (tests do not touch the process environment).
pub fn load_from<T: DeserializeOwned>(
    defaults_toml: &str,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    reject_wrong_separators(&env)?;

    let mut builder = Config::builder().add_source(File::from_str(defaults_toml, FileFormat::Toml));
    if let Some(path) = file {
        builder = builder.add_source(File::from(path).required(true));
    }
    let env_source = Environment::with_prefix(ENV_PREFIX)
        .prefix_separator(ENV_SEPARATOR)
        .separator(ENV_SEPARATOR)
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("consumer.backoff_ms")
        .source(Some(
            env.into_iter()
                .filter(|(k, _)| k.starts_with("SHOPBRIDGE__"))
                .collect(),
        ));
    let config = builder
        .add_source(env_source)
        .build()
        .map_err(|e| ConfigError::Source(e.to_string()))?;

    serde_path_to_error::deserialize(config).map_err(|err| {
        let path = err.path().to_string();
        let message = err.inner().to_string();
        // For an unknown key the path names its parent section; name the key itself, which is what the user typed.
        let key = match unknown_field(&message) {
            Some(field) if path == "." => field.to_string(),
            // serde_path_to_error names the unknown key itself in some positions and its parent in others.
            Some(field) if path == field || path.ends_with(&format!(".{field}")) => path,
            Some(field) => format!("{path}.{field}"),
            None => path,
        };
        ConfigError::Key { key, message }
    })
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// `SHOPBRIDGE_DATABASE__URL` (one underscore after the prefix) would be dropped silently by the config crate.
/// Variables without a double underscore (`SHOPBRIDGE_PG_PORT`, read by `make infra`) are not settings and pass.
fn reject_wrong_separators(env: &[(String, String)]) -> Result<(), ConfigError> {
    for (key, _) in env {
        if key.starts_with("SHOPBRIDGE_")
            && !key.starts_with("SHOPBRIDGE__")
            && key.contains(ENV_SEPARATOR)
        {
            return Err(ConfigError::Separator(key.clone()));
        }
        if let Some(rest) = key.strip_prefix("SHOPBRIDGE__")
            && !rest.contains(ENV_SEPARATOR)
        {
            return Err(ConfigError::Key {
                key: rest.to_lowercase(),
                message: format!(
                    "environment variable `{key}` names a section but no key: use SHOPBRIDGE__<SECTION>__<KEY>"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const DEFAULTS: &str = include_str!("../../auth/config/default.toml");

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_env(pairs: &[(&str, &str)]) -> Result<Settings<NoServiceSettings>, ConfigError> {
        load_from(DEFAULTS, None, env(pairs))
    }

    #[test]
    fn defaults_load_and_environment_overrides_them() {
        let s = load_env(&[
            ("SHOPBRIDGE__DATABASE__URL", "postgres://u@db:5432/x"),
            ("SHOPBRIDGE__DATABASE__MAX_CONNECTIONS", "3"),
            ("SHOPBRIDGE__CONSUMER__BACKOFF_MS", "1,2,3"),
            ("UNRELATED", "1"),
        ])
        .unwrap();
        assert_eq!(s.database.url.expose_secret(), "postgres://u@db:5432/x");
        assert_eq!(s.database.max_connections, 3);
        assert_eq!(s.consumer.backoff_ms, vec![1, 2, 3]);
        assert_eq!(s.grpc.listen.port(), 50051);
    }

    #[test]
    fn a_misspelled_environment_key_fails_naming_the_key() {
        let err = load_env(&[("SHOPBRIDGE__DATABASE__URLL", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.urll"), "{err}");
        let err = load_env(&[("SHOPBRIDGE__DATABSE__URL", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("databse"), "{err}");
    }

    #[test]
    fn a_single_underscore_after_the_prefix_is_reported_not_ignored() {
        let err = load_env(&[("SHOPBRIDGE_DATABASE__URL", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SHOPBRIDGE_DATABASE__URL"), "{err}");
        let err = load_env(&[("SHOPBRIDGE__DATABASE_URL", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SHOPBRIDGE__DATABASE_URL"), "{err}");
        // The infrastructure scripts' own variables are not settings.
        assert!(
            load_env(&[
                ("SHOPBRIDGE_PG_PORT", "55444"),
                ("SHOPBRIDGE_CONFIG", "x.toml")
            ])
            .is_ok()
        );
    }

    #[test]
    fn a_bad_value_fails_naming_the_key() {
        let err = load_env(&[("SHOPBRIDGE__DATABASE__MAX_CONNECTIONS", "many")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.max_connections"), "{err}");
        let err = load_env(&[("SHOPBRIDGE__GRPC__LISTEN", "not-an-address")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("grpc.listen"), "{err}");
        let err = load_env(&[("SHOPBRIDGE__TELEMETRY__LOG_FORMAT", "xml")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("telemetry.log_format"), "{err}");
    }

    #[test]
    fn a_file_overrides_defaults_and_its_unknown_keys_fail() {
        let dir = std::env::temp_dir().join(format!("sb-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "[nats]\nnamespace = \"staging\"\n").unwrap();
        let s: Settings<NoServiceSettings> = load_from(DEFAULTS, Some(&good), env(&[])).unwrap();
        assert_eq!(s.nats.namespace, "staging");
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[nats]\nnamespaec = \"staging\"\n").unwrap();
        let err = load_from::<Settings<NoServiceSettings>>(DEFAULTS, Some(&bad), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`nats.namespaec`"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_database_url_never_prints() {
        let s = load_env(&[("SHOPBRIDGE__DATABASE__URL", "postgres://u:hunter2@db/x")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
