//! HMAC vectors (copied from ../shared/data/shopify/hmac_test_vectors.json), the OAuth flow and
//! access-token checks.

mod common;
use serde_json::{Value, json};
use shopify_sim::hmac::{
    oauth_hmac, oauth_message, parse_query, verify_oauth, verify_webhook, webhook_signature,
};
use std::time::Duration;

const VECTORS: &str = include_str!("data/hmac_test_vectors.json");

#[test]
fn webhook_vectors() {
    let v: Value = serde_json::from_str(VECTORS).unwrap();
    for w in v["webhook"].as_array().unwrap() {
        let secret = w["secret"].as_str().unwrap();
        let body = w["raw_body"].as_str().unwrap().as_bytes();
        let want = w["expected_header_X-Shopify-Hmac-Sha256"].as_str().unwrap();
        assert_eq!(webhook_signature(secret, body), want, "{}", w["name"]);
        assert!(verify_webhook(secret, body, want));
        assert!(!verify_webhook(secret, b"{\"foo\": \"baz\"}", want));
        assert!(!verify_webhook("other", body, want));
    }
}

#[test]
fn oauth_vectors() {
    let v: Value = serde_json::from_str(VECTORS).unwrap();
    for o in v["oauth_query"].as_array().unwrap() {
        let secret = o["secret"].as_str().unwrap();
        let params: Vec<(String, String)> = match o.get("query") {
            Some(q) => parse_query(q.as_str().unwrap()),
            None => o["params"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect(),
        };
        assert_eq!(
            oauth_message(&params),
            o["message_signed"].as_str().unwrap(),
            "{}",
            o["name"]
        );
        assert_eq!(
            oauth_hmac(secret, &params),
            o["expected_hex"].as_str().unwrap(),
            "{}",
            o["name"]
        );
        if o.get("query").is_some() {
            assert!(verify_oauth(secret, &params));
            let mut bad = params.clone();
            bad[0].1.push('x');
            assert!(!verify_oauth(secret, &bad));
        }
    }
}

fn no_redirect(t: &common::T) -> reqwest::Client {
    reqwest::Client::builder()
        .resolve(&t.shop, t.sim.addr())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn authorize(t: &common::T, extra: &str) -> Vec<(String, String)> {
    let url = format!(
        "http://{}:{}/admin/oauth/authorize?client_id=test-client&scope=read_products,write_inventory&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=nonce%20123{extra}",
        t.shop,
        t.sim.addr().port()
    );
    let r = no_redirect(t).get(url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let (base, q) = loc.split_once('?').unwrap();
    assert_eq!(base, "https://app.example/cb");
    parse_query(q)
}

async fn exchange(t: &common::T, body: Value) -> (u16, Value) {
    let url = format!(
        "http://{}:{}/admin/oauth/access_token",
        t.shop,
        t.sim.addr().port()
    );
    let r = no_redirect(t).post(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn gql_status(t: &common::T, token: &str) -> u16 {
    t.client
        .graphql(&t.shop, token, "{ shop { name } }", json!({}))
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn authorization_code_flow() {
    let t = common::start(None).await;
    let params = authorize(&t, "").await;
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("shop"), t.shop);
    assert_eq!(get("state"), "nonce 123");
    assert!(get("timestamp").parse::<i64>().is_ok());
    // Signed as Shopify signs it: verifiable with the app secret and the vector algorithm.
    assert!(verify_oauth("hush", &params));
    assert!(!verify_oauth("wrong", &params));
    assert_eq!(oauth_hmac("hush", &params), get("hmac"));

    let code = get("code");
    let (s, tok) = exchange(
        &t,
        json!({"client_id": "test-client", "client_secret": "hush", "code": code}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(tok["scope"], "read_products,write_inventory");
    let token = tok["access_token"].as_str().unwrap();
    assert!(token.starts_with("shpat_"));
    assert!(
        tok.get("refresh_token").is_none(),
        "offline tokens do not expire"
    );
    assert_eq!(gql_status(&t, token).await, 200);
    // Codes are single use.
    let (s, e) = exchange(
        &t,
        json!({"client_id": "test-client", "client_secret": "hush", "code": code}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(e["error"], "invalid_request");
    // Wrong secret.
    let code2 = authorize(&t, "")
        .await
        .into_iter()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1;
    let (s, _) = exchange(
        &t,
        json!({"client_id": "test-client", "client_secret": "nope", "code": code2}),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn expiring_and_online_tokens() {
    let t = common::start(None).await;
    let code = authorize(&t, "")
        .await
        .into_iter()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1;
    let (_, tok) = exchange(
        &t,
        json!({"client_id": "test-client", "client_secret": "hush", "code": code, "expiring": "1"}),
    )
    .await;
    assert_eq!(tok["expires_in"], 3600);
    let access = tok["access_token"].as_str().unwrap().to_string();
    let refresh = tok["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(gql_status(&t, &access).await, 200);
    t.sim.clock().advance(Duration::from_secs(3601));
    assert_eq!(gql_status(&t, &access).await, 401, "expired after an hour");
    let (s, new) = exchange(&t, json!({"client_id": "test-client", "client_secret": "hush", "grant_type": "refresh_token", "refresh_token": refresh})).await;
    assert_eq!(s, 200);
    assert_eq!(
        gql_status(&t, new["access_token"].as_str().unwrap()).await,
        200
    );
    assert_ne!(
        new["refresh_token"],
        json!(refresh),
        "refresh tokens rotate"
    );
    let (s, _) = exchange(&t, json!({"client_id": "test-client", "client_secret": "hush", "grant_type": "refresh_token", "refresh_token": refresh})).await;
    assert_eq!(s, 400, "a used refresh token is dead");

    let code = authorize(&t, "&grant_options%5B%5D=per-user")
        .await
        .into_iter()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1;
    let (_, tok) = exchange(
        &t,
        json!({"client_id": "test-client", "client_secret": "hush", "code": code}),
    )
    .await;
    assert_eq!(tok["expires_in"], 86399);
    assert!(tok["associated_user"]["id"].as_u64().is_some());
}

#[tokio::test]
async fn tokens_and_shops_are_checked() {
    let t = common::start(None).await;
    let (s, body) = t
        .client
        .graphql(&t.shop, "shpat_wrong", "{ shop { name } }", json!({}))
        .await
        .unwrap();
    assert_eq!(s, 401);
    assert_eq!(
        body["errors"],
        "[API] Invalid API key or access token (unrecognized login or wrong password)"
    );
    assert_eq!(gql_status(&t, "").await, 401);
    let (s, _) = t
        .client
        .graphql(
            "nowhere.myshopify.com",
            &t.token,
            "{ shop { name } }",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(s, 404);
    // Tokens are per shop.
    let other = t
        .client
        .create_shop("other-shop.myshopify.com", "standard")
        .await
        .unwrap();
    assert_eq!(gql_status(&t, &other).await, 401);
    let stats = t.client.stats(&t.shop).await.unwrap();
    assert_eq!(stats["unauthorized"], 3);

    // Bodies: JSON, or the bare document as application/graphql; anything else is a 400.
    let http = t.client.shop_http(&t.shop);
    let url = t.client.graphql_url(&t.shop, "2025-10");
    let r = http
        .post(&url)
        .header("X-Shopify-Access-Token", &t.token)
        .header("content-type", "application/graphql")
        .body("{ shop { name } }")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["data"]["shop"]["name"],
        "test shop"
    );
    let r = http
        .post(&url)
        .header("X-Shopify-Access-Token", &t.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"errors": {"query": "Required parameter missing or invalid"}})
    );
}
