//! Expiring offline tokens (1 h, with a rotating refresh token) are refreshed before they expire: every
//! `service.oauth.refresh_interval_secs`, channels whose token expires within `refresh_margin_secs` get a new token
//! and refresh token through shopify-gateway, stored encrypted. Each channel is refreshed under its row lock
//! (`FOR UPDATE SKIP LOCKED`), so two replicas never spend the same refresh token (the second use would be refused
//! and wrongly fail the channel). A refresh Shopify refuses turns the channel ERROR ("connect again"); one that cannot
//! be done now is retried at the next round. The same loop purges old state nonces.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    channels::{Channels, refresh_token_context},
    domain::ShopDomain,
    oauth_flow::OAuthFlow,
    oauth_states,
    shop_access::{AccessError, ShopifyAccess},
};

/// The reason shown on a channel whose token could not be refreshed.
pub fn refresh_refused(reason: &str) -> String {
    format!(
        "Shopify refused to renew the channel's access token ({reason}): connect the channel again"
    )
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub refreshed: usize,
    pub failed: usize,
    pub postponed: usize,
}

pub async fn run(flow: Arc<OAuthFlow>, cancel: CancellationToken) -> anyhow::Result<()> {
    let every = Duration::from_secs(flow.settings.refresh_interval_secs.max(1));
    loop {
        if let Some(access) = flow.access.clone() {
            match refresh_due(
                &flow.channels,
                access.as_ref(),
                flow.settings.refresh_margin_secs,
            )
            .await
            {
                Ok(round) if round != Round::default() => {
                    tracing::info!(
                        refreshed = round.refreshed,
                        failed = round.failed,
                        postponed = round.postponed,
                        "token refresh round"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "token refresh round failed"),
            }
        }
        match oauth_states::purge(&flow.channels.pool).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "old oauth states purged"),
            Err(e) => tracing::warn!(error = %e, "cannot purge old oauth states"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Refreshes every channel whose expiring token is due within `margin_secs`.
pub async fn refresh_due(
    channels: &Channels,
    access: &dyn ShopifyAccess,
    margin_secs: u64,
) -> anyhow::Result<Round> {
    let margin = margin_secs as f64;
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM channels
         WHERE state = 'active' AND refresh_token_enc IS NOT NULL
           AND access_token_expires_at < now() + make_interval(secs => $1)
         ORDER BY access_token_expires_at LIMIT 100",
    )
    .bind(margin)
    .fetch_all(&channels.pool)
    .await?;
    let mut round = Round::default();
    for id in due {
        // One channel's trouble (say, a value that no longer decrypts) does not hold up the others.
        match refresh_one(channels, access, id, margin).await {
            Ok(Outcome::Refreshed) => round.refreshed += 1,
            Ok(Outcome::Failed) => round.failed += 1,
            Ok(Outcome::Postponed) => round.postponed += 1,
            Ok(Outcome::Skipped) => {}
            Err(e) => {
                round.postponed += 1;
                tracing::error!(channel_id = %id, error = %format!("{e:#}"), "token refresh failed");
            }
        }
    }
    Ok(round)
}

enum Outcome {
    Refreshed,
    Failed,
    Postponed,
    /// Refreshed by another replica meanwhile, or locked by it now.
    Skipped,
}

async fn refresh_one(
    channels: &Channels,
    access: &dyn ShopifyAccess,
    id: Uuid,
    margin: f64,
) -> anyhow::Result<Outcome> {
    let mut tx = channels.pool.begin().await?;
    let row: Option<(Uuid, String, String)> = sqlx::query_as(
        "SELECT tenant_id, shop_domain, refresh_token_enc FROM channels
         WHERE id = $1 AND state = 'active' AND refresh_token_enc IS NOT NULL
           AND access_token_expires_at < now() + make_interval(secs => $2)
         FOR UPDATE SKIP LOCKED",
    )
    .bind(id)
    .bind(margin)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((tenant_id, shop, refresh_enc)) = row else {
        return Ok(Outcome::Skipped);
    };
    let shop = ShopDomain::parse(&shop).map_err(|e| anyhow::anyhow!("channel {id}: {e}"))?;
    let refresh = channels
        .encryptor
        .decrypt_string(&refresh_enc, &refresh_token_context(id))
        .map_err(|e| anyhow::anyhow!("channel {id} refresh token: {e}"))?;
    let outcome = match access.refresh_token(&shop, &refresh).await {
        Ok(grant) => {
            channels
                .store_refreshed(&mut tx, id, &grant)
                .await
                .map_err(|e| anyhow::anyhow!("channel {id}: {e}"))?;
            tx.commit().await?;
            tracing::info!(%tenant_id, channel_id = %id, shop = %shop, "access token refreshed");
            Outcome::Refreshed
        }
        Err(e @ (AccessError::Refused(_) | AccessError::UnknownShop)) => {
            let reason = refresh_refused(&e.to_string());
            Channels::set_error(&mut tx, tenant_id, &id.to_string(), &reason)
                .await
                .map_err(|e| anyhow::anyhow!("channel {id}: {e}"))?;
            tx.commit().await?;
            tracing::warn!(%tenant_id, channel_id = %id, shop = %shop, error = %e, "token refresh refused; channel in error");
            Outcome::Failed
        }
        Err(AccessError::Unavailable(reason)) => {
            tracing::warn!(channel_id = %id, shop = %shop, %reason, "token refresh postponed");
            Outcome::Postponed
        }
    };
    let label = match outcome {
        Outcome::Refreshed => "refreshed",
        Outcome::Failed => "refused",
        Outcome::Postponed => "postponed",
        Outcome::Skipped => "skipped",
    };
    metrics::counter!("auth_token_refreshes_total", "outcome" => label).increment(1);
    Ok(outcome)
}
