//! Starting a bulk operation (query or mutation) at most once per command and stage, across crashes.
//!
//! The window this closes: Shopify accepts `bulkOperationRunQuery`/`RunMutation`, then the gateway dies (or loses
//! the answer) before the operation's id is committed to `bulk_operations`. Without a trace of the start, the
//! redelivered command (or the start sent again after a lost answer) would start a second operation: from API
//! 2026-01 up to five bulk operations of any type run at once per app and shop, so that second start is accepted and
//! the orphan runs for nothing (before, one per type: it was refused with OPERATION_IN_PROGRESS until the orphan
//! ended). So a start whose answer is lost is not sent again before the operation it may have created is looked for
//! (`Executor::call_once`, then the adoption check below).
//!
//! So a start is recorded before it is sent: a `bulk_starts` row (command, stage, shop, type, and the database's time
//! of its first and of its latest attempt: a start refused OPERATION_IN_PROGRESS is sent again later, and any attempt
//! may be the one Shopify accepted) is committed before each start request, and deleted in the transaction that
//! records the accepted operation in `bulk_operations`. A `bulk_starts` row found on resume means the crash window may
//! have been hit; the command then asks Shopify for the app's current operation of that type and adopts it when it
//! can only be this start's:
//! - its `query` is the text this start sends (the bulk query, or the mutation run for every line);
//! - it was created within this start's window: not before its first attempt (less [`SKEW`]: Shopify's clock is not
//!   the database's and `createdAt` has whole seconds), and not after its latest attempt plus the longest a start
//!   call can take ([`START_CALL_MAX`]);
//! - no row of `bulk_operations` claims it (a unique index keeps two resumed commands from both adopting it);
//! - no other unfinished start of the same shop and type could have created it: none whose attempts' range overlaps
//!   the creation's window. A bulk mutation is stricter still: every command's mutation has the same text but its
//!   own lines, so adopting another's would apply the wrong lines and report their results as ours; it is adopted
//!   only when no other unfinished mutation start of the shop was active within [`START_CALL_MAX`] either side of
//!   the creation, whatever the clocks say. (Not "no other row at all": the row of a command given up on mid-start
//!   stays, and would turn adoption off for the shop for good.)
//!
//! Why that suffices: the gateway is the only starter of bulk operations for this app, and every start it sends is
//! preceded by a committed `bulk_starts` row that stays until the accepted id is recorded. (`currentBulkOperation`
//! names only the app's latest operation of a type: with several running, an earlier one of ours is not found, and a
//! new one is started. Listing them with `bulkOperations(query:)`, 2026-01+, would find it: not done yet.) An unclaimed operation is therefore the work of an unfinished start whose window
//! holds its creation time; when that start is the only candidate, it is ours. When the check cannot tell (another
//! candidate, other text, outside the window), a new operation is started: the old behaviour, slower but never
//! wrong. A bulk mutation's variables (staged upload) are prepared only when a new operation is started, so an
//! adopted mutation is never uploaded or started again.
//!
//! The same check runs when a start is refused with OPERATION_IN_PROGRESS: the executor retries a request whose
//! answer was lost, and the operation in progress may be the one the lost attempt created.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

use crate::shopify::{
    budget::Lane,
    documents,
    executor::{CallError, Executor, Once, Operation, ShopCredentials},
    wire::{
        self,
        bulk::{
            BulkExportStartData, BulkMutationStartData, BulkOperationPoll, BulkStartPayload,
            CurrentBulkOperation,
        },
    },
};

/// Allowed difference between Shopify's `createdAt` (whole seconds) and the database's clock.
pub const SKEW: Duration = Duration::from_secs(5);
/// The longest from committing a start's row to Shopify creating the operation: the budget wait, the executor's
/// retries within their deadline (300 s deployed) and the request timeout, with room. An operation created later
/// is not that start's.
pub const START_CALL_MAX: Duration = Duration::from_secs(15 * 60);

/// Shopify's cost of a bulk start mutation, and of reading the current operation.
const START_COST: f64 = 10.0;
const READ_COST: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkKind {
    Query,
    Mutation,
}

impl BulkKind {
    /// The `BulkOperationType` value (also stored in `bulk_starts.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "QUERY",
            Self::Mutation => "MUTATION",
        }
    }

    fn start_document(self) -> documents::Document {
        match self {
            Self::Query => documents::BULK_EXPORT_START,
            Self::Mutation => documents::BULK_MUTATION_START,
        }
    }

    /// The start's payload from its answer.
    fn payload(self, data: Value) -> Result<Option<BulkStartPayload>, CallError> {
        let document = self.start_document();
        Ok(match self {
            Self::Query => {
                wire::decode::<BulkExportStartData>(document, data)?.bulk_operation_run_query
            }
            Self::Mutation => {
                wire::decode::<BulkMutationStartData>(document, data)?.bulk_operation_run_mutation
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Call(#[from] CallError),
    /// Shopify answered the start with user errors (other than OPERATION_IN_PROGRESS), as JSON.
    #[error("Shopify refused the bulk operation: {0}")]
    Refused(String),
    /// Preparing the start failed (a bulk mutation's staged upload).
    #[error("{0}")]
    Prepare(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// One stage's bulk operation of one command.
pub struct BulkStart<'a> {
    pub executor: &'a Executor,
    pub pool: &'a PgPool,
    pub shop: &'a ShopCredentials,
    pub lane: Lane,
    pub command_id: &'a str,
    pub stage: &'a str,
    pub kind: BulkKind,
    /// What Shopify keeps as the operation's `query`: the bulk query, or the mutation run for every line.
    pub text: &'a str,
    /// Waits between starts refused with OPERATION_IN_PROGRESS.
    pub wait_first: Duration,
    pub wait_max: Duration,
}

/// How a bulk operation ended.
#[derive(Debug)]
pub struct BulkEnd {
    /// COMPLETED, FAILED, CANCELED or EXPIRED.
    pub status: String,
    /// The result file (None: the operation produced no lines).
    pub url: Option<String>,
    /// What a FAILED or CANCELED operation did before it stopped, when Shopify kept it.
    pub partial_url: Option<String>,
    pub error_code: String,
}

impl BulkEnd {
    pub fn completed(&self) -> bool {
        self.status == "COMPLETED"
    }
}

impl BulkStart<'_> {
    /// Polls the operation `bulk_id` until it ends (waits growing from `wait_first` to `wait_max`), records how it
    /// ended on its `bulk_operations` row and returns that. Bulk queries and bulk mutations both end here.
    pub async fn poll_to_end(
        &self,
        bulk_id: &str,
        calls: &mut usize,
    ) -> Result<BulkEnd, StartError> {
        let mut delay = self.wait_first;
        loop {
            let poll = BulkOperationPoll {
                id: bulk_id.to_string(),
            };
            *calls += 1;
            let data = self
                .executor
                .send(self.shop, self.lane, &poll, READ_COST)
                .await?;
            let Some(node) = data.node else {
                return Err(StartError::Refused(format!(
                    "Shopify has no bulk operation {bulk_id}"
                )));
            };
            let status = node.status.as_str();
            // CANCELING is not an end: a mutation keeps applying lines until CANCELED, and only then says (in
            // partialDataUrl) which ran.
            if !matches!(status, "COMPLETED" | "FAILED" | "CANCELED" | "EXPIRED") {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(self.wait_max);
                continue;
            }
            sqlx::query(
                "UPDATE bulk_operations SET status = $3, finished_at = now() WHERE command_id = $1 AND stage = $2",
            )
            .bind(self.command_id)
            .bind(self.stage)
            .bind(status)
            .execute(self.pool)
            .await?;
            return Ok(BulkEnd {
                status: node.status,
                url: node.url,
                partial_url: node.partial_data_url,
                error_code: node.error_code.unwrap_or_else(|| "-".into()),
            });
        }
    }

    /// The id of the command's operation for this stage: the recorded one, the one an interrupted start created
    /// (adopted and recorded), or a new one (started and recorded). `prepare` runs only when a new one is started,
    /// at most once, and returns the start mutation's variables. `calls` counts the Shopify calls made here.
    pub async fn run<F, Fut>(&self, prepare: F, calls: &mut usize) -> Result<String, StartError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value, StartError>>,
    {
        if let Some(id) = self.recorded().await? {
            tracing::info!(bulk_id = %id, stage = self.stage, "resuming a bulk operation started before");
            return Ok(id);
        }
        if let Some(attempts) = self.interrupted_start().await?
            && let Some(id) = self.adopt(attempts, calls).await?
        {
            return Ok(id);
        }
        let variables = prepare().await?;
        let start = Operation {
            document: self.kind.start_document(),
            variables,
            expected_cost: START_COST,
        };
        let mut delay = self.wait_first;
        let deadline = Instant::now() + self.executor.deadline();
        let mut unanswered = 0u32;
        loop {
            let attempts = self.note_attempt().await?;
            *calls += 1;
            // A failed call leaves the start's row: Shopify may have accepted it. An unanswered start is not sent
            // again blindly: from API 2026-01 a shop runs up to five bulk operations at once, so a second start is
            // no longer refused (OPERATION_IN_PROGRESS) while the first runs, and would start a second operation.
            // The operation the lost attempt may have created is looked for first.
            let data = match self
                .executor
                .call_once(self.shop, self.lane, &start)
                .await?
            {
                Once::Answered(data) => data,
                Once::Unanswered(reason) => {
                    unanswered += 1;
                    if let Some(id) = self.adopt(attempts, calls).await? {
                        return Ok(id);
                    }
                    if Instant::now() + delay > deadline {
                        return Err(StartError::Call(CallError::DeadlineExceeded {
                            attempts: unanswered,
                            last: reason,
                        }));
                    }
                    tracing::info!(stage = self.stage, reason = %reason, "bulk start unanswered and no operation of it found; sending it again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.wait_max);
                    continue;
                }
            };
            let payload = self.kind.payload(data)?;
            let (operation, errors) = payload
                .map(|p| (p.bulk_operation, p.user_errors))
                .unwrap_or_default();
            if let Some(operation) = operation {
                let id = operation.id.as_str();
                if !self.record(id).await? {
                    // Shopify's ids are unique and this stage had no row: only a database edited by hand gets here.
                    return Err(StartError::Refused(format!(
                        "bulk operation {id} is already recorded for another command or stage"
                    )));
                }
                tracing::info!(bulk_id = id, stage = self.stage, "bulk operation started");
                return Ok(id.to_string());
            }
            // No room for another bulk operation (one per type before 2026-01, five since): one in progress may
            // be the one a lost answer created; otherwise wait for one to finish.
            if errors.iter().any(|e| e.code() == "OPERATION_IN_PROGRESS") {
                if let Some(id) = self.adopt(attempts, calls).await? {
                    return Ok(id);
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(self.wait_max);
                continue;
            }
            // Refused: nothing was started, so nothing is left to find.
            self.forget().await?;
            let errors = serde_json::to_string(&errors).unwrap_or_default();
            return Err(StartError::Refused(errors));
        }
    }

    /// Whether a start of this stage may have been accepted by Shopify without its outcome being known: one was
    /// sent (its row is there) and not recorded. True when the database cannot tell.
    pub async fn may_have_started(&self) -> bool {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM bulk_starts WHERE command_id = $1 AND stage = $2)",
        )
        .bind(self.command_id)
        .bind(self.stage)
        .fetch_one(self.pool)
        .await
        .unwrap_or(true)
    }

    /// The attempt times of other starts that make adopting an operation created at `created_at` ambiguous: those
    /// that may have sent it, and for a mutation any start active within [`START_CALL_MAX`] either side.
    fn rivals_window(&self, created_at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let (earliest, latest) = senders_window(created_at);
        match self.kind {
            BulkKind::Query => (earliest, latest),
            BulkKind::Mutation => (earliest, created_at + chrono_duration(START_CALL_MAX)),
        }
    }

    async fn recorded(&self) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT bulk_id FROM bulk_operations WHERE command_id = $1 AND stage = $2",
        )
        .bind(self.command_id)
        .bind(self.stage)
        .fetch_optional(self.pool)
        .await
    }

    /// When the attempts of this stage's start were sent, if its outcome was never recorded.
    async fn interrupted_start(&self) -> Result<Option<Attempts>, sqlx::Error> {
        sqlx::query_as(
            "SELECT first_attempted_at, attempted_at FROM bulk_starts WHERE command_id = $1 AND stage = $2",
        )
        .bind(self.command_id)
        .bind(self.stage)
        .fetch_optional(self.pool)
        .await
        .map(|row| row.map(|(first, last)| Attempts { first, last }))
    }

    /// Commits that a start request is about to be sent; returns the range of this start's attempts, this one
    /// included.
    async fn note_attempt(&self) -> Result<Attempts, sqlx::Error> {
        let (first, last) = sqlx::query_as(
            "INSERT INTO bulk_starts (command_id, stage, shop_domain, kind, first_attempted_at, attempted_at) \
             VALUES ($1, $2, $3, $4, now(), now()) \
             ON CONFLICT (command_id, stage) DO UPDATE SET attempted_at = now() \
             RETURNING first_attempted_at, attempted_at",
        )
        .bind(self.command_id)
        .bind(self.stage)
        .bind(&self.shop.domain)
        .bind(self.kind.as_str())
        .fetch_one(self.pool)
        .await?;
        Ok(Attempts { first, last })
    }

    async fn forget(&self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM bulk_starts WHERE command_id = $1 AND stage = $2")
            .bind(self.command_id)
            .bind(self.stage)
            .execute(self.pool)
            .await?;
        Ok(())
    }

    /// Records `id` as this stage's operation and drops the start's row, in one transaction. False when another
    /// row already claims the operation (nothing is changed then).
    async fn record(&self, id: &str) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO bulk_operations (command_id, stage, shop_domain, bulk_id, status) VALUES ($1, $2, $3, $4, 'RUNNING') \
             ON CONFLICT DO NOTHING",
        )
        .bind(self.command_id)
        .bind(self.stage)
        .bind(&self.shop.domain)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM bulk_starts WHERE command_id = $1 AND stage = $2")
            .bind(self.command_id)
            .bind(self.stage)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Adopts the app's current operation of this type when it can only be the one an attempt of this start
    /// created (see the module's comment); returns its id, recorded.
    async fn adopt(
        &self,
        attempts: Attempts,
        calls: &mut usize,
    ) -> Result<Option<String>, StartError> {
        let current = CurrentBulkOperation {
            kind: self.kind.as_str(),
        };
        *calls += 1;
        let data = self
            .executor
            .send(self.shop, self.lane, &current, READ_COST)
            .await?;
        let Some(op) = data.current_bulk_operation else {
            return Ok(None);
        };
        let id = op.id.as_str();
        let Some(created_at) = DateTime::parse_from_rfc3339(&op.created_at)
            .ok()
            .map(|t| t.with_timezone(&Utc))
        else {
            return Ok(None);
        };
        let not_ours = |why: &str| {
            tracing::info!(
                bulk_id = id,
                stage = self.stage,
                why,
                "the current bulk operation is not this start's"
            );
            Ok(None)
        };
        if op.query.trim() != self.text.trim() {
            return not_ours("other text");
        }
        if !attempts.may_have_created(created_at) {
            return not_ours("created outside the start's window");
        }
        let claimed: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM bulk_operations WHERE shop_domain = $1 AND bulk_id = $2)",
        )
        .bind(&self.shop.domain)
        .bind(id)
        .fetch_one(self.pool)
        .await?;
        if claimed {
            return not_ours("recorded for another stage or command");
        }
        // Other unfinished starts of this shop and type that may have created it.
        let (earliest, latest) = self.rivals_window(created_at);
        let rivals: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bulk_starts WHERE shop_domain = $1 AND kind = $2 \
             AND NOT (command_id = $3 AND stage = $4) \
             AND first_attempted_at <= $6 AND attempted_at >= $5",
        )
        .bind(&self.shop.domain)
        .bind(self.kind.as_str())
        .bind(self.command_id)
        .bind(self.stage)
        .bind(earliest)
        .bind(latest)
        .fetch_one(self.pool)
        .await?;
        if rivals > 0 {
            return not_ours("another unfinished start may have created it");
        }
        if !self.record(id).await? {
            return not_ours("claimed by another command meanwhile");
        }
        tracing::warn!(
            bulk_id = id,
            stage = self.stage,
            "adopted the bulk operation an interrupted start created (its id had not been recorded)"
        );
        Ok(Some(id.to_string()))
    }
}

/// The times of one start's attempts: the first and the latest (see the module's comment).
#[derive(Debug, Clone, Copy)]
struct Attempts {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

impl Attempts {
    /// Whether an operation created at `created_at` may come from one of these attempts: one sent within the
    /// creation's window.
    fn may_have_created(&self, created_at: DateTime<Utc>) -> bool {
        let (earliest, latest) = senders_window(created_at);
        self.first <= latest && self.last >= earliest
    }
}

/// When a start that created an operation at `created_at` may have been sent: up to [`START_CALL_MAX`] before, and
/// [`SKEW`] after (the clocks differ).
fn senders_window(created_at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        created_at - chrono_duration(START_CALL_MAX),
        created_at + chrono_duration(SKEW),
    )
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn an_operation_belongs_to_a_start_only_within_its_window() {
        let attempt = at("2026-01-01T10:00:00.700Z");
        let once = Attempts {
            first: attempt,
            last: attempt,
        };
        // createdAt has whole seconds: the same second, truncated, is still the start's.
        assert!(once.may_have_created(at("2026-01-01T10:00:00Z")));
        assert!(once.may_have_created(at("2026-01-01T09:59:56Z")));
        assert!(once.may_have_created(at("2026-01-01T10:14:00Z")));
        assert!(!once.may_have_created(at("2026-01-01T09:59:50Z")));
        assert!(!once.may_have_created(at("2026-01-01T10:20:00Z")));
    }

    #[test]
    fn a_start_sent_again_may_have_created_an_operation_at_any_of_its_attempts() {
        let retried = Attempts {
            first: at("2026-01-01T10:00:00Z"),
            last: at("2026-01-01T10:30:00Z"),
        };
        // Created by the first attempt, though the latest is more than START_CALL_MAX later.
        assert!(retried.may_have_created(at("2026-01-01T10:00:01Z")));
        assert!(retried.may_have_created(at("2026-01-01T10:40:00Z")));
        assert!(!retried.may_have_created(at("2026-01-01T09:59:00Z")));
        assert!(!retried.may_have_created(at("2026-01-01T10:46:00Z")));
    }
}
