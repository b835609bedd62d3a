-- The catalog (listings and their variants, quantities per location, links to Shopify per channel), the Import
-- Listings settings per channel, and the state of import runs. Every row belongs to one tenant; every query filters by
-- it. Money and weights are NUMERIC (exact decimals), never floats: they cross the API as decimal strings.

CREATE TABLE import_settings (
    tenant_id          UUID NOT NULL,
    channel_id         UUID NOT NULL,
    enabled            BOOLEAN NOT NULL,
    mode               TEXT NOT NULL CHECK (mode IN ('create_only', 'create_and_overwrite')),
    master_sku_field   TEXT NOT NULL CHECK (master_sku_field IN ('sku', 'barcode')),
    pause_new_listings BOOLEAN NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel_id)
);

CREATE TABLE listings (
    id                UUID PRIMARY KEY,              -- UUIDv7: time-ordered, the keyset of ListListings pages
    tenant_id         UUID NOT NULL,
    title             TEXT NOT NULL,
    description_html  TEXT NOT NULL DEFAULT '',
    brand             TEXT NOT NULL DEFAULT '',
    product_type      TEXT NOT NULL DEFAULT '',
    tags              TEXT[] NOT NULL DEFAULT '{}',
    options           JSONB NOT NULL DEFAULT '[]',   -- [{"name": "Size", "values": ["S", "M"]}], in Shopify's order
    images            JSONB NOT NULL DEFAULT '[]',   -- [{"url": ..., "alt_text": ...}]
    custom_fields     JSONB NOT NULL DEFAULT '[]',   -- [{"name": "namespace.key", "value": ...}]
    status            TEXT NOT NULL CHECK (status IN ('active', 'paused')),
    created_by_run_id UUID,                          -- the import run that created it
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX listings_tenant ON listings (tenant_id, id);
CREATE INDEX listings_created_by_run ON listings (tenant_id, created_by_run_id) WHERE created_by_run_id IS NOT NULL;

CREATE TABLE variants (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL,
    listing_id     UUID NOT NULL REFERENCES listings (id) ON DELETE CASCADE,
    position       INT NOT NULL,
    -- The master SKU: what imports match Shopify variants by, unique in the tenant's catalog.
    sku            TEXT NOT NULL CHECK (sku <> ''),
    barcode        TEXT NOT NULL DEFAULT '',
    upc            TEXT NOT NULL DEFAULT '',
    gtin           TEXT NOT NULL DEFAULT '',
    mpn            TEXT NOT NULL DEFAULT '',
    asin           TEXT NOT NULL DEFAULT '',
    option_values  JSONB NOT NULL DEFAULT '[]',     -- [{"name": "Size", "value": "M"}]
    weight_value   NUMERIC CHECK (weight_value >= 0),
    weight_unit    TEXT CHECK (weight_unit IN ('oz', 'lb', 'kg', 'g')),
    images         JSONB NOT NULL DEFAULT '[]',
    custom_fields  JSONB NOT NULL DEFAULT '[]',
    -- The sum of variant_quantities over every location, kept with them in the same transaction.
    total_quantity BIGINT NOT NULL DEFAULT 0,
    cost           NUMERIC CHECK (cost >= 0),
    list_price     NUMERIC CHECK (list_price >= 0),
    msrp           NUMERIC CHECK (msrp >= 0),
    map            NUMERIC CHECK (map >= 0),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((weight_value IS NULL) = (weight_unit IS NULL)),
    UNIQUE (tenant_id, sku)
);
CREATE INDEX variants_listing ON variants (listing_id, position);

CREATE TABLE variant_quantities (
    variant_id  UUID NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
    location_id TEXT NOT NULL,                       -- the Shopify location GID for channel locations
    quantity    BIGINT NOT NULL,
    PRIMARY KEY (variant_id, location_id)
);

-- A variant's link to its Shopify variant on one channel; one Shopify variant is linked to at most one of ours.
CREATE TABLE shopify_links (
    variant_id         UUID NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
    channel_id         UUID NOT NULL,
    tenant_id          UUID NOT NULL,
    product_id         TEXT NOT NULL,
    shopify_variant_id TEXT NOT NULL,
    inventory_item_id  TEXT NOT NULL,
    linked_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (variant_id, channel_id),
    UNIQUE (channel_id, shopify_variant_id)
);

-- One Import Listings run: the settings it started with (a change mid-run does not mix two behaviours), where it is
-- (exporting: waiting for the gateway's batches and result; applying: its batches being applied, each once, by any
-- number of workers; finished), its counters and its report sequence (RunProgress.seq).
CREATE TABLE import_runs (
    run_id             UUID PRIMARY KEY,
    tenant_id          UUID NOT NULL,
    channel_id         UUID NOT NULL,
    shop_domain        TEXT NOT NULL,
    command_id         TEXT NOT NULL UNIQUE,
    mode               TEXT NOT NULL,
    master_sku_field   TEXT NOT NULL,
    pause_new_listings BOOLEAN NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('exporting', 'applying', 'finished')),
    result_status      TEXT,                         -- the gateway's CommandResult status, once it came
    result_at          TIMESTAMPTZ,
    total_batches      INT,
    applied_batches    INT NOT NULL DEFAULT 0,
    total_variants     BIGINT NOT NULL DEFAULT 0,
    processed          BIGINT NOT NULL DEFAULT 0,
    created            BIGINT NOT NULL DEFAULT 0,
    linked             BIGINT NOT NULL DEFAULT 0,
    updated            BIGINT NOT NULL DEFAULT 0,
    skipped            BIGINT NOT NULL DEFAULT 0,
    failed             BIGINT NOT NULL DEFAULT 0,
    report_seq         BIGINT NOT NULL DEFAULT 0,
    outcome            TEXT,
    error              TEXT,
    requested_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at        TIMESTAMPTZ
);
CREATE INDEX import_runs_active ON import_runs (state) WHERE state <> 'finished';
CREATE INDEX import_runs_channel ON import_runs (tenant_id, channel_id) WHERE state <> 'finished';

-- Catalog batches as they arrive (any order, possibly twice), kept until the run finishes: a run is applied only
-- once every batch is in, because a duplicate master SKU is only known when the whole catalog has been seen.
CREATE TABLE import_batches (
    run_id        UUID NOT NULL REFERENCES import_runs (run_id) ON DELETE CASCADE,
    seq           INT NOT NULL CHECK (seq >= 1),
    total_batches INT NOT NULL,                      -- 0 where the gateway did not say
    variants      INT NOT NULL,
    payload       BYTEA NOT NULL,                    -- the CatalogBatch, protobuf
    applied_at    TIMESTAMPTZ,                       -- set in the transaction that applied it
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX import_batches_unapplied ON import_batches (run_id, seq) WHERE applied_at IS NULL;

-- Every master SKU value of a run and the Shopify variant holding it: two holders make a duplicate.
CREATE TABLE import_claims (
    run_id             UUID NOT NULL REFERENCES import_runs (run_id) ON DELETE CASCADE,
    shopify_variant_id TEXT NOT NULL,
    master_sku         TEXT NOT NULL,
    PRIMARY KEY (run_id, shopify_variant_id)
);
CREATE INDEX import_claims_sku ON import_claims (run_id, master_sku);
