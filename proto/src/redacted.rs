//! Debug for the messages that carry secrets (see `SECRET_BEARING` in build.rs): every field but the secret.

use std::fmt;

use crate::auth::{
    ConnectWithTokenRequest, CreateApiClientResponse, GetShopCredentialsResponse,
    IssueTokenRequest, IssueTokenResponse,
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
}
