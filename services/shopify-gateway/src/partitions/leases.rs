//! Partition ownership across gateway replicas. Each replica heartbeats a member key and holds partitions of the
//! command stream through keys of the `gateway-leases` bucket, created only if absent and renewed by revision
//! (compare-and-set: a stale revision means someone else took it). The bucket's TTL expires the keys of a replica
//! that died, and a live replica takes them over. Replicas share the partitions evenly: one holding more than its
//! share releases the surplus. Only the holder of a partition consumes its commands, so two replicas never spend one
//! shop's budget at the same time; a replica whose renewal failed stops at once, and the command handler checks the
//! lease (the fence) before it calls Shopify.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream::kv;
use futures::TryStreamExt;
use serde::Deserialize;
use shopbridge_platform::bus::names::{GATEWAY_PARTITIONS, partition_for, partition_token};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseSettings {
    /// How often a replica renews its leases and rebalances.
    pub renew_interval_ms: u64,
    /// How long a lease lasts without renewal: the TTL of the `gateway-leases` bucket.
    pub lease_secs: u64,
}

impl LeaseSettings {
    fn renew_interval(&self) -> Duration {
        Duration::from_millis(self.renew_interval_ms)
    }
}

fn partition_key(partition: u32) -> String {
    format!("partition.{}", partition_token(partition))
}

/// The partitions this replica holds, and when each was last renewed: the fence the command handler checks.
#[derive(Clone)]
pub struct Leases {
    held: Arc<Mutex<HashMap<u32, (u64, Instant)>>>,
    lease: Duration,
}

impl Leases {
    pub fn new(settings: &LeaseSettings) -> Self {
        Self {
            held: Arc::default(),
            lease: Duration::from_secs(settings.lease_secs),
        }
    }

    /// Whether this replica may work for `shop` now: it holds the partition and renewed it within the lease, with a
    /// margin for clocks and in-flight renewals.
    pub fn holds_shop(&self, shop: &str) -> bool {
        self.holds(partition_for(shop, GATEWAY_PARTITIONS))
    }

    pub fn holds(&self, partition: u32) -> bool {
        let margin = self.lease / 5;
        self.held
            .lock()
            .unwrap()
            .get(&partition)
            .is_some_and(|(_, renewed)| renewed.elapsed() + margin < self.lease)
    }

    pub fn partitions(&self) -> Vec<u32> {
        let mut held: Vec<u32> = self.held.lock().unwrap().keys().copied().collect();
        held.sort_unstable();
        held
    }
}

/// Starts the consumers of one partition; they must stop when the token is cancelled.
pub type Spawner = Arc<dyn Fn(u32, CancellationToken) -> Vec<JoinHandle<()>> + Send + Sync>;

pub struct PartitionManager {
    kv: kv::Store,
    replica: String,
    settings: LeaseSettings,
    leases: Leases,
    spawn: Spawner,
}

struct Running {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// A manager that goes away (its task aborted, the process dying) takes its consumers with it.
impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PartitionManager {
    /// `leases` is the fence the replica's command handler checks; `spawn` starts a partition's consumers.
    pub fn new(kv: kv::Store, settings: LeaseSettings, leases: Leases, spawn: Spawner) -> Self {
        let replica = uuid::Uuid::new_v4().simple().to_string();
        Self {
            kv,
            replica,
            settings,
            leases,
            spawn,
        }
    }

    /// Holds, renews and balances partitions until `cancel`; then stops the consumers and releases the leases.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut running: HashMap<u32, Running> = HashMap::new();
        tracing::info!(replica = %self.replica, "partition manager started");
        loop {
            if let Err(e) = self.round(&mut running).await {
                tracing::warn!(error = %e, "lease round failed; retrying");
            }
            metrics::gauge!("gateway_partitions_held").set(running.len() as f64);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(self.settings.renew_interval()) => {}
            }
        }
        let held: Vec<u32> = running.keys().copied().collect();
        for partition in held {
            self.release(partition, &mut running).await;
        }
        let _ = self.kv.delete(format!("member.{}", self.replica)).await;
        tracing::info!(replica = %self.replica, "partition manager stopped; leases released");
        Ok(())
    }

    async fn round(&self, running: &mut HashMap<u32, Running>) -> anyhow::Result<()> {
        self.kv
            .put(
                format!("member.{}", self.replica),
                self.replica.clone().into(),
            )
            .await?;
        // Renew what we hold; a failed compare-and-set means the lease is gone: stop at once.
        let held: Vec<(u32, u64)> = self
            .leases
            .held
            .lock()
            .unwrap()
            .iter()
            .map(|(p, (rev, _))| (*p, *rev))
            .collect();
        for (partition, revision) in held {
            match self
                .kv
                .update(
                    partition_key(partition),
                    self.replica.clone().into(),
                    revision,
                )
                .await
            {
                Ok(revision) => {
                    self.leases
                        .held
                        .lock()
                        .unwrap()
                        .insert(partition, (revision, Instant::now()));
                }
                Err(e) => {
                    tracing::warn!(partition, error = %e, "lease lost; stopping its consumers");
                    self.leases.held.lock().unwrap().remove(&partition);
                    if let Some(run) = running.remove(&partition) {
                        run.cancel.cancel();
                    }
                }
            }
        }
        let members = self
            .kv
            .keys()
            .await?
            .try_filter(|k| futures::future::ready(k.starts_with("member.")))
            .try_collect::<Vec<_>>()
            .await?
            .len()
            .max(1) as u32;
        let share = GATEWAY_PARTITIONS.div_ceil(members) as usize;
        // Give back the surplus, so a new replica gets its share.
        while running.len() > share {
            let Some(partition) = running.keys().copied().max() else {
                break;
            };
            self.release(partition, running).await;
        }
        // Take free partitions up to our share.
        for partition in 0..GATEWAY_PARTITIONS {
            if running.len() >= share {
                break;
            }
            if running.contains_key(&partition) {
                continue;
            }
            if let Ok(revision) = self
                .kv
                .create(partition_key(partition), self.replica.clone().into())
                .await
            {
                self.leases
                    .held
                    .lock()
                    .unwrap()
                    .insert(partition, (revision, Instant::now()));
                let cancel = CancellationToken::new();
                let tasks = (self.spawn)(partition, cancel.clone());
                running.insert(partition, Running { cancel, tasks });
                tracing::info!(partition, replica = %self.replica, "partition taken");
            }
        }
        Ok(())
    }

    /// Stops a partition's consumers (in-flight commands finish), then deletes its lease for another replica.
    async fn release(&self, partition: u32, running: &mut HashMap<u32, Running>) {
        if let Some(mut run) = running.remove(&partition) {
            run.cancel.cancel();
            for task in std::mem::take(&mut run.tasks) {
                let _ = tokio::time::timeout(Duration::from_secs(8), task).await;
            }
        }
        let revision = self
            .leases
            .held
            .lock()
            .unwrap()
            .remove(&partition)
            .map(|(rev, _)| rev);
        if let Some(revision) = revision {
            let _ = self
                .kv
                .delete_expect_revision(partition_key(partition), Some(revision))
                .await;
            tracing::info!(partition, replica = %self.replica, "partition released");
        }
    }
}
