//! The bus side of Get Orders, four consumers: run requests and cancellations from the scheduler (`orders-runs`);
//! the gateway's order pages and command results (`orders-gateway`); Shopify's order and compliance webhooks as the
//! gateway publishes them (`orders-webhooks`); channel states from auth (`orders-channels`). Each message is applied in
//! the consumer's transaction with its inbox row, so a redelivery has no second effect; anything not ours is
//! acknowledged and ignored.

use chrono::{Duration, Utc};
use prost::Name;
use shopbridge_platform::bus::{Decode, Envelope, Handler, HandlerError, envelope::DecodeError};
use shopbridge_proto::{auth as auth_pb, common::Operation, gateway as gw, runs as pb};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::{
    apply::{self, Applied, Context, Source},
    commands,
    reports::RunRef,
    runs,
};
use crate::{
    domain::{mapping, settings},
    pii,
    settings::GetOrdersTuning,
};

fn decode<M: prost::Message + Name + Default>(payload: &[u8]) -> Result<M, DecodeError> {
    M::decode(payload).map_err(|source| DecodeError::Payload {
        type_name: M::full_name(),
        source,
    })
}

fn retry(e: sqlx::Error) -> HandlerError {
    HandlerError::Retry(e.into())
}

fn reject(message: String) -> HandlerError {
    HandlerError::Reject(anyhow::anyhow!(message))
}

fn uuid(what: &str, text: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(text).map_err(|_| reject(format!("{what} `{text}` is not a UUID")))
}

fn run_ref(run_id: &str, tenant_id: &str, channel_id: &str) -> Result<RunRef, HandlerError> {
    Ok(RunRef {
        run_id: uuid("run_id", run_id)?,
        tenant_id: uuid("tenant_id", tenant_id)?,
        channel_id: uuid("channel_id", channel_id)?,
    })
}

/// What `orders-runs` delivers.
#[derive(Debug)]
pub enum RunMessage {
    Requested(pb::RunRequested),
    Cancel(pb::RunCancelRequested),
}

impl Decode for RunMessage {
    fn decode(type_name: &str, payload: &[u8]) -> Result<Self, DecodeError> {
        if type_name == pb::RunRequested::full_name() {
            decode(payload).map(Self::Requested)
        } else if type_name == pb::RunCancelRequested::full_name() {
            decode(payload).map(Self::Cancel)
        } else {
            Err(DecodeError::UnexpectedType(type_name.to_string()))
        }
    }
}

pub struct RunsHandler {
    pub tuning: GetOrdersTuning,
}

impl Handler for RunsHandler {
    type Message = RunMessage;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<RunMessage>,
    ) -> Result<(), HandlerError> {
        let ours = |operation: i32| operation == Operation::GetOrders as i32;
        match &event.message {
            RunMessage::Requested(request) if ours(request.operation) => {
                let run = run_ref(&request.run_id, &request.tenant_id, &request.channel_id)?;
                let shop_domain = request.shop_domain.trim().to_ascii_lowercase();
                if shop_domain.is_empty() {
                    return Err(reject(format!("run {} names no shop_domain", run.run_id)));
                }
                runs::request(tx, &run, &shop_domain, &self.tuning, Utc::now())
                    .await
                    .map_err(retry)
            }
            RunMessage::Cancel(cancel) if ours(cancel.operation) => {
                let run = run_ref(&cancel.run_id, &cancel.tenant_id, &cancel.channel_id)?;
                runs::cancel(tx, &run).await.map_err(retry)
            }
            _ => Ok(()),
        }
    }
}

/// What `orders-gateway` delivers.
#[derive(Debug)]
pub enum GatewayMessage {
    Page(gw::OrderPage),
    Result(gw::CommandResult),
}

impl Decode for GatewayMessage {
    fn decode(type_name: &str, payload: &[u8]) -> Result<Self, DecodeError> {
        if type_name == gw::OrderPage::full_name() {
            decode(payload).map(Self::Page)
        } else if type_name == gw::CommandResult::full_name() {
            decode(payload).map(Self::Result)
        } else {
            Err(DecodeError::UnexpectedType(type_name.to_string()))
        }
    }
}

pub struct GatewayHandler;

impl Handler for GatewayHandler {
    type Message = GatewayMessage;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<GatewayMessage>,
    ) -> Result<(), HandlerError> {
        let now = Utc::now();
        match &event.message {
            GatewayMessage::Page(page) if page.command_id.starts_with(commands::RUN_PREFIX) => {
                runs::apply_page(tx, page, now).await.map_err(retry)
            }
            GatewayMessage::Page(page) if page.command_id.starts_with(commands::WEBHOOK_PREFIX) => {
                apply_webhook_page(tx, page).await
            }
            GatewayMessage::Result(result)
                if result.command_id.starts_with(commands::RUN_PREFIX) =>
            {
                runs::record_result(tx, result).await.map_err(retry)
            }
            GatewayMessage::Result(result)
                if result.command_id.starts_with(commands::TAG_PREFIX) =>
            {
                tag_result(tx, result).await
            }
            GatewayMessage::Result(result)
                if result.command_id.starts_with(commands::WEBHOOK_PREFIX) =>
            {
                if result.status == gw::command_result::Status::Failed as i32 {
                    tracing::warn!(command_id = %result.command_id, problems = ?result.problems,
                        "orders of a webhook could not be read; the next run reconciles them");
                }
                webhook_fetch_done(tx, result).await.map_err(retry)
            }
            // Other services' commands.
            _ => Ok(()),
        }
    }
}

async fn tenant_of(
    tx: &mut Transaction<'static, Postgres>,
    channel: Uuid,
) -> Result<Option<Uuid>, HandlerError> {
    sqlx::query_scalar("SELECT tenant_id FROM channels WHERE channel_id = $1")
        .bind(channel)
        .fetch_optional(&mut **tx)
        .await
        .map_err(retry)
}

async fn apply_webhook_page(
    tx: &mut Transaction<'static, Postgres>,
    page: &gw::OrderPage,
) -> Result<(), HandlerError> {
    let Some((channel, event_id)) = commands::parse_webhook_command(&page.command_id) else {
        return Err(reject(format!(
            "command id `{}` names no channel",
            page.command_id
        )));
    };
    let Some(tenant) = tenant_of(tx, channel).await? else {
        tracing::warn!(%channel, "orders of an unknown channel; ignored");
        return Ok(());
    };
    let settings = settings::get(&mut **tx, tenant, channel)
        .await
        .map_err(retry)?;
    if !settings.enabled {
        return Ok(());
    }
    let mapping = mapping::get(&mut **tx, tenant, channel)
        .await
        .map_err(retry)?;
    let ctx = Context {
        tenant,
        channel,
        shop_domain: &page.shop_domain,
        settings: &settings,
        mapping: &mapping,
        source: Source::Webhook(event_id),
        now: Utc::now(),
    };
    for order in &page.orders {
        match apply::apply(tx, &ctx, order).await.map_err(retry)? {
            Applied::Rejected(reasons) => {
                tracing::warn!(order = %order.name, shopify_id = %order.id, reasons = ?reasons,
                    "order from a webhook cannot be saved")
            }
            Applied::Skipped(skip) => {
                tracing::debug!(order = %order.name, reason = %skip.describe(), "order from a webhook skipped")
            }
            applied => {
                tracing::debug!(order = %order.name, ?applied, "order from a webhook applied")
            }
        }
    }
    Ok(())
}

async fn tag_result(
    tx: &mut Transaction<'static, Postgres>,
    result: &gw::CommandResult,
) -> Result<(), HandlerError> {
    let Some((channel, shopify_order_id)) = commands::parse_tag_command(&result.command_id) else {
        return Err(reject(format!(
            "tag command id `{}` is malformed",
            result.command_id
        )));
    };
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM orders WHERE channel_id = $1 AND shopify_order_id = $2")
            .bind(channel)
            .bind(&shopify_order_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(retry)?;
    let Some(id) = id else { return Ok(()) };
    if result.status == gw::command_result::Status::Succeeded as i32 {
        apply::mark_tagged(tx, id, Utc::now())
            .await
            .map_err(retry)?;
    } else {
        tracing::warn!(order = %shopify_order_id, problems = ?result.problems, "the order could not be tagged");
    }
    Ok(())
}

/// A fetch in flight longer than this is taken as lost: the next webhook sends a fetch of its own.
const FETCH_IN_FLIGHT_MAX: Duration = Duration::seconds(60);

/// Asks the gateway for the channel's orders changed since `since`, unless a fetch of the channel's webhooks is in
/// flight: then `since` is folded into the next one, sent when that fetch's result comes. At most one webhook fetch
/// per channel at a time, so a burst of webhooks costs a few Shopify calls, not one each. Returns whether a fetch
/// was sent now.
async fn webhook_fetch(
    tx: &mut Transaction<'static, Postgres>,
    tenant: Uuid,
    channel: Uuid,
    shop: &str,
    since: chrono::DateTime<Utc>,
    command_id: &str,
) -> sqlx::Result<bool> {
    sqlx::query("INSERT INTO webhook_fetches (channel_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(channel)
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query(
        "SELECT in_flight, in_flight_since FROM webhook_fetches WHERE channel_id = $1 FOR UPDATE",
    )
    .bind(channel)
    .fetch_one(&mut **tx)
    .await?;
    let in_flight: Option<String> = row.get("in_flight");
    let in_flight_since: Option<chrono::DateTime<Utc>> = row.get("in_flight_since");
    let fresh = in_flight_since.is_some_and(|t| Utc::now() - t < FETCH_IN_FLIGHT_MAX);
    if in_flight.is_some() && fresh {
        sqlx::query(
            "UPDATE webhook_fetches SET pending_since = LEAST(COALESCE(pending_since, $2), $2) WHERE channel_id = $1",
        )
        .bind(channel)
        .bind(since)
        .execute(&mut **tx)
        .await?;
        return Ok(false);
    }
    send_webhook_fetch(tx, tenant, channel, shop, since, command_id).await?;
    Ok(true)
}

async fn send_webhook_fetch(
    tx: &mut Transaction<'static, Postgres>,
    tenant: Uuid,
    channel: Uuid,
    shop: &str,
    since: chrono::DateTime<Utc>,
    command_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_fetches SET in_flight = $2, in_flight_since = now(), pending_since = NULL WHERE channel_id = $1",
    )
    .bind(channel)
    .bind(command_id)
    .execute(&mut **tx)
    .await?;
    commands::fetch_orders(
        tx,
        commands::Fetch {
            command_id: command_id.to_string(),
            tenant,
            channel,
            shop_domain: shop,
            updated_since: since,
            bulk: false,
            page_size: 0,
            correlation: command_id,
        },
    )
    .await
}

/// The result of a webhook fetch: the next fetch goes out if webhooks came meanwhile.
async fn webhook_fetch_done(
    tx: &mut Transaction<'static, Postgres>,
    result: &gw::CommandResult,
) -> sqlx::Result<()> {
    let Some((channel, _)) = commands::parse_webhook_command(&result.command_id) else {
        return Ok(());
    };
    let row = sqlx::query(
        "SELECT w.in_flight, w.pending_since, c.tenant_id, c.shop_domain
         FROM webhook_fetches w JOIN channels c ON c.channel_id = w.channel_id
         WHERE w.channel_id = $1 FOR UPDATE OF w",
    )
    .bind(channel)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(()) };
    if row.get::<Option<String>, _>("in_flight").as_deref() != Some(result.command_id.as_str()) {
        return Ok(());
    }
    match row.get::<Option<chrono::DateTime<Utc>>, _>("pending_since") {
        Some(since) => {
            let shop: String = row.get("shop_domain");
            let next = format!(
                "{}{channel}:after:{}",
                commands::WEBHOOK_PREFIX,
                Uuid::now_v7()
            );
            send_webhook_fetch(tx, row.get("tenant_id"), channel, &shop, since, &next).await
        }
        None => {
            sqlx::query("UPDATE webhook_fetches SET in_flight = NULL, in_flight_since = NULL WHERE channel_id = $1")
                .bind(channel)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    }
}

/// What `orders-webhooks` delivers.
#[derive(Debug)]
pub enum WebhookMessage {
    Order(gw::ShopifyOrderChanged),
    Compliance(gw::ShopifyComplianceRequest),
}

impl Decode for WebhookMessage {
    fn decode(type_name: &str, payload: &[u8]) -> Result<Self, DecodeError> {
        if type_name == gw::ShopifyOrderChanged::full_name() {
            decode(payload).map(Self::Order)
        } else if type_name == gw::ShopifyComplianceRequest::full_name() {
            decode(payload).map(Self::Compliance)
        } else {
            Err(DecodeError::UnexpectedType(type_name.to_string()))
        }
    }
}

pub struct WebhookHandler;

/// The active channels of a shop: (channel, tenant).
pub async fn channels_of(
    tx: &mut Transaction<'static, Postgres>,
    shop: &str,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    let rows = sqlx::query(
        "SELECT channel_id, tenant_id FROM channels WHERE shop_domain = $1 AND state = 'active'",
    )
    .bind(shop.trim().to_ascii_lowercase())
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get("channel_id"), r.get("tenant_id")))
        .collect())
}

impl Handler for WebhookHandler {
    type Message = WebhookMessage;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<WebhookMessage>,
    ) -> Result<(), HandlerError> {
        match &event.message {
            WebhookMessage::Order(changed) => {
                let delivery = changed.delivery.clone().unwrap_or_default();
                // Shopify's own time of the change: the fetch reads that second again (at or after).
                let since = changed
                    .updated_at
                    .as_ref()
                    .and_then(crate::domain::order::from_timestamp)
                    .unwrap_or_else(Utc::now);
                for (channel, tenant) in channels_of(tx, &delivery.shop_domain)
                    .await
                    .map_err(retry)?
                {
                    let settings = settings::get(&mut **tx, tenant, channel)
                        .await
                        .map_err(retry)?;
                    if !settings.enabled {
                        continue;
                    }
                    let command_id = format!(
                        "{}{channel}:{}",
                        commands::WEBHOOK_PREFIX,
                        delivery.event_id
                    );
                    let sent = webhook_fetch(
                        tx,
                        tenant,
                        channel,
                        &delivery.shop_domain,
                        since,
                        &command_id,
                    )
                    .await
                    .map_err(retry)?;
                    tracing::info!(shop = %delivery.shop_domain, order = %changed.name, topic = %delivery.topic, sent,
                        "order webhook; changed orders requested (or folded into the fetch in flight)");
                }
                Ok(())
            }
            WebhookMessage::Compliance(request) => pii::compliance(tx, request, Utc::now()).await,
        }
    }
}

pub struct ChannelsHandler;

impl Handler for ChannelsHandler {
    type Message = auth_pb::ChannelStateChanged;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<auth_pb::ChannelStateChanged>,
    ) -> Result<(), HandlerError> {
        let c = &event.message;
        let channel = uuid("channel_id", &c.channel_id)?;
        let tenant = uuid("tenant_id", &c.tenant_id)?;
        let state = match auth_pb::ChannelState::try_from(c.state) {
            Ok(auth_pb::ChannelState::Active) => "active",
            Ok(auth_pb::ChannelState::Connecting) => "connecting",
            Ok(auth_pb::ChannelState::Disconnected) => "disconnected",
            Ok(auth_pb::ChannelState::Error) => "error",
            _ => "unknown",
        };
        sqlx::query(
            "INSERT INTO channels (channel_id, tenant_id, shop_domain, state) VALUES ($1, $2, $3, $4)
             ON CONFLICT (channel_id) DO UPDATE SET shop_domain = CASE WHEN EXCLUDED.shop_domain = ''
                 THEN channels.shop_domain ELSE EXCLUDED.shop_domain END, state = EXCLUDED.state, updated_at = now()",
        )
        .bind(channel)
        .bind(tenant)
        .bind(c.shop_domain.trim().to_ascii_lowercase())
        .bind(state)
        .execute(&mut **tx)
        .await
        .map_err(retry)?;
        Ok(())
    }
}
