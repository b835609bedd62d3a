//! Issue 4, fairness: shops whose domains hash to the same partition share its consumers. A backlog of one shop (40
//! SetInventory commands of 250 quantities, each held up by the shop's slow answers) must not hold up another shop's
//! command on the same lane, and every command of the backlog still runs, exactly once.

use shopbridge_platform::bus::names;
use shopbridge_proto::gateway::{self as pb, command::Operation as Op};
use shopify_sim::faults::FaultConfig;

use crate::harness::{Harness, seed, succeeded};

const BUSY: &str = "fair-a.myshopify.com";
const BACKLOG: usize = 40;
/// Every answer to the busy shop takes this long: its 40 commands, 4 at a time, take some 10 s.
const LATENCY_MS: u64 = 1000;

/// Another shop in the busy shop's partition, so both are served by the same consumers.
fn neighbour() -> String {
    let busy = names::partition_for(BUSY, names::GATEWAY_PARTITIONS);
    (0..)
        .map(|i| format!("fair-b{i}.myshopify.com"))
        .find(|d| names::partition_for(d, names::GATEWAY_PARTITIONS) == busy)
        .unwrap()
}

/// A sync-lane SetInventory setting every level of `levels` to `quantity`.
fn set_all(id: String, shop: &str, levels: &[serde_json::Value], quantity: i64) -> pb::Command {
    pb::Command {
        command_id: id,
        shop_domain: shop.into(),
        channel_id: shop.into(),
        lane: pb::Lane::Sync as i32,
        operation: Some(Op::SetInventory(pb::SetInventory {
            quantities: levels
                .iter()
                .map(|level| pb::QuantityChange {
                    inventory_item_id: level["inventory_item_id"].as_str().unwrap().into(),
                    location_id: level["location_id"].as_str().unwrap().into(),
                    quantity,
                    compare_quantity: None,
                })
                .collect(),
        })),
    }
}

async fn answered_of(h: &Harness, shop: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM command_results WHERE shop_domain = $1")
        .bind(shop)
        .fetch_one(&h.db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shops_backlog_does_not_hold_up_another_shop_of_its_partition() {
    let quiet = neighbour();
    // 125 products of 2 variants at 1 location: 250 inventory levels, one SetInventory call per command.
    let h = Harness::start(&[(BUSY, seed(125, 1, 0)), (&quiet, seed(2, 1, 0))]).await;
    let levels = h.read(BUSY, "inventory").await.as_array().unwrap().clone();
    assert_eq!(levels.len(), 250);
    h.f.client
        .set_faults(&FaultConfig {
            latency_ms: LATENCY_MS,
            shops: vec![BUSY.into()],
            ..Default::default()
        })
        .await
        .unwrap();

    // The backlog first (in order, so it is ahead of the other shop's command in the stream), then the other shop.
    for i in 0..BACKLOG {
        h.send(&set_all(format!("busy-{i}"), BUSY, &levels, i as i64))
            .await;
    }
    let quiet_levels = h.read(&quiet, "inventory").await;
    let other = set_all(
        "quiet-1".into(),
        &quiet,
        &quiet_levels.as_array().unwrap()[..1],
        7,
    );
    h.send(&other).await;

    assert_eq!(h.answered("quiet-1").await, "STATUS_SUCCEEDED");
    let busy_done = answered_of(&h, BUSY).await;
    eprintln!(
        "the other shop was answered when the busy shop had {busy_done} of {BACKLOG} answered"
    );
    assert!(
        busy_done < 10,
        "the other shop's command waited behind the busy shop's backlog: {busy_done} of {BACKLOG} were answered first"
    );

    // The backlog still runs to the end, each command once.
    for i in 0..BACKLOG {
        h.answered(&format!("busy-{i}")).await;
    }
    let results = h.results().await;
    let busy: Vec<&pb::CommandResult> = results.iter().filter(|r| r.shop_domain == BUSY).collect();
    let order: Vec<usize> = busy
        .iter()
        .map(|r| r.command_id["busy-".len()..].parse().unwrap())
        .collect();
    eprintln!("answered in the order {order:?}");
    assert_eq!(busy.len(), BACKLOG, "one result per command");
    assert!(busy.iter().all(|r| succeeded(r)), "{busy:?}");
    let stats = h.stats(BUSY).await;
    assert_eq!(stats["duplicate_idempotency_keys"], 0, "{stats}");
    assert_eq!(
        stats["mutations"]["inventorySetQuantities"], BACKLOG as u64,
        "one call per command: {stats}"
    );
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(dead, 0);
    h.finish().await;
}
