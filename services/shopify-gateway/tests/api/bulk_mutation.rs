//! Issue 4: what a bulk mutation's command answers once Shopify has accepted the operation. Its lines are applied
//! whatever happens to the gateway then, so the answer must say what Shopify did: a mutation that stopped part way
//! reports the lines it ran (from `partialDataUrl`) and each input it did not, and one the gateway cannot follow for
//! a while (Shopify failing past the call deadline) is not answered FAILED: it is delivered again and polled on.

use std::collections::HashSet;

use serde_json::Value;
use shopbridge_gateway::catalog_writes::DEFAULT_BULK_MUTATION_THRESHOLD;
use shopbridge_proto::gateway::{self as pb, command::Operation as Op, command_result::Status};
use shopify_sim::FaultConfig;

use crate::{
    catalog_writes::{command, metafield, mutations, shop_metafield_keys, status},
    harness::{Harness, seed},
};

/// Metafields `key_0`… over the shop's products, enough for a bulk mutation (one line per 25).
async fn many_metafields(h: &Harness, shop: &str) -> Vec<pb::MetafieldInput> {
    let owners = h.product_ids(shop).await;
    (0..DEFAULT_BULK_MUTATION_THRESHOLD + 20)
        .map(|i| metafield(&owners[i % owners.len()], &format!("key_{i}")))
        .collect()
}

fn set_metafields(id: &str, shop: &str, metafields: Vec<pb::MetafieldInput>) -> pb::Command {
    command(
        id,
        shop,
        Op::SetMetafields(pb::SetMetafields { metafields }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_mutation_that_failed_part_way_answers_the_lines_it_ran_and_each_input_it_did_not() {
    const SHOP: &str = "bulk-partial-shop.myshopify.com";
    let h = Harness::start(&[(SHOP, seed(4, 1, 0))]).await;
    let metafields = many_metafields(&h, SHOP).await;
    let n = metafields.len();
    // Shopify runs 10 lines (250 metafields), then the operation fails.
    h.f.client
        .set_faults(&FaultConfig {
            bulk_mutation_stop_after: Some(10),
            shops: vec![SHOP.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    h.send(&set_metafields("bulk-partial", SHOP, metafields))
        .await;

    let result = h.result_of("bulk-partial").await;
    assert_eq!(status(&result), Status::Partial, "{:?}", result.problems);
    let failed = result
        .problems
        .iter()
        .find(|p| p.code == "BULK_FAILED")
        .expect("the operation's failure");
    assert!(
        failed
            .message
            .contains("ended FAILED (INTERNAL_SERVER_ERROR)")
            && failed
                .message
                .contains(&format!("10 of {} lines ran", n.div_ceil(25))),
        "{failed:?}"
    );
    let missing: Vec<&str> = result
        .problems
        .iter()
        .filter(|p| p.code == "BULK_LINE_MISSING")
        .map(|p| p.field.as_str())
        .collect();
    let expected: Vec<String> = (250..n).map(|i| format!("metafields.{i}")).collect();
    assert_eq!(missing, expected, "each input of a line not run, by itself");
    assert!(
        result.problems[1..]
            .iter()
            .all(|p| p.message.contains("was not run: bulk mutation")),
        "{:?}",
        &result.problems[..2]
    );
    assert_eq!(result.problems.len(), 1 + (n - 250));
    let Some(pb::command_result::Result::MetafieldsSet(set)) = &result.result else {
        panic!("{result:?}")
    };
    let indices: HashSet<u32> = set.metafields.iter().map(|m| m.index).collect();
    assert_eq!(indices, (0..250).collect(), "the lines that ran");
    assert_eq!(shop_metafield_keys(&h.read(SHOP, "products").await), 250);
    let stats = h.stats(SHOP).await;
    assert_eq!(mutations(&stats, "bulkOperationRunMutation"), 1);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_mutation_shopify_accepted_is_polled_again_on_redelivery_when_polling_fails_past_the_deadline()
 {
    const SHOP: &str = "bulk-unfollowed-shop.myshopify.com";
    // The gateway gives up on a failing call after 2 s.
    let h = Harness::start_impatient(&[(SHOP, seed(4, 1, 0))]).await;
    let metafields = many_metafields(&h, SHOP).await;
    let n = metafields.len();
    // The operation waits 4 s before it runs, so the gateway is polling it when Shopify starts failing.
    h.f.client
        .set_faults(&FaultConfig {
            bulk_delay_ms: 4_000,
            shops: vec![SHOP.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    h.send(&set_metafields("bulk-unfollowed", SHOP, metafields))
        .await;
    let recorded = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT status FROM bulk_operations WHERE command_id = 'bulk-unfollowed'",
        )
        .fetch_optional(&h.db.pool)
        .await
        .unwrap()
    };
    shopbridge_platform::testing::eventually("the bulk mutation accepted", || async {
        recorded().await.is_some()
    })
    .await;
    // Every call to the shop now fails with 500 for longer than the gateway's call deadline (twice over).
    h.f.client
        .set_faults(&FaultConfig {
            bulk_delay_ms: 4_000,
            error_rate: 1.0,
            shops: vec![SHOP.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let answered: Option<String> = sqlx::query_scalar(
        "SELECT status FROM command_results WHERE command_id = 'bulk-unfollowed'",
    )
    .fetch_optional(&h.db.pool)
    .await
    .unwrap();
    assert_eq!(
        answered, None,
        "not answered while the operation could not be followed"
    );
    assert_eq!(recorded().await.as_deref(), Some("RUNNING"));
    h.f.client
        .set_faults(&FaultConfig::default())
        .await
        .unwrap();

    let result = h.result_of("bulk-unfollowed").await;
    assert_eq!(status(&result), Status::Succeeded, "{:?}", result.problems);
    let Some(pb::command_result::Result::MetafieldsSet(set)) = &result.result else {
        panic!("{result:?}")
    };
    assert_eq!(set.metafields.len(), n);
    assert_eq!(recorded().await.as_deref(), Some("COMPLETED"));
    assert_eq!(shop_metafield_keys(&h.read(SHOP, "products").await), n);
    let stats: Value = h.stats(SHOP).await;
    assert_eq!(
        (
            stats["bulk_operations"].as_u64(),
            mutations(&stats, "stagedUploadsCreate"),
            mutations(&stats, "bulkOperationRunMutation"),
        ),
        (Some(1), 1, 1),
        "the same operation followed to its end, never uploaded or started again: {stats}"
    );
    assert_eq!(h.results().await.len(), 1, "answered once");
    h.finish().await;
}
