//! Import Listings: a run requested by the scheduler asks the gateway for the store's catalog (a bulk export),
//! stages the batches as they arrive in any order, and once the export is complete applies them, each in one
//! transaction and several at once, matching every Shopify variant to the catalog by the master SKU.
//!
//! - [`handlers`]: the two consumers (run requests/cancellations; catalog batches/command results);
//! - [`runs`]: the run's state and its transitions;
//! - [`applier`], [`apply`]: the task that applies complete exports, batch by batch;
//! - [`matching`]: the rules (pure), [`problems`]: the run log's entries, [`reports`]: the run events.

pub mod applier;
pub mod apply;
pub mod handlers;
pub mod matching;
pub mod problems;
pub mod reports;
pub mod runs;
