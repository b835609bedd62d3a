//! The orders in the database: reading them whole (order, lines, addresses) and writing them, always scoped by
//! tenant. Addresses and the customer's email are the PII: [`erase_pii`] deletes them and marks the order.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row, postgres::PgRow};
use uuid::Uuid;

use crate::domain::order::{Address, Line, OrderMeta, StoredOrder};

const ORDER_COLUMNS: &str = "id, tenant_id, channel_id, shopify_order_id, name, financial_status, fulfillment_status, \
     location_id, currency, location_currency, total_amount::text AS total_amount, shipping_method_title, non_shippable, \
     digital, shopify_created_at, shopify_updated_at, customer_id, customer_email, pii_erased_at, shipped_at, \
     tagged_at, tag_requested_at, imported_at, updated_at";

/// An order row with what the importer needs besides the order.
#[derive(Debug, Clone)]
pub struct Found {
    pub meta: OrderMeta,
    pub order: StoredOrder,
    pub tag_requested: bool,
}

fn order_row(row: &PgRow) -> Found {
    Found {
        meta: OrderMeta {
            id: row.get("id"),
            tenant_id: row.get("tenant_id"),
            channel_id: row.get("channel_id"),
            pii_erased_at: row.get("pii_erased_at"),
            shipped_at: row.get("shipped_at"),
            tagged_at: row.get("tagged_at"),
            imported_at: row.get("imported_at"),
            updated_at: row.get("updated_at"),
        },
        tag_requested: row
            .get::<Option<DateTime<Utc>>, _>("tag_requested_at")
            .is_some(),
        order: StoredOrder {
            shopify_order_id: row.get("shopify_order_id"),
            name: row.get("name"),
            financial_status: row.get("financial_status"),
            fulfillment_status: row.get("fulfillment_status"),
            location_id: row.get("location_id"),
            currency: row.get("currency"),
            location_currency: row.get("location_currency"),
            total_amount: row.get("total_amount"),
            shipping_method_title: row.get("shipping_method_title"),
            non_shippable: row.get("non_shippable"),
            digital: row.get("digital"),
            shopify_created_at: row.get("shopify_created_at"),
            shopify_updated_at: row.get("shopify_updated_at"),
            customer_id: row.get("customer_id"),
            customer_email: row.get("customer_email"),
            lines: Vec::new(),
            billing: None,
            shipping: None,
        },
    }
}

/// Orders by id, whole, in the order of `ids` (missing ones left out).
pub async fn load(conn: &mut PgConnection, tenant: Uuid, ids: &[Uuid]) -> sqlx::Result<Vec<Found>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE tenant_id = $1 AND id = ANY($2)"
    )))
    .bind(tenant)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_id: HashMap<Uuid, Found> = rows
        .iter()
        .map(|r| {
            let f = order_row(r);
            (f.meta.id, f)
        })
        .collect();
    let lines = sqlx::query(
        "SELECT order_id, shopify_line_item_id, shopify_variant_id, sku, title, quantity, fulfillable_quantity,
                unit_price::text AS unit_price, currency, digital, custom_attributes
         FROM order_lines WHERE order_id = ANY($1) ORDER BY order_id, position",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    for row in lines {
        let id: Uuid = row.get("order_id");
        let attrs: Option<sqlx::types::Json<Vec<(String, String)>>> = row.get("custom_attributes");
        if let Some(found) = by_id.get_mut(&id) {
            found.order.lines.push(Line {
                shopify_line_item_id: row.get("shopify_line_item_id"),
                shopify_variant_id: row.get("shopify_variant_id"),
                sku: row.get("sku"),
                title: row.get("title"),
                quantity: row.get("quantity"),
                fulfillable_quantity: row.get("fulfillable_quantity"),
                unit_price: row.get("unit_price"),
                currency: row.get("currency"),
                digital: row.get("digital"),
                custom_attributes: attrs.map(|a| a.0),
            });
        }
    }
    let addresses = sqlx::query(
        "SELECT order_id, kind, name, first_name, last_name, company, address1, address2, city, province_code, zip,
                country_code, phone, email
         FROM order_addresses WHERE order_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    for row in addresses {
        let id: Uuid = row.get("order_id");
        let address = Address {
            name: row.get("name"),
            first_name: row.get("first_name"),
            last_name: row.get("last_name"),
            company: row.get("company"),
            address1: row.get("address1"),
            address2: row.get("address2"),
            city: row.get("city"),
            province_code: row.get("province_code"),
            zip: row.get("zip"),
            country_code: row.get("country_code"),
            phone: row.get("phone"),
            email: row.get("email"),
        };
        if let Some(found) = by_id.get_mut(&id) {
            match row.get::<&str, _>("kind") {
                "billing" => found.order.billing = Some(address),
                _ => found.order.shipping = Some(address),
            }
        }
    }
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// The order with this Shopify id on the channel, locked for the transaction.
pub async fn find_for_update(
    conn: &mut PgConnection,
    tenant: Uuid,
    channel: Uuid,
    shopify_order_id: &str,
) -> sqlx::Result<Option<Found>> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE tenant_id = $1 AND channel_id = $2 AND shopify_order_id = $3 FOR UPDATE",
    )
    .bind(tenant)
    .bind(channel)
    .bind(shopify_order_id)
    .fetch_optional(&mut *conn)
    .await?;
    match id {
        Some(id) => Ok(load(conn, tenant, &[id]).await?.pop()),
        None => Ok(None),
    }
}

/// Inserts a new order; `None` when another transaction inserted it first (the caller retries as an update).
pub async fn insert(
    conn: &mut PgConnection,
    tenant: Uuid,
    channel: Uuid,
    order: &StoredOrder,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Uuid>> {
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO orders (id, tenant_id, channel_id, shopify_order_id, name, financial_status, fulfillment_status,
                             location_id, currency, location_currency, total_amount, shipping_method_title,
                             non_shippable, digital, shopify_created_at, shopify_updated_at, customer_id,
                             customer_email, shipped_at, imported_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::numeric, $12, $13, $14, $15, $16, $17, $18,
                 CASE WHEN $19 THEN $20 END, $20, $20)
         ON CONFLICT (tenant_id, channel_id, shopify_order_id) DO NOTHING",
    )
    .bind(id)
    .bind(tenant)
    .bind(channel)
    .bind(&order.shopify_order_id)
    .bind(&order.name)
    .bind(&order.financial_status)
    .bind(&order.fulfillment_status)
    .bind(&order.location_id)
    .bind(&order.currency)
    .bind(&order.location_currency)
    .bind(&order.total_amount)
    .bind(&order.shipping_method_title)
    .bind(order.non_shippable)
    .bind(order.digital)
    .bind(order.shopify_created_at)
    .bind(order.shopify_updated_at)
    .bind(&order.customer_id)
    .bind(&order.customer_email)
    .bind(order.fully_fulfilled())
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    write_children(conn, id, order, false).await?;
    Ok(Some(id))
}

/// Replaces an order's fields, lines and addresses. An order whose PII was erased stays erased: no address or email
/// is written again.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    order: &StoredOrder,
    erased: bool,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE orders SET name = $2, financial_status = $3, fulfillment_status = $4, location_id = $5, currency = $6,
                location_currency = $7, total_amount = $8::numeric, shipping_method_title = $9, non_shippable = $10,
                digital = $11, shopify_created_at = $12, shopify_updated_at = $13, customer_id = $14,
                customer_email = CASE WHEN pii_erased_at IS NULL THEN $15 END,
                shipped_at = CASE WHEN $16 THEN COALESCE(shipped_at, $17) END, updated_at = $17
         WHERE id = $1",
    )
    .bind(id)
    .bind(&order.name)
    .bind(&order.financial_status)
    .bind(&order.fulfillment_status)
    .bind(&order.location_id)
    .bind(&order.currency)
    .bind(&order.location_currency)
    .bind(&order.total_amount)
    .bind(&order.shipping_method_title)
    .bind(order.non_shippable)
    .bind(order.digital)
    .bind(order.shopify_created_at)
    .bind(order.shopify_updated_at)
    .bind(&order.customer_id)
    .bind(&order.customer_email)
    .bind(order.fully_fulfilled())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM order_lines WHERE order_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM order_addresses WHERE order_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    write_children(conn, id, order, erased).await
}

async fn write_children(
    conn: &mut PgConnection,
    id: Uuid,
    order: &StoredOrder,
    erased: bool,
) -> sqlx::Result<()> {
    for (position, l) in order.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO order_lines (order_id, position, shopify_line_item_id, shopify_variant_id, sku, title, quantity,
                                      fulfillable_quantity, unit_price, currency, digital, custom_attributes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::numeric, $10, $11, $12)",
        )
        .bind(id)
        .bind(position as i32)
        .bind(&l.shopify_line_item_id)
        .bind(&l.shopify_variant_id)
        .bind(&l.sku)
        .bind(&l.title)
        .bind(l.quantity)
        .bind(l.fulfillable_quantity)
        .bind(&l.unit_price)
        .bind(&l.currency)
        .bind(l.digital)
        .bind(l.custom_attributes.as_ref().map(sqlx::types::Json))
        .execute(&mut *conn)
        .await?;
    }
    if erased {
        return Ok(());
    }
    for (kind, address) in [("billing", &order.billing), ("shipping", &order.shipping)] {
        let Some(a) = address else { continue };
        sqlx::query(
            "INSERT INTO order_addresses (order_id, kind, name, first_name, last_name, company, address1, address2, city,
                                          province_code, zip, country_code, phone, email)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(id)
        .bind(kind)
        .bind(&a.name)
        .bind(&a.first_name)
        .bind(&a.last_name)
        .bind(&a.company)
        .bind(&a.address1)
        .bind(&a.address2)
        .bind(&a.city)
        .bind(&a.province_code)
        .bind(&a.zip)
        .bind(&a.country_code)
        .bind(&a.phone)
        .bind(&a.email)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn record_history(
    conn: &mut PgConnection,
    id: Uuid,
    kind: &str,
    source: &str,
    run_id: Option<Uuid>,
    changes: &[String],
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO order_history (order_id, at, kind, source, run_id, changes) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id)
        .bind(at)
        .bind(kind)
        .bind(source)
        .bind(run_id)
        .bind(changes)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Erases the PII of these orders (addresses deleted, customer email cleared, the order marked), recording it in
/// their history; returns how many were erased (orders erased before are left as they are).
pub async fn erase_pii(
    conn: &mut PgConnection,
    ids: &[Uuid],
    source: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let erased: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE orders SET customer_email = NULL, pii_erased_at = $2, updated_at = $2
         WHERE id = ANY($1) AND pii_erased_at IS NULL RETURNING id",
    )
    .bind(ids)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM order_addresses WHERE order_id = ANY($1)")
        .bind(&erased)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO order_history (order_id, at, kind, source, changes)
         SELECT id, $2, 'pii_erased', $3, '{addresses,customer_email}' FROM unnest($1::uuid[]) AS id",
    )
    .bind(&erased)
    .bind(now)
    .bind(source)
    .execute(&mut *conn)
    .await?;
    Ok(erased.len() as u64)
}
