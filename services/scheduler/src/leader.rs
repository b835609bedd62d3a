//! Which replica fires schedules: the holder of the `leader` key in the JetStream KV bucket `scheduler-leases`.
//!
//! A replica takes the key only if it is absent (create), and renews it by revision (compare-and-set): a stale
//! revision means another replica holds it now, and this one stops leading at once. The bucket's TTL (the lease)
//! expires the key of a replica that died, and a follower takes it over. A leader that could not renew within the
//! lease (less a margin) stops firing on its own, before its key can expire and be taken.
//!
//! The lease's KV revision is also a fencing token: every fire transaction raises `leader_fence.revision` in the
//! database to its lease's revision and fails if a higher one is there already ([`fence`]), so a deposed leader
//! that still believes it leads (a long pause, a partition from NATS) cannot write a run after its successor has.
//! And whatever happens, one due time is one row (unique (channel, operation, due_at)), written in the same
//! transaction as its RunRequested outbox row.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use sqlx::{PgExecutor, PgPool};
use tokio_util::sync::CancellationToken;

use crate::{config::LeaderSettings, metrics};

const KEY: &str = "leader";

#[derive(Debug, Clone, Copy)]
struct Held {
    revision: u64,
    renewed: Instant,
    /// The database fence accepted this lease's revision at the last renewal.
    fenced: bool,
}

/// This replica's view of the lease, shared with the fire loop.
#[derive(Clone)]
pub struct Leadership {
    held: Arc<Mutex<Option<Held>>>,
    lease: Duration,
}

impl Leadership {
    pub fn new(settings: &LeaderSettings) -> Self {
        Self {
            held: Arc::default(),
            lease: settings.lease(),
        }
    }

    /// The fencing revision while this replica leads: it holds the lease, renewed it within the lease less a margin
    /// for clocks and in-flight renewals, and the database fence accepted it.
    pub fn current(&self) -> Option<u64> {
        let margin = self.lease / 5;
        self.held
            .lock()
            .expect("leadership lock")
            .filter(|h| h.fenced && h.renewed.elapsed() + margin < self.lease)
            .map(|h| h.revision)
    }

    fn set(&self, held: Option<Held>) {
        *self.held.lock().expect("leadership lock") = held;
    }

    fn get(&self) -> Option<Held> {
        *self.held.lock().expect("leadership lock")
    }
}

/// Raises the database fence to `revision`; `false` if a newer lease wrote it (this replica is deposed). A fence
/// untouched for `stale_after` is taken whatever its revision: leaders write it at every renewal, so nobody has led
/// for that long, and revisions may have started again (the bucket was recreated).
pub async fn fence(
    db: impl PgExecutor<'_>,
    revision: u64,
    replica: &str,
    stale_after: Duration,
) -> sqlx::Result<bool> {
    let revision = i64::try_from(revision).unwrap_or(i64::MAX);
    let done = sqlx::query(
        "UPDATE leader_fence SET revision = $1, replica = $2, at = now()
         WHERE revision <= $1 OR at < now() - make_interval(secs => $3)",
    )
    .bind(revision)
    .bind(replica)
    .bind(stale_after.as_secs_f64())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes, renews and finally releases the lease.
pub struct Elector {
    kv: kv::Store,
    pool: PgPool,
    replica: String,
    settings: LeaderSettings,
    leadership: Leadership,
}

impl Elector {
    pub fn new(
        kv: kv::Store,
        pool: PgPool,
        replica: String,
        settings: LeaderSettings,
        leadership: Leadership,
    ) -> Self {
        Self {
            kv,
            pool,
            replica,
            settings,
            leadership,
        }
    }

    /// Runs until `cancel`; then releases the lease, so a follower takes over without waiting for it to expire.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(replica = %self.replica, "leader election started");
        loop {
            self.round().await;
            metrics::leader(self.leadership.current().is_some());
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(self.settings.renew_interval()) => {}
            }
        }
        if let Some(held) = self.leadership.get() {
            self.leadership.set(None);
            let _ = self
                .kv
                .delete_expect_revision(KEY, Some(held.revision))
                .await;
            tracing::info!(replica = %self.replica, "leader lease released");
        }
        metrics::leader(false);
        Ok(())
    }

    async fn round(&self) {
        match self.leadership.get() {
            Some(held) => self.renew(held).await,
            None => self.try_take().await,
        }
    }

    async fn renew(&self, held: Held) {
        match self
            .kv
            .update(KEY, self.replica.clone().into(), held.revision)
            .await
        {
            Ok(revision) => {
                let fenced = self.fence(revision).await;
                self.leadership.set(Some(Held {
                    revision,
                    renewed: Instant::now(),
                    fenced,
                }));
            }
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                self.leadership.set(None);
                tracing::warn!(replica = %self.replica, "leader lease lost to another replica; no longer firing");
            }
            Err(e) => {
                // Maybe renewed, maybe not: keep the revision for the next try; `current` stops leading once the
                // lease may have lapsed.
                if held.renewed.elapsed() >= self.settings.lease() {
                    self.leadership.set(None);
                }
                tracing::warn!(replica = %self.replica, error = %e, "leader lease renewal failed; retrying");
            }
        }
    }

    async fn try_take(&self) {
        match self.kv.create(KEY, self.replica.clone().into()).await {
            Ok(revision) => {
                let fenced = self.fence(revision).await;
                self.leadership.set(Some(Held {
                    revision,
                    renewed: Instant::now(),
                    fenced,
                }));
                tracing::info!(replica = %self.replica, revision, "leader lease taken; firing schedules");
            }
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
            Err(e) => {
                tracing::warn!(replica = %self.replica, error = %e, "cannot take the leader lease")
            }
        }
    }

    async fn fence(&self, revision: u64) -> bool {
        match fence(
            &self.pool,
            revision,
            &self.replica,
            self.settings.lease() * 2,
        )
        .await
        {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!(
                    replica = %self.replica,
                    revision,
                    "the database fence holds a newer lease revision; not firing until it goes stale"
                );
                false
            }
            Err(e) => {
                tracing::warn!(replica = %self.replica, error = %e, "cannot write the leader fence; not firing");
                false
            }
        }
    }
}
