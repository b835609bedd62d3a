-- Bulk operations the gateway started, per command and stage, committed as soon as Shopify accepts them: a gateway
-- restarted mid-export polls the same operation by id instead of starting another.
CREATE TABLE bulk_operations (
    command_id   TEXT NOT NULL,
    stage        TEXT NOT NULL,
    shop_domain  TEXT NOT NULL,
    bulk_id      TEXT NOT NULL,
    status       TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ,
    PRIMARY KEY (command_id, stage)
);
