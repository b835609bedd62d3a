//! The state of Import Listings runs in the listings database, and every transition of it, each in the caller's
//! transaction together with the reports it causes:
//!
//! ```text
//!   RunRequested ──> exporting ──(result + every batch staged)──> applying ──(last batch applied)──> finished
//!                       │  (gateway FAILED, timeout, disabled, cancel)              │ (cancel, batch keeps failing)
//!                       └──────────────────────────> finished <─────────────────────┘
//! ```
//!
//! Whoever changes a run's state locks its row (`FOR UPDATE`). Batches are applied by several workers at once, each
//! batch transaction holding the run's advisory lock in shared mode ([`shared`]); ending a run that is applying takes
//! it exclusively ([`exclusive`]), so a cancellation waits for the batches being applied and then reports the run's
//! true counters, and no batch is applied after a run finished. A finished run stays finished.

use std::time::Duration;

use serde_json::{Value, json};
use shopbridge_platform::bus::{EventMeta, OutboxMessage, names, outbox};
use shopbridge_proto::{gateway as gw, runs as pb};
use sqlx::{PgPool, Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;

use super::{
    matching::{self, Counters, RunContext},
    problems::{self, Problem},
    reports::{self, RunRef},
};
use crate::import_settings::{self, ImportMode, MasterSkuField};

type Tx<'a> = Transaction<'a, Postgres>;

/// Command ids of this service's exports: derived from the run id, so a re-sent command is the same command.
pub const COMMAND_PREFIX: &str = "import-listings:";

pub fn command_id(run: Uuid) -> String {
    format!("{COMMAND_PREFIX}{run}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Exporting,
    Applying,
    Finished,
}

impl State {
    fn parse(text: &str) -> Self {
        match text {
            "exporting" => Self::Exporting,
            "applying" => Self::Applying,
            _ => Self::Finished,
        }
    }
}

/// A run as its row holds it.
#[derive(Debug, Clone)]
pub struct Run {
    pub reference: RunRef,
    pub context: RunContext,
    pub state: State,
    pub applied_batches: i32,
    pub total_batches: i32,
    pub total_variants: u64,
    pub counters: Counters,
    pub report_seq: u64,
}

fn counters(row: &PgRow) -> Counters {
    let get = |c: &str| row.get::<i64, _>(c).max(0) as u64;
    Counters {
        processed: get("processed"),
        created: get("created"),
        linked: get("linked"),
        updated: get("updated"),
        skipped: get("skipped"),
        failed: get("failed"),
    }
}

const RUN_COLUMNS: &str = "run_id, tenant_id, channel_id, mode, master_sku_field, pause_new_listings, state, \
     applied_batches, total_batches, total_variants, processed, created, linked, updated, skipped, failed, report_seq";

fn run(row: &PgRow) -> Run {
    let run_id: Uuid = row.get("run_id");
    Run {
        reference: RunRef {
            run_id,
            tenant_id: row.get("tenant_id"),
            channel_id: row.get("channel_id"),
        },
        context: RunContext {
            run_id,
            mode: ImportMode::parse(row.get("mode")).unwrap_or(ImportMode::CreateOnly),
            master_sku_field: MasterSkuField::parse(row.get("master_sku_field"))
                .unwrap_or(MasterSkuField::Sku),
            pause_new_listings: row.get("pause_new_listings"),
        },
        state: State::parse(row.get("state")),
        applied_batches: row.get("applied_batches"),
        total_batches: row.get::<Option<i32>, _>("total_batches").unwrap_or(0),
        total_variants: row.get::<i64, _>("total_variants").max(0) as u64,
        counters: counters(row),
        report_seq: row.get::<i64, _>("report_seq").max(0) as u64,
    }
}

/// The run, locked for the rest of the transaction.
pub async fn lock(tx: &mut Tx<'_>, run_id: Uuid) -> sqlx::Result<Option<Run>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM import_runs WHERE run_id = $1 FOR UPDATE"
    )))
    .bind(run_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.as_ref().map(run))
}

/// The run as committed, not locked.
pub async fn read(tx: &mut Tx<'_>, run_id: Uuid) -> sqlx::Result<Option<Run>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM import_runs WHERE run_id = $1"
    )))
    .bind(run_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.as_ref().map(run))
}

const ADVISORY_KEY: &str = "SELECT hashtextextended('listings-import-run:' || $1::text, 0)";

/// Held by every batch transaction of the run, until it ends.
pub async fn shared(tx: &mut Tx<'_>, run_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT pg_advisory_xact_lock_shared(({ADVISORY_KEY}))"
    )))
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Waits for the run's batch transactions to end and keeps new ones out until this transaction ends.
pub async fn exclusive(tx: &mut Tx<'_>, run_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT pg_advisory_xact_lock(({ADVISORY_KEY}))"
    )))
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What a RunRequested for Import Listings asks.
#[derive(Debug, Clone)]
pub struct Requested {
    pub run: RunRef,
    pub shop_domain: String,
}

/// Starts a run: records it with the channel's settings as they are now, and asks the gateway for the catalog
/// (the command goes through the outbox, so it is sent if and only if the run row commits). A run id seen before
/// (a redelivery, or a run cancelled before it was requested) changes nothing.
pub async fn request(tx: &mut Tx<'_>, requested: &Requested) -> sqlx::Result<()> {
    let run = &requested.run;
    // Requests of one channel take turns, so two never both find no other run active.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("listings-import:{}", run.channel_id))
        .execute(&mut **tx)
        .await?;
    let settings = import_settings::get(&mut **tx, run.tenant_id, run.channel_id).await?;
    let inserted = sqlx::query(
        "INSERT INTO import_runs (run_id, tenant_id, channel_id, shop_domain, command_id, mode, master_sku_field,
                                  pause_new_listings, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'exporting') ON CONFLICT (run_id) DO NOTHING",
    )
    .bind(run.run_id)
    .bind(run.tenant_id)
    .bind(run.channel_id)
    .bind(&requested.shop_domain)
    .bind(command_id(run.run_id))
    .bind(settings.mode.as_str())
    .bind(settings.master_sku_field.as_str())
    .bind(settings.pause_new_listings)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        tracing::info!(run_id = %run.run_id, "run requested before; nothing to do");
        return Ok(());
    }
    let channel = run.channel_id.to_string();
    if !settings.enabled {
        let problem = problems::import_disabled(&channel);
        let error = problem.message.clone();
        return finish(tx, run, pb::Outcome::Failed, &error, vec![problem]).await;
    }
    let other: Option<Uuid> = sqlx::query_scalar(
        "SELECT run_id FROM import_runs
         WHERE tenant_id = $1 AND channel_id = $2 AND state <> 'finished' AND run_id <> $3 LIMIT 1",
    )
    .bind(run.tenant_id)
    .bind(run.channel_id)
    .bind(run.run_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(other) = other {
        let problem = problems::already_running(&channel, &other.to_string());
        let error = problem.message.clone();
        return finish(tx, run, pb::Outcome::Failed, &error, vec![problem]).await;
    }
    let command = gw::Command {
        command_id: command_id(run.run_id),
        shop_domain: requested.shop_domain.clone(),
        channel_id: channel.clone(),
        lane: gw::Lane::Import as i32,
        operation: Some(gw::command::Operation::ExportCatalog(gw::ExportCatalog {})),
    };
    let meta = EventMeta::tenant(run.tenant_id.to_string())
        .with_channel(channel)
        .with_correlation(run.run_id.to_string());
    outbox::enqueue(
        tx,
        OutboxMessage::to_subject(
            names::command_subject::<gw::Command>(&requested.shop_domain, "import"),
            meta,
            &command,
        ),
    )
    .await?;
    reports::started(tx, run).await?;
    report_progress(
        tx,
        run,
        &Counters::default(),
        0,
        "exporting the catalog from Shopify",
    )
    .await?;
    tracing::info!(run_id = %run.run_id, shop = %requested.shop_domain, mode = settings.mode.as_str(),
        master_sku_field = settings.master_sku_field.as_str(), "import run started; catalog export requested");
    Ok(())
}

/// Takes the next report seq of the run and publishes a RunProgress with it.
async fn report_progress(
    tx: &mut Tx<'_>,
    run: &RunRef,
    counters_so_far: &Counters,
    total: u64,
    stage: &str,
) -> sqlx::Result<()> {
    let seq: i64 = sqlx::query_scalar(
        "UPDATE import_runs SET report_seq = report_seq + 1 WHERE run_id = $1 RETURNING report_seq",
    )
    .bind(run.run_id)
    .fetch_one(&mut **tx)
    .await?;
    reports::progress(
        tx,
        run,
        seq.max(0) as u64,
        counters_so_far,
        total,
        stage.to_string(),
    )
    .await
}

/// Ends a run that is not finished yet (the caller holds its lock or just created it): its log entries, its
/// RunFinished with the counters it reached, and its staged batches deleted.
pub async fn finish(
    tx: &mut Tx<'_>,
    run: &RunRef,
    outcome: pb::Outcome,
    error: &str,
    problems: Vec<Problem>,
) -> sqlx::Result<()> {
    let outcome_name = match outcome {
        pb::Outcome::Succeeded => "succeeded",
        pb::Outcome::Partial => "partial",
        pb::Outcome::Failed => "failed",
        pb::Outcome::Cancelled => "cancelled",
        pb::Outcome::Unspecified => "unspecified",
    };
    let row = sqlx::query(
        "UPDATE import_runs SET state = 'finished', outcome = $2, error = $3, finished_at = now()
         WHERE run_id = $1
         RETURNING processed, created, linked, updated, skipped, failed",
    )
    .bind(run.run_id)
    .bind(outcome_name)
    .bind(error)
    .fetch_one(&mut **tx)
    .await?;
    let at_end = counters(&row);
    reports::logged(tx, run, problems).await?;
    reports::finished(tx, run, outcome, &at_end, error).await?;
    delete_staged(tx, run.run_id).await?;
    tracing::info!(run_id = %run.run_id, outcome = outcome_name, created = at_end.created, linked = at_end.linked,
        updated = at_end.updated, failed = at_end.failed, "import run finished");
    metrics::counter!("listings_import_runs_total", "outcome" => outcome_name).increment(1);
    Ok(())
}

async fn delete_staged(tx: &mut Tx<'_>, run_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM import_batches WHERE run_id = $1")
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM import_claims WHERE run_id = $1")
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// RunCancelRequested: an unfinished run finishes CANCELLED (after the batch being applied, whose lock it waits
/// for); a run not seen yet is recorded as cancelled, so its request, if it comes later, starts nothing.
pub async fn cancel(tx: &mut Tx<'_>, run: &RunRef) -> sqlx::Result<()> {
    exclusive(tx, run.run_id).await?;
    for _ in 0..2 {
        match lock(tx, run.run_id).await? {
            Some(existing) if existing.reference.tenant_id != run.tenant_id => {
                tracing::warn!(run_id = %run.run_id, "cancellation names another tenant than the run; ignored");
                return Ok(());
            }
            Some(existing) if existing.state == State::Finished => return Ok(()),
            Some(existing) => {
                return finish(
                    tx,
                    &existing.reference,
                    pb::Outcome::Cancelled,
                    "",
                    Vec::new(),
                )
                .await;
            }
            None => {
                let inserted = sqlx::query(
                    "INSERT INTO import_runs (run_id, tenant_id, channel_id, shop_domain, command_id, mode,
                                              master_sku_field, pause_new_listings, state, outcome, finished_at)
                     VALUES ($1, $2, $3, '', $4, 'create_only', 'sku', false, 'finished', 'cancelled', now())
                     ON CONFLICT (run_id) DO NOTHING",
                )
                .bind(run.run_id)
                .bind(run.tenant_id)
                .bind(run.channel_id)
                .bind(command_id(run.run_id))
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return reports::finished(
                        tx,
                        run,
                        pb::Outcome::Cancelled,
                        &Counters::default(),
                        "",
                    )
                    .await;
                }
                // Requested meanwhile: lock it and finish it.
            }
        }
    }
    Ok(())
}

/// The run a command id of ours belongs to, with its state and master SKU field (not locked).
pub async fn by_command(
    tx: &mut Tx<'_>,
    command_id: &str,
) -> sqlx::Result<Option<(Uuid, State, MasterSkuField)>> {
    let row = sqlx::query(
        "SELECT run_id, state, master_sku_field FROM import_runs WHERE command_id = $1",
    )
    .bind(command_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| {
        (
            r.get("run_id"),
            State::parse(r.get("state")),
            MasterSkuField::parse(r.get("master_sku_field")).unwrap_or(MasterSkuField::Sku),
        )
    }))
}

/// Keeps a catalog batch until the run is applied, with the master SKUs it holds (for duplicates). A batch staged
/// before (redelivered, or re-sent under another message id) changes nothing.
pub async fn stage_batch(
    tx: &mut Tx<'_>,
    run_id: Uuid,
    field: MasterSkuField,
    batch: &gw::CatalogBatch,
) -> sqlx::Result<bool> {
    use prost::Message;
    let variants: usize = batch.products.iter().map(|p| p.variants.len()).sum();
    let staged = sqlx::query(
        "INSERT INTO import_batches (run_id, seq, total_batches, variants, payload) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (run_id, seq) DO NOTHING",
    )
    .bind(run_id)
    .bind(batch.seq as i32)
    .bind(batch.total_batches as i32)
    .bind(variants as i32)
    .bind(batch.encode_to_vec())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if staged == 0 {
        return Ok(false);
    }
    let claims: Vec<Value> = batch
        .products
        .iter()
        .flat_map(|p| p.variants.iter())
        .filter_map(|v| {
            let sku = matching::master_sku(field, v);
            (!sku.is_empty()).then(|| json!({"id": v.id, "sku": sku}))
        })
        .collect();
    if !claims.is_empty() {
        sqlx::query(
            "INSERT INTO import_claims (run_id, shopify_variant_id, master_sku)
             SELECT $1, x.id, x.sku FROM jsonb_to_recordset($2) AS x(id text, sku text)
             ON CONFLICT DO NOTHING",
        )
        .bind(run_id)
        .bind(Value::Array(claims))
        .execute(&mut **tx)
        .await?;
    }
    Ok(true)
}

/// The gateway's answer to the export. FAILED finishes the run with the merchant's error; otherwise the run waits
/// for its batches (see [`promote_ready`]).
pub async fn record_result(
    tx: &mut Tx<'_>,
    run_id: Uuid,
    result: &gw::CommandResult,
) -> sqlx::Result<()> {
    let Some(run) = lock(tx, run_id).await? else {
        return Ok(());
    };
    if run.state != State::Exporting {
        return Ok(());
    }
    let status = gw::command_result::Status::try_from(result.status)
        .unwrap_or(gw::command_result::Status::Unspecified);
    if status == gw::command_result::Status::Failed {
        let (error, problem) =
            problems::export_failed(&run.reference.channel_id.to_string(), &result.problems);
        return finish(
            tx,
            &run.reference,
            pb::Outcome::Failed,
            &error,
            vec![problem],
        )
        .await;
    }
    sqlx::query(
        "UPDATE import_runs SET result_status = $2, result_at = now()
         WHERE run_id = $1 AND result_status IS NULL",
    )
    .bind(run_id)
    .bind(status.as_str_name())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves runs whose export is complete (the result came and every batch 1..total_batches is staged; or the result
/// came `empty_grace` ago with no batch at all) to applying. Returns whether any moved.
pub async fn promote_ready(pool: &PgPool, empty_grace: Duration) -> sqlx::Result<bool> {
    let candidates: Vec<Uuid> = sqlx::query_scalar(
        "SELECT run_id FROM import_runs WHERE state = 'exporting' AND result_status IS NOT NULL",
    )
    .fetch_all(pool)
    .await?;
    let mut promoted = false;
    for run_id in candidates {
        let mut tx = pool.begin().await?;
        let Some(run) = lock(&mut tx, run_id).await? else {
            continue;
        };
        if run.state != State::Exporting {
            continue;
        }
        let stats = sqlx::query(
            "SELECT count(*) AS staged, COALESCE(max(b.total_batches), 0) AS total, COALESCE(max(b.seq), 0) AS last,
                    COALESCE(sum(b.variants), 0)::bigint AS variants,
                    bool_or(r.result_at < now() - make_interval(secs => $2)) AS grace_over
             FROM import_runs r LEFT JOIN import_batches b ON b.run_id = r.run_id
             WHERE r.run_id = $1 GROUP BY r.run_id",
        )
        .bind(run_id)
        .bind(empty_grace.as_secs_f64())
        .fetch_one(&mut *tx)
        .await?;
        let staged: i64 = stats.get("staged");
        let total: i32 = stats.get("total");
        let last: i32 = stats.get("last");
        let variants: i64 = stats.get("variants");
        let grace_over: bool = stats.get::<Option<bool>, _>("grace_over").unwrap_or(false);
        let complete = (total > 0 && staged == i64::from(total) && last == total)
            || (staged == 0 && grace_over);
        if !complete {
            continue;
        }
        sqlx::query(
            "UPDATE import_runs SET state = 'applying', total_batches = $2, total_variants = $3 WHERE run_id = $1",
        )
        .bind(run_id)
        .bind(total)
        .bind(variants)
        .execute(&mut *tx)
        .await?;
        report_progress(
            &mut tx,
            &run.reference,
            &run.counters,
            variants.max(0) as u64,
            &format!("applying the catalog: {total} batches, {variants} variants"),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(%run_id, batches = total, variants, "catalog export complete; applying");
        promoted = true;
    }
    Ok(promoted)
}

/// Runs being applied (by any replica).
pub async fn applying(pool: &PgPool) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT run_id FROM import_runs WHERE state = 'applying' ORDER BY requested_at",
    )
    .fetch_all(pool)
    .await
}

/// Records an applied batch in its transaction: adds its counters to the run's and reports them. None when the run
/// is no longer being applied (the caller rolls the batch back). Concurrent batches take turns on the run's row
/// here, at the end of their transactions, so reports go out in the order of their seq.
pub async fn applied(
    tx: &mut Tx<'_>,
    run: &RunRef,
    batch_counters: &Counters,
    problems: Vec<Problem>,
) -> sqlx::Result<Option<()>> {
    let c = batch_counters;
    let row = sqlx::query(
        "UPDATE import_runs SET applied_batches = applied_batches + 1, processed = processed + $2,
                created = created + $3, linked = linked + $4, updated = updated + $5, skipped = skipped + $6,
                failed = failed + $7, report_seq = report_seq + 1
         WHERE run_id = $1 AND state = 'applying'
         RETURNING applied_batches, total_batches, total_variants, report_seq,
                   processed, created, linked, updated, skipped, failed",
    )
    .bind(run.run_id)
    .bind(c.processed as i64)
    .bind(c.created as i64)
    .bind(c.linked as i64)
    .bind(c.updated as i64)
    .bind(c.skipped as i64)
    .bind(c.failed as i64)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let total = counters(&row);
    let applied: i32 = row.get("applied_batches");
    let batches: Option<i32> = row.get("total_batches");
    reports::logged(tx, run, problems).await?;
    reports::progress(
        tx,
        run,
        row.get::<i64, _>("report_seq").max(0) as u64,
        &total,
        row.get::<i64, _>("total_variants").max(0) as u64,
        format!("applied {applied} of {} batches", batches.unwrap_or(0)),
    )
    .await?;
    Ok(Some(()))
}

/// Fails runs whose export never completed, and deletes what late batches left of finished runs.
pub async fn sweep(pool: &PgPool, export_timeout: Duration) -> sqlx::Result<()> {
    let stale: Vec<Uuid> = sqlx::query_scalar(
        "SELECT run_id FROM import_runs
         WHERE state = 'exporting' AND requested_at < now() - make_interval(secs => $1)",
    )
    .bind(export_timeout.as_secs_f64())
    .fetch_all(pool)
    .await?;
    for run_id in stale {
        let mut tx = pool.begin().await?;
        if let Some(run) = lock(&mut tx, run_id).await?
            && run.state == State::Exporting
        {
            let problem =
                problems::export_timeout(&run.reference.channel_id.to_string(), export_timeout);
            let error = problem.message.clone();
            finish(
                &mut tx,
                &run.reference,
                pb::Outcome::Failed,
                &error,
                vec![problem],
            )
            .await?;
        }
        tx.commit().await?;
    }
    sqlx::query(
        "DELETE FROM import_batches b USING import_runs r WHERE b.run_id = r.run_id AND r.state = 'finished'",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "DELETE FROM import_claims c USING import_runs r WHERE c.run_id = r.run_id AND r.state = 'finished'",
    )
    .execute(pool)
    .await?;
    Ok(())
}
