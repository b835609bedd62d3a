//! The catalog in the listings database: [`model`] (types), [`read`] and [`write`] (queries), and the actions of the
//! API that are more than one query (create, unpause).

pub mod model;
pub mod read;
pub mod write;

use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Error, Result};
use model::{NewListing, NewVariant};

/// Adds listings with their variants, all or nothing; a SKU the catalog holds already is refused.
pub async fn create(
    pool: &PgPool,
    tenant: Uuid,
    listings: &[NewListing],
    variants: &[NewVariant],
) -> Result<()> {
    let mut tx = pool.begin().await?;
    let skus: Vec<String> = variants.iter().map(|v| v.sku.clone()).collect();
    let taken = read::existing_skus(&mut tx, tenant, &skus).await?;
    if !taken.is_empty() {
        return Err(already_exists(&taken));
    }
    write::insert_listings(&mut tx, tenant, listings).await?;
    if let Err(e) = write::insert_variants(&mut tx, tenant, variants).await {
        // A concurrent create of the same SKU got there first.
        return Err(match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::AlreadyExists(
                "a SKU of this request was added to the catalog meanwhile; nothing was created"
                    .into(),
            ),
            _ => e.into(),
        });
    }
    tx.commit().await?;
    Ok(())
}

fn already_exists(skus: &[String]) -> Error {
    let shown: Vec<&str> = skus.iter().take(10).map(String::as_str).collect();
    let more = skus.len().saturating_sub(shown.len());
    Error::AlreadyExists(format!(
        "the catalog already holds SKU {}{}; each variant needs a SKU of its own (nothing was created)",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
}

/// Paused listings among `ids` become active; returns how many did.
pub async fn unpause_ids(pool: &PgPool, tenant: Uuid, ids: &[Uuid]) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE listings SET status = 'active', updated_at = now()
         WHERE tenant_id = $1 AND id = ANY($2) AND status = 'paused'",
    )
    .bind(tenant)
    .bind(ids)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Paused listings created by import run `run` become active; returns how many did.
pub async fn unpause_run(pool: &PgPool, tenant: Uuid, run: Uuid) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE listings SET status = 'active', updated_at = now()
         WHERE tenant_id = $1 AND created_by_run_id = $2 AND status = 'paused'",
    )
    .bind(tenant)
    .bind(run)
    .execute(pool)
    .await?
    .rows_affected())
}
