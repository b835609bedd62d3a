//! The checks of Shopify's OAuth redirect (the authorization-code grant), as pure functions: the query's HMAC in
//! constant time, the timestamp's age, the shop domain exactly as Shopify sends it, the authorize URL and the check
//! that a grant covers the scopes the channel operations need. The state nonces are in [`crate::oauth_states`], the
//! flow in [`crate::oauth_flow`], the callback route in [`crate::callback`].

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::domain::ShopDomain;

/// Why a redirect is refused. Each is answered 4xx and stores nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("the request is not signed by Shopify (hmac missing or wrong)")]
    BadSignature,
    #[error(
        "the request is too old or from the future (timestamp {0}): start the connection again"
    )]
    Stale(i64),
    #[error("`shop` is not a Shopify store domain")]
    BadShop,
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("`{0}` is given more than once")]
    Repeated(String),
}

/// Shopify's signature over a redirect or install query: every parameter but `hmac` and `signature`, sorted by name,
/// joined as `name=value` with `&` (`%` and `&` escaped in names and values, `=` in names, as Shopify documents, so a
/// value cannot forge a separator), HMAC-SHA256 with the app's client secret, lowercase hex. Compared in constant time
/// (ring), after a hex decode that does not branch on the secret.
pub fn verify_query(params: &[(String, String)], secret: &SecretString) -> bool {
    let Some(given) = params
        .iter()
        .find(|(k, _)| k == "hmac")
        .map(|(_, v)| v.as_str())
    else {
        return false;
    };
    let Some(given) = decode_hex(given) else {
        return false;
    };
    let mut signed: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "hmac" && k != "signature")
        .collect();
    signed.sort();
    let message = signed
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k, true), escape(v, false)))
        .collect::<Vec<_>>()
        .join("&");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
    ring::hmac::verify(&key, message.as_bytes(), &given).is_ok()
}

fn escape(text: &str, name: bool) -> String {
    let escaped = text.replace('%', "%25").replace('&', "%26");
    if name {
        escaped.replace('=', "%3D")
    } else {
        escaped
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The checks of a redirect in order: signature first (nothing else is read from an unsigned request), then the
/// timestamp (within `max_age` either way of `now`), then the shop, which must already be in its exact form
/// (`<name>.myshopify.com`, lowercase: Shopify never sends anything else, so anything else is an attack).
pub fn check_callback(
    params: &[(String, String)],
    secret: &SecretString,
    now_unix: i64,
    max_age: Duration,
) -> Result<ShopDomain, CallbackError> {
    if !verify_query(params, secret) {
        return Err(CallbackError::BadSignature);
    }
    // Shopify never repeats a parameter; a repeated one could make two readers see two values.
    for (i, (name, _)) in params.iter().enumerate() {
        if params[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(CallbackError::Repeated(name.clone()));
        }
    }
    let get = |name: &'static str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or(CallbackError::Missing(name))
    };
    let timestamp: i64 = get("timestamp")?
        .parse()
        .map_err(|_| CallbackError::Missing("timestamp"))?;
    if (now_unix - timestamp).unsigned_abs() > max_age.as_secs() {
        return Err(CallbackError::Stale(timestamp));
    }
    let shop = get("shop")?;
    let parsed = ShopDomain::parse(shop).map_err(|_| CallbackError::BadShop)?;
    if parsed.as_str() != shop {
        return Err(CallbackError::BadShop);
    }
    get("code")?;
    get("state")?;
    Ok(parsed)
}

/// Where the merchant approves the app: `https://<shop>/admin/oauth/authorize?...` (an offline token: no
/// `grant_options[]`). `scheme` and `port` (0: the scheme's default) are Shopify's, or the simulator's.
pub fn authorize_url(
    shop: &ShopDomain,
    (scheme, port): (&str, u16),
    client_id: &str,
    scopes: &[&str],
    redirect_uri: &str,
    state: &str,
) -> String {
    let query = [
        ("client_id", client_id),
        ("scope", &scopes.join(",")),
        ("redirect_uri", redirect_uri),
        ("state", state),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let port = if port == 0 {
        String::new()
    } else {
        format!(":{port}")
    };
    format!(
        "{scheme}://{}{port}/admin/oauth/authorize?{query}",
        shop.as_str()
    )
}

/// The `required` scopes a grant lacks, in `required`'s order. A write scope implies its read scope
/// (`write_products` covers `read_products`), as Shopify lists a grant without the implied ones.
pub fn missing_scopes(required: &[String], granted: &[String]) -> Vec<String> {
    let covers = |have: &str, want: &str| {
        have == want
            || want
                .strip_prefix("read_")
                .is_some_and(|rest| have.strip_prefix("write_") == Some(rest))
            || want
                .strip_prefix("unauthenticated_read_")
                .is_some_and(|rest| have.strip_prefix("unauthenticated_write_") == Some(rest))
    };
    required
        .iter()
        .filter(|want| !granted.iter().any(|have| covers(have.trim(), want)))
        .cloned()
        .collect()
}

/// Percent-encoding of a query value (RFC 3986 unreserved characters kept).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn vectors() -> Vec<serde_json::Value> {
        let raw = include_str!("../../../../shared/data/shopify/hmac_test_vectors.json");
        let all: serde_json::Value = serde_json::from_str(raw).unwrap();
        all["oauth_query"].as_array().unwrap().clone()
    }

    fn params_of(v: &serde_json::Value) -> Vec<(String, String)> {
        match v["query"].as_str() {
            Some(q) => pairs(q),
            None => {
                let mut p: Vec<(String, String)> = v["params"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                p.push(("hmac".into(), v["expected_hex"].as_str().unwrap().into()));
                p
            }
        }
    }

    #[test]
    fn the_shared_oauth_vectors_verify_and_tampering_does_not() {
        let vectors = vectors();
        assert!(vectors.len() >= 2);
        for v in vectors {
            let secret = SecretString::from(v["secret"].as_str().unwrap().to_string());
            let params = params_of(&v);
            assert!(verify_query(&params, &secret), "{}", v["name"]);
            // Any changed value, an added parameter or another secret breaks it.
            let mut changed = params.clone();
            let shop = changed.iter_mut().find(|(k, _)| k == "shop").unwrap();
            shop.1 = "evil-shop.myshopify.com".into();
            assert!(!verify_query(&changed, &secret));
            let mut added = params.clone();
            added.push(("admin".into(), "true".into()));
            assert!(!verify_query(&added, &secret));
            assert!(!verify_query(
                &params,
                &SecretString::from("other".to_string())
            ));
        }
    }

    #[test]
    fn a_redirect_is_refused_for_each_attack() {
        let secret = SecretString::from("hush".to_string());
        let now = 1_337_178_173;
        let sign = |params: Vec<(&str, String)>| {
            let mut p: Vec<(String, String)> = params
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            let mut signed = p.clone();
            signed.sort();
            let message = signed
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"hush");
            let tag = ring::hmac::sign(&key, message.as_bytes());
            p.push((
                "hmac".into(),
                tag.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
            ));
            p
        };
        let redirect = |shop: &str, timestamp: i64| {
            sign(vec![
                ("code", "c0de".into()),
                ("shop", shop.into()),
                ("state", "nonce".into()),
                ("timestamp", timestamp.to_string()),
            ])
        };
        let max_age = Duration::from_secs(90);
        let ok = check_callback(
            &redirect("good-shop.myshopify.com", now - 10),
            &secret,
            now,
            max_age,
        );
        assert_eq!(ok.unwrap().as_str(), "good-shop.myshopify.com");

        // Signed by Shopify but too old, or from the future.
        let stale = check_callback(
            &redirect("good-shop.myshopify.com", now - 91),
            &secret,
            now,
            max_age,
        );
        assert_eq!(stale, Err(CallbackError::Stale(now - 91)));
        assert!(
            check_callback(
                &redirect("good-shop.myshopify.com", now + 600),
                &secret,
                now,
                max_age
            )
            .is_err()
        );
        // Shop domains an attacker could get signed elsewhere, or slip past a loose check.
        for shop in [
            "good-shop.myshopify.com.evil.com",
            "evil.com",
            "Good-Shop.myshopify.com",
            "good-shop.myshopify.com/",
            "https://good-shop.myshopify.com",
            "user@good-shop.myshopify.com",
            "good-shop.myshopify.com:443",
            "xn--gd-shop-8ya.myshopify.com",
            "good\u{0430}shop.myshopify.com",
            "a.b.myshopify.com",
        ] {
            let result = check_callback(&redirect(shop, now), &secret, now, max_age);
            assert_eq!(result, Err(CallbackError::BadShop), "{shop}");
        }
        // Forged or missing signatures, whatever else is right.
        let mut forged = redirect("good-shop.myshopify.com", now);
        forged.last_mut().unwrap().1 = "00".repeat(32);
        assert_eq!(
            check_callback(&forged, &secret, now, max_age),
            Err(CallbackError::BadSignature)
        );
        let mut unsigned = redirect("good-shop.myshopify.com", now);
        unsigned.pop();
        assert_eq!(
            check_callback(&unsigned, &secret, now, max_age),
            Err(CallbackError::BadSignature)
        );
        let mut odd = redirect("good-shop.myshopify.com", now);
        odd.last_mut().unwrap().1 = "abc".into();
        assert_eq!(
            check_callback(&odd, &secret, now, max_age),
            Err(CallbackError::BadSignature)
        );
    }

    #[test]
    fn a_repeated_parameter_is_refused_even_when_signed() {
        let secret = SecretString::from("hush".to_string());
        let mut params: Vec<(String, String)> = [
            ("code", "c"),
            ("shop", "good-shop.myshopify.com"),
            ("shop", "evil-shop.myshopify.com"),
            ("state", "s"),
            ("timestamp", "100"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut signed = params.clone();
        signed.sort();
        let message = signed
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"hush");
        let tag = ring::hmac::sign(&key, message.as_bytes());
        params.push((
            "hmac".into(),
            tag.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        ));
        assert_eq!(
            check_callback(&params, &secret, 100, Duration::from_secs(90)),
            Err(CallbackError::Repeated("shop".into()))
        );
    }

    #[test]
    fn separators_inside_values_are_escaped_before_signing() {
        // Without escaping, `a=1&b=2` as one value would sign like two parameters.
        let secret = SecretString::from("hush".to_string());
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"hush");
        let hex = |m: &str| -> String {
            ring::hmac::sign(&key, m.as_bytes())
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let one = vec![
            ("a".to_string(), "1&b=2".to_string()),
            ("hmac".to_string(), hex("a=1%26b=2")),
        ];
        assert!(verify_query(&one, &secret));
        let forged = vec![
            ("a".to_string(), "1&b=2".to_string()),
            ("hmac".to_string(), hex("a=1&b=2")),
        ];
        assert!(!verify_query(&forged, &secret));
    }

    #[test]
    fn write_scopes_cover_their_read_scopes_and_missing_ones_are_named() {
        let list = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
        let required =
            list("read_products,write_products,read_orders,write_inventory,read_locations");
        assert!(
            missing_scopes(
                &required,
                &list("write_products,write_orders,write_inventory,read_locations")
            )
            .is_empty()
        );
        assert_eq!(
            missing_scopes(&required, &list("read_products,read_orders")),
            list("write_products,write_inventory,read_locations")
        );
        // A read scope never covers a write scope, nor does a look-alike name.
        assert_eq!(
            missing_scopes(
                &list("write_orders,read_orders"),
                &list("read_orders,write_orders_x")
            ),
            list("write_orders")
        );
    }

    #[test]
    fn the_simulators_authorize_url_keeps_its_scheme_and_port() {
        let shop = ShopDomain::parse("good-shop.myshopify.com").unwrap();
        let url = authorize_url(
            &shop,
            ("http", 8787),
            "id",
            &["read_products"],
            "http://x/cb",
            "s",
        );
        assert!(
            url.starts_with(
                "http://good-shop.myshopify.com:8787/admin/oauth/authorize?client_id=id&"
            ),
            "{url}"
        );
    }

    #[test]
    fn the_authorize_url_is_the_shops_with_encoded_values() {
        let shop = ShopDomain::parse("good-shop.myshopify.com").unwrap();
        let url = authorize_url(
            &shop,
            ("https", 0),
            "app-id",
            &["read_products", "write_inventory"],
            "https://sb.example/cb?x=1",
            "n0nce",
        );
        assert_eq!(
            url,
            "https://good-shop.myshopify.com/admin/oauth/authorize?client_id=app-id&scope=read_products%2Cwrite_inventory\
             &redirect_uri=https%3A%2F%2Fsb.example%2Fcb%3Fx%3D1&state=n0nce"
        );
    }
}
