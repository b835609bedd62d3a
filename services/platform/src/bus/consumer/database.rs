//! The database as a consumer sees it: reachable, or not. An unreachable database is a state of the infrastructure,
//! not a failure of the message in hand: a message that failed while the database was down is kept (parked, not
//! NAKed, so no delivery is spent), nothing new is pulled, and a probe checks the database every second until it
//! answers; then consuming resumes where it stopped. Before this, a database outage of a few minutes walked messages
//! through every backoff to `max_deliver`, and the last one was lost when its dead-letter insert (same database)
//! failed too.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sqlx::PgPool;
use tokio::sync::Notify;

/// How often a consumer that found its database down checks it again.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long one check may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Database {
    pool: PgPool,
    consumer: String,
    down: AtomicBool,
    back: Notify,
}

impl Database {
    pub(super) fn new(pool: PgPool, consumer: &str) -> Arc<Self> {
        Arc::new(Self {
            pool,
            consumer: consumer.to_string(),
            down: AtomicBool::new(false),
            back: Notify::new(),
        })
    }

    pub(super) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Returns once the database is not known to be down.
    pub(super) async fn wait_up(&self) {
        loop {
            let back = self.back.notified();
            if !self.is_down() {
                return;
            }
            back.await;
        }
    }

    /// Whether the database answers now; if not, it is marked down and probed until it answers again.
    pub(super) async fn check(self: &Arc<Self>) -> bool {
        if self.is_down() {
            return false;
        }
        if ping(&self.pool).await {
            return true;
        }
        self.mark_down();
        false
    }

    /// Marks the database down (the caller saw it fail) and starts the probe that marks it up again.
    pub(super) fn mark_down(self: &Arc<Self>) {
        if self.down.swap(true, Ordering::AcqRel) {
            return;
        }
        metrics::gauge!("bus_consumer_database_down", "consumer" => self.consumer.clone()).set(1.0);
        tracing::warn!(
            consumer = %self.consumer,
            "database unavailable: consumer paused, messages in hand kept; probing every second"
        );
        let this = self.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                if ping(&this.pool).await {
                    break;
                }
            }
            this.down.store(false, Ordering::Release);
            this.back.notify_waiters();
            metrics::gauge!("bus_consumer_database_down", "consumer" => this.consumer.clone())
                .set(0.0);
            tracing::info!(
                consumer = %this.consumer,
                down_secs = started.elapsed().as_secs(),
                "database reachable again: consumer resumed"
            );
        });
    }
}

async fn ping(pool: &PgPool) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(pool)).await,
        Ok(Ok(_))
    )
}
