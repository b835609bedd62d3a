//! A Shopify outage fails nothing for good: a command whose calls failed only transiently is not answered FAILED,
//! it comes back later and succeeds once Shopify answers again.

use std::time::Duration;

use shopbridge_proto::gateway::{self as pb, command::Operation as Op};

use crate::harness::{Harness, command, seed, succeeded};

const SHOP: &str = "outage-shop.myshopify.com";

#[tokio::test]
async fn commands_sent_while_shopify_is_down_are_answered_once_it_is_back() {
    // The gateway gives up on a failing call after 2 s here, so the outage outlasts several attempts.
    let h = Harness::start_impatient(&[(SHOP, seed(1, 1, 0))]).await;
    let down = serde_json::from_value(
        serde_json::json!({"error_rate": 1.0, "error_status": 503, "shops": [SHOP]}),
    )
    .unwrap();
    h.f.client.set_faults(&down).await.unwrap();
    h.send(&command(
        "during-outage",
        SHOP,
        Op::GetShopInfo(pb::GetShopInfo {}),
    ))
    .await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        h.results().await.is_empty(),
        "no answer while Shopify is down: {:?}",
        h.results().await
    );
    let failed_attempts = h.stats(SHOP).await["faults_injected"].as_u64().unwrap();
    assert!(failed_attempts > 2, "it kept trying: {failed_attempts}");

    h.f.client
        .set_faults(&serde_json::from_value(serde_json::json!({})).unwrap())
        .await
        .unwrap();
    let result = h.result_of("during-outage").await;
    assert!(
        succeeded(&result),
        "answered once Shopify is back: {result:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = h
        .results()
        .await
        .into_iter()
        .filter(|r| r.command_id == "during-outage")
        .count();
    assert_eq!(answers, 1, "answered once");
    h.finish().await;
}
