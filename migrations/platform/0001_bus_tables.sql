-- The bus tables every service's database holds (services/platform/src/bus): the transactional outbox, the inbox of
-- applied message ids, and the dead letters its consumers gave up on. The platform applies this set before each
-- service's own migrations, with its own history table (_platform_migrations).
--
-- Until this set existed every service carried a byte-identical copy (0001_bus_tables.sql, then
-- 0002/0003/0005_outbox_without_notify.sql); databases migrated by those copies already hold these tables, so every
-- statement here is idempotent and leaves such a database as it was.

CREATE TABLE IF NOT EXISTS outbox (
    id             UUID PRIMARY KEY,          -- UUIDv7: time-ordered; also the Nats-Msg-Id
    subject        TEXT NOT NULL,             -- without the deployment's namespace
    type_name      TEXT NOT NULL,             -- full protobuf name, sent as Shopbridge-Type
    payload        BYTEA NOT NULL,
    tenant_id      TEXT,
    channel_id     TEXT,
    correlation_id TEXT,
    trace_headers  JSONB NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at        TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- The relay polls and is woken in-process; a NOTIFY per producer commit takes a database-wide lock at commit that
-- serialises all producers behind one fsync (see services/platform/src/bus/outbox.rs and the pipeline benchmark).
-- The first copies created this trigger; the later ones dropped it.
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();

CREATE TABLE IF NOT EXISTS inbox (
    consumer    TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

CREATE TABLE IF NOT EXISTS dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    consumer    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    message_id  TEXT,
    type_name   TEXT,
    headers     JSONB NOT NULL,
    payload     BYTEA NOT NULL,
    reason      TEXT NOT NULL,
    deliveries  BIGINT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dead_letters_consumer ON dead_letters (consumer, recorded_at);
