//! The OAuth connection through auth's real gRPC and HTTP: BeginOAuth, then Shopify's redirect to
//! `GET /shopify/oauth/callback`, signed here as Shopify signs it. The code exchange and refresh are the fake gateway
//! (`FakeAccess`); the flow against the real gateway and the simulator is in tests/e2e.

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use shopbridge_auth::{
    channels::{refresh_token_context, token_context},
    crypto::Encryptor,
    oauth_flow::SUCCESS,
};
use shopbridge_platform::testing::eventually;
use shopbridge_proto::auth as pb;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{
    APP_CLIENT_ID, APP_CLIENT_SECRET, GOOD_SHOP, K1, TestApp, authed, env_with_keys, oauth_env,
};

/// Shopify's signature of a redirect: parameters but `hmac` sorted by name, `k=v` joined by `&` (`%` and `&` escaped),
/// HMAC-SHA256 with the app's client secret, hex.
fn sign(params: &[(&str, String)], secret: &str) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let mut sorted = params.clone();
    sorted.sort();
    let message = sorted
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('%', "%25").replace('&', "%26")))
        .collect::<Vec<_>>()
        .join("&");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, message.as_bytes());
    params.push((
        "hmac".into(),
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
    ));
    params
}

/// The redirect Shopify sends after the merchant approves, signed with the app's secret.
fn redirect(shop: &str, state: &str, timestamp: i64) -> Vec<(String, String)> {
    sign(
        &[
            ("code", "0907a61c0c8d55e99db179b68161bc00".into()),
            (
                "host",
                "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvZ29vZC1zaG9w".into(),
            ),
            ("shop", shop.into()),
            ("state", state.into()),
            ("timestamp", timestamp.to_string()),
        ],
        APP_CLIENT_SECRET,
    )
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET the callback with `params`; the status and the page.
async fn callback(app: &TestApp, params: &[(String, String)]) -> (u16, String) {
    let query = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let response = reqwest::get(format!(
        "http://{}/shopify/oauth/callback?{query}",
        app.http_addr
    ))
    .await
    .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn begin(
    app: &TestApp,
    token: &str,
    channel_id: &str,
    shop: &str,
) -> (pb::BeginOAuthResponse, String) {
    let begun = app
        .channels()
        .await
        .begin_o_auth(authed(
            pb::BeginOAuthRequest {
                channel_id: channel_id.into(),
                shop_domain: shop.into(),
            },
            token,
        ))
        .await
        .expect("begin oauth")
        .into_inner();
    let state = begun
        .authorize_url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("state="))
        .expect("a state in the URL")
        .to_string();
    (begun, state)
}

/// consumed_at IS NOT NULL of each state nonce of a channel.
async fn states(app: &TestApp, channel_id: &str) -> Vec<bool> {
    sqlx::query_scalar(
        "SELECT consumed_at IS NOT NULL FROM oauth_states WHERE channel_id = $1::uuid ORDER BY created_at",
    )
    .bind(channel_id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
}

type Params = Vec<(String, String)>;

/// access_token_enc, refresh_token_enc, access_token_expires_at, state, last_error.
type TokenRow = (
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
    String,
    Option<String>,
);

async fn token_row(app: &TestApp, channel_id: &str) -> TokenRow {
    sqlx::query_as(
        "SELECT access_token_enc, refresh_token_enc, access_token_expires_at, state, last_error
         FROM channels WHERE id = $1::uuid",
    )
    .bind(channel_id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

fn encryptor(app: &TestApp) -> Encryptor {
    Encryptor::from_settings(&app.settings.service).unwrap()
}

async fn setup(app: &TestApp) -> (String, pb::Channel) {
    let admin = app.bootstrap_admin("tenant-a").await;
    let token = app.token_for(&admin).await;
    let channel = app.create_channel(&token, "main").await;
    (token, channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_oauth_gives_shopifys_grant_url_with_the_scopes_and_a_stored_single_use_state() {
    let app = TestApp::spawn_oauth(oauth_env(&[])).await;
    let (token, channel) = setup(&app).await;
    let (begun, state) = begin(
        &app,
        &token,
        &channel.channel_id,
        "HTTPS://Good-Shop.MyShopify.com/",
    )
    .await;

    assert_eq!(begun.shop_domain, GOOD_SHOP);
    let scopes = shopbridge_auth::config::DEFAULT_SCOPES.replace(',', "%2C");
    assert_eq!(
        begun.authorize_url,
        format!(
            "https://{GOOD_SHOP}/admin/oauth/authorize?client_id={APP_CLIENT_ID}&scope={scopes}\
             &redirect_uri=http%3A%2F%2F127.0.0.1%3A8081%2Fshopify%2Foauth%2Fcallback&state={state}"
        )
    );
    assert!(state.len() >= 43, "a long random nonce: {state}");
    let expires = begun.expires_at.unwrap().seconds - Utc::now().timestamp();
    assert!((590..=600).contains(&expires), "{expires}");
    // Stored as a hash, for this channel and shop, not consumed.
    let (hash, shop): (String, String) = sqlx::query_as(
        "SELECT state_hash, shop_domain FROM oauth_states WHERE channel_id = $1::uuid",
    )
    .bind(&channel.channel_id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(hash, shopbridge_auth::oauth_states::hash(&state));
    assert_ne!(hash, state);
    assert_eq!(shop, GOOD_SHOP);
    assert_eq!(states(&app, &channel.channel_id).await, vec![false]);

    // A disconnected channel turns CONNECTING again, with one event.
    app.channels()
        .await
        .disconnect_channel(authed(
            pb::DisconnectChannelRequest {
                channel_id: channel.channel_id.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    let events_before = app.outbox_types(&channel.channel_id).await.len();
    begin(&app, &token, &channel.channel_id, GOOD_SHOP).await;
    assert_eq!(token_row(&app, &channel.channel_id).await.3, "connecting");
    assert_eq!(
        app.outbox_types(&channel.channel_id).await.len(),
        events_before + 1
    );

    // Bad input changes nothing.
    let mut api = app.channels().await;
    for (channel_id, shop, code) in [
        (
            channel.channel_id.as_str(),
            "evil.com",
            Code::InvalidArgument,
        ),
        (
            channel.channel_id.as_str(),
            "good-shop.myshopify.com.evil.com",
            Code::InvalidArgument,
        ),
        (
            "00000000-0000-0000-0000-000000000000",
            GOOD_SHOP,
            Code::NotFound,
        ),
    ] {
        let status = api
            .begin_o_auth(authed(
                pb::BeginOAuthRequest {
                    channel_id: channel_id.into(),
                    shop_domain: shop.into(),
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{shop}: {}", status.message());
    }
    assert_eq!(states(&app, &channel.channel_id).await.len(), 2);
    // Another tenant's channel is not found.
    let other = app.bootstrap_admin("tenant-b").await;
    let other_token = app.token_for(&other).await;
    let status = api
        .begin_o_auth(authed(
            pb::BeginOAuthRequest {
                channel_id: channel.channel_id.clone(),
                shop_domain: GOOD_SHOP.into(),
            },
            &other_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_redirect_connects_the_channel_once_with_the_token_encrypted() {
    let app = TestApp::spawn_oauth(oauth_env(&[])).await;
    let (token, channel) = setup(&app).await;
    let (_, state) = begin(&app, &token, &channel.channel_id, GOOD_SHOP).await;
    let params = redirect(GOOD_SHOP, &state, Utc::now().timestamp());

    let (status, page) = callback(&app, &params).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(SUCCESS), "{page}");
    assert_eq!(
        *app.access.exchanges.lock().unwrap(),
        vec![(
            GOOD_SHOP.to_string(),
            "0907a61c0c8d55e99db179b68161bc00".to_string()
        )]
    );
    let (access_enc, refresh_enc, expires_at, state_name, last_error) =
        token_row(&app, &channel.channel_id).await;
    assert_eq!((state_name.as_str(), last_error), ("active", None));
    let id = Uuid::parse_str(&channel.channel_id).unwrap();
    let access_enc = access_enc.expect("a stored token");
    assert!(access_enc.starts_with("v1:k1:") && !access_enc.contains("shpat"));
    assert_eq!(
        encryptor(&app)
            .decrypt_string(&access_enc, &token_context(id))
            .unwrap()
            .expose_secret(),
        "shpat_granted_0"
    );
    // Expiring offline tokens by default: the refresh token is stored encrypted too, with the expiry.
    let refresh_enc = refresh_enc.expect("a stored refresh token");
    assert_eq!(
        encryptor(&app)
            .decrypt_string(&refresh_enc, &refresh_token_context(id))
            .unwrap()
            .expose_secret(),
        "shprt_granted_0"
    );
    let left = expires_at.unwrap().timestamp() - Utc::now().timestamp();
    assert!((3590..=3600).contains(&left), "{left}");
    let shown = app
        .channels()
        .await
        .get_channel(authed(
            pb::GetChannelRequest {
                channel_id: channel.channel_id.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    assert_eq!(shown.state, pb::ChannelState::Active as i32);
    assert_eq!(
        (shown.shop_domain.as_str(), shown.shop_name.as_str()),
        (GOOD_SHOP, "")
    );
    assert!(shown.granted_scopes.contains(&"write_products".to_string()));
    assert_eq!(states(&app, &channel.channel_id).await, vec![true]);
    let events = app.outbox_types(&channel.channel_id).await;
    assert_eq!(events.len(), 2, "created, then active: {events:?}");

    // The same redirect again: refused, nothing exchanged or changed.
    let (status, page) = callback(&app, &params).await;
    assert_eq!(status, 400);
    assert!(page.contains("used already"), "{page}");
    assert_eq!(app.access.exchanges.lock().unwrap().len(), 1);
    assert_eq!(
        token_row(&app, &channel.channel_id).await.0.unwrap(),
        access_enc
    );
    assert_eq!(app.outbox_types(&channel.channel_id).await.len(), 2);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_misdirected_and_replayed_redirects_are_refused_and_store_nothing() {
    let app = TestApp::spawn_oauth(oauth_env(&[])).await;
    let (token, channel) = setup(&app).await;
    let (_, state) = begin(&app, &token, &channel.channel_id, GOOD_SHOP).await;
    let now = Utc::now().timestamp();
    let good = redirect(GOOD_SHOP, &state, now);

    // (what, the redirect's parameters, the status it must get)
    let mut attacks: Vec<(String, Params, u16)> = Vec::new();
    let mut forged = good.clone();
    forged.last_mut().unwrap().1 = "00".repeat(32);
    attacks.push(("forged hmac".into(), forged, 401));
    let mut unsigned = good.clone();
    unsigned.pop();
    attacks.push(("no hmac".into(), unsigned, 401));
    let mut tampered = good.clone();
    tampered[0].1 = "another-code".into();
    attacks.push(("code changed after signing".into(), tampered, 401));
    let other_secret = sign(
        &[
            ("code", "c".into()),
            ("shop", GOOD_SHOP.into()),
            ("state", state.clone()),
            ("timestamp", now.to_string()),
        ],
        "not-the-app-secret",
    );
    attacks.push(("signed with another secret".into(), other_secret, 401));
    attacks.push((
        "old timestamp".into(),
        redirect(GOOD_SHOP, &state, now - 600),
        400,
    ));
    attacks.push((
        "future timestamp".into(),
        redirect(GOOD_SHOP, &state, now + 600),
        400,
    ));
    for shop in [
        "good-shop.myshopify.com.evil.com",
        "evil.com",
        "Good-Shop.myshopify.com",
        "good-shop.myshopify.com/",
        "good-shop.myshopify.com/admin",
        "https://good-shop.myshopify.com",
        "user@good-shop.myshopify.com",
        "good-shop.myshopify.com@evil.com",
        "good-shop.myshopify.com:8443",
        "admin.good-shop.myshopify.com",
        "good-shop.myshopify.com%00",
        "xn--good-shop-xyz.myshopify.com",
        "good-sh\u{043e}p.myshopify.com",
        "good-shop\u{ff0e}myshopify.com",
        "good\u{200b}-shop.myshopify.com",
        "127.0.0.1",
    ] {
        attacks.push((format!("shop {shop:?}"), redirect(shop, &state, now), 400));
    }
    attacks.push((
        "state issued for another shop".into(),
        redirect("other-shop.myshopify.com", &state, now),
        400,
    ));
    attacks.push((
        "a state never issued".into(),
        redirect(GOOD_SHOP, "made-up-state", now),
        400,
    ));
    let mut repeated = good.clone();
    repeated.insert(2, ("shop".into(), "evil-shop.myshopify.com".into()));
    let repeated = sign(
        &repeated
            .iter()
            .filter(|(k, _)| k != "hmac")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect::<Vec<_>>(),
        APP_CLIENT_SECRET,
    );
    attacks.push(("a repeated shop parameter".into(), repeated, 400));

    for (what, params, want) in &attacks {
        let (status, page) = callback(&app, params).await;
        assert_eq!(status, *want, "{what}: {page}");
        assert!(!page.contains(SUCCESS), "{what}");
    }
    // Nothing reached Shopify, nothing was stored, and the state is still there for the real redirect.
    assert!(app.access.exchanges.lock().unwrap().is_empty());
    let (access_enc, refresh_enc, _, state_name, _) = token_row(&app, &channel.channel_id).await;
    assert_eq!(
        (access_enc, refresh_enc, state_name.as_str()),
        (None, None, "connecting")
    );
    assert_eq!(states(&app, &channel.channel_id).await, vec![false]);
    let (status, page) = callback(&app, &good).await;
    assert_eq!(status, 200, "{page}");

    // An expired state is refused and left as it was.
    let (_, late) = begin(&app, &token, &channel.channel_id, GOOD_SHOP).await;
    sqlx::query(
        "UPDATE oauth_states SET expires_at = now() - interval '1 second' WHERE state_hash = $1",
    )
    .bind(shopbridge_auth::oauth_states::hash(&late))
    .execute(&app.db.pool)
    .await
    .unwrap();
    let (status, page) = callback(&app, &redirect(GOOD_SHOP, &late, Utc::now().timestamp())).await;
    assert_eq!(status, 400);
    assert!(page.contains("expired"), "{page}");
    assert_eq!(app.access.exchanges.lock().unwrap().len(), 1);
    assert_eq!(states(&app, &channel.channel_id).await, vec![true, false]);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_without_the_needed_scopes_puts_the_channel_in_error_naming_them() {
    let app = TestApp::spawn_oauth(oauth_env(&[])).await;
    *app.access.scopes.lock().unwrap() = vec!["write_products".into(), "read_orders".into()];
    let (token, channel) = setup(&app).await;
    let (_, state) = begin(&app, &token, &channel.channel_id, GOOD_SHOP).await;

    let (status, page) = callback(&app, &redirect(GOOD_SHOP, &state, Utc::now().timestamp())).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("write_inventory") && page.contains("write_orders"),
        "{page}"
    );
    assert!(
        !page.contains("read_products,"),
        "covered by write_products: {page}"
    );
    let (access_enc, _, _, state_name, last_error) = token_row(&app, &channel.channel_id).await;
    assert_eq!((access_enc, state_name.as_str()), (None, "error"));
    let last_error = last_error.unwrap();
    assert!(
        last_error.contains("missing: read_inventory, write_inventory"),
        "{last_error}"
    );
    assert!(!last_error.contains("read_products"), "{last_error}");
    let changes = app.outbox_types(&channel.channel_id).await;
    assert_eq!(changes.len(), 2, "created, then error: {changes:?}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_tokens_are_refreshed_before_they_expire_and_a_refused_refresh_fails_the_channel()
{
    // Refresh anything expiring within two hours (a granted token lives one), looking every second.
    let app = TestApp::spawn_oauth(oauth_env(&[
        ("SHOPBRIDGE__SERVICE__OAUTH__REFRESH_MARGIN_SECS", "7200"),
        ("SHOPBRIDGE__SERVICE__OAUTH__REFRESH_INTERVAL_SECS", "1"),
    ]))
    .await;
    let (token, channel) = setup(&app).await;
    let (_, state) = begin(&app, &token, &channel.channel_id, GOOD_SHOP).await;
    let (status, _) = callback(&app, &redirect(GOOD_SHOP, &state, Utc::now().timestamp())).await;
    assert_eq!(status, 200);
    let id = Uuid::parse_str(&channel.channel_id).unwrap();

    eventually("the token is refreshed", || async {
        !app.access.refreshes.lock().unwrap().is_empty()
    })
    .await;
    let first = app.access.refreshes.lock().unwrap()[0].clone();
    assert_eq!(
        first,
        (GOOD_SHOP.to_string(), "shprt_granted_0".to_string())
    );
    eventually("the refreshed token is stored", || async {
        let (access_enc, _, _, _, _) = token_row(&app, &channel.channel_id).await;
        encryptor(&app)
            .decrypt_string(&access_enc.unwrap(), &token_context(id))
            .unwrap()
            .expose_secret()
            != "shpat_granted_0"
    })
    .await;
    // Every refresh spends the refresh token it got last time (they rotate).
    eventually("a second refresh", || async {
        app.access.refreshes.lock().unwrap().len() >= 2
    })
    .await;
    let refreshes = app.access.refreshes.lock().unwrap().clone();
    assert_eq!(refreshes[1].1, "shprt_granted_1", "{refreshes:?}");
    assert_eq!(token_row(&app, &channel.channel_id).await.3, "active");

    // Shopify refuses: the channel turns ERROR, telling the merchant to connect again, once.
    *app.access.refuse_refresh.lock().unwrap() =
        Some("The refresh token is invalid or expired".into());
    eventually("the channel is in error", || async {
        token_row(&app, &channel.channel_id).await.3 == "error"
    })
    .await;
    let last_error = token_row(&app, &channel.channel_id).await.4.unwrap();
    assert!(
        last_error.contains("connect the channel again"),
        "{last_error}"
    );
    let refused_at = app.access.refreshes.lock().unwrap().len();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        app.access.refreshes.lock().unwrap().len(),
        refused_at,
        "a failed channel is not retried"
    );
    let changes = app.outbox_types(&channel.channel_id).await;
    assert_eq!(changes.len(), 3, "created, active, error: {changes:?}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_app_credentials_or_a_gateway_begin_oauth_is_refused_with_guidance() {
    let app = TestApp::spawn_oauth(env_with_keys(&[("k1", K1)], "k1")).await;
    let (token, channel) = setup(&app).await;
    let status = app
        .channels()
        .await
        .begin_o_auth(authed(
            pb::BeginOAuthRequest {
                channel_id: channel.channel_id.clone(),
                shop_domain: GOOD_SHOP.into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("connect with an API token"),
        "{}",
        status.message()
    );
    app.finish().await;

    // Credentials but no gateway (the service as deployed without shopify-gateway).
    let app = TestApp::spawn_with(oauth_env(&[]), false).await;
    let (token, channel) = setup(&app).await;
    let status = app
        .channels()
        .await
        .begin_o_auth(authed(
            pb::BeginOAuthRequest {
                channel_id: channel.channel_id.clone(),
                shop_domain: GOOD_SHOP.into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("shopify-gateway"),
        "{}",
        status.message()
    );
    assert!(states(&app, &channel.channel_id).await.is_empty());
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encryption_key_rotation_re_encrypts_refresh_tokens_too() {
    let app = TestApp::spawn_oauth(oauth_env(&[])).await;
    let (token, channel) = setup(&app).await;
    let (_, state) = begin(&app, &token, &channel.channel_id, GOOD_SHOP).await;
    let (status, _) = callback(&app, &redirect(GOOD_SHOP, &state, Utc::now().timestamp())).await;
    assert_eq!(status, 200);

    let mut rotated = app.settings.service.clone();
    rotated
        .encryption_keys
        .insert("k2".into(), secrecy::SecretString::from(crate::helpers::K2));
    rotated.active_encryption_key = "k2".into();
    let k2 = Encryptor::from_settings(&rotated).unwrap();
    let changed = shopbridge_auth::channels::reencrypt_all(&app.db.pool, &k2)
        .await
        .unwrap();
    assert!(changed >= 2, "the token and the refresh token: {changed}");
    let (access_enc, refresh_enc, _, _, _) = token_row(&app, &channel.channel_id).await;
    let (access_enc, refresh_enc) = (access_enc.unwrap(), refresh_enc.unwrap());
    assert!(access_enc.starts_with("v1:k2:") && refresh_enc.starts_with("v1:k2:"));
    let id = Uuid::parse_str(&channel.channel_id).unwrap();
    assert_eq!(
        k2.decrypt_string(&refresh_enc, &refresh_token_context(id))
            .unwrap()
            .expose_secret(),
        "shprt_granted_0"
    );
    assert_eq!(
        k2.decrypt_string(&access_enc, &token_context(id))
            .unwrap()
            .expose_secret(),
        "shpat_granted_0"
    );
    app.finish().await;
}
