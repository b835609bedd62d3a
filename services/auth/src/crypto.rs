//! Secrets at rest and client secrets.
//!
//! [`Encryptor`]: AES-256-GCM with a random 96-bit nonce per value; each stored value names its key,
//! `v1:<kid>:<base64url(nonce || ciphertext || tag)>`, and is bound (as associated data) to its key id and to what it
//! is (`channel-token:<channel id>`), so a value copied into another row does not decrypt.
//!
//! [`hash_secret`] / [`verify_secret`]: PBKDF2-HMAC-SHA256 with a random salt, iterations stored with the hash,
//! compared in constant time.

use std::{collections::HashMap, num::NonZeroU32};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    pbkdf2,
    rand::{SecureRandom, SystemRandom},
};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{DEVELOPMENT_KEY_BASE64, ServiceSettings};

const FORMAT: &str = "v1";

/// Encrypts and decrypts secrets at rest with the configured keys.
pub struct Encryptor {
    active: String,
    keys: HashMap<String, LessSafeKey>,
    development_key_active: bool,
    rng: SystemRandom,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("Encryptor")
            .field("active", &self.active)
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    #[error("the stored value is not in the v1:<kid>:<data> format")]
    Format,
    #[error(
        "the stored value is encrypted with key `{0}`, which is not configured (service.encryption_keys)"
    )]
    UnknownKey(String),
    #[error("the stored value does not decrypt (wrong key, altered, or moved from another row)")]
    Corrupt,
}

impl Encryptor {
    /// From `service.encryption_keys` and `service.active_encryption_key`; errors name the key at fault.
    pub fn from_settings(settings: &ServiceSettings) -> anyhow::Result<Self> {
        let mut keys = HashMap::new();
        let mut development_key_active = false;
        for (kid, encoded) in &settings.encryption_keys {
            anyhow::ensure!(
                !kid.is_empty()
                    && kid
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "configuration key `service.encryption_keys.{kid}`: a key id may hold only letters, digits, `-` and `_`"
            );
            let bytes = STANDARD
                .decode(encoded.expose_secret().trim())
                .map_err(|_| {
                    anyhow::anyhow!("configuration key `service.encryption_keys.{kid}`: not base64")
                })?;
            anyhow::ensure!(
                bytes.len() == 32,
                "configuration key `service.encryption_keys.{kid}`: must be 32 bytes (base64 of 32 random bytes), not {}",
                bytes.len()
            );
            if kid == &settings.active_encryption_key
                && encoded.expose_secret().trim() == DEVELOPMENT_KEY_BASE64
            {
                development_key_active = true;
            }
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| anyhow::anyhow!("service.encryption_keys.{kid}: unusable key"))?;
            keys.insert(kid.clone(), LessSafeKey::new(key));
        }
        anyhow::ensure!(
            keys.contains_key(&settings.active_encryption_key),
            "configuration key `service.active_encryption_key`: `{}` is not one of service.encryption_keys",
            settings.active_encryption_key
        );
        Ok(Self {
            active: settings.active_encryption_key.clone(),
            keys,
            development_key_active,
            rng: SystemRandom::new(),
        })
    }

    pub fn active_kid(&self) -> &str {
        &self.active
    }

    /// True when new secrets would be encrypted with the published development key.
    pub fn development_key_active(&self) -> bool {
        self.development_key_active
    }

    /// Encrypts `plaintext` with the active key, bound to `context`.
    pub fn encrypt(&self, plaintext: &[u8], context: &str) -> anyhow::Result<String> {
        let key = &self.keys[&self.active];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no randomness for a nonce"))?;
        let mut data = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(&self.active, context).as_bytes()),
            &mut data,
        )
        .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!(
            "{FORMAT}:{}:{}",
            self.active,
            URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// Decrypts a value stored by [`Encryptor::encrypt`] under any configured key.
    pub fn decrypt(&self, stored: &str, context: &str) -> Result<Vec<u8>, DecryptError> {
        let kid = key_id_of(stored).ok_or(DecryptError::Format)?;
        let encoded = &stored[FORMAT.len() + 1 + kid.len() + 1..];
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| DecryptError::UnknownKey(kid.to_string()))?;
        let data = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| DecryptError::Format)?;
        if data.len() < NONCE_LEN {
            return Err(DecryptError::Format);
        }
        let (nonce, ciphertext) = data.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| DecryptError::Format)?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = key
            .open_in_place(nonce, Aad::from(aad(kid, context).as_bytes()), &mut buffer)
            .map_err(|_| DecryptError::Corrupt)?;
        Ok(plaintext.to_vec())
    }

    /// Decrypts a UTF-8 secret.
    pub fn decrypt_string(
        &self,
        stored: &str,
        context: &str,
    ) -> Result<SecretString, DecryptError> {
        let bytes = self.decrypt(stored, context)?;
        String::from_utf8(bytes)
            .map(SecretString::from)
            .map_err(|_| DecryptError::Corrupt)
    }

    /// Whether `stored` is encrypted with the active key already.
    pub fn is_current(&self, stored: &str) -> bool {
        key_id_of(stored) == Some(self.active.as_str())
    }
}

fn aad(kid: &str, context: &str) -> String {
    format!("{FORMAT}:{kid}:{context}")
}

/// The key id a stored value names.
pub fn key_id_of(stored: &str) -> Option<&str> {
    let rest = stored.strip_prefix(FORMAT)?.strip_prefix(':')?;
    let (kid, _) = rest.split_once(':')?;
    (!kid.is_empty()).then_some(kid)
}

const HASH_SCHEME: &str = "pbkdf2-sha256";
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// A random secret of 32 bytes, base64url, with a recognisable prefix (so a leaked one is easy to grep for).
pub fn generate_client_secret() -> anyhow::Result<SecretString> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness for a secret"))?;
    Ok(SecretString::from(format!(
        "sbs_{}",
        URL_SAFE_NO_PAD.encode(bytes)
    )))
}

/// `pbkdf2-sha256$<iterations>$<salt>$<hash>` of `secret`.
pub fn hash_secret(secret: &SecretString, iterations: u32) -> anyhow::Result<String> {
    let iterations = NonZeroU32::new(iterations)
        .ok_or_else(|| anyhow::anyhow!("service.pbkdf2_iterations must be at least 1"))?;
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| anyhow::anyhow!("no randomness for a salt"))?;
    let mut hash = [0u8; HASH_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        secret.expose_secret().as_bytes(),
        &mut hash,
    );
    Ok(format!(
        "{HASH_SCHEME}${iterations}${}${}",
        URL_SAFE_NO_PAD.encode(salt),
        URL_SAFE_NO_PAD.encode(hash)
    ))
}

/// Whether `secret` matches `stored` (constant-time comparison of the derived hash). A malformed `stored` never
/// matches.
pub fn verify_secret(secret: &str, stored: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let [scheme, iterations, salt, hash] = parts[..] else {
        return false;
    };
    if scheme != HASH_SCHEME {
        return false;
    }
    let (Some(iterations), Ok(salt), Ok(hash)) = (
        iterations.parse::<u32>().ok().and_then(NonZeroU32::new),
        URL_SAFE_NO_PAD.decode(salt),
        URL_SAFE_NO_PAD.decode(hash),
    ) else {
        return false;
    };
    pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        secret.as_bytes(),
        &hash,
    )
    .is_ok()
}

/// Spends the time a real verification would, so an unknown client id is not told apart by timing.
pub fn verify_against_nothing(secret: &str, iterations: u32) {
    let mut out = [0u8; HASH_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN),
        b"no-such-client-salt",
        secret.as_bytes(),
        &mut out,
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(keys: &[(&str, &str)], active: &str) -> ServiceSettings {
        ServiceSettings {
            encryption_keys: keys
                .iter()
                .map(|(k, v)| (k.to_string(), SecretString::from(v.to_string())))
                .collect::<BTreeMap<_, _>>(),
            active_encryption_key: active.into(),
            ..ServiceSettings::default()
        }
    }

    const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

    #[test]
    fn values_round_trip_name_their_key_and_are_bound_to_their_context() {
        let enc = Encryptor::from_settings(&settings(&[("k1", K1)], "k1")).unwrap();
        let a = enc.encrypt(b"shpat_secret", "channel-token:1").unwrap();
        let b = enc.encrypt(b"shpat_secret", "channel-token:1").unwrap();
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(a.starts_with("v1:k1:"));
        assert!(!a.contains("shpat"));
        assert_eq!(enc.decrypt(&a, "channel-token:1").unwrap(), b"shpat_secret");
        assert!(matches!(
            enc.decrypt(&a, "channel-token:2"),
            Err(DecryptError::Corrupt)
        ));
        let rotated = Encryptor::from_settings(&settings(&[("k1", K1), ("k2", K2)], "k2")).unwrap();
        assert_eq!(
            rotated.decrypt(&a, "channel-token:1").unwrap(),
            b"shpat_secret"
        );
        assert!(!rotated.is_current(&a));
        assert!(rotated.encrypt(b"x", "c").unwrap().starts_with("v1:k2:"));
        let only_k2 = Encryptor::from_settings(&settings(&[("k2", K2)], "k2")).unwrap();
        assert!(matches!(
            only_k2.decrypt(&a, "channel-token:1"),
            Err(DecryptError::UnknownKey(k)) if k == "k1"
        ));
    }

    #[test]
    fn bad_key_settings_fail_naming_the_key() {
        let err = Encryptor::from_settings(&settings(&[("k1", "short")], "k1")).unwrap_err();
        assert!(
            err.to_string().contains("service.encryption_keys.k1"),
            "{err}"
        );
        let err = Encryptor::from_settings(&settings(&[("k1", K1)], "k9")).unwrap_err();
        assert!(
            err.to_string().contains("service.active_encryption_key"),
            "{err}"
        );
        let dev = Encryptor::from_settings(&ServiceSettings::default()).unwrap();
        assert!(dev.development_key_active());
        assert!(!format!("{dev:?}").contains(DEVELOPMENT_KEY_BASE64));
    }

    #[test]
    fn secrets_hash_with_salt_and_verify() {
        let secret = SecretString::from("sbs_abc");
        let h1 = hash_secret(&secret, 1000).unwrap();
        let h2 = hash_secret(&secret, 1000).unwrap();
        assert_ne!(h1, h2);
        assert!(h1.starts_with("pbkdf2-sha256$1000$"));
        assert!(verify_secret("sbs_abc", &h1));
        assert!(!verify_secret("sbs_abd", &h1));
        assert!(!verify_secret("sbs_abc", "garbage"));
    }
}
