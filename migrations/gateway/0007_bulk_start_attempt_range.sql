-- A bulk start's row keeps the time of its first attempt besides its latest (`attempted_at`): an operation may have
-- been created by any attempt of the range (a start refused OPERATION_IN_PROGRESS is sent again later, and an earlier
-- attempt's answer may have been lost), so a rival start counts while its whole range could hold an operation's
-- creation, not only its latest attempt (services/shopify-gateway/src/export/bulk_start.rs).
-- Additive, so replicas of the previous version keep working during a rolling deploy: their inserts get the default
-- (the first attempt is the insert) and their retries move `attempted_at` only, as this version's do.
ALTER TABLE bulk_starts ADD COLUMN first_attempted_at TIMESTAMPTZ NOT NULL DEFAULT now();
UPDATE bulk_starts SET first_attempted_at = attempted_at;
DROP INDEX bulk_starts_by_shop;
CREATE INDEX bulk_starts_by_shop ON bulk_starts (shop_domain, kind);
