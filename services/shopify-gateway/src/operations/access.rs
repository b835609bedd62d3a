//! `ShopifyAccessService` (gRPC, for auth alone): the OAuth code exchange, the refresh of expiring offline tokens, and
//! the verification of a token against its shop. Auth stores what comes back, encrypted; the gateway keeps nothing.
//! Tokens travel only in these gRPC messages (redacted Debug) and in the HTTPS requests to the shop, never on the bus
//! or in a log line.
//!
//! Callers need a bearer token with the [`SCOPE`] scope, signed by auth (verified with auth's published keys).

use std::{sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use shopbridge_platform::grpc::principal;
use shopbridge_proto::gateway::{
    self as pb, shopify_access_service_server::ShopifyAccessService, verify_token_response::Verdict,
};
use tonic::{Request, Response, Status};

use crate::shopify::{
    FatalKind, ShopifyHttp,
    budget::Lane,
    executor::{CallError, Executor, ShopCredentials},
    wire::access::{ShopInfo, ShopInfoData},
};

/// The scope a caller of this service must hold (auth's own service identity).
pub const SCOPE: &str = "shopify:access";

/// The `[service.access]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSettings {
    /// The Shopify app's client id (its client secret is `service.webhooks.client_secret`).
    pub client_id: String,
    /// How long VerifyToken may take, waiting for the shop's budget and retrying included.
    pub verify_timeout_secs: u64,
}

pub struct AccessService {
    http: ShopifyHttp,
    executor: Arc<Executor>,
    client_id: String,
    client_secret: SecretString,
    verify_timeout: Duration,
}

impl AccessService {
    /// `executor` is the one the commands use, so a verification goes through the shop's budget like any call.
    pub fn new(
        shopify: crate::shopify::ShopifySettings,
        access: &AccessSettings,
        client_secret: SecretString,
        executor: Arc<Executor>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            http: ShopifyHttp::new(shopify)?,
            executor,
            client_id: access.client_id.trim().to_string(),
            client_secret,
            verify_timeout: Duration::from_secs(access.verify_timeout_secs.max(1)),
        })
    }

    fn app_credentials(&self) -> Result<(&str, &str), Status> {
        let secret = self.client_secret.expose_secret();
        if self.client_id.is_empty() || secret.is_empty() {
            return Err(Status::failed_precondition(
                "the gateway has no Shopify app credentials: set service.access.client_id and \
                 service.webhooks.client_secret",
            ));
        }
        Ok((&self.client_id, secret))
    }

    /// One request to the shop's token endpoint; the answer as a token, or a status auth can act on.
    async fn token_request(&self, shop: &str, body: Value) -> Result<pb::ShopAccessToken, Status> {
        let url = self.http.shop_url(shop, "/admin/oauth/access_token");
        let response = self
            .http
            .client_for(shop)
            .post(url)
            .header("accept", "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                Status::unavailable(format!(
                    "{shop} did not answer the token request{}",
                    if e.is_timeout() { " in time" } else { "" }
                ))
            })?;
        let status = response.status().as_u16();
        let text = response
            .bytes()
            .await
            .map_err(|_| Status::unavailable(format!("{shop}: the token answer was cut off")))?;
        match status {
            200 => grant(&text).ok_or_else(|| {
                Status::unavailable(format!("{shop} answered the token request without a token"))
            }),
            404 => Err(Status::not_found(format!(
                "no Shopify store answers at {shop}"
            ))),
            400 | 401 | 403 | 422 => Err(Status::failed_precondition(format!(
                "Shopify refused the request for {shop}: {}",
                refusal(&text)
            ))),
            s => Err(Status::unavailable(format!(
                "Shopify answered {s} to the token request for {shop}"
            ))),
        }
    }
}

/// The wire shape of a token answer (Shopify's `AccessTokenResponse`).
#[derive(Deserialize)]
struct WireGrant {
    access_token: String,
    #[serde(default)]
    scope: String,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
    refresh_token_expires_in: Option<u64>,
}

fn grant(body: &[u8]) -> Option<pb::ShopAccessToken> {
    let wire: WireGrant = serde_json::from_slice(body).ok()?;
    if wire.access_token.is_empty() {
        return None;
    }
    Some(pb::ShopAccessToken {
        access_token: wire.access_token,
        scopes: wire
            .scope
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        expires_in: wire.expires_in.unwrap_or(0),
        refresh_token: wire.refresh_token.unwrap_or_default(),
        refresh_token_expires_in: wire.refresh_token_expires_in.unwrap_or(0),
    })
}

/// Shopify's reason for a refusal (`error_description`, else `error`, else the start of the text). Its answers never
/// echo the request, so nothing secret is repeated.
fn refusal(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let described = parsed.as_ref().and_then(|v| {
        v["error_description"]
            .as_str()
            .or_else(|| v["error"].as_str())
            .or_else(|| v["errors"].as_str())
            .map(str::to_string)
    });
    let text = described.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let text: String = text.chars().take(200).collect();
    if text.trim().is_empty() {
        "no reason given".into()
    } else {
        text
    }
}

/// `<name>.myshopify.com` and nothing else: the gateway sends an app secret to this host, so it is checked here too,
/// not only by auth.
fn shop_domain(input: &str) -> Result<&str, Status> {
    if crate::shopify::is_shop_domain(input) {
        Ok(input)
    } else {
        Err(Status::invalid_argument(format!(
            "`{input}` is not a shop domain (<name>.myshopify.com)"
        )))
    }
}

fn required<'a>(value: &'a str, what: &str) -> Result<&'a str, Status> {
    let value = value.trim();
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{what} is empty")))
    } else {
        Ok(value)
    }
}

fn authorize<T>(request: &Request<T>) -> Result<(), Status> {
    principal(request)?.require_scope(SCOPE)?;
    Ok(())
}

fn outcome<T>(rpc: &'static str, shop: &str, result: &Result<T, Status>) {
    let label = match result {
        Ok(_) => "ok".to_string(),
        Err(status) => format!("{:?}", status.code()).to_lowercase(),
    };
    record(rpc, shop, label);
}

fn record(rpc: &'static str, shop: &str, outcome: String) {
    metrics::counter!("gateway_access_calls_total", "rpc" => rpc, "outcome" => outcome.clone())
        .increment(1);
    tracing::info!(rpc, shop, outcome = %outcome, "shopify access call");
}

/// The shop's name, plan and currency from the `shop_info` document's answer.
pub fn shop_info(data: ShopInfoData) -> pb::ShopInfo {
    pb::ShopInfo {
        name: data.shop.name,
        plan: data.shop.plan.display_name,
        currency_code: data.shop.currency_code,
    }
}

#[tonic::async_trait]
impl ShopifyAccessService for AccessService {
    async fn exchange_code(
        &self,
        request: Request<pb::ExchangeCodeRequest>,
    ) -> Result<Response<pb::ExchangeCodeResponse>, Status> {
        authorize(&request)?;
        let request = request.into_inner();
        let shop = shop_domain(&request.shop_domain)?;
        let result = async {
            let code = required(&request.code, "the authorization code")?;
            let (client_id, client_secret) = self.app_credentials()?;
            let body = json!({
                "client_id": client_id,
                "client_secret": client_secret,
                "code": code,
                "expiring": if request.expiring { "1" } else { "0" },
            });
            self.token_request(shop, body).await
        }
        .await;
        outcome("ExchangeCode", shop, &result);
        Ok(Response::new(pb::ExchangeCodeResponse {
            token: Some(result?),
        }))
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::RefreshTokenResponse>, Status> {
        authorize(&request)?;
        let request = request.into_inner();
        let shop = shop_domain(&request.shop_domain)?;
        let result = async {
            let refresh_token = required(&request.refresh_token, "the refresh token")?;
            let (client_id, client_secret) = self.app_credentials()?;
            let body = json!({
                "client_id": client_id,
                "client_secret": client_secret,
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
            });
            self.token_request(shop, body).await
        }
        .await;
        outcome("RefreshToken", shop, &result);
        Ok(Response::new(pb::RefreshTokenResponse {
            token: Some(result?),
        }))
    }

    async fn verify_token(
        &self,
        request: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenResponse>, Status> {
        authorize(&request)?;
        let request = request.into_inner();
        let shop = shop_domain(&request.shop_domain)?.to_string();
        let token = required(&request.access_token, "the access token")?;
        let credentials = ShopCredentials {
            domain: shop.clone(),
            token: SecretString::from(token),
            fence: None,
        };
        // A merchant is waiting: the most urgent lane, and a bound on the executor's retries.
        let call = self
            .executor
            .send(&credentials, Lane::Orders, &ShopInfo {}, 2.0);
        let result = match tokio::time::timeout(self.verify_timeout, call).await {
            Err(_) => Err(Status::unavailable(format!(
                "{shop} did not answer within {} s",
                self.verify_timeout.as_secs()
            ))),
            Ok(Ok(data)) => Ok((Verdict::Valid, Some(shop_info(data)))),
            Ok(Err(CallError::Fatal { kind, message })) => match kind {
                FatalKind::InvalidToken => Ok((Verdict::InvalidToken, None)),
                FatalKind::UnknownShop => Ok((Verdict::UnknownShop, None)),
                FatalKind::Forbidden => Err(Status::failed_precondition(message)),
                FatalKind::InvalidRequest => Err(Status::internal(format!(
                    "the shop query was refused: {message}"
                ))),
                FatalKind::UnexpectedAnswer | FatalKind::Deposed => Err(Status::internal(message)),
            },
            Ok(Err(e @ CallError::DeadlineExceeded { .. })) => {
                Err(Status::unavailable(e.to_string()))
            }
        };
        match &result {
            Ok((verdict, _)) => record("VerifyToken", &shop, verdict.as_str_name().to_lowercase()),
            Err(_) => outcome("VerifyToken", &shop, &result),
        }
        let (verdict, shop) = result?;
        Ok(Response::new(pb::VerifyTokenResponse {
            verdict: verdict as i32,
            shop,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_myshopify_domains_are_called() {
        for good in ["a.myshopify.com", "shop-42.myshopify.com"] {
            assert!(shop_domain(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "myshopify.com",
            ".myshopify.com",
            "evil.com",
            "a.myshopify.com.evil.com",
            "a.b.myshopify.com",
            "A.myshopify.com",
            "a.myshopify.com:443",
            "a.myshopify.com/x",
            "user@a.myshopify.com",
            "-a.myshopify.com",
            "127.0.0.1",
        ] {
            assert!(shop_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_answers_are_read_as_shopify_writes_them() {
        let offline =
            grant(br#"{"access_token":"shpat_x","scope":"write_products,read_orders"}"#).unwrap();
        assert_eq!(offline.scopes, ["write_products", "read_orders"]);
        assert_eq!(
            (offline.expires_in, offline.refresh_token.as_str()),
            (0, "")
        );
        let expiring = grant(
            br#"{"access_token":"shpat_y","scope":"read_products","expires_in":3600,
                "refresh_token":"shprt_z","refresh_token_expires_in":7776000}"#,
        )
        .unwrap();
        assert_eq!(expiring.expires_in, 3600);
        assert_eq!(expiring.refresh_token, "shprt_z");
        assert_eq!(expiring.refresh_token_expires_in, 7_776_000);
        assert!(grant(br#"{"error":"invalid_request"}"#).is_none());
        assert!(grant(br#"{"access_token":""}"#).is_none());
    }

    #[test]
    fn refusals_say_shopifys_reason_briefly() {
        assert_eq!(
            refusal(
                br#"{"error":"invalid_request","error_description":"The code was already used"}"#
            ),
            "The code was already used"
        );
        assert_eq!(refusal(b"{\"error\":\"invalid_client\"}"), "invalid_client");
        assert_eq!(refusal(b""), "no reason given");
        assert_eq!(refusal("x".repeat(500).as_bytes()).len(), 200);
    }
}
