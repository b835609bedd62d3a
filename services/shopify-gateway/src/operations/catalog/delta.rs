//! The delta export: products changed since a time, read page by page with `products_delta` (sorted by
//! updated_at) and mapped to the same `CatalogProduct` records as the bulk export. Every nested connection's page size
//! is a variable sized here, so a page stays under Shopify's 1,000-point single-query limit; a product with more
//! variants than a page holds is completed with follow-up calls for that product alone, and one with more nested
//! items than the gateway reads (media, metafields, variant metafields, inventory levels) is reported by name.

use std::collections::HashMap;

use serde_json::Value;
use shopbridge_proto::gateway as pb;

use super::{
    export::catalog_batches,
    records::{self, Child},
};
use crate::shopify::{
    budget::Lane,
    executor::{CallError, Executor, ShopCredentials},
    wire::{
        self, Page, Request,
        catalog::{DeltaProduct, DeltaVariant, ProductsDelta},
    },
};

/// Shopify's single-query cost limit.
const MAX_QUERY_COST: u32 = 1000;
/// Media read per product (Shopify allows up to 250 media per product; listings use the first few).
pub const MEDIA: u32 = 10;
/// Product metafields read per product.
pub const METAFIELDS: u32 = 20;
/// Metafields read per variant.
pub const VARIANT_METAFIELDS: u32 = 5;
/// Inventory levels read per variant: Shopify's Basic to Advanced plans allow 10 locations at most.
pub const LEVELS: u32 = 10;
/// Variants read with each product of a page; the rest come from follow-up calls.
pub const VARIANTS: u32 = 10;

/// What one variant node costs by Shopify's documented rules (objects 1, plain lists of objects 1, connections
/// 2 + first × node): the variant 1, selectedOptions 1, metafields 2 + n, inventoryItem 1 + measurement 1 + weight 1,
/// inventoryLevels 2 + levels × (1 + location 1 + quantities 1).
const fn variant_cost(variant_metafields: u32, levels: u32) -> u32 {
    1 + 1 + (2 + variant_metafields) + 3 + (2 + levels * 3)
}

/// What one product node costs: the product 1, options 1 + optionValues 1, media 2 + n × (1 + image 1),
/// metafields 2 + n, variants 2 + n × variant.
const fn product_cost(variants: u32) -> u32 {
    1 + 2
        + (2 + MEDIA * 2)
        + (2 + METAFIELDS)
        + 2
        + variants * variant_cost(VARIANT_METAFIELDS, LEVELS)
}

/// The requested cost of a `products_delta` call asking for `first` products with `variants` variants each.
pub const fn page_cost(first: u32, variants: u32) -> u32 {
    2 + first * product_cost(variants)
}

/// Products per page: as many as fit under the single-query limit.
pub const PAGE: u32 = (MAX_QUERY_COST - 2) / product_cost(VARIANTS);
/// Variants per follow-up call (one product per call).
pub const FOLLOW_UP_VARIANTS: u32 =
    (MAX_QUERY_COST - 2 - product_cost(0)) / variant_cost(VARIANT_METAFIELDS, LEVELS);
// Pages fit the limit, and neither is uselessly small.
const _: () = assert!(page_cost(PAGE, VARIANTS) <= MAX_QUERY_COST && PAGE >= 2);
const _: () =
    assert!(page_cost(1, FOLLOW_UP_VARIANTS) <= MAX_QUERY_COST && FOLLOW_UP_VARIANTS >= VARIANTS);

/// The products changed since a time, in Shopify's order (oldest change first), each once.
#[derive(Debug, Default)]
pub struct Delta {
    pub products: Vec<pb::CatalogProduct>,
    /// The latest `updatedAt` read, as Shopify wrote it; None when no product changed.
    pub high_water_mark: Option<prost_types::Timestamp>,
    /// Products published with less than Shopify holds (INCOMPLETE_PRODUCT).
    pub problems: Vec<pb::Problem>,
    pub calls: usize,
}

/// Shopify's search string for "changed at or after `since`"; None for a timestamp out of range. At or after, not
/// strictly after: `updatedAt` has whole seconds and the high-water mark is the latest one read, so a product changed
/// in that same second after its page was read would otherwise never come back. Re-reading the products of that one
/// second is harmless: consumers apply catalog batches idempotently by product id.
pub fn search_query(since: &prost_types::Timestamp) -> Option<String> {
    let t =
        chrono::DateTime::from_timestamp(since.seconds, since.nanos.clamp(0, 999_999_999) as u32)?;
    Some(format!("updated_at:>='{}'", t.format("%Y-%m-%dT%H:%M:%SZ")))
}

fn request(
    first: u32,
    after: Option<&str>,
    query: &str,
    variants: u32,
    variants_after: Option<&str>,
) -> ProductsDelta {
    ProductsDelta {
        first,
        after: after.map(str::to_string),
        query: query.to_string(),
        variants,
        variants_after: variants_after.map(str::to_string),
        media: MEDIA,
        metafields: METAFIELDS,
        variant_metafields: VARIANT_METAFIELDS,
        levels: LEVELS,
    }
}

/// Checks a product node's shape where the export pages on it (the rest is mapped with the bulk export's records).
fn checked(node: &Value) -> Result<DeltaProduct, CallError> {
    wire::decode(ProductsDelta::DOCUMENT, node.clone())
}

/// Reads every product changed after `since`.
pub async fn export(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    since: &prost_types::Timestamp,
) -> Result<Delta, CallError> {
    let query = search_query(since).ok_or_else(|| CallError::Fatal {
        kind: crate::shopify::FatalKind::InvalidRequest,
        message: "updated_since is out of range".into(),
    })?;
    let mut delta = Delta::default();
    // A product changed while the export runs moves to the end of Shopify's order and comes again: the later read
    // replaces the earlier one in place.
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut latest: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut after: Option<String> = None;
    loop {
        let page = request(PAGE, after.as_deref(), &query, VARIANTS, None);
        delta.calls += 1;
        let cost = f64::from(page_cost(PAGE, VARIANTS));
        let connection = executor.send(shop, lane, &page, cost).await?.products;
        for node in &connection.nodes {
            let shape = checked(node)?;
            let mut product = records::product(ProductsDelta::DOCUMENT, node.clone())?;
            let mut incomplete = Vec::new();
            if shape.media.page_info.has_next_page {
                incomplete.push(format!("more than {MEDIA} media"));
            }
            if shape.metafields.page_info.has_next_page {
                incomplete.push(format!("more than {METAFIELDS} metafields"));
            }
            for child in nodes(&node["media"]).chain(nodes(&node["metafields"])) {
                match records::child(ProductsDelta::DOCUMENT, child.clone())? {
                    Some(Child::Image(image)) => product.images.push(image),
                    Some(Child::Metafield(metafield)) => product.metafields.push(metafield),
                    _ => {}
                }
            }
            variants(
                &node["variants"],
                &shape.variants,
                &mut product,
                &mut incomplete,
            )?;
            let mut cursor = shape.variants.page_info.next();
            while let Some(variants_after) = cursor {
                let (page, calls) =
                    follow_up(executor, shop, lane, &product.id, &variants_after).await?;
                delta.calls += calls;
                // The product was deleted meanwhile: what was read is all there is.
                cursor = page.as_ref().and_then(|(_, shape)| shape.page_info.next());
                if let Some((page, shape)) = page {
                    variants(&page, &shape, &mut product, &mut incomplete)?;
                }
            }
            if !incomplete.is_empty() {
                delta.problems.push(pb::Problem {
                    code: "INCOMPLETE_PRODUCT".into(),
                    message: format!(
                        "product {} has {}; it is published with what was read (use the full catalog export for it)",
                        product.id,
                        incomplete.join(", ")
                    ),
                    field: product.id.clone(),
                });
            }
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&product.updated_at) {
                let t = t.with_timezone(&chrono::Utc);
                latest = Some(latest.map_or(t, |l| l.max(t)));
            }
            product.variants.sort_by_key(|v| v.position);
            match at.get(&product.id) {
                Some(i) => delta.products[*i] = product,
                None => {
                    at.insert(product.id.clone(), delta.products.len());
                    delta.products.push(product);
                }
            }
        }
        match connection.page_info.next() {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    delta.high_water_mark = latest.map(|t| prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    });
    Ok(delta)
}

fn nodes(connection: &Value) -> impl Iterator<Item = &Value> {
    connection["nodes"].as_array().into_iter().flatten()
}

/// Adds a variants page's variants (`shape` is the same page, checked), with their metafields and quantities, to
/// `product`.
fn variants(
    connection: &Value,
    shape: &Page<DeltaVariant>,
    product: &mut pb::CatalogProduct,
    incomplete: &mut Vec<String>,
) -> Result<(), CallError> {
    const DOCUMENT: crate::shopify::documents::Document = ProductsDelta::DOCUMENT;
    for (node, checked) in nodes(connection).zip(&shape.nodes) {
        let Some(Child::Variant(mut variant)) = records::child(DOCUMENT, node.clone())? else {
            continue;
        };
        variant.metafields = nodes(&node["metafields"])
            .map(|m| records::metafield(DOCUMENT, m.clone()))
            .collect::<Result<_, _>>()?;
        let levels = &node["inventoryItem"]["inventoryLevels"];
        variant.quantities = nodes(levels)
            .map(|l| records::quantity(DOCUMENT, l.clone()))
            .collect::<Result<_, _>>()?;
        if checked.metafields.page_info.has_next_page {
            incomplete.push(format!(
                "more than {VARIANT_METAFIELDS} metafields on variant {}",
                variant.id
            ));
        }
        if checked
            .inventory_item
            .inventory_levels
            .page_info
            .has_next_page
        {
            incomplete.push(format!(
                "more than {LEVELS} inventory levels on variant {}",
                variant.id
            ));
        }
        product.variants.push(variant);
    }
    Ok(())
}

/// The next page of one product's variants (as read, and checked); None when the product is gone.
async fn follow_up(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    product_id: &str,
    variants_after: &str,
) -> Result<(Option<(Value, Page<DeltaVariant>)>, usize), CallError> {
    // Product ids are numbers in a gid; the search takes the number.
    let number = product_id.rsplit('/').next().unwrap_or_default();
    let page = request(
        1,
        None,
        &format!("id:{number}"),
        FOLLOW_UP_VARIANTS,
        Some(variants_after),
    );
    let cost = f64::from(page_cost(1, FOLLOW_UP_VARIANTS));
    let data = executor.send(shop, lane, &page, cost).await?;
    for node in data.products.nodes {
        if node["id"] == product_id {
            let shape = checked(&node)?;
            return Ok((Some((node["variants"].clone(), shape.variants)), 1));
        }
    }
    Ok((None, 1))
}

/// Runs an ExportCatalogDelta command: the result and the CatalogBatch events to publish before it. A failed call
/// becomes the result's problem through `call_problem`, the command handler's one mapping of call errors.
pub async fn run(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    call_problem: fn(&CallError) -> pb::Problem,
    command: &pb::Command,
    request: &pb::ExportCatalogDelta,
    mut result: pb::CommandResult,
) -> (pb::CommandResult, Vec<pb::CatalogBatch>) {
    use pb::command_result::Status;
    let Some(since) = request
        .updated_since
        .as_ref()
        .filter(|t| search_query(t).is_some())
    else {
        result.status = Status::Failed as i32;
        result.problems.push(pb::Problem {
            code: "INVALID_REQUEST".into(),
            message: "ExportCatalogDelta needs updated_since (a time between years 1 and 9999)"
                .into(),
            field: "updated_since".into(),
        });
        return (result, Vec::new());
    };
    match export(executor, shop, lane, since).await {
        Ok(delta) => {
            let products = delta.products.len() as u32;
            let batches = catalog_batches(command, delta.products);
            result.calls = delta.calls as u32;
            result.status = if delta.problems.is_empty() {
                Status::Succeeded
            } else {
                Status::Partial
            } as i32;
            result.problems = delta.problems;
            result.result = Some(pb::command_result::Result::CatalogDeltaExported(
                pb::CatalogDeltaExported {
                    products,
                    batches: batches.len() as u32,
                    high_water_mark: Some(delta.high_water_mark.unwrap_or(*since)),
                },
            ));
            (result, batches)
        }
        Err(e) => {
            result.status = Status::Failed as i32;
            result.problems.push(call_problem(&e));
            (result, Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_fit_under_the_single_query_limit() {
        assert!(
            page_cost(PAGE, VARIANTS) <= 1000,
            "{}",
            page_cost(PAGE, VARIANTS)
        );
        assert!(
            page_cost(PAGE + 1, VARIANTS) > 1000,
            "a page is as big as allowed"
        );
        assert!(page_cost(1, FOLLOW_UP_VARIANTS) <= 1000);
    }

    #[test]
    fn the_search_is_at_or_after_the_time_in_utc_seconds() {
        let t = prost_types::Timestamp {
            seconds: 1_759_277_640,
            nanos: 500,
        };
        assert_eq!(
            search_query(&t).unwrap(),
            "updated_at:>='2025-10-01T00:14:00Z'"
        );
    }

    #[test]
    fn a_variant_with_more_levels_than_read_is_named() {
        let page = serde_json::json!({"pageInfo": {"hasNextPage": false, "endCursor": null},
            "nodes": [{"id": "gid://shopify/ProductVariant/2", "position": 1, "sku": "S", "barcode": null,
            "price": "1.00", "compareAtPrice": null, "selectedOptions": [],
            "inventoryItem": {"id": "gid://shopify/InventoryItem/3", "measurement": {"weight": null},
                "inventoryLevels": {"pageInfo": {"hasNextPage": true},
                    "nodes": [{"location": {"id": "gid://shopify/Location/1"}, "quantities": [{"name": "available", "quantity": 7}]}]}},
            "metafields": {"pageInfo": {"hasNextPage": false}, "nodes": [{"namespace": "custom", "key": "k", "type": "t", "value": "v"}]}}]});
        let mut product = pb::CatalogProduct::default();
        let mut incomplete = Vec::new();
        let shape: Page<DeltaVariant> = serde_json::from_value(page.clone()).unwrap();
        variants(&page, &shape, &mut product, &mut incomplete).unwrap();
        assert_eq!(product.variants[0].quantities[0].available, 7);
        assert_eq!(product.variants[0].metafields[0].key, "k");
        assert_eq!(
            incomplete,
            vec!["more than 10 inventory levels on variant gid://shopify/ProductVariant/2"]
        );
    }
}
