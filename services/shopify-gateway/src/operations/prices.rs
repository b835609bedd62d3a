//! Variant prices: one `productVariantsBulkUpdate` per product. Prices are absolute values, so a call sent twice
//! changes nothing the second time.

use super::{MUTATION_COST, run_calls};
use crate::{
    outcome::Outcome,
    shopify::{
        budget::Lane,
        executor::{Executor, ShopCredentials},
        wire::inventory::{VariantPriceInput, VariantsUpdatePrices},
    },
};

/// A product's new variant prices (`compare_at_price` None clears it).
#[derive(Debug, Clone)]
pub struct ProductPrices {
    pub product_id: String,
    pub variants: Vec<VariantPrice>,
}

#[derive(Debug, Clone)]
pub struct VariantPrice {
    pub variant_id: String,
    pub price: String,
    pub compare_at_price: Option<String>,
}

/// Updates variant prices, one `productVariantsBulkUpdate` per product.
pub async fn update_variant_prices(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    products: &[ProductPrices],
) -> Outcome {
    let requests = products
        .iter()
        .map(|product| VariantsUpdatePrices {
            product_id: product.product_id.clone(),
            variants: product
                .variants
                .iter()
                .map(|v| VariantPriceInput {
                    id: v.variant_id.clone(),
                    price: v.price.clone(),
                    compare_at_price: v.compare_at_price.clone(),
                })
                .collect(),
        })
        .collect();
    let mut outcome = Outcome::default();
    for (i, result) in run_calls(executor, shop, lane, requests, MUTATION_COST).await {
        let errors = result.map(|data| {
            data.product_variants_bulk_update
                .map(|p| p.user_errors)
                .unwrap_or_default()
        });
        outcome.absorb(i, errors);
    }
    outcome
}
