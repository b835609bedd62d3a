//! Which replica serves which shops, and how many commands run at once: partition leases in NATS KV (`leases`) and
//! the per-shop, per-lane and replica-wide bounds on running commands (`in_flight`).

pub mod in_flight;
pub mod leases;
