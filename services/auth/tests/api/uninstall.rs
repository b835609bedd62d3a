//! app/uninstalled from the gateway: the store's channels turn disconnected, their tokens are deleted, the change is
//! published once even when the event comes twice, and connecting again works.

use std::time::Duration;

use prost::Message;
use shopbridge_platform::bus::EventMeta;
use shopbridge_proto::{auth as pb, gateway};

use crate::helpers::{GOOD_SHOP, GOOD_TOKEN, TestApp, authed};

async fn deliver_uninstall(app: &TestApp, message_id: &str) {
    let event = gateway::ShopifyAppUninstalled {
        delivery: Some(gateway::WebhookDelivery {
            shop_domain: GOOD_SHOP.into(),
            topic: "app/uninstalled".into(),
            event_id: "evt-uninstall".into(),
            ..Default::default()
        }),
    };
    app.nats
        .publish(
            "events.gateway.v1.ShopifyAppUninstalled",
            message_id,
            &EventMeta::default(),
            &event,
        )
        .await;
}

async fn state_changes(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as::<_, (Vec<u8>,)>(
        "SELECT payload FROM outbox WHERE type_name = 'shopbridge.auth.v1.ChannelStateChanged' ORDER BY id",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(payload,)| {
        let event = pb::ChannelStateChanged::decode(payload.as_slice()).unwrap();
        (event.channel_id, pb::ChannelState::try_from(event.state).unwrap().as_str_name().to_string())
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uninstalled_app_disconnects_the_stores_channels_once_and_deletes_the_token() {
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let token = app.token_for(&admin).await;
    let channel = app.create_channel(&token, "main").await;
    let connect = |channel_id: String| pb::ConnectWithTokenRequest {
        channel_id,
        shop_domain: GOOD_SHOP.into(),
        access_token: GOOD_TOKEN.into(),
        granted_scopes: vec!["read_products".into()],
    };
    app.channels()
        .await
        .connect_with_token(authed(connect(channel.channel_id.clone()), &token))
        .await
        .unwrap();

    deliver_uninstall(&app, "uninstall-1").await;
    let mut disconnected = false;
    for _ in 0..100 {
        if app.raw_channel(&channel.channel_id).await.2 == "disconnected" {
            disconnected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(disconnected, "the channel was disconnected");
    // The same event again (a second delivery the gateway did not recognise as a duplicate).
    deliver_uninstall(&app, "uninstall-2").await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    let (shop, stored_token, state) = app.raw_channel(&channel.channel_id).await;
    assert_eq!(
        (shop.as_deref(), stored_token, state.as_str()),
        (Some(GOOD_SHOP), None, "disconnected")
    );
    let changes = state_changes(&app).await;
    let disconnects = changes
        .iter()
        .filter(|(_, s)| s == "CHANNEL_STATE_DISCONNECTED")
        .count();
    assert_eq!(disconnects, 1, "{changes:?}");
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
    assert!(
        shown.last_error.contains("restart the connection"),
        "{}",
        shown.last_error
    );

    // Connecting again starts fresh.
    let again = app
        .channels()
        .await
        .connect_with_token(authed(connect(channel.channel_id.clone()), &token))
        .await;
    assert_eq!(
        again.unwrap().into_inner().channel.unwrap().state,
        pb::ChannelState::Active as i32
    );
    app.finish().await;
}
