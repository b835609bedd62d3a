//! shopify-gateway's `ShopifyAccessService`, as auth uses it: token verification (the production
//! [`ShopVerifier`]), code exchange and token refresh ([`ShopifyAccess`]). Auth calls it with a token it signs for its
//! own service identity (scope `shopify:access`), which the gateway verifies with auth's published keys. Tokens cross
//! only in these gRPC messages, never on the bus.

use std::{sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use shopbridge_platform::auth_token::{self, Claims};
use shopbridge_proto::gateway::{
    self as pb, shopify_access_service_client::ShopifyAccessServiceClient,
    verify_token_response::Verdict,
};
use tonic::{Code, Request, Status, transport::Channel};
use uuid::Uuid;

use crate::{
    config::GatewaySettings,
    domain::{ShopDomain, scopes},
    shop_access::{AccessError, AccessFuture, Grant, ShopifyAccess},
    shop_verifier::{ShopInfo, ShopVerifier, VerifyError, VerifyFuture},
    signing::SigningKeys,
};

/// The `sub` of the tokens auth signs for itself.
pub const AUTH_SERVICE_SUBJECT: &str = "shopbridge-auth";

/// Signs (and caches) auth's own access token for the gateway.
pub struct ServiceIdentity {
    pub keys: Arc<SigningKeys>,
    pub issuer: String,
    /// The system tenant (service identities are not a merchant's).
    pub tenant_id: Uuid,
    pub ttl_secs: u64,
    cached: tokio::sync::Mutex<Option<(SecretString, i64)>>,
}

impl ServiceIdentity {
    pub fn new(keys: Arc<SigningKeys>, issuer: String, tenant_id: Uuid, ttl_secs: u64) -> Self {
        Self {
            keys,
            issuer,
            tenant_id,
            ttl_secs,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A token with the `shopify:access` scope, re-signed a minute before it expires.
    async fn token(&self) -> anyhow::Result<SecretString> {
        let now = chrono::Utc::now().timestamp();
        let mut cached = self.cached.lock().await;
        if let Some((token, renew_at)) = cached.as_ref()
            && now < *renew_at
        {
            return Ok(token.clone());
        }
        let (kid, key) = self.keys.active_signer().await?;
        let ttl = i64::try_from(self.ttl_secs).unwrap_or(3600).max(1);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: AUTH_SERVICE_SUBJECT.into(),
            tenant: self.tenant_id.to_string(),
            scopes: vec![scopes::SHOPIFY_ACCESS.to_string()],
            iat: now,
            exp: now + ttl,
        };
        let token = SecretString::from(auth_token::sign(&claims, &kid, &key));
        *cached = Some((token.clone(), now + (ttl - 60).max(ttl / 2)));
        Ok(token)
    }
}

pub struct GatewayAccess {
    channel: Channel,
    identity: ServiceIdentity,
}

impl GatewayAccess {
    pub fn new(settings: &GatewaySettings, identity: ServiceIdentity) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(settings.url.clone())
            .map_err(|e| anyhow::anyhow!("configuration key `service.gateway.url`: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(settings.timeout_secs))
            .connect_lazy();
        Ok(Self { channel, identity })
    }

    async fn request<T>(&self, message: T) -> Result<Request<T>, Status> {
        let token = self.identity.token().await.map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "cannot sign auth's own token for the gateway");
            Status::unavailable("auth cannot sign its own token")
        })?;
        let mut request = Request::new(message);
        let bearer = format!("Bearer {}", token.expose_secret())
            .parse()
            .map_err(|_| Status::internal("the service token is not a valid header"))?;
        request.metadata_mut().insert("authorization", bearer);
        shopbridge_platform::grpc::inject_trace(&mut request);
        Ok(request)
    }

    fn client(&self) -> ShopifyAccessServiceClient<Channel> {
        ShopifyAccessServiceClient::new(self.channel.clone())
    }
}

/// Why the gateway could not help, for messages (never the request, which carries secrets).
fn unavailable(status: &Status) -> String {
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => format!(
            "shopify-gateway refused auth's identity ({}): check the gateway's service.tokens",
            status.message()
        ),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            format!("shopify-gateway: {}", status.message())
        }
        _ => format!(
            "shopify-gateway answered {:?}: {}",
            status.code(),
            status.message()
        ),
    }
}

fn access_error(status: Status) -> AccessError {
    match status.code() {
        Code::FailedPrecondition | Code::InvalidArgument => {
            AccessError::Refused(status.message().to_string())
        }
        Code::NotFound => AccessError::UnknownShop,
        _ => AccessError::Unavailable(unavailable(&status)),
    }
}

fn grant(token: Option<pb::ShopAccessToken>) -> Result<Grant, AccessError> {
    let token = token
        .filter(|t| !t.access_token.is_empty())
        .ok_or_else(|| {
            AccessError::Unavailable("shopify-gateway answered without a token".into())
        })?;
    let seconds = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    Ok(Grant {
        scopes: token.scopes.clone(),
        expires_in: seconds(token.expires_in),
        refresh_token: (!token.refresh_token.is_empty())
            .then(|| SecretString::from(token.refresh_token.clone())),
        refresh_token_expires_in: seconds(token.refresh_token_expires_in),
        access_token: SecretString::from(token.access_token),
    })
}

impl ShopVerifier for GatewayAccess {
    fn verify<'a>(&'a self, shop: &'a ShopDomain, token: &'a SecretString) -> VerifyFuture<'a> {
        Box::pin(async move {
            let request = self
                .request(pb::VerifyTokenRequest {
                    shop_domain: shop.to_string(),
                    access_token: token.expose_secret().to_string(),
                })
                .await
                .map_err(|s| VerifyError::Unavailable(unavailable(&s)))?;
            let answer = self
                .client()
                .verify_token(request)
                .await
                .map_err(|s| VerifyError::Unavailable(unavailable(&s)))?
                .into_inner();
            match Verdict::try_from(answer.verdict).unwrap_or(Verdict::Unspecified) {
                Verdict::Valid => {
                    let info = answer.shop.unwrap_or_default();
                    Ok(ShopInfo {
                        name: info.name,
                        plan: info.plan,
                    })
                }
                Verdict::InvalidToken => Err(VerifyError::InvalidToken),
                Verdict::UnknownShop => Err(VerifyError::UnknownShop),
                Verdict::Unspecified => Err(VerifyError::Unavailable(
                    "shopify-gateway gave no verdict".into(),
                )),
            }
        })
    }
}

impl ShopifyAccess for GatewayAccess {
    fn exchange_code<'a>(
        &'a self,
        shop: &'a ShopDomain,
        code: &'a SecretString,
        expiring: bool,
    ) -> AccessFuture<'a> {
        Box::pin(async move {
            let request = self
                .request(pb::ExchangeCodeRequest {
                    shop_domain: shop.to_string(),
                    code: code.expose_secret().to_string(),
                    expiring,
                })
                .await
                .map_err(access_error)?;
            let answer = self
                .client()
                .exchange_code(request)
                .await
                .map_err(access_error)?;
            grant(answer.into_inner().token)
        })
    }

    fn refresh_token<'a>(
        &'a self,
        shop: &'a ShopDomain,
        refresh_token: &'a SecretString,
    ) -> AccessFuture<'a> {
        Box::pin(async move {
            let request = self
                .request(pb::RefreshTokenRequest {
                    shop_domain: shop.to_string(),
                    refresh_token: refresh_token.expose_secret().to_string(),
                })
                .await
                .map_err(access_error)?;
            let answer = self
                .client()
                .refresh_token(request)
                .await
                .map_err(access_error)?;
            grant(answer.into_inner().token)
        })
    }
}
