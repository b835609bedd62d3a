//! Applies the next staged batch of a run in one transaction: the run row locked, what the catalog holds for the
//! batch's SKUs read, the plan made ([`super::matching`]), the writes, the run's counters and next seq, and its
//! reports (RunLogged, RunProgress) through the outbox. A crash anywhere rolls the batch back whole, and the next
//! attempt (this process or another replica) starts from the same seq: a batch is applied exactly once.

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
    /// The run is finished (now or before), or is not being applied (cancelled, gone).
    Done,
}

pub async fn apply_next(pool: &PgPool, run_id: Uuid) -> anyhow::Result<Step> {
    let mut tx = pool.begin().await?;
    let Some(run) = runs::lock(&mut tx, run_id).await? else {
        return Ok(Step::Done);
    };
    if run.state != State::Applying {
        return Ok(Step::Done);
    }
    let seq = run.applied_seq + 1;
    if seq > run.total_batches {
        let outcome = if run.counters.failed > 0 {
            pb::Outcome::Partial
        } else {
            pb::Outcome::Succeeded
        };
        runs::finish(&mut tx, &run.reference, outcome, "", Vec::new()).await?;
        tx.commit().await?;
        return Ok(Step::Done);
    }
    let payload: Vec<u8> =
        sqlx::query_scalar("SELECT payload FROM import_batches WHERE run_id = $1 AND seq = $2")
            .bind(run_id)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| anyhow::anyhow!("batch {seq} of run {run_id} is not staged"))?;
    let batch = gw::CatalogBatch::decode(payload.as_slice())
        .map_err(|e| anyhow::anyhow!("staged batch {seq} of run {run_id} does not decode: {e}"))?;
    let started = std::time::Instant::now();
    let plan = plan(&mut tx, &run, &batch.products).await?;
    let planned = started.elapsed();
    write_plan(&mut tx, &run, &plan).await?;
    let written = started.elapsed();
    let counters = plan.counters;
    runs::applied(&mut tx, &run, seq, &counters, plan.problems).await?;
    tx.commit().await?;
    metrics::counter!("listings_import_variants_total").increment(counters.processed);
    metrics::histogram!("listings_import_batch_seconds").record(started.elapsed().as_secs_f64());
    tracing::debug!(%run_id, seq, processed = counters.processed, created = counters.created,
        linked = counters.linked, failed = counters.failed, plan_ms = planned.as_millis() as u64,
        write_ms = (written - planned).as_millis() as u64, total_ms = started.elapsed().as_millis() as u64,
        "batch applied");
    Ok(Step::Applied)
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
    let parents = read::parents(tx, tenant, &listing_ids).await?;
    let known = Known {
        duplicates,
        matched,
        parents,
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
