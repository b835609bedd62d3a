-- A bulk operation's start, committed before the start mutation is sent and deleted in the transaction that records
-- the accepted operation in bulk_operations. A row left here means the gateway may have died between "Shopify
-- accepted the start" and "the id was recorded": the resumed command asks Shopify for the app's current bulk
-- operation and adopts it when it can only be this start's, instead of starting a second one
-- (services/shopify-gateway/src/export/bulk_start.rs). bulk_operations keeps holding accepted operations only.
CREATE TABLE bulk_starts (
    command_id    TEXT NOT NULL,
    stage         TEXT NOT NULL,
    shop_domain   TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('QUERY', 'MUTATION')),
    -- When the latest start request was about to be sent (the database's clock).
    attempted_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (command_id, stage)
);
-- Other starts of the same shop and type near an operation's creation make adopting it ambiguous.
CREATE INDEX bulk_starts_by_shop ON bulk_starts (shop_domain, kind, attempted_at);

-- An operation has one owner: two resumed commands can never both adopt it.
CREATE UNIQUE INDEX bulk_operations_one_owner ON bulk_operations (shop_domain, bulk_id);
