//! Connecting a store for real: auth + shopify-gateway + the Shopify simulator, over real NATS and PostgreSQL.
//!
//! - OAuth: BeginOAuth, the simulator's grant screen (it approves at once, as Shopify does for an installed app, and
//!   redirects with code, hmac, host, shop, state and timestamp), auth's callback, the code exchanged by the gateway
//!   (ShopifyAccessService, called with auth's own token), the channel ACTIVE, and the gateway running a command with
//!   the stored token. Then app/uninstalled twice, through the gateway's webhook: disconnected once, one event.
//! - API token: verified by the gateway against the store; a wrong token or URL is told to check them.
//! - Expiring offline tokens refreshed through the gateway before they expire, refresh token rotating each time.

use std::{net::SocketAddr, time::Duration};

use secrecy::ExposeSecret;
use shopbridge_auth::{
    channels::{refresh_token_context, token_context},
    clients::{self, NewClient},
    crypto::Encryptor,
    oauth_flow::SUCCESS,
};
use shopbridge_platform::{
    bus::{EventMeta, names},
    testing::{TestDb, TestNats, eventually, service_settings},
};
use shopbridge_proto::{
    auth::{self as auth_pb, channel_service_client::ChannelServiceClient},
    gateway as pb,
};
use shopify_sim::{SimClient, SimConfig, SimHandle, Simulator};
use sqlx::types::Uuid;
use tokio_util::sync::CancellationToken;
use tonic::{Code, transport::Channel};

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The three processes and what the tests need of them.
struct Stack {
    sim: SimHandle,
    sim_client: SimClient,
    nats: TestNats,
    auth_db: TestDb,
    gateway_db: TestDb,
    auth_settings: shopbridge_auth::Settings,
    auth_grpc: String,
    gateway_http: SocketAddr,
    admin: NewClient,
    admin_token: String,
    gateway_identity: NewClient,
    cancel: CancellationToken,
}

impl Stack {
    /// auth (OAuth with the simulator's app credentials, gateway configured) and the gateway, which needs auth's
    /// addresses as auth needs its: both ports are chosen first.
    async fn start(auth_env: &[(&str, &str)]) -> Self {
        shopbridge_platform::telemetry::init_for_tests();
        let sim = Simulator::start_on(SimConfig::default(), "127.0.0.1:0")
            .await
            .unwrap();
        let sim_client = SimClient::new(sim.addr());
        let app = sim.config().clone();
        let nats = TestNats::new().await;
        let cancel = CancellationToken::new();
        let (auth_http_port, gateway_grpc_port, gateway_http_port) =
            (free_port(), free_port(), free_port());
        let sim_port = sim.addr().port().to_string();

        let auth_db = TestDb::new(&shopbridge_auth::MIGRATOR).await;
        let auth_http = format!("127.0.0.1:{auth_http_port}");
        let gateway_url = format!("http://127.0.0.1:{gateway_grpc_port}");
        let redirect_uri = format!("http://{auth_http}/shopify/oauth/callback");
        let mut env: Vec<(&str, &str)> = vec![
            ("SHOPBRIDGE__HTTP__LISTEN", &auth_http),
            ("SHOPBRIDGE__SERVICE__PBKDF2_ITERATIONS", "1000"),
            ("SHOPBRIDGE__SERVICE__GATEWAY__URL", &gateway_url),
            ("SHOPBRIDGE__SERVICE__OAUTH__CLIENT_ID", &app.client_id),
            (
                "SHOPBRIDGE__SERVICE__OAUTH__CLIENT_SECRET",
                &app.client_secret,
            ),
            ("SHOPBRIDGE__SERVICE__OAUTH__REDIRECT_URI", &redirect_uri),
            ("SHOPBRIDGE__SERVICE__OAUTH__SHOP_SCHEME", "http"),
            ("SHOPBRIDGE__SERVICE__OAUTH__SHOP_PORT", &sim_port),
        ];
        env.extend_from_slice(auth_env);
        let auth_settings: shopbridge_auth::Settings =
            service_settings(&shopbridge_auth::SPEC, &auth_db.url, &nats.namespace, &env);
        let auth = shopbridge_auth::build(auth_settings.clone()).await.unwrap();
        let auth_grpc = format!("http://{}", auth.grpc_addr());
        tokio::spawn(auth.run_until_stopped(cancel.clone()));
        let admin = clients::bootstrap_admin(&auth_db.pool, "merchant", 1000)
            .await
            .unwrap();
        let gateway_identity = clients::bootstrap_gateway(&auth_db.pool, 1000)
            .await
            .unwrap();

        let gateway_db = TestDb::empty().await;
        let gateway_grpc = format!("127.0.0.1:{gateway_grpc_port}");
        let gateway_http = format!("127.0.0.1:{gateway_http_port}");
        let webhooks_url = format!("http://{gateway_http}/shopify/webhooks");
        let connect_to = sim.addr().to_string();
        let identity_secret = gateway_identity.client_secret.expose_secret().to_string();
        let jwks = format!("http://{auth_http}/.well-known/jwks.json");
        let gateway_settings: shopbridge_gateway::Settings = service_settings(
            &shopbridge_gateway::SPEC,
            &gateway_db.url,
            &nats.namespace,
            &[
                ("SHOPBRIDGE__GRPC__LISTEN", &gateway_grpc),
                ("SHOPBRIDGE__HTTP__LISTEN", &gateway_http),
                ("SHOPBRIDGE__SERVICE__WEBHOOKS__CALLBACK_URL", &webhooks_url),
                ("SHOPBRIDGE__SERVICE__AUTH__URL", &auth_grpc),
                (
                    "SHOPBRIDGE__SERVICE__AUTH__CLIENT_ID",
                    &gateway_identity.client_id,
                ),
                ("SHOPBRIDGE__SERVICE__AUTH__CLIENT_SECRET", &identity_secret),
                ("SHOPBRIDGE__SERVICE__SHOPIFY__SCHEME", "http"),
                ("SHOPBRIDGE__SERVICE__SHOPIFY__PORT", &sim_port),
                ("SHOPBRIDGE__SERVICE__SHOPIFY__CONNECT_TO", &connect_to),
                ("SHOPBRIDGE__SERVICE__ACCESS__CLIENT_ID", &app.client_id),
                (
                    "SHOPBRIDGE__SERVICE__WEBHOOKS__CLIENT_SECRET",
                    &app.client_secret,
                ),
                ("SHOPBRIDGE__SERVICE__TOKENS__JWKS_URL", &jwks),
            ],
        );
        let gateway = shopbridge_gateway::build(gateway_settings).await.unwrap();
        let gateway_http = gateway.http_addr();
        tokio::spawn(gateway.run_until_stopped(cancel.clone()));

        let admin_token = shopbridge_proto::auth::token_service_client::TokenServiceClient::new(
            Self::connect(&auth_grpc).await,
        )
        .issue_token(auth_pb::IssueTokenRequest {
            client_id: admin.client_id.clone(),
            client_secret: admin.client_secret.expose_secret().to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
        Self {
            sim,
            sim_client,
            nats,
            auth_db,
            gateway_db,
            auth_settings,
            auth_grpc,
            gateway_http,
            admin,
            admin_token,
            gateway_identity,
            cancel,
        }
    }

    async fn connect(url: &str) -> Channel {
        Channel::from_shared(url.to_string())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn channels(&self) -> ChannelServiceClient<Channel> {
        ChannelServiceClient::new(Self::connect(&self.auth_grpc).await)
    }

    async fn create_channel(&self, name: &str) -> auth_pb::Channel {
        self.channels()
            .await
            .create_channel(authed(
                auth_pb::CreateChannelRequest { name: name.into() },
                &self.admin_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .channel
            .unwrap()
    }

    async fn channel(&self, channel_id: &str) -> auth_pb::Channel {
        self.channels()
            .await
            .get_channel(authed(
                auth_pb::GetChannelRequest {
                    channel_id: channel_id.into(),
                },
                &self.admin_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .channel
            .unwrap()
    }

    /// BeginOAuth, then the merchant's browser at the simulator's grant screen: the redirect it answers with (auth's
    /// callback URL, with code, hmac, host, shop, state, timestamp). `edit` may change the authorize URL first.
    async fn approve(
        &self,
        channel_id: &str,
        shop: &str,
        edit: impl Fn(String) -> String,
    ) -> String {
        let begun = self
            .channels()
            .await
            .begin_o_auth(authed(
                auth_pb::BeginOAuthRequest {
                    channel_id: channel_id.into(),
                    shop_domain: shop.into(),
                },
                &self.admin_token,
            ))
            .await
            .unwrap()
            .into_inner();
        let port = self.sim.addr().port();
        assert!(
            begun.authorize_url.starts_with(&format!(
                "http://{shop}:{port}/admin/oauth/authorize?client_id="
            )),
            "{}",
            begun.authorize_url
        );
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(shop, self.sim.addr())
            .build()
            .unwrap();
        let answer = browser.get(edit(begun.authorize_url)).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 302, "the simulator approves");
        answer.headers()["location"].to_str().unwrap().to_string()
    }

    /// The merchant's browser following the redirect to auth: status and page.
    async fn follow(&self, callback_url: &str) -> (u16, String) {
        let response = reqwest::get(callback_url).await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// The channel's stored (access token, refresh token), decrypted.
    async fn stored_tokens(&self, channel_id: &str) -> (Option<String>, Option<String>) {
        let (access, refresh): (Option<String>, Option<String>) = sqlx::query_as(
            "SELECT access_token_enc, refresh_token_enc FROM channels WHERE id = $1::uuid",
        )
        .bind(channel_id)
        .fetch_one(&self.auth_db.pool)
        .await
        .unwrap();
        let encryptor = Encryptor::from_settings(&self.auth_settings.service).unwrap();
        let id = Uuid::parse_str(channel_id).unwrap();
        let decrypt = |stored: Option<String>, context: String| {
            stored.map(|stored| {
                let plain = encryptor
                    .decrypt_string(&stored, &context)
                    .unwrap()
                    .expose_secret()
                    .to_string();
                assert!(
                    stored.starts_with("v1:") && !stored.contains(&plain),
                    "stored encrypted"
                );
                plain
            })
        };
        (
            decrypt(access, token_context(id)),
            decrypt(refresh, refresh_token_context(id)),
        )
    }

    /// Sends a GetShopInfo command for the channel and waits for its result.
    async fn shop_info(&self, channel_id: &str, shop: &str, command_id: &str) -> pb::CommandResult {
        let command = pb::Command {
            command_id: command_id.into(),
            shop_domain: shop.into(),
            channel_id: channel_id.into(),
            lane: pb::Lane::Orders as i32,
            operation: Some(pb::command::Operation::GetShopInfo(pb::GetShopInfo {})),
        };
        let subject = names::command_subject::<pb::Command>(shop, "orders");
        self.nats
            .publish(&subject, command_id, &EventMeta::tenant("t"), &command)
            .await;
        let result = || async {
            self.nats
                .events::<pb::CommandResult>()
                .await
                .into_iter()
                .find(|r| r.command_id == command_id)
        };
        eventually("the command's result", || async {
            result().await.is_some()
        })
        .await;
        result().await.unwrap()
    }

    async fn unsent(pool: &sqlx::PgPool) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    /// No secret of the flow reached a log line, at any level down to debug.
    fn assert_no_secret_logged(&self, secrets: &[(&str, &str)]) {
        let logs = shopbridge_platform::telemetry::captured_logs();
        assert!(logs.contains("service started"), "the capture works");
        let app = self.sim.config();
        let fixed = [
            ("the app's client secret", app.client_secret.as_str()),
            (
                "the gateway's client secret",
                self.gateway_identity.client_secret.expose_secret(),
            ),
            (
                "the admin's client secret",
                self.admin.client_secret.expose_secret(),
            ),
            ("the admin's access token", self.admin_token.as_str()),
        ];
        for (what, secret) in fixed.iter().chain(secrets) {
            assert!(!secret.is_empty(), "{what} is known");
            assert!(!logs.contains(secret), "{what} appears in the logs");
        }
    }

    async fn finish(self) {
        self.cancel.cancel();
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.sim.shutdown().await;
        self.nats.cleanup().await;
        self.auth_db.drop_db().await;
        self.gateway_db.drop_db().await;
    }
}

/// A query parameter of a URL (values here are not percent-encoded).
fn query_param(url: &str, name: &str) -> String {
    url.split(['?', '&'])
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {url}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_against_the_simulator_activates_the_channel_and_an_uninstall_disconnects_it_once() {
    let stack = Stack::start(&[]).await;
    let shop = "oauth-shop.myshopify.com";
    let shop_token = stack
        .sim_client
        .create_shop(shop, "advanced")
        .await
        .unwrap();
    let channel = stack.create_channel("main").await;

    let callback_url = stack.approve(&channel.channel_id, shop, |url| url).await;
    assert!(
        callback_url.starts_with(&format!(
            "http://{}/shopify/oauth/callback?",
            stack.auth_settings.http.listen
        )),
        "{callback_url}"
    );
    let (status, page) = stack.follow(&callback_url).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(SUCCESS), "{page}");

    let connected = stack.channel(&channel.channel_id).await;
    assert_eq!(connected.state, auth_pb::ChannelState::Active as i32);
    assert_eq!(connected.shop_domain, shop);
    assert!(
        !connected.shop_name.is_empty(),
        "the gateway verified the new token"
    );
    assert!(!connected.plan.is_empty());
    assert!(
        connected
            .granted_scopes
            .contains(&"write_merchant_managed_fulfillment_orders".to_string())
    );
    let (access, refresh) = stack.stored_tokens(&channel.channel_id).await;
    let (access, refresh) = (access.expect("a token"), refresh.expect("a refresh token"));
    assert_ne!(access, shop_token, "a new token from the exchange");

    // The gateway runs commands for the channel with the stored token.
    let result = stack
        .shop_info(&channel.channel_id, shop, "oauth-info-1")
        .await;
    assert_eq!(
        result.status,
        pb::command_result::Status::Succeeded as i32,
        "{result:?}"
    );
    let Some(pb::command_result::Result::ShopInfo(info)) = &result.result else {
        panic!("no shop info: {result:?}")
    };
    assert_eq!(info.name, connected.shop_name);

    // The same redirect again is refused: the state was single-use.
    let (status, page) = stack.follow(&callback_url).await;
    assert_eq!(status, 400, "{page}");
    assert_eq!(
        stack.stored_tokens(&channel.channel_id).await.0.as_deref(),
        Some(access.as_str())
    );

    // A merchant who approves fewer scopes than requested: ERROR naming them, nothing stored.
    let short_shop = "short-scopes.myshopify.com";
    stack
        .sim_client
        .create_shop(short_shop, "standard")
        .await
        .unwrap();
    let short = stack.create_channel("short").await;
    let callback_url = stack
        .approve(&short.channel_id, short_shop, |url| {
            let scope = query_param(&url, "scope");
            url.replace(
                &format!("scope={scope}"),
                "scope=write_products%2Cread_orders",
            )
        })
        .await;
    let (status, page) = stack.follow(&callback_url).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("write_inventory"), "{page}");
    let failed = stack.channel(&short.channel_id).await;
    assert_eq!(failed.state, auth_pb::ChannelState::Error as i32);
    assert!(
        failed
            .last_error
            .contains("missing: read_inventory, write_inventory"),
        "{}",
        failed.last_error
    );
    assert_eq!(stack.stored_tokens(&short.channel_id).await, (None, None));

    // Connecting registered the store's app/uninstalled subscription through the gateway, with no step of ours.
    let webhooks_url = format!("http://{}/shopify/webhooks", stack.gateway_http);
    eventually("the gateway subscribed app/uninstalled", || async {
        stack
            .sim_client
            .read(shop, "webhook-subscriptions")
            .await
            .is_ok_and(|subs| {
                subs.as_array().is_some_and(|subs| {
                    subs.iter().any(|s| {
                        s["topic"] == "APP_UNINSTALLED" && s["uri"] == webhooks_url.as_str()
                    })
                })
            })
    })
    .await;
    // app/uninstalled, delivered twice by the store to the gateway's webhook: disconnected once, one event.
    let uninstall = format!("http://{}/_sim/shops/{shop}/uninstall", stack.sim.addr());
    let http = reqwest::Client::new();
    for _ in 0..2 {
        let answer = http.post(&uninstall).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 200);
    }
    eventually("both deliveries reached the gateway", || async {
        stack
            .sim_client
            .read(shop, "webhooks")
            .await
            .is_ok_and(|log| {
                log.as_array().is_some_and(|deliveries| {
                    deliveries
                        .iter()
                        .filter(|d| d["topic"] == "app/uninstalled" && d["delivered"] == true)
                        .count()
                        == 2
                })
            })
    })
    .await;
    // Both recorded deliveries published by the gateway, both applied by auth (its inbox), auth's events published:
    // only then is the count final.
    eventually("the gateway published the deliveries", || async {
        Stack::unsent(&stack.gateway_db.pool).await == 0
    })
    .await;
    let uninstalls = stack.nats.events::<pb::ShopifyAppUninstalled>().await;
    assert_eq!(
        uninstalls.len(),
        2,
        "two distinct deliveries: {uninstalls:?}"
    );
    eventually("auth applied both", || async {
        let applied: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM inbox WHERE consumer LIKE '%app-uninstalled%'",
        )
        .fetch_one(&stack.auth_db.pool)
        .await
        .unwrap();
        applied == 2 && Stack::unsent(&stack.auth_db.pool).await == 0
    })
    .await;
    assert_eq!(
        stack.channel(&channel.channel_id).await.state,
        auth_pb::ChannelState::Disconnected as i32
    );
    let disconnects = stack
        .nats
        .events::<auth_pb::ChannelStateChanged>()
        .await
        .into_iter()
        .filter(|e| {
            e.channel_id == channel.channel_id
                && e.state == auth_pb::ChannelState::Disconnected as i32
        })
        .count();
    assert_eq!(disconnects, 1);
    assert_eq!(stack.stored_tokens(&channel.channel_id).await, (None, None));

    let code = query_param(&callback_url, "code");
    let state = query_param(&callback_url, "state");
    stack.assert_no_secret_logged(&[
        ("the granted token", &access),
        ("the refresh token", &refresh),
        ("the shop's own token", &shop_token),
        ("an authorization code", &code),
        ("a state nonce", &state),
    ]);
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_is_verified_by_the_gateway_and_a_wrong_token_or_url_gets_the_guidance() {
    let stack = Stack::start(&[]).await;
    let shop = "token-shop.myshopify.com";
    let shop_token = stack.sim_client.create_shop(shop, "plus").await.unwrap();
    let channel = stack.create_channel("main").await;
    let connect = |shop: &str, token: &str| auth_pb::ConnectWithTokenRequest {
        channel_id: channel.channel_id.clone(),
        shop_domain: shop.into(),
        access_token: token.into(),
        granted_scopes: vec!["read_products".into()],
    };
    let mut api = stack.channels().await;

    for (what, request) in [
        ("a wrong token", connect(shop, "shpat_not_the_token")),
        (
            "a store the simulator does not know",
            connect("no-such-shop.myshopify.com", &shop_token),
        ),
    ] {
        let status = api
            .connect_with_token(authed(request, &stack.admin_token))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::FailedPrecondition,
            "{what}: {}",
            status.message()
        );
        assert!(
            status.message().contains("check the token and store URL"),
            "{what}: {}",
            status.message()
        );
        assert!(!status.message().contains(&shop_token));
        let stored = stack.channel(&channel.channel_id).await;
        assert_eq!(
            (stored.state, stored.shop_domain.as_str()),
            (auth_pb::ChannelState::Connecting as i32, ""),
            "{what}"
        );
        assert_eq!(
            stack.stored_tokens(&channel.channel_id).await,
            (None, None),
            "{what}"
        );
    }

    let connected = api
        .connect_with_token(authed(
            connect(&format!("https://{shop}/"), &shop_token),
            &stack.admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    assert_eq!(connected.state, auth_pb::ChannelState::Active as i32);
    assert_eq!(connected.shop_domain, shop);
    assert!(
        !connected.shop_name.is_empty() && !connected.plan.is_empty(),
        "{connected:?}"
    );
    assert_eq!(
        stack.stored_tokens(&channel.channel_id).await,
        (Some(shop_token.clone()), None),
        "an API token does not expire"
    );
    stack.assert_no_secret_logged(&[("the shop's token", &shop_token)]);
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_refreshed_through_the_gateway_each_refresh_token_used_once() {
    // The simulator's expiring tokens live an hour: a two-hour margin makes every round refresh.
    let stack = Stack::start(&[
        ("SHOPBRIDGE__SERVICE__OAUTH__REFRESH_MARGIN_SECS", "7200"),
        ("SHOPBRIDGE__SERVICE__OAUTH__REFRESH_INTERVAL_SECS", "1"),
    ])
    .await;
    let shop = "refresh-shop.myshopify.com";
    stack
        .sim_client
        .create_shop(shop, "standard")
        .await
        .unwrap();
    let channel = stack.create_channel("main").await;
    let callback_url = stack.approve(&channel.channel_id, shop, |url| url).await;
    let (status, page) = stack.follow(&callback_url).await;
    assert_eq!(status, 200, "{page}");

    // Each refresh spends the refresh token the previous one stored (the simulator accepts each once): three
    // different pairs in a row, with the channel active throughout, means every rotation was stored.
    let seen: std::sync::Mutex<Vec<(String, String)>> = Default::default();
    eventually("two refreshes", || async {
        let tokens = stack.stored_tokens(&channel.channel_id).await;
        let mut seen = seen.lock().unwrap();
        if let (Some(access), Some(refresh)) = tokens
            && !seen.iter().any(|(_, r)| r == &refresh)
        {
            seen.push((access, refresh));
        }
        seen.len() >= 3
    })
    .await;
    let seen = seen.into_inner().unwrap();
    assert_eq!(
        stack.channel(&channel.channel_id).await.state,
        auth_pb::ChannelState::Active as i32
    );
    let distinct_access: std::collections::HashSet<_> = seen.iter().map(|(a, _)| a).collect();
    assert_eq!(
        distinct_access.len(),
        seen.len(),
        "a new access token each time"
    );

    // The latest token works for the gateway.
    let result = stack
        .shop_info(&channel.channel_id, shop, "refresh-info-1")
        .await;
    assert_eq!(
        result.status,
        pb::command_result::Status::Succeeded as i32,
        "{result:?}"
    );
    let secrets: Vec<(String, String)> = seen
        .iter()
        .flat_map(|(a, r)| {
            [
                ("an access token".to_string(), a.clone()),
                ("a refresh token".to_string(), r.clone()),
            ]
        })
        .collect();
    let secrets: Vec<(&str, &str)> = secrets
        .iter()
        .map(|(w, s)| (w.as_str(), s.as_str()))
        .collect();
    stack.assert_no_secret_logged(&secrets);
    stack.finish().await;
}
