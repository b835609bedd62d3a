//! shopify-gateway against real PostgreSQL and NATS (and, where Shopify is needed, the simulator).

mod access;
mod budget;
mod commands;
mod compliance;
mod crash;
mod documents;
mod export;
mod fulfillments;
mod harness;
mod lookup;
mod orders;
mod priority;
mod replicas;
mod webhooks;
