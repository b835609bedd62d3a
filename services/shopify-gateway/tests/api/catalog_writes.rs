//! Catalog writes over the bus against the simulator (issue 4): product upserts (productSet, and above the threshold
//! one bulk mutation with per-line results, resumed after a crash), inventory item costs, metafields in calls of 25,
//! publishing and smart collections. Every check reads the simulated shop back, and counts Shopify calls from the
//! simulator's stats.

use std::{collections::HashSet, time::Duration};

use async_nats::jetstream::kv;
use secrecy::SecretString;
use serde_json::{Value, json};
use shopbridge_platform::{
    bus::{EventMeta, names},
    testing::{TestDb, TestNats, eventually},
};
use shopbridge_proto::{
    common::Money,
    gateway::{self as pb, command::Operation as Op, command_result::Status},
};

use crate::{
    crash::{LEASES, start_instance},
    harness::{Harness, codes, consumed, seed},
};

pub(crate) fn command(id: &str, shop: &str, operation: Op) -> pb::Command {
    pb::Command {
        command_id: id.into(),
        shop_domain: shop.into(),
        channel_id: shop.into(),
        lane: pb::Lane::Publish as i32,
        operation: Some(operation),
    }
}

fn usd(amount: &str) -> Option<Money> {
    Some(Money {
        amount: amount.into(),
        currency_code: "USD".into(),
    })
}

pub(crate) fn status(result: &pb::CommandResult) -> Status {
    Status::try_from(result.status).unwrap()
}

pub(crate) fn mutations(stats: &Value, field: &str) -> u64 {
    stats["mutations"][field].as_u64().unwrap_or(0)
}

/// A two-variant product (sizes S and M) with the given handle.
fn tee(handle: &str, title: &str, price: &str) -> pb::ProductInput {
    let variant = |size: &str| pb::VariantInput {
        option_values: vec![pb::VariantOptionValue {
            option_name: "Size".into(),
            name: size.into(),
        }],
        sku: format!("{handle}-{size}"),
        price: usd(price),
        cost: usd("3.25"),
        weight: Some(pb::Weight {
            value: "0.2".into(),
            unit: pb::WeightUnit::Kilograms as i32,
        }),
        ..Default::default()
    };
    pb::ProductInput {
        identifier: Some(pb::product_input::Identifier::Handle(handle.into())),
        title: title.into(),
        vendor: "Shopbridge".into(),
        tags: vec!["cotton".into()],
        status: pb::ProductStatus::Active as i32,
        options: vec![pb::ProductOptionInput {
            name: "Size".into(),
            values: vec!["S".into(), "M".into()],
        }],
        variants: vec![variant("S"), variant("M")],
        metafields: vec![pb::MetafieldValue {
            namespace: "shopbridge".into(),
            key: "origin".into(),
            r#type: "single_line_text_field".into(),
            value: "import".into(),
        }],
        ..Default::default()
    }
}

fn upserted(result: &pb::CommandResult) -> &pb::ProductsUpserted {
    match &result.result {
        Some(pb::command_result::Result::ProductsUpserted(u)) => u,
        other => panic!("no ProductsUpserted: {other:?} {result:?}"),
    }
}

fn product<'a>(products: &'a Value, id: &str) -> &'a Value {
    products
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in the shop"))
}

#[tokio::test]
async fn an_upsert_creates_a_product_then_updates_the_same_one() {
    const SHOP: &str = "upsert-shop.myshopify.com";
    let h = Harness::start(&[(SHOP, seed(1, 1, 0))]).await;
    let create = command(
        "upsert-1",
        SHOP,
        Op::UpsertProducts(pb::UpsertProducts {
            products: vec![tee("bridge-tee", "Bridge Tee", "19.95")],
        }),
    );
    h.send(&create).await;
    let first = h.result_of("upsert-1").await;
    assert_eq!(status(&first), Status::Succeeded, "{first:?}");
    let created = upserted(&first).products[0].clone();
    assert_eq!(created.index, 0);
    assert_eq!(created.handle, "bridge-tee");
    let skus: Vec<&str> = created.variants.iter().map(|v| v.sku.as_str()).collect();
    assert_eq!(skus, ["bridge-tee-S", "bridge-tee-M"]);

    let products = h.read(SHOP, "products").await;
    let stored = product(&products, &created.product_id);
    assert_eq!(stored["title"], "Bridge Tee");
    assert_eq!(stored["vendor"], "Shopbridge");
    assert_eq!(stored["variants"][0]["price"], "19.95");
    assert_eq!(stored["variants"][1]["id"], created.variants[1].variant_id);
    assert_eq!(
        stored["variants"][1]["inventory_item_id"],
        created.variants[1].inventory_item_id
    );
    assert_eq!(stored["metafields"][0]["value"], "import");
    let item = h
        .graphql(
            SHOP,
            "query($id: ID!) { inventoryItem(id: $id) { unitCost { amount } } }",
            json!({"id": created.variants[0].inventory_item_id}),
        )
        .await;
    assert_eq!(
        item["inventoryItem"]["unitCost"]["amount"]
            .as_str()
            .map(|a| a.parse::<f64>().unwrap()),
        Some(3.25)
    );

    // The same product by id, its variants by id: updated in place.
    let mut update = tee("bridge-tee", "Bridge Tee (organic)", "21.25");
    update.identifier = Some(pb::product_input::Identifier::Id(
        created.product_id.clone(),
    ));
    for (variant, known) in update.variants.iter_mut().zip(&created.variants) {
        variant.id = known.variant_id.clone();
    }
    h.send(&command(
        "upsert-2",
        SHOP,
        Op::UpsertProducts(pb::UpsertProducts {
            products: vec![update],
        }),
    ))
    .await;
    let second = h.result_of("upsert-2").await;
    assert_eq!(status(&second), Status::Succeeded, "{second:?}");
    let updated = &upserted(&second).products[0];
    assert_eq!(updated.product_id, created.product_id);
    assert_eq!(
        updated.variants, created.variants,
        "the same variants and items"
    );

    let products = h.read(SHOP, "products").await;
    let stored = product(&products, &created.product_id);
    assert_eq!(stored["title"], "Bridge Tee (organic)");
    assert_eq!(stored["variants"][0]["price"], "21.25");
    let with_handle = products
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["handle"] == "bridge-tee")
        .count();
    assert_eq!(with_handle, 1, "updated, not created again");
    let stats = h.stats(SHOP).await;
    assert_eq!(mutations(&stats, "productSet"), 2);
    h.finish().await;
}

#[tokio::test]
async fn bad_products_are_refused_before_any_call_and_the_others_are_written() {
    const SHOP: &str = "upsert-bad-shop.myshopify.com";
    let h = Harness::start(&[(SHOP, seed(1, 1, 0))]).await;
    let no_title = tee("untitled", "", "5.00");
    let mut anonymous = tee("anonymous", "Anonymous", "5.00");
    anonymous.identifier = None;
    let mut bad_price = tee("bad-price", "Bad price", "12,50");
    bad_price.variants[1].price = usd("4.00");
    let mut bad_key = tee("bad-key", "Bad key", "5.00");
    bad_key.metafields[0].key = "k".into();
    h.send(&command(
        "upsert-bad",
        SHOP,
        Op::UpsertProducts(pb::UpsertProducts {
            products: vec![
                no_title,
                tee("good", "Good", "5.00"),
                bad_price,
                bad_key,
                anonymous,
            ],
        }),
    ))
    .await;
    let result = h.result_of("upsert-bad").await;
    assert_eq!(status(&result), Status::Partial, "{result:?}");
    let problems: Vec<(&str, &str)> = result
        .problems
        .iter()
        .map(|p| (p.code.as_str(), p.field.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            ("BLANK", "products.0.title"),
            ("INVALID", "products.2.variants.0.price"),
            ("TOO_SHORT", "products.3.metafields.key"),
            ("MISSING_IDENTIFIER", "products.4.handle"),
        ]
    );
    let written = &upserted(&result).products;
    assert_eq!(written.len(), 1);
    assert_eq!((written[0].index, written[0].handle.as_str()), (1, "good"));
    assert_eq!(
        mutations(&h.stats(SHOP).await, "productSet"),
        1,
        "only the good one sent"
    );
    h.finish().await;
}

#[tokio::test]
async fn costs_are_set_per_inventory_item() {
    const SHOP: &str = "cost-shop.myshopify.com";
    let h = Harness::start(&[(SHOP, seed(2, 1, 0))]).await;
    let products = h.read(SHOP, "products").await;
    let items: Vec<String> = products[0]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["inventory_item_id"].as_str().unwrap().to_string())
        .collect();
    let costs = items
        .iter()
        .zip(["4.10", "7.00"])
        .map(|(item, cost)| pb::InventoryItemCost {
            inventory_item_id: item.clone(),
            cost: usd(cost),
        })
        .chain([pb::InventoryItemCost {
            inventory_item_id: "gid://shopify/InventoryItem/999999999".into(),
            cost: usd("1.00"),
        }])
        .collect();
    h.send(&command(
        "costs",
        SHOP,
        Op::SetInventoryItemCosts(pb::SetInventoryItemCosts { costs }),
    ))
    .await;
    let result = h.result_of("costs").await;
    assert_eq!(status(&result), Status::Partial, "{result:?}");
    assert_eq!(result.problems.len(), 1, "{result:?}");
    assert_eq!(
        result.problems[0].field, "costs.2.id",
        "Shopify's refusal, named"
    );
    for (item, cost) in items.iter().zip([4.10, 7.00]) {
        let data = h
            .graphql(
                SHOP,
                "query($id: ID!) { inventoryItem(id: $id) { unitCost { amount } } }",
                json!({ "id": item }),
            )
            .await;
        let amount: f64 = data["inventoryItem"]["unitCost"]["amount"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(amount, cost);
    }
    assert_eq!(mutations(&h.stats(SHOP).await, "inventoryItemUpdate"), 3);
    h.finish().await;
}

pub(crate) fn metafield(owner: &str, key: &str) -> pb::MetafieldInput {
    pb::MetafieldInput {
        owner_id: owner.into(),
        metafield: Some(pb::MetafieldValue {
            namespace: "shopbridge".into(),
            key: key.into(),
            r#type: "single_line_text_field".into(),
            value: format!("value of {key}"),
        }),
    }
}

pub(crate) fn shop_metafield_keys(products: &Value) -> usize {
    products
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["metafields"].as_array().unwrap())
        .filter(|m| m["namespace"] == "shopbridge")
        .count()
}

#[tokio::test]
async fn metafields_go_in_calls_of_25() {
    const SHOP: &str = "metafields-shop.myshopify.com";
    let h = Harness::start(&[(SHOP, seed(3, 1, 0))]).await;
    let products = h.read(SHOP, "products").await;
    let owners: Vec<String> = products
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let metafields = (0..60)
        .map(|i| metafield(&owners[i % 3], &format!("key_{i}")))
        .collect();
    h.send(&command(
        "metafields",
        SHOP,
        Op::SetMetafields(pb::SetMetafields { metafields }),
    ))
    .await;
    let result = h.result_of("metafields").await;
    assert_eq!(status(&result), Status::Succeeded, "{result:?}");
    let Some(pb::command_result::Result::MetafieldsSet(set)) = &result.result else {
        panic!("{result:?}")
    };
    let indices: Vec<u32> = set.metafields.iter().map(|m| m.index).collect();
    assert_eq!(indices, (0..60).collect::<Vec<u32>>());
    assert!(
        set.metafields
            .iter()
            .all(|m| m.id.starts_with("gid://shopify/Metafield/"))
    );
    assert_eq!(
        mutations(&h.stats(SHOP).await, "metafieldsSet"),
        3,
        "ceil(60 / 25) calls"
    );
    assert_eq!(shop_metafield_keys(&h.read(SHOP, "products").await), 60);
    h.finish().await;
}

#[tokio::test]
async fn a_refused_metafield_fails_alone_and_its_call_mates_are_set() {
    const SHOP: &str = "metafields-partial-shop.myshopify.com";
    let h = Harness::start(&[(SHOP, seed(1, 1, 0))]).await;
    let owner = h.read(SHOP, "products").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut metafields: Vec<pb::MetafieldInput> = (0..30)
        .map(|i| metafield(&owner, &format!("key_{i}")))
        .collect();
    // Refused by the gateway (Shopify's 2-character minimum), never sent.
    metafields[3].metafield.as_mut().unwrap().key = "k".into();
    // Refused by Shopify: the owner does not exist. Its call (metafields 27..29) applies nothing at first.
    metafields[27].owner_id = "gid://shopify/Product/999999999".into();
    h.send(&command(
        "metafields-partial",
        SHOP,
        Op::SetMetafields(pb::SetMetafields { metafields }),
    ))
    .await;
    let result = h.result_of("metafields-partial").await;
    assert_eq!(status(&result), Status::Partial, "{result:?}");
    let problems: Vec<(&str, &str)> = result
        .problems
        .iter()
        .map(|p| (p.code.as_str(), p.field.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            ("TOO_SHORT", "metafields.3.key"),
            ("INVALID", "metafields.27.ownerId")
        ]
    );
    let Some(pb::command_result::Result::MetafieldsSet(set)) = &result.result else {
        panic!("{result:?}")
    };
    let indices: HashSet<u32> = set.metafields.iter().map(|m| m.index).collect();
    assert_eq!(indices.len(), 28);
    assert!(!indices.contains(&3) && !indices.contains(&27));
    assert_eq!(
        shop_metafield_keys(&h.read(SHOP, "products").await),
        28,
        "nothing else skipped"
    );
    assert_eq!(
        mutations(&h.stats(SHOP).await, "metafieldsSet"),
        3,
        "two calls of up to 25, and the refused call's others again"
    );
    h.finish().await;
}

#[tokio::test]
async fn products_are_published_to_every_publication_named() {
    const SHOP: &str = "publish-shop.myshopify.com";
    let h = Harness::start(&[(SHOP, seed(3, 1, 0))]).await;
    let publications: Vec<String> = h
        .graphql(
            SHOP,
            "{ publications(first: 10) { nodes { id } } }",
            json!({}),
        )
        .await["publications"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert!(publications.len() >= 2, "{publications:?}");
    let products = h.read(SHOP, "products").await;
    let ids: Vec<String> = products
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    h.send(&command(
        "publish",
        SHOP,
        Op::PublishProducts(pb::PublishProducts {
            product_ids: ids.clone(),
            publication_ids: publications[..2].to_vec(),
        }),
    ))
    .await;
    let result = h.result_of("publish").await;
    assert_eq!(status(&result), Status::Succeeded, "{result:?}");
    let products = h.read(SHOP, "products").await;
    for id in &ids {
        let on: HashSet<&str> = product(&products, id)["publications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert!(
            publications[..2].iter().all(|p| on.contains(p.as_str())),
            "{id}: {on:?}"
        );
    }
    assert_eq!(
        mutations(&h.stats(SHOP).await, "publishablePublish"),
        2,
        "one call per product"
    );
    h.finish().await;
}

#[tokio::test]
async fn a_smart_collection_is_created_from_its_rules() {
    const SHOP: &str = "collection-shop.myshopify.com";
    let h = Harness::start(&[(SHOP, seed(1, 1, 0))]).await;
    h.send(&command(
        "collection-products",
        SHOP,
        Op::UpsertProducts(pb::UpsertProducts {
            products: vec![
                tee("sale-tee", "Sale Tee", "9.00"),
                tee("plain-tee", "Plain Tee", "9.00"),
            ],
        }),
    ))
    .await;
    let products = h.result_of("collection-products").await;
    let sale = upserted(&products).products[0].product_id.clone();
    h.send(&command(
        "collection",
        SHOP,
        Op::CreateSmartCollection(pb::CreateSmartCollection {
            title: "Sale".into(),
            handle: "sale".into(),
            applied_disjunctively: true,
            rules: vec![pb::CollectionRule {
                column: pb::CollectionRuleColumn::Title as i32,
                relation: pb::CollectionRuleRelation::StartsWith as i32,
                condition: "Sale".into(),
            }],
            ..Default::default()
        }),
    ))
    .await;
    let result = h.result_of("collection").await;
    assert_eq!(status(&result), Status::Succeeded, "{result:?}");
    let Some(pb::command_result::Result::CollectionCreated(created)) = &result.result else {
        panic!("{result:?}")
    };
    assert!(
        created.id.starts_with("gid://shopify/Collection/"),
        "{created:?}"
    );
    let data = h
        .graphql(
            SHOP,
            "query($id: ID!) { collection(id: $id) { title ruleSet { appliedDisjunctively rules { column relation condition } } products(first: 10) { nodes { id } } } }",
            json!({"id": created.id}),
        )
        .await;
    let collection = &data["collection"];
    assert_eq!(collection["title"], "Sale");
    assert_eq!(collection["ruleSet"]["rules"][0]["column"], "TITLE");
    let members: Vec<&str> = collection["products"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(members, [sale.as_str()]);

    // The same collection asked for again (as by a command re-run after a crash that lost its first result): the
    // handle finds the one created, and no second collection is made.
    h.send(&command(
        "collection-again",
        SHOP,
        Op::CreateSmartCollection(pb::CreateSmartCollection {
            title: "Sale".into(),
            handle: "sale".into(),
            rules: vec![pb::CollectionRule {
                column: pb::CollectionRuleColumn::Title as i32,
                relation: pb::CollectionRuleRelation::StartsWith as i32,
                condition: "Sale".into(),
            }],
            ..Default::default()
        }),
    ))
    .await;
    let again = h.result_of("collection-again").await;
    assert_eq!(status(&again), Status::Succeeded, "{again:?}");
    let Some(pb::command_result::Result::CollectionCreated(found)) = &again.result else {
        panic!("{again:?}")
    };
    assert_eq!(found.id, created.id);
    assert_eq!(mutations(&h.stats(SHOP).await, "collectionCreate"), 1);

    // Without a handle or a rule nothing is sent.
    h.send(&command(
        "collection-empty",
        SHOP,
        Op::CreateSmartCollection(pb::CreateSmartCollection {
            title: "Nothing".into(),
            ..Default::default()
        }),
    ))
    .await;
    let refused = h.result_of("collection-empty").await;
    assert_eq!(status(&refused), Status::Failed, "{refused:?}");
    assert_eq!(codes(&refused), ["MISSING_IDENTIFIER", "BLANK"]);
    assert_eq!(mutations(&h.stats(SHOP).await, "collectionCreate"), 1);
    h.finish().await;
}

#[tokio::test]
async fn a_resent_catalog_command_writes_nothing_twice() {
    const SHOP: &str = "resend-catalog-shop.myshopify.com";
    let h = Harness::start(&[(SHOP, seed(2, 1, 0))]).await;
    let owner = h.read(SHOP, "products").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let upsert = command(
        "resend-upsert",
        SHOP,
        Op::UpsertProducts(pb::UpsertProducts {
            products: vec![tee("a-tee", "A Tee", "5.00"), tee("b-tee", "B Tee", "6.00")],
        }),
    );
    let metafields = command(
        "resend-metafields",
        SHOP,
        Op::SetMetafields(pb::SetMetafields {
            metafields: (0..30)
                .map(|i| metafield(&owner, &format!("key_{i}")))
                .collect(),
        }),
    );
    h.send(&upsert).await;
    h.send(&metafields).await;
    h.results_of(&["resend-upsert", "resend-metafields"]).await;
    // The senders re-send both (new outbox rows, so JetStream does not deduplicate them).
    h.send_as(&upsert, "resend-upsert-again").await;
    h.send_as(&metafields, "resend-metafields-again").await;
    consumed(&h, &["resend-upsert-again", "resend-metafields-again"]).await;
    // Each re-send is answered with the command's original result, and nothing runs again.
    eventually("both re-sends answered", || async {
        h.results().await.len() >= 4
    })
    .await;
    let results = h.results().await;
    assert_eq!(
        results.len(),
        4,
        "the original result again per re-send: {results:?}"
    );
    for id in ["resend-upsert", "resend-metafields"] {
        let answers: Vec<_> = results.iter().filter(|r| r.command_id == id).collect();
        assert_eq!(answers.len(), 2, "{id}: {answers:?}");
        assert_eq!(answers[0], answers[1], "{id}: the same result again");
    }
    let stats = h.stats(SHOP).await;
    assert_eq!(mutations(&stats, "productSet"), 2);
    assert_eq!(mutations(&stats, "metafieldsSet"), 2);
    assert_eq!(stats["duplicate_idempotency_keys"], 0);
    let products = h.read(SHOP, "products").await;
    assert_eq!(
        products.as_array().unwrap().len(),
        4,
        "two seeded, two upserted once"
    );
    h.finish().await;
}

/// `n` one-variant products with handles `<prefix>-<i>`; product `bad` names an option it does not have.
fn many(prefix: &str, n: usize, bad: Option<usize>) -> Vec<pb::ProductInput> {
    (0..n)
        .map(|i| {
            let mut p = tee(&format!("{prefix}-{i}"), &format!("Bulk {i}"), "10.00");
            p.variants.truncate(1);
            p.options[0].values.truncate(1);
            if Some(i) == bad {
                p.variants[0].option_values[0].option_name = "Colour".into();
            }
            p
        })
        .collect()
}

fn handles_with_prefix(products: &Value, prefix: &str) -> Vec<String> {
    products
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["handle"].as_str())
        .filter(|h| h.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_big_upsert_goes_as_one_bulk_mutation_with_per_line_results() {
    const SHOP: &str = "bulk-upsert-shop.myshopify.com";
    let h = Harness::start(&[(SHOP, seed(1, 1, 0))]).await;
    let n = shopbridge_gateway::operations::catalog::DEFAULT_BULK_MUTATION_THRESHOLD + 100;
    h.send(&command(
        "bulk-upsert",
        SHOP,
        Op::UpsertProducts(pb::UpsertProducts {
            products: many("bulk", n, Some(123)),
        }),
    ))
    .await;
    let result = h.result_of("bulk-upsert").await;
    assert_eq!(status(&result), Status::Partial, "{:?}", result.problems);
    let problems: Vec<(&str, &str)> = result
        .problems
        .iter()
        .map(|p| (p.code.as_str(), p.field.as_str()))
        .collect();
    assert_eq!(
        problems,
        [(
            "OPTION_DOES_NOT_EXIST",
            "products.123.variants.0.optionValues"
        )]
    );
    let written = upserted(&result);
    assert!(
        written
            .bulk_operation_id
            .starts_with("gid://shopify/BulkOperation/")
    );
    assert_eq!(written.products.len(), n - 1);
    assert!(written.products.iter().all(|p| p.index != 123
        && p.handle == format!("bulk-{}", p.index)
        && p.variants.len() == 1
        && p.variants[0].sku == format!("bulk-{}-S", p.index)));

    let handles = handles_with_prefix(&h.read(SHOP, "products").await, "bulk-");
    let unique: HashSet<&String> = handles.iter().collect();
    assert_eq!(
        (handles.len(), unique.len()),
        (n - 1, n - 1),
        "each created once"
    );
    let stats = h.stats(SHOP).await;
    assert_eq!(stats["bulk_operations"], 1);
    assert_eq!(mutations(&stats, "stagedUploadsCreate"), 1);
    assert_eq!(mutations(&stats, "bulkOperationRunMutation"), 1);
    assert_eq!(mutations(&stats, "productSet"), 0, "no call per product");
    h.finish().await;
}

#[tokio::test]
async fn many_metafields_go_as_one_bulk_mutation_and_a_refused_ones_call_mates_are_set() {
    const SHOP: &str = "bulk-metafields-shop.myshopify.com";
    let h = Harness::start(&[(SHOP, seed(4, 1, 0))]).await;
    let owners = h.product_ids(SHOP).await;
    let n = shopbridge_gateway::operations::catalog::DEFAULT_BULK_MUTATION_THRESHOLD + 20;
    let mut metafields: Vec<pb::MetafieldInput> = (0..n)
        .map(|i| metafield(&owners[i % 4], &format!("key_{i}")))
        .collect();
    // Line 12 (metafields 300..324) is refused as a whole by Shopify for this one.
    metafields[310].owner_id = "gid://shopify/Product/999999999".into();
    h.send(&command(
        "bulk-metafields",
        SHOP,
        Op::SetMetafields(pb::SetMetafields { metafields }),
    ))
    .await;
    let result = h.result_of("bulk-metafields").await;
    assert_eq!(status(&result), Status::Partial, "{:?}", result.problems);
    let problems: Vec<(&str, &str)> = result
        .problems
        .iter()
        .map(|p| (p.code.as_str(), p.field.as_str()))
        .collect();
    assert_eq!(problems, [("INVALID", "metafields.310.ownerId")]);
    let Some(pb::command_result::Result::MetafieldsSet(set)) = &result.result else {
        panic!("{result:?}")
    };
    assert!(
        set.bulk_operation_id
            .starts_with("gid://shopify/BulkOperation/")
    );
    assert_eq!(set.metafields.len(), n - 1);
    assert!(set.metafields.iter().all(|m| m.index != 310));
    assert_eq!(shop_metafield_keys(&h.read(SHOP, "products").await), n - 1);
    let stats = h.stats(SHOP).await;
    assert_eq!(stats["bulk_operations"], 1);
    assert_eq!(mutations(&stats, "bulkOperationRunMutation"), 1);
    assert_eq!(
        mutations(&stats, "metafieldsSet"),
        1,
        "only the refused line's others, sent again"
    );
    h.finish().await;
}

// ------------------------------------------------------------------------------------------------------------------
// Crash in the middle of a bulk mutation (see crash.rs for the export's version of this check).

const CRASH_SHOP: &str = "bulk-crash-shop.myshopify.com";
async fn bulk_rows(db: &TestDb) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT stage, bulk_id, status FROM bulk_operations WHERE command_id = 'bulk-crash'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_bulk_mutation_polls_the_same_operation_and_answers_once() {
    shopbridge_platform::telemetry::init_for_tests();
    let sim = shopify_sim::Simulator::start_on(shopify_sim::SimConfig::default(), "127.0.0.1:0")
        .await
        .unwrap();
    let client = shopify_sim::SimClient::new(sim.addr());
    let token = client.create_shop(CRASH_SHOP, "standard").await.unwrap();
    client.seed(CRASH_SHOP, &seed(1, 1, 0)).await.unwrap();
    let tokens =
        std::collections::HashMap::from([(CRASH_SHOP.to_string(), SecretString::from(token))]);
    // Shopify takes 1.5 s to start the bulk mutation: the first instance is polling when it dies.
    let faults: shopify_sim::FaultConfig =
        serde_json::from_value(json!({"bulk_delay_ms": 1500, "shops": [CRASH_SHOP]})).unwrap();
    client.set_faults(&faults).await.unwrap();

    let db = TestDb::new(&shopbridge_gateway::MIGRATOR).await;
    let nats = TestNats::new().await;
    // Unacknowledged commands come back after 3 s and leases expire after 3 s.
    let mut topology = shopbridge_platform::bus::topology::Topology::embedded();
    for consumer in &mut topology.consumers {
        consumer.ack_wait_secs = 3;
    }
    topology.apply(&nats.js, &nats.namespace).await.unwrap();
    let bucket = nats.namespace.resource("gateway-leases");
    nats.js
        .update_key_value(kv::Config {
            bucket: bucket.clone(),
            history: 1,
            max_age: Duration::from_secs(LEASES.lease_secs),
            ..Default::default()
        })
        .await
        .unwrap();
    let kv = nats.js.get_key_value(&bucket).await.unwrap();

    let first = start_instance(&sim, &db, &nats, kv.clone(), &tokens).await;
    let partition = names::partition_for(CRASH_SHOP, names::GATEWAY_PARTITIONS);
    eventually("the first instance holds the shop's partition", || async {
        first.leases.holds(partition)
    })
    .await;
    let n = shopbridge_gateway::operations::catalog::DEFAULT_BULK_MUTATION_THRESHOLD + 100;
    let upsert = command(
        "bulk-crash",
        CRASH_SHOP,
        Op::UpsertProducts(pb::UpsertProducts {
            products: many("crash", n, None),
        }),
    );
    nats.publish(
        &names::command_subject::<pb::Command>(CRASH_SHOP, "publish"),
        "bulk-crash",
        &EventMeta::tenant("t1"),
        &upsert,
    )
    .await;
    eventually("the bulk mutation is recorded", || async {
        !bulk_rows(&db).await.is_empty()
    })
    .await;
    first.kill().await;
    let before = bulk_rows(&db).await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0].2, "RUNNING", "killed while Shopify ran it");

    let second = start_instance(&sim, &db, &nats, kv.clone(), &tokens).await;
    eventually("the upsert is answered", || async {
        !nats.events::<pb::CommandResult>().await.is_empty()
    })
    .await;
    let results = nats.events::<pb::CommandResult>().await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(
        status(&results[0]),
        Status::Succeeded,
        "{:?}",
        results[0].problems
    );
    let written = upserted(&results[0]);
    assert_eq!(written.products.len(), n);
    assert_eq!(written.bulk_operation_id, before[0].1, "the same operation");
    let after = bulk_rows(&db).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        (&after[0].1, after[0].2.as_str()),
        (&before[0].1, "COMPLETED")
    );
    let stats = client.stats(CRASH_SHOP).await.unwrap();
    assert_eq!(stats["bulk_operations"], 1, "not started again");
    assert_eq!(
        mutations(&stats, "stagedUploadsCreate"),
        1,
        "not uploaded again"
    );
    assert_eq!(mutations(&stats, "bulkOperationRunMutation"), 1);
    let handles = handles_with_prefix(
        &client.read(CRASH_SHOP, "products").await.unwrap(),
        "crash-",
    );
    let unique: HashSet<&String> = handles.iter().collect();
    assert_eq!(
        (handles.len(), unique.len()),
        (n, n),
        "each product created once"
    );

    second.kill().await;
    nats.cleanup().await;
    db.drop_db().await;
}
