//! OAuth authorization-code grant as Shopify runs it (auto-approved), token exchange for the
//! code, expiring offline tokens with rotating refresh tokens, and client credentials.

use crate::hmac::{oauth_hmac, parse_query, url_encode};
use crate::routes::{AppState, host_of, json_response};
use crate::sim::{OAuthCode, RefreshToken, Token, new_token};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};

/// Codes are valid this long (Shopify does not document it; a minute is what apps assume).
const CODE_TTL_SECS: f64 = 600.0;
const EXPIRING_ACCESS_SECS: f64 = 3600.0;
const REFRESH_SECS: f64 = 90.0 * 86_400.0;
const ONLINE_SECS: f64 = 86_399.0;

pub async fn authorize(State(sim): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let domain = host_of(&headers, &uri);
    let params = parse_query(uri.query().unwrap_or(""));
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if sim.shop(&domain).is_none() {
        return (StatusCode::NOT_FOUND, "There's no store at this address.").into_response();
    }
    if get("client_id").as_deref() != Some(sim.config.client_id.as_str()) {
        return (
            StatusCode::BAD_REQUEST,
            "Oauth error invalid_request: The client_id is invalid",
        )
            .into_response();
    }
    let Some(redirect) = get("redirect_uri") else {
        return (
            StatusCode::BAD_REQUEST,
            "Oauth error invalid_request: The redirect_uri is missing",
        )
            .into_response();
    };
    let online = params
        .iter()
        .any(|(k, v)| (k == "grant_options[]" || k == "grant_options") && v == "per-user");
    let scope = get("scope").unwrap_or_else(|| sim.config.default_scopes.clone());
    let code = uuid::Uuid::new_v4().simple().to_string();
    sim.oauth_codes.lock().unwrap().insert(
        code.clone(),
        OAuthCode {
            shop: domain.clone(),
            scope,
            online,
            created: sim.now_secs(),
        },
    );
    let name = domain.split('.').next().unwrap_or("");
    let host = base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(format!("admin.shopify.com/store/{name}"));
    let mut out: Vec<(String, String)> = vec![
        ("code".into(), code),
        ("host".into(), host),
        ("shop".into(), domain.clone()),
        ("timestamp".into(), (sim.now_secs() as i64).to_string()),
    ];
    if let Some(state) = get("state") {
        out.push(("state".into(), state));
    }
    let hmac = oauth_hmac(&sim.config.client_secret, &out);
    out.push(("hmac".into(), hmac));
    out.sort();
    let q: Vec<String> = out
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect();
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let location = format!("{redirect}{sep}{}", q.join("&"));
    (StatusCode::FOUND, [("location", location)]).into_response()
}

fn oauth_error(desc: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": "invalid_request", "error_description": desc}),
    )
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::String(s)) => s == "1" || s == "true",
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

pub async fn access_token(
    State(sim): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let domain = host_of(&headers, &uri);
    let Some(shop) = sim.shop(&domain) else {
        return (StatusCode::NOT_FOUND, "There's no store at this address.").into_response();
    };
    // JSON or form-encoded bodies, as Shopify accepts both.
    let p: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => m,
        _ => parse_query(&String::from_utf8_lossy(&body))
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    };
    let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
    if s("client_id") != sim.config.client_id || s("client_secret") != sim.config.client_secret {
        return oauth_error("Client credentials are invalid");
    }
    let now = sim.now_secs();
    let issue = |scope: &str, online: bool, expiring: bool| -> Value {
        let token = new_token();
        let expires_at = if online {
            Some(now + ONLINE_SECS)
        } else if expiring {
            Some(now + EXPIRING_ACCESS_SECS)
        } else {
            None
        };
        shop.tokens.lock().unwrap().insert(
            token.clone(),
            Token {
                expires_at,
                online,
                scope: scope.to_string(),
            },
        );
        let mut out = json!({"access_token": token, "scope": scope});
        if online {
            out["expires_in"] = json!(ONLINE_SECS as u64);
            out["associated_user_scope"] = json!(scope);
            out["associated_user"] = json!({"id": 902541635u64, "first_name": "Sim", "last_name": "User",
                "email": format!("staff@{}", shop.domain), "email_verified": true, "account_owner": true,
                "locale": "en", "collaborator": false});
        } else if expiring {
            let refresh = format!("shprt_{}", uuid::Uuid::new_v4().simple());
            shop.refresh_tokens.lock().unwrap().insert(
                refresh.clone(),
                RefreshToken {
                    expires_at: now + REFRESH_SECS,
                    scope: scope.to_string(),
                },
            );
            out["expires_in"] = json!(EXPIRING_ACCESS_SECS as u64);
            out["refresh_token"] = json!(refresh);
            out["refresh_token_expires_in"] = json!(REFRESH_SECS as u64);
        }
        out
    };
    match s("grant_type") {
        "refresh_token" => {
            // Refresh tokens rotate: each one works once.
            let rt = shop
                .refresh_tokens
                .lock()
                .unwrap()
                .remove(s("refresh_token"));
            match rt {
                Some(r) if r.expires_at > now => {
                    json_response(StatusCode::OK, &issue(&r.scope, false, true))
                }
                _ => oauth_error("The refresh token is invalid or expired"),
            }
        }
        "client_credentials" => {
            let token = new_token();
            shop.tokens.lock().unwrap().insert(
                token.clone(),
                Token {
                    expires_at: Some(now + 86_399.0),
                    online: false,
                    scope: sim.config.default_scopes.clone(),
                },
            );
            json_response(
                StatusCode::OK,
                &json!({"access_token": token, "scope": sim.config.default_scopes, "expires_in": 86399}),
            )
        }
        _ => {
            // Codes are single-use and bound to their shop.
            let code = sim.oauth_codes.lock().unwrap().remove(s("code"));
            match code {
                Some(c) if c.shop == shop.domain && now - c.created < CODE_TTL_SECS => {
                    json_response(
                        StatusCode::OK,
                        &issue(&c.scope, c.online, truthy(p.get("expiring"))),
                    )
                }
                _ => oauth_error("The authorization code was not found or was already used"),
            }
        }
    }
}
