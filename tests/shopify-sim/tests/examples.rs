//! Every example operation validates and executes; an invalid document changes nothing.

mod common;
use serde_json::{Value, json};

const OPS: &str = include_str!("data/example_operations.graphql");
const VARS: &str = include_str!("data/example_variables.json");

/// Splits the example file into (operation name, document) pairs.
fn operations() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in OPS.lines() {
        let t = line.trim_start();
        if t.starts_with("query ") || t.starts_with("mutation ") {
            let name = t
                .split_whitespace()
                .nth(1)
                .unwrap()
                .split(['(', '{'])
                .next()
                .unwrap()
                .to_string();
            out.push((name, String::new()));
        }
        if let Some(last) = out.last_mut()
            && !t.starts_with('#')
        {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    out
}

#[test]
fn every_example_validates() {
    let ops = operations();
    assert_eq!(ops.len(), 21, "the example file has 21 operations");
    for (name, doc) in &ops {
        assert!(
            shopify_sim::schema::validate(doc).is_ok(),
            "{name} does not validate"
        );
    }
}

#[tokio::test]
async fn every_example_executes_with_its_variables() {
    // ProductsPage (first: 5) is priced 18,252 points by the documented rules, above the 1,000
    // single-query limit (see products_page_is_priced_above_the_limit); lift the limit here so
    // every example runs.
    let mut cfg = common::config();
    cfg.max_query_cost = 100_000;
    let t = common::start_with(cfg, "enterprise", Some(common::small_seed())).await;
    let vars: Value = serde_json::from_str(VARS).unwrap();
    let product = t.first_product().await;
    for (name, doc) in operations() {
        let mut v = vars.get(&name).cloned().unwrap_or(json!({}));
        match name.as_str() {
            "ProductsPage" | "OrdersPage" => v = json!({"first": 5}),
            "CreateVariants" => {
                v = json!({"productId": product["id"], "variants": [{"optionValues": [{"optionName": "Size", "name": "Giant"}], "price": "5.00"}]})
            }
            "VariantBySku" => v = json!({"q": "sku:SKU-000001-0001"}),
            "StartBulkExport" => v = json!({"q": "{ products { edges { node { id } } } }"}),
            "StartBulkImport" => {
                v = json!({"mutation": "mutation M($input: ProductSetInput!) { productSet(input: $input) { product { id } userErrors { message } } }", "path": "tmp/none"})
            }
            _ => {}
        }
        let body = t.gql(&doc, v).await;
        assert!(body.get("errors").is_none(), "{name}: {body}");
        assert!(body["data"].is_object(), "{name}: {body}");
        let cost = &body["extensions"]["cost"];
        assert!(
            cost["requestedQueryCost"].as_u64().is_some(),
            "{name}: {body}"
        );
        assert!(
            cost["throttleStatus"]["maximumAvailable"]
                .as_f64()
                .is_some()
        );
    }
    let stats = t.client.stats(&t.shop).await.unwrap();
    assert_eq!(stats["mutations"]["productSet"], 1);
}

#[tokio::test]
async fn undefined_field_is_rejected_and_changes_nothing() {
    let t = common::start(None).await;
    let before = t.client.read(&t.shop, "products").await.unwrap();
    let body = t
        .gql(
            r#"mutation { productSet(input: {title: "Nope"}) { product { id bogusField } userErrors { message } } }"#,
            json!({}),
        )
        .await;
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(
        body["errors"][0]["message"],
        "Field 'bogusField' doesn't exist on type 'Product'"
    );
    assert_eq!(body["errors"][0]["extensions"]["code"], "undefinedField");
    assert_eq!(t.client.read(&t.shop, "products").await.unwrap(), before);
    let stats = t.client.stats(&t.shop).await.unwrap();
    assert_eq!(stats["mutations"], json!({}), "nothing was executed");
}

#[tokio::test]
async fn bad_variables_are_refused() {
    let t = common::start(None).await;
    let body = t
        .gql(
            "query P($first: Int!) { products(first: $first) { nodes { id } } }",
            json!({"first": "ten"}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INVALID_VARIABLE",
        "{body}"
    );
    assert!(body.get("data").is_none());
}

#[tokio::test]
async fn products_page_is_priced_above_the_limit() {
    let t = common::start(None).await;
    let doc = operations()
        .into_iter()
        .find(|(n, _)| n == "ProductsPage")
        .unwrap()
        .1;
    let body = t.gql(&doc, json!({"first": 1})).await;
    // Per variant: 1 + selectedOptions 1 + inventoryItem (1 + unitCost 1
    //   + inventoryLevels 2 + 10 × (1 level + 1 location + 1 quantities)) = 36
    // Per product: 1 + category 1 + options (1 + optionValues 1) + media 2 + 10 × (1 + image 1)
    //   + metafields 2 + 20 × 1 + variants 2 + 100 × 36 = 3650
    // Total: 2 + 1 × 3650 = 3652
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "MAX_COST_EXCEEDED",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["message"],
        "Query cost is 3652, which exceeds the single query max cost limit (1000)."
    );
    assert_eq!(body["extensions"]["cost"]["requestedQueryCost"], 3652);
}
