//! Finding Shopify's variants by SKU or barcode, to link catalog variants to them.

use std::collections::HashSet;

use crate::{
    outcome::Outcome,
    shopify::{
        budget::Lane,
        executor::{Executor, ShopCredentials},
        wire::{UserError, inventory::VariantsLookup},
    },
};

/// Identifiers searched per `productVariants` call (the query string stays short).
pub const LOOKUP_BATCH: usize = 50;
/// Variants per page of a lookup: 2 + 100 x 3 objects = 302 points.
const LOOKUP_PAGE: u32 = 100;

/// Which variant field a lookup searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupField {
    Sku,
    Barcode,
}

/// A Shopify variant found by SKU or barcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantMatch {
    pub variant_id: String,
    pub product_id: String,
    pub inventory_item_id: String,
    pub sku: String,
    pub barcode: String,
}

/// Finds the variants whose SKU (or barcode) is one of `values`. Several variants may share a value: all are
/// returned, and telling them apart is the caller's business. A value Shopify's search cannot express (a double
/// quote) is reported as a problem instead of being searched.
pub async fn lookup_variants(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    field: LookupField,
    values: &[String],
) -> (Vec<VariantMatch>, Outcome) {
    let name = match field {
        LookupField::Sku => "sku",
        LookupField::Barcode => "barcode",
    };
    let mut outcome = Outcome::default();
    let (searchable, unsearchable): (Vec<&String>, Vec<&String>) = values
        .iter()
        .filter(|v| !v.is_empty())
        .partition(|v| !v.contains('"'));
    outcome
        .user_errors
        .extend(unsearchable.into_iter().map(|v| {
            UserError::new(
                "UNSEARCHABLE_VALUE",
                &[name],
                format!(
                    "{name} {v:?} contains a double quote, which Shopify's search cannot express"
                ),
            )
        }));
    let wanted: HashSet<&str> = searchable.iter().map(|v| v.as_str()).collect();
    let mut matches = Vec::new();
    for (i, batch) in searchable.chunks(LOOKUP_BATCH).enumerate() {
        let query = batch
            .iter()
            .map(|v| format!("{name}:\"{v}\""))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut after: Option<String> = None;
        loop {
            let request = VariantsLookup {
                first: LOOKUP_PAGE,
                after,
                query: query.clone(),
            };
            outcome.calls += 1;
            let cost = 2.0 + f64::from(LOOKUP_PAGE) * 3.0;
            let page = match executor.send(shop, lane, &request, cost).await {
                Ok(data) => data.product_variants,
                Err(e) => {
                    outcome.failed_calls.push((i, e));
                    break;
                }
            };
            for node in page.nodes {
                let found = VariantMatch {
                    variant_id: node.id,
                    product_id: node.product.id,
                    inventory_item_id: node.inventory_item.id,
                    sku: node.sku.unwrap_or_default(),
                    barcode: node.barcode.unwrap_or_default(),
                };
                // Shopify's search is by token and case-insensitive: keep exact matches only.
                let value = match field {
                    LookupField::Sku => &found.sku,
                    LookupField::Barcode => &found.barcode,
                };
                if wanted.contains(value.as_str()) {
                    matches.push(found);
                }
            }
            match page.page_info.next() {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
    }
    (matches, outcome)
}
