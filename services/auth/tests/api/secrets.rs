use secrecy::ExposeSecret;
use shopbridge_auth::{
    channels::token_context,
    commands::{self, AdminCommand},
    crypto::Encryptor,
};
use shopbridge_proto::auth as pb;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{GOOD_SHOP, GOOD_TOKEN, K1, K2, TestApp, authed, env_with_keys, list_code};

async fn connect(app: &TestApp, token: &str, channel_id: &str) {
    app.channels()
        .await
        .connect_with_token(authed(
            pb::ConnectWithTokenRequest {
                channel_id: channel_id.into(),
                shop_domain: GOOD_SHOP.into(),
                access_token: GOOD_TOKEN.into(),
                granted_scopes: vec!["read_products".into()],
            },
            token,
        ))
        .await
        .expect("connect");
}

async fn stored_secrets(app: &TestApp) -> Vec<String> {
    let mut values: Vec<String> = sqlx::query_scalar(
        "SELECT access_token_enc FROM channels WHERE access_token_enc IS NOT NULL",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    values.extend(
        sqlx::query_scalar::<_, String>("SELECT private_key_enc FROM signing_keys")
            .fetch_all(&app.db.pool)
            .await
            .unwrap(),
    );
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_token_column_holds_no_plaintext() {
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let token = app.token_for(&admin).await;
    let channel = app.create_channel(&token, "main").await;
    connect(&app, &token, &channel.channel_id).await;

    let (_, stored, _) = app.raw_channel(&channel.channel_id).await;
    let stored = stored.expect("a stored token");
    assert!(stored.starts_with("v1:k1:"), "{stored}");
    assert!(!stored.contains(GOOD_TOKEN));
    assert!(!stored.contains("shpat_"));
    // Not merely encoded either: no base64 form of the token in the row.
    use base64::{Engine, engine::general_purpose};
    for engine in [general_purpose::STANDARD, general_purpose::URL_SAFE_NO_PAD] {
        assert!(!stored.contains(&engine.encode(GOOD_TOKEN)[..20]));
    }
    // The whole row, as text, holds no token.
    let row_text: String = sqlx::query_scalar("SELECT c::text FROM channels c WHERE id = $1::uuid")
        .bind(&channel.channel_id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(!row_text.contains(GOOD_TOKEN));
    // It decrypts with the key, and only as this channel's token.
    let encryptor = Encryptor::from_settings(&app.settings.service).unwrap();
    let id = Uuid::parse_str(&channel.channel_id).unwrap();
    assert_eq!(
        encryptor.decrypt(&stored, &token_context(id)).unwrap(),
        GOOD_TOKEN.as_bytes()
    );
    assert!(
        encryptor
            .decrypt(&stored, &token_context(Uuid::new_v4()))
            .is_err()
    );
    // Signing keys are encrypted too.
    for value in stored_secrets(&app).await {
        assert!(value.starts_with("v1:k1:"), "{value}");
    }
    // The API never returns the token.
    let got = app
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
        .into_inner();
    assert!(!format!("{got:?}").contains(GOOD_TOKEN));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_with_an_encryption_key_that_does_not_decrypt_the_signing_key_is_refused_naming_both_keys()
 {
    let app = TestApp::spawn().await;
    let kid: String = sqlx::query_scalar("SELECT kid FROM signing_keys WHERE retired_at IS NULL")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    // The same key id with other key material: what a purge of the secrets without the database leaves.
    let error = app
        .restart_refused_with(env_with_keys(&[("k1", K2)], "k1"))
        .await;
    let message = format!("{error:#}");
    assert!(
        error
            .downcast_ref::<shopbridge_platform::cli::ConfigMismatch>()
            .is_some(),
        "not a configuration mismatch (exit 78): {message}"
    );
    assert!(message.contains(&kid), "{message}");
    assert!(message.contains("service.encryption_keys.k1"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_encryption_key_rotation_old_values_decrypt_and_new_writes_use_the_new_key() {
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let token = app.token_for(&admin).await;
    let first = app.create_channel(&token, "first").await;
    connect(&app, &token, &first.channel_id).await;

    // Add k2 and make it active; k1 stays configured for the values under it.
    let app = app
        .restart_with(env_with_keys(&[("k1", K1), ("k2", K2)], "k2"))
        .await;
    // Old values still decrypt: the signing key under k1 still signs, the channel token under k1 still reads.
    let token = app.token_for(&admin).await;
    assert_eq!(list_code(&app, &token).await, Code::Ok);
    let encryptor = Encryptor::from_settings(&app.settings.service).unwrap();
    let first_id = Uuid::parse_str(&first.channel_id).unwrap();
    let (_, first_stored, _) = app.raw_channel(&first.channel_id).await;
    let first_stored = first_stored.unwrap();
    assert!(first_stored.starts_with("v1:k1:"));
    assert_eq!(
        encryptor
            .decrypt_string(&first_stored, &token_context(first_id))
            .unwrap()
            .expose_secret(),
        GOOD_TOKEN
    );
    // New writes use k2.
    let second = app.create_channel(&token, "second").await;
    app.channels()
        .await
        .disconnect_channel(authed(
            pb::DisconnectChannelRequest {
                channel_id: first.channel_id.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    connect(&app, &token, &first.channel_id).await;
    let (_, reconnected, _) = app.raw_channel(&first.channel_id).await;
    assert!(reconnected.unwrap().starts_with("v1:k2:"));
    let _ = second;

    // Re-encrypt everything else (the signing key) with k2, through the API.
    let rotated = app
        .admin()
        .await
        .rotate_encryption_key(authed(pb::RotateEncryptionKeyRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.active_kid, "k2");
    assert_eq!(rotated.reencrypted, 1);
    for value in stored_secrets(&app).await {
        assert!(value.starts_with("v1:k2:"), "{value}");
    }
    // A second run finds nothing to do (the command-line path).
    let output = commands::execute(AdminCommand::RotateEncryptionKey, &app.settings)
        .await
        .unwrap();
    assert!(
        output.contains("re-encrypted 0 stored secrets with key `k2`"),
        "{output}"
    );

    // k1 can now be removed: everything still works with k2 alone.
    let app = app.restart_with(env_with_keys(&[("k2", K2)], "k2")).await;
    let token = app.token_for(&admin).await;
    assert_eq!(list_code(&app, &token).await, Code::Ok);
    let only_k2 = Encryptor::from_settings(&app.settings.service).unwrap();
    let (_, stored, _) = app.raw_channel(&first.channel_id).await;
    assert_eq!(
        only_k2
            .decrypt(&stored.unwrap(), &token_context(first_id))
            .unwrap(),
        GOOD_TOKEN.as_bytes()
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_development_key_is_the_default_and_is_flagged() {
    let app = TestApp::spawn_with(
        vec![(
            "SHOPBRIDGE__SERVICE__PBKDF2_ITERATIONS".into(),
            "1000".into(),
        )],
        true,
    )
    .await;
    let encryptor = Encryptor::from_settings(&app.settings.service).unwrap();
    assert_eq!(encryptor.active_kid(), "dev");
    assert!(encryptor.development_key_active());
    // Configuring keys of one's own replaces the development key: what it encrypted no longer decrypts, so the
    // start is refused, naming the key that is gone.
    let own = env_with_keys(&[("k1", K1)], "k1");
    let error = format!("{:#}", app.restart_refused_with(own).await);
    assert!(error.contains("service.encryption_keys.dev"), "{error}");
}
