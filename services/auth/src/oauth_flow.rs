//! The OAuth connection of a channel (the spec's recommended flow), end to end:
//!
//! 1. [`OAuthFlow::begin`] (gRPC `BeginOAuth`): a single-use state nonce bound to the tenant, channel and shop, and
//!    the URL of Shopify's grant screen with the configured scopes and redirect URI.
//! 2. [`OAuthFlow::complete`] (`GET /shopify/oauth/callback`): the redirect's HMAC (constant time), timestamp and shop
//!    domain, then the nonce (consumed atomically), then the code exchanged through shopify-gateway, the granted
//!    scopes checked against the required ones, the token stored encrypted and the channel ACTIVE.
//!
//! Every refusal names what went wrong and what to do, and stores no credentials; checks that fail before the nonce
//! leave it unconsumed.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use shopbridge_platform::error::ApiError;
use uuid::Uuid;

use crate::{
    channels::{Channel, Channels, GrantToStore},
    config::OAuthSettings,
    domain::ShopDomain,
    oauth::{self, CallbackError},
    oauth_states::{self, Consumed},
    shop_access::{AccessError, ShopifyAccess},
};

/// What the merchant reads when the connection worked (the spec's words).
pub const SUCCESS: &str = "Success! Your Shopify channel is now active.";

const START_AGAIN: &str = "start the connection again from Shopbridge";

pub struct OAuthFlow {
    pub channels: Arc<Channels>,
    pub settings: OAuthSettings,
    /// shopify-gateway (`None` without one: OAuth is refused as unavailable).
    pub access: Option<Arc<dyn ShopifyAccess>>,
}

/// A started connection.
pub struct Begun {
    pub authorize_url: String,
    pub expires_at: DateTime<Utc>,
    pub shop: ShopDomain,
}

/// A refused callback: the HTTP status and the page's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

impl OAuthFlow {
    fn gateway(&self) -> Option<&Arc<dyn ShopifyAccess>> {
        self.access.as_ref()
    }

    pub async fn begin(
        &self,
        tenant_id: Uuid,
        channel_id: &str,
        shop_input: &str,
    ) -> Result<Begun, ApiError> {
        if !self.settings.enabled() {
            return Err(ApiError::FailedPrecondition(
                "OAuth is not configured on this deployment (service.oauth.client_id and client_secret): \
                 connect with an API token instead"
                    .into(),
            ));
        }
        if self.gateway().is_none() {
            return Err(ApiError::Unavailable(
                "connecting with OAuth needs shopify-gateway (service.gateway.url is not set)"
                    .into(),
            ));
        }
        let shop =
            ShopDomain::parse(shop_input).map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let (state, state_hash) = oauth_states::new_state()?;
        let ttl = chrono::Duration::seconds(
            i64::try_from(self.settings.state_ttl_secs).unwrap_or(i64::MAX / 4),
        );
        let expires_at = Utc::now() + ttl;
        let channel = self
            .channels
            .begin_oauth(tenant_id, channel_id, &shop, &state_hash, expires_at)
            .await?;
        let scopes = self.settings.scope_list();
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let authorize_url = oauth::authorize_url(
            &shop,
            (&self.settings.shop_scheme, self.settings.shop_port),
            self.settings.client_id.trim(),
            &scopes,
            &self.settings.redirect_uri,
            &state,
        );
        tracing::info!(%tenant_id, channel_id = %channel.id, shop = %shop, "oauth connection started");
        Ok(Begun {
            authorize_url,
            expires_at,
            shop,
        })
    }

    /// Completes the connection for the redirect's query parameters (decoded, in order).
    pub async fn complete(&self, params: &[(String, String)]) -> Result<Channel, Refusal> {
        let result = self.complete_inner(params).await;
        let outcome = match &result {
            Ok(_) => "connected",
            Err(r) if r.status == 401 => "unsigned",
            Err(r) if r.status >= 500 => "unavailable",
            Err(_) => "refused",
        };
        metrics::counter!("auth_oauth_callbacks_total", "outcome" => outcome).increment(1);
        result
    }

    async fn complete_inner(&self, params: &[(String, String)]) -> Result<Channel, Refusal> {
        if !self.settings.enabled() {
            return Err(refuse(
                503,
                "OAuth is not configured on this deployment: connect with an API token instead",
            ));
        }
        let max_age = Duration::from_secs(self.settings.max_timestamp_age_secs);
        let shop = oauth::check_callback(
            params,
            &self.settings.client_secret,
            Utc::now().timestamp(),
            max_age,
        )
        .map_err(|e| {
            tracing::warn!(reason = %e, "oauth callback refused");
            match e {
                CallbackError::BadSignature => refuse(
                    401,
                    format!("This request was not signed by Shopify, so it was ignored: {START_AGAIN}."),
                ),
                CallbackError::Stale(_) => refuse(
                    400,
                    format!("This link is too old (or its time is wrong): {START_AGAIN}."),
                ),
                CallbackError::BadShop => refuse(
                    400,
                    "The store in this request is not a Shopify store domain (<name>.myshopify.com).",
                ),
                other => refuse(400, format!("This request is malformed ({other}): {START_AGAIN}.")),
            }
        })?;
        let (tenant_id, channel_id) = match oauth_states::consume(
            &self.channels.pool,
            param(params, "state"),
            shop.as_str(),
        )
        .await
        {
            Ok(Consumed::Now {
                tenant_id,
                channel_id,
            }) => (tenant_id, channel_id),
            Ok(refused) => {
                tracing::warn!(shop = %shop, state = ?refused, "oauth callback refused");
                let why = match refused {
                    Consumed::Used => "This connection link was used already",
                    Consumed::Expired => "This connection link expired",
                    Consumed::OtherShop => "This connection link was issued for another store",
                    _ => "This connection link was not issued by Shopbridge",
                };
                return Err(refuse(400, format!("{why}: {START_AGAIN}.")));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read oauth states");
                return Err(refuse(
                    503,
                    "Shopbridge cannot complete the connection right now: try again in a minute.",
                ));
            }
        };
        self.exchange_and_store(&shop, tenant_id, channel_id, param(params, "code"))
            .await
    }

    async fn exchange_and_store(
        &self,
        shop: &ShopDomain,
        tenant_id: Uuid,
        channel_id: Uuid,
        code: &str,
    ) -> Result<Channel, Refusal> {
        let gateway = self.gateway().ok_or_else(|| {
            refuse(
                503,
                "Connecting with OAuth needs shopify-gateway, which is not configured.",
            )
        })?;
        let code = SecretString::from(code);
        let grant = gateway
            .exchange_code(shop, &code, self.settings.expiring_tokens)
            .await
            .map_err(|e| {
                tracing::warn!(%tenant_id, %channel_id, shop = %shop, error = %e, "oauth code exchange failed");
                match e {
                    AccessError::Refused(reason) => refuse(
                        400,
                        format!("Shopify did not accept the authorization ({reason}): {START_AGAIN}."),
                    ),
                    AccessError::UnknownShop => {
                        refuse(400, format!("No Shopify store answers at {shop}: {START_AGAIN}."))
                    }
                    AccessError::Unavailable(_) => refuse(
                        503,
                        format!("Shopify could not be reached to complete the connection: {START_AGAIN} in a minute."),
                    ),
                }
            })?;
        let missing = oauth::missing_scopes(&self.settings.scope_list(), &grant.scopes);
        if !missing.is_empty() {
            let message = format!(
                "Shopify granted fewer permissions than the channel operations need; missing: {}. Approve every \
                 requested permission: {START_AGAIN}.",
                missing.join(", ")
            );
            tracing::warn!(%tenant_id, %channel_id, shop = %shop, missing = ?missing, "oauth grant lacks scopes");
            if let Err(e) = self
                .channels
                .mark_error(tenant_id, &channel_id.to_string(), &message)
                .await
            {
                tracing::error!(%channel_id, error = %e, "cannot mark the channel in error");
            }
            return Err(refuse(400, message));
        }
        // The shop's name and plan; a failure here does not lose the grant (the code is spent).
        let info = match self
            .channels
            .verifier
            .verify(shop, &grant.access_token)
            .await
        {
            Ok(info) => Some(info),
            Err(e) => {
                tracing::warn!(shop = %shop, error = %e, "shop details unavailable after the exchange");
                None
            }
        };
        let channel = self
            .channels
            .store_grant(
                tenant_id,
                channel_id,
                GrantToStore {
                    shop,
                    grant: &grant,
                    info,
                },
            )
            .await
            .map_err(|e| match e {
                ApiError::AlreadyExists(m) | ApiError::NotFound(m) => refuse(400, format!("{m}.")),
                other => {
                    tracing::error!(%channel_id, error = %other, "cannot store the oauth grant");
                    refuse(
                        503,
                        format!("Shopbridge could not store the connection: {START_AGAIN}."),
                    )
                }
            })?;
        tracing::info!(
            %tenant_id,
            %channel_id,
            shop = %shop,
            expiring = grant.expires_in.is_some(),
            "channel connected with oauth"
        );
        Ok(channel)
    }
}
