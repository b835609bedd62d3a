-- Real failures of a message, per consumer: what `consumer.max_failures` counts. JetStream counts every delivery,
-- and a message is delivered again for many reasons that are not its fault (a consumer stopped at a deploy or a
-- rebalance, a handler given back when its replica lost the partition, a parked message handed back at stop, a
-- database outage): those must not bring a message closer to the dead letters. A row lives while the message keeps
-- failing; it is deleted when the message is applied or dead-lettered.
CREATE TABLE IF NOT EXISTS consumer_failures (
    consumer    TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    failures    INTEGER NOT NULL,
    last_error  TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
