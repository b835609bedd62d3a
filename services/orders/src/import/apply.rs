//! One Shopify order applied to the store, in the caller's transaction: the rules decide whether a new order is
//! imported; an order already stored (keyed by its Shopify id per channel) is updated, never duplicated, and the
//! history records what changed; OrderImported / OrderUpdated go out through the outbox; the tag is asked of the
//! gateway once per order (its command id is derived from the order, and the request is recorded on the order).

use chrono::{DateTime, Utc};
use shopbridge_platform::bus::{EventMeta, OutboxMessage, outbox};
use shopbridge_proto::{gateway as gw, orders as pb};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use super::commands;
use crate::{
    domain::{
        mapping::Mapping,
        order::{OrderMeta, StoredOrder, from_timestamp, to_proto},
        rules::{self, Skip},
        settings::GetOrdersSettings,
    },
    store,
};

/// Where an order came from, for the history and the events' correlation id.
#[derive(Debug, Clone)]
pub enum Source {
    Run(Uuid),
    Webhook(String),
}

impl Source {
    fn name(&self) -> &'static str {
        match self {
            Self::Run(_) => "run",
            Self::Webhook(_) => "webhook",
        }
    }
    fn run_id(&self) -> Option<Uuid> {
        match self {
            Self::Run(id) => Some(*id),
            Self::Webhook(_) => None,
        }
    }
    pub fn correlation(&self) -> String {
        match self {
            Self::Run(id) => id.to_string(),
            Self::Webhook(event) => event.clone(),
        }
    }
}

pub struct Context<'a> {
    pub tenant: Uuid,
    pub channel: Uuid,
    pub shop_domain: &'a str,
    pub settings: &'a GetOrdersSettings,
    pub mapping: &'a Mapping,
    pub source: Source,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Created,
    Updated,
    /// Stored already, nothing we keep changed.
    Unchanged,
    /// Older than what is stored (a late page or webhook): ignored.
    Stale,
    Skipped(Skip),
    /// Cannot be saved: the reasons.
    Rejected(Vec<String>),
}

pub async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Context<'_>,
    order: &gw::Order,
) -> sqlx::Result<Applied> {
    apply_known(tx, ctx, order, true).await
}

/// [`apply`], told whether the order may be stored already (`false`: it was not a moment ago, so it is inserted
/// without looking it up; an insert that finds it there meanwhile falls back to the update).
pub async fn apply_known(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Context<'_>,
    order: &gw::Order,
    maybe_stored: bool,
) -> sqlx::Result<Applied> {
    let mut look = maybe_stored;
    for _ in 0..2 {
        let existing = if look {
            store::find_for_update(tx, ctx.tenant, ctx.channel, &order.id).await?
        } else {
            None
        };
        look = true;
        let Some(existing) = existing else {
            if let Some(skip) = rules::skip_reason(order, ctx.settings, ctx.now) {
                return Ok(Applied::Skipped(skip));
            }
            let reasons = rules::validate(order);
            if !reasons.is_empty() {
                return Ok(Applied::Rejected(reasons));
            }
            let built = rules::build(order, ctx.settings, ctx.mapping);
            let Some(id) = store::insert(tx, ctx.tenant, ctx.channel, &built, ctx.now).await?
            else {
                continue; // inserted meanwhile by another transaction: update it
            };
            store::record_history(
                tx,
                id,
                "imported",
                ctx.source.name(),
                ctx.source.run_id(),
                &[],
                ctx.now,
            )
            .await?;
            let meta = OrderMeta {
                id,
                tenant_id: ctx.tenant,
                channel_id: ctx.channel,
                shipped_at: built.fully_fulfilled().then_some(ctx.now),
                imported_at: Some(ctx.now),
                updated_at: Some(ctx.now),
                ..Default::default()
            };
            publish(
                tx,
                ctx,
                pb::OrderImported {
                    order: Some(to_proto(&built, &meta)),
                },
            )
            .await?;
            maybe_tag(tx, ctx, id, order, false, None).await?;
            metrics::counter!("orders_imported_total").increment(1);
            return Ok(Applied::Created);
        };
        let incoming = order.updated_at.as_ref().and_then(from_timestamp);
        if incoming.is_some_and(|t| t < existing.order.shopify_updated_at) {
            return Ok(Applied::Stale);
        }
        let reasons = rules::validate(order);
        if !reasons.is_empty() {
            return Ok(Applied::Rejected(reasons));
        }
        let erased = existing.meta.pii_erased_at.is_some();
        let mut built = rules::build(order, ctx.settings, ctx.mapping);
        if erased {
            strip_pii(&mut built);
        }
        let changes = built.changes_from(&existing.order);
        let outcome = if changes.is_empty() {
            if built != existing.order {
                store::update(tx, existing.meta.id, &built, erased, ctx.now).await?;
            }
            Applied::Unchanged
        } else {
            store::update(tx, existing.meta.id, &built, erased, ctx.now).await?;
            store::record_history(
                tx,
                existing.meta.id,
                "updated",
                ctx.source.name(),
                ctx.source.run_id(),
                &changes,
                ctx.now,
            )
            .await?;
            let meta = OrderMeta {
                updated_at: Some(ctx.now),
                shipped_at: existing
                    .meta
                    .shipped_at
                    .or(built.fully_fulfilled().then_some(ctx.now))
                    .filter(|_| built.fully_fulfilled()),
                ..existing.meta.clone()
            };
            publish(
                tx,
                ctx,
                pb::OrderUpdated {
                    order: Some(to_proto(&built, &meta)),
                    changes,
                },
            )
            .await?;
            metrics::counter!("orders_updated_total").increment(1);
            Applied::Updated
        };
        maybe_tag(
            tx,
            ctx,
            existing.meta.id,
            order,
            existing.tag_requested,
            existing.meta.tagged_at,
        )
        .await?;
        return Ok(outcome);
    }
    Ok(Applied::Unchanged)
}

fn strip_pii(order: &mut StoredOrder) {
    order.billing = None;
    order.shipping = None;
    order.customer_email = None;
}

async fn publish<M: prost::Message + prost::Name>(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Context<'_>,
    event: M,
) -> sqlx::Result<()> {
    let meta = EventMeta::tenant(ctx.tenant.to_string())
        .with_channel(ctx.channel.to_string())
        .with_correlation(ctx.source.correlation());
    outbox::enqueue(tx, OutboxMessage::event(meta, &event)).await?;
    Ok(())
}

/// Asks the gateway to tag the order, unless it was asked before or the order carries the tag already.
async fn maybe_tag(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Context<'_>,
    id: Uuid,
    order: &gw::Order,
    requested: bool,
    tagged_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    let tag = ctx.settings.tag_after_import.trim();
    if tag.is_empty() || tagged_at.is_some() {
        return Ok(());
    }
    if order
        .tags
        .iter()
        .any(|t| t.trim().eq_ignore_ascii_case(tag))
    {
        mark_tagged(tx, id, ctx.now).await?;
        return Ok(());
    }
    if requested {
        return Ok(());
    }
    sqlx::query("UPDATE orders SET tag_requested_at = $2 WHERE id = $1")
        .bind(id)
        .bind(ctx.now)
        .execute(&mut **tx)
        .await?;
    commands::tag_order(
        tx,
        ctx.tenant,
        ctx.channel,
        ctx.shop_domain,
        &order.id,
        tag,
        &ctx.source.correlation(),
    )
    .await
}

pub async fn mark_tagged(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let updated = sqlx::query(
        "UPDATE orders SET tagged_at = $2, tag_requested_at = COALESCE(tag_requested_at, $2)
         WHERE id = $1 AND tagged_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 1 {
        store::record_history(conn, id, "tagged", "gateway", None, &[], now).await?;
    }
    Ok(())
}
