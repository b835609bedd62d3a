//! The auth service against real PostgreSQL and NATS: each test starts the service in-process on ephemeral ports with
//! a fresh database and NATS namespace, and talks to it over gRPC and HTTP as a client would.

mod channels;
mod credentials;
mod helpers;
mod oauth;
mod scopes;
mod secrets;
mod tokens;
mod uninstall;
