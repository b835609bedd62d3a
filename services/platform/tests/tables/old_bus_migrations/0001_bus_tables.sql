-- The bus tables every service owns (services/platform/src/bus): the transactional outbox, the inbox of applied
-- message ids, and the dead letters its consumers gave up on.

CREATE TABLE outbox (
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
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Wake the relay as soon as a row commits (NOTIFY is delivered at commit); it also polls in case one is missed.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_rows', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

CREATE TABLE inbox (
    consumer    TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

CREATE TABLE dead_letters (
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
CREATE INDEX dead_letters_consumer ON dead_letters (consumer, recorded_at);
