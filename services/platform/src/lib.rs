//! Infrastructure shared by Shopbridge's services, and nothing else: no domain types, no service's tables.
//!
//! - [`config`]: layered settings with named failures;
//! - [`telemetry`]: logs, traces, trace context across NATS and gRPC;
//! - [`bus`]: typed protobuf messages over JetStream with a transactional outbox and an inbox;
//! - [`auth_token`]: verification of auth's access tokens (every service), signing for auth;
//! - [`grpc`], [`http`], [`error`]: server bootstrap, health/readiness/metrics, error-to-status mapping;
//! - [`service`], [`cli`]: the skeleton and command line every service binary shares;
//! - `testing` (feature `test-support`): a fresh database and NATS namespace per test.

pub mod auth_token;
pub mod bus;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod grpc;
pub mod http;
pub mod service;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;

pub use shopbridge_proto as proto;

/// rustls needs one process-wide crypto provider (ring) before any TLS client (reqwest, NATS, Postgres) is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
