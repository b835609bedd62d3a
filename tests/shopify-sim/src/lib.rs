//! Shopify Admin API simulator (issue 3): Shopify's GraphQL Admin API (validated against the
//! vendored 2025-10 schema + 2026-10 delta, cost-based throttling, the channel operations), OAuth, webhooks,
//! bulk operations and fault injection, plus a `/_sim/` control API. See README.md.

pub mod bucket;
pub mod bulk;
pub mod client;
pub mod clock;
pub mod control;
pub mod cost;
pub mod exec;
pub mod faults;
pub mod graphql;
pub mod hmac;
pub mod model;
pub mod oauth;
pub mod order_model;
pub mod routes;
pub mod schema;
pub mod search;
pub mod seed;
pub mod sim;
pub mod tls;
pub mod webhooks;

pub use bucket::Plan;
pub use client::SimClient;
pub use clock::Clock;
pub use faults::FaultConfig;
pub use seed::SeedRequest;
pub use sim::{SimConfig, SimHandle, Simulator, Stats};
