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

/// Which of these Shopify order ids the channel holds already.
pub async fn known(
    conn: &mut PgConnection,
    tenant: Uuid,
    channel: Uuid,
    shopify_order_ids: &[String],
) -> sqlx::Result<std::collections::HashSet<String>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT shopify_order_id FROM orders WHERE tenant_id = $1 AND channel_id = $2 AND shopify_order_id = ANY($3)",
    )
    .bind(tenant)
    .bind(channel)
    .bind(shopify_order_ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().collect())
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

/// Lines and addresses in one statement each (arrays unnested), whatever the order's size.
async fn write_children(
    conn: &mut PgConnection,
    id: Uuid,
    order: &StoredOrder,
    erased: bool,
) -> sqlx::Result<()> {
    if !order.lines.is_empty() {
        let l = &order.lines;
        let positions: Vec<i32> = (0..l.len() as i32).collect();
        let col = |f: fn(&crate::domain::order::Line) -> Option<String>| -> Vec<Option<String>> {
            l.iter().map(f).collect()
        };
        sqlx::query(
            "INSERT INTO order_lines (order_id, position, shopify_line_item_id, shopify_variant_id, sku, title,
                                      quantity, fulfillable_quantity, unit_price, currency, digital, custom_attributes)
             SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                                      $8::bigint[], $9::numeric[], $10::text[], $11::bool[], $12::jsonb[])",
        )
        .bind(id)
        .bind(&positions)
        .bind(col(|x| Some(x.shopify_line_item_id.clone())))
        .bind(col(|x| Some(x.shopify_variant_id.clone())))
        .bind(col(|x| x.sku.clone()))
        .bind(col(|x| x.title.clone()))
        .bind(l.iter().map(|x| x.quantity).collect::<Vec<Option<i64>>>())
        .bind(l.iter().map(|x| x.fulfillable_quantity).collect::<Vec<i64>>())
        .bind(col(|x| x.unit_price.clone()))
        .bind(col(|x| Some(x.currency.clone())))
        .bind(l.iter().map(|x| x.digital).collect::<Vec<bool>>())
        .bind(
            l.iter()
                .map(|x| x.custom_attributes.as_ref().map(sqlx::types::Json))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await?;
    }
    if erased {
        return Ok(());
    }
    let addresses: Vec<(&str, &crate::domain::order::Address)> =
        [("billing", &order.billing), ("shipping", &order.shipping)]
            .into_iter()
            .filter_map(|(kind, a)| a.as_ref().map(|a| (kind, a)))
            .collect();
    if addresses.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&crate::domain::order::Address) -> Option<String>| -> Vec<Option<String>> {
        addresses.iter().map(|(_, a)| f(a)).collect()
    };
    sqlx::query(
        "INSERT INTO order_addresses (order_id, kind, name, first_name, last_name, company, address1, address2, city,
                                      province_code, zip, country_code, phone, email)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                                  $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])",
    )
    .bind(id)
    .bind(addresses.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>())
    .bind(col(|a| a.name.clone()))
    .bind(col(|a| a.first_name.clone()))
    .bind(col(|a| a.last_name.clone()))
    .bind(col(|a| a.company.clone()))
    .bind(col(|a| a.address1.clone()))
    .bind(col(|a| a.address2.clone()))
    .bind(col(|a| a.city.clone()))
    .bind(col(|a| a.province_code.clone()))
    .bind(col(|a| a.zip.clone()))
    .bind(col(|a| a.country_code.clone()))
    .bind(col(|a| a.phone.clone()))
    .bind(col(|a| a.email.clone()))
    .execute(&mut *conn)
    .await?;
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
