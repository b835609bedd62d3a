use prost::Message;
use shopbridge_auth::shop_verifier::GATEWAY_NOT_DEPLOYED;
use shopbridge_proto::auth as pb;
use tonic::Code;

use crate::helpers::{GOOD_SHOP, GOOD_TOKEN, K1, TestApp, authed, env_with_keys};

fn connect_request(channel_id: &str, shop: &str, token: &str) -> pb::ConnectWithTokenRequest {
    pb::ConnectWithTokenRequest {
        channel_id: channel_id.into(),
        shop_domain: shop.into(),
        access_token: token.into(),
        granted_scopes: vec!["read_products".into(), "write_inventory".into()],
    }
}

/// Store URLs a merchant (or an attacker) might paste that must never be accepted.
const ATTACKS: &[&str] = &[
    "",
    "myshopify.com",
    "good-shop",
    "good-shop.myshopify.co",
    "good-shop.myshopify.com.evil.com",
    "good-shop.myshopify.com.",
    "good-shop-myshopify.com",
    "evil.com/good-shop.myshopify.com",
    "evil.com?good-shop.myshopify.com",
    "evil.com#good-shop.myshopify.com",
    "good-shop.myshopify.com@evil.com",
    "https://evil.com@good-shop.myshopify.com",
    "user:pass@good-shop.myshopify.com",
    "good-shop.myshopify.com:443",
    "https://good-shop.myshopify.com:8443/",
    "https://good-shop.myshopify.com/admin",
    "https://good-shop.myshopify.com/?x=1",
    "http://good-shop.myshopify.com",
    "ftp://good-shop.myshopify.com",
    "//good-shop.myshopify.com",
    "admin.good-shop.myshopify.com",
    "good-shop%2emyshopify.com",
    "good-shop.myshopify.com\\@evil.com",
    "good-shop.myshopify.com%00.evil.com",
    "good-shop.myshopify.com\u{0}",
    "good shop.myshopify.com",
    "good-shop.myshоpify.com",         // Cyrillic o
    "good-shop\u{ff0e}myshopify.com",  // fullwidth full stop
    "good\u{200b}-shop.myshopify.com", // zero-width space
    "xn--good-shop-xyz.myshopify.com",
    "good-shop.xn--myshopify-abc.com",
    "-good-shop.myshopify.com",
    "127.0.0.1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_url_attacks_are_rejected_and_store_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let token = app.token_for(&admin).await;
    let channel = app.create_channel(&token, "main").await;
    let mut api = app.channels().await;
    for attack in ATTACKS {
        let status = api
            .connect_with_token(authed(
                connect_request(&channel.channel_id, attack, GOOD_TOKEN),
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{attack:?}");
        assert!(
            status.message().contains("<your-store>.myshopify.com"),
            "{attack:?}: {}",
            status.message()
        );
    }
    assert!(
        app.shopify.calls.lock().unwrap().is_empty(),
        "no attack reached Shopify"
    );
    assert_eq!(
        app.raw_channel(&channel.channel_id).await,
        (None, None, "connecting".to_string())
    );
    assert_eq!(
        app.outbox_types(&channel.channel_id).await.len(),
        1,
        "only the creation"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_with_a_good_token_stores_it_and_activates_the_channel() {
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let token = app.token_for(&admin).await;
    let channel = app.create_channel(&token, "main").await;
    assert_eq!(channel.state, pb::ChannelState::Connecting as i32);
    let connected = app
        .channels()
        .await
        .connect_with_token(authed(
            connect_request(
                &channel.channel_id,
                "  HTTPS://Good-Shop.MyShopify.com/ ",
                GOOD_TOKEN,
            ),
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    assert_eq!(connected.shop_domain, GOOD_SHOP);
    assert_eq!(connected.shop_name, "Good Shop");
    assert_eq!(connected.plan, "basic");
    assert_eq!(
        connected.granted_scopes,
        vec!["read_products", "write_inventory"]
    );
    assert_eq!(connected.state, pb::ChannelState::Active as i32);
    assert!(connected.last_error.is_empty());
    assert_eq!(
        *app.shopify.calls.lock().unwrap(),
        vec![GOOD_SHOP.to_string()]
    );
    let (shop, stored, state) = app.raw_channel(&channel.channel_id).await;
    assert_eq!(
        (shop.as_deref(), state.as_str()),
        (Some(GOOD_SHOP), "active")
    );
    assert!(stored.is_some());

    let listed = app
        .channels()
        .await
        .list_channels(authed(pb::ListChannelsRequest {}, &token))
        .await
        .unwrap()
        .into_inner()
        .channels;
    assert_eq!(listed, vec![connected.clone()]);

    // The same store cannot back two channels of the tenant.
    let other = app.create_channel(&token, "duplicate").await;
    let status = app
        .channels()
        .await
        .connect_with_token(authed(
            connect_request(&other.channel_id, GOOD_SHOP, GOOD_TOKEN),
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(app.raw_channel(&other.channel_id).await.1, None);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_or_an_unknown_store_gets_the_guidance_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let token = app.token_for(&admin).await;
    let channel = app.create_channel(&token, "main").await;
    let mut api = app.channels().await;
    for (shop, access_token) in [
        (GOOD_SHOP, "shpat_wrong"),
        ("other-shop.myshopify.com", GOOD_TOKEN),
    ] {
        let status = api
            .connect_with_token(authed(
                connect_request(&channel.channel_id, shop, access_token),
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{shop}");
        assert!(
            status.message().contains("check the token and store URL"),
            "{}",
            status.message()
        );
        assert!(
            !status.message().contains(access_token),
            "the token never appears in errors"
        );
    }
    for bad_token in ["", "   ", "shpat with spaces"] {
        let status = api
            .connect_with_token(authed(
                connect_request(&channel.channel_id, GOOD_SHOP, bad_token),
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad_token:?}");
    }
    assert_eq!(
        app.raw_channel(&channel.channel_id).await,
        (None, None, "connecting".to_string())
    );
    assert_eq!(
        app.outbox_types(&channel.channel_id).await.len(),
        1,
        "only the creation"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_gateway_connecting_is_unavailable_and_says_why() {
    let app = TestApp::spawn_with(env_with_keys(&[("k1", K1)], "k1"), false).await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let token = app.token_for(&admin).await;
    let channel = app.create_channel(&token, "main").await;
    let status = app
        .channels()
        .await
        .connect_with_token(authed(
            connect_request(&channel.channel_id, GOOD_SHOP, GOOD_TOKEN),
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains(GATEWAY_NOT_DEPLOYED),
        "{}",
        status.message()
    );
    assert_eq!(
        app.raw_channel(&channel.channel_id).await,
        (None, None, "connecting".to_string())
    );
    app.finish().await;
}

/// The ChannelStateChanged events of the test's namespace on JetStream, in order.
async fn published_state_changes(app: &TestApp) -> Vec<pb::ChannelStateChanged> {
    let stream = app
        .nats
        .js
        .get_stream(app.nats.namespace.resource("EVENTS"))
        .await
        .unwrap();
    let last = stream.get_info().await.unwrap().state.last_sequence;
    let mut events = Vec::new();
    for seq in 1..=last {
        let Ok(message) = stream.get_raw_message(seq).await else {
            continue;
        };
        let subject = app
            .nats
            .namespace
            .strip(message.subject.as_str())
            .to_string();
        assert_eq!(subject, "events.auth.v1.ChannelStateChanged");
        let type_header = message
            .headers
            .get("Shopbridge-Type")
            .unwrap()
            .as_str()
            .to_string();
        assert_eq!(type_header, "shopbridge.auth.v1.ChannelStateChanged");
        events.push(pb::ChannelStateChanged::decode(message.payload).unwrap());
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_state_change_publishes_exactly_one_channel_state_changed() {
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let token = app.token_for(&admin).await;
    let channel = app.create_channel(&token, "main").await;
    let mut api = app.channels().await;

    api.connect_with_token(authed(
        connect_request(&channel.channel_id, GOOD_SHOP, GOOD_TOKEN),
        &token,
    ))
    .await
    .unwrap();
    app.wait_for_relay().await;
    let events = published_state_changes(&app).await;
    assert_eq!(events.len(), 2, "creation and connection: {events:?}");
    let connected = &events[1];
    assert_eq!(connected.channel_id, channel.channel_id);
    assert_eq!(connected.tenant_id, admin.tenant_id.to_string());
    assert_eq!(connected.shop_domain, GOOD_SHOP);
    assert_eq!(
        connected.previous_state,
        pb::ChannelState::Connecting as i32
    );
    assert_eq!(connected.state, pb::ChannelState::Active as i32);
    assert!(!format!("{events:?}").contains(GOOD_TOKEN));

    // Disconnecting twice is one change; the second call changes nothing.
    for _ in 0..2 {
        api.disconnect_channel(authed(
            pb::DisconnectChannelRequest {
                channel_id: channel.channel_id.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    }
    app.wait_for_relay().await;
    let events = published_state_changes(&app).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[2].previous_state, pb::ChannelState::Active as i32);
    assert_eq!(events[2].state, pb::ChannelState::Disconnected as i32);
    assert_eq!(
        app.raw_channel(&channel.channel_id).await,
        (
            Some(GOOD_SHOP.to_string()),
            None,
            "disconnected".to_string()
        ),
        "the token is deleted on disconnect"
    );
    // Headers name the tenant and channel.
    let outbox: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT tenant_id, channel_id FROM outbox ORDER BY id")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert!(outbox.iter().all(|(t, c)| {
        t.as_deref() == Some(admin.tenant_id.to_string().as_str())
            && c.as_deref() == Some(channel.channel_id.as_str())
    }));
    app.finish().await;
}
