//! The orders service's integration tests: one binary, real NATS and PostgreSQL, Shopify simulated.

mod api;
mod crash;
mod get_orders;
mod scheduler;
// Some helpers of the stack (crashes, cancellations) serve only some tests.
#[allow(dead_code)]
mod support;
