//! Mutations with Shopify's semantics and userErrors.

mod common;
use serde_json::{Value, json};

const SET: &str = "mutation S($identifier: ProductSetIdentifiers, $input: ProductSetInput!) { productSet(identifier: $identifier, input: $input) { product { id handle options { name optionValues { name } } category { id fullName } variants(first: 50) { nodes { id sku price selectedOptions { name value } } } } userErrors { field message code } } }";

fn variant(size: &str, sku: &str) -> Value {
    json!({"optionValues": [{"optionName": "Size", "name": size}], "sku": sku, "price": "10.00"})
}

#[tokio::test]
async fn product_set_creates_replaces_and_enforces_limits() {
    let t = common::start(None).await;
    let input = json!({"title": "Rope Toy", "handle": "rope-toy", "category": "gid://shopify/Taxonomy/Category/ap-2-3-7",
        "productOptions": [{"name": "Size", "values": [{"name": "S"}, {"name": "M"}]}],
        "variants": [variant("S", "ROPE-S"), variant("M", "ROPE-M")]});
    let d = t
        .ok(
            SET,
            json!({"identifier": {"handle": "rope-toy"}, "input": input}),
        )
        .await;
    let p = &d["productSet"]["product"];
    assert_eq!(d["productSet"]["userErrors"], json!([]));
    assert_eq!(
        p["category"]["id"], "gid://shopify/TaxonomyCategory/ap-2-3-7",
        "old category GID form normalised"
    );
    assert_eq!(p["variants"]["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(p["variants"]["nodes"][0]["price"], "10.0");
    let id = p["id"].clone();

    // Same handle again, one variant: the variant list is replaced.
    let input = json!({"title": "Rope Toy", "productOptions": [{"name": "Size", "values": [{"name": "M"}]}], "variants": [variant("M", "ROPE-M2")]});
    let d = t
        .ok(
            SET,
            json!({"identifier": {"handle": "rope-toy"}, "input": input}),
        )
        .await;
    assert_eq!(d["productSet"]["product"]["id"], id, "upsert by handle");
    let skus: Vec<&str> = d["productSet"]["product"]["variants"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["ROPE-M2"]);
    let store = t.client.read(&t.shop, "products").await.unwrap();
    assert_eq!(store.as_array().unwrap().len(), 1);
    assert_eq!(store[0]["variants"].as_array().unwrap().len(), 1);

    let errs = |d: &Value| {
        d["productSet"]["userErrors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["code"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let four = json!({"title": "x", "productOptions": [{"name": "A", "values": [{"name": "1"}]}, {"name": "B", "values": [{"name": "1"}]}, {"name": "C", "values": [{"name": "1"}]}, {"name": "D", "values": [{"name": "1"}]}]});
    let d = t.ok(SET, json!({"input": four})).await;
    assert_eq!(errs(&d), ["OPTIONS_OVER_LIMIT"]);
    let d = t
        .ok(SET, json!({"input": {"title": "x".repeat(256)}}))
        .await;
    assert_eq!(
        d["productSet"]["userErrors"][0]["message"],
        "Title is too long (maximum is 255 characters)"
    );
    let d = t
        .ok(
            SET,
            json!({"input": {"title": "ok", "category": "gid://shopify/TaxonomyCategory/zz-404"}}),
        )
        .await;
    assert_eq!(
        d["productSet"]["userErrors"][0]["field"],
        json!(["input", "category"])
    );
    assert!(d["productSet"]["product"].is_null());
    let many: Vec<Value> = (0..2049)
        .map(|i| variant(&format!("V{i}"), &format!("S{i}")))
        .collect();
    let d = t.ok(SET, json!({"input": {"title": "big", "productOptions": [{"name": "Size", "values": [{"name": "V0"}]}], "variants": many}})).await;
    assert_eq!(errs(&d), ["VARIANTS_OVER_LIMIT"]);
    assert_eq!(
        t.client
            .read(&t.shop, "products")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1,
        "failed calls created nothing"
    );
}

#[tokio::test]
async fn variants_bulk_update_and_create() {
    let t = common::start(Some(common::small_seed())).await;
    let p = t.first_product().await;
    let v0 = p["variants"]["nodes"][0]["id"].clone();
    let upd = "mutation U($productId: ID!, $variants: [ProductVariantsBulkInput!]!) { productVariantsBulkUpdate(productId: $productId, variants: $variants) { productVariants { id price compareAtPrice } userErrors { field message code } } }";
    let d = t.ok(upd, json!({"productId": p["id"], "variants": [{"id": v0, "price": "18.99", "compareAtPrice": "24.99"}]})).await;
    assert_eq!(
        d["productVariantsBulkUpdate"]["productVariants"][0]["compareAtPrice"],
        "24.99"
    );
    // compareAtPrice null clears it; price left alone.
    let d = t
        .ok(
            upd,
            json!({"productId": p["id"], "variants": [{"id": v0, "compareAtPrice": null}]}),
        )
        .await;
    assert_eq!(
        d["productVariantsBulkUpdate"]["productVariants"][0],
        json!({"id": v0, "price": "18.99", "compareAtPrice": null})
    );
    // A variant of another product: error and nothing applied (allowPartialUpdates false).
    let other = t
        .ok(
            "{ products(first: 2) { nodes { variants(first: 1) { nodes { id } } } } }",
            json!({}),
        )
        .await;
    let foreign = other["products"]["nodes"][1]["variants"]["nodes"][0]["id"].clone();
    let d = t.ok(upd, json!({"productId": p["id"], "variants": [{"id": v0, "price": "1.00"}, {"id": foreign, "price": "2.00"}]})).await;
    assert_eq!(
        d["productVariantsBulkUpdate"]["userErrors"][0]["code"],
        "MUST_BE_FOR_THIS_PRODUCT"
    );
    let d = t
        .ok(
            "query V($id: ID!) { productVariant(id: $id) { price } }",
            json!({"id": v0}),
        )
        .await;
    assert_eq!(d["productVariant"]["price"], "18.99");

    let create = "mutation C($productId: ID!, $variants: [ProductVariantsBulkInput!]!) { productVariantsBulkCreate(productId: $productId, variants: $variants) { productVariants { id sku } userErrors { field message code } } }";
    let d = t.ok(create, json!({"productId": p["id"], "variants": [{"optionValues": [{"optionName": "Size", "name": "Giant"}], "price": "5", "inventoryItem": {"sku": "GIANT"}}]})).await;
    assert_eq!(
        d["productVariantsBulkCreate"]["productVariants"][0]["sku"],
        "GIANT"
    );
    let d = t.ok(create, json!({"productId": p["id"], "variants": [{"optionValues": [{"optionName": "Size", "name": "Giant"}], "price": "5"}]})).await;
    assert_eq!(
        d["productVariantsBulkCreate"]["userErrors"][0]["code"],
        "VARIANT_ALREADY_EXISTS"
    );
}

const SETQ: &str = "mutation Q($input: InventorySetQuantitiesInput!, $key: String!) { inventorySetQuantities(input: $input) @idempotent(key: $key) { inventoryAdjustmentGroup { reason changes { name delta quantityAfterChange } } userErrors { field message code } } }";

#[tokio::test]
async fn inventory_set_quantities_compare_and_swap_and_idempotency() {
    let t = common::start(Some(common::small_seed())).await;
    let p = t.first_product().await;
    let item = p["variants"]["nodes"][0]["inventoryItem"]["id"].clone();
    let loc = t.location_ids().await[0].clone();
    let level_q = "query L($id: ID!, $loc: ID!) { inventoryItem(id: $id) { inventoryLevel(locationId: $loc) { quantities(names: [\"available\", \"on_hand\"]) { name quantity } } } }";
    let available = || async {
        t.ok(level_q, json!({"id": item, "loc": loc})).await["inventoryItem"]["inventoryLevel"]
            ["quantities"][0]["quantity"]
            .as_i64()
            .unwrap()
    };
    let current = available().await;
    let entry = |q: i64, from: Option<i64>| json!({"inventoryItemId": item, "locationId": loc, "quantity": q, "changeFromQuantity": from});
    let vars = |key: &str, entry: Value| {
        json!({"key": key, "input": {"name": "available", "reason": "correction",
            "referenceDocumentUri": "gid://sim-test/Sync/1", "quantities": [entry]}})
    };

    // Without @idempotent: refused before anything runs.
    let bare = "mutation Q($input: InventorySetQuantitiesInput!) { inventorySetQuantities(input: $input) { userErrors { code } } }";
    let b = t
        .gql(bare, json!({"input": vars("k", entry(1, None))["input"]}))
        .await;
    assert_eq!(b["data"]["inventorySetQuantities"], Value::Null, "{b}");
    assert_eq!(b["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    assert_eq!(
        b["errors"][0]["message"],
        "The @idempotent directive is required for this mutation but was not provided."
    );
    let adjust = "mutation A($input: InventoryAdjustQuantitiesInput!) { inventoryAdjustQuantities(input: $input) { userErrors { code } } }";
    let b = t.gql(adjust, json!({"input": {"name": "available", "reason": "correction", "changes": [{"inventoryItemId": item, "locationId": loc, "delta": 1}]}})).await;
    assert_eq!(b["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{b}");
    assert_eq!(available().await, current, "nothing applied");

    // The removed compare fields are refused (they are not in 2026-10's schema).
    for removed in [
        json!({"key": "r1", "input": {"name": "available", "reason": "correction", "quantities": [{"inventoryItemId": item, "locationId": loc, "quantity": 1, "compareQuantity": current}]}}),
        json!({"key": "r2", "input": {"name": "available", "reason": "correction", "ignoreCompareQuantity": true, "quantities": [entry(1, None)]}}),
    ] {
        let b = t.gql(SETQ, removed).await;
        assert_eq!(
            b["errors"][0]["extensions"]["code"], "INVALID_VARIABLE",
            "{b}"
        );
    }

    // A stale changeFromQuantity: refused, nothing changes.
    let d = t
        .ok(SETQ, vars("stale", entry(42, Some(current + 1))))
        .await;
    assert_eq!(
        d["inventorySetQuantities"]["userErrors"][0]["code"],
        "CHANGE_FROM_QUANTITY_STALE"
    );
    assert!(d["inventorySetQuantities"]["inventoryAdjustmentGroup"].is_null());
    // changeFromQuantity left out (not null): refused.
    let mut missing = vars("missing", entry(42, None));
    missing["input"]["quantities"][0]
        .as_object_mut()
        .unwrap()
        .remove("changeFromQuantity");
    let d = t.ok(SETQ, missing).await;
    assert_eq!(
        d["inventorySetQuantities"]["userErrors"][0]["field"],
        json!(["input", "quantities", "0", "changeFromQuantity"])
    );
    // The right changeFromQuantity: applied.
    let d = t.ok(SETQ, vars("right", entry(42, Some(current)))).await;
    assert_eq!(d["inventorySetQuantities"]["userErrors"], json!([]));
    assert_eq!(
        d["inventorySetQuantities"]["inventoryAdjustmentGroup"]["changes"][0],
        json!({"name": "available", "delta": 42 - current, "quantityAfterChange": 42})
    );
    assert_eq!(available().await, 42);

    // Bad name and reason.
    let d = t.ok(SETQ, json!({"key": "bad", "input": {"name": "committed", "reason": "because", "quantities": []}})).await;
    let codes: Vec<&str> = d["inventorySetQuantities"]["userErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["INVALID_NAME", "INVALID_REASON"]);

    // The same key and variables twice (explicit null: no check): applied once, the first result answered again.
    let first = t.ok(SETQ, vars("key-1", entry(7, None))).await;
    assert_eq!(first["inventorySetQuantities"]["userErrors"], json!([]));
    // A change made between the two calls must survive the replay.
    t.ok(SETQ, vars("between", entry(9, Some(7)))).await;
    let replay = t.ok(SETQ, vars("key-1", entry(7, None))).await;
    assert_eq!(replay, first, "the replay answers the first result");
    assert_eq!(available().await, 9, "the replayed key did not set 7 again");
    // The same key with other variables is a client bug.
    let d = t.ok(SETQ, vars("key-1", entry(8, None))).await;
    assert_eq!(
        d["inventorySetQuantities"]["userErrors"][0]["code"],
        "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    );
    // A key whose first attempt failed: retry with a new key.
    let d = t
        .ok(SETQ, vars("stale", entry(42, Some(current + 1))))
        .await;
    assert_eq!(
        d["inventorySetQuantities"]["userErrors"][0]["code"],
        "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"
    );
    assert_eq!(available().await, 9);
    let stats = t.client.stats(&t.shop).await.unwrap();
    assert_eq!(stats["duplicate_idempotency_keys"], 3);
    assert_eq!(stats["mutations"]["inventorySetQuantities"], 9);
}

#[tokio::test]
async fn variants_take_barcodes_but_never_with_barcode() {
    let t = common::start(None).await;
    let set = "mutation S($input: ProductSetInput!) { productSet(input: $input, synchronous: true) { product { variants(first: 5) { nodes { barcode } } } userErrors { field code } } }";
    let input = |variant: Value| {
        json!({"input": {"title": "Barcoded", "productOptions": [{"name": "Size", "values": [{"name": "M"}]}],
            "variants": [variant]}})
    };
    let both = json!({"optionValues": [{"optionName": "Size", "name": "M"}], "barcode": "012345678905",
        "barcodes": [{"type": "UPC", "value": "012345678905"}]});
    let d = t.ok(set, input(both)).await;
    assert_eq!(
        d["productSet"]["userErrors"][0]["code"],
        "INCOMPATIBLE_BARCODE_FIELDS"
    );
    assert!(d["productSet"]["product"].is_null());
    let barcodes = json!({"optionValues": [{"optionName": "Size", "name": "M"}],
        "barcodes": [{"type": "EAN", "value": "4006381333931"}]});
    let d = t.ok(set, input(barcodes)).await;
    assert_eq!(d["productSet"]["userErrors"], json!([]));
    assert_eq!(
        d["productSet"]["product"]["variants"]["nodes"][0]["barcode"],
        "4006381333931"
    );
}

#[tokio::test]
async fn cost_metafields_publish_collections_tags_webhooks() {
    let t = common::start(Some(common::small_seed())).await;
    let p = t.first_product().await;
    let item = p["variants"]["nodes"][0]["inventoryItem"]["id"].clone();
    let d = t.ok("mutation C($id: ID!) { inventoryItemUpdate(id: $id, input: {cost: \"7.25\", tracked: false}) { inventoryItem { unitCost { amount currencyCode } tracked } userErrors { message } } }", json!({"id": item})).await;
    assert_eq!(
        d["inventoryItemUpdate"]["inventoryItem"],
        json!({"unitCost": {"amount": "7.25", "currencyCode": "USD"}, "tracked": false})
    );

    let mf = |n: usize| -> Vec<Value> {
        (0..n).map(|i| json!({"ownerId": p["id"], "namespace": "custom", "key": format!("k{i}"), "type": "single_line_text_field", "value": "v"})).collect()
    };
    let q = "mutation M($m: [MetafieldsSetInput!]!) { metafieldsSet(metafields: $m) { metafields { key value } userErrors { field message code } } }";
    let d = t.ok(q, json!({"m": mf(26)})).await;
    assert_eq!(
        d["metafieldsSet"]["userErrors"][0]["code"],
        "LESS_THAN_OR_EQUAL_TO"
    );
    let d = t.ok(q, json!({"m": mf(2)})).await;
    assert_eq!(
        d["metafieldsSet"]["metafields"].as_array().unwrap().len(),
        2
    );
    let d = t.ok("query P($id: ID!) { product(id: $id) { metafield(namespace: \"custom\", key: \"k1\") { value type } } }", json!({"id": p["id"]})).await;
    assert_eq!(
        d["product"]["metafield"],
        json!({"value": "v", "type": "single_line_text_field"})
    );

    let pubs = t
        .ok("{ publications(first: 5) { nodes { id } } }", json!({}))
        .await;
    let pub_id = pubs["publications"]["nodes"][2]["id"].clone();
    t.ok("mutation P($id: ID!, $p: ID!) { publishablePublish(id: $id, input: [{publicationId: $p}]) { userErrors { message } } }", json!({"id": p["id"], "p": pub_id})).await;
    let d = t.ok("query P($id: ID!, $p: ID!) { product(id: $id) { publishedOnPublication(publicationId: $p) } }", json!({"id": p["id"], "p": pub_id})).await;
    assert_eq!(d["product"]["publishedOnPublication"], true);

    let d = t.ok("mutation { collectionCreate(input: {title: \"Acme\", ruleSet: {appliedDisjunctively: false, rules: [{column: VENDOR, relation: EQUALS, condition: \"Acme\"}]}}) { collection { id handle ruleSet { appliedDisjunctively rules { column relation condition } } products(first: 50) { nodes { id } } } userErrors { message } } }", json!({})).await;
    let c = &d["collectionCreate"]["collection"];
    assert_eq!(c["handle"], "acme");
    assert_eq!(
        c["ruleSet"]["rules"][0],
        json!({"column": "VENDOR", "relation": "EQUALS", "condition": "Acme"})
    );
    let store = t.client.read(&t.shop, "products").await.unwrap();
    let acme = store
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["vendor"] == "Acme")
        .count();
    assert_eq!(c["products"]["nodes"].as_array().unwrap().len(), acme);
    assert!(acme > 0);

    let d = t.ok("mutation T($id: ID!) { tagsAdd(id: $id, tags: [\"sale\", \"seeded\"]) { node { id ... on Product { tags } } userErrors { message } } }", json!({"id": p["id"]})).await;
    let tags = d["tagsAdd"]["node"]["tags"].as_array().unwrap();
    assert_eq!(
        tags.iter().filter(|t| *t == "seeded").count(),
        1,
        "no duplicate tag"
    );
    assert!(tags.contains(&json!("sale")));

    let d = t.ok("mutation { webhookSubscriptionCreate(topic: ORDERS_CREATE, webhookSubscription: {uri: \"https://example.com/h\", format: JSON}) { webhookSubscription { id topic uri } userErrors { message } } }", json!({})).await;
    assert_eq!(
        d["webhookSubscriptionCreate"]["webhookSubscription"]["topic"],
        "ORDERS_CREATE"
    );
}

#[tokio::test]
async fn orders_filters_fulfillment_and_close() {
    let t = common::start(Some(common::small_seed())).await;
    let all = t.client.read(&t.shop, "orders").await.unwrap();
    let paid = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["financial_status"] == "PAID")
        .count();
    let q = "query O($q: String) { orders(first: 10, query: $q) { nodes { id displayFinancialStatus displayFulfillmentStatus closed fulfillmentOrders(first: 5) { nodes { id status assignedLocation { location { id } } lineItems(first: 10) { nodes { id remainingQuantity totalQuantity } } } } } } }";
    let d = t.ok(q, json!({"q": "financial_status:paid AND fulfillment_status:unshipped AND status:open AND updated_at:>'2025-10-01T00:00:00Z'"})).await;
    let orders = d["orders"]["nodes"].as_array().unwrap().clone();
    assert_eq!(orders.len(), paid);
    let o = &orders[0];
    let fo = &o["fulfillmentOrders"]["nodes"][0];
    let line = &fo["lineItems"]["nodes"][0];
    let total = line["totalQuantity"].as_i64().unwrap();

    let f = "mutation F($f: FulfillmentInput!) { fulfillmentCreate(fulfillment: $f) { fulfillment { id status trackingInfo { company number url } } userErrors { field message } } }";
    let too_many = json!({"f": {"lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": fo["id"], "fulfillmentOrderLineItems": [{"id": line["id"], "quantity": total + 1}]}]}});
    let d = t.ok(f, too_many).await;
    assert!(
        d["fulfillmentCreate"]["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Remaining quantity is"),
        "{d}"
    );
    assert!(
        t.client
            .read(&t.shop, "fulfillments")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );

    // All remaining of this fulfillment order, with tracking.
    let d = t.ok(f, json!({"f": {"trackingInfo": {"company": "UPS", "number": "1Z999", "url": "https://ups.example/1Z999"},
        "lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": fo["id"]}]}})).await;
    let ful = &d["fulfillmentCreate"]["fulfillment"];
    assert_eq!(ful["status"], "SUCCESS");
    assert_eq!(
        ful["trackingInfo"],
        json!([{"company": "UPS", "number": "1Z999", "url": "https://ups.example/1Z999"}])
    );
    // Nothing left to fulfil on it.
    let d2 = t
        .ok(
            f,
            json!({"f": {"lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": fo["id"]}]}}),
        )
        .await;
    assert!(
        !d2["fulfillmentCreate"]["userErrors"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let d = t.ok("mutation U($id: ID!) { fulfillmentTrackingInfoUpdate(fulfillmentId: $id, trackingInfoInput: {company: \"DHL\", number: \"JD1\"}) { fulfillment { trackingInfo { company number } } userErrors { message } } }", json!({"id": ful["id"]})).await;
    assert_eq!(
        d["fulfillmentTrackingInfoUpdate"]["fulfillment"]["trackingInfo"],
        json!([{"company": "DHL", "number": "JD1"}])
    );

    let d = t.ok("mutation C($id: ID!) { orderClose(input: {id: $id}) { order { id closed } userErrors { message } } }", json!({"id": o["id"]})).await;
    assert_eq!(d["orderClose"]["order"]["closed"], true);
    let d = t
        .ok(
            "{ orders(first: 50, query: \"status:closed\") { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["orders"]["nodes"], json!([{"id": o["id"]}]));
    let store = t.client.read(&t.shop, "fulfillments").await.unwrap();
    assert_eq!(store.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn adjust_quantities_and_async_product_set() {
    let t = common::start(Some(common::small_seed())).await;
    let p = t.first_product().await;
    let item = p["variants"]["nodes"][0]["inventoryItem"]["id"].clone();
    let loc = t.location_ids().await[0].clone();
    let level = "query L($id: ID!, $loc: ID!) { inventoryItem(id: $id) { inventoryLevel(locationId: $loc) { quantities(names: [\"available\", \"damaged\", \"on_hand\"]) { name quantity } } } }";
    let before = t.ok(level, json!({"id": item, "loc": loc})).await["inventoryItem"]["inventoryLevel"]["quantities"].clone();
    let avail = before[0]["quantity"].as_i64().unwrap();
    let adj = "mutation A($input: InventoryAdjustQuantitiesInput!, $key: String!) { inventoryAdjustQuantities(input: $input) @idempotent(key: $key) { inventoryAdjustmentGroup { changes { name delta quantityAfterChange } } userErrors { code } } }";
    let d = t.ok(adj, json!({"key": "adjust-1", "input": {"name": "damaged", "reason": "damaged", "changes": [{"inventoryItemId": item, "locationId": loc, "delta": 2}]}})).await;
    assert_eq!(
        d["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"]["changes"][0],
        json!({"name": "damaged", "delta": 2, "quantityAfterChange": 2})
    );
    let after = t.ok(level, json!({"id": item, "loc": loc})).await["inventoryItem"]["inventoryLevel"]["quantities"].clone();
    assert_eq!(
        after,
        json!([{"name": "available", "quantity": avail}, {"name": "damaged", "quantity": 2}, {"name": "on_hand", "quantity": avail + 2}])
    );
    let d = t
        .ok(
            adj,
            json!({"key": "adjust-2", "input": {"name": "committed", "reason": "correction", "changes": []}}),
        )
        .await;
    assert_eq!(
        d["inventoryAdjustQuantities"]["userErrors"][0]["code"],
        "INVALID_QUANTITY_NAME"
    );

    let d = t
        .ok("mutation S($input: ProductSetInput!) { productSet(input: $input, synchronous: false) { product { id } productSetOperation { id status } userErrors { message } } }", json!({"input": {"title": "Later"}}))
        .await;
    assert!(d["productSet"]["product"].is_null());
    let op = d["productSet"]["productSetOperation"].clone();
    assert_eq!(op["status"], "COMPLETE");
    let d = t.ok("query O($id: ID!) { productOperation(id: $id) { status product { title } ... on ProductSetOperation { userErrors { message } } } }", json!({"id": op["id"]})).await;
    assert_eq!(
        d["productOperation"],
        json!({"status": "COMPLETE", "product": {"title": "Later"}, "userErrors": []})
    );
}

#[tokio::test]
async fn removals_and_deletes() {
    let t = common::start(Some(common::small_seed())).await;
    let p = t.first_product().await;
    let d = t.ok("mutation T($id: ID!) { tagsRemove(id: $id, tags: [\"seeded\"]) { node { ... on Product { tags } } userErrors { message } } }", json!({"id": p["id"]})).await;
    assert!(
        !d["tagsRemove"]["node"]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("seeded"))
    );
    let pubs = t
        .ok("{ publications(first: 1) { nodes { id } } }", json!({}))
        .await;
    let pub_id = pubs["publications"]["nodes"][0]["id"].clone();
    t.ok("mutation U($id: ID!, $p: ID!) { publishableUnpublish(id: $id, input: [{publicationId: $p}]) { userErrors { message } } }", json!({"id": p["id"], "p": pub_id})).await;
    let d = t.ok("query P($id: ID!, $p: ID!) { product(id: $id) { publishedOnPublication(publicationId: $p) } }", json!({"id": p["id"], "p": pub_id})).await;
    assert_eq!(d["product"]["publishedOnPublication"], false);
    let d = t.ok("mutation D($id: ID!) { productDelete(input: {id: $id}) { deletedProductId userErrors { message } } }", json!({"id": p["id"]})).await;
    assert_eq!(d["productDelete"]["deletedProductId"], p["id"]);
    let d = t
        .ok(
            "query P($id: ID!, $v: ID!) { product(id: $id) { id } productVariant(id: $v) { id } }",
            json!({"id": p["id"], "v": p["variants"]["nodes"][0]["id"]}),
        )
        .await;
    assert_eq!(d, json!({"product": null, "productVariant": null}));
    let d = t.ok("mutation { webhookSubscriptionCreate(topic: PRODUCTS_UPDATE, webhookSubscription: {uri: \"https://example.com/p\"}) { webhookSubscription { id } } }", json!({})).await;
    let w = d["webhookSubscriptionCreate"]["webhookSubscription"]["id"].clone();
    let d = t.ok("mutation D($id: ID!) { webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { message } } }", json!({"id": w})).await;
    assert_eq!(
        d["webhookSubscriptionDelete"]["deletedWebhookSubscriptionId"],
        w
    );
    let d = t
        .ok(
            "{ webhookSubscriptions(first: 10) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["webhookSubscriptions"]["nodes"], json!([]));
}
