//! Requested cost by the documented rules (hand-computed table), and the leaky bucket driven by
//! the manual clock: drain, THROTTLED with HTTP 200, refill at the plan's rate, refund.

mod common;
use serde_json::{Map, Value, json};
use shopify_sim::client::SeedRequestJson;
use shopify_sim::cost::{CostCtx, requested};
use shopify_sim::schema::{schema, validate};
use std::time::Duration;

fn cost_of(doc: &str, vars: Value) -> u64 {
    let d = validate(doc).unwrap_or_else(|e| panic!("{doc}: {e:?}"));
    let op = d.operations.get(None).unwrap();
    let vars: Map<String, Value> = vars.as_object().cloned().unwrap_or_default();
    requested(
        &CostCtx {
            schema: schema(),
            doc: &d,
            vars: &vars,
        },
        op,
    )
}

#[test]
fn requested_cost_matches_hand_computed_table() {
    // (document, variables, cost computed by hand from the documented rules)
    let table: &[(&str, Value, u64)] = &[
        // object 1, scalars 0
        ("{ shop { name } }", json!({}), 1),
        // two objects
        ("{ shop { name plan { displayName } } }", json!({}), 2),
        // connection: 2 + 10 × 1
        (
            "{ products(first: 10) { nodes { id title } } }",
            json!({}),
            12,
        ),
        // the documented worked example: 2 + 10 × (1 + 2 + 5 × 1) = 82
        (
            "{ products(first: 10) { nodes { title variants(first: 5) { nodes { price } } } } }",
            json!({}),
            82,
        ),
        // pageInfo and cursor are free: 2 + 10 × 1
        (
            "{ products(first: 10) { edges { cursor node { id } } pageInfo { hasNextPage } } }",
            json!({}),
            12,
        ),
        // nodes and edges both selected: the dearer node counts: 2 + 3 × (1 + 1)
        (
            "{ products(first: 3) { nodes { id } edges { node { id options { name } } } } }",
            json!({}),
            8,
        ),
        // interface with a fragment: 1 + (2 + 4 × 1)
        (
            r#"{ node(id: "gid://shopify/Product/1") { id ... on Product { title variants(first: 4) { nodes { id } } } } }"#,
            json!({}),
            7,
        ),
        // `last` sizes a connection too; enums free: 2 + 7 × 1
        (
            "{ orders(last: 7) { nodes { displayFinancialStatus lineItems(first: 0) { nodes { id } } } } }",
            json!({}),
            2 + 7 * 3,
        ),
        // page size from a variable: 2 + 20 × (1 + 2 + 5 × 1)
        (
            "query Q($n: Int!) { orders(first: $n) { nodes { lineItems(first: 5) { nodes { sku } } } } }",
            json!({"n": 20}),
            162,
        ),
        // 2 + 250 × 1
        (
            "{ locations(first: 250) { nodes { id name } } }",
            json!({}),
            252,
        ),
        // a mutation is 10; objects in its payload are free
        (
            r#"mutation { tagsAdd(id: "gid://shopify/Product/1", tags: ["a"]) { node { id } userErrors { message } } }"#,
            json!({}),
            10,
        ),
        // two mutation fields
        (
            r#"mutation { a: tagsAdd(id: "gid://shopify/Product/1", tags: ["a"]) { node { id } } b: orderClose(input: {id: "gid://shopify/Order/1"}) { order { id } } }"#,
            json!({}),
            20,
        ),
        // productSet: 10 + 0.2 × 2 variants + 0.4 × 1 product metafield + 1.9 × 1 file = 12.7,
        // plus the connection selected in the payload (2 + 2 × 1) = 16.7, rounded up
        (
            r#"mutation S($input: ProductSetInput!) { productSet(input: $input) { product { id variants(first: 2) { nodes { id } } } userErrors { message } } }"#,
            json!({"input": {"title": "x",
                "variants": [{"optionValues": [{"optionName": "Size", "name": "S"}]}, {"optionValues": [{"optionName": "Size", "name": "M"}]}],
                "metafields": [{"namespace": "a", "key": "bb", "type": "single_line_text_field", "value": "v"}],
                "files": [{"originalSource": "https://example.com/a.jpg"}]}}),
            17,
        ),
        // productSet with variant files and variant metafields:
        // 10 + 0.2 × 1 + 0.6 × 1 + 0.4 × 2 = 11.6 → 12
        (
            r#"mutation S($input: ProductSetInput!) { productSet(input: $input) { userErrors { message } } }"#,
            json!({"input": {"title": "x", "variants": [{"optionValues": [{"optionName": "Size", "name": "S"}],
                "file": {"originalSource": "https://example.com/a.jpg"},
                "metafields": [{"namespace": "a", "key": "bb", "type": "single_line_text_field", "value": "v"},
                               {"namespace": "a", "key": "cc", "type": "single_line_text_field", "value": "w"}]}]}}),
            12,
        ),
    ];
    for (doc, vars, want) in table {
        assert_eq!(cost_of(doc, vars.clone()), *want, "{doc}");
    }
}

const DEAR: &str = "query Q($q: String) { products(first: 100, query: $q) { nodes { id variants(first: 5) { nodes { id } } } } }";
// 2 + 100 × (1 + 2 + 5 × 1) = 802

#[tokio::test]
async fn bucket_drains_throttles_refills_and_refunds() {
    let seed = SeedRequestJson {
        products: 100,
        variants_per_product: 5,
        locations: 1,
        orders: 0,
        seed: 1,
    };
    let t = common::start_with(common::config(), "legacy", Some(seed)).await;
    let clock = t.sim.clock().clone();

    // Everything returned: actual = requested = 802, no refund. 1000 - 802 = 198.
    let b = t.gql(DEAR, json!({})).await;
    assert!(b.get("errors").is_none(), "{b}");
    let cost = &b["extensions"]["cost"];
    assert_eq!(cost["requestedQueryCost"], 802);
    assert_eq!(cost["actualQueryCost"], 802);
    assert_eq!(
        cost["throttleStatus"],
        json!({"maximumAvailable": 1000.0, "currentlyAvailable": 198, "restoreRate": 50.0})
    );

    // Not enough left: THROTTLED, HTTP 200 (checked by gql), no data, actualQueryCost null.
    let b = t.gql(DEAR, json!({})).await;
    assert!(b.get("data").is_none(), "{b}");
    assert_eq!(b["errors"][0]["message"], "Throttled");
    assert_eq!(b["errors"][0]["extensions"]["code"], "THROTTLED");
    assert_eq!(
        b["errors"][0]["extensions"]["documentation"],
        "https://shopify.dev/api/usage/rate-limits"
    );
    assert_eq!(b["extensions"]["cost"]["actualQueryCost"], Value::Null);
    assert_eq!(b["extensions"]["cost"]["requestedQueryCost"], 802);
    assert_eq!(
        b["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"],
        198
    );

    // 5 s at 50/s: 448, still short.
    clock.advance(Duration::from_secs(5));
    let b = t.gql(DEAR, json!({})).await;
    assert_eq!(b["errors"][0]["extensions"]["code"], "THROTTLED");
    assert_eq!(
        b["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"],
        448
    );

    // 8 s more: 848 ≥ 802. A filter matching one product: actual = 2 + 1 × (1 + 2 + 5) = 10,
    // so 792 points come back: 848 - 802 + 792 = 838.
    clock.advance(Duration::from_secs(8));
    let b = t.gql(DEAR, json!({"q": "handle:product-1"})).await;
    assert!(b.get("errors").is_none(), "{b}");
    assert_eq!(b["extensions"]["cost"]["actualQueryCost"], 10);
    assert_eq!(
        b["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"],
        838
    );

    // Refill never exceeds the bucket.
    clock.advance(Duration::from_secs(3600));
    let b = t.gql("{ shop { name } }", json!({})).await;
    assert_eq!(
        b["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"],
        999
    );

    let stats = t.client.stats(&t.shop).await.unwrap();
    assert_eq!(stats["throttled"], 2);
    assert_eq!(stats["graphql_requests"], 5);
    assert_eq!(stats["points_consumed"], 802 + 10 + 1);
}

#[tokio::test]
async fn plans_report_their_bucket() {
    for (plan, max, rate) in [
        ("standard", 2000.0, 100.0),
        ("advanced", 4000.0, 200.0),
        ("plus", 20000.0, 1000.0),
        ("enterprise", 40000.0, 2000.0),
    ] {
        let t = common::start_with(common::config(), plan, None).await;
        let b = t
            .gql(
                "{ shop { name plan { displayName shopifyPlus } } }",
                json!({}),
            )
            .await;
        let ts = &b["extensions"]["cost"]["throttleStatus"];
        assert_eq!(ts["maximumAvailable"], max, "{plan}");
        assert_eq!(ts["restoreRate"], rate, "{plan}");
        assert_eq!(ts["currentlyAvailable"], (max as i64) - 2, "{plan}");
    }
}

#[tokio::test]
async fn query_above_single_limit_is_rejected_uncharged() {
    let t = common::start(None).await;
    // 2 + 250 × (1 + 2 + 250 × 1) = 63252
    let b = t
        .gql(
            "{ products(first: 250) { nodes { id variants(first: 250) { nodes { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        b["errors"][0]["message"],
        "Query cost is 63252, which exceeds the single query max cost limit (1000)."
    );
    assert_eq!(b["errors"][0]["extensions"]["code"], "MAX_COST_EXCEEDED");
    assert_eq!(
        b["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"],
        20000
    );
}

#[tokio::test]
async fn input_arrays_above_250_are_refused() {
    let t = common::start(None).await;
    let ids: Vec<String> = (0..251)
        .map(|i| format!("gid://shopify/Product/{i}"))
        .collect();
    let b = t
        .gql(
            "query N($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            json!({"ids": ids}),
        )
        .await;
    assert_eq!(
        b["errors"][0]["extensions"]["code"], "MAX_INPUT_SIZE_EXCEEDED",
        "{b}"
    );
}

#[tokio::test]
async fn cost_fields_on_request() {
    let t = common::start(None).await;
    let r = t
        .client
        .shop_http(&t.shop)
        .post(t.client.graphql_url(&t.shop, "2025-10"))
        .header("X-Shopify-Access-Token", &t.token)
        .header("X-GraphQL-Cost-Include-Fields", "true")
        .json(&json!({"query": "{ products(first: 10) { nodes { title variants(first: 5) { nodes { price } } } } }"}))
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    let fields = &b["extensions"]["cost"]["fields"];
    assert_eq!(
        fields,
        &json!([
            {"path": ["products"], "definedCost": 2.0, "requestedTotalCost": 82.0, "requestedChildrenCost": 80.0},
            {"path": ["products", "nodes"], "definedCost": 1.0, "requestedTotalCost": 8.0, "requestedChildrenCost": 7.0},
            {"path": ["products", "nodes", "variants"], "definedCost": 2.0, "requestedTotalCost": 7.0, "requestedChildrenCost": 5.0},
            {"path": ["products", "nodes", "variants", "nodes"], "definedCost": 1.0, "requestedTotalCost": 1.0, "requestedChildrenCost": 0.0},
        ])
    );
    // Without the header there is no `fields`.
    let b = t.gql("{ shop { name } }", json!({})).await;
    assert!(b["extensions"]["cost"].get("fields").is_none());
}
