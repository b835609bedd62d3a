//! The `shopbridge` binary against real services started in-process (real PostgreSQL and NATS, ephemeral ports):
//! each test runs the built binary as an operator would, with its own config file, and parses `-o json`.

mod channels;
mod errors;
mod helpers;
mod listings;
mod orders;
mod runs;
