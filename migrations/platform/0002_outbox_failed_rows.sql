-- A row JetStream refuses for good (larger than the stream's or the server's message size, no stream for its subject)
-- is marked failed with the reason, and the relay moves on to the rows behind it instead of retrying it forever.
-- Failed rows stay until an operator deals with them: `UPDATE outbox SET failed_at = NULL, failure_reason = NULL
-- WHERE id = ...` hands one back to the relay (after, say, the missing stream was created).
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS failed_at TIMESTAMPTZ;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS failure_reason TEXT;

-- The relay's queue: rows neither sent nor failed.
DROP INDEX IF EXISTS outbox_unsent;
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_failed ON outbox (failed_at) WHERE failed_at IS NOT NULL;
