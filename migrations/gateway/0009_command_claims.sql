-- Commands being run, by command id: claimed (committed) before any Shopify call, so no transaction is held across
-- the calls. The owner heartbeats its claim while it runs; a claim whose heartbeat is older than the takeover age
-- belongs to a replica that died or hung, and the next delivery takes it over. The row goes when the result is
-- recorded (in the same transaction).
CREATE TABLE command_claims (
    command_id   TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    claimed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
