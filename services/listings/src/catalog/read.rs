//! Reads of the catalog: whole listings for the API (with variants, quantities and links), the page queries with
//! their filters, and what an import batch needs to know about the variants it matches. Every query is scoped by
//! tenant.

use std::collections::HashMap;

use serde::Deserialize;
use sqlx::{PgConnection, Row, postgres::PgRow, types::Json};
use uuid::Uuid;

use super::model::{
    ImportedVariant, Link, LinkTarget, Listing, ListingStatus, NameValue, ParentData, Quantity,
    Variant, VariantData, Weight, WeightUnit,
};

#[derive(Deserialize)]
struct QuantityRow {
    location_id: String,
    quantity: i64,
}

fn quantities(row: &PgRow) -> Vec<Quantity> {
    row.get::<Json<Vec<QuantityRow>>, _>("quantities")
        .0
        .into_iter()
        .map(|q| Quantity {
            location_id: q.location_id,
            quantity: q.quantity,
        })
        .collect()
}

fn parent(row: &PgRow) -> ParentData {
    ParentData {
        title: row.get("title"),
        description_html: row.get("description_html"),
        brand: row.get("brand"),
        product_type: row.get("product_type"),
        tags: row.get("tags"),
        options: row.get::<Json<_>, _>("options").0,
        images: row.get::<Json<_>, _>("images").0,
        custom_fields: row.get::<Json<_>, _>("custom_fields").0,
    }
}

fn imported(row: &PgRow) -> ImportedVariant {
    let weight_value: Option<String> = row.get("weight_value");
    let weight_unit: Option<String> = row.get("weight_unit");
    ImportedVariant {
        barcode: row.get("barcode"),
        option_values: row.get::<Json<Vec<NameValue>>, _>("option_values").0,
        weight: match (
            weight_value,
            weight_unit.as_deref().and_then(WeightUnit::parse),
        ) {
            // NUMERIC keeps the scale it was written with; compare canonical forms.
            (Some(value), Some(unit)) => Some(Weight {
                value: crate::decimal::canonical(&value).unwrap_or(value),
                unit,
            }),
            _ => None,
        },
        custom_fields: row.get::<Json<Vec<NameValue>>, _>("custom_fields").0,
    }
}

fn money(row: &PgRow, column: &str) -> Option<String> {
    row.get::<Option<String>, _>(column)
        .map(|m| crate::decimal::canonical(&m).unwrap_or(m))
}

/// Quantities of the variant `v` as a JSON array ordered by location.
const QUANTITIES_OF_V: &str = "COALESCE((SELECT jsonb_agg(jsonb_build_object('location_id', q.location_id, \
     'quantity', q.quantity) ORDER BY q.location_id) FROM variant_quantities q WHERE q.variant_id = v.id), '[]')";

/// Whole listings by id, in the order of `ids`; ids of other tenants (or of nothing) are left out.
pub async fn listings(
    db: &mut PgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<Vec<Listing>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT id, title, description_html, brand, product_type, tags, options, images, custom_fields, status,
                created_by_run_id, created_at, updated_at
         FROM listings WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(&mut *db)
    .await?;
    let mut by_id: HashMap<Uuid, Listing> = rows
        .iter()
        .map(|row| {
            let id: Uuid = row.get("id");
            let status: String = row.get("status");
            (
                id,
                Listing {
                    id,
                    parent: parent(row),
                    status: ListingStatus::parse(&status).unwrap_or(ListingStatus::Active),
                    created_by_run_id: row.get("created_by_run_id"),
                    created_at: row.get("created_at"),
                    updated_at: row.get("updated_at"),
                    variants: Vec::new(),
                },
            )
        })
        .collect();
    let variant_rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT v.id, v.listing_id, v.position, v.sku, v.barcode, v.upc, v.gtin, v.mpn, v.asin, v.option_values,
                v.weight_value::text AS weight_value, v.weight_unit, v.images, v.custom_fields, v.total_quantity,
                v.cost::text AS cost, v.list_price::text AS list_price, v.msrp::text AS msrp, v.map::text AS map,
                {QUANTITIES_OF_V} AS quantities
         FROM variants v WHERE v.tenant_id = $1 AND v.listing_id = ANY($2)
         ORDER BY v.listing_id, v.position, v.id"
    )))
    .bind(tenant)
    .bind(ids)
    .fetch_all(&mut *db)
    .await?;
    let variant_ids: Vec<Uuid> = variant_rows.iter().map(|r| r.get("id")).collect();
    let mut links: HashMap<Uuid, Vec<Link>> = HashMap::new();
    for row in sqlx::query(
        "SELECT variant_id, channel_id, product_id, shopify_variant_id, inventory_item_id, linked_at
         FROM shopify_links WHERE tenant_id = $1 AND variant_id = ANY($2) ORDER BY channel_id",
    )
    .bind(tenant)
    .bind(&variant_ids)
    .fetch_all(&mut *db)
    .await?
    {
        links
            .entry(row.get("variant_id"))
            .or_default()
            .push(Link {
                channel_id: row.get("channel_id"),
                product_id: row.get("product_id"),
                shopify_variant_id: row.get("shopify_variant_id"),
                inventory_item_id: row.get("inventory_item_id"),
                linked_at: row.get("linked_at"),
            });
    }
    for row in &variant_rows {
        let id: Uuid = row.get("id");
        let listing_id: Uuid = row.get("listing_id");
        let Some(listing) = by_id.get_mut(&listing_id) else {
            continue;
        };
        listing.variants.push(Variant {
            id,
            position: row.get("position"),
            sku: row.get("sku"),
            data: VariantData {
                imported: imported(row),
                upc: row.get("upc"),
                gtin: row.get("gtin"),
                mpn: row.get("mpn"),
                asin: row.get("asin"),
                images: row.get::<Json<_>, _>("images").0,
                cost: money(row, "cost"),
                list_price: money(row, "list_price"),
                msrp: money(row, "msrp"),
                map: money(row, "map"),
            },
            quantities: quantities(row),
            total_quantity: row.get("total_quantity"),
            links: links.remove(&id).unwrap_or_default(),
        });
    }
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// The filters of ListListings; every one optional.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// A variant with exactly this SKU.
    pub sku: Option<String>,
    pub status: Option<ListingStatus>,
    /// Some variant linked (true) or none linked (false), on `channel` if given, else on any channel.
    pub linked: Option<bool>,
    pub channel: Option<Uuid>,
    /// ILIKE patterns that must each match the title, the brand or a SKU.
    pub text_patterns: Vec<String>,
    pub created_by_run: Option<Uuid>,
}

/// The WHERE clause shared by the page and the count ($1 tenant, $2..$7 the filters).
macro_rules! list_where {
    () => {
        "WHERE l.tenant_id = $1
           AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM variants v WHERE v.listing_id = l.id AND v.sku = $2))
           AND ($3::text IS NULL OR l.status = $3)
           AND ($4::boolean IS NULL OR $4 = EXISTS (
                SELECT 1 FROM variants v JOIN shopify_links k ON k.variant_id = v.id
                WHERE v.listing_id = l.id AND ($5::uuid IS NULL OR k.channel_id = $5)))
           AND NOT EXISTS (SELECT 1 FROM unnest($6::text[]) AS w(p)
                WHERE NOT (l.title ILIKE w.p OR l.brand ILIKE w.p
                           OR EXISTS (SELECT 1 FROM variants v WHERE v.listing_id = l.id AND v.sku ILIKE w.p)))
           AND ($7::uuid IS NULL OR l.created_by_run_id = $7)"
    };
}

/// A page of listing ids after `after` and how many match in all. Listings come by title (ties by id), so a person
/// reads them in an order that means something and that does not change with the order an import created them in;
/// the keyset is the (title, id) of the listing `after`.
pub async fn page(
    db: &mut PgConnection,
    tenant: Uuid,
    filter: &ListFilter,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<(Vec<Uuid>, i64)> {
    let bind = |query: sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>| {
        query
            .bind(tenant)
            .bind(filter.sku.clone())
            .bind(filter.status.map(ListingStatus::as_str))
            .bind(filter.linked)
            .bind(filter.channel)
            .bind(filter.text_patterns.clone())
            .bind(filter.created_by_run)
    };
    let ids: Vec<Uuid> = bind(sqlx::query(concat!(
        "SELECT l.id FROM listings l ",
        list_where!(),
        " AND ($8::uuid IS NULL OR (l.title, l.id) > \
           (SELECT a.title, a.id FROM listings a WHERE a.tenant_id = $1 AND a.id = $8)) \
         ORDER BY l.title, l.id LIMIT $9"
    )))
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *db)
    .await?
    .iter()
    .map(|r| r.get("id"))
    .collect();
    let total: i64 = bind(sqlx::query(concat!(
        "SELECT count(*) AS total FROM listings l ",
        list_where!()
    )))
    .fetch_one(&mut *db)
    .await?
    .get("total");
    Ok((ids, total))
}

/// A variant of the catalog that an import matched by SKU, as much of it as the import compares and rewrites.
#[derive(Debug, Clone)]
pub struct MatchedVariant {
    pub id: Uuid,
    pub listing_id: Uuid,
    pub imported: ImportedVariant,
    /// By location id.
    pub quantities: Vec<Quantity>,
    /// Its current link on the channel being imported.
    pub link: Option<LinkTarget>,
}

/// The variants of the tenant's catalog with these SKUs, by SKU, with their link on `channel`.
pub async fn variants_by_sku(
    db: &mut PgConnection,
    tenant: Uuid,
    channel: Uuid,
    skus: &[String],
) -> sqlx::Result<HashMap<String, MatchedVariant>> {
    if skus.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT v.id, v.listing_id, v.sku, v.barcode, v.option_values, v.weight_value::text AS weight_value,
                v.weight_unit, v.custom_fields, {QUANTITIES_OF_V} AS quantities,
                k.product_id, k.shopify_variant_id, k.inventory_item_id
         FROM variants v LEFT JOIN shopify_links k ON k.variant_id = v.id AND k.channel_id = $2
         WHERE v.tenant_id = $1 AND v.sku = ANY($3)"
    )))
    .bind(tenant)
    .bind(channel)
    .bind(skus)
    .fetch_all(&mut *db)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let link =
                row.get::<Option<String>, _>("shopify_variant_id")
                    .map(|shopify_variant_id| LinkTarget {
                        product_id: row.get("product_id"),
                        shopify_variant_id,
                        inventory_item_id: row.get("inventory_item_id"),
                    });
            (
                row.get("sku"),
                MatchedVariant {
                    id: row.get("id"),
                    listing_id: row.get("listing_id"),
                    imported: imported(row),
                    quantities: quantities(row),
                    link,
                },
            )
        })
        .collect())
}

/// A listing an import may change, as much of it as the import needs.
#[derive(Debug, Clone)]
pub struct ListingToChange {
    pub parent: ParentData,
    /// The highest position of its variants (new variants go after it).
    pub last_position: i32,
    /// Its first variant (by position): the one whose Shopify product its parent data follows.
    pub first_variant: Option<Uuid>,
}

/// Listings an import batch may change, locked until the batch commits: in id order, so batches applied at once
/// that touch the same listings take turns instead of deadlocking, and each sees what the one before wrote.
pub async fn listings_to_change(
    db: &mut PgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<HashMap<Uuid, ListingToChange>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(
        "SELECT l.id, l.title, l.description_html, l.brand, l.product_type, l.tags, l.options, l.images,
                l.custom_fields,
                COALESCE((SELECT max(v.position) FROM variants v WHERE v.listing_id = l.id), 0) AS last_position,
                (SELECT v.id FROM variants v WHERE v.listing_id = l.id ORDER BY v.position, v.id LIMIT 1)
                    AS first_variant
         FROM listings l WHERE l.tenant_id = $1 AND l.id = ANY($2)
         ORDER BY l.id FOR UPDATE OF l",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(&mut *db)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get("id"),
                ListingToChange {
                    parent: parent(row),
                    last_position: row.get("last_position"),
                    first_variant: row.get("first_variant"),
                },
            )
        })
        .collect())
}

/// The tenant's SKUs among `skus` (CreateListings refuses SKUs the catalog holds already).
pub async fn existing_skus(
    db: &mut PgConnection,
    tenant: Uuid,
    skus: &[String],
) -> sqlx::Result<Vec<String>> {
    Ok(
        sqlx::query("SELECT sku FROM variants WHERE tenant_id = $1 AND sku = ANY($2) ORDER BY sku")
            .bind(tenant)
            .bind(skus)
            .fetch_all(&mut *db)
            .await?
            .iter()
            .map(|r| r.get("sku"))
            .collect(),
    )
}
