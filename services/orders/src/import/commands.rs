//! Commands to the gateway, always through the outbox (sent if and only if the transaction that decides them
//! commits), with deterministic ids so that a re-sent command is the same command.

use chrono::{DateTime, Utc};
use shopbridge_platform::bus::{EventMeta, OutboxMessage, names, outbox};
use shopbridge_proto::gateway as gw;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::domain::order::timestamp;

/// Command ids of runs: `get-orders:<run id>`.
pub const RUN_PREFIX: &str = "get-orders:";
/// Command ids of webhook fetches: `get-orders-webhook:<channel id>:<event id>`.
pub const WEBHOOK_PREFIX: &str = "get-orders-webhook:";
/// Command ids of tags: `get-orders-tag:<channel id>:<order GID>`: one order is tagged by one command, ever.
pub const TAG_PREFIX: &str = "get-orders-tag:";

pub fn run_command_id(run: Uuid) -> String {
    format!("{RUN_PREFIX}{run}")
}

pub fn tag_command_id(channel: Uuid, shopify_order_id: &str) -> String {
    format!("{TAG_PREFIX}{channel}:{shopify_order_id}")
}

/// The channel and order GID of a tag command id.
pub fn parse_tag_command(command_id: &str) -> Option<(Uuid, String)> {
    let rest = command_id.strip_prefix(TAG_PREFIX)?;
    let (channel, order) = rest.split_once(':')?;
    Some((Uuid::parse_str(channel).ok()?, order.to_string()))
}

/// The channel of a webhook fetch command id.
pub fn parse_webhook_command(command_id: &str) -> Option<(Uuid, String)> {
    let rest = command_id.strip_prefix(WEBHOOK_PREFIX)?;
    let (channel, event) = rest.split_once(':')?;
    Some((Uuid::parse_str(channel).ok()?, event.to_string()))
}

fn meta(tenant: Uuid, channel: Uuid, correlation: &str) -> EventMeta {
    EventMeta::tenant(tenant.to_string())
        .with_channel(channel.to_string())
        .with_correlation(correlation.to_string())
}

pub struct Fetch<'a> {
    pub command_id: String,
    pub tenant: Uuid,
    pub channel: Uuid,
    pub shop_domain: &'a str,
    pub updated_since: DateTime<Utc>,
    pub bulk: bool,
    pub page_size: u32,
    pub correlation: &'a str,
}

/// FetchOrders of every order updated at or after `updated_since`; the rules are applied here, not in Shopify's
/// search, so each order left out can be named in the run log.
pub async fn fetch_orders(tx: &mut Transaction<'_, Postgres>, f: Fetch<'_>) -> sqlx::Result<()> {
    let command = gw::Command {
        command_id: f.command_id,
        shop_domain: f.shop_domain.to_string(),
        channel_id: f.channel.to_string(),
        lane: gw::Lane::Orders as i32,
        operation: Some(gw::command::Operation::FetchOrders(gw::FetchOrders {
            filter: Some(gw::OrderFilter {
                updated_at_min: Some(timestamp(f.updated_since)),
                ..Default::default()
            }),
            page_size: f.page_size,
            bulk: f.bulk,
        })),
    };
    send(
        tx,
        f.shop_domain,
        meta(f.tenant, f.channel, f.correlation),
        &command,
    )
    .await
}

pub async fn tag_order(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
    channel: Uuid,
    shop_domain: &str,
    shopify_order_id: &str,
    tag: &str,
    correlation: &str,
) -> sqlx::Result<()> {
    let command = gw::Command {
        command_id: tag_command_id(channel, shopify_order_id),
        shop_domain: shop_domain.to_string(),
        channel_id: channel.to_string(),
        lane: gw::Lane::Orders as i32,
        operation: Some(gw::command::Operation::TagOrder(gw::TagOrder {
            order_id: shopify_order_id.to_string(),
            tags: vec![tag.to_string()],
        })),
    };
    send(
        tx,
        shop_domain,
        meta(tenant, channel, correlation),
        &command,
    )
    .await
}

async fn send(
    tx: &mut Transaction<'_, Postgres>,
    shop_domain: &str,
    meta: EventMeta,
    command: &gw::Command,
) -> sqlx::Result<()> {
    outbox::enqueue(
        tx,
        OutboxMessage::to_subject(
            names::command_subject::<gw::Command>(shop_domain, "orders"),
            meta,
            command,
        ),
    )
    .await?;
    Ok(())
}
