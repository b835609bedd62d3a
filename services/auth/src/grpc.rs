//! The gRPC services of auth. `TokenService` is unauthenticated; `ChannelService` and `AdminService` sit behind the
//! platform's auth interceptor and scope every call by the token's tenant.

use std::sync::Arc;

use secrecy::SecretString;
use shopbridge_platform::{
    auth_token::TokenVerifier,
    error::ApiError,
    grpc::{Principal, principal},
};
use shopbridge_proto::auth::{
    self as pb, admin_service_server::AdminService, channel_service_server::ChannelService,
    credential_service_server::CredentialService, token_service_server::TokenService,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    channels::{Channels, reencrypt_all, timestamp},
    clients::{self, TokenIssuer},
    crypto::Encryptor,
    domain::scopes,
    oauth_flow::OAuthFlow,
    signing::SigningKeys,
};

/// Everything the handlers share.
pub struct AuthState {
    pub issuer: TokenIssuer,
    pub keys: Arc<SigningKeys>,
    pub verifier: TokenVerifier,
    pub channels: Arc<Channels>,
    pub oauth: Arc<OAuthFlow>,
    pub encryptor: Arc<Encryptor>,
    pub pbkdf2_iterations: u32,
}

#[derive(Clone)]
pub struct Api(pub Arc<AuthState>);

fn tenant_of(principal: &Principal) -> Result<Uuid, Status> {
    Uuid::parse_str(&principal.tenant_id)
        .map_err(|_| Status::unauthenticated("the token names no valid tenant"))
}

/// The caller's tenant, after checking it holds `scope`.
fn authorize<T>(request: &Request<T>, scope: &str) -> Result<Uuid, Status> {
    let principal = principal(request)?;
    principal.require_scope(scope)?;
    tenant_of(principal)
}

#[tonic::async_trait]
impl TokenService for Api {
    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        let pb::IssueTokenRequest {
            client_id,
            client_secret,
        } = request.into_inner();
        let issued = self
            .0
            .issuer
            .issue(client_id.trim(), SecretString::from(client_secret))
            .await?;
        Ok(Response::new(pb::IssueTokenResponse {
            access_token: issued.token,
            token_type: "Bearer".into(),
            expires_in: issued.expires_in,
            scopes: issued.claims.scopes,
            tenant_id: issued.claims.tenant,
        }))
    }

    async fn get_public_keys(
        &self,
        _: Request<pb::GetPublicKeysRequest>,
    ) -> Result<Response<pb::GetPublicKeysResponse>, Status> {
        let keys = self.0.keys.published().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::GetPublicKeysResponse {
            keys: keys
                .into_iter()
                .map(|k| pb::PublicKey {
                    kid: k.kid,
                    kty: k.kty,
                    crv: k.crv,
                    alg: k.alg.unwrap_or_default(),
                    x: k.x,
                })
                .collect(),
        }))
    }
}

#[tonic::async_trait]
impl ChannelService for Api {
    async fn create_channel(
        &self,
        request: Request<pb::CreateChannelRequest>,
    ) -> Result<Response<pb::CreateChannelResponse>, Status> {
        let tenant = authorize(&request, scopes::CHANNELS_WRITE)?;
        let channel = self
            .0
            .channels
            .create(tenant, &request.get_ref().name)
            .await?;
        Ok(Response::new(pb::CreateChannelResponse {
            channel: Some(channel.to_proto()),
        }))
    }

    async fn get_channel(
        &self,
        request: Request<pb::GetChannelRequest>,
    ) -> Result<Response<pb::GetChannelResponse>, Status> {
        let tenant = authorize(&request, scopes::CHANNELS_READ)?;
        let channel = self
            .0
            .channels
            .get(tenant, &request.get_ref().channel_id)
            .await?;
        Ok(Response::new(pb::GetChannelResponse {
            channel: Some(channel.to_proto()),
        }))
    }

    async fn list_channels(
        &self,
        request: Request<pb::ListChannelsRequest>,
    ) -> Result<Response<pb::ListChannelsResponse>, Status> {
        let tenant = authorize(&request, scopes::CHANNELS_READ)?;
        let channels = self.0.channels.list(tenant).await?;
        Ok(Response::new(pb::ListChannelsResponse {
            channels: channels.iter().map(|c| c.to_proto()).collect(),
        }))
    }

    async fn begin_o_auth(
        &self,
        request: Request<pb::BeginOAuthRequest>,
    ) -> Result<Response<pb::BeginOAuthResponse>, Status> {
        let tenant = authorize(&request, scopes::CHANNELS_WRITE)?;
        let pb::BeginOAuthRequest {
            channel_id,
            shop_domain,
        } = request.into_inner();
        let begun = self
            .0
            .oauth
            .begin(tenant, &channel_id, &shop_domain)
            .await?;
        Ok(Response::new(pb::BeginOAuthResponse {
            authorize_url: begun.authorize_url,
            expires_at: Some(timestamp(begun.expires_at)),
            shop_domain: begun.shop.to_string(),
        }))
    }

    async fn connect_with_token(
        &self,
        request: Request<pb::ConnectWithTokenRequest>,
    ) -> Result<Response<pb::ConnectWithTokenResponse>, Status> {
        let tenant = authorize(&request, scopes::CHANNELS_WRITE)?;
        let pb::ConnectWithTokenRequest {
            channel_id,
            shop_domain,
            access_token,
            granted_scopes,
        } = request.into_inner();
        let channel = self
            .0
            .channels
            .connect_with_token(
                tenant,
                &channel_id,
                &shop_domain,
                SecretString::from(access_token),
                granted_scopes,
            )
            .await?;
        Ok(Response::new(pb::ConnectWithTokenResponse {
            channel: Some(channel.to_proto()),
        }))
    }

    async fn disconnect_channel(
        &self,
        request: Request<pb::DisconnectChannelRequest>,
    ) -> Result<Response<pb::DisconnectChannelResponse>, Status> {
        let tenant = authorize(&request, scopes::CHANNELS_WRITE)?;
        let channel = self
            .0
            .channels
            .disconnect(tenant, &request.get_ref().channel_id)
            .await?;
        Ok(Response::new(pb::DisconnectChannelResponse {
            channel: Some(channel.to_proto()),
        }))
    }
}

#[tonic::async_trait]
impl AdminService for Api {
    async fn create_api_client(
        &self,
        request: Request<pb::CreateApiClientRequest>,
    ) -> Result<Response<pb::CreateApiClientResponse>, Status> {
        let tenant = authorize(&request, scopes::CLIENTS_WRITE)?;
        let caller = principal(&request)?.clone();
        let pb::CreateApiClientRequest { name, scopes } = request.into_inner();
        let scopes = clients::validate_scopes(&scopes)?;
        // A client cannot hand out more than it holds.
        for scope in &scopes {
            caller.require_scope(scope)?;
        }
        let name = if name.trim().is_empty() {
            "api client".to_string()
        } else {
            name.trim().to_string()
        };
        let client = clients::create_client(
            &self.0.issuer.pool,
            tenant,
            &name,
            scopes,
            self.0.pbkdf2_iterations,
        )
        .await
        .map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateApiClientResponse {
            client_id: client.client_id,
            client_secret: secrecy::ExposeSecret::expose_secret(&client.client_secret).to_string(),
            scopes: client.scopes,
            tenant_id: client.tenant_id.to_string(),
        }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        authorize(&request, scopes::KEYS_ROTATE)?;
        let (kid, retiring_kids) = self.0.keys.rotate().await.map_err(ApiError::from)?;
        // Our own verifier learns the new key now rather than on the first token it signs.
        self.0.verifier.refresh().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::RotateSigningKeyResponse {
            kid,
            retiring_kids,
        }))
    }

    async fn rotate_encryption_key(
        &self,
        request: Request<pb::RotateEncryptionKeyRequest>,
    ) -> Result<Response<pb::RotateEncryptionKeyResponse>, Status> {
        authorize(&request, scopes::KEYS_ROTATE)?;
        let reencrypted = reencrypt_all(&self.0.issuer.pool, &self.0.encryptor)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RotateEncryptionKeyResponse {
            active_kid: self.0.encryptor.active_kid().to_string(),
            reencrypted,
        }))
    }
}

#[tonic::async_trait]
impl CredentialService for Api {
    async fn get_shop_credentials(
        &self,
        request: Request<pb::GetShopCredentialsRequest>,
    ) -> Result<Response<pb::GetShopCredentialsResponse>, Status> {
        // A service identity: the scope, not the tenant, grants access (the gateway serves every tenant).
        principal(&request)?.require_scope(scopes::CREDENTIALS_READ)?;
        let credentials = self
            .0
            .channels
            .credentials(&request.get_ref().channel_id)
            .await?;
        Ok(Response::new(pb::GetShopCredentialsResponse {
            shop_domain: credentials.shop_domain,
            access_token: secrecy::ExposeSecret::expose_secret(&credentials.access_token)
                .to_string(),
            granted_scopes: credentials.granted_scopes,
        }))
    }
}
