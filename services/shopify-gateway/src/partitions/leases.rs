//! Partition ownership across gateway replicas. Each replica heartbeats a member key and holds partitions of the
//! command stream through keys of the `gateway-leases` bucket, created only if absent and renewed by revision
//! (compare-and-set). The bucket's TTL expires the keys of a replica that died, and a live replica takes them over.
//! Replicas share the partitions evenly: one holding more than its share gives the surplus back. Only the holder of a
//! partition consumes its commands, so two replicas never spend one shop's budget at the same time, and the command
//! handler checks the lease (the fence, [`Leases`]) before it works for a shop.
//!
//! As in the scheduler's leader election, only a revision conflict or a missing key means a lease is lost (another
//! replica holds it, or it expired): its consumers are stopped at once. Any other KV error (a timeout, NATS
//! unreachable) keeps the lease, retried at the next renewal, until it lapses by its own time: the fence refuses work
//! for a partition not renewed within the lease less a margin, and its consumers are stopped then. A conflict is
//! checked against the key before the lease is given up: a renewal whose answer was lost may have been applied, and
//! then the key still names this replica at a newer revision, which is taken up.
//!
//! Renewal runs on its own ticker, beside rebalancing: giving back partitions waits for their running commands, and
//! must never hold renewals back. Surplus partitions are given back together: all stop starting commands at once,
//! their running commands get one common deadline (`release_grace_ms`) and are then aborted (they come back to the
//! new holder after the consumer's `ack_wait`), and each lease key is deleted only after its consumers have stopped,
//! so a replica never calls a shop whose partition another replica holds. Shutdown gives back every partition the
//! same way.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use futures::TryStreamExt;
use serde::Deserialize;
use shopbridge_platform::bus::names::{GATEWAY_PARTITIONS, partition_for, partition_token};
use tokio::task::{AbortHandle, JoinHandle};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseSettings {
    /// How often a replica renews its leases, and how often it rebalances.
    pub renew_interval_ms: u64,
    /// How long a lease lasts without renewal: the TTL of the `gateway-leases` bucket.
    pub lease_secs: u64,
    /// How long the running commands of partitions given back (to another replica, or at shutdown) may finish before
    /// they are aborted. Keep it below the service's shutdown grace (8 s).
    pub release_grace_ms: u64,
}

impl LeaseSettings {
    fn renew_interval(&self) -> Duration {
        Duration::from_millis(self.renew_interval_ms)
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
}

fn partition_key(partition: u32) -> String {
    format!("partition.{}", partition_token(partition))
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    revision: u64,
    /// When the request that last renewed it was sent.
    renewed: Instant,
    /// Its consumers have stopped: its key is deleted at the next renewal round.
    giving_back: bool,
}

/// The partitions this replica holds, and when each was last renewed: the fence the command handler checks.
#[derive(Clone)]
pub struct Leases {
    held: Arc<Mutex<HashMap<u32, Lease>>>,
    lease: Duration,
}

impl Leases {
    pub fn new(settings: &LeaseSettings) -> Self {
        Self {
            held: Arc::default(),
            lease: settings.lease(),
        }
    }

    /// Whether this replica may work for `shop` now: it holds the partition and renewed it within the lease, with a
    /// margin for clocks and in-flight renewals.
    pub fn holds_shop(&self, shop: &str) -> bool {
        self.holds(partition_for(shop, GATEWAY_PARTITIONS))
    }

    pub fn holds(&self, partition: u32) -> bool {
        self.lock()
            .get(&partition)
            .is_some_and(|lease| !lease.giving_back && self.fresh(lease))
    }

    /// The partitions held (being given back excepted), whether or not renewed in time.
    pub fn partitions(&self) -> Vec<u32> {
        let mut held: Vec<u32> = self
            .lock()
            .iter()
            .filter(|(_, lease)| !lease.giving_back)
            .map(|(p, _)| *p)
            .collect();
        held.sort_unstable();
        held
    }

    fn margin(&self) -> Duration {
        self.lease / 5
    }

    fn fresh(&self, lease: &Lease) -> bool {
        lease.renewed.elapsed() + self.margin() < self.lease
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Lease>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

/// A partition's consumers. `tasks` is taken by whoever waits for them to stop (a release); `aborts` stays, so that
/// a lease lost meanwhile still stops them at once.
struct Running {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    aborts: Vec<AbortHandle>,
}

/// Dropped (lease lost, manager gone with its task or process), a partition's consumers stop at once.
impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
        for task in &self.aborts {
            task.abort();
        }
    }
}

/// The consumers running, by partition; shared by the renewal ticker (which stops those of a lost lease) and the
/// rebalancing loop (which starts and gives back partitions).
type Consumers = Arc<Mutex<HashMap<u32, Running>>>;

fn lock(consumers: &Consumers) -> std::sync::MutexGuard<'_, HashMap<u32, Running>> {
    consumers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What one renewal round did to one lease.
enum Renewal {
    Renewed {
        revision: u64,
        sent: Instant,
    },
    /// The key names this replica at a newer revision (an earlier renewal was applied but its answer lost).
    Adopted(u64),
    /// Its key is deleted (or no longer ours): given back.
    GivenBack,
    /// Another replica holds the key, or it is gone.
    Lost,
    /// Not renewed this time (timeout, NATS unreachable): kept until it lapses.
    Failed(String),
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

    /// Holds, renews and balances partitions until `cancel`; then gives every partition back (its consumers stopped
    /// first).
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let consumers: Consumers = Arc::default();
        tracing::info!(replica = %self.replica, "partition manager started");
        if let Err(e) = self.heartbeat().await {
            tracing::warn!(replica = %self.replica, error = %e, "cannot announce this replica; retrying");
        }
        let renewing = CancellationToken::new();
        let balancing = async {
            loop {
                self.rebalance(&consumers).await;
                metrics::gauge!("gateway_partitions_held").set(lock(&consumers).len() as f64);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(self.settings.renew_interval()) => {}
                }
            }
            // Every partition stops starting commands at once; renewals go on while running commands finish.
            let all: Vec<u32> = lock(&consumers).keys().copied().collect();
            self.release(&consumers, all).await;
            renewing.cancel();
        };
        tokio::join!(self.renew_until(&consumers, &renewing), balancing);
        metrics::gauge!("gateway_partitions_held").set(0.0);
        let given_back: Vec<(u32, Lease)> = self.leases.lock().drain().collect();
        let limit = self.op_limit();
        let this = &self;
        let deletes = given_back.into_iter().map(|(partition, lease)| {
            let key = partition_key(partition);
            async move {
                let delete = this.kv.delete_expect_revision(key, Some(lease.revision));
                let _ = tokio::time::timeout(limit, delete).await;
            }
        });
        futures::future::join_all(deletes).await;
        let _ = tokio::time::timeout(limit, self.kv.delete(self.member_key())).await;
        tracing::info!(replica = %self.replica, "partition manager stopped; leases released");
        Ok(())
    }

    fn member_key(&self) -> String {
        format!("member.{}", self.replica)
    }

    /// How long one KV request may take: a renewal round must not outlast the margin the fence keeps.
    fn op_limit(&self) -> Duration {
        self.leases.margin().max(Duration::from_millis(100))
    }

    async fn heartbeat(&self) -> anyhow::Result<()> {
        tokio::time::timeout(
            self.op_limit(),
            self.kv.put(self.member_key(), self.replica.clone().into()),
        )
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))??;
        Ok(())
    }

    /// The renewal ticker: heartbeat, renew every lease, delete those given back; until `stop`.
    async fn renew_until(&self, consumers: &Consumers, stop: &CancellationToken) {
        let mut ticker = tokio::time::interval(self.settings.renew_interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            self.renew_round(consumers).await;
        }
    }

    async fn renew_round(&self, consumers: &Consumers) {
        let held: Vec<(u32, Lease)> = self.leases.lock().iter().map(|(p, l)| (*p, *l)).collect();
        let renewals =
            futures::future::join_all(held.into_iter().map(|(partition, lease)| async move {
                (partition, lease, self.renew(partition, lease).await)
            }));
        let (member, renewals) = tokio::join!(self.heartbeat(), renewals);
        if let Err(e) = member {
            tracing::warn!(replica = %self.replica, error = %e, "member heartbeat failed; retrying");
        }
        for (partition, lease, renewal) in renewals {
            match renewal {
                Renewal::Renewed { revision, sent } => {
                    if let Some(held) = self.leases.lock().get_mut(&partition) {
                        held.revision = revision;
                        held.renewed = sent;
                    }
                }
                Renewal::Adopted(revision) => {
                    if let Some(held) = self.leases.lock().get_mut(&partition) {
                        held.revision = revision;
                    }
                    tracing::info!(
                        partition,
                        revision,
                        "lease found renewed by an unanswered request; kept"
                    );
                }
                Renewal::GivenBack => {
                    self.leases.lock().remove(&partition);
                    tracing::info!(partition, replica = %self.replica, "partition released");
                }
                Renewal::Lost => {
                    self.leases.lock().remove(&partition);
                    lock(consumers).remove(&partition);
                    tracing::warn!(partition, replica = %self.replica, "lease lost; its consumers stopped");
                }
                Renewal::Failed(error) if !self.leases.fresh(&lease) => {
                    // Not renewed within the lease less the margin: the key may expire and be taken any moment.
                    self.leases.lock().remove(&partition);
                    lock(consumers).remove(&partition);
                    tracing::warn!(partition, replica = %self.replica, %error, "lease lapsed unrenewed; its consumers stopped");
                }
                Renewal::Failed(error) => {
                    tracing::warn!(partition, %error, "lease renewal failed; kept until it lapses, retrying");
                }
            }
        }
    }

    async fn renew(&self, partition: u32, lease: Lease) -> Renewal {
        let key = partition_key(partition);
        let sent = Instant::now();
        if lease.giving_back {
            return match tokio::time::timeout(
                self.op_limit(),
                self.kv.delete_expect_revision(&key, Some(lease.revision)),
            )
            .await
            {
                Ok(Ok(())) => Renewal::GivenBack,
                // Maybe a conflict (then the key is not ours any more), maybe not: ask the key.
                Ok(Err(e)) => match self.ours(&key).await {
                    Ok(Some(revision)) if revision != lease.revision => Renewal::Adopted(revision),
                    Ok(Some(_)) => Renewal::Failed(e.to_string()),
                    Ok(None) => Renewal::GivenBack,
                    Err(read) => Renewal::Failed(format!("{e}; reading the key: {read}")),
                },
                Err(_) => Renewal::Failed("delete timed out".into()),
            };
        }
        match tokio::time::timeout(
            self.op_limit(),
            self.kv
                .update(&key, self.replica.clone().into(), lease.revision),
        )
        .await
        {
            Ok(Ok(revision)) => Renewal::Renewed { revision, sent },
            Ok(Err(e)) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                match self.ours(&key).await {
                    Ok(Some(revision)) if revision != lease.revision => Renewal::Adopted(revision),
                    Ok(_) => Renewal::Lost,
                    Err(read) => Renewal::Failed(format!("{e}; reading the key: {read}")),
                }
            }
            Ok(Err(e)) => Renewal::Failed(e.to_string()),
            Err(_) => Renewal::Failed("renewal timed out".into()),
        }
    }

    /// The key's revision if it names this replica; `None` if it is missing, deleted or another replica's.
    async fn ours(&self, key: &str) -> anyhow::Result<Option<u64>> {
        let entry = tokio::time::timeout(self.op_limit(), self.kv.entry(key))
            .await
            .map_err(|_| anyhow::anyhow!("timed out"))??;
        Ok(entry
            .filter(|e| e.operation == Operation::Put && e.value == self.replica.as_bytes())
            .map(|e| e.revision))
    }

    async fn members(&self) -> anyhow::Result<u32> {
        let keys = async {
            self.kv
                .keys()
                .await?
                .try_filter(|k| futures::future::ready(k.starts_with("member.")))
                .try_collect::<Vec<_>>()
                .await
                .map_err(anyhow::Error::from)
        };
        let members = tokio::time::timeout(self.op_limit() * 2, keys)
            .await
            .map_err(|_| anyhow::anyhow!("listing the members timed out"))??;
        Ok((members.len() as u32).max(1))
    }

    /// Gives back the surplus over this replica's share, then takes free partitions up to it.
    async fn rebalance(&self, consumers: &Consumers) {
        let members = match self.members().await {
            Ok(members) => members,
            Err(e) => {
                tracing::warn!(replica = %self.replica, error = %e, "cannot count the replicas; not rebalancing now");
                return;
            }
        };
        let share = GATEWAY_PARTITIONS.div_ceil(members) as usize;
        let mut serving: Vec<u32> = lock(consumers).keys().copied().collect();
        if serving.len() > share {
            serving.sort_unstable();
            let surplus = serving.split_off(share);
            self.release(consumers, surplus).await;
        }
        for partition in 0..GATEWAY_PARTITIONS {
            if lock(consumers).len() >= share {
                break;
            }
            // Held already (or being given back: its key is still ours).
            if self.leases.lock().contains_key(&partition) {
                continue;
            }
            if let Some(revision) = self.take(partition).await {
                self.leases.lock().insert(
                    partition,
                    Lease {
                        revision: revision.0,
                        renewed: revision.1,
                        giving_back: false,
                    },
                );
                let cancel = CancellationToken::new();
                let tasks = (self.spawn)(partition, cancel.clone());
                let aborts = tasks.iter().map(JoinHandle::abort_handle).collect();
                lock(consumers).insert(
                    partition,
                    Running {
                        cancel,
                        tasks,
                        aborts,
                    },
                );
                tracing::info!(partition, replica = %self.replica, "partition taken");
            }
        }
    }

    /// Creates the partition's key: its revision and when it was asked, if this replica holds it now.
    async fn take(&self, partition: u32) -> Option<(u64, Instant)> {
        let key = partition_key(partition);
        let sent = Instant::now();
        match tokio::time::timeout(
            self.op_limit(),
            self.kv.create(&key, self.replica.clone().into()),
        )
        .await
        {
            Ok(Ok(revision)) => Some((revision, sent)),
            Ok(Err(e)) if e.kind() == CreateErrorKind::AlreadyExists => None,
            // The create may have been applied with its answer lost: then the key is ours.
            _ => match self.ours(&key).await {
                Ok(Some(revision)) => Some((revision, sent)),
                _ => None,
            },
        }
    }

    /// Gives `partitions` back: they all stop starting commands at once, their running commands get one deadline
    /// and are aborted past it; once every consumer has stopped, their keys are marked to be deleted by the renewal
    /// ticker (until then it keeps renewing them, so nobody else takes them while commands still run here).
    async fn release(&self, consumers: &Consumers, partitions: Vec<u32>) {
        if partitions.is_empty() {
            return;
        }
        let grace = Duration::from_millis(self.settings.release_grace_ms);
        let deadline = tokio::time::Instant::now() + grace;
        let mut tasks = Vec::new();
        for running in lock(consumers)
            .iter_mut()
            .filter(|(p, _)| partitions.contains(p))
        {
            running.1.cancel.cancel();
            tasks.append(&mut running.1.tasks);
        }
        tracing::info!(?partitions, replica = %self.replica, "giving partitions back");
        let mut stopped = std::pin::pin!(futures::future::join_all(tasks));
        if tokio::time::timeout_at(deadline, stopped.as_mut())
            .await
            .is_err()
        {
            tracing::warn!(
                ?partitions,
                grace_ms = self.settings.release_grace_ms,
                "commands still running past the release deadline; aborting them"
            );
            for (_, running) in lock(consumers)
                .iter()
                .filter(|(p, _)| partitions.contains(p))
            {
                for task in &running.aborts {
                    task.abort();
                }
            }
            stopped.await;
        }
        let mut consumers = lock(consumers);
        let mut held = self.leases.lock();
        for partition in &partitions {
            consumers.remove(partition);
            if let Some(lease) = held.get_mut(partition) {
                lease.giving_back = true;
            }
        }
    }
}
