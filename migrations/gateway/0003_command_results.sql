-- Commands already answered, by command id: a re-sent or redelivered command publishes no second result and makes
-- no Shopify call.
CREATE TABLE command_results (
    command_id  TEXT PRIMARY KEY,
    shop_domain TEXT NOT NULL,
    status      TEXT NOT NULL,
    calls       INTEGER NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
