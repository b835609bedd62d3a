//! The token signing keys: Ed25519 key pairs in auth's database, private halves encrypted at rest. Exactly one key
//! signs; a rotation retires it and makes a new one, and the retired key stays published until every token it signed
//! has expired, so verifiers keep accepting those tokens.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use ring::{
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};
use shopbridge_platform::{
    auth_token::{Jwk, KeySource},
    cli::ConfigMismatch,
};
use sqlx::{PgPool, Row};

use crate::crypto::Encryptor;

/// The associated data binding an encrypted private key to its key id.
pub fn private_key_context(kid: &str) -> String {
    format!("signing-key:{kid}")
}

pub struct SigningKeys {
    pool: PgPool,
    encryptor: Arc<Encryptor>,
    grace: Duration,
    cache: Mutex<Option<(String, Arc<Ed25519KeyPair>)>>,
}

struct NewKey {
    kid: String,
    public_key: Vec<u8>,
    private_key_enc: String,
}

impl SigningKeys {
    /// `grace`: how long a retired key stays published (token lifetime plus leeway).
    pub fn new(pool: PgPool, encryptor: Arc<Encryptor>, grace: Duration) -> Self {
        Self {
            pool,
            encryptor,
            grace,
            cache: Mutex::new(None),
        }
    }

    fn generate(&self) -> anyhow::Result<NewKey> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("cannot generate an Ed25519 key"))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| anyhow::anyhow!("generated key does not parse"))?;
        let kid = format!(
            "{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let private_key_enc = self
            .encryptor
            .encrypt(pkcs8.as_ref(), &private_key_context(&kid))?;
        Ok(NewKey {
            kid,
            public_key: pair.public_key().as_ref().to_vec(),
            private_key_enc,
        })
    }

    /// Makes a signing key if there is none (first start); concurrent replicas agree on one.
    pub async fn ensure_active(&self) -> anyhow::Result<String> {
        if let Some(kid) = self.active_kid().await? {
            return Ok(kid);
        }
        let key = self.generate()?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, public_key, private_key_enc) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&key.kid)
        .bind(&key.public_key)
        .bind(&key.private_key_enc)
        .execute(&self.pool)
        .await?;
        let kid = self
            .active_kid()
            .await?
            .ok_or_else(|| anyhow::anyhow!("no active signing key after creating one"))?;
        tracing::info!(%kid, "signing key created");
        Ok(kid)
    }

    /// Refuses to start when the signing key does not decrypt with the configured encryption keys (they changed
    /// since the database was written), naming both key ids, instead of an "internal error" at the first request.
    pub async fn check_decrypts(&self) -> anyhow::Result<()> {
        let row =
            sqlx::query("SELECT kid, private_key_enc FROM signing_keys WHERE retired_at IS NULL")
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(()) };
        let kid: String = row.get("kid");
        let stored: String = row.get("private_key_enc");
        match self.encryptor.decrypt(&stored, &private_key_context(&kid)) {
            Ok(_) => Ok(()),
            Err(e) => {
                let key = crate::crypto::key_id_of(&stored).unwrap_or("?");
                Err(ConfigMismatch(format!(
                    "the active signing key {kid} in auth's database does not decrypt with the configured \
                     encryption keys: {e}. It was encrypted with service.encryption_keys.{key}: configure the key \
                     that wrote it (the database and its encryption keys belong together), or drop auth's database \
                     to start afresh (its clients and channels are lost)"
                ))
                .into())
            }
        }
    }

    async fn active_kid(&self) -> anyhow::Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT kid FROM signing_keys WHERE retired_at IS NULL")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The key that signs now (decrypted once per key id).
    pub async fn active_signer(&self) -> anyhow::Result<(String, Arc<Ed25519KeyPair>)> {
        let row =
            sqlx::query("SELECT kid, private_key_enc FROM signing_keys WHERE retired_at IS NULL")
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
        let kid: String = row.get("kid");
        if let Some((cached_kid, pair)) = self.cache.lock().expect("signer cache").as_ref()
            && cached_kid == &kid
        {
            return Ok((kid, pair.clone()));
        }
        let stored: String = row.get("private_key_enc");
        let pkcs8 = self
            .encryptor
            .decrypt(&stored, &private_key_context(&kid))
            .map_err(|e| anyhow::anyhow!("signing key {kid}: {e}"))?;
        let pair = Arc::new(
            Ed25519KeyPair::from_pkcs8(&pkcs8)
                .map_err(|_| anyhow::anyhow!("signing key {kid} is not a PKCS#8 Ed25519 key"))?,
        );
        *self.cache.lock().expect("signer cache") = Some((kid.clone(), pair.clone()));
        Ok((kid, pair))
    }

    /// Retires the signing key and makes a new one; returns the new kid and the kids still published for old tokens.
    pub async fn rotate(&self) -> anyhow::Result<(String, Vec<String>)> {
        let key = self.generate()?;
        let grace = i64::try_from(self.grace.as_secs()).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        // Serialise rotations: the old key is locked, so two at once cannot both retire it.
        sqlx::query("SELECT kid FROM signing_keys WHERE retired_at IS NULL FOR UPDATE")
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = now(), publish_until = now() + make_interval(secs => $1)
             WHERE retired_at IS NULL",
        )
        .bind(grace as f64)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, public_key, private_key_enc) VALUES ($1, $2, $3)",
        )
        .bind(&key.kid)
        .bind(&key.public_key)
        .bind(&key.private_key_enc)
        .execute(&mut *tx)
        .await?;
        let retiring: Vec<String> = sqlx::query_scalar(
            "SELECT kid FROM signing_keys WHERE retired_at IS NOT NULL AND publish_until > now() ORDER BY created_at DESC",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(kid = %key.kid, retiring = ?retiring, "signing key rotated");
        Ok((key.kid, retiring))
    }

    /// Every key whose tokens may still be valid, newest first.
    pub async fn published(&self) -> anyhow::Result<Vec<Jwk>> {
        let rows = sqlx::query(
            "SELECT kid, public_key FROM signing_keys
             WHERE retired_at IS NULL OR publish_until > now() ORDER BY created_at DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let kid: String = r.get("kid");
                let public_key: Vec<u8> = r.get("public_key");
                Jwk::ed25519(kid, &public_key)
            })
            .collect())
    }
}

/// Auth verifies tokens with the keys in its own database, not over HTTP.
pub struct DatabaseKeys(pub Arc<SigningKeys>);

impl KeySource for DatabaseKeys {
    fn fetch(
        &self,
    ) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<Vec<Jwk>>> + Send + '_>> {
        Box::pin(self.0.published())
    }
}
