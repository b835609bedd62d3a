-- A bulk start's row keeps the time of its first attempt besides its latest: an operation may have been created by any
-- attempt of the range (a start refused OPERATION_IN_PROGRESS is sent again later, and the earlier attempt's answer
-- may have been lost), so a rival start counts while its whole range could hold an operation's creation, not only its
-- latest attempt (services/shopify-gateway/src/export/bulk_start.rs).
ALTER TABLE bulk_starts RENAME COLUMN attempted_at TO last_attempted_at;
ALTER TABLE bulk_starts ADD COLUMN first_attempted_at TIMESTAMPTZ;
UPDATE bulk_starts SET first_attempted_at = last_attempted_at;
ALTER TABLE bulk_starts ALTER COLUMN first_attempted_at SET NOT NULL;
DROP INDEX bulk_starts_by_shop;
CREATE INDEX bulk_starts_by_shop ON bulk_starts (shop_domain, kind);
