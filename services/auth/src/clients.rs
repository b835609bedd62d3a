//! Tenants and their API clients; exchanging client credentials for an access token.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use shopbridge_platform::{
    auth_token::{self, Claims},
    error::ApiError,
};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::{crypto, domain::scopes, signing::SigningKeys};

/// A newly created client: the secret is shown once and stored only as a hash.
pub struct NewClient {
    pub tenant_id: Uuid,
    pub client_id: String,
    pub client_secret: SecretString,
    pub scopes: Vec<String>,
}

/// The tenant called `name`, created if missing.
pub async fn tenant_by_name(pool: &PgPool, name: &str) -> anyhow::Result<Uuid> {
    let name = name.trim();
    anyhow::ensure!(!name.is_empty(), "a tenant needs a name");
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(Uuid::now_v7())
        .bind(name)
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar("SELECT id FROM tenants WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await?)
}

/// Checks requested scopes: known ones only, no duplicates.
pub fn validate_scopes(requested: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for scope in requested {
        let scope = scope.trim();
        if !scopes::ALL.contains(&scope) {
            return Err(ApiError::InvalidArgument(format!(
                "unknown scope `{scope}`; known scopes: {}",
                scopes::ALL.join(", ")
            )));
        }
        if !out.iter().any(|s| s == scope) {
            out.push(scope.to_string());
        }
    }
    Ok(out)
}

pub async fn create_client(
    pool: &PgPool,
    tenant_id: Uuid,
    name: &str,
    scopes: Vec<String>,
    iterations: u32,
) -> anyhow::Result<NewClient> {
    let client_id = format!("sbc_{}", Uuid::new_v4().simple());
    let client_secret = crypto::generate_client_secret()?;
    let to_hash = SecretString::from(client_secret.expose_secret());
    let secret_hash =
        tokio::task::spawn_blocking(move || crypto::hash_secret(&to_hash, iterations)).await??;
    sqlx::query(
        "INSERT INTO api_clients (id, tenant_id, name, secret_hash, scopes) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&client_id)
    .bind(tenant_id)
    .bind(name)
    .bind(&secret_hash)
    .bind(&scopes)
    .execute(pool)
    .await?;
    tracing::info!(%tenant_id, %client_id, scopes = ?scopes, "api client created");
    Ok(NewClient {
        tenant_id,
        client_id,
        client_secret,
        scopes,
    })
}

/// The first administrator of a tenant (created if missing): every scope, including key rotation.
pub async fn bootstrap_admin(
    pool: &PgPool,
    tenant_name: &str,
    iterations: u32,
) -> anyhow::Result<NewClient> {
    let tenant_id = tenant_by_name(pool, tenant_name).await?;
    create_client(
        pool,
        tenant_id,
        "bootstrap admin",
        scopes::ALL.iter().map(|s| s.to_string()).collect(),
        iterations,
    )
    .await
}

/// The tenant that owns service identities (not a merchant).
pub const SYSTEM_TENANT: &str = "system";

/// shopify-gateway's service identity: the one client that may read any channel's Shopify token.
pub async fn bootstrap_gateway(pool: &PgPool, iterations: u32) -> anyhow::Result<NewClient> {
    let tenant_id = tenant_by_name(pool, SYSTEM_TENANT).await?;
    create_client(
        pool,
        tenant_id,
        "shopify-gateway",
        vec![scopes::CREDENTIALS_READ.to_string()],
        iterations,
    )
    .await
}

/// An issued access token.
pub struct IssuedToken {
    pub token: String,
    pub claims: Claims,
    pub expires_in: u64,
}

/// Exchanges client credentials for signed access tokens.
pub struct TokenIssuer {
    pub pool: PgPool,
    pub keys: Arc<SigningKeys>,
    pub issuer: String,
    pub ttl_secs: u64,
    pub iterations: u32,
}

const BAD_CREDENTIALS: &str = "invalid client credentials";

impl TokenIssuer {
    pub async fn issue(
        &self,
        client_id: &str,
        client_secret: SecretString,
    ) -> Result<IssuedToken, ApiError> {
        let row = sqlx::query(
            "SELECT tenant_id, secret_hash, scopes FROM api_clients WHERE id = $1 AND disabled_at IS NULL",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        let iterations = self.iterations;
        let Some(row) = row else {
            // As slow as a real check, so unknown client ids cannot be told apart by timing.
            tokio::task::spawn_blocking(move || {
                crypto::verify_against_nothing(client_secret.expose_secret(), iterations)
            })
            .await
            .map_err(anyhow::Error::from)?;
            metrics::counter!("auth_token_requests_refused_total").increment(1);
            return Err(ApiError::Unauthenticated(BAD_CREDENTIALS.into()));
        };
        let stored: String = row.get("secret_hash");
        let ok = tokio::task::spawn_blocking(move || {
            crypto::verify_secret(client_secret.expose_secret(), &stored)
        })
        .await
        .map_err(anyhow::Error::from)?;
        if !ok {
            tracing::info!(%client_id, "token refused: wrong client secret");
            metrics::counter!("auth_token_requests_refused_total").increment(1);
            return Err(ApiError::Unauthenticated(BAD_CREDENTIALS.into()));
        }
        let tenant_id: Uuid = row.get("tenant_id");
        let (kid, key) = self.keys.active_signer().await?;
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: client_id.to_string(),
            tenant: tenant_id.to_string(),
            scopes: row.get("scopes"),
            iat: now,
            exp: now + i64::try_from(self.ttl_secs).unwrap_or(i64::MAX / 2),
        };
        let token = auth_token::sign(&claims, &kid, &key);
        tracing::debug!(%client_id, %kid, "access token issued");
        metrics::counter!("auth_tokens_issued_total").increment(1);
        Ok(IssuedToken {
            token,
            claims,
            expires_in: self.ttl_secs,
        })
    }
}
