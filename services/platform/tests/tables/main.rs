//! The platform's own tables against real PostgreSQL (and, for the relay, NATS JetStream): the platform migration set
//! on fresh databases and on databases migrated by the services' former copies of it; the outbox relay's limits.
//! Each test has its own database and NATS namespace.

mod migrations;
mod relay;
