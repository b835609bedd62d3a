//! The bus against real NATS JetStream and PostgreSQL: outbox, relay, consumer runner, inbox, dead letters and trace
//! context. Each test has its own database and NATS namespace.

mod consumer;
mod outages;
mod outbox;
mod retention;
mod support;
mod trace;
