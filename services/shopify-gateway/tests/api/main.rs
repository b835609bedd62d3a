//! shopify-gateway against real PostgreSQL and NATS (and, where Shopify is needed, the simulator).

mod access;
mod budget;
mod bulk_mutation;
mod bulk_start;
mod catalog_writes;
mod claims;
mod commands;
mod compliance;
mod crash;
mod documents;
mod drift;
mod export;
mod export_delta;
mod fairness;
mod fulfillments;
mod harness;
mod leases;
mod lookup;
mod orders;
mod outage;
mod priority;
mod replicas;
mod retention;
mod webhooks;
