-- The encoded CommandResult of each answered command: a sender that re-sends a command id gets its original result
-- again instead of silence. Rows answered before this migration have none (their re-send is still answered by nothing).
ALTER TABLE command_results ADD COLUMN IF NOT EXISTS result BYTEA;
