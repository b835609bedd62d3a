//! Bulk export/import, result URL expiry, per-shop concurrency, and webhook deliveries
//! (HMAC, headers, retries, duplicates).

mod common;
use common::receiver::Receiver;
use serde_json::{Value, json};
use shopify_sim::client::SeedRequestJson;
use shopify_sim::hmac::verify_webhook;
use std::collections::HashMap;
use std::time::Duration;

const EXPORT: &str =
    "{ products { edges { node { id title variants { edges { node { id sku } } } } } } }";
const RUN: &str = "mutation R($q: String!) { bulkOperationRunQuery(query: $q) { bulkOperation { id status } userErrors { field message code } } }";

async fn subscribe(t: &common::T, topic: &str, uri: &str) {
    let d = t
        .ok("mutation S($t: WebhookSubscriptionTopic!, $u: String!) { webhookSubscriptionCreate(topic: $t, webhookSubscription: {uri: $u}) { userErrors { message } } }", json!({"t": topic, "u": uri}))
        .await;
    assert_eq!(d["webhookSubscriptionCreate"]["userErrors"], json!([]));
}

async fn wait_bulk(t: &common::T, kind: &str) -> Value {
    for _ in 0..250 {
        let d = t.ok(&format!("{{ currentBulkOperation(type: {kind}) {{ id status errorCode objectCount rootObjectCount fileSize url createdAt completedAt }} }}"), json!({})).await;
        let op = d["currentBulkOperation"].clone();
        if op["status"] == "COMPLETED" || op["status"] == "FAILED" {
            return op;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("bulk operation did not finish");
}

#[tokio::test]
async fn bulk_export_has_every_object_once_with_parent_ids() {
    let seed = SeedRequestJson {
        products: 20,
        variants_per_product: 4,
        locations: 1,
        orders: 0,
        seed: 3,
    };
    let t = common::start(Some(seed)).await;
    let hooks = Receiver::start(0).await;
    subscribe(&t, "BULK_OPERATIONS_FINISH", &hooks.url).await;

    let d = t.ok(RUN, json!({"q": EXPORT})).await;
    let op_id = d["bulkOperationRunQuery"]["bulkOperation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let op = wait_bulk(&t, "QUERY").await;
    assert_eq!(op["status"], "COMPLETED");
    assert_eq!(op["id"], op_id);
    assert_eq!(op["objectCount"], "100");
    assert_eq!(op["rootObjectCount"], "20");
    let d = t
        .ok(
            "query N($id: ID!) { node(id: $id) { ... on BulkOperation { status url } } }",
            json!({"id": op_id}),
        )
        .await;
    assert_eq!(d["node"]["status"], "COMPLETED");

    let url = op["url"].as_str().unwrap();
    let body = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert_eq!(
        body.len() as u64,
        op["fileSize"].as_str().unwrap().parse::<u64>().unwrap()
    );
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    // The store says which variant belongs to which product.
    let store = t.client.read(&t.shop, "products").await.unwrap();
    let mut parent_of: HashMap<String, String> = HashMap::new();
    let mut products = Vec::new();
    for p in store.as_array().unwrap() {
        products.push(p["id"].as_str().unwrap().to_string());
        for v in p["variants"].as_array().unwrap() {
            parent_of.insert(
                v["id"].as_str().unwrap().to_string(),
                p["id"].as_str().unwrap().to_string(),
            );
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out_of_place = 0;
    let mut last_product = String::new();
    for l in &lines {
        let id = l["id"].as_str().unwrap().to_string();
        *seen.entry(id.clone()).or_default() += 1;
        match l.get("__parentId") {
            None => {
                assert!(products.contains(&id));
                assert!(
                    l.get("variants").is_none(),
                    "nested connections are separate lines"
                );
                last_product = id;
            }
            Some(p) => {
                assert_eq!(
                    p.as_str().unwrap(),
                    parent_of[&id],
                    "variant {id} has the wrong parent"
                );
                assert!(l["sku"].as_str().unwrap().starts_with("SKU-"));
                if p.as_str().unwrap() != last_product {
                    out_of_place += 1;
                }
            }
        }
    }
    assert_eq!(seen.len(), 100);
    assert!(seen.values().all(|n| *n == 1), "every object exactly once");
    assert!(
        out_of_place > 0,
        "some children are not right after their parent"
    );

    let got = hooks.wait_for(1).await;
    assert_eq!(got[0].headers["x-shopify-topic"], "bulk_operations/finish");
    let payload: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(payload["admin_graphql_api_id"], op_id);
    assert_eq!(payload["status"], "completed");

    // The URL expires after 7 days.
    t.sim.clock().advance(Duration::from_secs(7 * 86_400 + 1));
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("ExpiredToken"));
}

#[tokio::test]
async fn without_group_objects_children_come_anywhere_and_with_it_right_below_their_parent() {
    let seed = SeedRequestJson {
        products: 20,
        variants_per_product: 4,
        locations: 1,
        orders: 0,
        seed: 3,
    };
    let t = common::start(Some(seed)).await;
    const RUN_GROUPED: &str = "mutation R($q: String!, $g: Boolean!) { bulkOperationRunQuery(query: $q, groupObjects: $g) { bulkOperation { id } userErrors { code } } }";
    // (child line index, parent line index or None when the parent comes later) for each child line
    let run = |grouped: Option<bool>| {
        let t = &t;
        async move {
            let d = match grouped {
                None => t.ok(RUN, json!({"q": EXPORT})).await,
                Some(g) => t.ok(RUN_GROUPED, json!({"q": EXPORT, "g": g})).await,
            };
            assert_eq!(d["bulkOperationRunQuery"]["userErrors"], json!([]));
            let op = wait_bulk(t, "QUERY").await;
            let body = reqwest::get(op["url"].as_str().unwrap())
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            body.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        }
    };
    let before_parent = |lines: &[Value]| {
        let mut seen = std::collections::HashSet::new();
        let mut early = 0;
        for l in lines {
            if let Some(p) = l.get("__parentId")
                && !seen.contains(p.as_str().unwrap())
            {
                early += 1;
            }
            seen.insert(l["id"].as_str().unwrap().to_string());
        }
        early
    };
    // The default (false from 2026-01) and an explicit false scatter children, some even before their parent.
    for grouped in [None, Some(false)] {
        let lines = run(grouped).await;
        assert_eq!(lines.len(), 100);
        assert!(
            before_parent(&lines) > 0,
            "{grouped:?}: no child before its parent"
        );
    }
    // groupObjects: true puts each product's variants right below it.
    let lines = run(Some(true)).await;
    assert_eq!(lines.len(), 100);
    let mut current = String::new();
    for l in &lines {
        match l.get("__parentId") {
            None => current = l["id"].as_str().unwrap().to_string(),
            Some(p) => assert_eq!(p.as_str().unwrap(), current, "{l} is not below its parent"),
        }
    }
}

#[tokio::test]
async fn up_to_five_bulk_operations_of_any_type_run_at_once_per_shop() {
    let t = common::start(Some(common::small_seed())).await;
    t.client
        .set_faults(&shopify_sim::FaultConfig {
            bulk_delay_ms: 5000,
            ..Default::default()
        })
        .await
        .unwrap();
    for _ in 0..5 {
        let d = t.ok(RUN, json!({"q": EXPORT})).await;
        assert_eq!(d["bulkOperationRunQuery"]["userErrors"], json!([]));
        assert_eq!(
            d["bulkOperationRunQuery"]["bulkOperation"]["status"],
            "CREATED"
        );
    }
    let d = t.ok(RUN, json!({"q": EXPORT})).await;
    let e = &d["bulkOperationRunQuery"]["userErrors"][0];
    assert_eq!(e["code"], "OPERATION_IN_PROGRESS");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("A bulk query operation cannot start: 5 bulk operations"),
        "{e}"
    );
    // Invalid bulk documents.
    let d = t.ok(RUN, json!({"q": "{ shop { name } }"})).await;
    assert_eq!(
        d["bulkOperationRunQuery"]["userErrors"][0]["code"],
        "INVALID"
    );

    // The limit counts every type: with one allowed, a running query keeps a mutation from starting.
    let mut cfg = common::config();
    cfg.bulk_concurrency = 1;
    let t1 = common::start_with(cfg, "plus", Some(common::small_seed())).await;
    t1.client
        .set_faults(&shopify_sim::FaultConfig {
            bulk_delay_ms: 5000,
            ..Default::default()
        })
        .await
        .unwrap();
    let d = t1.ok(RUN, json!({"q": EXPORT})).await;
    assert_eq!(d["bulkOperationRunQuery"]["userErrors"], json!([]));
    let d = t1
        .ok(
            "mutation M($m: String!, $p: String!) { bulkOperationRunMutation(mutation: $m, stagedUploadPath: $p) { userErrors { code } } }",
            json!({"m": "mutation T($id: ID!) { tagsAdd(id: $id, tags: [\"x\"]) { userErrors { message } } }", "p": "tmp/none"}),
        )
        .await;
    assert_eq!(
        d["bulkOperationRunMutation"]["userErrors"][0]["code"],
        "OPERATION_IN_PROGRESS"
    );
}

#[tokio::test]
async fn bulk_import_through_a_staged_upload() {
    let t = common::start(None).await;
    let d = t
        .ok("mutation { stagedUploadsCreate(input: [{resource: BULK_MUTATION_VARIABLES, filename: \"bulk.jsonl\", mimeType: \"text/jsonl\", httpMethod: POST}]) { stagedTargets { url resourceUrl parameters { name value } } userErrors { message } } }", json!({}))
        .await;
    let target = &d["stagedUploadsCreate"]["stagedTargets"][0];
    let params: Vec<(String, String)> = target["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let key = params.iter().find(|(n, _)| n == "key").unwrap().1.clone();
    let jsonl: String = (0..3)
        .map(|i| {
            format!(
                "{{\"input\": {{\"title\": \"Imported {i}\", \"handle\": \"imported-{i}\"}}}}\n"
            )
        })
        .collect();
    // multipart/form-data by hand: every parameter, then the file last.
    let boundary = "simboundary";
    let mut body = String::new();
    for (n, v) in &params {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bulk.jsonl\"\r\nContent-Type: text/jsonl\r\n\r\n{jsonl}\r\n--{boundary}--\r\n"));
    let r = reqwest::Client::new()
        .post(target["url"].as_str().unwrap())
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let m = "mutation M($input: ProductSetInput!) { productSet(input: $input) { product { id handle } userErrors { message } } }";
    let d = t.ok("mutation B($m: String!, $p: String!) { bulkOperationRunMutation(mutation: $m, stagedUploadPath: $p) { bulkOperation { id } userErrors { field message code } } }", json!({"m": m, "p": key})).await;
    assert_eq!(
        d["bulkOperationRunMutation"]["userErrors"],
        json!([]),
        "{d}"
    );
    let op = wait_bulk(&t, "MUTATION").await;
    assert_eq!(op["status"], "COMPLETED");
    let text = reqwest::get(op["url"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["__lineNumber"], 2);
    assert_eq!(
        lines[1]["data"]["productSet"]["product"]["handle"],
        "imported-1"
    );
    assert_eq!(
        t.client
            .read(&t.shop, "products")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn a_bulk_mutation_stopped_part_way_fails_with_the_lines_it_ran_in_partial_data() {
    let t = common::start(None).await;
    t.client
        .set_faults(&shopify_sim::FaultConfig {
            bulk_mutation_stop_after: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    let jsonl: String = (0..5)
        .map(|i| format!("{{\"input\": {{\"title\": \"Part {i}\", \"handle\": \"part-{i}\"}}}}\n"))
        .collect();
    let key = t
        .client
        .stage_jsonl(&t.shop, &t.token, "part.jsonl", &jsonl)
        .await
        .unwrap();
    let m = "mutation M($input: ProductSetInput!) { productSet(input: $input) { product { id handle } userErrors { message } } }";
    let d = t.ok("mutation B($m: String!, $p: String!) { bulkOperationRunMutation(mutation: $m, stagedUploadPath: $p) { bulkOperation { id } userErrors { field message code } } }", json!({"m": m, "p": key})).await;
    let id = d["bulkOperationRunMutation"]["bulkOperation"]["id"].clone();
    wait_bulk(&t, "MUTATION").await;
    let d = t
        .ok(
            "query P($id: ID!) { node(id: $id) { ... on BulkOperation { status errorCode url partialDataUrl } } }",
            json!({"id": id}),
        )
        .await;
    let op = &d["node"];
    assert_eq!(op["status"], "FAILED", "{op}");
    assert_eq!(op["errorCode"], "INTERNAL_SERVER_ERROR");
    assert_eq!(op["url"], Value::Null);
    let text = reqwest::get(op["partialDataUrl"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ran: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["__lineNumber"].clone())
        .collect();
    assert_eq!(ran, [json!(0), json!(1)]);
    let products = t.client.read(&t.shop, "products").await.unwrap();
    let handles: Vec<&str> = products
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["handle"].as_str())
        .filter(|h| h.starts_with("part-"))
        .collect();
    assert_eq!(
        handles,
        ["part-0", "part-1"],
        "only the lines that ran were applied"
    );
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_duplicated_on_demand() {
    let t = common::start(Some(common::small_seed())).await;
    let hooks = Receiver::start(2).await;
    subscribe(&t, "ORDERS_CREATE", &hooks.url).await;
    subscribe(&t, "INVENTORY_LEVELS_UPDATE", &hooks.url).await;
    let http = reqwest::Client::new();
    let url = format!("{}/_sim/shops/{}/orders", t.sim.base_url(), t.shop);
    let r = http
        .post(&url)
        .json(&json!({"line_items": [{"sku": "SKU-000001-0001", "quantity": 2}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let order_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Two failures (500), then delivered on the third attempt.
    let got = hooks.wait_for(1).await;
    let g = &got[0];
    assert!(verify_webhook(
        "hush",
        &g.body,
        g.headers["x-shopify-hmac-sha256"].to_str().unwrap()
    ));
    assert_eq!(g.headers["x-shopify-topic"], "orders/create");
    assert_eq!(
        g.headers["x-shopify-shop-domain"],
        "test-shop.myshopify.com"
    );
    assert_eq!(g.headers["x-shopify-api-version"], "2026-10");
    for h in [
        "x-shopify-webhook-id",
        "x-shopify-event-id",
        "x-shopify-triggered-at",
    ] {
        assert!(g.headers.contains_key(h), "{h}");
    }
    let payload: Value = serde_json::from_slice(&g.body).unwrap();
    assert_eq!(payload["admin_graphql_api_id"], order_id);
    assert_eq!(payload["line_items"][0]["quantity"], 2);
    let log = t.client.read(&t.shop, "webhooks").await.unwrap();
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["delivered"], true);

    // Duplicates on demand: same event id twice.
    t.client
        .set_faults(&shopify_sim::FaultConfig {
            webhook_duplicate_rate: 1.0,
            ..Default::default()
        })
        .await
        .unwrap();
    let p = t.first_product().await;
    let loc = t.location_ids().await[0].clone();
    t.ok("mutation Q($i: ID!, $l: ID!) { inventorySetQuantities(input: {name: \"available\", reason: \"correction\", quantities: [{inventoryItemId: $i, locationId: $l, quantity: 3, changeFromQuantity: null}]}) @idempotent(key: \"dup-1\") { userErrors { message } } }",
        json!({"i": p["variants"]["nodes"][0]["inventoryItem"]["id"], "l": loc})).await;
    let got = hooks.wait_for(3).await;
    let inv: Vec<_> = got
        .iter()
        .filter(|g| g.headers["x-shopify-topic"] == "inventory_levels/update")
        .collect();
    assert_eq!(inv.len(), 2);
    assert_eq!(
        inv[0].headers["x-shopify-event-id"],
        inv[1].headers["x-shopify-event-id"]
    );
    let body: Value = serde_json::from_slice(&inv[0].body).unwrap();
    assert_eq!(body["available"], 3);
}

#[tokio::test]
async fn webhooks_can_arrive_out_of_order() {
    let t = common::start(Some(common::small_seed())).await;
    let hooks = Receiver::start(0).await;
    subscribe(&t, "ORDERS_CREATE", &hooks.url).await;
    t.client
        .set_faults(&shopify_sim::FaultConfig {
            webhook_reorder_rate: 1.0,
            seed: 11,
            ..Default::default()
        })
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/_sim/shops/{}/orders", t.sim.base_url(), t.shop);
    let mut created = Vec::new();
    for _ in 0..6 {
        let r: Value = http
            .post(&url)
            .json(&json!({"line_items": [{"sku": "SKU-000001-0001"}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created.push(r["id"].as_str().unwrap().to_string());
    }
    let got = hooks.wait_for(6).await;
    let arrived: Vec<String> = got
        .iter()
        .map(|g| {
            serde_json::from_slice::<Value>(&g.body).unwrap()["admin_graphql_api_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut sorted = arrived.clone();
    sorted.sort_by_key(|id| created.iter().position(|c| c == id));
    assert_eq!(sorted, created, "every order announced once");
    assert_ne!(arrived, created, "delivered in another order than created");
}
