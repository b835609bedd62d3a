-- The auth service's own tables: tenants, their API clients (hashed secrets), the token signing keys (private halves
-- encrypted at rest) and the tenants' Shopify channels (access tokens encrypted at rest).
--
-- Encrypted values are text `v1:<encryption key id>:<base64url(nonce || ciphertext || tag)>` (AES-256-GCM), so a key
-- rotation can find and re-encrypt every value still under an older key.

CREATE TABLE tenants (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_clients (
    id          TEXT PRIMARY KEY,                          -- the client id, e.g. sbc_<32 hex>
    tenant_id   UUID NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,                             -- pbkdf2-sha256$<iterations>$<salt>$<hash> (base64url)
    scopes      TEXT[] NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    disabled_at TIMESTAMPTZ
);
CREATE INDEX api_clients_tenant ON api_clients (tenant_id);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    public_key      BYTEA NOT NULL,                        -- raw Ed25519 public key (32 bytes)
    private_key_enc TEXT NOT NULL,                         -- PKCS#8 document, encrypted
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at      TIMESTAMPTZ,                           -- NULL for the one key that signs
    publish_until   TIMESTAMPTZ                            -- a retired key is published until its tokens expired
);
-- At most one active signing key.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE retired_at IS NULL;

CREATE TABLE channels (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id),
    name             TEXT NOT NULL,
    shop_domain      TEXT,                                 -- normalised <name>.myshopify.com, once connected
    shop_name        TEXT,
    plan             TEXT,
    granted_scopes   TEXT[] NOT NULL DEFAULT '{}',
    state            TEXT NOT NULL CHECK (state IN ('connecting', 'active', 'disconnected', 'error')),
    last_error       TEXT,
    access_token_enc TEXT,                                 -- encrypted; NULL when not connected
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
-- One channel per store within a tenant.
CREATE UNIQUE INDEX channels_tenant_shop ON channels (tenant_id, shop_domain) WHERE shop_domain IS NOT NULL;
