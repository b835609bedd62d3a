//! Issue 4, priority: with 10,000 inventory updates queued for a shop on the sync lane (100,000 points of work, some
//! 1,000 s at the standard plan's 100 points/s), a fulfillment for that shop on the orders lane reaches Shopify
//! within a second of being published, and another shop's work is not held up by the first shop's backlog.
//! Measured over the bus with the deployed consumer concurrency and database pool size; the moment of the first
//! Shopify call is taken from a recording proxy in front of the simulator.

use std::time::{Duration, Instant};

use futures::StreamExt;
use shopbridge_platform::bus::names;
use shopbridge_proto::gateway::{self as pb, command::Operation as Op};

use crate::harness::{Harness, command, seed};

const BUSY: &str = "busy-a.myshopify.com";
const BACKLOG: usize = 10_000;

/// A shop in another partition than `BUSY`, so its commands have consumers of their own.
fn other_shop() -> String {
    let busy = names::partition_for(BUSY, names::GATEWAY_PARTITIONS);
    (0..)
        .map(|i| format!("quiet-b{i}.myshopify.com"))
        .find(|d| names::partition_for(d, names::GATEWAY_PARTITIONS) != busy)
        .unwrap()
}

fn set_one(id: String, shop: &str, level: &serde_json::Value, quantity: i64) -> pb::Command {
    pb::Command {
        command_id: id,
        shop_domain: shop.into(),
        channel_id: shop.into(),
        lane: pb::Lane::Sync as i32,
        operation: Some(Op::SetInventory(pb::SetInventory {
            quantities: vec![pb::QuantityChange {
                inventory_item_id: level["inventory_item_id"].as_str().unwrap().into(),
                location_id: level["location_id"].as_str().unwrap().into(),
                quantity,
                compare_quantity: None,
            }],
        })),
    }
}

/// Runs as deployed (the consumer concurrency and pool size of default.toml). Each command holds a database
/// connection while it waits for its shop's budget, so this holds only while a lane's consumer concurrency stays
/// below the pool size: with the old 32 handlers per consumer and a pool of 10 the fulfillment waited 2.5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fulfillment_reaches_shopify_within_a_second_behind_10000_queued_inventory_updates() {
    let quiet = other_shop();
    let h = Harness::start_recorded(&[(BUSY, seed(50, 2, 0)), (&quiet, seed(2, 1, 0))]).await;
    let inventory = h.read(BUSY, "inventory").await;
    let levels = inventory.as_array().unwrap();
    let skus: Vec<String> = h.read(BUSY, "products").await[0]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sku"].as_str().unwrap().to_string())
        .collect();
    let here = h.locations(BUSY).await.remove(0);
    let order = h.place_order(BUSY, &[(&skus[0], 1, &here)]).await;

    // The backlog: 10,000 one-quantity SetInventory commands for the busy shop, each a 10-point mutation.
    let backlog: Vec<pb::Command> = (0..BACKLOG)
        .map(|i| {
            set_one(
                format!("inv-{i}"),
                BUSY,
                &levels[i % levels.len()],
                (i % 50) as i64,
            )
        })
        .collect();
    let published = Instant::now();
    futures::stream::iter(&backlog)
        .for_each_concurrent(256, |c| h.send(c))
        .await;
    eprintln!("published {BACKLOG} commands in {:?}", published.elapsed());
    let budget = h.f.executor.budget();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let snapshot = budget.snapshot(BUSY);
        if snapshot.available < 100.0 && snapshot.waiting[1] > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog never built up: {snapshot:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the backlog run a while, so the lane's consumers, the database pool and the bucket are all busy.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let applied_before = h.stats(BUSY).await["mutations"]["inventorySetQuantities"]
        .as_u64()
        .unwrap_or(0);

    let proxy = h.proxy.as_ref().unwrap();
    proxy.watch("OrderFulfillmentOrders");
    let ship = command(
        "ship-urgent",
        BUSY,
        Op::CreateFulfillment(pb::CreateFulfillment {
            order_id: order.clone(),
            location_id: here.clone(),
            lines: vec![],
            tracking: Some(pb::Tracking {
                company: "UPS".into(),
                number: "1ZURGENT".into(),
                url: String::new(),
            }),
            notify_customer: false,
        }),
    );
    let sent = Instant::now();
    h.send(&ship).await;
    let status = h.answered("ship-urgent").await;
    let done = sent.elapsed();
    assert_eq!(status, "STATUS_SUCCEEDED");
    let started = proxy
        .first_seen("OrderFulfillmentOrders")
        .expect("the fulfillment's first call went through the proxy")
        .duration_since(sent);
    eprintln!("fulfillment: first Shopify call after {started:?}, result after {done:?}");
    assert!(
        started < Duration::from_secs(1),
        "the fulfillment's first call waited {started:?} behind the backlog"
    );

    // Another shop's sync work, on another partition, while the busy shop's backlog is still queued.
    let quiet_levels = h.read(&quiet, "inventory").await;
    proxy.watch(quiet_levels[0]["inventory_item_id"].as_str().unwrap());
    let other = set_one("quiet-inv".into(), &quiet, &quiet_levels[0], 7);
    let sent = Instant::now();
    h.send(&other).await;
    assert_eq!(h.answered("quiet-inv").await, "STATUS_SUCCEEDED");
    let started = proxy
        .first_seen(quiet_levels[0]["inventory_item_id"].as_str().unwrap())
        .unwrap()
        .duration_since(sent);
    eprintln!(
        "other shop: first Shopify call after {started:?}, result after {:?}",
        sent.elapsed()
    );
    assert!(
        started < Duration::from_secs(1),
        "the other shop waited {started:?} on the busy shop"
    );

    let stats = h.stats(BUSY).await;
    let applied = stats["mutations"]["inventorySetQuantities"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        applied > applied_before && (applied as usize) < BACKLOG / 2,
        "the backlog was running and still queued: {applied} applied"
    );
    assert_eq!(stats["throttled"], 0);
    h.finish().await;
}
