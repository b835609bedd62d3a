//! Access tokens issued by the auth service and their verification, which every service does locally.
//!
//! A token is a compact JWS signed with Ed25519 (`alg` `EdDSA`): `base64url(header).base64url(claims).base64url(sig)`,
//! the header naming the signing key (`kid`), the claims naming the issuer, the API client (`sub`), its tenant, its
//! scopes and the validity window (`iat`, `exp`, seconds since the epoch). Auth publishes its public keys as a JWKS
//! document (`GET /.well-known/jwks.json` on its HTTP port, also `TokenService.GetPublicKeys`).
//!
//! [`TokenVerifier`] implements [`Authenticator`]: it reads `authorization: Bearer <token>`, checks the signature with
//! a cached key set by `kid`, checks `exp`/`iat` with a small leeway and yields the [`Principal`]. A token signed by a
//! key it does not know makes it refresh the key set from its [`KeySource`] (rate-limited), so a rotation at auth is
//! picked up without a restart. Scopes are checked by handlers with [`Principal::require_scope`].

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use tonic::{Status, metadata::MetadataMap};

use crate::grpc::{Authenticator, Principal};

/// The only signature algorithm we issue and accept.
pub const ALG: &str = "EdDSA";
/// The path auth serves its key set on.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Clock skew tolerated on `exp` and `iat` by default.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The shortest interval between two refreshes caused by unknown key ids (a flood of forged kids must not turn into a
/// flood of requests to auth).
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// How long a refresh caused by a request may hold that request.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The API client id.
    pub sub: String,
    /// The tenant id.
    pub tenant: String,
    pub scopes: Vec<String>,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

impl Claims {
    pub fn principal(&self) -> Principal {
        Principal {
            tenant_id: self.tenant.clone(),
            client_id: self.sub.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// One public key in JWK form (RFC 8037: `kty` OKP, `crv` Ed25519, `x` the raw key in base64url).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub kid: String,
    pub x: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

impl Jwk {
    pub fn ed25519(kid: impl Into<String>, public_key: &[u8]) -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            kid: kid.into(),
            x: URL_SAFE_NO_PAD.encode(public_key),
            alg: Some(ALG.into()),
            use_: Some("sig".into()),
        }
    }

    /// The raw 32-byte Ed25519 key, or why this JWK is not one.
    pub fn ed25519_bytes(&self) -> Result<Vec<u8>, String> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(format!(
                "key `{}` is {}/{}, not OKP/Ed25519",
                self.kid, self.kty, self.crv
            ));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(&self.x)
            .map_err(|_| format!("key `{}`: `x` is not base64url", self.kid))?;
        if bytes.len() != 32 {
            return Err(format!("key `{}`: `x` is not 32 bytes", self.kid));
        }
        Ok(bytes)
    }
}

/// A JWKS document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// Why a token was refused. The messages are meant for the caller (they reveal nothing secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "missing bearer token: send `authorization: Bearer <token>` metadata (tokens come from auth's TokenService.IssueToken)"
    )]
    Missing,
    #[error("the authorization metadata is not `Bearer <token>`")]
    NotBearer,
    #[error("malformed access token: {0}")]
    Malformed(&'static str),
    #[error("unsigned or wrongly signed token: algorithm `{0}` is not accepted (only EdDSA)")]
    Algorithm(String),
    #[error("access token signed with an unknown key `{0}`")]
    UnknownKey(String),
    #[error("access token signature is invalid")]
    BadSignature,
    #[error("access token expired; request a new one")]
    Expired,
    #[error("access token issued in the future; check the clocks")]
    IssuedInFuture,
    #[error("access token from an unexpected issuer `{0}`")]
    WrongIssuer(String),
}

impl From<TokenError> for Status {
    fn from(err: TokenError) -> Self {
        Status::unauthenticated(err.to_string())
    }
}

/// Signs `claims` with `key` under `kid` (the auth service's side).
pub fn sign(claims: &Claims, kid: &str, key: &Ed25519KeyPair) -> String {
    let header = Header {
        alg: ALG.into(),
        typ: Some("JWT".into()),
        kid: Some(kid.into()),
    };
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("header serialises"));
    let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let signing_input = format!("{header}.{claims}");
    let signature = URL_SAFE_NO_PAD.encode(key.sign(signing_input.as_bytes()).as_ref());
    format!("{signing_input}.{signature}")
}

/// The JWK of a key pair's public half.
pub fn public_jwk(kid: &str, key: &Ed25519KeyPair) -> Jwk {
    Jwk::ed25519(kid, key.public_key().as_ref())
}

/// The header of a token, unverified (to find its `kid`).
pub fn peek_header(token: &str) -> Result<Header, TokenError> {
    let header = token
        .split('.')
        .next()
        .ok_or(TokenError::Malformed("no header"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed("header is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed("header is not a JWS header"))
}

/// Verification keys by kid.
pub type KeySet = HashMap<String, Vec<u8>>;

/// Checks `token` against `keys` at `now` (seconds since the epoch).
pub fn verify_with(
    token: &str,
    keys: &KeySet,
    now: i64,
    leeway: Duration,
    issuer: Option<&str>,
) -> Result<Claims, TokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, claims_b64, signature_b64] = parts[..] else {
        return Err(TokenError::Malformed("a compact JWS has three parts"));
    };
    let header = peek_header(token)?;
    if header.alg != ALG {
        return Err(TokenError::Algorithm(header.alg));
    }
    let kid = header
        .kid
        .ok_or(TokenError::Malformed("the header names no key (kid)"))?;
    let key = keys
        .get(&kid)
        .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    let signing_input_len = header_b64.len() + 1 + claims_b64.len();
    UnparsedPublicKey::new(&ED25519, key)
        .verify(&token.as_bytes()[..signing_input_len], &signature)
        .map_err(|_| TokenError::BadSignature)?;
    let claims = URL_SAFE_NO_PAD
        .decode(claims_b64)
        .map_err(|_| TokenError::Malformed("claims are not base64url"))?;
    let claims: Claims = serde_json::from_slice(&claims)
        .map_err(|_| TokenError::Malformed("claims are not the expected JSON object"))?;
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
    if now > claims.exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if claims.iat > now.saturating_add(leeway) {
        return Err(TokenError::IssuedInFuture);
    }
    if let Some(issuer) = issuer
        && claims.iss != issuer
    {
        return Err(TokenError::WrongIssuer(claims.iss));
    }
    Ok(claims)
}

/// The bearer token of a call's metadata.
pub fn bearer_token(metadata: &MetadataMap) -> Result<&str, TokenError> {
    let value = metadata
        .get("authorization")
        .ok_or(TokenError::Missing)?
        .to_str()
        .map_err(|_| TokenError::NotBearer)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(TokenError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(TokenError::NotBearer);
    }
    Ok(token.trim())
}

type KeysFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Vec<Jwk>>> + Send + 'a>>;

/// What a service needs to verify tokens; embed it in the service's settings, e.g. as `[service.auth]`:
///
/// ```toml
/// [service.auth]
/// # auth's JWKS document (its HTTP port)
/// jwks_url = "http://127.0.0.1:8081/.well-known/jwks.json"
/// # the issuer auth signs with (service.issuer of auth); empty accepts any
/// issuer = "shopbridge-auth"
/// leeway_secs = 30
/// min_refresh_interval_secs = 10
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierSettings {
    pub jwks_url: String,
    #[serde(default)]
    pub issuer: String,
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
    #[serde(default = "default_min_refresh_interval_secs")]
    pub min_refresh_interval_secs: u64,
}

fn default_leeway_secs() -> u64 {
    DEFAULT_LEEWAY.as_secs()
}

fn default_min_refresh_interval_secs() -> u64 {
    DEFAULT_MIN_REFRESH_INTERVAL.as_secs()
}

/// Where a [`TokenVerifier`] gets its keys.
pub trait KeySource: Send + Sync + 'static {
    fn fetch(&self) -> KeysFuture<'_>;
}

/// Auth's JWKS document over HTTP (`http://auth:8081/.well-known/jwks.json`).
pub struct JwksUrl {
    url: String,
    client: reqwest::Client,
}

impl JwksUrl {
    pub fn new(url: impl Into<String>) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(REFRESH_TIMEOUT)
            .build()?;
        Ok(Self {
            url: url.into(),
            client,
        })
    }
}

impl KeySource for JwksUrl {
    fn fetch(&self) -> KeysFuture<'_> {
        Box::pin(async move {
            let response = self
                .client
                .get(&self.url)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cannot fetch the key set from {}: {e}", self.url))?
                .error_for_status()
                .map_err(|e| anyhow::anyhow!("cannot fetch the key set from {}: {e}", self.url))?;
            let jwks: Jwks = response
                .json()
                .await
                .map_err(|e| anyhow::anyhow!("the key set at {} is not JWKS: {e}", self.url))?;
            Ok(jwks.keys)
        })
    }
}

struct Inner {
    keys: RwLock<KeySet>,
    source: Option<Arc<dyn KeySource>>,
    last_unknown_kid_refresh: Mutex<Option<Instant>>,
    min_refresh_interval: Duration,
    leeway: Duration,
    issuer: Option<String>,
}

impl Inner {
    async fn refresh(&self) -> anyhow::Result<usize> {
        let source = self
            .source
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this verifier has a static key set"))?;
        let jwks = source.fetch().await?;
        let mut keys = KeySet::new();
        for jwk in jwks {
            match jwk.ed25519_bytes() {
                Ok(bytes) => {
                    keys.insert(jwk.kid, bytes);
                }
                Err(reason) => tracing::warn!(%reason, "ignoring a published key"),
            }
        }
        let count = keys.len();
        *self.keys.write().expect("key set lock") = keys;
        tracing::debug!(keys = count, "token key set refreshed");
        Ok(count)
    }

    /// Claims the right to refresh because of an unknown kid, at most once per `min_refresh_interval`.
    fn may_refresh_for_unknown_kid(&self) -> bool {
        if self.source.is_none() {
            return false;
        }
        let mut last = self.last_unknown_kid_refresh.lock().expect("refresh lock");
        match *last {
            Some(at) if at.elapsed() < self.min_refresh_interval => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }
}

/// Verifies access tokens with a cached key set; an [`Authenticator`] for [`crate::grpc::auth_interceptor`].
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<Inner>,
}

impl TokenVerifier {
    fn with_parts(keys: KeySet, source: Option<Arc<dyn KeySource>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                keys: RwLock::new(keys),
                source,
                last_unknown_kid_refresh: Mutex::new(None),
                min_refresh_interval: DEFAULT_MIN_REFRESH_INTERVAL,
                leeway: DEFAULT_LEEWAY,
                issuer: None,
            }),
        }
    }

    /// A verifier with a fixed key set (tests, or a deployment that pins keys).
    pub fn from_keys(keys: impl IntoIterator<Item = Jwk>) -> anyhow::Result<Self> {
        let mut set = KeySet::new();
        for jwk in keys {
            let bytes = jwk.ed25519_bytes().map_err(|e| anyhow::anyhow!(e))?;
            set.insert(jwk.kid, bytes);
        }
        Ok(Self::with_parts(set, None))
    }

    /// A verifier whose keys come from `source`; empty until the first [`TokenVerifier::refresh`] or the first
    /// token with an unknown kid.
    pub fn from_source(source: Arc<dyn KeySource>) -> Self {
        Self::with_parts(KeySet::new(), Some(source))
    }

    /// A verifier fetching auth's JWKS document from `url`.
    pub fn from_jwks_url(url: impl Into<String>) -> anyhow::Result<Self> {
        Ok(Self::from_source(Arc::new(JwksUrl::new(url)?)))
    }

    fn configure(self, f: impl FnOnce(&mut Inner)) -> Self {
        // Configuring a verifier that was cloned already makes a new one (with the same keys) for this handle.
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            keys: RwLock::new(shared.keys.read().expect("key set lock").clone()),
            source: shared.source.clone(),
            last_unknown_kid_refresh: Mutex::new(None),
            min_refresh_interval: shared.min_refresh_interval,
            leeway: shared.leeway,
            issuer: shared.issuer.clone(),
        });
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// A verifier configured by a service's settings (see [`VerifierSettings`]).
    pub fn from_settings(settings: &VerifierSettings) -> anyhow::Result<Self> {
        let verifier = Self::from_jwks_url(settings.jwks_url.clone())?
            .with_leeway(Duration::from_secs(settings.leeway_secs))
            .with_min_refresh_interval(Duration::from_secs(settings.min_refresh_interval_secs));
        Ok(if settings.issuer.is_empty() {
            verifier
        } else {
            verifier.with_issuer(settings.issuer.clone())
        })
    }

    /// Refreshes the key set every `every` until `cancel` (a service task: `parts.task("token-keys", ...)`), so
    /// keys retired at auth disappear and new ones arrive before the first token signed with them. Failures are
    /// logged and retried; the cached keys stay in use meanwhile.
    pub async fn refresh_periodically(
        self,
        every: Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %format!("{e:#}"), "token key set refresh failed; keeping the cached keys");
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Accept only tokens whose `iss` is `issuer`.
    pub fn with_issuer(self, issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        self.configure(|i| i.issuer = Some(issuer))
    }

    pub fn with_leeway(self, leeway: Duration) -> Self {
        self.configure(|i| i.leeway = leeway)
    }

    pub fn with_min_refresh_interval(self, interval: Duration) -> Self {
        self.configure(|i| i.min_refresh_interval = interval)
    }

    /// Fetches the key set now (at start, so the first calls do not wait for it); returns how many keys it holds.
    pub async fn refresh(&self) -> anyhow::Result<usize> {
        self.inner.refresh().await
    }

    /// The key ids currently cached.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self
            .inner
            .keys
            .read()
            .expect("key set lock")
            .keys()
            .cloned()
            .collect();
        kids.sort();
        kids
    }

    /// Verifies `token` now. A token signed by an unknown key triggers one (rate-limited) refresh of the key set:
    /// on a multi-threaded runtime the call waits for it (bounded), elsewhere it is started in the background and
    /// this token is refused (the caller's retry succeeds).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, chrono::Utc::now().timestamp())
    }

    /// [`TokenVerifier::verify`] at a given time (seconds since the epoch).
    pub fn verify_at(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        match self.verify_cached(token, now) {
            Err(TokenError::UnknownKey(kid)) if self.inner.may_refresh_for_unknown_kid() => {
                tracing::info!(%kid, "token signed with an unknown key; refreshing the key set");
                self.refresh_from_sync_context();
                self.verify_cached(token, now)
            }
            other => other,
        }
    }

    fn verify_cached(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let keys = self.inner.keys.read().expect("key set lock");
        verify_with(
            token,
            &keys,
            now,
            self.inner.leeway,
            self.inner.issuer.as_deref(),
        )
    }

    fn refresh_from_sync_context(&self) {
        let inner = self.inner.clone();
        let refresh = async move {
            match tokio::time::timeout(REFRESH_TIMEOUT, inner.refresh()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "token key set refresh failed")
                }
                Err(_) => tracing::warn!("token key set refresh timed out"),
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(refresh));
            }
            Ok(handle) => {
                handle.spawn(refresh);
            }
            Err(_) => match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(refresh),
                Err(e) => tracing::warn!(error = %e, "no runtime to refresh the token key set"),
            },
        }
    }
}

impl Authenticator for TokenVerifier {
    fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        let token = bearer_token(metadata)?;
        let claims = self.verify(token).inspect_err(|e| {
            tracing::debug!(reason = %e, "call refused: bad access token");
        })?;
        Ok(claims.principal())
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;

    use super::*;

    fn key_pair() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "shopbridge-auth".into(),
            sub: "client-1".into(),
            tenant: "tenant-1".into(),
            scopes: vec!["channels:read".into()],
            iat: now,
            exp: now + 300,
        }
    }

    fn metadata(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", value.parse().unwrap());
        m
    }

    #[test]
    fn a_signed_token_verifies_and_names_its_principal() {
        let key = key_pair();
        let now = chrono::Utc::now().timestamp();
        let token = sign(&claims(now), "k1", &key);
        let verifier = TokenVerifier::from_keys([public_jwk("k1", &key)])
            .unwrap()
            .with_issuer("shopbridge-auth");
        let principal = verifier
            .authenticate(&metadata(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(principal.tenant_id, "tenant-1");
        assert_eq!(principal.client_id, "client-1");
        assert_eq!(principal.scopes, vec!["channels:read".to_string()]);
    }

    #[test]
    fn expired_future_tampered_unsigned_and_foreign_tokens_are_refused() {
        let key = key_pair();
        let other = key_pair();
        let now = 1_800_000_000;
        let verifier = TokenVerifier::from_keys([public_jwk("k1", &key)]).unwrap();
        let token = sign(&claims(now), "k1", &key);
        assert!(verifier.verify_at(&token, now + 300 + 29).is_ok());
        assert_eq!(
            verifier.verify_at(&token, now + 300 + 31),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verifier.verify_at(&token, now - 60),
            Err(TokenError::IssuedInFuture)
        );
        // Tampered claims: another tenant, same signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims(now);
        forged.tenant = "tenant-2".into();
        let forged_claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let tampered = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(
            verifier.verify_at(&tampered, now),
            Err(TokenError::BadSignature)
        );
        // Signed by a key that claims to be k1.
        let foreign = sign(&claims(now), "k1", &other);
        assert_eq!(
            verifier.verify_at(&foreign, now),
            Err(TokenError::BadSignature)
        );
        // Unknown kid, static set: refused without a refresh.
        let unknown = sign(&claims(now), "k9", &other);
        assert_eq!(
            verifier.verify_at(&unknown, now),
            Err(TokenError::UnknownKey("k9".into()))
        );
        // alg none.
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert_eq!(
            verifier.verify_at(&unsigned, now),
            Err(TokenError::Algorithm("none".into()))
        );
        assert!(matches!(
            verifier.verify_at("garbage", now),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn missing_or_non_bearer_metadata_is_unauthenticated_with_a_clear_message() {
        let verifier = TokenVerifier::from_keys([]).unwrap();
        let status = verifier.authenticate(&MetadataMap::new()).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(status.message().contains("missing bearer token"));
        let status = verifier.authenticate(&metadata("Basic abc")).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    struct Rotating {
        keys: Mutex<Vec<Jwk>>,
        fetches: Mutex<usize>,
    }

    impl KeySource for Rotating {
        fn fetch(&self) -> KeysFuture<'_> {
            *self.fetches.lock().unwrap() += 1;
            let keys = self.keys.lock().unwrap().clone();
            Box::pin(async move { Ok(keys) })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_kid_refreshes_the_key_set_at_most_once_per_interval() {
        let k1 = key_pair();
        let k2 = key_pair();
        let source = Arc::new(Rotating {
            keys: Mutex::new(vec![public_jwk("k1", &k1)]),
            fetches: Mutex::new(0),
        });
        let verifier = TokenVerifier::from_source(source.clone());
        verifier.refresh().await.unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!(verifier.verify(&sign(&claims(now), "k1", &k1)).is_ok());
        source.keys.lock().unwrap().push(public_jwk("k2", &k2));
        assert!(verifier.verify(&sign(&claims(now), "k2", &k2)).is_ok());
        assert_eq!(*source.fetches.lock().unwrap(), 2);
        // Forged kids within the interval do not cause fetches.
        for i in 0..5 {
            let forged = sign(&claims(now), &format!("x{i}"), &k2);
            assert!(verifier.verify(&forged).is_err());
        }
        assert_eq!(*source.fetches.lock().unwrap(), 2);
    }
}
