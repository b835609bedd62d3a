//! The JetStream topology (streams, consumers, key-value buckets), declared once in `deploy/nats/topology.yaml` and
//! applied idempotently by `shopbridge-nats-topology apply`, by `make`, by tests (in their own namespace) and by the
//! Helm chart's job. Services bind to what it declares; they never create streams with default settings.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use serde::Deserialize;

use super::names::{Namespace, partition_token};

/// The topology file, embedded so that every binary and test can apply it without a path.
pub const EMBEDDED: &str = include_str!("../../../../deploy/nats/topology.yaml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub streams: Vec<StreamSpec>,
    #[serde(default)]
    pub consumers: Vec<ConsumerSpec>,
    #[serde(default)]
    pub key_value: Vec<KvSpec>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    Limits,
    WorkQueue,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    File,
    Memory,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    pub name: String,
    pub description: String,
    pub subjects: Vec<String>,
    pub retention: Retention,
    pub storage: Storage,
    #[serde(default = "one")]
    pub replicas: usize,
    /// 0 keeps messages forever (work queues keep them until acknowledged).
    #[serde(default)]
    pub max_age_secs: u64,
    /// The stream's size bound in bytes (the oldest messages go first); absent or -1: unbounded.
    #[serde(default = "unbounded")]
    pub max_bytes: i64,
    pub duplicate_window_secs: u64,
}

fn unbounded() -> i64 {
    -1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    /// The durable name; with `partitions`, `{partition}` is replaced by `p00`, `p01`, ...
    pub name: String,
    pub stream: String,
    pub description: String,
    pub filter_subjects: Vec<String>,
    pub ack_wait_secs: u64,
    pub max_deliver: i64,
    #[serde(default = "default_max_ack_pending")]
    pub max_ack_pending: i64,
    /// Expand into one consumer per partition (`{partition}` in name and filters).
    #[serde(default)]
    pub partitions: Option<u32>,
    /// And into one consumer per lane (`{lane}` in name and filters).
    #[serde(default)]
    pub lanes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvSpec {
    pub bucket: String,
    pub description: String,
    /// 0 for no expiry.
    #[serde(default)]
    pub ttl_secs: u64,
    #[serde(default = "one_i64")]
    pub history: i64,
    pub storage: Storage,
    #[serde(default = "one")]
    pub replicas: usize,
}

fn one() -> usize {
    1
}
fn one_i64() -> i64 {
    1
}
fn default_max_ack_pending() -> i64 {
    1000
}

impl Topology {
    pub fn parse(yaml: &str) -> anyhow::Result<Self> {
        let config = config::Config::builder()
            .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
            .build()?;
        serde_path_to_error::deserialize(config)
            .map_err(|e| anyhow::anyhow!("topology key `{}`: {}", e.path(), e.inner()))
    }

    pub fn embedded() -> Self {
        Self::parse(EMBEDDED).expect("the embedded topology is checked by a test")
    }

    /// The same topology without the streams' byte bounds. JetStream reserves a bounded stream's `max_bytes` against
    /// the server's storage when it creates it, so the test suite, which applies the topology once per test namespace
    /// and runs dozens of namespaces at once on one server, applies it without them.
    pub fn without_size_bounds(mut self) -> Self {
        for stream in &mut self.streams {
            stream.max_bytes = -1;
        }
        self
    }

    /// Consumers with their partitions and lanes expanded.
    pub fn expanded_consumers(&self) -> Vec<ConsumerSpec> {
        let expand = |c: &ConsumerSpec, key: &str, value: &str| ConsumerSpec {
            name: c.name.replace(key, value),
            filter_subjects: c
                .filter_subjects
                .iter()
                .map(|f| f.replace(key, value))
                .collect(),
            ..c.clone()
        };
        self.consumers
            .iter()
            .flat_map(|c| match c.partitions {
                None => vec![c.clone()],
                Some(n) => (0..n)
                    .map(|p| expand(c, "{partition}", &partition_token(p)))
                    .collect(),
            })
            .flat_map(|c| {
                if c.lanes.is_empty() {
                    vec![c]
                } else {
                    c.lanes
                        .iter()
                        .map(|lane| expand(&c, "{lane}", lane))
                        .collect()
                }
            })
            .map(|c| ConsumerSpec {
                partitions: None,
                lanes: Vec::new(),
                ..c
            })
            .collect()
    }

    fn stream_config(spec: &StreamSpec, ns: &Namespace) -> stream::Config {
        stream::Config {
            name: ns.resource(&spec.name),
            description: Some(spec.description.clone()),
            subjects: spec.subjects.iter().map(|s| ns.subject(s)).collect(),
            retention: match spec.retention {
                Retention::Limits => stream::RetentionPolicy::Limits,
                Retention::WorkQueue => stream::RetentionPolicy::WorkQueue,
            },
            storage: match spec.storage {
                Storage::File => stream::StorageType::File,
                Storage::Memory => stream::StorageType::Memory,
            },
            num_replicas: spec.replicas,
            max_age: Duration::from_secs(spec.max_age_secs),
            max_bytes: spec.max_bytes,
            duplicate_window: Duration::from_secs(spec.duplicate_window_secs),
            ..Default::default()
        }
    }

    fn consumer_config(spec: &ConsumerSpec, ns: &Namespace) -> consumer::pull::Config {
        let mut filters: Vec<String> = spec.filter_subjects.iter().map(|s| ns.subject(s)).collect();
        let (filter_subject, filter_subjects) = if filters.len() == 1 {
            (filters.pop().unwrap_or_default(), Vec::new())
        } else {
            (String::new(), filters)
        };
        consumer::pull::Config {
            durable_name: Some(ns.resource(&spec.name)),
            description: Some(spec.description.clone()),
            filter_subject,
            filter_subjects,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(spec.ack_wait_secs),
            max_deliver: spec.max_deliver,
            max_ack_pending: spec.max_ack_pending,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        }
    }

    /// Creates what is missing and updates what differs; running it twice changes nothing.
    pub async fn apply(
        &self,
        js: &jetstream::Context,
        ns: &Namespace,
    ) -> anyhow::Result<ApplyReport> {
        let mut report = ApplyReport::default();
        for spec in &self.streams {
            let config = Self::stream_config(spec, ns);
            match js.get_stream(&config.name).await {
                Ok(mut existing) => {
                    let current = existing.info().await?.config.clone();
                    if differs_stream(&current, &config) {
                        js.update_stream(&config).await?;
                        report.updated.push(format!("stream {}", config.name));
                    } else {
                        report.unchanged += 1;
                    }
                }
                Err(_) => {
                    js.create_stream(config.clone()).await?;
                    report.created.push(format!("stream {}", config.name));
                }
            }
        }
        for spec in self.expanded_consumers() {
            let stream = js
                .get_stream(ns.resource(&spec.stream))
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "consumer {} names stream {} which is not declared: {e}",
                        spec.name,
                        spec.stream
                    )
                })?;
            let config = Self::consumer_config(&spec, ns);
            let name = config.durable_name.clone().unwrap_or_default();
            match stream.consumer_info(&name).await {
                Ok(info) => {
                    if differs_consumer(&info.config, &config) {
                        stream.update_consumer(config).await?;
                        report.updated.push(format!("consumer {name}"));
                    } else {
                        report.unchanged += 1;
                    }
                }
                Err(_) => {
                    stream.create_consumer(config).await?;
                    report.created.push(format!("consumer {name}"));
                }
            }
        }
        for spec in &self.key_value {
            let bucket = ns.resource(&spec.bucket);
            let config = kv::Config {
                bucket: bucket.clone(),
                description: spec.description.clone(),
                history: spec.history,
                max_age: Duration::from_secs(spec.ttl_secs),
                storage: match spec.storage {
                    Storage::File => stream::StorageType::File,
                    Storage::Memory => stream::StorageType::Memory,
                },
                num_replicas: spec.replicas,
                ..Default::default()
            };
            match js.get_key_value(&bucket).await {
                Ok(_) => {
                    js.update_key_value(config).await?;
                    report.unchanged += 1;
                }
                Err(_) => {
                    js.create_key_value(config).await?;
                    report.created.push(format!("kv {bucket}"));
                }
            }
        }
        Ok(report)
    }

    /// Deletes everything this topology declares in `ns` (tests clean their namespace up with it).
    pub async fn delete(&self, js: &jetstream::Context, ns: &Namespace) -> anyhow::Result<()> {
        for spec in &self.key_value {
            let _ = js.delete_key_value(ns.resource(&spec.bucket)).await;
        }
        for spec in &self.streams {
            let _ = js.delete_stream(ns.resource(&spec.name)).await;
        }
        Ok(())
    }
}

fn differs_stream(current: &stream::Config, wanted: &stream::Config) -> bool {
    current.subjects != wanted.subjects
        || current.max_age != wanted.max_age
        || current.max_bytes != wanted.max_bytes
        || current.duplicate_window != wanted.duplicate_window
        || current.description != wanted.description
        || current.num_replicas != wanted.num_replicas
}

fn differs_consumer(current: &consumer::Config, wanted: &consumer::pull::Config) -> bool {
    current.filter_subject != wanted.filter_subject
        || current.filter_subjects != wanted.filter_subjects
        || current.ack_wait != wanted.ack_wait
        || current.max_deliver != wanted.max_deliver
        || current.max_ack_pending != wanted.max_ack_pending
        || current.description != wanted.description
}

#[derive(Debug, Default)]
pub struct ApplyReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: usize,
}

impl std::fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "created {}, updated {}, unchanged {}",
            self.created.len(),
            self.updated.len(),
            self.unchanged
        )?;
        for item in self.created.iter() {
            write!(f, "\n  created {item}")?;
        }
        for item in self.updated.iter() {
            write!(f, "\n  updated {item}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_topology_parses_and_every_consumer_names_a_declared_stream() {
        let t = Topology::embedded();
        for c in t.expanded_consumers() {
            assert!(
                t.streams.iter().any(|s| s.name == c.stream),
                "consumer {} -> {}",
                c.name,
                c.stream
            );
            assert!(!c.name.contains('{'), "{}", c.name);
        }
        let gateway = t
            .expanded_consumers()
            .into_iter()
            .filter(|c| c.stream == "GATEWAY_COMMANDS")
            .count();
        assert!(gateway >= 2, "the gateway's command stream is partitioned");
    }

    #[test]
    fn an_unknown_topology_key_is_refused() {
        let err = Topology::parse("streams: []\nconsumerz: []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("consumerz"), "{err}");
    }
}
