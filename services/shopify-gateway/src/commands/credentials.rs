//! Shop credentials from auth: the gateway signs in with its service identity (client id and secret, scope
//! `credentials:read`), reads a channel's shop domain and token over gRPC, and keeps them in memory briefly. Tokens appear nowhere
//! else: not in logs, events or errors.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Mutex,
    time::{Duration, Instant},
};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use shopbridge_proto::auth::{
    self as pb, credential_service_client::CredentialServiceClient,
    token_service_client::TokenServiceClient,
};
use tonic::{Code, transport::Channel};

/// Where the gateway gets a channel's Shopify shop and token (auth, over gRPC, with the gateway's service identity).
pub trait CredentialSource: Send + Sync + 'static {
    fn credentials<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<ChannelCredentials, CredentialError>> + Send + 'a>>;
}

/// A channel's shop as auth knows it: the domain its token was granted for, and the token. The gateway calls this
/// domain, never one a command names (a command naming another shop is refused).
pub struct ChannelCredentials {
    pub shop_domain: String,
    pub token: SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The channel has no token (disconnected, uninstalled): the command fails, retrying cannot help.
    #[error("no Shopify credentials for channel {0}: connect the channel again")]
    NotFound(String),
    /// Auth is unreachable: worth retrying.
    #[error("credentials unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// auth's gRPC endpoint, e.g. `http://127.0.0.1:50051`.
    pub url: String,
    /// The gateway's service identity (`shopbridge-auth bootstrap-gateway`); empty: commands are not consumed.
    pub client_id: String,
    pub client_secret: SecretString,
    /// How long a channel's token is kept in memory.
    pub cache_secs: u64,
}

pub struct AuthCredentials {
    settings: AuthSettings,
    channel: Channel,
    access: tokio::sync::Mutex<Option<(SecretString, Instant)>>,
    cache: Mutex<HashMap<String, (String, SecretString, Instant)>>,
}

impl AuthCredentials {
    pub fn new(settings: AuthSettings) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(settings.url.clone())
            .map_err(|e| anyhow::anyhow!("configuration key `service.auth.url`: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        Ok(Self {
            settings,
            channel,
            access: tokio::sync::Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The gateway's own access token, renewed a minute before it expires.
    async fn access_token(&self) -> Result<SecretString, CredentialError> {
        let mut access = self.access.lock().await;
        if let Some((token, valid_until)) = access.as_ref()
            && Instant::now() < *valid_until
        {
            return Ok(token.clone());
        }
        let response = TokenServiceClient::new(self.channel.clone())
            .issue_token(pb::IssueTokenRequest {
                client_id: self.settings.client_id.clone(),
                client_secret: self.settings.client_secret.expose_secret().to_string(),
            })
            .await
            .map_err(|s| match s.code() {
                Code::Unauthenticated | Code::PermissionDenied => CredentialError::NotFound(format!(
                    "the gateway's identity was refused by auth ({}): check service.auth.client_id and client_secret",
                    s.message()
                )),
                _ => CredentialError::Unavailable(format!("auth did not issue a token: {}", s.message())),
            })?
            .into_inner();
        let token = SecretString::from(response.access_token);
        let lifetime = Duration::from_secs(response.expires_in.saturating_sub(60).max(1));
        *access = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    async fn fetch(&self, channel_id: &str) -> Result<ChannelCredentials, CredentialError> {
        let access = self.access_token().await?;
        let mut request = tonic::Request::new(pb::GetShopCredentialsRequest {
            channel_id: channel_id.to_string(),
        });
        let bearer = format!("Bearer {}", access.expose_secret())
            .parse()
            .map_err(|_| {
                CredentialError::Unavailable("the access token is not a valid header".into())
            })?;
        request.metadata_mut().insert("authorization", bearer);
        shopbridge_platform::grpc::inject_trace(&mut request);
        match CredentialServiceClient::new(self.channel.clone())
            .get_shop_credentials(request)
            .await
        {
            Ok(response) => {
                let response = response.into_inner();
                Ok(ChannelCredentials {
                    shop_domain: response.shop_domain,
                    token: SecretString::from(response.access_token),
                })
            }
            Err(s) if matches!(s.code(), Code::NotFound | Code::FailedPrecondition) => {
                Err(CredentialError::NotFound(channel_id.to_string()))
            }
            Err(s) => Err(CredentialError::Unavailable(format!(
                "auth: {}",
                s.message()
            ))),
        }
    }
}

impl CredentialSource for AuthCredentials {
    fn credentials<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<ChannelCredentials, CredentialError>> + Send + 'a>>
    {
        Box::pin(async move {
            if let Some((shop_domain, token, at)) = self.cache.lock().unwrap().get(channel_id)
                && at.elapsed() < Duration::from_secs(self.settings.cache_secs)
            {
                return Ok(ChannelCredentials {
                    shop_domain: shop_domain.clone(),
                    token: token.clone(),
                });
            }
            let fetched = self.fetch(channel_id).await?;
            self.cache.lock().unwrap().insert(
                channel_id.to_string(),
                (
                    fetched.shop_domain.clone(),
                    fetched.token.clone(),
                    Instant::now(),
                ),
            );
            Ok(fetched)
        })
    }
}
