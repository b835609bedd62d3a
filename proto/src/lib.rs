//! Shopbridge's protobuf messages and gRPC services.
//!
//! Packages are versioned (`shopbridge.common.v1`, `shopbridge.<service>.v1`); the generated modules mirror them, so
//! `shopbridge.common.v1.Money` is [`shopbridge::common::v1::Money`]. Every message implements [`prost::Name`], whose
//! full name is what the bus puts in the message-type header.

#![allow(clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/mod.rs"));

/// The encoded `FileDescriptorSet` of every package, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/shopbridge_descriptor.bin"));

pub use shopbridge::auth::v1 as auth;
pub use shopbridge::common::v1 as common;
pub use shopbridge::gateway::v1 as gateway;
pub use shopbridge::listings::v1 as listings;
pub use shopbridge::orders::v1 as orders;
pub use shopbridge::platform::v1 as platform;
pub use shopbridge::runs::v1 as runs;
pub use shopbridge::scheduler::v1 as scheduler;
mod redacted;
