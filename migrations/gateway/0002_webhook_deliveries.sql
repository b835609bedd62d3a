-- Webhook deliveries already accepted, by Shopify's event id: a duplicate delivery is answered 200 and publishes
-- nothing. Kept for the retry window (Shopify retries for up to 4 hours) and then some.
CREATE TABLE webhook_deliveries (
    event_id    TEXT PRIMARY KEY,
    shop_domain TEXT NOT NULL,
    topic       TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);
