//! Getting tokens from Shopify: exchanging the OAuth redirect's code, and refreshing an expiring offline token. Only
//! the gateway talks to Shopify, so the production implementation is [`crate::gateway::GatewayAccess`]; tests may hold
//! their own (the same boxed-future shape as [`crate::shop_verifier::ShopVerifier`]).

use std::{future::Future, pin::Pin, time::Duration};

use secrecy::SecretString;

use crate::domain::ShopDomain;

/// A token as Shopify granted it.
pub struct Grant {
    pub access_token: SecretString,
    /// The granted scopes, as Shopify lists them.
    pub scopes: Vec<String>,
    /// `None` for a token that does not expire.
    pub expires_in: Option<Duration>,
    /// Expiring offline tokens only: the (rotating) refresh token and its lifetime.
    pub refresh_token: Option<SecretString>,
    pub refresh_token_expires_in: Option<Duration>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("scopes", &self.scopes)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// Shopify refused: the code was used or expired, the refresh token is dead, the app credentials are wrong.
    #[error("Shopify refused: {0}")]
    Refused(String),
    #[error("no Shopify store answers at this URL")]
    UnknownShop,
    /// Not now (the gateway or Shopify unreachable); nothing is known to be wrong.
    #[error("{0}")]
    Unavailable(String),
}

pub type AccessFuture<'a> = Pin<Box<dyn Future<Output = Result<Grant, AccessError>> + Send + 'a>>;

pub trait ShopifyAccess: Send + Sync + 'static {
    /// `POST /admin/oauth/access_token` with the code (`expiring`: ask for an expiring offline token).
    fn exchange_code<'a>(
        &'a self,
        shop: &'a ShopDomain,
        code: &'a SecretString,
        expiring: bool,
    ) -> AccessFuture<'a>;

    /// A new access token (and a new refresh token: the old one stops working).
    fn refresh_token<'a>(
        &'a self,
        shop: &'a ShopDomain,
        refresh_token: &'a SecretString,
    ) -> AccessFuture<'a>;
}
