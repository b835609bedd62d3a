//! The auth service: tenants, API clients and tokens, Shopify channels and their credentials (encrypted at rest).
//!
//! Built with [`build`] from its settings (ports bound first, so port 0 works in tests), then run with
//! [`Application::run_until_stopped`].
//!
//! - [`clients`]: tenants, API clients (PBKDF2-hashed secrets), token issuance;
//! - [`signing`]: Ed25519 signing keys in the database, rotation, the published key set;
//! - [`crypto`]: AES-256-GCM encryption of secrets at rest with rotatable keys, secret hashing;
//! - [`channels`], [`domain`], [`shop_verifier`]: channels, store URLs, token verification through the gateway;
//! - [`oauth`], [`oauth_states`], [`oauth_flow`], [`callback`]: the OAuth connection (checks, state nonces, the
//!   flow, the `GET /shopify/oauth/callback` page); [`refresh`]: expiring tokens renewed before they expire;
//! - [`gateway`], [`shop_access`]: shopify-gateway's `ShopifyAccessService` (verify, exchange, refresh), called with
//!   a token auth signs for itself;
//! - [`grpc`]: `TokenService` (unauthenticated), `ChannelService` and `AdminService` (bearer token);
//! - [`commands`]: the `bootstrap-admin`, `rotate-signing-key` and `rotate-encryption-key` subcommands.

pub mod callback;
pub mod channels;
pub mod clients;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod gateway;
pub mod grpc;
pub mod oauth;
pub mod oauth_flow;
pub mod oauth_states;
pub mod refresh;
pub mod shop_access;
pub mod shop_verifier;
pub mod signing;
pub mod uninstall;

use std::sync::Arc;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use shopbridge_platform::{
    auth_token::{JWKS_PATH, Jwks, TokenVerifier},
    grpc::auth_interceptor,
    service::{Application, Runtime, ServiceParts, ServiceSpec},
};
use shopbridge_proto::auth::{
    admin_service_server::AdminServiceServer, channel_service_server::ChannelServiceServer,
    credential_service_server::CredentialServiceServer, token_service_server::TokenServiceServer,
};

pub use crate::config::ServiceSettings;
use crate::{
    channels::Channels,
    clients::TokenIssuer,
    crypto::Encryptor,
    gateway::{GatewayAccess, ServiceIdentity},
    grpc::{Api, AuthState},
    oauth_flow::OAuthFlow,
    shop_access::ShopifyAccess,
    shop_verifier::{GatewayNotDeployed, ShopVerifier},
    signing::{DatabaseKeys, SigningKeys},
};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/auth");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "auth",
    binary: "shopbridge-auth",
    about: "Shopbridge auth service: tenants, API clients and tokens, Shopify channels and their credentials (encrypted at rest)",
    defaults: include_str!("../config/default.toml"),
    migrator: &MIGRATOR,
};

pub type Settings = shopbridge_platform::config::Settings<ServiceSettings>;

/// The service as configured: with shopify-gateway when `service.gateway.url` is set (token verification, OAuth code
/// exchange and token refresh go through it), else connecting a store is refused as unavailable.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    build_inner(settings, None, None).await
}

/// Logs the warning every start with the development encryption key gives.
pub fn warn_if_development_key(encryptor: &Encryptor) {
    if encryptor.development_key_active() {
        tracing::warn!(
            kid = encryptor.active_kid(),
            "WARNING: secrets are encrypted with the built-in DEVELOPMENT key; production must set its own \
             service.encryption_keys and service.active_encryption_key"
        );
    }
}

/// The service with a given way of verifying stores (tests pass their own); OAuth uses the gateway if configured.
pub async fn build_with(
    settings: Settings,
    shop_verifier: Arc<dyn ShopVerifier>,
) -> anyhow::Result<Application> {
    build_inner(settings, Some(shop_verifier), None).await
}

/// The service with given ways of verifying stores and of getting their tokens (tests of the OAuth flow).
pub async fn build_with_access(
    settings: Settings,
    shop_verifier: Arc<dyn ShopVerifier>,
    access: Arc<dyn ShopifyAccess>,
) -> anyhow::Result<Application> {
    build_inner(settings, Some(shop_verifier), Some(access)).await
}

async fn build_inner(
    settings: Settings,
    shop_verifier: Option<Arc<dyn ShopVerifier>>,
    access: Option<Arc<dyn ShopifyAccess>>,
) -> anyhow::Result<Application> {
    let service = settings.service.clone();
    let encryptor = Arc::new(Encryptor::from_settings(&service)?);
    warn_if_development_key(&encryptor);
    let runtime = Runtime::start(&SPEC, &settings).await?;
    let pool = runtime.pool.clone();

    let keys = Arc::new(SigningKeys::new(
        pool.clone(),
        encryptor.clone(),
        service.signing_key_grace(),
    ));
    keys.ensure_active().await?;
    keys.check_decrypts().await?;
    let verifier = TokenVerifier::from_source(Arc::new(DatabaseKeys(keys.clone())))
        .with_issuer(service.issuer.clone())
        .with_leeway(std::time::Duration::from_secs(service.token_leeway_secs))
        .with_min_refresh_interval(std::time::Duration::from_secs(1));
    verifier.refresh().await?;

    let gateway = if service.gateway.url.trim().is_empty() {
        None
    } else {
        let system = clients::tenant_by_name(&pool, clients::SYSTEM_TENANT).await?;
        let identity = ServiceIdentity::new(
            keys.clone(),
            service.issuer.clone(),
            system,
            service.access_token_ttl_secs,
        );
        Some(Arc::new(GatewayAccess::new(&service.gateway, identity)?))
    };
    let shop_verifier = shop_verifier.unwrap_or_else(|| match &gateway {
        Some(gateway) => gateway.clone(),
        None => {
            tracing::warn!(
                "service.gateway.url is empty: connecting a store is refused until shopify-gateway is configured"
            );
            Arc::new(GatewayNotDeployed)
        }
    });
    let access = access.or_else(|| gateway.map(|g| g as Arc<dyn ShopifyAccess>));
    if !service.oauth.enabled() {
        tracing::warn!(
            "service.oauth.client_id or client_secret is empty: BeginOAuth is refused (API tokens still connect)"
        );
    }
    let channels = Arc::new(Channels {
        pool: pool.clone(),
        encryptor: encryptor.clone(),
        verifier: shop_verifier,
    });
    let oauth = Arc::new(OAuthFlow {
        channels: channels.clone(),
        settings: service.oauth.clone(),
        access,
    });

    let state = Arc::new(AuthState {
        issuer: TokenIssuer {
            pool: pool.clone(),
            keys: keys.clone(),
            issuer: service.issuer.clone(),
            ttl_secs: service.access_token_ttl_secs,
            iterations: service.pbkdf2_iterations,
        },
        keys: keys.clone(),
        verifier: verifier.clone(),
        channels,
        oauth: oauth.clone(),
        encryptor,
        pbkdf2_iterations: service.pbkdf2_iterations,
    });
    let api = Api(state);
    let authenticator: Arc<dyn shopbridge_platform::grpc::Authenticator> = Arc::new(verifier);

    let mut parts = ServiceParts::default();
    parts.grpc = parts
        .grpc
        .add_service(TokenServiceServer::new(api.clone()))
        .add_service(ChannelServiceServer::with_interceptor(
            api.clone(),
            auth_interceptor(authenticator.clone()),
        ))
        .add_service(AdminServiceServer::with_interceptor(
            api.clone(),
            auth_interceptor(authenticator.clone()),
        ))
        .add_service(CredentialServiceServer::with_interceptor(
            api,
            auth_interceptor(authenticator),
        ));
    let uninstalls = shopbridge_platform::bus::ConsumerRunner::new(
        pool.clone(),
        runtime.js.clone(),
        runtime.namespace.clone(),
        "EVENTS",
        "auth-app-uninstalled",
        uninstall::UninstallHandler,
        runtime.consumer.clone(),
    );
    parts = parts.task("app-uninstalled-consumer", move |cancel| {
        uninstalls.run(cancel)
    });
    let refresh_flow = oauth.clone();
    parts = parts.task("token-refresh", move |cancel| {
        refresh::run(refresh_flow, cancel)
    });
    parts = parts
        .http_routes(
            axum::Router::new()
                .route(JWKS_PATH, get(jwks))
                .with_state(keys),
        )
        .http_routes(callback::router(oauth));
    Ok(Application::new(runtime, parts))
}

async fn jwks(State(keys): State<Arc<SigningKeys>>) -> impl IntoResponse {
    match keys.published().await {
        Ok(keys) => Json(Jwks { keys }).into_response(),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot read the published keys");
            (StatusCode::SERVICE_UNAVAILABLE, "key set unavailable").into_response()
        }
    }
}
