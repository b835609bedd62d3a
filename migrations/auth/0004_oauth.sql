-- OAuth connections: the state nonces BeginOAuth issues (single use, expiring), and what an expiring offline token
-- needs to be refreshed before it dies.

CREATE TABLE oauth_states (
    state_hash  TEXT PRIMARY KEY,                      -- SHA-256 (hex) of the nonce; the nonce itself is not stored
    tenant_id   UUID NOT NULL REFERENCES tenants (id),
    channel_id  UUID NOT NULL REFERENCES channels (id),
    shop_domain TEXT NOT NULL,                         -- the store it was issued for; another store's callback fails
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ                            -- set once, by the callback that used it
);
CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);

-- An expiring offline token (1 h) and its rotating refresh token; NULL for tokens that do not expire.
ALTER TABLE channels
    ADD COLUMN access_token_expires_at  TIMESTAMPTZ,
    ADD COLUMN refresh_token_enc        TEXT,          -- encrypted like access_token_enc
    ADD COLUMN refresh_token_expires_at TIMESTAMPTZ;
CREATE INDEX channels_refresh_due ON channels (access_token_expires_at)
    WHERE refresh_token_enc IS NOT NULL;
