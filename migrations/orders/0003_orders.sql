-- Get Orders: channels as auth reports them, settings and mapping per channel, the orders imported from Shopify with
-- their lines, addresses (PII) and import history, the runs of Get Orders, the tags asked of the gateway, and the
-- customers/data_request exports. Every row belongs to one tenant; every query filters by it.

-- Channels as auth's ChannelStateChanged events report them: webhooks name a shop, not a tenant.
CREATE TABLE channels (
    channel_id  UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    shop_domain TEXT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX channels_shop ON channels (shop_domain);

CREATE TABLE get_orders_settings (
    tenant_id                      UUID NOT NULL,
    channel_id                     UUID NOT NULL,
    enabled                        BOOLEAN NOT NULL,
    location_id                    TEXT NOT NULL,
    import_orders_without_location BOOLEAN NOT NULL,
    fulfillment_statuses           TEXT[] NOT NULL,
    financial_statuses             TEXT[] NOT NULL,
    pii_retention_days             INT CHECK (pii_retention_days IN (30, 60, 90)), -- NULL: indefinitely
    tag_after_import               TEXT NOT NULL,
    updated_within_days            INT NOT NULL CHECK (updated_within_days BETWEEN 1 AND 365),
    updated_at                     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel_id)
);

CREATE TABLE get_orders_mappings (
    tenant_id            UUID NOT NULL,
    channel_id           UUID NOT NULL,
    disabled_fields      TEXT[] NOT NULL,
    currency_by_location JSONB NOT NULL DEFAULT '{}',
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel_id)
);

CREATE TABLE orders (
    id                    UUID PRIMARY KEY,           -- UUIDv7: the keyset of ListOrders pages
    tenant_id             UUID NOT NULL,
    channel_id            UUID NOT NULL,
    shopify_order_id      TEXT NOT NULL,
    name                  TEXT NOT NULL,
    financial_status      TEXT NOT NULL,
    fulfillment_status    TEXT NOT NULL,
    location_id           TEXT NOT NULL,
    currency              TEXT NOT NULL,
    location_currency     TEXT NOT NULL,
    total_amount          NUMERIC,                    -- NULL when the mapping disables order.total
    shipping_method_title TEXT,
    non_shippable         BOOLEAN NOT NULL,
    digital               BOOLEAN NOT NULL,
    shopify_created_at    TIMESTAMPTZ,                -- NULL when the mapping disables order.created_at
    shopify_updated_at    TIMESTAMPTZ NOT NULL,
    -- Not PII by itself: the key customers/redact names the customer by.
    customer_id           TEXT NOT NULL DEFAULT '',
    -- PII: erased (NULL) after the retention period or on a redact request.
    customer_email        TEXT,
    pii_erased_at         TIMESTAMPTZ,
    shipped_at            TIMESTAMPTZ,
    tag_requested_at      TIMESTAMPTZ,
    tagged_at             TIMESTAMPTZ,
    imported_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, channel_id, shopify_order_id)
);
CREATE INDEX orders_tenant ON orders (tenant_id, id);
CREATE INDEX orders_shopify_id ON orders (shopify_order_id);
CREATE INDEX orders_customer ON orders (channel_id, customer_id) WHERE customer_id <> '';
CREATE INDEX orders_retention ON orders (shipped_at) WHERE shipped_at IS NOT NULL AND pii_erased_at IS NULL;

CREATE TABLE order_lines (
    order_id             UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position             INT NOT NULL,
    shopify_line_item_id TEXT NOT NULL,
    shopify_variant_id   TEXT NOT NULL,
    sku                  TEXT,                        -- NULL when the mapping disables line_item.sku
    title                TEXT,
    quantity             BIGINT,
    fulfillable_quantity BIGINT NOT NULL,
    unit_price           NUMERIC,
    currency             TEXT NOT NULL,
    digital              BOOLEAN NOT NULL,
    custom_attributes    JSONB,                       -- [{"key": ..., "value": ...}]
    PRIMARY KEY (order_id, position)
);
CREATE INDEX order_lines_sku ON order_lines (sku) WHERE sku IS NOT NULL;

-- PII: deleted on erasure (the order keeps pii_erased_at).
CREATE TABLE order_addresses (
    order_id      UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('billing', 'shipping')),
    name          TEXT,
    first_name    TEXT,
    last_name     TEXT,
    company       TEXT,
    address1      TEXT,
    address2      TEXT,
    city          TEXT,
    province_code TEXT,
    zip           TEXT,
    country_code  TEXT,
    phone         TEXT,
    email         TEXT,
    PRIMARY KEY (order_id, kind)
);

CREATE TABLE order_history (
    id       BIGSERIAL PRIMARY KEY,
    order_id UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    kind     TEXT NOT NULL,
    source   TEXT NOT NULL,
    run_id   UUID,
    changes  TEXT[] NOT NULL DEFAULT '{}'
);
CREATE INDEX order_history_order ON order_history (order_id, id);

-- Get Orders runs: requested by the scheduler, answered by the gateway's OrderPage events and one CommandResult.
CREATE TABLE get_orders_runs (
    run_id         UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL,
    channel_id     UUID NOT NULL,
    shop_domain    TEXT NOT NULL,
    command_id     TEXT NOT NULL UNIQUE,
    state          TEXT NOT NULL CHECK (state IN ('fetching', 'finished')),
    total_pages    INT,                               -- known from the CommandResult
    applied_pages  INT NOT NULL DEFAULT 0,
    result_status  TEXT,
    result_error   TEXT,
    processed      BIGINT NOT NULL DEFAULT 0,
    created        BIGINT NOT NULL DEFAULT 0,
    updated        BIGINT NOT NULL DEFAULT 0,
    skipped        BIGINT NOT NULL DEFAULT 0,
    failed         BIGINT NOT NULL DEFAULT 0,
    report_seq     BIGINT NOT NULL DEFAULT 0,
    outcome        TEXT,
    requested_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at    TIMESTAMPTZ
);
CREATE INDEX get_orders_runs_active ON get_orders_runs (tenant_id, channel_id) WHERE state <> 'finished';

-- Pages of a run already applied (a redelivered page, or one re-sent under another message id, is applied once).
CREATE TABLE get_orders_run_pages (
    run_id UUID NOT NULL REFERENCES get_orders_runs (run_id) ON DELETE CASCADE,
    seq    INT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- customers/data_request: what we held for the customer when Shopify asked.
CREATE TABLE data_requests (
    id                 UUID PRIMARY KEY,
    tenant_id          UUID NOT NULL,
    channel_id         UUID NOT NULL,
    shop_domain        TEXT NOT NULL,
    shopify_request_id TEXT NOT NULL,
    customer_id        TEXT NOT NULL,
    customer_email     TEXT NOT NULL,
    orders             INT NOT NULL,
    export             JSONB NOT NULL,
    received_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX data_requests_tenant ON data_requests (tenant_id, channel_id, received_at DESC);

-- Webhook fetches per channel: at most one FetchOrders of a channel's webhooks in flight; webhooks that come
-- meanwhile are folded into the next one (from the oldest change they name).
CREATE TABLE webhook_fetches (
    channel_id      UUID PRIMARY KEY,
    in_flight       TEXT,                -- the command id of the fetch in flight
    in_flight_since TIMESTAMPTZ,
    pending_since   TIMESTAMPTZ          -- the oldest change of the webhooks waiting for the next fetch
);
