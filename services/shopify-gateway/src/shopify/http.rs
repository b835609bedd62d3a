//! The one place that speaks HTTP to Shopify: builds the request for a shop, sends it, and classifies the answer.
//! Wire types stay private to this module.

use std::{collections::HashMap, net::SocketAddr, sync::Mutex, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::budget::ThrottleStatus;

/// Where Shopify is. For the real thing: `https`, default port, normal DNS. For the simulator: its scheme and port,
/// with every shop's host name resolved to its address (the URLs stay Shopify's).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifySettings {
    /// The Admin API version requested (`YYYY-MM`). Shopify serves a stable version about a year, then answers
    /// requests for it as the oldest one still served; the version it used is recorded per shop (`served_version`)
    /// and a difference is warned about.
    pub api_version: String,
    pub scheme: String,
    /// 0 for the scheme's default port.
    pub port: u16,
    /// Connect every shop host to this address instead of resolving it ("" for normal DNS).
    pub connect_to: String,
    pub request_timeout_secs: u64,
}

/// The cost section of a response.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallCost {
    pub requested: Option<f64>,
    pub actual: Option<f64>,
    pub throttle: Option<ThrottleStatus>,
}

/// How one HTTP exchange ended.
#[derive(Debug)]
pub enum Answer {
    Data {
        data: Value,
        cost: CallCost,
    },
    /// HTTP 200 with `THROTTLED`: nothing ran.
    Throttled {
        cost: CallCost,
    },
    /// Worth retrying: 429/430/5xx, timeouts, dropped connections.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: bad token, unknown shop, invalid document, query too expensive.
    Fatal {
        kind: FatalKind,
        message: String,
        cost: CallCost,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatalKind {
    InvalidToken,
    UnknownShop,
    Forbidden,
    InvalidRequest,
    /// The answer lacks a field we need, or has it in another shape (schema drift): retrying cannot help.
    UnexpectedAnswer,
    /// Not sent: this replica no longer holds the shop's partition (the command goes to the one that does).
    Deposed,
}

#[derive(Deserialize)]
struct WireResponse {
    data: Option<Value>,
    #[serde(default)]
    errors: Vec<WireError>,
    extensions: Option<WireExtensions>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default)]
    message: String,
    extensions: Option<WireErrorExtensions>,
}

#[derive(Deserialize)]
struct WireErrorExtensions {
    code: Option<String>,
}

#[derive(Deserialize)]
struct WireExtensions {
    cost: Option<WireCost>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCost {
    requested_query_cost: Option<f64>,
    actual_query_cost: Option<f64>,
    throttle_status: Option<WireThrottle>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireThrottle {
    maximum_available: f64,
    currently_available: f64,
    restore_rate: f64,
}

impl From<Option<WireExtensions>> for CallCost {
    fn from(ext: Option<WireExtensions>) -> Self {
        let Some(cost) = ext.and_then(|e| e.cost) else {
            return CallCost::default();
        };
        CallCost {
            requested: cost.requested_query_cost,
            actual: cost.actual_query_cost,
            throttle: cost.throttle_status.map(|t| ThrottleStatus {
                maximum_available: t.maximum_available,
                currently_available: t.currently_available,
                restore_rate: t.restore_rate,
            }),
        }
    }
}

/// Sends GraphQL to shops.
pub struct ShopifyHttp {
    settings: ShopifySettings,
    connect_to: Option<SocketAddr>,
    default_client: reqwest::Client,
    /// One client per shop when host names are pinned to an address (reqwest pins per client).
    pinned: Mutex<HashMap<String, reqwest::Client>>,
    /// The API version each shop last answered with (`X-Shopify-API-Version`).
    served: Mutex<HashMap<String, String>>,
}

impl ShopifyHttp {
    pub fn new(settings: ShopifySettings) -> anyhow::Result<Self> {
        shopbridge_platform::install_crypto_provider();
        // Tokens go to Shopify over TLS; plain HTTP only to a simulator every shop is redirected to.
        if settings.scheme != "https" && settings.connect_to.is_empty() {
            anyhow::bail!(
                "configuration key `service.shopify.scheme` is {:?}: Shopify is called over https; another scheme \
                 only with `service.shopify.connect_to` set (a simulator)",
                settings.scheme
            );
        }
        let connect_to = if settings.connect_to.is_empty() {
            None
        } else {
            Some(settings.connect_to.parse().map_err(|e| {
                anyhow::anyhow!(
                    "configuration key `service.shopify.connect_to` is not an address: {e}"
                )
            })?)
        };
        let default_client = Self::builder(&settings).build()?;
        Ok(Self {
            settings,
            connect_to,
            default_client,
            pinned: Mutex::new(HashMap::new()),
            served: Mutex::new(HashMap::new()),
        })
    }

    fn builder(settings: &ShopifySettings) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.request_timeout_secs))
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(8)
            .user_agent(concat!("shopbridge-gateway/", env!("CARGO_PKG_VERSION")))
    }

    fn client(&self, shop: &str) -> reqwest::Client {
        let Some(addr) = self.connect_to else {
            return self.default_client.clone();
        };
        let mut pinned = self.pinned.lock().unwrap();
        pinned
            .entry(shop.to_string())
            .or_insert_with(|| {
                Self::builder(&self.settings)
                    .resolve(shop, addr)
                    .build()
                    .unwrap_or_default()
            })
            .clone()
    }

    pub fn graphql_url(&self, shop: &str) -> String {
        self.shop_url(
            shop,
            &format!("/admin/api/{}/graphql.json", self.settings.api_version),
        )
    }

    /// `https://<shop><path>`, with the configured scheme and port (the simulator's in tests).
    pub fn shop_url(&self, shop: &str, path: &str) -> String {
        let port = if self.settings.port == 0 {
            String::new()
        } else {
            format!(":{}", self.settings.port)
        };
        format!("{}://{shop}{port}{path}", self.settings.scheme)
    }

    /// The HTTP client for `shop` (pinned to `connect_to` when set), for Shopify endpoints other than GraphQL (the
    /// OAuth token endpoint, see `access`).
    pub(crate) fn client_for(&self, shop: &str) -> reqwest::Client {
        self.client(shop)
    }

    /// The API version `shop` last answered with, if it has answered.
    pub fn served_version(&self, shop: &str) -> Option<String> {
        self.served.lock().unwrap().get(shop).cloned()
    }

    /// Records the version a shop answered with; warns when it is not the one requested (the requested version is
    /// no longer served and Shopify fell forward: its semantics may not be the ones the documents were written for).
    fn record_served_version(&self, shop: &str, served: &str) {
        let mut versions = self.served.lock().unwrap();
        if versions.get(shop).map(String::as_str) == Some(served) {
            return;
        }
        versions.insert(shop.to_string(), served.to_string());
        drop(versions);
        let requested = self.settings.api_version.as_str();
        if served != requested {
            metrics::counter!("gateway_api_version_mismatch_total", "shop" => shop.to_string())
                .increment(1);
            tracing::warn!(
                shop,
                requested,
                served,
                "shopify answered with another api version than requested"
            );
        }
    }

    /// Posts one document. The token goes in `X-Shopify-Access-Token` and nowhere else (never logged). No
    /// idempotency header: Shopify has none; the mutations it de-duplicates take `@idempotent(key:)` in the document.
    pub async fn post(
        &self,
        shop: &str,
        token: &SecretString,
        query: &str,
        variables: &Value,
    ) -> Answer {
        if !is_shop_domain(shop) {
            return fatal(
                FatalKind::UnknownShop,
                &format!(
                    "refused to send a token to {shop:?}: not a shop domain (<name>.myshopify.com)"
                ),
            );
        }
        let request = self
            .client(shop)
            .post(self.graphql_url(shop))
            .header("X-Shopify-Access-Token", token.expose_secret())
            .json(&serde_json::json!({ "query": query, "variables": variables }));
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return transient("request timed out", None),
            Err(e) => return transient(&format!("request failed: {}", without_url(&e)), None),
        };
        let status = response.status().as_u16();
        if let Some(served) = response
            .headers()
            .get("x-shopify-api-version")
            .and_then(|v| v.to_str().ok())
        {
            self.record_served_version(shop, served);
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(Duration::from_secs_f64);
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return transient(&format!("response cut off: {}", without_url(&e)), None),
        };
        match status {
            200 => classify(&body),
            401 => fatal(
                FatalKind::InvalidToken,
                "Shopify refused the access token (401)",
            ),
            402 => fatal(FatalKind::Forbidden, "the shop is frozen or unpaid (402)"),
            403 => fatal(
                FatalKind::Forbidden,
                "the token lacks a scope this call needs (403)",
            ),
            404 => fatal(
                FatalKind::UnknownShop,
                "no such shop (404): check the store URL",
            ),
            423 => fatal(FatalKind::Forbidden, "the shop is locked (423)"),
            429 => transient("rate limited (429)", retry_after),
            430 => transient("Shopify security rejection (430)", retry_after),
            s if s >= 500 => transient(&format!("Shopify answered {s}"), retry_after),
            s => fatal(
                FatalKind::InvalidRequest,
                &format!("unexpected HTTP status {s}"),
            ),
        }
    }
}

/// Whether `host` is a shop's own domain, `<name>.myshopify.com` (lowercase letters, digits and dashes): the only
/// hosts a shop's token is sent to.
pub fn is_shop_domain(host: &str) -> bool {
    host.strip_suffix(".myshopify.com").is_some_and(|name| {
        !name.is_empty()
            && name.len() <= 63
            && !name.starts_with('-')
            && !name.ends_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// reqwest errors can carry the URL; ours holds no secret, but keep messages short and stable.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<shopify>");
    }
    text
}

fn transient(reason: &str, retry_after: Option<Duration>) -> Answer {
    Answer::Transient {
        reason: reason.to_string(),
        retry_after,
    }
}

fn fatal(kind: FatalKind, message: &str) -> Answer {
    Answer::Fatal {
        kind,
        message: message.to_string(),
        cost: CallCost::default(),
    }
}

fn classify(body: &[u8]) -> Answer {
    let parsed: WireResponse = match serde_json::from_slice(body) {
        Ok(parsed) => parsed,
        Err(e) => return transient(&format!("response is not GraphQL JSON: {e}"), None),
    };
    let cost = CallCost::from(parsed.extensions);
    let code_of = |e: &WireError| {
        e.extensions
            .as_ref()
            .and_then(|x| x.code.clone())
            .unwrap_or_default()
    };
    if parsed.errors.iter().any(|e| code_of(e) == "THROTTLED") {
        return Answer::Throttled { cost };
    }
    if parsed
        .errors
        .iter()
        .any(|e| code_of(e) == "INTERNAL_SERVER_ERROR")
    {
        return transient("Shopify reported an internal error", None);
    }
    match parsed.data {
        Some(data) if parsed.errors.is_empty() => Answer::Data { data, cost },
        _ => {
            let message = parsed
                .errors
                .iter()
                .map(|e| format!("{} ({})", e.message, code_of(e)))
                .collect::<Vec<_>>()
                .join("; ");
            Answer::Fatal {
                kind: FatalKind::InvalidRequest,
                message,
                cost,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_is_recognised_in_a_200_body_and_its_status_read() {
        let body = br#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED","documentation":"x"}}],
            "extensions":{"cost":{"requestedQueryCost":752,"actualQueryCost":null,
            "throttleStatus":{"maximumAvailable":1000.0,"currentlyAvailable":666,"restoreRate":50.0}}}}"#;
        let Answer::Throttled { cost } = classify(body) else {
            panic!("not throttled")
        };
        assert_eq!(cost.requested, Some(752.0));
        assert_eq!(cost.actual, None);
        assert_eq!(cost.throttle.unwrap().currently_available, 666.0);
    }

    #[test]
    fn data_with_cost_and_errors_without_data_are_told_apart() {
        let ok = br#"{"data":{"shop":{"name":"x"}},"extensions":{"cost":{"requestedQueryCost":1,"actualQueryCost":1,
            "throttleStatus":{"maximumAvailable":2000.0,"currentlyAvailable":1999,"restoreRate":100.0}}}}"#;
        assert!(matches!(classify(ok), Answer::Data { .. }));
        let bad = br#"{"errors":[{"message":"Field 'x' doesn't exist on type 'Shop'","extensions":{"code":"undefinedField"}}]}"#;
        let Answer::Fatal { kind, message, .. } = classify(bad) else {
            panic!()
        };
        assert_eq!(kind, FatalKind::InvalidRequest);
        assert!(message.contains("doesn't exist"));
    }

    #[test]
    fn urls_are_shopifys_with_the_configured_scheme_and_port() {
        let settings = ShopifySettings {
            api_version: "2026-10".into(),
            scheme: "https".into(),
            port: 0,
            connect_to: String::new(),
            request_timeout_secs: 30,
        };
        let http = ShopifyHttp::new(settings.clone()).unwrap();
        assert_eq!(
            http.graphql_url("a.myshopify.com"),
            "https://a.myshopify.com/admin/api/2026-10/graphql.json"
        );
        let http = ShopifyHttp::new(ShopifySettings {
            scheme: "http".into(),
            port: 9,
            connect_to: "127.0.0.1:9".into(),
            ..settings.clone()
        })
        .unwrap();
        assert_eq!(
            http.graphql_url("a.myshopify.com"),
            "http://a.myshopify.com:9/admin/api/2026-10/graphql.json"
        );
        // Plain HTTP only towards a simulator every shop is redirected to.
        let refused = ShopifyHttp::new(ShopifySettings {
            scheme: "http".into(),
            ..settings
        });
        assert!(refused.is_err());
    }

    #[tokio::test]
    async fn a_token_is_sent_to_shop_domains_only() {
        let http = ShopifyHttp::new(ShopifySettings {
            api_version: "2026-10".into(),
            scheme: "https".into(),
            port: 0,
            connect_to: String::new(),
            request_timeout_secs: 1,
        })
        .unwrap();
        let token = SecretString::from("shpat_secret");
        for host in [
            "evil.com",
            "a.myshopify.com.evil.com",
            "a.myshopify.com@evil.com",
            "127.0.0.1",
            "",
        ] {
            let answer = http
                .post(host, &token, "{ shop { name } }", &serde_json::json!({}))
                .await;
            assert!(
                matches!(
                    answer,
                    Answer::Fatal {
                        kind: FatalKind::UnknownShop,
                        ..
                    }
                ),
                "{host:?}: {answer:?}"
            );
        }
        assert!(is_shop_domain("shop-42.myshopify.com"));
    }
}
