use shopbridge_proto::auth as pb;
use tonic::{Code, Request};

use crate::helpers::{GOOD_SHOP, GOOD_TOKEN, TestApp, authed, list_code};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_the_channel_scopes_is_permission_denied() {
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let no_channels = app.client_with_scopes(&admin, &["clients:write"]).await;
    let read_only = app.client_with_scopes(&admin, &["channels:read"]).await;
    let no_channels = app.token_for(&no_channels).await;
    let read_only = app.token_for(&read_only).await;

    assert_eq!(list_code(&app, &no_channels).await, Code::PermissionDenied);
    assert_eq!(list_code(&app, &read_only).await, Code::Ok);
    let status = app
        .channels()
        .await
        .create_channel(authed(
            pb::CreateChannelRequest {
                name: "main store".into(),
            },
            &read_only,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("channels:write"),
        "{}",
        status.message()
    );
    // Key rotation is for operators only.
    let status = app
        .admin()
        .await
        .rotate_signing_key(authed(pb::RotateSigningKeyRequest {}, &read_only))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_hand_out_scopes_it_does_not_hold() {
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let manager = app
        .client_with_scopes(&admin, &["clients:write", "channels:read"])
        .await;
    let manager = app.token_for(&manager).await;
    let mut api = app.admin().await;
    let created = api
        .create_api_client(authed(
            pb::CreateApiClientRequest {
                name: "reporting".into(),
                scopes: vec!["channels:read".into()],
            },
            &manager,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.scopes, vec!["channels:read".to_string()]);
    assert_eq!(created.tenant_id, admin.tenant_id.to_string());
    for scopes in [vec!["channels:write"], vec!["keys:rotate"]] {
        let status = api
            .create_api_client(authed(
                pb::CreateApiClientRequest {
                    name: "escalation".into(),
                    scopes: scopes.iter().map(|s| s.to_string()).collect(),
                },
                &manager,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{scopes:?}");
    }
    let status = api
        .create_api_client(authed(
            pb::CreateApiClientRequest {
                name: "typo".into(),
                scopes: vec!["channels:raed".into()],
            },
            &manager,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_b_gets_not_found_for_tenant_a_channels() {
    let app = TestApp::spawn().await;
    let a = app.bootstrap_admin("tenant-a").await;
    let b = app.bootstrap_admin("tenant-b").await;
    let (a, b) = (app.token_for(&a).await, app.token_for(&b).await);
    let channel = app.create_channel(&a, "a's store").await;
    let id = channel.channel_id.clone();
    let mut api = app.channels().await;

    let status = api
        .get_channel(authed(
            pb::GetChannelRequest {
                channel_id: id.clone(),
            },
            &b,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = api
        .connect_with_token(authed(
            pb::ConnectWithTokenRequest {
                channel_id: id.clone(),
                shop_domain: GOOD_SHOP.into(),
                access_token: GOOD_TOKEN.into(),
                granted_scopes: vec![],
            },
            &b,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        app.shopify.calls.lock().unwrap().is_empty(),
        "nothing was sent to Shopify"
    );
    let status = api
        .disconnect_channel(authed(
            pb::DisconnectChannelRequest {
                channel_id: id.clone(),
            },
            &b,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let listed = api
        .list_channels(authed(pb::ListChannelsRequest {}, &b))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.channels.is_empty());
    // A's channel is untouched and visible to A.
    let own = api
        .get_channel(authed(
            pb::GetChannelRequest {
                channel_id: id.clone(),
            },
            &a,
        ))
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    assert_eq!(own.state, pb::ChannelState::Connecting as i32);
    // Two tenants may use the same channel name.
    app.create_channel(&b, "a's store").await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_valid_bearer_token_is_unauthenticated() {
    let app = TestApp::spawn().await;
    let mut api = app.channels().await;
    let status = api
        .list_channels(Request::new(pb::ListChannelsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("missing bearer token"),
        "{}",
        status.message()
    );
    for value in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-jwt"] {
        let mut request = Request::new(pb::ListChannelsRequest {});
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        let status = api.list_channels(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{value}");
    }
    let status = app
        .admin()
        .await
        .rotate_encryption_key(Request::new(pb::RotateEncryptionKeyRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // The token service itself needs no token.
    app.tokens()
        .await
        .get_public_keys(pb::GetPublicKeysRequest {})
        .await
        .unwrap();
    app.finish().await;
}
