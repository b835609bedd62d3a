//! Shopify's HMAC-SHA256 signatures: webhooks (base64 of the raw body) and OAuth redirects
//! (hex of the sorted query without `hmac`).

use base64::Engine;
use ring::hmac;

pub fn webhook_signature(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, body).as_ref())
}

/// Constant-time check of an `X-Shopify-Hmac-Sha256` header.
pub fn verify_webhook(secret: &str, body: &[u8], header: &str) -> bool {
    let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, body, &tag).is_ok()
}

/// Escapes what would make the signed message ambiguous (Shopify's documented rule: `%` and `&`
/// in keys and values, and `=` in keys).
fn escape(s: &str, key: bool) -> String {
    let mut out = s.replace('%', "%25").replace('&', "%26");
    if key {
        out = out.replace('=', "%3D");
    }
    out
}

/// The message Shopify signs: every parameter but `hmac`/`signature`, sorted, `k=v` joined by `&`.
pub fn oauth_message(params: &[(String, String)]) -> String {
    let mut kv: Vec<String> = params
        .iter()
        .filter(|(k, _)| k != "hmac" && k != "signature")
        .map(|(k, v)| format!("{}={}", escape(k, true), escape(v, false)))
        .collect();
    kv.sort();
    kv.join("&")
}

pub fn oauth_hmac(secret: &str, params: &[(String, String)]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, oauth_message(params).as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

pub fn verify_oauth(secret: &str, params: &[(String, String)]) -> bool {
    let Some((_, given)) = params.iter().find(|(k, _)| k == "hmac") else {
        return false;
    };
    let Some(given) = hex(given) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, oauth_message(params).as_bytes(), &given).is_ok()
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Percent-encodes a query component (RFC 3986 unreserved characters kept).
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses a raw query string into decoded pairs, keeping order.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(x) => {
                        out.push(x);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
