//! Checking a store URL and an Admin API token against Shopify before they are stored. Only the gateway talks to
//! Shopify, so the production implementation asks shopify-gateway; it comes with the gateway. Until then the service
//! runs with [`GatewayNotDeployed`], which refuses every connection with a clear message.

use std::{future::Future, pin::Pin};

use secrecy::SecretString;

use crate::domain::ShopDomain;

/// What Shopify says about a store the token opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopInfo {
    pub name: String,
    pub plan: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Shopify refused the token for this store.
    #[error("Shopify refused the access token")]
    InvalidToken,
    /// No store answers at this domain.
    #[error("no Shopify store answers at this URL")]
    UnknownShop,
    /// Verification could not be done now; nothing is wrong with the input as far as we know.
    #[error("{0}")]
    Unavailable(String),
}

pub type VerifyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ShopInfo, VerifyError>> + Send + 'a>>;

/// Verifies that `token` opens `shop` (a boxed future, so the service can hold any implementation).
pub trait ShopVerifier: Send + Sync + 'static {
    fn verify<'a>(&'a self, shop: &'a ShopDomain, token: &'a SecretString) -> VerifyFuture<'a>;
}

/// The verifier of a deployment without shopify-gateway.
pub struct GatewayNotDeployed;

pub const GATEWAY_NOT_DEPLOYED: &str = "shop verification needs shopify-gateway (not deployed)";

impl ShopVerifier for GatewayNotDeployed {
    fn verify<'a>(&'a self, _: &'a ShopDomain, _: &'a SecretString) -> VerifyFuture<'a> {
        Box::pin(async { Err(VerifyError::Unavailable(GATEWAY_NOT_DEPLOYED.into())) })
    }
}
