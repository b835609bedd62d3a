//! Publishing products to sales channels: one `publishablePublish` per product, with every publication.

use shopbridge_proto::gateway as pb;

use super::{answered, count_applied, finish};
use crate::{
    bulk::Writer,
    operations::{MUTATION_COST, run_calls},
    outcome::{Outcome, invalid},
    shopify::wire::{
        UserError,
        catalog::{PublicationInput, Publish},
    },
};

/// Publishes each product to every publication: one publishablePublish per product.
pub async fn publish_products(w: &Writer<'_>, publish: &pb::PublishProducts) -> Outcome {
    let mut outcome = Outcome::default();
    let publications: Vec<&str> = publish.publication_ids.iter().map(|p| p.trim()).collect();
    let bad_publication = publications
        .iter()
        .position(|p| !p.starts_with("gid://shopify/Publication/"));
    if publish.product_ids.is_empty() || publications.is_empty() || bad_publication.is_some() {
        let problem = match bad_publication {
            Some(i) => UserError::new(
                "INVALID_REQUEST",
                &["publication_ids", &i.to_string()],
                format!(
                    "{:?} is not a publication id (gid://shopify/Publication/<id>)",
                    publications[i]
                ),
            ),
            None => UserError::new(
                "INVALID_REQUEST",
                &["product_ids"],
                "name at least one product and one publication",
            ),
        };
        outcome.user_errors.push(problem);
        return finish(outcome, 0);
    }
    let input: Vec<PublicationInput> = publications
        .iter()
        .map(|p| PublicationInput {
            publication_id: p.to_string(),
        })
        .collect();
    let mut items = Vec::new();
    let mut requests = Vec::new();
    for (i, product) in publish.product_ids.iter().enumerate() {
        let product = product.trim();
        if !product.starts_with("gid://shopify/Product/") {
            outcome.user_errors.push(invalid(
                "product_ids",
                i,
                &[],
                "INVALID",
                format!("{product:?} is not a product id (gid://shopify/Product/<id>)"),
            ));
            continue;
        }
        items.push(i);
        requests.push(Publish {
            id: product.to_string(),
            input: input.clone(),
        });
    }
    let results = run_calls(w.executor, w.shop, w.lane, requests, MUTATION_COST).await;
    let by_item = results.into_iter().map(|(n, r)| (items[n], r)).collect();
    let answers: Vec<_> = answered(by_item, &mut outcome)
        .into_iter()
        .map(|(i, data)| {
            let errors = data
                .publishable_publish
                .map(|p| p.user_errors)
                .unwrap_or_default();
            (i, errors)
        })
        .collect();
    let written = count_applied(answers, "product_ids", &mut outcome);
    finish(outcome, written)
}
