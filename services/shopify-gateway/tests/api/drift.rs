//! Schema drift: when Shopify's answer lacks a field the gateway needs (the simulator's `drop_field` fault), the
//! command fails with UNEXPECTED_ANSWER naming the document and the field, instead of storing an empty default.

use shopbridge_proto::gateway::{self as pb, command::Operation as Op, command_result::Status};

use crate::harness::{Harness, codes, command, seed, succeeded};

const SHOP: &str = "drift-shop.myshopify.com";

async fn drop_field(h: &Harness, field: Option<&str>) {
    let faults =
        serde_json::from_value(serde_json::json!({"drop_field": field, "shops": [SHOP]})).unwrap();
    h.f.client.set_faults(&faults).await.unwrap();
}

#[tokio::test]
async fn a_field_missing_from_shopifys_answer_fails_the_command_naming_it() {
    let h = Harness::start(&[(SHOP, seed(3, 1, 0))]).await;
    let sku = h.read(SHOP, "products").await[0]["variants"][0]["sku"]
        .as_str()
        .unwrap()
        .to_string();
    let lookup = |id: &str| {
        command(
            id,
            SHOP,
            Op::LookupVariants(pb::LookupVariants {
                field: pb::LookupField::Sku as i32,
                values: vec![sku.clone()],
            }),
        )
    };

    h.send(&lookup("lookup-before")).await;
    let before = h.result_of("lookup-before").await;
    assert!(succeeded(&before), "{before:?}");

    drop_field(&h, Some("inventoryItem")).await;
    h.send(&lookup("lookup-drifted")).await;
    let drifted = h.result_of("lookup-drifted").await;
    assert_eq!(drifted.status, Status::Failed as i32, "{drifted:?}");
    assert_eq!(codes(&drifted), ["UNEXPECTED_ANSWER"]);
    let message = &drifted.problems[0].message;
    assert!(
        message.contains("variants_lookup"),
        "names the document: {message}"
    );
    assert!(
        message.contains("productVariants.nodes[0]") && message.contains("`inventoryItem`"),
        "names the field and where: {message}"
    );
    let matched = match &drifted.result {
        Some(pb::command_result::Result::VariantMatches(m)) => m.matches.len(),
        _ => 0,
    };
    assert_eq!(matched, 0, "no match with empty ids: {drifted:?}");

    drop_field(&h, Some("currencyCode")).await;
    h.send(&command(
        "info-drifted",
        SHOP,
        Op::GetShopInfo(pb::GetShopInfo {}),
    ))
    .await;
    let info = h.result_of("info-drifted").await;
    assert_eq!(codes(&info), ["UNEXPECTED_ANSWER"], "{info:?}");
    assert!(
        info.problems[0].message.contains("`currencyCode`"),
        "{info:?}"
    );

    drop_field(&h, None).await;
    h.send(&command(
        "info-after",
        SHOP,
        Op::GetShopInfo(pb::GetShopInfo {}),
    ))
    .await;
    let after = h.result_of("info-after").await;
    assert!(succeeded(&after), "{after:?}");
    h.finish().await;
}
