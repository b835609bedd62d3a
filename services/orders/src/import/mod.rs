//! Get Orders: a run requested by the scheduler asks the gateway for the orders updated in the settings' window
//! (FetchOrders), applies each OrderPage as it comes (in the consumer's transaction, so a redelivered page is applied
//! once), and finishes when the gateway's CommandResult has come and every page it announced is applied. Webhooks
//! (`orders/create`, `orders/updated`) ask the gateway for the orders changed since the webhook's order changed, and
//! those pages are applied by the same code, without a run.
//!
//! - [`handlers`]: the consumers (run requests; order pages and command results; webhooks; channel states);
//! - [`runs`]: the run's state and its transitions; [`apply`]: one order, the rules and the upsert;
//! - [`reports`]: the run events; [`commands`]: what is sent to the gateway.

pub mod apply;
pub mod commands;
pub mod handlers;
pub mod reports;
pub mod runs;
