//! Claims on running commands (`command_claims`): a command is claimed in a committed statement before any Shopify
//! call, heartbeated while it runs, and ended with its result (or released when dropped without one). A second delivery of a command whose claim is live
//! (a re-send while the first runs) waits; one whose claim stopped beating (its replica died or hung) takes it over.

use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;

/// This process's claims: who owns them, and when a silent claim may be taken over.
#[derive(Debug, Clone)]
pub struct Claims {
    pool: PgPool,
    owner: String,
    takeover: Duration,
}

/// A held claim: heartbeated until dropped, and then released. The row goes with the result (in its transaction);
/// a claim dropped without one (the command failed, or its run was aborted: a lease released past its deadline) is
/// deleted at once, so the next delivery need not wait out the takeover age. Only a process that died leaves a claim
/// behind.
pub struct Claim {
    heartbeat: JoinHandle<()>,
    pool: PgPool,
    owner: String,
    command_id: String,
    /// Its row is deleted in the result's transaction: nothing to release on drop.
    finished: bool,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if self.finished {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (pool, owner, id) = (
            self.pool.clone(),
            std::mem::take(&mut self.owner),
            std::mem::take(&mut self.command_id),
        );
        runtime.spawn(async move { release(&pool, &owner, &id).await });
    }
}

/// Deletes a claim of its owner's.
const DELETE: &str = "DELETE FROM command_claims WHERE command_id = $1 AND owner = $2";

async fn release(pool: &PgPool, owner: &str, command_id: &str) {
    let released = sqlx::query(DELETE)
        .bind(command_id)
        .bind(owner)
        .execute(pool)
        .await;
    if let Err(e) = released {
        tracing::warn!(%command_id, error = %e, "releasing a command claim failed; it lapses by its age");
    }
}

impl Claims {
    pub fn new(pool: PgPool, takeover: Duration) -> Self {
        Self {
            pool,
            owner: uuid::Uuid::now_v7().to_string(),
            takeover,
        }
    }

    /// Claims `command_id` for this process: a new claim, or one whose heartbeat is older than the takeover age. None
    /// when a live owner holds it (this process included: a re-send arriving while the first send runs waits).
    pub async fn claim(&self, command_id: &str) -> Result<Option<Claim>, sqlx::Error> {
        let claimed: Option<String> = sqlx::query_scalar(
            "INSERT INTO command_claims (command_id, owner) VALUES ($1, $2) \
             ON CONFLICT (command_id) DO UPDATE SET owner = $2, claimed_at = now(), heartbeat_at = now() \
             WHERE command_claims.heartbeat_at < now() - make_interval(secs => $3) \
             RETURNING owner",
        )
        .bind(command_id)
        .bind(&self.owner)
        .bind(self.takeover.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        if claimed.is_none() {
            return Ok(None);
        }
        let (pool, owner, id) = (
            self.pool.clone(),
            self.owner.clone(),
            command_id.to_string(),
        );
        let every = self.takeover / 4;
        let heartbeat = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                ticker.tick().await;
                let beat = sqlx::query(
                    "UPDATE command_claims SET heartbeat_at = now() WHERE command_id = $1 AND owner = $2",
                )
                .bind(&id)
                .bind(&owner)
                .execute(&pool)
                .await;
                if let Err(e) = beat {
                    // A missed beat is not fatal: the takeover age is four beats.
                    tracing::warn!(command_id = %id, error = %e, "command claim heartbeat failed");
                }
            }
        });
        Ok(Some(Claim {
            heartbeat,
            pool: self.pool.clone(),
            owner: self.owner.clone(),
            command_id: command_id.to_string(),
            finished: false,
        }))
    }
}

impl Claim {
    /// Ends the claim with the command's result, in the transaction that records it. Should that transaction not
    /// commit, the row stays and the next delivery takes it over once its heartbeat is older than the takeover age.
    pub async fn finish(mut self, tx: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
        self.finished = true;
        sqlx::query(DELETE)
            .bind(&self.command_id)
            .bind(&self.owner)
            .execute(tx)
            .await
            .map(|_| ())
    }
}
