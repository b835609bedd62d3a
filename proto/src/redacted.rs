//! Debug for the messages that carry secrets (see `SECRET_BEARING` in build.rs): every field but the secret.

use std::fmt;

use crate::{
    auth::{
        ConnectWithTokenRequest, CreateApiClientResponse, GetShopCredentialsResponse,
        IssueTokenRequest, IssueTokenResponse,
    },
    gateway::{ExchangeCodeRequest, RefreshTokenRequest, ShopAccessToken, VerifyTokenRequest},
};

const REDACTED: &str = "[REDACTED]";

impl fmt::Debug for IssueTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssueTokenRequest")
            .field("client_id", &self.client_id)
            .field("client_secret", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for IssueTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssueTokenResponse")
            .field("access_token", &REDACTED)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .field("tenant_id", &self.tenant_id)
            .finish()
    }
}

impl fmt::Debug for CreateApiClientResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateApiClientResponse")
            .field("client_id", &self.client_id)
            .field("client_secret", &REDACTED)
            .field("scopes", &self.scopes)
            .field("tenant_id", &self.tenant_id)
            .finish()
    }
}

impl fmt::Debug for ConnectWithTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectWithTokenRequest")
            .field("channel_id", &self.channel_id)
            .field("shop_domain", &self.shop_domain)
            .field("access_token", &REDACTED)
            .field("granted_scopes", &self.granted_scopes)
            .finish()
    }
}

impl fmt::Debug for GetShopCredentialsResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetShopCredentialsResponse")
            .field("shop_domain", &self.shop_domain)
            .field("access_token", &REDACTED)
            .field("granted_scopes", &self.granted_scopes)
            .finish()
    }
}

impl fmt::Debug for ShopAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShopAccessToken")
            .field("access_token", &REDACTED)
            .field("scopes", &self.scopes)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &REDACTED)
            .field("refresh_token_expires_in", &self.refresh_token_expires_in)
            .finish()
    }
}

impl fmt::Debug for ExchangeCodeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeCodeRequest")
            .field("shop_domain", &self.shop_domain)
            .field("code", &REDACTED)
            .field("expiring", &self.expiring)
            .finish()
    }
}

impl fmt::Debug for RefreshTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenRequest")
            .field("shop_domain", &self.shop_domain)
            .field("refresh_token", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for VerifyTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyTokenRequest")
            .field("shop_domain", &self.shop_domain)
            .field("access_token", &REDACTED)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let request = IssueTokenRequest {
            client_id: "c1".into(),
            client_secret: "hunter2".into(),
        };
        let connect = ConnectWithTokenRequest {
            access_token: "shpat_secret".into(),
            ..Default::default()
        };
        let credentials = GetShopCredentialsResponse {
            access_token: "shpat_2".into(),
            ..Default::default()
        };
        assert!(!format!("{credentials:?}").contains("shpat_2"));
        let printed = format!(
            "{request:?} {connect:?} {:?}",
            IssueTokenResponse {
                access_token: "jwt.sig".into(),
                ..Default::default()
            }
        );
        assert!(printed.contains("c1"));
        for secret in ["hunter2", "shpat_secret", "jwt.sig"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[test]
    fn shopify_access_secrets_never_print() {
        use crate::gateway::{ExchangeCodeResponse, RefreshTokenResponse};
        let token = ShopAccessToken {
            access_token: "shpat_granted".into(),
            scopes: vec!["read_products".into()],
            expires_in: 3600,
            refresh_token: "shprt_rotating".into(),
            refresh_token_expires_in: 7_776_000,
        };
        let printed = format!(
            "{:?} {:?} {:?} {:?} {:?}",
            ExchangeCodeRequest {
                shop_domain: "a.myshopify.com".into(),
                code: "one-time-code".into(),
                expiring: true,
            },
            ExchangeCodeResponse {
                token: Some(token.clone()),
            },
            RefreshTokenRequest {
                shop_domain: "a.myshopify.com".into(),
                refresh_token: "shprt_old".into(),
            },
            RefreshTokenResponse { token: Some(token) },
            VerifyTokenRequest {
                shop_domain: "a.myshopify.com".into(),
                access_token: "shpat_checked".into(),
            },
        );
        assert!(printed.contains("a.myshopify.com") && printed.contains("read_products"));
        for secret in [
            "shpat_granted",
            "shprt_rotating",
            "one-time-code",
            "shprt_old",
            "shpat_checked",
        ] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}
