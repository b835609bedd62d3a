//! Batched writes to the catalog: each function is one statement (or two) over all its rows, passed as one JSONB
//! array and expanded with `jsonb_to_recordset`, so a batch of a thousand variants costs a handful of round trips.
//! Every statement is scoped by tenant; decimals go in as strings and are parsed by PostgreSQL into NUMERIC.

use serde_json::{Value, json};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::model::{
    ImportedVariant, LinkTarget, NewListing, NewVariant, ParentData, Quantity, total,
};

type Tx<'a> = Transaction<'a, Postgres>;

fn parent_json(parent: &ParentData) -> serde_json::Map<String, Value> {
    let Value::Object(map) = json!({
        "title": parent.title,
        "description_html": parent.description_html,
        "brand": parent.brand,
        "product_type": parent.product_type,
        "tags": parent.tags,
        "options": parent.options,
        "images": parent.images,
        "custom_fields": parent.custom_fields,
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

fn imported_json(imported: &ImportedVariant) -> serde_json::Map<String, Value> {
    let Value::Object(map) = json!({
        "barcode": imported.barcode,
        "option_values": imported.option_values,
        "weight_value": imported.weight.as_ref().map(|w| w.value.clone()),
        "weight_unit": imported.weight.as_ref().map(|w| w.unit.as_str()),
        "custom_fields": imported.custom_fields,
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

pub async fn insert_listings(
    tx: &mut Tx<'_>,
    tenant: Uuid,
    listings: &[NewListing],
) -> sqlx::Result<()> {
    if listings.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = listings
        .iter()
        .map(|l| {
            let mut row = parent_json(&l.parent);
            row.insert("id".into(), json!(l.id));
            row.insert("status".into(), json!(l.status.as_str()));
            row.insert("created_by_run_id".into(), json!(l.created_by_run_id));
            Value::Object(row)
        })
        .collect();
    sqlx::query(
        "INSERT INTO listings (id, tenant_id, title, description_html, brand, product_type, tags, options, images,
                               custom_fields, status, created_by_run_id)
         SELECT x.id, $1, x.title, x.description_html, x.brand, x.product_type, x.tags, x.options, x.images,
                x.custom_fields, x.status, x.created_by_run_id
         FROM jsonb_to_recordset($2) AS x(id uuid, title text, description_html text, brand text, product_type text,
              tags text[], options jsonb, images jsonb, custom_fields jsonb, status text, created_by_run_id uuid)",
    )
    .bind(tenant)
    .bind(Value::Array(rows))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts variants with their quantities (and totals). A SKU already in the tenant's catalog fails the statement
/// (the unique constraint), which callers turn into their own error.
pub async fn insert_variants(
    tx: &mut Tx<'_>,
    tenant: Uuid,
    variants: &[NewVariant],
) -> sqlx::Result<()> {
    if variants.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = variants
        .iter()
        .map(|v| {
            let mut row = imported_json(&v.data.imported);
            let extra = json!({
                "id": v.id, "listing_id": v.listing_id, "position": v.position, "sku": v.sku,
                "upc": v.data.upc, "gtin": v.data.gtin, "mpn": v.data.mpn, "asin": v.data.asin,
                "images": v.data.images, "total_quantity": total(&v.quantities),
                "cost": v.data.cost, "list_price": v.data.list_price, "msrp": v.data.msrp, "map": v.data.map,
            });
            if let Value::Object(extra) = extra {
                row.extend(extra);
            }
            Value::Object(row)
        })
        .collect();
    sqlx::query(
        "INSERT INTO variants (id, tenant_id, listing_id, position, sku, barcode, upc, gtin, mpn, asin, option_values,
                               weight_value, weight_unit, images, custom_fields, total_quantity, cost, list_price,
                               msrp, map)
         SELECT x.id, $1, x.listing_id, x.position, x.sku, x.barcode, x.upc, x.gtin, x.mpn, x.asin, x.option_values,
                x.weight_value, x.weight_unit, x.images, x.custom_fields, x.total_quantity, x.cost, x.list_price,
                x.msrp, x.map
         FROM jsonb_to_recordset($2) AS x(id uuid, listing_id uuid, position int, sku text, barcode text, upc text,
              gtin text, mpn text, asin text, option_values jsonb, weight_value numeric, weight_unit text,
              images jsonb, custom_fields jsonb, total_quantity bigint, cost numeric, list_price numeric,
              msrp numeric, map numeric)",
    )
    .bind(tenant)
    .bind(Value::Array(rows))
    .execute(&mut **tx)
    .await?;
    let quantities: Vec<(Uuid, &[Quantity])> = variants
        .iter()
        .map(|v| (v.id, v.quantities.as_slice()))
        .collect();
    insert_quantities(tx, &quantities).await
}

async fn insert_quantities(
    tx: &mut Tx<'_>,
    quantities: &[(Uuid, &[Quantity])],
) -> sqlx::Result<()> {
    let rows: Vec<Value> = quantities
        .iter()
        .flat_map(|(variant, qs)| {
            qs.iter().map(move |q| {
                json!({"variant_id": variant, "location_id": q.location_id, "quantity": q.quantity})
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO variant_quantities (variant_id, location_id, quantity)
         SELECT x.variant_id, x.location_id, x.quantity
         FROM jsonb_to_recordset($1) AS x(variant_id uuid, location_id text, quantity bigint)",
    )
    .bind(Value::Array(rows))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces the quantities of variants (every location) and their totals.
pub async fn replace_quantities(
    tx: &mut Tx<'_>,
    tenant: Uuid,
    quantities: &[(Uuid, &[Quantity])],
) -> sqlx::Result<()> {
    if quantities.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = quantities.iter().map(|(id, _)| *id).collect();
    sqlx::query(
        "DELETE FROM variant_quantities q USING variants v
         WHERE q.variant_id = v.id AND v.tenant_id = $1 AND v.id = ANY($2)",
    )
    .bind(tenant)
    .bind(&ids)
    .execute(&mut **tx)
    .await?;
    insert_quantities(tx, quantities).await?;
    let totals: Vec<Value> = quantities
        .iter()
        .map(|(id, qs)| json!({"id": id, "total": total(qs)}))
        .collect();
    sqlx::query(
        "UPDATE variants v SET total_quantity = x.total, updated_at = now()
         FROM jsonb_to_recordset($2) AS x(id uuid, total bigint)
         WHERE v.id = x.id AND v.tenant_id = $1",
    )
    .bind(tenant)
    .bind(Value::Array(totals))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces the parent data of listings.
pub async fn update_parents(
    tx: &mut Tx<'_>,
    tenant: Uuid,
    parents: &[(Uuid, &ParentData)],
) -> sqlx::Result<()> {
    if parents.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = parents
        .iter()
        .map(|(id, parent)| {
            let mut row = parent_json(parent);
            row.insert("id".into(), json!(id));
            Value::Object(row)
        })
        .collect();
    sqlx::query(
        "UPDATE listings l SET title = x.title, description_html = x.description_html, brand = x.brand,
                product_type = x.product_type, tags = x.tags, options = x.options, images = x.images,
                custom_fields = x.custom_fields, updated_at = now()
         FROM jsonb_to_recordset($2) AS x(id uuid, title text, description_html text, brand text, product_type text,
              tags text[], options jsonb, images jsonb, custom_fields jsonb)
         WHERE l.id = x.id AND l.tenant_id = $1",
    )
    .bind(tenant)
    .bind(Value::Array(rows))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces the imported fields of variants (see [`ImportedVariant`]).
pub async fn update_imported(
    tx: &mut Tx<'_>,
    tenant: Uuid,
    variants: &[(Uuid, &ImportedVariant)],
) -> sqlx::Result<()> {
    if variants.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = variants
        .iter()
        .map(|(id, imported)| {
            let mut row = imported_json(imported);
            row.insert("id".into(), json!(id));
            Value::Object(row)
        })
        .collect();
    sqlx::query(
        "UPDATE variants v SET barcode = x.barcode, option_values = x.option_values, weight_value = x.weight_value,
                weight_unit = x.weight_unit, custom_fields = x.custom_fields, updated_at = now()
         FROM jsonb_to_recordset($2) AS x(id uuid, barcode text, option_values jsonb, weight_value numeric,
              weight_unit text, custom_fields jsonb)
         WHERE v.id = x.id AND v.tenant_id = $1",
    )
    .bind(tenant)
    .bind(Value::Array(rows))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Links variants to Shopify variants on a channel. A Shopify variant linked to another of our variants before (its
/// SKU changed in Shopify) is unlinked from it first: one Shopify variant stands for one of ours.
pub async fn upsert_links(
    tx: &mut Tx<'_>,
    tenant: Uuid,
    channel: Uuid,
    links: &[(Uuid, &LinkTarget)],
) -> sqlx::Result<()> {
    if links.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = links
        .iter()
        .map(|(variant, target)| {
            json!({"variant_id": variant, "product_id": target.product_id,
                   "shopify_variant_id": target.shopify_variant_id, "inventory_item_id": target.inventory_item_id})
        })
        .collect();
    let rows = Value::Array(rows);
    sqlx::query(
        "DELETE FROM shopify_links k
         USING jsonb_to_recordset($2) AS x(variant_id uuid, shopify_variant_id text)
         WHERE k.channel_id = $1 AND k.shopify_variant_id = x.shopify_variant_id AND k.variant_id <> x.variant_id",
    )
    .bind(channel)
    .bind(&rows)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO shopify_links (variant_id, channel_id, tenant_id, product_id, shopify_variant_id,
                                    inventory_item_id)
         SELECT x.variant_id, $1, $2, x.product_id, x.shopify_variant_id, x.inventory_item_id
         FROM jsonb_to_recordset($3) AS x(variant_id uuid, product_id text, shopify_variant_id text,
              inventory_item_id text)
         ON CONFLICT (variant_id, channel_id) DO UPDATE SET product_id = EXCLUDED.product_id,
             shopify_variant_id = EXCLUDED.shopify_variant_id, inventory_item_id = EXCLUDED.inventory_item_id,
             linked_at = now()
         WHERE (shopify_links.product_id, shopify_links.shopify_variant_id, shopify_links.inventory_item_id)
               IS DISTINCT FROM (EXCLUDED.product_id, EXCLUDED.shopify_variant_id, EXCLUDED.inventory_item_id)",
    )
    .bind(channel)
    .bind(tenant)
    .bind(&rows)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
