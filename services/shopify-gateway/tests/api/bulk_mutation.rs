//! Issue 4: what a bulk mutation's command answers once Shopify has accepted the operation. Its lines are applied
//! whatever happens to the gateway then, so the answer must say what Shopify did: a mutation that stopped part way
//! reports the lines it ran (from `partialDataUrl`) and each input it did not, and one the gateway cannot follow for
//! a while (Shopify failing past the call deadline) is not answered FAILED: it is delivered again and polled on.

use std::collections::HashSet;

use serde_json::Value;
use shopbridge_gateway::operations::catalog::DEFAULT_BULK_MUTATION_THRESHOLD;
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
            .all(|p| p.message.contains("has no result: bulk mutation")),
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
    // The operation waits 10 s before it runs, so the gateway is polling it when Shopify starts failing.
    h.f.client
        .set_faults(&FaultConfig {
            bulk_delay_ms: 10_000,
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
            bulk_delay_ms: 10_000,
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

// ----------------------------------------------------------------------------------------------------------------
// Over Shopify's upload limit: split into bulk mutations run in turn.

/// A simulated shop with products, the gateway's database, and catalog writes run straight through
/// `catalog_writes` (no bus): every write in bulk.
pub(crate) struct BulkShop {
    pub(crate) f: crate::budget::Fixture,
    pub(crate) db: shopbridge_platform::testing::TestDb,
    pub(crate) shop: shopbridge_gateway::shopify::executor::ShopCredentials,
    /// The shop's product ids.
    pub(crate) owners: Vec<String>,
    download: reqwest::Client,
}

impl BulkShop {
    pub(crate) async fn new(domain: &str, products: usize) -> Self {
        let f = crate::budget::fixture().await;
        let db = shopbridge_platform::testing::TestDb::new(&shopbridge_gateway::MIGRATOR).await;
        let token = f.client.create_shop(domain, "standard").await.unwrap();
        f.client.seed(domain, &seed(products, 1, 0)).await.unwrap();
        let owners = f
            .client
            .read(domain, "products")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect();
        let shop = shopbridge_gateway::shopify::executor::ShopCredentials {
            domain: domain.into(),
            token: token.into(),
            fence: None,
        };
        Self {
            f,
            db,
            shop,
            owners,
            download: reqwest::Client::new(),
        }
    }

    pub(crate) fn token(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.shop.token)
    }

    /// A writer of command `command_id` through `executor`, in bulk above 0 items, uploads of at most `max_bytes`.
    pub(crate) fn writer<'a>(
        &'a self,
        executor: &'a shopbridge_gateway::shopify::executor::Executor,
        command_id: &'a str,
        max_bytes: usize,
    ) -> shopbridge_gateway::bulk::Writer<'a> {
        shopbridge_gateway::bulk::Writer {
            executor,
            pool: &self.db.pool,
            download: &self.download,
            shop: &self.shop,
            lane: shopbridge_gateway::shopify::budget::Lane::Publish,
            command_id,
            bulk_mutation_threshold: 0,
            bulk_upload_max_bytes: max_bytes,
        }
    }

    async fn set(
        &self,
        command_id: &str,
        n: usize,
        max_bytes: usize,
    ) -> (
        Option<pb::MetafieldsSet>,
        shopbridge_gateway::outcome::Outcome,
    ) {
        let w = self.writer(&self.f.executor, command_id, max_bytes);
        let metafields = (0..n)
            .map(|i| metafield(&self.owners[i % self.owners.len()], &format!("key_{i}")))
            .collect();
        shopbridge_gateway::operations::catalog::metafields::set_metafields(
            &w,
            &pb::SetMetafields { metafields },
        )
        .await
    }

    /// The command's bulk operations: (stage, status), by stage.
    pub(crate) async fn operations(&self, command_id: &str) -> Vec<(String, String)> {
        sqlx::query_as("SELECT stage, status FROM bulk_operations WHERE command_id = $1 ORDER BY started_at, stage")
            .bind(command_id)
            .fetch_all(&self.db.pool)
            .await
            .unwrap()
    }

    pub(crate) async fn finish(self) {
        self.db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_over_the_upload_limit_go_as_several_bulk_mutations_in_turn_and_are_answered_as_one()
{
    const SHOP: &str = "bulk-split-shop.myshopify.com";
    let s = BulkShop::new(SHOP, 4).await;
    // 21 lines of 25 metafields, about 3.5 KB each: 10 KB holds 2 of them.
    let (set, outcome) = s.set("split", 520, 10_000).await;
    assert!(
        outcome.user_errors.is_empty() && outcome.failed_calls.is_empty(),
        "{outcome:?}"
    );
    let set = set.expect("the metafields set");
    let indices: HashSet<u32> = set.metafields.iter().map(|m| m.index).collect();
    assert_eq!(indices, (0..520).collect());
    assert!(
        set.bulk_operation_id
            .starts_with("gid://shopify/BulkOperation/")
    );
    let operations = s.operations("split").await;
    assert!(operations.len() > 5, "split in several: {operations:?}");
    // Each part's stage names its lines: together they are every line, in order, once.
    let mut ranges: Vec<(usize, usize)> = operations
        .iter()
        .map(|(stage, _)| {
            let range = stage.strip_prefix("mutation:metafields:").expect(stage);
            let (start, end) = range.split_once('-').expect(stage);
            (start.parse().unwrap(), end.parse().unwrap())
        })
        .collect();
    ranges.sort_unstable();
    assert_eq!(ranges.first().map(|r| r.0), Some(0));
    assert_eq!(ranges.last().map(|r| r.1), Some(21));
    assert!(ranges.windows(2).all(|w| w[0].1 == w[1].0), "{ranges:?}");
    assert!(
        operations.iter().all(|(_, status)| status == "COMPLETED"),
        "{operations:?}"
    );
    let stats = s.f.client.stats(SHOP).await.unwrap();
    assert_eq!(
        stats["bulk_operations"].as_u64(),
        Some(operations.len() as u64),
        "{stats}"
    );
    assert_eq!(
        mutations(&stats, "stagedUploadsCreate"),
        operations.len() as u64
    );
    let products = s.f.client.read(SHOP, "products").await.unwrap();
    assert_eq!(shop_metafield_keys(&products), 520);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_split_bulk_mutation_stops_part_way_the_later_parts_are_not_started() {
    const SHOP: &str = "bulk-split-stop-shop.myshopify.com";
    let s = BulkShop::new(SHOP, 4).await;
    // Each operation runs one line, then fails.
    s.f.client
        .set_faults(&FaultConfig {
            bulk_mutation_stop_after: Some(1),
            shops: vec![SHOP.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let (set, outcome) = s.set("split-stop", 520, 10_000).await;
    let set = set.expect("the metafields that were set");
    let indices: HashSet<u32> = set.metafields.iter().map(|m| m.index).collect();
    assert_eq!(indices, (0..25).collect(), "the first line ran");
    let missing: Vec<String> = outcome
        .user_errors
        .iter()
        .filter(|e| e.code() == "BULK_LINE_MISSING")
        .map(|e| e.field.clone().unwrap_or_default().join("."))
        .collect();
    assert_eq!(missing.len(), 495, "{:?}", &outcome.user_errors[..2]);
    assert_eq!(missing[0], "metafields.25");
    let failed: Vec<&str> = outcome
        .user_errors
        .iter()
        .filter(|e| e.code() == "BULK_FAILED")
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("1 of 21 lines ran"), "{failed:?}");
    assert_eq!(
        s.operations("split-stop").await,
        [("mutation:metafields:0-2".to_string(), "FAILED".to_string())],
        "the parts after it were not started"
    );
    assert_eq!(s.f.client.stats(SHOP).await.unwrap()["bulk_operations"], 1);
    let products = s.f.client.read(SHOP, "products").await.unwrap();
    assert_eq!(shop_metafield_keys(&products), 25);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_bulk_mutation_is_followed_past_canceling_to_its_end() {
    const SHOP: &str = "bulk-cancel-shop.myshopify.com";
    let s = BulkShop::new(SHOP, 4).await;
    // The operation waits 3 s before it runs: an operator cancels it meanwhile, and it is CANCELING until then.
    s.f.client
        .set_faults(&FaultConfig {
            bulk_delay_ms: 3_000,
            shops: vec![SHOP.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let cancel = async {
        let bulk_id = || async {
            sqlx::query_scalar::<_, String>(
                "SELECT bulk_id FROM bulk_operations WHERE command_id = 'cancel'",
            )
            .fetch_optional(&s.db.pool)
            .await
            .unwrap()
        };
        shopbridge_platform::testing::eventually("the bulk mutation accepted", || async {
            bulk_id().await.is_some()
        })
        .await;
        let bulk_id = bulk_id().await.unwrap();
        let (_, body) = s
            .f
            .client
            .graphql(
                SHOP,
                s.token(),
                "mutation C($id: ID!) { bulkOperationCancel(id: $id) { bulkOperation { status } userErrors { message } } }",
                serde_json::json!({"id": bulk_id}),
            )
            .await
            .unwrap();
        assert_eq!(
            body["data"]["bulkOperationCancel"]["bulkOperation"]["status"], "CANCELING",
            "{body}"
        );
    };
    let ((set, outcome), ()) = tokio::join!(s.set("cancel", 520, 99_000_000), cancel);
    assert!(set.is_none(), "nothing was set");
    let messages: Vec<&str> = outcome
        .user_errors
        .iter()
        .filter(|e| e.code() == "BULK_FAILED")
        .map(|e| e.message.as_str())
        .collect();
    assert!(
        messages.len() == 1
            && messages[0].contains("ended CANCELED")
            && outcome.unfinished.is_none(),
        "{outcome:?}"
    );
    assert_eq!(
        s.operations("cancel").await,
        [("mutation:metafields".to_string(), "CANCELED".to_string())]
    );
    assert_eq!(
        shop_metafield_keys(&s.f.client.read(SHOP, "products").await.unwrap()),
        0
    );
    s.finish().await;
}
