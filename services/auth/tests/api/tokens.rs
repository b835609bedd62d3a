use std::time::Duration;

use ring::{rand::SystemRandom, signature::Ed25519KeyPair};
use secrecy::ExposeSecret;
use shopbridge_auth::commands::{self, AdminCommand};
use shopbridge_platform::auth_token::{self, Claims, TokenError, TokenVerifier, VerifierSettings};
use shopbridge_proto::auth as pb;
use tonic::Code;

use crate::helpers::{K1, TestApp, authed, decode_parts, edit_part, env_with_keys, list_code};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_the_right_secret_gets_a_signed_token_that_verifies_with_the_published_keys()
{
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let response = app
        .tokens()
        .await
        .issue_token(pb::IssueTokenRequest {
            client_id: admin.client_id.clone(),
            client_secret: admin.client_secret.expose_secret().to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.token_type, "Bearer");
    assert_eq!(response.expires_in, 900);
    assert_eq!(response.tenant_id, admin.tenant_id.to_string());

    let (header, claims) = decode_parts(&response.access_token);
    assert_eq!(header["alg"], "EdDSA");
    let kid = header["kid"].as_str().unwrap().to_string();
    assert_eq!(claims["iss"], "shopbridge-auth");
    assert_eq!(claims["sub"], admin.client_id.as_str());
    assert_eq!(claims["tenant"], admin.tenant_id.to_string().as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );

    // Another service verifies it with the keys from auth's JWKS endpoint...
    let verifier = TokenVerifier::from_jwks_url(app.jwks_url())
        .unwrap()
        .with_issuer("shopbridge-auth");
    assert_eq!(verifier.refresh().await.unwrap(), 1);
    assert_eq!(verifier.kids(), vec![kid.clone()]);
    let verified = verifier.verify(&response.access_token).unwrap();
    assert_eq!(verified.tenant, admin.tenant_id.to_string());
    assert_eq!(verified.scopes, response.scopes);
    // ...and GetPublicKeys publishes the same key.
    let keys = app
        .tokens()
        .await
        .get_public_keys(pb::GetPublicKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0].kid.as_str(), keys[0].crv.as_str()),
        (kid.as_str(), "Ed25519")
    );
    // Auth accepts it too.
    assert_eq!(list_code(&app, &response.access_token).await, Code::Ok);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_or_an_unknown_client_gets_no_token() {
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let mut tokens = app.tokens().await;
    for (client_id, secret) in [
        (
            admin.client_id.clone(),
            format!("{}x", admin.client_secret.expose_secret()),
        ),
        (admin.client_id.clone(), String::new()),
        (
            "sbc_unknown".to_string(),
            admin.client_secret.expose_secret().to_string(),
        ),
    ] {
        let status = tokens
            .issue_token(pb::IssueTokenRequest {
                client_id,
                client_secret: secret,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), "invalid client credentials");
    }
    // The stored hash is PBKDF2 with the configured iterations, not the secret.
    let hash: String = sqlx::query_scalar("SELECT secret_hash FROM api_clients WHERE id = $1")
        .bind(&admin.client_id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(hash.starts_with("pbkdf2-sha256$1000$"), "{hash}");
    assert!(!hash.contains(admin.client_secret.expose_secret()));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tampered_wrong_kid_and_unsigned_tokens_are_refused() {
    let mut env = env_with_keys(&[("k1", K1)], "k1");
    env.push((
        "SHOPBRIDGE__SERVICE__ACCESS_TOKEN_TTL_SECS".into(),
        "1".into(),
    ));
    env.push(("SHOPBRIDGE__SERVICE__TOKEN_LEEWAY_SECS".into(), "0".into()));
    let app = TestApp::spawn_with(env, true).await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let token = app.token_for(&admin).await;
    assert_eq!(list_code(&app, &token).await, Code::Ok);

    let verifier = TokenVerifier::from_jwks_url(app.jwks_url())
        .unwrap()
        .with_leeway(Duration::ZERO);
    verifier.refresh().await.unwrap();
    let now = chrono::Utc::now().timestamp();

    // Another tenant in the claims, signature of the original.
    let tampered = edit_part(&token, 1, |c| {
        c["tenant"] = "00000000-0000-0000-0000-000000000000".into()
    });
    // More scopes in the claims.
    let escalated = edit_part(&token, 1, |c| {
        c["scopes"] = serde_json::json!(["keys:rotate"])
    });
    // A kid nobody published.
    let wrong_kid = edit_part(&token, 0, |h| h["kid"] = "no-such-key".into());
    // alg none, no signature.
    let unsigned = {
        let stripped = edit_part(&token, 0, |h| h["alg"] = "none".into());
        let mut parts: Vec<&str> = stripped.split('.').collect();
        parts[2] = "";
        parts.join(".")
    };
    // Signed by a stranger's key under the real kid.
    let (header, _) = decode_parts(&token);
    let stranger = Ed25519KeyPair::from_pkcs8(
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    let forged = auth_token::sign(
        &Claims {
            iss: "shopbridge-auth".into(),
            sub: admin.client_id.clone(),
            tenant: admin.tenant_id.to_string(),
            scopes: vec!["channels:read".into()],
            iat: now,
            exp: now + 600,
        },
        header["kid"].as_str().unwrap(),
        &stranger,
    );

    let cases = [
        (&tampered, TokenError::BadSignature),
        (&escalated, TokenError::BadSignature),
        (&wrong_kid, TokenError::UnknownKey("no-such-key".into())),
        (&unsigned, TokenError::Algorithm("none".into())),
        (&forged, TokenError::BadSignature),
    ];
    for (bad, want) in cases {
        assert_eq!(verifier.verify_at(bad, now), Err(want.clone()));
        let status = app
            .channels()
            .await
            .list_channels(authed(pb::ListChannelsRequest {}, bad))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{want:?}");
        assert_eq!(status.message(), want.to_string());
    }

    // The genuine token expires after its one second.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(verifier.verify(&token), Err(TokenError::Expired));
    let status = app
        .channels()
        .await
        .list_channels(authed(pb::ListChannelsRequest {}, &token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{}", status.message());
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_signing_key_rotation_old_tokens_still_verify_and_new_ones_use_the_new_kid() {
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let old_token = app.token_for(&admin).await;
    let old_kid = decode_parts(&old_token).0["kid"]
        .as_str()
        .unwrap()
        .to_string();
    // A verifier elsewhere, which knows only the old key.
    let verifier = TokenVerifier::from_jwks_url(app.jwks_url())
        .unwrap()
        .with_min_refresh_interval(Duration::ZERO);
    verifier.refresh().await.unwrap();
    assert_eq!(verifier.kids(), vec![old_kid.clone()]);

    // Rotation through the API.
    let rotated = app
        .admin()
        .await
        .rotate_signing_key(authed(pb::RotateSigningKeyRequest {}, &old_token))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.kid, old_kid);
    assert_eq!(rotated.retiring_kids, vec![old_kid.clone()]);
    let new_token = app.token_for(&admin).await;
    assert_eq!(decode_parts(&new_token).0["kid"], rotated.kid.as_str());
    for token in [&old_token, &new_token] {
        assert_eq!(list_code(&app, token).await, Code::Ok);
    }
    // The other verifier learns the new key on the first token signed with it.
    assert!(verifier.verify(&old_token).is_ok());
    assert!(verifier.verify(&new_token).is_ok());
    assert_eq!(verifier.kids().len(), 2);

    // Rotation through the command line (another process: auth learns the key from its database).
    let output = commands::execute(AdminCommand::RotateSigningKey, &app.settings)
        .await
        .unwrap();
    assert!(output.contains("new signing key"), "{output}");
    let third_token = app.token_for(&admin).await;
    let third_kid = decode_parts(&third_token).0["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(third_kid != old_kid && third_kid != rotated.kid);
    for token in [&old_token, &new_token, &third_token] {
        assert_eq!(list_code(&app, token).await, Code::Ok);
        assert!(verifier.verify(token).is_ok());
    }
    let published: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM signing_keys WHERE retired_at IS NULL OR publish_until > now()",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(published, 3);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_admin_prints_a_client_that_can_get_a_token() {
    let app = TestApp::spawn().await;
    let output = commands::execute(
        AdminCommand::BootstrapAdmin {
            tenant: "acme".into(),
        },
        &app.settings,
    )
    .await
    .unwrap();
    let field = |name: &str| {
        output
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {output}"))
            .to_string()
    };
    let response = app
        .tokens()
        .await
        .issue_token(pb::IssueTokenRequest {
            client_id: field("client_id"),
            client_secret: field("client_secret"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.tenant_id, field("tenant_id"));
    for scope in [
        "channels:read",
        "channels:write",
        "clients:write",
        "keys:rotate",
    ] {
        assert!(response.scopes.iter().any(|s| s == scope), "{scope}");
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_refreshing_its_keys_periodically_learns_a_new_key_before_any_token_uses_it() {
    let app = TestApp::spawn().await;
    let admin = app.bootstrap_admin("tenant-a").await;
    let token = app.token_for(&admin).await;
    // How another service configures its verifier.
    let settings: VerifierSettings = serde_json::from_value(serde_json::json!({
        "jwks_url": app.jwks_url(),
        "issuer": "shopbridge-auth",
    }))
    .unwrap();
    assert_eq!(
        (settings.leeway_secs, settings.min_refresh_interval_secs),
        (30, 10)
    );
    let verifier = TokenVerifier::from_settings(&settings).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(
        verifier
            .clone()
            .refresh_periodically(Duration::from_millis(100), cancel.clone()),
    );
    let rotated = app
        .admin()
        .await
        .rotate_signing_key(authed(pb::RotateSigningKeyRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    let mut learned = false;
    for _ in 0..50 {
        if verifier.kids().contains(&rotated.kid) {
            learned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(learned, "the new key was not fetched");
    assert!(
        verifier.verify(&token).is_ok(),
        "the retired key still verifies"
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
    app.finish().await;
}
