-- A dead letter an operator replayed (`<binary> dead-letters replay ID`): when, so it is not replayed twice by mistake.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS replayed_at TIMESTAMPTZ;
-- How many times it was replayed: each replay goes to JetStream under a message id of its own.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS replays INTEGER NOT NULL DEFAULT 0;
