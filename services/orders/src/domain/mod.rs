//! The orders domain: settings and mapping per channel, the order as we store it, and the rules of Get Orders.

pub mod mapping;
pub mod order;
pub mod rules;
pub mod settings;
