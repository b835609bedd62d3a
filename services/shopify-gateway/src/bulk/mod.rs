//! Bulk operations: starting one so that a crash never starts it twice (`start`), bulk queries and their result files
//! (`query`), bulk mutations of many inputs as one job (`mutation`) and the staged upload of their variables
//! (`upload`). The operations that use them (catalog export, orders, catalog writes) live in `operations`.

pub mod mutation;
pub mod query;
pub mod start;
pub mod upload;

use sqlx::PgPool;

use crate::shopify::{
    budget::Lane,
    executor::{Executor, ShopCredentials},
};

/// What one write command needs: the executor (budget), and for bulk mutations the gateway's database (the
/// operation is recorded there) and the client for Shopify's storage (uploads and result files).
pub struct Writer<'a> {
    pub executor: &'a Executor,
    pub pool: &'a PgPool,
    pub download: &'a reqwest::Client,
    pub shop: &'a ShopCredentials,
    pub lane: Lane,
    pub command_id: &'a str,
    /// Items above which product upserts and metafield writes go as one bulk mutation.
    pub bulk_mutation_threshold: usize,
    /// The largest JSONL of variables one bulk mutation is sent with; more is split into several.
    pub bulk_upload_max_bytes: usize,
}
