//! PII: the addresses, names, emails and phones of orders. They are erased (the order kept, its PII removed and the
//! erasure recorded in its history) when the channel's retention period after shipment passes ([`sweep`], with the
//! time passed in, so tests move the clock), and at once on Shopify's `customers/redact` (that customer's orders)
//! and `shop/redact` (every order of the shop). `customers/data_request` records an export of everything we hold for
//! that customer, for the operator (`ListDataRequests`).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shopbridge_platform::bus::HandlerError;
use shopbridge_proto::gateway as gw;
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::{domain::order::to_proto, store};

fn retry(e: sqlx::Error) -> HandlerError {
    HandlerError::Retry(e.into())
}

fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn gid(kind: &str, v: &Value) -> String {
    let text = id_text(v);
    if text.is_empty() || text.starts_with("gid://") {
        text
    } else {
        format!("gid://shopify/{kind}/{text}")
    }
}

/// Every channel of the shop, whatever its state (shop/redact comes after the app is uninstalled).
async fn channels(
    tx: &mut Transaction<'static, Postgres>,
    shop: &str,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    let rows = sqlx::query("SELECT channel_id, tenant_id FROM channels WHERE shop_domain = $1")
        .bind(shop.trim().to_ascii_lowercase())
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get("channel_id"), r.get("tenant_id")))
        .collect())
}

/// The orders of a channel that belong to the customer: by customer id, by the order ids Shopify names, or (for
/// orders stored without a customer) by email.
async fn customer_orders(
    tx: &mut Transaction<'static, Postgres>,
    channel: Uuid,
    customer_id: &str,
    email: &str,
    order_ids: &[String],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM orders WHERE channel_id = $1
           AND (($2 <> '' AND customer_id = $2) OR shopify_order_id = ANY($3)
                OR ($4 <> '' AND lower(customer_email) = lower($4)))
         ORDER BY id",
    )
    .bind(channel)
    .bind(customer_id)
    .bind(order_ids)
    .bind(email)
    .fetch_all(&mut **tx)
    .await
}

pub async fn compliance(
    tx: &mut Transaction<'static, Postgres>,
    request: &gw::ShopifyComplianceRequest,
    now: DateTime<Utc>,
) -> Result<(), HandlerError> {
    let delivery = request.delivery.clone().unwrap_or_default();
    let payload: Value = serde_json::from_slice(&request.payload_json).map_err(|e| {
        HandlerError::Reject(anyhow::anyhow!("compliance payload is not JSON: {e}"))
    })?;
    let shop = if delivery.shop_domain.is_empty() {
        id_text(&payload["shop_domain"])
    } else {
        delivery.shop_domain.clone()
    };
    let customer_id = gid("Customer", &payload["customer"]["id"]);
    let email = id_text(&payload["customer"]["email"]);
    let ids = |key: &str| -> Vec<String> {
        payload[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| gid("Order", v))
            .collect()
    };
    for (channel, tenant) in channels(tx, &shop).await.map_err(retry)? {
        match delivery.topic.as_str() {
            "customers/redact" => {
                let orders =
                    customer_orders(tx, channel, &customer_id, &email, &ids("orders_to_redact"))
                        .await
                        .map_err(retry)?;
                let erased = store::erase_pii(tx, &orders, "customers/redact", now)
                    .await
                    .map_err(retry)?;
                tracing::info!(%channel, shop = %shop, erased, "customers/redact: customer's PII erased");
            }
            "shop/redact" => {
                let orders: Vec<Uuid> =
                    sqlx::query_scalar("SELECT id FROM orders WHERE channel_id = $1")
                        .bind(channel)
                        .fetch_all(&mut **tx)
                        .await
                        .map_err(retry)?;
                let erased = store::erase_pii(tx, &orders, "shop/redact", now)
                    .await
                    .map_err(retry)?;
                tracing::info!(%channel, shop = %shop, erased, "shop/redact: the shop's PII erased");
            }
            "customers/data_request" => {
                let orders =
                    customer_orders(tx, channel, &customer_id, &email, &ids("orders_requested"))
                        .await
                        .map_err(retry)?;
                let found = store::load(tx, tenant, &orders).await.map_err(retry)?;
                let export: Vec<Value> = found
                    .iter()
                    .map(|f| export_order(&to_proto(&f.order, &f.meta)))
                    .collect();
                sqlx::query(
                    "INSERT INTO data_requests (id, tenant_id, channel_id, shop_domain, shopify_request_id,
                                                customer_id, customer_email, orders, export, received_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(Uuid::now_v7())
                .bind(tenant)
                .bind(channel)
                .bind(&shop)
                .bind(id_text(&payload["data_request"]["id"]))
                .bind(&customer_id)
                .bind(&email)
                .bind(export.len() as i32)
                .bind(json!({ "customer": payload["customer"], "orders": export }))
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(retry)?;
                tracing::info!(%channel, shop = %shop, orders = export.len(),
                    "customers/data_request: export recorded for the operator");
            }
            other => tracing::warn!(topic = other, "unknown compliance topic; ignored"),
        }
    }
    Ok(())
}

fn export_order(o: &shopbridge_proto::orders::Order) -> Value {
    let address = |a: &Option<shopbridge_proto::orders::Address>| {
        a.as_ref().map(|a| {
            json!({"name": a.name, "first_name": a.first_name, "last_name": a.last_name, "company": a.company,
                   "address1": a.address1, "address2": a.address2, "city": a.city, "province_code": a.province_code,
                   "zip": a.zip, "country_code": a.country_code, "phone": a.phone, "email": a.email})
        })
    };
    json!({
        "shopify_order_id": o.shopify_order_id,
        "name": o.name,
        "financial_status": o.financial_status,
        "fulfillment_status": o.fulfillment_status,
        "billing_address": address(&o.billing_address),
        "shipping_address": address(&o.shipping_address),
        "lines": o.lines.iter().map(|l| json!({"sku": l.sku, "title": l.title, "quantity": l.quantity})).collect::<Vec<_>>(),
        "pii_erased": o.pii_erased,
    })
}

/// Erases the PII of every order shipped longer ago than its channel's retention period, `batch` orders per
/// transaction; returns how many were erased.
pub async fn sweep(pool: &PgPool, now: DateTime<Utc>, batch: i64) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let mut tx = pool.begin().await?;
        let due: Vec<Uuid> = sqlx::query_scalar(
            "SELECT o.id FROM orders o
             JOIN get_orders_settings s ON s.tenant_id = o.tenant_id AND s.channel_id = o.channel_id
             WHERE o.pii_erased_at IS NULL AND o.shipped_at IS NOT NULL AND s.pii_retention_days IS NOT NULL
               AND o.shipped_at + make_interval(days => s.pii_retention_days) <= $1
             ORDER BY o.id LIMIT $2 FOR UPDATE OF o SKIP LOCKED",
        )
        .bind(now)
        .bind(batch.max(1))
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(total);
        }
        total += store::erase_pii(&mut tx, &due, "retention", now).await?;
        tx.commit().await?;
    }
}

pub async fn sweep_loop(
    pool: PgPool,
    every: std::time::Duration,
    batch: i64,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    loop {
        match sweep(&pool, Utc::now(), batch).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                erased = n,
                "PII of orders past their retention period erased"
            ),
            Err(e) => tracing::warn!(error = %e, "could not erase PII past its retention period"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}
