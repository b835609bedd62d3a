//! The `[service]` section of the scheduler's settings. Every key is documented, with its default, in
//! `config/default.toml`; values are checked when the settings load, so a wrong one stops the service at start
//! naming the key.

use std::{fmt, time::Duration};

use serde::Deserialize;
use shopbridge_platform::auth_token::VerifierSettings;

use crate::domain::Operation;

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawServiceSettings")]
pub struct ServiceSettings {
    /// The operations whose owner service is deployed; others are refused with FAILED_PRECONDITION.
    pub operations: Vec<Operation>,
    pub start_timeout_secs: u64,
    pub retention_days: u32,
    pub catch_up_after_secs: u64,
    pub tick_ms: u64,
    pub maintenance_interval_secs: u64,
    pub watch_poll_ms: u64,
    pub replica_id: String,
    pub jwks_refresh_secs: u64,
    pub leader: LeaderSettings,
    pub auth: VerifierSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderSettings {
    /// How often the leader renews its lease (and a follower tries to take a free one).
    pub renew_interval_ms: u64,
    /// How long a lease lasts without renewal: the TTL of the `scheduler-leases` bucket.
    pub lease_secs: u64,
}

impl LeaderSettings {
    pub fn renew_interval(&self) -> Duration {
        Duration::from_millis(self.renew_interval_ms)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
}

impl ServiceSettings {
    pub fn start_timeout(&self) -> Duration {
        Duration::from_secs(self.start_timeout_secs)
    }

    pub fn catch_up_after(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.catch_up_after_secs).unwrap_or(i64::MAX))
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    pub fn maintenance_interval(&self) -> Duration {
        Duration::from_secs(self.maintenance_interval_secs)
    }

    pub fn watch_poll(&self) -> Duration {
        Duration::from_millis(self.watch_poll_ms)
    }

    pub fn is_available(&self, operation: Operation) -> bool {
        self.operations.contains(&operation)
    }

    /// This replica's name in the lease and in `runs.fired_by`: the configured one, else the host name (a pod's
    /// name in Kubernetes) with a random suffix, so two processes on one host differ.
    pub fn replica_name(&self) -> String {
        if !self.replica_id.trim().is_empty() {
            return self.replica_id.trim().to_string();
        }
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "scheduler".into());
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
        format!("{host}-{suffix}")
    }
}

/// A list in a file, or a comma-separated string in the environment
/// (`SHOPBRIDGE__SERVICE__OPERATIONS=IMPORT_LISTINGS,GET_ORDERS`): the platform parses lists only for its own keys.
#[derive(Deserialize)]
#[serde(untagged)]
enum NameList {
    List(Vec<String>),
    Joined(String),
}

impl NameList {
    fn names(self) -> Vec<String> {
        match self {
            NameList::List(names) => names,
            NameList::Joined(joined) => joined
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

/// The section as written, before its values are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceSettings {
    operations: NameList,
    start_timeout_secs: u64,
    retention_days: u32,
    catch_up_after_secs: u64,
    tick_ms: u64,
    maintenance_interval_secs: u64,
    watch_poll_ms: u64,
    replica_id: String,
    jwks_refresh_secs: u64,
    leader: LeaderSettings,
    auth: VerifierSettings,
}

fn key_error(key: &str, message: impl fmt::Display) -> String {
    format!("configuration key `service.{key}`: {message}")
}

impl TryFrom<RawServiceSettings> for ServiceSettings {
    type Error = String;

    fn try_from(raw: RawServiceSettings) -> Result<Self, String> {
        let mut operations = Vec::new();
        for name in raw.operations.names() {
            let op = Operation::parse(&name).ok_or_else(|| {
                key_error(
                    "operations",
                    format!("unknown operation `{name}`: one of {}", Operation::names()),
                )
            })?;
            if !operations.contains(&op) {
                operations.push(op);
            }
        }
        let at_least_one = |key: &str, value: u64| {
            if value == 0 {
                Err(key_error(key, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        at_least_one("start_timeout_secs", raw.start_timeout_secs)?;
        at_least_one("retention_days", u64::from(raw.retention_days))?;
        at_least_one("tick_ms", raw.tick_ms)?;
        at_least_one("maintenance_interval_secs", raw.maintenance_interval_secs)?;
        at_least_one("watch_poll_ms", raw.watch_poll_ms)?;
        at_least_one("jwks_refresh_secs", raw.jwks_refresh_secs)?;
        at_least_one("leader.lease_secs", raw.leader.lease_secs)?;
        at_least_one("leader.renew_interval_ms", raw.leader.renew_interval_ms)?;
        // A lease renewed less than twice per lifetime lapses on one slow renewal.
        if raw.leader.renew_interval_ms.saturating_mul(2) > raw.leader.lease_secs * 1000 {
            return Err(key_error(
                "leader.renew_interval_ms",
                format!(
                    "{} ms renews less than twice per lease of {} s (service.leader.lease_secs)",
                    raw.leader.renew_interval_ms, raw.leader.lease_secs
                ),
            ));
        }
        if raw.auth.jwks_url.trim().is_empty() {
            return Err(key_error(
                "auth.jwks_url",
                "must name auth's JWKS document, e.g. http://auth:8081/.well-known/jwks.json",
            ));
        }
        Ok(Self {
            operations,
            start_timeout_secs: raw.start_timeout_secs,
            retention_days: raw.retention_days,
            catch_up_after_secs: raw.catch_up_after_secs,
            tick_ms: raw.tick_ms,
            maintenance_interval_secs: raw.maintenance_interval_secs,
            watch_poll_ms: raw.watch_poll_ms,
            replica_id: raw.replica_id,
            jwks_refresh_secs: raw.jwks_refresh_secs,
            leader: raw.leader,
            auth: raw.auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use shopbridge_platform::config::{ConfigError, load_from};

    use super::*;

    type Settings = shopbridge_platform::config::Settings<ServiceSettings>;

    fn load(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        load_from(
            crate::SPEC.defaults,
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn the_defaults_load_and_offer_import_listings_and_get_orders() {
        let s = load(&[]).unwrap();
        assert_eq!(
            s.service.operations,
            vec![Operation::ImportListings, Operation::GetOrders]
        );
        assert_eq!(s.service.start_timeout_secs, 120);
        assert_eq!(s.service.leader.lease_secs, 15);
    }

    #[test]
    fn operations_come_from_the_environment_as_a_comma_separated_list() {
        let s = load(&[(
            "SHOPBRIDGE__SERVICE__OPERATIONS",
            "IMPORT_LISTINGS, get_orders",
        )])
        .unwrap();
        assert_eq!(
            s.service.operations,
            vec![Operation::ImportListings, Operation::GetOrders]
        );
    }

    #[test]
    fn wrong_values_fail_naming_the_key() {
        let err = load(&[("SHOPBRIDGE__SERVICE__OPERATIONS", "IMPORT_LISTING")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("service.operations"), "{err}");
        assert!(err.contains("IMPORT_LISTING`"), "{err}");
        let err = load(&[("SHOPBRIDGE__SERVICE__LEADER__RENEW_INTERVAL_MS", "9000")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("service.leader.renew_interval_ms"), "{err}");
        let err = load(&[("SHOPBRIDGE__SERVICE__RETENTION_DAYS", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("service.retention_days"), "{err}");
        let err = load(&[("SHOPBRIDGE__SERVICE__RETENTION_DAYZ", "3")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("retention_dayz"), "{err}");
    }
}
