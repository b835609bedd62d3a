//! Variant lookup by SKU and barcode against the simulator: exact matches only, every variant sharing a value, and
//! values Shopify's search cannot express reported instead of searched.

use shopbridge_gateway::{
    operations::{
        lookup::{self, LookupField},
        pages,
    },
    shopify::{
        budget::Lane,
        wire::{access::Locations, catalog::Publications},
    },
};

use crate::budget::{fixture, shop};

#[tokio::test]
async fn variants_are_found_by_sku_and_by_barcode_exactly() {
    let f = fixture().await;
    let shop = shop(&f, "lookup-shop.myshopify.com", 60, 2, 0).await;
    let products = f.client.read(&shop.domain, "products").await.unwrap();
    let variants: Vec<&serde_json::Value> = products
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["variants"].as_array().unwrap())
        .collect();
    let wanted: Vec<String> = variants
        .iter()
        .take(70)
        .map(|v| v["sku"].as_str().unwrap().to_string())
        .collect();
    let mut values = wanted.clone();
    values.push("NO-SUCH-SKU".into());
    values.push("QUOTE\"D".into());

    let (matches, outcome) =
        lookup::lookup_variants(&f.executor, &shop, Lane::Sync, LookupField::Sku, &values).await;
    assert!(outcome.failed_calls.is_empty());
    assert_eq!(outcome.calls, 2, "70 values in searches of 50");
    let mut found: Vec<String> = matches.iter().map(|m| m.sku.clone()).collect();
    found.sort();
    let mut expected = wanted.clone();
    expected.sort();
    assert_eq!(found, expected);
    for m in &matches {
        let stored = variants
            .iter()
            .find(|v| v["id"] == m.variant_id.as_str())
            .expect("a real variant");
        assert_eq!(stored["inventory_item_id"], m.inventory_item_id.as_str());
    }
    assert_eq!(outcome.user_errors.len(), 1);
    assert_eq!(outcome.user_errors[0].code(), "UNSEARCHABLE_VALUE");

    let barcode = variants[5]["barcode"].as_str().unwrap().to_string();
    let (by_barcode, _) = lookup::lookup_variants(
        &f.executor,
        &shop,
        Lane::Sync,
        LookupField::Barcode,
        std::slice::from_ref(&barcode),
    )
    .await;
    assert_eq!(by_barcode.len(), 1);
    assert_eq!(
        by_barcode[0].variant_id,
        variants[5]["id"].as_str().unwrap()
    );
    assert_eq!(f.client.stats(&shop.domain).await.unwrap()["throttled"], 0);
}

#[tokio::test]
async fn locations_and_publications_are_listed_across_pages() {
    let f = fixture().await;
    let shop = shop(&f, "locations-shop.myshopify.com", 1, 1, 0).await;
    let locations = pages::all_nodes(
        &f.executor,
        &shop,
        Lane::Publish,
        Locations,
        |d| d.locations,
        1,
        1.0,
    )
    .await
    .unwrap();
    assert_eq!(
        locations.len(),
        1,
        "the seeded shop has one location: {locations:?}"
    );
    assert!(locations[0].id.starts_with("gid://shopify/Location/"));

    let publications = pages::all_nodes(
        &f.executor,
        &shop,
        Lane::Publish,
        Publications,
        |d| d.publications,
        1,
        2.0,
    )
    .await
    .unwrap();
    assert!(
        publications.len() >= 2,
        "one page of one each, followed to the end: {publications:?}"
    );
    let ids: std::collections::HashSet<&str> = publications.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids.len(), publications.len(), "no publication twice");
    assert!(publications.iter().all(|p| {
        !p.catalog
            .as_ref()
            .map(|c| c.title.as_str())
            .unwrap_or_default()
            .is_empty()
    }));
}
