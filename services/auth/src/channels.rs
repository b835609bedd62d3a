//! A tenant's channels (connected Shopify stores). Every query is scoped by the caller's tenant: another tenant's
//! channel is simply not found. Every state change writes a `ChannelStateChanged` event to the outbox in the same
//! transaction. Access tokens are encrypted before they reach the database and never leave this module.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use shopbridge_platform::{
    bus::{EventMeta, OutboxMessage, outbox},
    error::ApiError,
};
use shopbridge_proto::auth as pb;
use sqlx::{PgPool, Postgres, Row, Transaction, postgres::PgRow};
use uuid::Uuid;

use crate::{
    crypto::Encryptor,
    domain::{ChannelState, ShopDomain, channel_name},
    shop_verifier::{ShopVerifier, VerifyError},
};

/// What the merchant is told when the store refuses the token or does not exist (the spec's guidance).
pub const CHECK_TOKEN_AND_URL: &str = "check the token and store URL";

/// The associated data binding an encrypted access token to its channel.
pub fn token_context(channel_id: Uuid) -> String {
    format!("channel-token:{channel_id}")
}

/// The associated data binding an encrypted refresh token to its channel.
pub fn refresh_token_context(channel_id: Uuid) -> String {
    format!("channel-refresh-token:{channel_id}")
}

/// The columns of [`Channel`] (a macro, so queries stay literal strings).
macro_rules! columns {
    () => {
        "id, tenant_id, name, shop_domain, shop_name, plan, granted_scopes, state, last_error, created_at, updated_at"
    };
}

/// A channel as callers see it: no credentials.
#[derive(Debug, Clone)]
pub struct Channel {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub shop_domain: Option<String>,
    pub shop_name: Option<String>,
    pub plan: Option<String>,
    pub granted_scopes: Vec<String>,
    pub state: ChannelState,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Channel {
    fn from_row(row: &PgRow) -> anyhow::Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            name: row.try_get("name")?,
            shop_domain: row.try_get("shop_domain")?,
            shop_name: row.try_get("shop_name")?,
            plan: row.try_get("plan")?,
            granted_scopes: row.try_get("granted_scopes")?,
            state: ChannelState::parse(row.try_get("state")?)?,
            last_error: row.try_get("last_error")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    pub fn to_proto(&self) -> pb::Channel {
        pb::Channel {
            channel_id: self.id.to_string(),
            tenant_id: self.tenant_id.to_string(),
            name: self.name.clone(),
            shop_domain: self.shop_domain.clone().unwrap_or_default(),
            shop_name: self.shop_name.clone().unwrap_or_default(),
            plan: self.plan.clone().unwrap_or_default(),
            granted_scopes: self.granted_scopes.clone(),
            state: self.state.to_proto() as i32,
            last_error: self.last_error.clone().unwrap_or_default(),
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
        }
    }
}

pub(crate) fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("channel `{id}` not found"))
}

/// Channel ids travel as strings; a malformed one names no channel of the caller.
pub fn parse_channel_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id.trim()).map_err(|_| not_found(id))
}

/// Writes the event of a state change (`previous` is `None` for a new channel).
pub(crate) async fn record_state_change(
    tx: &mut Transaction<'_, Postgres>,
    previous: Option<ChannelState>,
    channel: &Channel,
) -> sqlx::Result<()> {
    if previous == Some(channel.state) {
        return Ok(());
    }
    publish_state(tx, previous, channel).await
}

/// Writes the event of a connection (new credentials stored), also when the channel was active already: the store
/// may have reinstalled the app, which drops its webhook subscriptions, so the gateway registers them again.
pub(crate) async fn record_connected(
    tx: &mut Transaction<'_, Postgres>,
    previous: ChannelState,
    channel: &Channel,
) -> sqlx::Result<()> {
    publish_state(tx, Some(previous), channel).await
}

async fn publish_state(
    tx: &mut Transaction<'_, Postgres>,
    previous: Option<ChannelState>,
    channel: &Channel,
) -> sqlx::Result<()> {
    let event = pb::ChannelStateChanged {
        tenant_id: channel.tenant_id.to_string(),
        channel_id: channel.id.to_string(),
        shop_domain: channel.shop_domain.clone().unwrap_or_default(),
        previous_state: previous.map_or(pb::ChannelState::Unspecified, ChannelState::to_proto)
            as i32,
        state: channel.state.to_proto() as i32,
        last_error: channel.last_error.clone().unwrap_or_default(),
        changed_at: Some(timestamp(channel.updated_at)),
    };
    let meta =
        EventMeta::tenant(channel.tenant_id.to_string()).with_channel(channel.id.to_string());
    outbox::enqueue(tx, OutboxMessage::event(meta, &event)).await?;
    tracing::info!(
        tenant_id = %channel.tenant_id,
        channel_id = %channel.id,
        from = previous.map_or("none", ChannelState::as_str),
        to = channel.state.as_str(),
        "channel state changed"
    );
    Ok(())
}

pub struct Channels {
    pub pool: PgPool,
    pub encryptor: Arc<Encryptor>,
    pub verifier: Arc<dyn ShopVerifier>,
}

impl Channels {
    pub async fn create(&self, tenant_id: Uuid, name: &str) -> Result<Channel, ApiError> {
        let name = channel_name(name).map_err(|e| ApiError::InvalidArgument(e.into()))?;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(concat!(
            "INSERT INTO channels (id, tenant_id, name, state) VALUES ($1, $2, $3, 'connecting')
             ON CONFLICT (tenant_id, name) DO NOTHING RETURNING ",
            columns!()
        ))
        .bind(Uuid::now_v7())
        .bind(tenant_id)
        .bind(&name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            ApiError::AlreadyExists(format!("a channel named `{name}` exists already"))
        })?;
        let channel = Channel::from_row(&row)?;
        record_state_change(&mut tx, None, &channel).await?;
        tx.commit().await?;
        Ok(channel)
    }

    pub async fn get(&self, tenant_id: Uuid, channel_id: &str) -> Result<Channel, ApiError> {
        let id = parse_channel_id(channel_id)?;
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM channels WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| not_found(channel_id))?;
        Ok(Channel::from_row(&row)?)
    }

    pub async fn list(&self, tenant_id: Uuid) -> Result<Vec<Channel>, ApiError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM channels WHERE tenant_id = $1 ORDER BY created_at, id"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(Channel::from_row)
            .collect::<anyhow::Result<_>>()?)
    }

    pub(crate) async fn lock(
        tx: &mut Transaction<'_, Postgres>,
        tenant_id: Uuid,
        channel_id: &str,
    ) -> Result<Channel, ApiError> {
        let id = parse_channel_id(channel_id)?;
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM channels WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| not_found(channel_id))?;
        Ok(Channel::from_row(&row)?)
    }

    /// Connects a channel with an Admin API token: the store URL is normalised, the token verified against the store
    /// (through the gateway), and only then stored, encrypted. A refused token or unknown store stores nothing.
    pub async fn connect_with_token(
        &self,
        tenant_id: Uuid,
        channel_id: &str,
        shop_input: &str,
        token: SecretString,
        granted_scopes: Vec<String>,
    ) -> Result<Channel, ApiError> {
        let shop =
            ShopDomain::parse(shop_input).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let token_text = token.expose_secret().trim();
        if token_text.is_empty() {
            return Err(ApiError::InvalidArgument(
                "the access token is empty: paste the Admin API access token of your custom app"
                    .into(),
            ));
        }
        if token_text.len() > 1024
            || token_text
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ApiError::InvalidArgument(format!(
                "this is not an Admin API access token: {CHECK_TOKEN_AND_URL}"
            )));
        }
        let token = SecretString::from(token_text);
        let granted_scopes: Vec<String> = granted_scopes
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        // The channel must exist for this tenant before anything is sent anywhere.
        self.get(tenant_id, channel_id).await?;

        let info = self
            .verifier
            .verify(&shop, &token)
            .await
            .map_err(|e| match e {
                VerifyError::InvalidToken => ApiError::FailedPrecondition(format!(
                    "Shopify refused the access token for {shop}: {CHECK_TOKEN_AND_URL}"
                )),
                VerifyError::UnknownShop => ApiError::FailedPrecondition(format!(
                    "no Shopify store answers at {shop}: {CHECK_TOKEN_AND_URL}"
                )),
                VerifyError::Unavailable(reason) => ApiError::Unavailable(format!(
                    "the store could not be verified now ({reason}); nothing was stored, try again later"
                )),
            })?;

        let mut tx = self.pool.begin().await?;
        let before = Self::lock(&mut tx, tenant_id, channel_id).await?;
        let token_enc = self
            .encryptor
            .encrypt(token.expose_secret().as_bytes(), &token_context(before.id))?;
        let updated = sqlx::query(concat!(
            "UPDATE channels SET shop_domain = $3, shop_name = $4, plan = $5, granted_scopes = $6,
                 access_token_enc = $7, access_token_expires_at = NULL, refresh_token_enc = NULL,
                 refresh_token_expires_at = NULL, state = 'active', last_error = NULL, updated_at = now()
             WHERE tenant_id = $1 AND id = $2 RETURNING ",
            columns!()
        ))
        .bind(tenant_id)
        .bind(before.id)
        .bind(shop.as_str())
        .bind(&info.name)
        .bind(&info.plan)
        .bind(&granted_scopes)
        .bind(&token_enc)
        .fetch_one(&mut *tx)
        .await;
        let row = match updated {
            Ok(row) => row,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(ApiError::AlreadyExists(format!(
                    "{shop} is connected to another channel of this tenant already"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let channel = Channel::from_row(&row)?;
        record_connected(&mut tx, before.state, &channel).await?;
        tx.commit().await?;
        Ok(channel)
    }

    /// Disconnects a channel: its stored token is deleted.
    pub async fn disconnect(&self, tenant_id: Uuid, channel_id: &str) -> Result<Channel, ApiError> {
        let mut tx = self.pool.begin().await?;
        let before = Self::lock(&mut tx, tenant_id, channel_id).await?;
        let row = sqlx::query(concat!(
            "UPDATE channels SET access_token_enc = NULL, access_token_expires_at = NULL, refresh_token_enc = NULL,
                 refresh_token_expires_at = NULL, state = 'disconnected', updated_at = now()
             WHERE tenant_id = $1 AND id = $2 RETURNING ", columns!()
        ))
        .bind(tenant_id)
        .bind(before.id)
        .fetch_one(&mut *tx)
        .await?;
        let channel = Channel::from_row(&row)?;
        record_state_change(&mut tx, Some(before.state), &channel).await?;
        tx.commit().await?;
        Ok(channel)
    }

    /// Marks a channel in error (e.g. Shopify revoked its token), keeping its credentials for a retry.
    pub async fn mark_error(
        &self,
        tenant_id: Uuid,
        channel_id: &str,
        reason: &str,
    ) -> Result<Channel, ApiError> {
        let mut tx = self.pool.begin().await?;
        let channel = Self::set_error(&mut tx, tenant_id, channel_id, reason).await?;
        tx.commit().await?;
        Ok(channel)
    }

    /// [`Channels::mark_error`] in the caller's transaction.
    pub(crate) async fn set_error(
        tx: &mut Transaction<'_, Postgres>,
        tenant_id: Uuid,
        channel_id: &str,
        reason: &str,
    ) -> Result<Channel, ApiError> {
        let before = Self::lock(tx, tenant_id, channel_id).await?;
        let row = sqlx::query(concat!(
            "UPDATE channels SET state = 'error', last_error = $3, updated_at = now()
             WHERE tenant_id = $1 AND id = $2 RETURNING ",
            columns!()
        ))
        .bind(tenant_id)
        .bind(before.id)
        .bind(reason)
        .fetch_one(&mut **tx)
        .await?;
        let channel = Channel::from_row(&row)?;
        record_state_change(tx, Some(before.state), &channel).await?;
        Ok(channel)
    }

    /// The decrypted access token of a channel (for the gateway's credential read, which comes with the gateway).
    pub async fn access_token(
        &self,
        tenant_id: Uuid,
        channel_id: &str,
    ) -> Result<Option<SecretString>, ApiError> {
        let id = parse_channel_id(channel_id)?;
        let stored: Option<Option<String>> = sqlx::query_scalar(
            "SELECT access_token_enc FROM channels WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let stored = stored.ok_or_else(|| not_found(channel_id))?;
        stored
            .map(|value| {
                self.encryptor
                    .decrypt_string(&value, &token_context(id))
                    .map_err(|e| ApiError::Internal(anyhow::anyhow!("channel {id} token: {e}")))
            })
            .transpose()
    }
}

/// Disconnects every channel connected to `shop` (any tenant) in the caller's transaction, deleting its token and
/// publishing each change; returns how many changed. Channels already disconnected are left as they are, so a
/// repeated event changes nothing and publishes nothing.
pub async fn disconnect_shop(
    tx: &mut Transaction<'_, Postgres>,
    shop: &str,
    reason: &str,
) -> sqlx::Result<usize> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM channels WHERE shop_domain = $1 AND state <> 'disconnected' FOR UPDATE"
    ))
    .bind(shop.to_ascii_lowercase())
    .fetch_all(&mut **tx)
    .await?;
    for row in &rows {
        let before =
            Channel::from_row(row).map_err(|e| sqlx::Error::Decode(e.to_string().into()))?;
        let row = sqlx::query(concat!(
            "UPDATE channels SET access_token_enc = NULL, access_token_expires_at = NULL, refresh_token_enc = NULL,
                 refresh_token_expires_at = NULL, state = 'disconnected', last_error = $2, updated_at = now()
             WHERE id = $1 RETURNING ",
            columns!()
        ))
        .bind(before.id)
        .bind(reason)
        .fetch_one(&mut **tx)
        .await?;
        let after =
            Channel::from_row(&row).map_err(|e| sqlx::Error::Decode(e.to_string().into()))?;
        record_state_change(tx, Some(before.state), &after).await?;
    }
    Ok(rows.len())
}

/// shop_domain, granted_scopes, state, access_token_enc
type CredentialRow = (Option<String>, Vec<String>, String, Option<String>);

/// A connected channel's shop and token, for the gateway.
pub struct ShopCredentials {
    pub shop_domain: String,
    pub access_token: SecretString,
    pub granted_scopes: Vec<String>,
}

impl Channels {
    /// The credentials of any tenant's channel (the caller holds `credentials:read`); a channel that is not active
    /// has none to give.
    pub async fn credentials(&self, channel_id: &str) -> Result<ShopCredentials, ApiError> {
        let id = parse_channel_id(channel_id)?;
        let row: Option<CredentialRow> = sqlx::query_as(
            "SELECT shop_domain, granted_scopes, state, access_token_enc FROM channels WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let (shop_domain, granted_scopes, state, token) =
            row.ok_or_else(|| not_found(channel_id))?;
        let (Some(shop_domain), Some(token), "active") = (shop_domain, token, state.as_str())
        else {
            return Err(ApiError::FailedPrecondition(format!(
                "channel {channel_id} is {state}, not connected: connect it again"
            )));
        };
        let access_token = self
            .encryptor
            .decrypt_string(&token, &token_context(id))
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("channel {id} token: {e}")))?;
        Ok(ShopCredentials {
            shop_domain,
            access_token,
            granted_scopes,
        })
    }
}

/// Re-encrypts every stored secret that is not under the active key; returns how many values changed.
pub async fn reencrypt_all(pool: &PgPool, encryptor: &Encryptor) -> anyhow::Result<u64> {
    let mut changed = 0;
    let keys = sqlx::query("SELECT kid, private_key_enc FROM signing_keys")
        .fetch_all(pool)
        .await?;
    for row in keys {
        let kid: String = row.get("kid");
        let stored: String = row.get("private_key_enc");
        if encryptor.is_current(&stored) {
            continue;
        }
        let context = crate::signing::private_key_context(&kid);
        let plain = encryptor
            .decrypt(&stored, &context)
            .map_err(|e| anyhow::anyhow!("signing key {kid}: {e}"))?;
        let fresh = encryptor.encrypt(&plain, &context)?;
        changed += sqlx::query(
            "UPDATE signing_keys SET private_key_enc = $3 WHERE kid = $1 AND private_key_enc = $2",
        )
        .bind(&kid)
        .bind(&stored)
        .bind(&fresh)
        .execute(pool)
        .await?
        .rows_affected();
    }
    let tokens = sqlx::query(
        "SELECT id, access_token_enc, refresh_token_enc FROM channels
         WHERE access_token_enc IS NOT NULL OR refresh_token_enc IS NOT NULL",
    )
    .fetch_all(pool)
    .await?;
    for row in tokens {
        let id: Uuid = row.get("id");
        // Each column on its own: a concurrent refresh that replaced a value makes its UPDATE match nothing.
        for (column, context) in [
            ("access_token_enc", token_context(id)),
            ("refresh_token_enc", refresh_token_context(id)),
        ] {
            let Some(stored) = row.get::<Option<String>, _>(column) else {
                continue;
            };
            if encryptor.is_current(&stored) {
                continue;
            }
            let plain = encryptor
                .decrypt(&stored, &context)
                .map_err(|e| anyhow::anyhow!("channel {id} {column}: {e}"))?;
            let fresh = encryptor.encrypt(&plain, &context)?;
            let update = match column {
                "access_token_enc" => {
                    "UPDATE channels SET access_token_enc = $3 WHERE id = $1 AND access_token_enc = $2"
                }
                _ => {
                    "UPDATE channels SET refresh_token_enc = $3 WHERE id = $1 AND refresh_token_enc = $2"
                }
            };
            changed += sqlx::query(update)
                .bind(id)
                .bind(&stored)
                .bind(&fresh)
                .execute(pool)
                .await?
                .rows_affected();
        }
    }
    tracing::info!(
        active_kid = encryptor.active_kid(),
        reencrypted = changed,
        "stored secrets re-encrypted"
    );
    Ok(changed)
}

/// What a channel connected with OAuth stores: the grant (encrypted) and what Shopify said about the shop.
pub struct GrantToStore<'a> {
    pub shop: &'a ShopDomain,
    pub grant: &'a crate::shop_access::Grant,
    /// `None` when the shop query failed after the exchange (the token is stored anyway: the code is spent).
    pub info: Option<crate::shop_verifier::ShopInfo>,
}

fn after(duration: Option<std::time::Duration>) -> Option<DateTime<Utc>> {
    duration.and_then(|d| chrono::Duration::from_std(d).ok().map(|d| Utc::now() + d))
}

impl Channels {
    /// Starts an OAuth connection of a channel in one transaction: records the state nonce (hash) and, for a channel
    /// that was disconnected or in error, turns it CONNECTING (published). An active channel stays active (with its
    /// token) until the new grant replaces it. A store connected to another channel of the tenant is refused.
    pub async fn begin_oauth(
        &self,
        tenant_id: Uuid,
        channel_id: &str,
        shop: &ShopDomain,
        state_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Channel, ApiError> {
        let mut tx = self.pool.begin().await?;
        let before = Self::lock(&mut tx, tenant_id, channel_id).await?;
        let taken: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM channels WHERE tenant_id = $1 AND shop_domain = $2 AND id <> $3",
        )
        .bind(tenant_id)
        .bind(shop.as_str())
        .bind(before.id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(other) = taken {
            return Err(ApiError::AlreadyExists(format!(
                "{shop} is connected to another channel of this tenant already ({other})"
            )));
        }
        crate::oauth_states::insert(
            &mut tx,
            state_hash,
            tenant_id,
            before.id,
            shop.as_str(),
            expires_at,
        )
        .await?;
        let channel = match before.state {
            ChannelState::Disconnected | ChannelState::Error => {
                let row = sqlx::query(concat!(
                    "UPDATE channels SET state = 'connecting', last_error = NULL, updated_at = now()
                     WHERE tenant_id = $1 AND id = $2 RETURNING ",
                    columns!()
                ))
                .bind(tenant_id)
                .bind(before.id)
                .fetch_one(&mut *tx)
                .await?;
                let channel = Channel::from_row(&row)?;
                record_state_change(&mut tx, Some(before.state), &channel).await?;
                channel
            }
            ChannelState::Connecting | ChannelState::Active => before,
        };
        tx.commit().await?;
        Ok(channel)
    }

    /// Stores an OAuth grant, encrypted, and makes the channel ACTIVE (published).
    pub async fn store_grant(
        &self,
        tenant_id: Uuid,
        channel_id: Uuid,
        to_store: GrantToStore<'_>,
    ) -> Result<Channel, ApiError> {
        let GrantToStore { shop, grant, info } = to_store;
        let mut tx = self.pool.begin().await?;
        let before = Self::lock(&mut tx, tenant_id, &channel_id.to_string()).await?;
        let access_enc = self.encryptor.encrypt(
            grant.access_token.expose_secret().as_bytes(),
            &token_context(before.id),
        )?;
        let refresh_enc = grant
            .refresh_token
            .as_ref()
            .map(|r| {
                self.encryptor.encrypt(
                    r.expose_secret().as_bytes(),
                    &refresh_token_context(before.id),
                )
            })
            .transpose()?;
        let (name, plan) = info.map(|i| (i.name, i.plan)).unzip();
        let updated = sqlx::query(concat!(
            "UPDATE channels SET
                 shop_name = CASE WHEN $4::text IS NOT NULL THEN $4 WHEN shop_domain = $3 THEN shop_name END,
                 plan = CASE WHEN $5::text IS NOT NULL THEN $5 WHEN shop_domain = $3 THEN plan END,
                 shop_domain = $3, granted_scopes = $6, access_token_enc = $7, access_token_expires_at = $8,
                 refresh_token_enc = $9, refresh_token_expires_at = $10,
                 state = 'active', last_error = NULL, updated_at = now()
             WHERE tenant_id = $1 AND id = $2 RETURNING ",
            columns!()
        ))
        .bind(tenant_id)
        .bind(before.id)
        .bind(shop.as_str())
        .bind(name)
        .bind(plan)
        .bind(&grant.scopes)
        .bind(&access_enc)
        .bind(after(grant.expires_in))
        .bind(refresh_enc)
        .bind(after(grant.refresh_token_expires_in))
        .fetch_one(&mut *tx)
        .await;
        let row = match updated {
            Ok(row) => row,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(ApiError::AlreadyExists(format!(
                    "{shop} is connected to another channel of this tenant already"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let channel = Channel::from_row(&row)?;
        record_connected(&mut tx, before.state, &channel).await?;
        tx.commit().await?;
        Ok(channel)
    }

    /// Replaces a channel's token after a refresh, in the caller's transaction (the row is locked by the refresh);
    /// the state does not change, so nothing is published.
    pub(crate) async fn store_refreshed(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        channel_id: Uuid,
        grant: &crate::shop_access::Grant,
    ) -> Result<(), ApiError> {
        let access_enc = self.encryptor.encrypt(
            grant.access_token.expose_secret().as_bytes(),
            &token_context(channel_id),
        )?;
        let refresh_enc = grant
            .refresh_token
            .as_ref()
            .map(|r| {
                self.encryptor.encrypt(
                    r.expose_secret().as_bytes(),
                    &refresh_token_context(channel_id),
                )
            })
            .transpose()?;
        sqlx::query(
            "UPDATE channels SET access_token_enc = $2, access_token_expires_at = $3, refresh_token_enc = $4,
                 refresh_token_expires_at = $5,
                 granted_scopes = CASE WHEN cardinality($6::text[]) > 0 THEN $6 ELSE granted_scopes END,
                 updated_at = now()
             WHERE id = $1",
        )
        .bind(channel_id)
        .bind(&access_enc)
        .bind(after(grant.expires_in))
        .bind(refresh_enc)
        .bind(after(grant.refresh_token_expires_in))
        .bind(&grant.scopes)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
