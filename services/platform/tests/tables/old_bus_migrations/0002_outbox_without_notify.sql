-- The relay polls and is woken in-process; a NOTIFY per producer commit takes a database-wide lock at commit that
-- serialises all producers behind one fsync (see services/platform/src/bus/outbox.rs and the pipeline benchmark).
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();
