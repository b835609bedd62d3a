//! OAuth state nonces: one per BeginOAuth, bound to its tenant, channel and shop, expiring, and consumed atomically
//! by the first callback that presents it (a single UPDATE, so two callbacks racing with one nonce cannot both pass).
//! Only the nonce's SHA-256 is stored: a read of the table does not yield a usable link.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A fresh nonce (32 random bytes, base64url) and the hash that is stored.
pub fn new_state() -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness for a state nonce"))?;
    let state = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&state);
    Ok((state, hash))
}

/// The stored form of a nonce: SHA-256, lowercase hex.
pub fn hash(state: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, state.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Records a nonce in the caller's transaction (with the channel's state change).
pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    state_hash: &str,
    tenant_id: Uuid,
    channel_id: Uuid,
    shop: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO oauth_states (state_hash, tenant_id, channel_id, shop_domain, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(state_hash)
    .bind(tenant_id)
    .bind(channel_id)
    .bind(shop)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What presenting a nonce at the callback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    /// Consumed now: the flow may go on for this channel.
    Now {
        tenant_id: Uuid,
        channel_id: Uuid,
    },
    /// No such nonce (never issued, or purged long after it expired).
    Unknown,
    /// Presented before: a replayed link.
    Used,
    Expired,
    /// Issued for another shop: left unconsumed (the link's rightful redirect may still come).
    OtherShop,
}

/// Consumes `state` for `shop` if it is unused and unexpired; otherwise says why not, consuming nothing.
pub async fn consume(pool: &PgPool, state: &str, shop: &str) -> sqlx::Result<Consumed> {
    let state_hash = hash(state);
    let consumed: Option<(Uuid, Uuid)> = sqlx::query_as(
        "UPDATE oauth_states SET consumed_at = now()
         WHERE state_hash = $1 AND shop_domain = $2 AND consumed_at IS NULL AND expires_at > now()
         RETURNING tenant_id, channel_id",
    )
    .bind(&state_hash)
    .bind(shop)
    .fetch_optional(pool)
    .await?;
    if let Some((tenant_id, channel_id)) = consumed {
        return Ok(Consumed::Now {
            tenant_id,
            channel_id,
        });
    }
    let found: Option<(String, bool, bool)> = sqlx::query_as(
        "SELECT shop_domain, consumed_at IS NOT NULL, expires_at <= now() FROM oauth_states WHERE state_hash = $1",
    )
    .bind(&state_hash)
    .fetch_optional(pool)
    .await?;
    Ok(match found {
        None => Consumed::Unknown,
        Some((_, true, _)) => Consumed::Used,
        Some((issued_for, _, _)) if issued_for != shop => Consumed::OtherShop,
        Some((_, _, true)) => Consumed::Expired,
        // Consumed or expired between the two statements.
        Some(_) => Consumed::Used,
    })
}

/// Deletes nonces that expired more than a day ago (kept that long so a late replay is told "used"/"expired", not
/// "unknown"); returns how many.
pub async fn purge(pool: &PgPool) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM oauth_states WHERE expires_at < now() - interval '1 day'")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_long_random_and_stored_hashed() {
        let (a, hash_a) = new_state().unwrap();
        let (b, _) = new_state().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_a, hash(&a));
        assert_eq!(hash_a.len(), 64);
        assert!(!hash_a.contains(&a));
    }
}
