//! Product upserts: `productSet` (synchronous) one product per call, or one bulk mutation of them above the
//! threshold. A product is created by handle, never anonymously, so a re-sent command updates what its first run
//! created.

use shopbridge_proto::gateway as pb;

mod input;

pub use self::input::{MAX_OPTIONS, MAX_VARIANTS, barcode_input, product_set};
use super::{answered, finish};
use crate::{
    bulk::{
        Writer,
        mutation::{Stopped, line_data, run_bulk_mutation},
    },
    operations::run_costed,
    outcome::{Outcome, renamed},
    shopify::wire::{
        self, Request, UserError,
        catalog::{ProductSet, ProductSetData, ProductSetPayload, SetProduct},
    },
};

/// The product productSet wrote.
fn upserted(index: usize, product: SetProduct) -> pb::UpsertedProduct {
    pb::UpsertedProduct {
        index: index as u32,
        product_id: product.id,
        handle: product.handle,
        variants: product
            .variants
            .nodes
            .into_iter()
            .map(|v| pb::UpsertedVariant {
                sku: v.sku.unwrap_or_default(),
                variant_id: v.id,
                inventory_item_id: v.inventory_item.id,
            })
            .collect(),
    }
}

/// Creates or updates products: productSet one product per call, or one bulk mutation above the threshold.
pub async fn upsert_products(
    w: &Writer<'_>,
    upsert: &pb::UpsertProducts,
) -> (Option<pb::ProductsUpserted>, Outcome) {
    let mut outcome = Outcome::default();
    if upsert.products.is_empty() {
        outcome.user_errors.push(UserError::new(
            "INVALID_REQUEST",
            &["products"],
            "no product to upsert",
        ));
        return (None, finish(outcome, 0));
    }
    let mut lines = Vec::new();
    for (i, product) in upsert.products.iter().enumerate() {
        match product_set(i, product) {
            Ok((request, cost)) => lines.push((i, request, cost)),
            Err(errors) => outcome.user_errors.extend(errors),
        }
    }
    let mut result = pb::ProductsUpserted::default();
    // Per sent item: its index and productSet's payload (None: the call failed).
    let payloads: Vec<(usize, Option<ProductSetPayload>)> = if lines.len()
        > w.bulk_mutation_threshold
    {
        let variables = lines.iter().map(|(_, r, _)| wire::variables(r)).collect();
        match run_bulk_mutation(w, "products", ProductSet::DOCUMENT, variables, &mut outcome).await
        {
            Ok(done) => {
                result.bulk_operation_id = done.id.clone();
                lines
                    .iter()
                    .enumerate()
                    .map(|(line, (i, _, _))| {
                        let data: Option<ProductSetData> = line_data(
                            &done,
                            line,
                            ProductSet::DOCUMENT,
                            &mut outcome,
                            "products",
                            &[*i],
                        );
                        (*i, data.and_then(|d| d.product_set))
                    })
                    .collect()
            }
            Err(Stopped) => return (None, finish(outcome, 0)),
        }
    } else {
        // Each product costs what its variants make it cost.
        let (items, requests): (Vec<usize>, Vec<(ProductSet, f64)>) =
            lines.into_iter().map(|(i, r, cost)| (i, (r, cost))).unzip();
        let sent = run_costed(w.executor, w.shop, w.lane, requests).await;
        let by_item = sent.into_iter().map(|(n, r)| (items[n], r)).collect();
        answered(by_item, &mut outcome)
            .into_iter()
            .map(|(i, data)| (i, data.product_set))
            .collect()
    };
    for (i, payload) in payloads {
        let Some(payload) = payload else { continue };
        if payload.user_errors.is_empty() {
            if let Some(product) = payload.product {
                result.products.push(upserted(i, product));
            }
        } else {
            // productSet reports paths under `input`: they are put under the product instead.
            outcome
                .user_errors
                .extend(payload.user_errors.iter().map(|e| {
                    let under_input = e
                        .field
                        .as_ref()
                        .and_then(|f| f.first())
                        .is_some_and(|f| f == "input");
                    renamed("products", i, e, usize::from(under_input))
                }));
        }
    }
    let written = result.products.len();
    (Some(result), finish(outcome, written))
}
