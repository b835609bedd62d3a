//! Applies one staged batch of a run in one transaction: the batch claimed (`FOR UPDATE SKIP LOCKED`, so several
//! workers apply different batches at once), what the catalog holds for its SKUs read (the listings it may change
//! locked, in id order), the plan made ([`super::matching`]), the writes, the batch marked applied, and the run's
//! counters and reports (RunLogged, RunProgress) through the outbox. A crash anywhere rolls the batch back whole and
//! leaves it to the next worker: each batch is applied exactly once. The matching rules do not depend on the order
//! batches are applied in (duplicates are known for the whole export; a listing's parent data follows one product).
//! When no batch is left, the run is finished under the run's exclusive lock, after the last batch committed.

use std::collections::HashMap;

use prost::Message;
use shopbridge_proto::{gateway as gw, runs as pb};
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use super::{
    matching::{self, Known, Plan},
    runs::{self, Run, State},
};
use crate::catalog::{read, write};

/// What one call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A batch was applied; there may be more.
    Applied,
    /// Every batch left is being applied by another worker.
    Busy,
    /// The run is finished (now or before), or is not being applied (cancelled, gone).
    Done,
}

pub async fn apply_next(pool: &PgPool, run_id: Uuid) -> anyhow::Result<Step> {
    let mut tx = pool.begin().await?;
    runs::shared(&mut tx, run_id).await?;
    let Some(run) = runs::read(&mut tx, run_id).await? else {
        return Ok(Step::Done);
    };
    if run.state != State::Applying {
        return Ok(Step::Done);
    }
    let claimed = sqlx::query(
        "SELECT seq, payload FROM import_batches WHERE run_id = $1 AND applied_at IS NULL
         ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .bind(run_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(claimed) = claimed else {
        tx.rollback().await?;
        return finish_if_complete(pool, run_id).await;
    };
    let seq: i32 = claimed.get("seq");
    let payload: Vec<u8> = claimed.get("payload");
    let batch = gw::CatalogBatch::decode(payload.as_slice())
        .map_err(|e| anyhow::anyhow!("staged batch {seq} of run {run_id} does not decode: {e}"))?;
    let started = std::time::Instant::now();
    let plan = plan(&mut tx, &run, &batch.products).await?;
    let planned = started.elapsed();
    write_plan(&mut tx, &run, &plan).await?;
    let written = started.elapsed();
    sqlx::query("UPDATE import_batches SET applied_at = now() WHERE run_id = $1 AND seq = $2")
        .bind(run_id)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    let counters = plan.counters;
    if runs::applied(&mut tx, &run.reference, &counters, plan.problems)
        .await?
        .is_none()
    {
        tx.rollback().await?;
        return Ok(Step::Done);
    }
    tx.commit().await?;
    metrics::counter!("listings_import_variants_total").increment(counters.processed);
    metrics::histogram!("listings_import_batch_seconds").record(started.elapsed().as_secs_f64());
    tracing::debug!(%run_id, seq, processed = counters.processed, created = counters.created,
        linked = counters.linked, failed = counters.failed, plan_ms = planned.as_millis() as u64,
        write_ms = (written - planned).as_millis() as u64, total_ms = started.elapsed().as_millis() as u64,
        "batch applied");
    Ok(Step::Applied)
}

/// Finishes the run once every batch is applied and committed (the exclusive lock waits for the others).
async fn finish_if_complete(pool: &PgPool, run_id: Uuid) -> anyhow::Result<Step> {
    let mut tx = pool.begin().await?;
    runs::exclusive(&mut tx, run_id).await?;
    let Some(run) = runs::lock(&mut tx, run_id).await? else {
        return Ok(Step::Done);
    };
    if run.state != State::Applying {
        return Ok(Step::Done);
    }
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM import_batches WHERE run_id = $1 AND applied_at IS NULL",
    )
    .bind(run_id)
    .fetch_one(&mut *tx)
    .await?;
    if left > 0 {
        // Claimed by a worker whose transaction is still open, or rolled back after a failure: not finished.
        return Ok(Step::Busy);
    }
    let outcome = if run.counters.failed > 0 {
        pb::Outcome::Partial
    } else {
        pb::Outcome::Succeeded
    };
    runs::finish(&mut tx, &run.reference, outcome, "", Vec::new()).await?;
    tx.commit().await?;
    Ok(Step::Done)
}

/// Reads what the catalog holds for the batch and plans it.
async fn plan(
    tx: &mut Transaction<'_, Postgres>,
    run: &Run,
    products: &[gw::CatalogProduct],
) -> sqlx::Result<Plan> {
    let tenant = run.reference.tenant_id;
    let skus = matching::master_skus(run.context.master_sku_field, products);
    let duplicates: HashMap<String, u64> = sqlx::query(
        "SELECT master_sku, count(*) AS holders FROM import_claims
         WHERE run_id = $1 AND master_sku = ANY($2) GROUP BY master_sku HAVING count(*) > 1",
    )
    .bind(run.reference.run_id)
    .bind(&skus)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| {
        (
            r.get("master_sku"),
            r.get::<i64, _>("holders").max(0) as u64,
        )
    })
    .collect();
    let matched = read::variants_by_sku(tx, tenant, run.reference.channel_id, &skus).await?;
    let mut listing_ids: Vec<Uuid> = matched.values().map(|m| m.listing_id).collect();
    listing_ids.sort();
    listing_ids.dedup();
    let listings = read::listings_to_change(tx, tenant, &listing_ids).await?;
    let known = Known {
        duplicates,
        matched,
        listings,
    };
    Ok(matching::plan(&run.context, products, &known, Uuid::now_v7))
}

async fn write_plan(
    tx: &mut Transaction<'_, Postgres>,
    run: &Run,
    plan: &Plan,
) -> sqlx::Result<()> {
    let tenant = run.reference.tenant_id;
    write::insert_listings(tx, tenant, &plan.new_listings).await?;
    write::insert_variants(tx, tenant, &plan.new_variants).await?;
    let parents: Vec<_> = plan.parent_updates.iter().map(|(id, p)| (*id, p)).collect();
    write::update_parents(tx, tenant, &parents).await?;
    let variants: Vec<_> = plan
        .variant_updates
        .iter()
        .map(|(id, v)| (*id, v))
        .collect();
    write::update_imported(tx, tenant, &variants).await?;
    let quantities: Vec<_> = plan
        .quantity_updates
        .iter()
        .map(|(id, q)| (*id, q.as_slice()))
        .collect();
    write::replace_quantities(tx, tenant, &quantities).await?;
    let links: Vec<_> = plan.links.iter().map(|(id, l)| (*id, l)).collect();
    write::upsert_links(tx, tenant, run.reference.channel_id, &links).await
}
