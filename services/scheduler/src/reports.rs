//! What the owners of operations report about runs (consumer `scheduler-run-reports`, through the inbox): started,
//! progress, log entries, finished. Reports may come twice or out of order, so each is applied as a rule that holds
//! whatever came before: progress keeps the highest `seq`, log entries are stored once per key, a finished run stays
//! finished, and a start never moves a run backwards.

use chrono::Utc;
use prost::{Message, Name};
use shopbridge_platform::bus::{Decode, Envelope, Handler, HandlerError, envelope::DecodeError};
use shopbridge_proto::runs::{self, Outcome, RunFinished, RunLogged, RunProgress, RunStarted};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::{
    convert,
    domain::{Operation, RunStatus},
    metrics, runlog,
};

/// One of the four reports.
#[derive(Debug, Clone)]
pub enum RunReport {
    Started(RunStarted),
    Progress(RunProgress),
    Logged(RunLogged),
    Finished(RunFinished),
}

fn decode_as<M: Message + Default>(type_name: &str, payload: &[u8]) -> Result<M, DecodeError> {
    M::decode(payload).map_err(|source| DecodeError::Payload {
        type_name: type_name.to_string(),
        source,
    })
}

impl Decode for RunReport {
    fn decode(type_name: &str, payload: &[u8]) -> Result<Self, DecodeError> {
        Ok(match type_name {
            t if t == RunStarted::full_name() => RunReport::Started(decode_as(t, payload)?),
            t if t == RunProgress::full_name() => RunReport::Progress(decode_as(t, payload)?),
            t if t == RunLogged::full_name() => RunReport::Logged(decode_as(t, payload)?),
            t if t == RunFinished::full_name() => RunReport::Finished(decode_as(t, payload)?),
            other => return Err(DecodeError::UnexpectedType(other.to_string())),
        })
    }
}

impl RunReport {
    fn ids(&self) -> (&str, &str) {
        match self {
            RunReport::Started(m) => (&m.run_id, &m.tenant_id),
            RunReport::Progress(m) => (&m.run_id, &m.tenant_id),
            RunReport::Logged(m) => (&m.run_id, &m.tenant_id),
            RunReport::Finished(m) => (&m.run_id, &m.tenant_id),
        }
    }
}

pub struct ReportHandler;

impl Handler for ReportHandler {
    type Message = RunReport;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<RunReport>,
    ) -> Result<(), HandlerError> {
        apply(tx, &event.message).await
    }
}

fn reject(message: String) -> HandlerError {
    HandlerError::Reject(anyhow::anyhow!(message))
}

fn retry(e: sqlx::Error) -> HandlerError {
    HandlerError::Retry(e.into())
}

const IN_PROGRESS: &str = "status IN ('REQUESTED', 'RUNNING', 'CANCELLING')";

/// Applies one report in the consumer's transaction.
pub async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    report: &RunReport,
) -> Result<(), HandlerError> {
    let (run_id, tenant_id) = report.ids();
    let run_id = Uuid::parse_str(run_id).map_err(|_| {
        reject(format!(
            "run report with a run_id that is not a UUID: `{run_id}`"
        ))
    })?;
    let known: Option<(String, String)> =
        sqlx::query_as("SELECT tenant_id, operation FROM runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(retry)?;
    let Some((owner_tenant, operation)) = known else {
        // A run this registry never had, or one deleted by retention before its last report: nothing to update.
        tracing::warn!(%run_id, "report for an unknown run; ignored");
        return Ok(());
    };
    if owner_tenant != tenant_id {
        return Err(reject(format!(
            "report for run {run_id} names another tenant than the run's"
        )));
    }
    let now = Utc::now();
    match report {
        RunReport::Started(m) => {
            let started_at = m
                .started_at
                .as_ref()
                .and_then(convert::from_timestamp)
                .unwrap_or(now);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE runs SET status = CASE WHEN status = 'REQUESTED' THEN 'RUNNING' ELSE status END,
                                 started_at = COALESCE(started_at, $2), version = version + 1
                 WHERE run_id = $1 AND {IN_PROGRESS} AND (status = 'REQUESTED' OR started_at IS NULL)"
            )))
            .bind(run_id)
            .bind(started_at)
            .execute(&mut **tx)
            .await
            .map_err(retry)?;
        }
        RunReport::Progress(m) => {
            let at =
                m.at.as_ref()
                    .and_then(convert::from_timestamp)
                    .unwrap_or(now);
            let c = m.counters.unwrap_or_default();
            // Progress implies the run started, even if RunStarted has not arrived yet.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE runs SET progress_seq = $2, processed = $3, created = $4, linked = $5, updated = $6,
                                 skipped = $7, failed = $8, total = $9, stage = $10,
                                 status = CASE WHEN status = 'REQUESTED' THEN 'RUNNING' ELSE status END,
                                 started_at = COALESCE(started_at, $11), version = version + 1
                 WHERE run_id = $1 AND {IN_PROGRESS} AND progress_seq < $2"
            )))
            .bind(run_id)
            .bind(big(m.seq))
            .bind(big(c.processed))
            .bind(big(c.created))
            .bind(big(c.linked))
            .bind(big(c.updated))
            .bind(big(c.skipped))
            .bind(big(c.failed))
            .bind(big(m.total))
            .bind(&m.stage)
            .bind(at)
            .execute(&mut **tx)
            .await
            .map_err(retry)?;
        }
        RunReport::Logged(m) => {
            let (warnings, errors) = runlog::append(tx, run_id, &m.entries, now)
                .await
                .map_err(retry)?;
            if warnings + errors > 0 {
                sqlx::query(
                    "UPDATE runs SET warnings = warnings + $2, errors = errors + $3, version = version + 1
                     WHERE run_id = $1",
                )
                .bind(run_id)
                .bind(warnings)
                .bind(errors)
                .execute(&mut **tx)
                .await
                .map_err(retry)?;
            }
        }
        RunReport::Finished(m) => {
            let outcome = Outcome::try_from(m.outcome).unwrap_or(Outcome::Unspecified);
            let Some(status) = RunStatus::from_outcome(outcome) else {
                return Err(reject(format!(
                    "RunFinished for run {run_id} without an outcome"
                )));
            };
            // Counted only when this report finished the run (a duplicate, or a late one, changes nothing).
            if finish(tx, run_id, status, m, now).await?
                && let Some(op) = Operation::parse(&operation)
            {
                metrics::run_finished(op, status);
            }
        }
    }
    Ok(())
}

async fn finish(
    tx: &mut Transaction<'static, Postgres>,
    run_id: Uuid,
    status: RunStatus,
    m: &RunFinished,
    now: chrono::DateTime<Utc>,
) -> Result<bool, HandlerError> {
    let finished_at = m
        .finished_at
        .as_ref()
        .and_then(convert::from_timestamp)
        .unwrap_or(now);
    // The final counters replace the last progress, when the owner sent them.
    let c: Option<runs::Counters> = m.counters;
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE runs SET status = $2, finished_at = $3, error = $4,
                         processed = COALESCE($5, processed), created = COALESCE($6, created),
                         linked = COALESCE($7, linked), updated = COALESCE($8, updated),
                         skipped = COALESCE($9, skipped), failed = COALESCE($10, failed),
                         version = version + 1
         WHERE run_id = $1 AND {IN_PROGRESS}"
    )))
    .bind(run_id)
    .bind(status.as_str())
    .bind(finished_at)
    .bind(&m.error)
    .bind(c.as_ref().map(|c| big(c.processed)))
    .bind(c.as_ref().map(|c| big(c.created)))
    .bind(c.as_ref().map(|c| big(c.linked)))
    .bind(c.as_ref().map(|c| big(c.updated)))
    .bind(c.as_ref().map(|c| big(c.skipped)))
    .bind(c.as_ref().map(|c| big(c.failed)))
    .execute(&mut **tx)
    .await
    .map_err(retry)?;
    Ok(done.rows_affected() == 1)
}

fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
