//! The state of Get Orders runs in the orders database, and every transition of it, each in the caller's transaction
//! together with the reports it causes:
//!
//! ```text
//!   RunRequested ──> fetching ──(CommandResult came and every page it announced applied)──> finished
//!                       └──(gateway FAILED, disabled, another run active, cancel, timeout)──> finished
//! ```
//!
//! Pages are applied as they come, each in the transaction of its consumer with the run's row locked, so the counters
//! add up and a page is applied once (`get_orders_run_pages`). A finished run stays finished.

use chrono::{DateTime, Duration, Utc};
use shopbridge_proto::{gateway as gw, runs as pb};
use sqlx::{PgPool, Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;

use super::{
    apply::{self, Applied, Context, Source},
    commands,
    reports::{self, RunRef},
};
use crate::{
    domain::{mapping, rules::Skip, settings},
    settings::GetOrdersTuning,
};

type Tx<'a> = Transaction<'a, Postgres>;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub processed: u64,
    pub created: u64,
    pub linked: u64,
    pub updated: u64,
    pub skipped: u64,
    pub failed: u64,
}

pub const GET_ORDERS_DISABLED: &str = "GET_ORDERS_DISABLED";
pub const ALREADY_RUNNING: &str = "ALREADY_RUNNING";
pub const ORDER_CANNOT_BE_SAVED: &str = "ORDER_CANNOT_BE_SAVED";
pub const ORDER_HELD: &str = "ORDER_HELD";
pub const ORDER_OTHER_LOCATION: &str = "ORDER_OTHER_LOCATION";
pub const FETCH_FAILED: &str = "FETCH_FAILED";
pub const FETCH_TIMEOUT: &str = "FETCH_TIMEOUT";

fn entry(
    key: String,
    level: pb::LogLevel,
    code: &str,
    message: String,
    order: &gw::Order,
    action: &str,
) -> pb::LogEntry {
    pb::LogEntry {
        key,
        level: level as i32,
        code: code.to_string(),
        message,
        entity: Some(pb::Entity {
            kind: "order".into(),
            value: order.name.clone(),
            shopify_id: order.id.clone(),
        }),
        action: action.to_string(),
        at: Some(reports::now()),
    }
}

fn run_entry(code: &str, message: String, action: &str, channel: Uuid) -> pb::LogEntry {
    pb::LogEntry {
        key: format!("{code}:{channel}"),
        level: pb::LogLevel::Error as i32,
        code: code.to_string(),
        message,
        entity: Some(pb::Entity {
            kind: "channel".into(),
            value: channel.to_string(),
            shopify_id: String::new(),
        }),
        action: action.to_string(),
        at: Some(reports::now()),
    }
}

/// The log entry of an order that cannot be saved: the spec's "Order #1234 cannot be saved" with the reasons.
pub fn cannot_be_saved(order: &gw::Order, reasons: &[String]) -> pb::LogEntry {
    entry(
        format!("{ORDER_CANNOT_BE_SAVED}:{}", order.id),
        pb::LogLevel::Error,
        ORDER_CANNOT_BE_SAVED,
        format!(
            "Order {} cannot be saved: {}.",
            order.name,
            reasons.join("; ")
        ),
        order,
        "Verify that a SKU is available for all line items and that a shipping address is present on the order in \
         Shopify; the next run imports it.",
    )
}

fn skipped_entry(order: &gw::Order, skip: &Skip) -> Option<pb::LogEntry> {
    let (code, action) = match skip {
        Skip::Held(_) => (
            ORDER_HELD,
            "Orders on hold or scheduled are imported once their status changes to unfulfilled.",
        ),
        Skip::OtherLocation(_) | Skip::NoLocation => (
            ORDER_OTHER_LOCATION,
            "Orders Not Importing: check the Location ID in the Get Orders settings.",
        ),
        // Status filters and the window are what the merchant chose: not worth a log line per order.
        _ => return None,
    };
    Some(entry(
        format!("{code}:{}", order.id),
        pb::LogLevel::Info,
        code,
        format!(
            "Order {} was not imported: {}.",
            order.name,
            skip.describe()
        ),
        order,
        action,
    ))
}

fn counters(row: &PgRow) -> Counters {
    let get = |c: &str| row.get::<i64, _>(c).max(0) as u64;
    Counters {
        processed: get("processed"),
        created: get("created"),
        linked: 0,
        updated: get("updated"),
        skipped: get("skipped"),
        failed: get("failed"),
    }
}

/// A RunRequested for Get Orders.
pub async fn request(
    tx: &mut Tx<'_>,
    run: &RunRef,
    shop_domain: &str,
    tuning: &GetOrdersTuning,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("get-orders:{}", run.channel_id))
        .execute(&mut **tx)
        .await?;
    let settings = settings::get(&mut **tx, run.tenant_id, run.channel_id).await?;
    let inserted = sqlx::query(
        "INSERT INTO get_orders_runs (run_id, tenant_id, channel_id, shop_domain, command_id, state)
         VALUES ($1, $2, $3, $4, $5, 'fetching') ON CONFLICT (run_id) DO NOTHING",
    )
    .bind(run.run_id)
    .bind(run.tenant_id)
    .bind(run.channel_id)
    .bind(shop_domain)
    .bind(commands::run_command_id(run.run_id))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        tracing::info!(run_id = %run.run_id, "run requested before; nothing to do");
        return Ok(());
    }
    reports::started(tx, run).await?;
    if !settings.enabled {
        let message = "Get Orders is turned off for this channel.".to_string();
        let entry = run_entry(
            GET_ORDERS_DISABLED,
            message.clone(),
            "Turn on Get Orders in the channel's settings (`shopbridge settings set get-orders`), then run it again.",
            run.channel_id,
        );
        return finish(tx, run, pb::Outcome::Failed, &message, vec![entry]).await;
    }
    let other: Option<Uuid> = sqlx::query_scalar(
        "SELECT run_id FROM get_orders_runs
         WHERE tenant_id = $1 AND channel_id = $2 AND state <> 'finished' AND run_id <> $3 LIMIT 1",
    )
    .bind(run.tenant_id)
    .bind(run.channel_id)
    .bind(run.run_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(other) = other {
        let message = format!("Another Get Orders run ({other}) of this channel is still running.");
        let entry = run_entry(
            ALREADY_RUNNING,
            message.clone(),
            "Wait for it to finish, or cancel it.",
            run.channel_id,
        );
        return finish(tx, run, pb::Outcome::Failed, &message, vec![entry]).await;
    }
    commands::fetch_orders(
        tx,
        commands::Fetch {
            command_id: commands::run_command_id(run.run_id),
            tenant: run.tenant_id,
            channel: run.channel_id,
            shop_domain,
            updated_since: now - Duration::days(i64::from(settings.updated_within_days)),
            bulk: tuning.bulk,
            page_size: tuning.page_size,
            correlation: &run.run_id.to_string(),
        },
    )
    .await?;
    progress(
        tx,
        run,
        &Counters::default(),
        0,
        "fetching orders from Shopify",
    )
    .await?;
    tracing::info!(run_id = %run.run_id, shop = %shop_domain, days = settings.updated_within_days,
        "get orders run started; orders requested");
    Ok(())
}

async fn progress(
    tx: &mut Tx<'_>,
    run: &RunRef,
    c: &Counters,
    total: u64,
    stage: &str,
) -> sqlx::Result<()> {
    let seq: i64 = sqlx::query_scalar(
        "UPDATE get_orders_runs SET report_seq = report_seq + 1 WHERE run_id = $1 RETURNING report_seq",
    )
    .bind(run.run_id)
    .fetch_one(&mut **tx)
    .await?;
    reports::progress(tx, run, seq.max(0) as u64, c, total, stage.to_string()).await
}

pub async fn finish(
    tx: &mut Tx<'_>,
    run: &RunRef,
    outcome: pb::Outcome,
    error: &str,
    entries: Vec<pb::LogEntry>,
) -> sqlx::Result<()> {
    let name = match outcome {
        pb::Outcome::Succeeded => "succeeded",
        pb::Outcome::Partial => "partial",
        pb::Outcome::Failed => "failed",
        pb::Outcome::Cancelled => "cancelled",
        pb::Outcome::Unspecified => "unspecified",
    };
    let row = sqlx::query(
        "UPDATE get_orders_runs SET state = 'finished', outcome = $2, finished_at = now() WHERE run_id = $1
         RETURNING processed, created, updated, skipped, failed",
    )
    .bind(run.run_id)
    .bind(name)
    .fetch_one(&mut **tx)
    .await?;
    let at_end = counters(&row);
    reports::logged(tx, run, entries).await?;
    reports::finished(tx, run, outcome, &at_end, error).await?;
    sqlx::query("DELETE FROM get_orders_run_pages WHERE run_id = $1")
        .bind(run.run_id)
        .execute(&mut **tx)
        .await?;
    tracing::info!(run_id = %run.run_id, outcome = name, created = at_end.created, updated = at_end.updated,
        skipped = at_end.skipped, failed = at_end.failed, "get orders run finished");
    metrics::counter!("orders_get_orders_runs_total", "outcome" => name).increment(1);
    Ok(())
}

/// A run by its command id, locked; `None` when unknown or finished. `NO KEY UPDATE`: page transactions hold a key
/// share lock on the run's row from the start (the foreign key of the pages they record), so a full `FOR UPDATE`
/// at their end would deadlock them with each other.
async fn lock_active(
    tx: &mut Tx<'_>,
    command_id: &str,
) -> sqlx::Result<Option<(RunRef, String, PgRow)>> {
    let row = sqlx::query(
        "SELECT run_id, tenant_id, channel_id, shop_domain, state, total_pages, applied_pages, result_status,
                result_error, processed, created, updated, skipped, failed
         FROM get_orders_runs WHERE command_id = $1 FOR NO KEY UPDATE",
    )
    .bind(command_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        tracing::warn!(%command_id, "orders of an unknown run; ignored");
        return Ok(None);
    };
    if row.get::<&str, _>("state") == "finished" {
        return Ok(None);
    }
    let run = RunRef {
        run_id: row.get("run_id"),
        tenant_id: row.get("tenant_id"),
        channel_id: row.get("channel_id"),
    };
    let shop: String = row.get("shop_domain");
    Ok(Some((run, shop, row)))
}

/// A run by its command id, not locked; `None` when unknown or finished.
async fn peek_active(tx: &mut Tx<'_>, command_id: &str) -> sqlx::Result<Option<(RunRef, String)>> {
    let row = sqlx::query(
        "SELECT run_id, tenant_id, channel_id, shop_domain FROM get_orders_runs
         WHERE command_id = $1 AND state <> 'finished'",
    )
    .bind(command_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|row| {
        (
            RunRef {
                run_id: row.get("run_id"),
                tenant_id: row.get("tenant_id"),
                channel_id: row.get("channel_id"),
            },
            row.get("shop_domain"),
        )
    }))
}

/// An OrderPage of a run: every order through the rules and into the store. Pages of one run are applied several
/// at once (the run's row is locked only at the end, to add the page's counters), each exactly once.
pub async fn apply_page(
    tx: &mut Tx<'_>,
    page: &gw::OrderPage,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let Some((run, shop)) = peek_active(tx, &page.command_id).await? else {
        return Ok(());
    };
    let fresh = sqlx::query(
        "INSERT INTO get_orders_run_pages (run_id, seq) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(run.run_id)
    .bind(page.seq as i32)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if fresh == 0 {
        return Ok(());
    }
    let settings = settings::get(&mut **tx, run.tenant_id, run.channel_id).await?;
    let mapping = mapping::get(&mut **tx, run.tenant_id, run.channel_id).await?;
    let ctx = Context {
        tenant: run.tenant_id,
        channel: run.channel_id,
        shop_domain: &shop,
        settings: &settings,
        mapping: &mapping,
        source: Source::Run(run.run_id),
        now,
    };
    let mut c = Counters::default();
    let mut entries = Vec::new();
    let ids: Vec<String> = page.orders.iter().map(|o| o.id.clone()).collect();
    let known = crate::store::known(tx, run.tenant_id, run.channel_id, &ids).await?;
    for order in &page.orders {
        c.processed += 1;
        match apply::apply_known(tx, &ctx, order, known.contains(&order.id)).await? {
            Applied::Created => c.created += 1,
            Applied::Updated => c.updated += 1,
            Applied::Unchanged | Applied::Stale => c.skipped += 1,
            Applied::Skipped(skip) => {
                c.skipped += 1;
                entries.extend(skipped_entry(order, &skip));
            }
            Applied::Rejected(reasons) => {
                c.failed += 1;
                entries.push(cannot_be_saved(order, &reasons));
            }
        }
    }
    // Finished meanwhile (cancelled, timed out): the orders stay, the run's report is closed.
    if lock_active(tx, &page.command_id).await?.is_none() {
        return Ok(());
    }
    let row = sqlx::query(
        "UPDATE get_orders_runs SET applied_pages = applied_pages + 1, processed = processed + $2,
                created = created + $3, updated = updated + $4, skipped = skipped + $5, failed = failed + $6
         WHERE run_id = $1
         RETURNING processed, created, updated, skipped, failed, total_pages, applied_pages",
    )
    .bind(run.run_id)
    .bind(c.processed as i64)
    .bind(c.created as i64)
    .bind(c.updated as i64)
    .bind(c.skipped as i64)
    .bind(c.failed as i64)
    .fetch_one(&mut **tx)
    .await?;
    reports::logged(tx, &run, entries).await?;
    let total = page.total_pages;
    progress(
        tx,
        &run,
        &counters(&row),
        0,
        &format!("applied page {} of {total}", page.seq),
    )
    .await?;
    maybe_finish(tx, &run).await
}

/// The gateway's CommandResult of a run's FetchOrders.
pub async fn record_result(tx: &mut Tx<'_>, result: &gw::CommandResult) -> sqlx::Result<()> {
    let Some((run, _, _)) = lock_active(tx, &result.command_id).await? else {
        return Ok(());
    };
    let status = gw::command_result::Status::try_from(result.status)
        .unwrap_or(gw::command_result::Status::Failed);
    let pages = match &result.result {
        Some(gw::command_result::Result::OrdersFetched(f)) => f.pages as i32,
        _ => 0,
    };
    let error = result
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.code, p.message))
        .collect::<Vec<_>>()
        .join("; ");
    if status == gw::command_result::Status::Failed {
        let message = format!("Shopify's orders could not be read: {error}");
        let code = result
            .problems
            .first()
            .map(|p| p.code.as_str())
            .unwrap_or(FETCH_FAILED);
        let entry = pb::LogEntry {
            key: format!("{FETCH_FAILED}:{}", run.run_id),
            level: pb::LogLevel::Error as i32,
            code: code.to_string(),
            message: message.clone(),
            entity: None,
            action: "Connection Issues: verify the channel's Shopify token and store URL, then run it again.".into(),
            at: Some(reports::now()),
        };
        return finish(tx, &run, pb::Outcome::Failed, &message, vec![entry]).await;
    }
    sqlx::query("UPDATE get_orders_runs SET total_pages = $2, result_status = $3, result_error = $4 WHERE run_id = $1")
        .bind(run.run_id)
        .bind(pages)
        .bind(if status == gw::command_result::Status::Partial { "partial" } else { "succeeded" })
        .bind(&error)
        .execute(&mut **tx)
        .await?;
    maybe_finish(tx, &run).await
}

async fn maybe_finish(tx: &mut Tx<'_>, run: &RunRef) -> sqlx::Result<()> {
    let row = sqlx::query(
        "SELECT total_pages, applied_pages, result_status, result_error, failed FROM get_orders_runs WHERE run_id = $1",
    )
    .bind(run.run_id)
    .fetch_one(&mut **tx)
    .await?;
    let Some(total) = row.get::<Option<i32>, _>("total_pages") else {
        return Ok(());
    };
    if row.get::<i32, _>("applied_pages") < total {
        return Ok(());
    }
    let partial = row.get::<Option<String>, _>("result_status").as_deref() == Some("partial");
    let outcome = if partial || row.get::<i64, _>("failed") > 0 {
        pb::Outcome::Partial
    } else {
        pb::Outcome::Succeeded
    };
    let error: String = row
        .get::<Option<String>, _>("result_error")
        .unwrap_or_default();
    finish(tx, run, outcome, &error, Vec::new()).await
}

/// RunCancelRequested: an unfinished run finishes CANCELLED; one not seen yet is recorded finished, so its request,
/// if it comes later, starts nothing.
pub async fn cancel(tx: &mut Tx<'_>, run: &RunRef) -> sqlx::Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO get_orders_runs (run_id, tenant_id, channel_id, shop_domain, command_id, state, outcome, finished_at)
         VALUES ($1, $2, $3, '', $4, 'finished', 'cancelled', now()) ON CONFLICT (run_id) DO NOTHING",
    )
    .bind(run.run_id)
    .bind(run.tenant_id)
    .bind(run.channel_id)
    .bind(commands::run_command_id(run.run_id))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return reports::finished(tx, run, pb::Outcome::Cancelled, &Counters::default(), "").await;
    }
    if lock_active(tx, &commands::run_command_id(run.run_id))
        .await?
        .is_some()
    {
        finish(tx, run, pb::Outcome::Cancelled, "", Vec::new()).await?;
    }
    Ok(())
}

/// Fails runs the gateway has not answered within `timeout`, every `every`.
pub async fn time_out_loop(
    pool: PgPool,
    timeout: std::time::Duration,
    every: std::time::Duration,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = time_out_once(&pool, timeout).await {
            tracing::warn!(error = %e, "could not look for runs that timed out");
        }
    }
}

pub async fn time_out_once(pool: &PgPool, timeout: std::time::Duration) -> sqlx::Result<()> {
    let due: Vec<String> = sqlx::query_scalar(
        "SELECT command_id FROM get_orders_runs WHERE state = 'fetching' AND requested_at < now() - $1::interval",
    )
    .bind(format!("{} seconds", timeout.as_secs()))
    .fetch_all(pool)
    .await?;
    for command_id in due {
        let mut tx = pool.begin().await?;
        if let Some((run, _, _)) = lock_active(&mut tx, &command_id).await? {
            let message = format!(
                "Shopify's orders did not come back within {} seconds.",
                timeout.as_secs()
            );
            let entry = run_entry(
                FETCH_TIMEOUT,
                message.clone(),
                "Run it again.",
                run.channel_id,
            );
            finish(&mut tx, &run, pb::Outcome::Failed, &message, vec![entry]).await?;
        }
        tx.commit().await?;
        shopbridge_platform::bus::outbox::wake();
    }
    Ok(())
}
