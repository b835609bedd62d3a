//! The delta export over the bus against the simulator: only products changed after the time come back, complete
//! (variants beyond a page, quantities per location, metafields, images), each once, in pages sized under Shopify's
//! single-query limit; an empty delta and a re-sent command each give one result.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use shopbridge_gateway::{operations::catalog::delta as export_delta, shopify::documents};
use shopbridge_proto::gateway as pb;
use shopify_sim::client::SeedRequestJson;

use crate::harness::{Harness, consumed, succeeded};

fn delta_command(id: &str, shop: &str, since: Option<prost_types::Timestamp>) -> pb::Command {
    pb::Command {
        command_id: id.into(),
        shop_domain: shop.into(),
        channel_id: shop.into(),
        lane: pb::Lane::Import as i32,
        operation: Some(pb::command::Operation::ExportCatalogDelta(
            pb::ExportCatalogDelta {
                updated_since: since,
            },
        )),
    }
}

fn timestamp(rfc3339: &str) -> prost_types::Timestamp {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap();
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

fn exported(result: &pb::CommandResult) -> pb::CatalogDeltaExported {
    match &result.result {
        Some(pb::command_result::Result::CatalogDeltaExported(e)) => *e,
        other => panic!(
            "not a delta export result: {other:?} ({:?})",
            result.problems
        ),
    }
}

async fn batches_of(h: &Harness, command_id: &str) -> Vec<pb::CatalogBatch> {
    h.nats
        .events::<pb::CatalogBatch>()
        .await
        .into_iter()
        .filter(|b| b.command_id == command_id)
        .collect()
}

/// The store's products by id.
async fn store_products(h: &Harness, domain: &str) -> HashMap<String, Value> {
    h.read(domain, "products")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_string(), p.clone()))
        .collect()
}

/// Every exported product holds what the store holds: variants (ids, SKUs) and their total quantity.
fn assert_matches_store(product: &pb::CatalogProduct, stored: &Value) {
    assert_eq!(product.title, stored["title"].as_str().unwrap());
    let variants: HashSet<&str> = product.variants.iter().map(|v| v.id.as_str()).collect();
    let expected: HashSet<&str> = stored["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(variants, expected, "every variant of {}", product.id);
    assert_eq!(product.variants.len(), expected.len(), "no variant twice");
    for variant in &product.variants {
        let in_store = stored["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == variant.id.as_str())
            .unwrap();
        assert_eq!(variant.sku, in_store["sku"].as_str().unwrap_or_default());
        assert!(!variant.inventory_item_id.is_empty());
        let total: i64 = variant.quantities.iter().map(|q| q.available).sum();
        assert_eq!(
            Some(total),
            in_store["inventory_quantity"].as_i64(),
            "{}",
            variant.id
        );
    }
}

#[tokio::test]
async fn a_delta_export_has_only_the_products_changed_after_the_time_with_variants_quantities_metafields_and_images()
 {
    let domain = "delta-shop.myshopify.com";
    let seed = SeedRequestJson {
        products: 20,
        variants_per_product: 3,
        locations: 2,
        orders: 0,
        seed: 11,
    };
    let h = Harness::start(&[(domain, seed)]).await;
    let mut seeded: Vec<Value> = store_products(&h, domain).await.into_values().collect();
    seeded.sort_by_key(|p| p["updated_at"].as_str().unwrap().to_string());
    // Seeded products changed a minute apart: from the time of the 15th on (at or after it), the last six.
    let since = seeded[14]["updated_at"].as_str().unwrap().to_string();
    let old = seeded[2]["id"].as_str().unwrap().to_string();
    let variant = seeded[2]["variants"][0]["id"].as_str().unwrap().to_string();
    // An old product changes now: new metafields and an image, and a metafield on one of its variants.
    let changed = h
        .graphql(
            domain,
            "mutation($id: ID!, $input: ProductSetInput!) { productSet(identifier: {id: $id}, input: $input) { product { id } userErrors { message } } }",
            json!({"id": old, "input": {
                "metafields": [{"namespace": "custom", "key": "material", "type": "single_line_text_field", "value": "linen"}],
                "files": [{"originalSource": "https://cdn.example.com/linen.jpg", "alt": "Linen shirt", "contentType": "IMAGE"}],
            }}),
        )
        .await;
    assert_eq!(changed["productSet"]["userErrors"], json!([]), "{changed}");
    let set = h
        .graphql(
            domain,
            "mutation($m: [MetafieldsSetInput!]!) { metafieldsSet(metafields: $m) { userErrors { message } } }",
            json!({"m": [{"ownerId": variant, "namespace": "custom", "key": "fit", "type": "single_line_text_field", "value": "slim"}]}),
        )
        .await;
    assert_eq!(set["metafieldsSet"]["userErrors"], json!([]), "{set}");

    h.send(&delta_command("delta-1", domain, Some(timestamp(&since))))
        .await;
    let result = h.result_of("delta-1").await;
    assert!(succeeded(&result), "{:?}", result.problems);

    let store = store_products(&h, domain).await;
    let batches = batches_of(&h, "delta-1").await;
    let products: Vec<&pb::CatalogProduct> = batches.iter().flat_map(|b| &b.products).collect();
    let ids: HashSet<&str> = products.iter().map(|p| p.id.as_str()).collect();
    let mut expected: HashSet<&str> = seeded[14..]
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    expected.insert(&old);
    assert_eq!(
        ids, expected,
        "only the products changed at or after {since}"
    );
    assert_eq!(products.len(), expected.len(), "each once");
    let summary = exported(&result);
    assert_eq!(summary.products as usize, expected.len());
    assert_eq!(summary.batches as usize, batches.len());
    for product in &products {
        assert_matches_store(product, &store[&product.id]);
        assert_eq!(
            product.variants[0].quantities.len(),
            2,
            "one quantity per location"
        );
    }
    let changed = products.iter().find(|p| p.id == old).unwrap();
    assert_eq!(
        changed
            .metafields
            .iter()
            .map(|m| (m.key.as_str(), m.value.as_str()))
            .collect::<Vec<_>>(),
        vec![("material", "linen")]
    );
    assert_eq!(changed.images.len(), 1);
    assert_eq!(changed.images[0].url, "https://cdn.example.com/linen.jpg");
    assert_eq!(changed.images[0].alt_text, "Linen shirt");
    let fitted = changed.variants.iter().find(|v| v.id == variant).unwrap();
    assert_eq!(fitted.metafields.len(), 1);
    assert_eq!(fitted.metafields[0].value, "slim");
    // The changed product is the latest: its time is the next delta's starting point.
    let latest = store[&old]["updated_at"].as_str().unwrap();
    assert_eq!(summary.high_water_mark, Some(timestamp(latest)));
    h.finish().await;
}

#[tokio::test]
async fn a_delta_bigger_than_a_page_comes_in_several_pages_with_every_product_and_variant_once() {
    let domain = "delta-pages.myshopify.com";
    let seed = SeedRequestJson {
        products: 7,
        variants_per_product: 2,
        locations: 1,
        orders: 0,
        seed: 12,
    };
    let h = Harness::start(&[(domain, seed)]).await;
    // One product with more variants than a page reads per product: completed with follow-up calls.
    let wide = SeedRequestJson {
        products: 1,
        variants_per_product: 3 * export_delta::VARIANTS as usize - 5,
        locations: 1,
        orders: 0,
        seed: 13,
    };
    h.f.client.seed(domain, &wide).await.unwrap();

    h.send(&delta_command(
        "delta-pages",
        domain,
        Some(timestamp("2000-01-01T00:00:00Z")),
    ))
    .await;
    let result = h.result_of("delta-pages").await;
    assert!(succeeded(&result), "{:?}", result.problems);

    let store = store_products(&h, domain).await;
    let batches = batches_of(&h, "delta-pages").await;
    let products: Vec<&pb::CatalogProduct> = batches.iter().flat_map(|b| &b.products).collect();
    let ids: HashSet<&str> = products.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids.len(), 8);
    assert_eq!(products.len(), 8, "each product once");
    assert_eq!(ids, store.keys().map(String::as_str).collect());
    for product in &products {
        assert_matches_store(product, &store[&product.id]);
    }
    assert!(
        products
            .iter()
            .any(|p| p.variants.len() == wide.variants_per_product),
        "the wide product has all its variants"
    );
    let pages = 8u32.div_ceil(export_delta::PAGE);
    assert!(pages > 1, "the test needs more products than a page");
    let follow_ups = (wide.variants_per_product as u32 - export_delta::VARIANTS)
        .div_ceil(export_delta::FOLLOW_UP_VARIANTS);
    assert_eq!(result.calls, pages + follow_ups);
    let stats = h.stats(domain).await;
    assert_eq!(stats["throttled"], 0, "{stats}");
    h.finish().await;
}

/// The cost formula the gateway sizes its pages with is Shopify's: the simulator, which prices documents by
/// Shopify's rules, asks the same for a full page and a follow-up call, and both fit the 1,000-point limit.
#[tokio::test]
async fn a_delta_page_requests_what_the_gateway_expects_and_stays_under_the_single_query_limit() {
    let domain = "delta-cost.myshopify.com";
    let seed = SeedRequestJson {
        products: 3,
        variants_per_product: 2,
        locations: 1,
        orders: 0,
        seed: 14,
    };
    let h = Harness::start(&[(domain, seed)]).await;
    for (first, variants) in [
        (export_delta::PAGE, export_delta::VARIANTS),
        (1, export_delta::FOLLOW_UP_VARIANTS),
    ] {
        let variables = json!({
            "first": first, "query": "updated_at:>'2000-01-01T00:00:00Z'", "variants": variants,
            "media": export_delta::MEDIA, "metafields": export_delta::METAFIELDS,
            "variantMetafields": export_delta::VARIANT_METAFIELDS, "levels": export_delta::LEVELS,
        });
        let (status, body) =
            h.f.client
                .graphql(
                    domain,
                    &h.tokens[domain],
                    documents::PRODUCTS_DELTA.text,
                    variables,
                )
                .await
                .unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body["errors"].is_null(), "{body}");
        let requested = body["extensions"]["cost"]["requestedQueryCost"]
            .as_u64()
            .unwrap();
        assert_eq!(
            requested,
            u64::from(export_delta::page_cost(first, variants))
        );
        assert!(requested <= 1000);
    }
    h.finish().await;
}

#[tokio::test]
async fn an_empty_delta_answers_with_no_products_and_keeps_the_time() {
    let domain = "delta-empty.myshopify.com";
    let h = Harness::start(&[(domain, crate::harness::seed(4, 1, 0))]).await;
    let since = timestamp("2099-01-01T00:00:00Z");
    h.send(&delta_command("delta-empty", domain, Some(since)))
        .await;
    let result = h.result_of("delta-empty").await;
    assert!(succeeded(&result), "{:?}", result.problems);
    let summary = exported(&result);
    assert_eq!((summary.products, summary.batches), (0, 0));
    assert_eq!(summary.high_water_mark, Some(since));
    assert!(batches_of(&h, "delta-empty").await.is_empty());
    h.finish().await;
}

#[tokio::test]
async fn a_re_sent_delta_export_publishes_its_batches_once_and_its_result_per_send() {
    let domain = "delta-resent.myshopify.com";
    let h = Harness::start(&[(domain, crate::harness::seed(5, 1, 0))]).await;
    let command = delta_command(
        "delta-twice",
        domain,
        Some(timestamp("2000-01-01T00:00:00Z")),
    );
    h.send(&command).await;
    h.send_as(&command, "delta-twice-again").await;
    consumed(&h, &["delta-twice", "delta-twice-again"]).await;
    // Both deliveries are handled; once the outbox has sent everything, whatever either produced is on the stream.
    shopbridge_platform::testing::eventually("the outbox sent", || async {
        let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
        unsent == 0
    })
    .await;
    let results: Vec<pb::CommandResult> = h
        .results()
        .await
        .into_iter()
        .filter(|r| r.command_id == "delta-twice")
        .collect();
    // Each send is answered, with the same result; the export ran once.
    assert_eq!(results.len(), 2);
    assert_eq!(results[0], results[1]);
    assert_eq!(exported(&results[0]).products, 5);
    let batches = batches_of(&h, "delta-twice").await;
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].products.len(), 5);
    h.finish().await;
}

#[tokio::test]
async fn a_delta_export_without_a_time_fails_without_calling_shopify() {
    let domain = "delta-notime.myshopify.com";
    let h = Harness::start(&[(domain, crate::harness::seed(2, 1, 0))]).await;
    h.send(&delta_command("delta-notime", domain, None)).await;
    let result = h.result_of("delta-notime").await;
    assert_eq!(result.status, pb::command_result::Status::Failed as i32);
    assert_eq!(crate::harness::codes(&result), vec!["INVALID_REQUEST"]);
    assert_eq!(result.calls, 0);
    h.finish().await;
}

#[tokio::test]
async fn a_product_with_more_media_than_a_page_reads_is_published_and_named_in_a_problem() {
    let domain = "delta-media.myshopify.com";
    let h = Harness::start(&[(domain, crate::harness::seed(2, 1, 0))]).await;
    let store = store_products(&h, domain).await;
    let id = store.keys().min().unwrap().clone();
    let files: Vec<Value> = (0..=export_delta::MEDIA)
        .map(|i| json!({"originalSource": format!("https://cdn.example.com/{i}.jpg"), "contentType": "IMAGE"}))
        .collect();
    let changed = h
        .graphql(
            domain,
            "mutation($id: ID!, $input: ProductSetInput!) { productSet(identifier: {id: $id}, input: $input) { userErrors { message } } }",
            json!({"id": id, "input": {"files": files}}),
        )
        .await;
    assert_eq!(changed["productSet"]["userErrors"], json!([]), "{changed}");

    h.send(&delta_command(
        "delta-media",
        domain,
        Some(timestamp("2000-01-01T00:00:00Z")),
    ))
    .await;
    let result = h.result_of("delta-media").await;
    assert_eq!(result.status, pb::command_result::Status::Partial as i32);
    assert_eq!(crate::harness::codes(&result), vec!["INCOMPLETE_PRODUCT"]);
    assert_eq!(result.problems[0].field, id);
    let batches = batches_of(&h, "delta-media").await;
    let products: Vec<&pb::CatalogProduct> = batches.iter().flat_map(|b| &b.products).collect();
    assert_eq!(products.len(), 2, "the incomplete product is published too");
    let wide = products.iter().find(|p| p.id == id).unwrap();
    assert_eq!(wide.images.len(), export_delta::MEDIA as usize);
    h.finish().await;
}
