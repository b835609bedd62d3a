//! ShopifyAccessService against the simulator: only tokens signed by auth's keys with the `shopify:access` scope get
//! in; codes are exchanged once, refresh tokens rotate, and tokens are verified with the shop query.

use std::net::SocketAddr;

use ring::{rand::SystemRandom, signature::Ed25519KeyPair};
use shopbridge_platform::{
    auth_token::{self, Claims, JWKS_PATH, Jwks},
    testing::{TestDb, TestNats, service_settings},
};
use shopbridge_proto::gateway::{
    self as pb, shopify_access_service_client::ShopifyAccessServiceClient,
    verify_token_response::Verdict,
};
use shopify_sim::{SimClient, SimConfig, SimHandle, Simulator};
use tokio_util::sync::CancellationToken;
use tonic::{Code, transport::Channel};

const ISSUER: &str = "shopbridge-auth";

fn key_pair() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn token(key: &Ed25519KeyPair, kid: &str, issuer: &str, scopes: &[&str]) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: issuer.into(),
        sub: "shopbridge-auth".into(),
        tenant: "00000000-0000-0000-0000-000000000001".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        iat: now,
        exp: now + 300,
    };
    auth_token::sign(&claims, kid, key)
}

/// auth's key set, as auth publishes it, served on a port of its own.
async fn serve_jwks(key: &Ed25519KeyPair, kid: &str) -> String {
    let jwks = Jwks {
        keys: vec![auth_token::public_jwk(kid, key)],
    };
    let router = axum::Router::new().route(
        JWKS_PATH,
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}{JWKS_PATH}")
}

struct Access {
    sim: SimHandle,
    sim_client: SimClient,
    client: ShopifyAccessServiceClient<Channel>,
    key: Ed25519KeyPair,
    db: TestDb,
    nats: TestNats,
    cancel: CancellationToken,
}

impl Access {
    async fn start() -> Self {
        shopbridge_platform::telemetry::init_for_tests();
        let sim = Simulator::start_on(SimConfig::default(), "127.0.0.1:0")
            .await
            .unwrap();
        let sim_client = SimClient::new(sim.addr());
        let key = key_pair();
        let jwks = serve_jwks(&key, "auth-key-1").await;
        let db = TestDb::new(&shopbridge_gateway::MIGRATOR).await;
        let nats = TestNats::new().await;
        let app = sim.config().clone();
        let port = sim.addr().port().to_string();
        let connect_to = sim.addr().to_string();
        let settings: shopbridge_gateway::Settings = service_settings(
            &shopbridge_gateway::SPEC,
            &db.url,
            &nats.namespace,
            &[
                ("SHOPBRIDGE__SERVICE__SHOPIFY__SCHEME", "http"),
                ("SHOPBRIDGE__SERVICE__SHOPIFY__PORT", &port),
                ("SHOPBRIDGE__SERVICE__SHOPIFY__CONNECT_TO", &connect_to),
                ("SHOPBRIDGE__SERVICE__ACCESS__CLIENT_ID", &app.client_id),
                (
                    "SHOPBRIDGE__SERVICE__WEBHOOKS__CLIENT_SECRET",
                    &app.client_secret,
                ),
                ("SHOPBRIDGE__SERVICE__TOKENS__JWKS_URL", &jwks),
                ("SHOPBRIDGE__SERVICE__TOKENS__ISSUER", ISSUER),
            ],
        );
        let gateway = shopbridge_gateway::build(settings).await.unwrap();
        let url = format!("http://{}", gateway.grpc_addr());
        let cancel = CancellationToken::new();
        tokio::spawn(gateway.run_until_stopped(cancel.clone()));
        let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
        Self {
            sim,
            sim_client,
            client: ShopifyAccessServiceClient::new(channel),
            key,
            db,
            nats,
            cancel,
        }
    }

    fn auth_token(&self) -> String {
        token(&self.key, "auth-key-1", ISSUER, &["shopify:access"])
    }

    /// The store's grant screen (auto-approved): the code of its redirect.
    async fn code(&self, shop: &str, scope: &str) -> String {
        let url = format!(
            "http://{shop}:{}/admin/oauth/authorize?client_id={}&scope={scope}&redirect_uri=http%3A%2F%2Fx%2Fcb&state=s",
            self.sim.addr().port(),
            self.sim.config().client_id
        );
        let answer = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(shop, self.sim.addr())
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap();
        let location = answer.headers()["location"].to_str().unwrap().to_string();
        location
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("code="))
            .unwrap()
            .to_string()
    }

    async fn finish(self) {
        self.cancel.cancel();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.sim.shutdown().await;
        self.nats.cleanup().await;
        self.db.drop_db().await;
    }
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn verify(shop: &str, token: &str) -> pb::VerifyTokenRequest {
    pb::VerifyTokenRequest {
        shop_domain: shop.into(),
        access_token: token.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_auths_own_identity_may_call_the_access_service() {
    let mut t = Access::start().await;
    let shop = "callers.myshopify.com";
    let shop_token = t.sim_client.create_shop(shop, "standard").await.unwrap();
    let other_key = key_pair();
    for (what, bearer, want) in [
        ("no token", None, Code::Unauthenticated),
        (
            "a token without the scope",
            Some(token(&t.key, "auth-key-1", ISSUER, &["credentials:read"])),
            Code::PermissionDenied,
        ),
        (
            "a token signed by another key",
            Some(token(&other_key, "auth-key-1", ISSUER, &["shopify:access"])),
            Code::Unauthenticated,
        ),
        (
            "a token of an unknown key",
            Some(token(&other_key, "forged-kid", ISSUER, &["shopify:access"])),
            Code::Unauthenticated,
        ),
        (
            "a token of another issuer",
            Some(token(
                &t.key,
                "auth-key-1",
                "someone-else",
                &["shopify:access"],
            )),
            Code::Unauthenticated,
        ),
    ] {
        let request = match &bearer {
            Some(bearer) => authed(verify(shop, &shop_token), bearer),
            None => tonic::Request::new(verify(shop, &shop_token)),
        };
        let status = t.client.verify_token(request).await.unwrap_err();
        assert_eq!(status.code(), want, "{what}: {}", status.message());
    }
    let stats = t.sim_client.stats(shop).await.unwrap();
    assert_eq!(
        stats["graphql_requests"], 0,
        "no refused call reached the shop"
    );

    let answer = t
        .client
        .verify_token(authed(verify(shop, &shop_token), &t.auth_token()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.verdict, Verdict::Valid as i32);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_verified_against_the_shop_and_bad_ones_named() {
    let mut t = Access::start().await;
    let shop = "verified.myshopify.com";
    let shop_token = t.sim_client.create_shop(shop, "plus").await.unwrap();
    let bearer = t.auth_token();
    let answer = t
        .client
        .verify_token(authed(verify(shop, &shop_token), &bearer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.verdict, Verdict::Valid as i32);
    let info = answer.shop.unwrap();
    assert!(!info.name.is_empty() && !info.plan.is_empty(), "{info:?}");

    for (shop, token, want) in [
        (shop, "shpat_wrong", Verdict::InvalidToken),
        (
            "nowhere.myshopify.com",
            shop_token.as_str(),
            Verdict::UnknownShop,
        ),
    ] {
        let answer = t
            .client
            .verify_token(authed(verify(shop, token), &bearer))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.verdict, want as i32, "{shop}");
        assert!(answer.shop.is_none());
    }
    for bad in [
        "evil.com",
        "verified.myshopify.com.evil.com",
        "Verified.myshopify.com",
        "",
    ] {
        let status = t
            .client
            .verify_token(authed(verify(bad, &shop_token), &bearer))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
    }
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_exchanged_once_and_refresh_tokens_rotate() {
    let mut t = Access::start().await;
    let shop = "granting.myshopify.com";
    t.sim_client.create_shop(shop, "standard").await.unwrap();
    let bearer = t.auth_token();
    let code = t.code(shop, "write_products%2Cread_orders").await;
    let exchange = |code: &str| pb::ExchangeCodeRequest {
        shop_domain: shop.into(),
        code: code.into(),
        expiring: true,
    };

    let granted = t
        .client
        .exchange_code(authed(exchange(&code), &bearer))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_eq!(granted.scopes, ["write_products", "read_orders"]);
    assert_eq!(granted.expires_in, 3600);
    assert!(!granted.refresh_token.is_empty());
    assert!(granted.refresh_token_expires_in > 86_400);
    let works = t
        .client
        .verify_token(authed(verify(shop, &granted.access_token), &bearer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(works.verdict, Verdict::Valid as i32);

    // A code works once; another store is not found.
    let status = t
        .client
        .exchange_code(authed(exchange(&code), &bearer))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{}",
        status.message()
    );
    let status = t
        .client
        .exchange_code(authed(
            pb::ExchangeCodeRequest {
                shop_domain: "nowhere.myshopify.com".into(),
                ..exchange("x")
            },
            &bearer,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // A refresh gives a new token and refresh token; the old refresh token is spent.
    let refresh = |refresh_token: &str| pb::RefreshTokenRequest {
        shop_domain: shop.into(),
        refresh_token: refresh_token.into(),
    };
    let renewed = t
        .client
        .refresh_token(authed(refresh(&granted.refresh_token), &bearer))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert_ne!(renewed.access_token, granted.access_token);
    assert_ne!(renewed.refresh_token, granted.refresh_token);
    assert_eq!(renewed.expires_in, 3600);
    let status = t
        .client
        .refresh_token(authed(refresh(&granted.refresh_token), &bearer))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("refresh token"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains(&granted.refresh_token));

    let logs = shopbridge_platform::telemetry::captured_logs();
    for secret in [
        &granted.access_token,
        &granted.refresh_token,
        &renewed.access_token,
        &renewed.refresh_token,
        &code,
        &t.sim.config().client_secret,
    ] {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
    }
    t.finish().await;
}
