//! Newtypes and rules of the auth domain: scopes, channel states, shop domains.

use std::fmt;

use shopbridge_proto::auth as pb;

/// The scopes auth knows. A token carries some of them; handlers check with `Principal::require_scope`.
pub mod scopes {
    /// Read the tenant's channels.
    pub const CHANNELS_READ: &str = "channels:read";
    /// Create, connect and disconnect the tenant's channels.
    pub const CHANNELS_WRITE: &str = "channels:write";
    /// Create API clients of the tenant.
    pub const CLIENTS_WRITE: &str = "clients:write";
    /// Rotate the service's signing and encryption keys (operators).
    pub const KEYS_ROTATE: &str = "keys:rotate";
    /// Read any channel's Shopify token: shopify-gateway's service identity alone.
    pub const CREDENTIALS_READ: &str = "credentials:read";
    /// Call shopify-gateway's ShopifyAccessService (code exchange, token refresh and verification): auth's own
    /// service identity alone, in tokens auth signs for itself.
    pub const SHOPIFY_ACCESS: &str = "shopify:access";

    /// Read schedules, runs and run logs (scheduler).
    pub const RUNS_READ: &str = "runs:read";
    /// Set schedules, run now, cancel runs (scheduler).
    pub const RUNS_WRITE: &str = "runs:write";
    /// Query listings and read operation settings (listings).
    pub const LISTINGS_READ: &str = "listings:read";
    /// Change listings and operation settings (listings).
    pub const LISTINGS_WRITE: &str = "listings:write";
    /// Query orders and read Get Orders settings, mappings and data requests (orders).
    pub const ORDERS_READ: &str = "orders:read";
    /// Change Get Orders settings and mappings (orders).
    pub const ORDERS_WRITE: &str = "orders:write";

    /// What an operator's admin client gets (`bootstrap-admin`); `credentials:read` is deliberately not among them.
    pub const ALL: [&str; 10] = [
        CHANNELS_READ,
        CHANNELS_WRITE,
        CLIENTS_WRITE,
        KEYS_ROTATE,
        RUNS_READ,
        RUNS_WRITE,
        LISTINGS_READ,
        LISTINGS_WRITE,
        ORDERS_READ,
        ORDERS_WRITE,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    Connecting,
    Active,
    Disconnected,
    Error,
}

impl ChannelState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Active => "active",
            Self::Disconnected => "disconnected",
            Self::Error => "error",
        }
    }

    pub fn parse(value: &str) -> anyhow::Result<Self> {
        Ok(match value {
            "connecting" => Self::Connecting,
            "active" => Self::Active,
            "disconnected" => Self::Disconnected,
            "error" => Self::Error,
            other => anyhow::bail!("unknown channel state `{other}` in the database"),
        })
    }

    pub fn to_proto(self) -> pb::ChannelState {
        match self {
            Self::Connecting => pb::ChannelState::Connecting,
            Self::Active => pb::ChannelState::Active,
            Self::Disconnected => pb::ChannelState::Disconnected,
            Self::Error => pb::ChannelState::Error,
        }
    }
}

/// A Shopify store's permanent domain, `<name>.myshopify.com`, lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShopDomain(String);

const SHOPIFY_SUFFIX: &str = ".myshopify.com";
const GUIDANCE: &str = "enter the store URL as <your-store>.myshopify.com";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Shopify store URL ({reason}): {GUIDANCE}")]
pub struct ShopDomainError {
    pub reason: &'static str,
}

fn reject(reason: &'static str) -> ShopDomainError {
    ShopDomainError { reason }
}

impl ShopDomain {
    /// Accepts `name.myshopify.com`, optionally with `https://` in front and one `/` behind, in any case; rejects
    /// everything else: other hosts and look-alikes, subdomains, paths, queries, fragments, ports, user-info,
    /// percent-encoding, non-ASCII and punycode labels, whitespace inside.
    pub fn parse(input: &str) -> Result<Self, ShopDomainError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(reject("empty"));
        }
        if !input.is_ascii() {
            return Err(reject("non-ASCII characters"));
        }
        if input.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err(reject("spaces or control characters"));
        }
        let lower = input.to_ascii_lowercase();
        let mut rest = lower.as_str();
        if let Some(after) = rest.strip_prefix("https://") {
            rest = after;
        } else if rest.contains("://") || rest.starts_with("//") {
            return Err(reject("only https:// store URLs"));
        }
        if let Some(before) = rest.strip_suffix('/') {
            rest = before;
        }
        if rest.contains('@') {
            return Err(reject("user information"));
        }
        if rest.contains(['/', '\\', '?', '#']) {
            return Err(reject("a path, query or fragment"));
        }
        if rest.contains(':') {
            return Err(reject("a port"));
        }
        if rest.contains('%') {
            return Err(reject("percent-encoding"));
        }
        let Some(name) = rest.strip_suffix(SHOPIFY_SUFFIX) else {
            return Err(reject("not a myshopify.com domain"));
        };
        if name.is_empty() || name.len() > 63 {
            return Err(reject("the store name must have 1 to 63 characters"));
        }
        if name.contains('.') {
            return Err(reject("a subdomain"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(reject(
                "the store name may hold only letters, digits and `-`",
            ));
        }
        if name.starts_with('-') || name.ends_with('-') {
            return Err(reject("the store name cannot start or end with `-`"));
        }
        if name.starts_with("xn--") {
            return Err(reject("an internationalised (punycode) name"));
        }
        Ok(Self(rest.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShopDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A channel's name as the merchant typed it: trimmed, 1 to 100 characters, no control characters.
pub fn channel_name(input: &str) -> Result<String, &'static str> {
    let name = input.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err("a channel name has 1 to 100 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("a channel name cannot hold control characters");
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_normalised_and_attacks_rejected() {
        let good = [
            ("example-shop.myshopify.com", "example-shop.myshopify.com"),
            (
                "https://example-shop.myshopify.com",
                "example-shop.myshopify.com",
            ),
            (
                "https://example-shop.myshopify.com/",
                "example-shop.myshopify.com",
            ),
            ("example-shop.myshopify.com/", "example-shop.myshopify.com"),
            (
                "  HTTPS://Example-Shop.MyShopify.COM/ ",
                "example-shop.myshopify.com",
            ),
            ("shop42.myshopify.com", "shop42.myshopify.com"),
            ("a.myshopify.com", "a.myshopify.com"),
        ];
        for (input, want) in good {
            assert_eq!(
                ShopDomain::parse(input).map(|d| d.to_string()),
                Ok(want.to_string()),
                "{input}"
            );
        }
        let bad = [
            "",
            "   ",
            "myshopify.com",
            ".myshopify.com",
            "example-shop",
            "example-shop.myshopify.co",
            "example-shop.myshopify.com.evil.com",
            "example-shop.myshopify.com.",
            "example-shop-myshopify.com",
            "example-shopmyshopify.com",
            "evil.com/example-shop.myshopify.com",
            "evil.com?x=example-shop.myshopify.com",
            "evil.com#example-shop.myshopify.com",
            "example-shop.myshopify.com@evil.com",
            "user:pass@example-shop.myshopify.com",
            "https://evil.com@example-shop.myshopify.com",
            "example-shop.myshopify.com:443",
            "https://example-shop.myshopify.com:8080/",
            "https://example-shop.myshopify.com/admin",
            "https://example-shop.myshopify.com//",
            "https://example-shop.myshopify.com?shop=x",
            "http://example-shop.myshopify.com",
            "ftp://example-shop.myshopify.com",
            "//example-shop.myshopify.com",
            "javascript://example-shop.myshopify.com",
            "a.b.myshopify.com",
            "admin.example-shop.myshopify.com",
            "-shop.myshopify.com",
            "shop-.myshopify.com",
            "sh_op.myshopify.com",
            "sh op.myshopify.com",
            "shop\n.myshopify.com",
            "shop\t.myshopify.com",
            "shop%2e.myshopify.com",
            "example-shop%2emyshopify.com",
            "example-shop.myshopify%2ecom",
            "example-shop.myshopify.com\\evil.com",
            "example-shop.myshopífy.com",
            "exаmple-shop.myshopify.com",
            "example-shop．myshopify.com",
            "example\u{200b}-shop.myshopify.com",
            "xn--exmple-cua.myshopify.com",
            "example-shop.xn--myshopfy-xxx.com",
            "127.0.0.1",
            "[::1].myshopify.com",
            &format!("{}.myshopify.com", "a".repeat(64)),
        ];
        for input in bad {
            assert!(
                ShopDomain::parse(input).is_err(),
                "{input:?} should be rejected"
            );
        }
    }

    #[test]
    fn a_rejection_explains_what_is_expected() {
        let err = ShopDomain::parse("evil.com").unwrap_err().to_string();
        assert!(err.contains("<your-store>.myshopify.com"), "{err}");
    }
}
