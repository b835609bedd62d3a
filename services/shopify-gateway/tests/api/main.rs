//! shopify-gateway against real PostgreSQL and NATS (and, where Shopify is needed, the simulator).

mod budget;
mod commands;
mod documents;
mod export;
mod lookup;
mod replicas;
mod webhooks;
