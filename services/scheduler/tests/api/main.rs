//! The scheduler against real PostgreSQL and NATS: each test starts one or two replicas in-process on ephemeral
//! ports with a fresh database and NATS namespace, drives channels with auth's events, stands in for the owner of
//! the operations on the bus, and talks to the scheduler over gRPC with tokens signed like auth's.

mod auth;
mod firing;
mod helpers;
mod runs;
mod schedules;
