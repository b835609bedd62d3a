//! The gateway's credential read: its service identity reads a connected channel's token across tenants; nobody
//! else can, and a channel that is not connected has no token to give.

use shopbridge_auth::clients;
use shopbridge_proto::auth::{self as pb, credential_service_client::CredentialServiceClient};
use tonic::Code;

use crate::helpers::{GOOD_SHOP, GOOD_TOKEN, TestApp, authed};

async fn read(
    app: &TestApp,
    token: &str,
    channel_id: &str,
) -> Result<pb::GetShopCredentialsResponse, tonic::Status> {
    CredentialServiceClient::new(app.channel().await)
        .get_shop_credentials(authed(
            pb::GetShopCredentialsRequest {
                channel_id: channel_id.into(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn only_the_gateway_identity_reads_a_connected_channels_token() {
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let admin_token = app.token_for(&admin).await;
    let channel = app.create_channel(&admin_token, "main").await;

    let gateway = clients::bootstrap_gateway(&app.db.pool, 1_000)
        .await
        .unwrap();
    assert_eq!(gateway.scopes, vec!["credentials:read"]);
    let gateway_token = app.token_for(&gateway).await;

    let not_connected = read(&app, &gateway_token, &channel.channel_id)
        .await
        .unwrap_err();
    assert_eq!(not_connected.code(), Code::FailedPrecondition);
    assert!(
        not_connected.message().contains("connect it again"),
        "{}",
        not_connected.message()
    );

    app.channels()
        .await
        .connect_with_token(authed(
            pb::ConnectWithTokenRequest {
                channel_id: channel.channel_id.clone(),
                shop_domain: GOOD_SHOP.into(),
                access_token: GOOD_TOKEN.into(),
                granted_scopes: vec!["read_products".into()],
            },
            &admin_token,
        ))
        .await
        .unwrap();

    // Another tenant's service identity, same scope: the gateway serves every tenant.
    let credentials = read(&app, &gateway_token, &channel.channel_id)
        .await
        .unwrap();
    assert_eq!(credentials.shop_domain, GOOD_SHOP);
    assert_eq!(credentials.access_token, GOOD_TOKEN);
    assert!(
        !format!("{credentials:?}").contains(GOOD_TOKEN),
        "Debug redacts the token"
    );

    // The tenant's own administrator has every operator scope but not this one.
    let denied = read(&app, &admin_token, &channel.channel_id)
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let unauthenticated = read(&app, "not-a-token", &channel.channel_id)
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    app.finish().await;
}
