//! shopify-gateway against real PostgreSQL and NATS (and, where Shopify is needed, the simulator).

mod budget;
mod documents;
mod webhooks;
