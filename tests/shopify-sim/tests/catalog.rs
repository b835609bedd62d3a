//! Catalog reads: pagination with cursors, search syntax, node/nodes, shop, locations, publications.

mod common;
use serde_json::json;

#[tokio::test]
async fn products_paginate_with_cursors() {
    let t = common::start(Some(common::small_seed())).await;
    let q = "query P($after: String) { products(first: 5, after: $after) { pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { id } } } }";
    let mut seen = Vec::new();
    let mut after = serde_json::Value::Null;
    let mut pages = 0;
    loop {
        let d = t.ok(q, json!({"after": after})).await;
        let c = &d["products"];
        for e in c["edges"].as_array().unwrap() {
            seen.push(e["node"]["id"].as_str().unwrap().to_string());
        }
        pages += 1;
        assert_eq!(c["pageInfo"]["hasPreviousPage"], pages > 1);
        if !c["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = c["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 12);
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), 12, "no product twice");
    assert!(
        seen.iter()
            .all(|id| id.starts_with("gid://shopify/Product/"))
    );
    // Without first/last: Shopify's error.
    let b = t.gql("{ products { nodes { id } } }", json!({})).await;
    assert_eq!(
        b["errors"][0]["message"],
        "you must provide one of first or last"
    );
}

#[tokio::test]
async fn search_syntax_filters() {
    let t = common::start(Some(common::small_seed())).await;
    let d = t.ok("{ productVariants(first: 10, query: \"sku:SKU-000003-0001\") { nodes { sku product { handle } } } }", json!({})).await;
    let nodes = d["productVariants"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["sku"], "SKU-000003-0001");
    assert_eq!(nodes[0]["product"]["handle"], "product-3");

    let d = t
        .ok(
            "{ products(first: 50, query: \"sku:SKU-000004-0002\") { nodes { handle } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["products"]["nodes"], json!([{"handle": "product-4"}]));

    // barcode of product 2 variant 1: 100000000000 + 2 × 10000 + 1
    let d = t
        .ok(
            "{ productVariants(first: 10, query: \"barcode:100000020001\") { nodes { sku } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        d["productVariants"]["nodes"],
        json!([{"sku": "SKU-000002-0001"}])
    );

    // Seeded products are dated 2025-10-01T00:00Z + n minutes.
    let d = t.ok("{ products(first: 50, query: \"updated_at:>'2025-10-01T00:09:30Z'\") { nodes { handle } } }", json!({})).await;
    assert_eq!(
        d["products"]["nodes"],
        json!([{"handle": "product-10"}, {"handle": "product-11"}])
    );

    let all = t.client.read(&t.shop, "products").await.unwrap();
    let drafts = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "DRAFT")
        .count();
    let d = t
        .ok(
            "{ products(first: 50, query: \"status:draft\") { nodes { status } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["products"]["nodes"].as_array().unwrap().len(), drafts);
    let d = t.ok("{ products(first: 50, query: \"status:active AND -status:draft\") { nodes { status } } }", json!({})).await;
    assert_eq!(
        d["products"]["nodes"].as_array().unwrap().len(),
        12 - drafts
    );

    let d = t.ok("{ inventoryItems(first: 5, query: \"sku:SKU-000001-0000\") { nodes { sku tracked } } }", json!({})).await;
    assert_eq!(
        d["inventoryItems"]["nodes"],
        json!([{"sku": "SKU-000001-0000", "tracked": true}])
    );
}

#[tokio::test]
async fn node_nodes_shop_locations_publications() {
    let t = common::start(Some(common::small_seed())).await;
    let p = t.first_product().await;
    let v = &p["variants"]["nodes"][0];
    let d = t
        .ok(
            "query N($id: ID!, $ids: [ID!]!) { node(id: $id) { __typename id ... on Product { title } } nodes(ids: $ids) { __typename id } }",
            json!({"id": p["id"], "ids": [v["id"], "gid://shopify/Product/1", v["inventoryItem"]["id"]]}),
        )
        .await;
    assert_eq!(d["node"]["__typename"], "Product");
    assert_eq!(d["node"]["id"], p["id"]);
    assert_eq!(d["nodes"][0]["__typename"], "ProductVariant");
    assert!(d["nodes"][1].is_null());
    assert_eq!(d["nodes"][2]["__typename"], "InventoryItem");

    let d = t
        .ok(
            "{ shop { name myshopifyDomain currencyCode plan { displayName shopifyPlus } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["shop"]["myshopifyDomain"], "test-shop.myshopify.com");
    assert_eq!(d["shop"]["plan"]["shopifyPlus"], true);

    let d = t
        .ok(
            "{ locations(first: 10) { nodes { id name isActive isPrimary } } }",
            json!({}),
        )
        .await;
    let locs = d["locations"]["nodes"].as_array().unwrap();
    assert_eq!(locs.len(), 2);
    assert_eq!(locs.iter().filter(|l| l["isPrimary"] == true).count(), 1);

    let d = t
        .ok(
            "{ publications(first: 10) { nodes { id autoPublish catalog { title } } } }",
            json!({}),
        )
        .await;
    let pubs = d["publications"]["nodes"].as_array().unwrap();
    assert_eq!(pubs[0]["catalog"]["title"], "Online Store");

    // Inventory levels and quantities agree with the store.
    let inv = t.client.read(&t.shop, "inventory").await.unwrap();
    let item = v["inventoryItem"]["id"].as_str().unwrap();
    let want: i64 = inv
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["inventory_item_id"] == item)
        .map(|l| l["quantities"]["available"].as_i64().unwrap())
        .sum();
    let d = t
        .ok(
            "query V($id: ID!) { productVariant(id: $id) { inventoryQuantity price } }",
            json!({"id": v["id"]}),
        )
        .await;
    assert_eq!(d["productVariant"]["inventoryQuantity"], want);
}

#[tokio::test]
async fn seeding_is_deterministic() {
    let a = common::start(Some(common::small_seed())).await;
    let b = common::start(Some(common::small_seed())).await;
    assert_eq!(
        a.client.read(&a.shop, "products").await.unwrap(),
        b.client.read(&b.shop, "products").await.unwrap()
    );
    assert_eq!(
        a.client.read(&a.shop, "orders").await.unwrap(),
        b.client.read(&b.shop, "orders").await.unwrap()
    );
    assert_eq!(
        a.client.read(&a.shop, "inventory").await.unwrap(),
        b.client.read(&b.shop, "inventory").await.unwrap()
    );
}

#[tokio::test]
async fn response_fields_follow_the_query_order() {
    let t = common::start(None).await;
    let r = t
        .client
        .shop_http(&t.shop)
        .post(t.client.graphql_url(&t.shop, "2026-10"))
        .header("X-Shopify-Access-Token", &t.token)
        .json(&json!({"query": "{ shop { name } locations(first: 1) { nodes { name id } } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-shopify-api-version"], "2026-10");
    // A version no longer served (2025-10 ended 2026-10-16) falls forward to the oldest one served, and says so.
    let old = t
        .client
        .shop_http(&t.shop)
        .post(t.client.graphql_url(&t.shop, "2025-10"))
        .header("X-Shopify-Access-Token", &t.token)
        .json(&json!({"query": "{ shop { name } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.headers()["x-shopify-api-version"], "2026-01");
    let text = r.text().await.unwrap();
    let pos = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} in {text}"));
    assert!(pos("\"data\"") < pos("\"extensions\""));
    assert!(pos("\"shop\"") < pos("\"locations\""));
    assert!(pos("\"name\":\"Shop location\"") < pos("\"id\":\"gid://shopify/Location/"));
}

#[tokio::test]
async fn sorted_cursors_survive_updates_under_them() {
    let t = common::start(Some(common::small_seed())).await;
    let q = "query P($after: String) { products(first: 5, after: $after, sortKey: UPDATED_AT) { pageInfo { hasNextPage endCursor } nodes { id handle } } }";
    let handles = |d: &serde_json::Value| -> Vec<String> {
        d["products"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["handle"].as_str().unwrap().to_string())
            .collect()
    };
    let p1 = t.ok(q, json!({"after": null})).await;
    assert_eq!(
        handles(&p1),
        [
            "product-0",
            "product-1",
            "product-2",
            "product-3",
            "product-4"
        ]
    );
    // The product under the cursor changes (and moves to the end of the UPDATED_AT order).
    let moved = p1["products"]["nodes"][4]["id"].clone();
    t.ok(
        "mutation T($id: ID!) { tagsAdd(id: $id, tags: [\"x\"]) { userErrors { message } } }",
        json!({"id": moved}),
    )
    .await;
    let p2 = t
        .ok(q, json!({"after": p1["products"]["pageInfo"]["endCursor"]}))
        .await;
    assert_eq!(
        handles(&p2),
        [
            "product-5",
            "product-6",
            "product-7",
            "product-8",
            "product-9"
        ]
    );
    let p3 = t
        .ok(q, json!({"after": p2["products"]["pageInfo"]["endCursor"]}))
        .await;
    assert_eq!(handles(&p3), ["product-10", "product-11", "product-4"]);
    assert_eq!(p3["products"]["pageInfo"]["hasNextPage"], false);
    // reverse walks the other way.
    let r = t
        .ok(
            "{ products(first: 2, sortKey: UPDATED_AT, reverse: true) { nodes { handle } } }",
            json!({}),
        )
        .await;
    assert_eq!(handles(&r), ["product-4", "product-11"]);
}
