//! Shipments over the bus against the simulator: a fulfillment per location with tracking, typed problems that
//! create nothing, a shipment whose first attempt died after Shopify applied it, tracking updates, webhook
//! registration, and every order-side mutation applied exactly once under injected faults.

use std::collections::HashSet;

use shopbridge_gateway::commands::CommandHandler;
use shopbridge_platform::bus::{Envelope, EventMeta, Handler};
use shopbridge_proto::gateway::{
    self as pb, command::Operation as Op, command_result::Result as R, fulfillment_line::Item,
};

use crate::harness::{Harness, Tokens, codes, command, seed, succeeded};

const SHOP: &str = "ship-shop.myshopify.com";

fn skus(products: &serde_json::Value, n: usize) -> Vec<String> {
    products
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["variants"].as_array().unwrap().iter())
        .map(|v| v["sku"].as_str().unwrap().to_string())
        .take(n)
        .collect()
}

fn tracking(number: &str) -> Option<pb::Tracking> {
    Some(pb::Tracking {
        company: "UPS".into(),
        number: number.into(),
        url: format!("https://www.ups.com/track?tracknum={number}"),
    })
}

fn line(item: Item, quantity: i64) -> pb::FulfillmentLine {
    pb::FulfillmentLine {
        item: Some(item),
        quantity,
    }
}

/// The order's line item ids in the store, in order.
async fn line_items(h: &Harness, order: &str) -> Vec<String> {
    let orders = h.read(SHOP, "orders").await;
    orders
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == order)
        .unwrap()["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect()
}

fn created(result: &pb::CommandResult) -> &pb::CreatedFulfillment {
    match &result.result {
        Some(R::FulfillmentCreated(c)) if c.fulfillments.len() == 1 => &c.fulfillments[0],
        other => panic!("no fulfillment in {other:?} ({:?})", result.problems),
    }
}

#[tokio::test]
async fn a_fulfillment_ships_lines_at_one_location_with_tracking_and_its_tracking_can_change() {
    let h = Harness::start(&[(SHOP, seed(10, 2, 0))]).await;
    let skus = skus(&h.read(SHOP, "products").await, 3);
    let locations = h.locations(SHOP).await;
    let (here, there) = (locations[0].as_str(), locations[1].as_str());
    let order = h
        .place_order(
            SHOP,
            &[
                (&skus[0], 3, here),
                (&skus[1], 2, here),
                (&skus[2], 1, there),
            ],
        )
        .await;
    let items = line_items(&h, &order).await;

    // Part of the first line (by line item id) and all of the second (by SKU): a partial shipment.
    let ship = pb::CreateFulfillment {
        order_id: order.clone(),
        location_id: here.into(),
        lines: vec![
            line(Item::LineItemId(items[0].clone()), 2),
            line(Item::Sku(skus[1].clone()), 2),
        ],
        tracking: tracking("1Z001"),
        notify_customer: true,
    };
    h.send(&command("ship-1", SHOP, Op::CreateFulfillment(ship)))
        .await;
    let result = h.result_of("ship-1").await;
    assert!(succeeded(&result), "{result:?}");
    let fulfillment = created(&result);
    assert!(fulfillment.id.starts_with("gid://shopify/Fulfillment/"));
    assert_eq!(fulfillment.status, "SUCCESS");
    assert_eq!(fulfillment.tracking, tracking("1Z001"));
    assert!(!fulfillment.already_existed);
    let shipped: Vec<(&str, i64)> = fulfillment
        .lines
        .iter()
        .map(|l| (l.line_item_id.as_str(), l.quantity))
        .collect();
    assert_eq!(
        shipped,
        vec![(items[0].as_str(), 2), (items[1].as_str(), 2)]
    );

    let store = h.read(SHOP, "fulfillments").await;
    assert_eq!(store.as_array().unwrap().len(), 1);
    assert_eq!(store[0]["location_id"], here);
    assert_eq!(store[0]["tracking"][0]["number"], "1Z001");
    let orders = h.read(SHOP, "orders").await;
    let stored = orders
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == order.as_str())
        .unwrap();
    assert_eq!(stored["fulfillment_status"], "PARTIALLY_FULFILLED");

    // The rest at this location, without naming lines; the other location's line stays open.
    let rest = pb::CreateFulfillment {
        order_id: order.clone(),
        location_id: here.into(),
        lines: vec![],
        tracking: tracking("1Z002"),
        notify_customer: false,
    };
    h.send(&command("ship-2", SHOP, Op::CreateFulfillment(rest)))
        .await;
    let result = h.result_of("ship-2").await;
    assert!(succeeded(&result), "{result:?}");
    let second = created(&result);
    assert_eq!(second.lines.len(), 1);
    assert_eq!(
        (
            second.lines[0].line_item_id.as_str(),
            second.lines[0].quantity
        ),
        (items[0].as_str(), 1)
    );

    let update = pb::UpdateTracking {
        fulfillment_id: fulfillment.id.clone(),
        tracking: Some(pb::Tracking {
            company: "FedEx".into(),
            number: "FX-9".into(),
            url: String::new(),
        }),
        notify_customer: false,
    };
    h.send(&command("track-1", SHOP, Op::UpdateTracking(update)))
        .await;
    let result = h.result_of("track-1").await;
    assert!(succeeded(&result), "{result:?}");
    let Some(R::TrackingUpdated(updated)) = &result.result else {
        panic!("{result:?}")
    };
    assert_eq!(updated.fulfillment_id, fulfillment.id);
    assert_eq!(updated.tracking.as_ref().unwrap().number, "FX-9");
    let store = h.read(SHOP, "fulfillments").await;
    let stored = store
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == fulfillment.id.as_str())
        .unwrap();
    assert_eq!(stored["tracking"][0]["company"], "FedEx");
    assert_eq!(stored["tracking"][0]["number"], "FX-9");
    let stats = h.stats(SHOP).await;
    assert_eq!(stats["mutations"]["fulfillmentCreate"], 2);
    assert_eq!(stats["mutations"]["fulfillmentTrackingInfoUpdate"], 1);
    h.finish().await;
}

#[tokio::test]
async fn lines_that_cannot_be_mapped_fail_with_typed_problems_and_create_nothing() {
    let h = Harness::start(&[(SHOP, seed(10, 2, 0))]).await;
    let skus = skus(&h.read(SHOP, "products").await, 3);
    let locations = h.locations(SHOP).await;
    let (here, there) = (locations[0].as_str(), locations[1].as_str());
    let order = h
        .place_order(SHOP, &[(&skus[0], 1, here), (&skus[1], 2, there)])
        .await;
    let items = line_items(&h, &order).await;
    let ship = |lines: Vec<pb::FulfillmentLine>, order: &str, location: &str| {
        Op::CreateFulfillment(pb::CreateFulfillment {
            order_id: order.into(),
            location_id: location.into(),
            lines,
            tracking: tracking("1Z100"),
            notify_customer: false,
        })
    };
    let cases = [
        (
            "bad-lines",
            ship(
                vec![
                    // Assigned to the other location.
                    line(Item::Sku(skus[1].clone()), 1),
                    line(Item::LineItemId(items[0].clone()), 5),
                    line(Item::Sku("NO-SUCH-SKU".into()), 1),
                ],
                &order,
                here,
            ),
            vec![
                "LINE_ITEM_NOT_FOUND",
                "QUANTITY_EXCEEDS_REMAINING",
                "LINE_ITEM_NOT_FOUND",
            ],
        ),
        (
            "no-order",
            ship(vec![], "gid://shopify/Order/999999999", here),
            vec!["ORDER_NOT_FOUND"],
        ),
        (
            "no-location",
            ship(vec![], &order, "gid://shopify/Location/424242"),
            vec!["NO_FULFILLMENT_ORDER"],
        ),
        (
            "bad-ids",
            ship(vec![line(Item::Sku(skus[0].clone()), 0)], "#1001", here),
            vec!["INVALID_REQUEST"],
        ),
    ];
    for (id, op, _) in &cases {
        h.send(&command(id, SHOP, op.clone())).await;
    }
    let ids: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let results = h.results_of(&ids).await;
    for ((id, _, expected), result) in cases.iter().zip(&results) {
        assert_eq!(
            result.status,
            pb::command_result::Status::Failed as i32,
            "{id}: {result:?}"
        );
        assert_eq!(&codes(result), expected, "{id}: {:?}", result.problems);
        assert_eq!(result.result, None);
    }
    let lines_problem = &results[0].problems[1];
    assert_eq!(lines_problem.field, "lines.1");
    assert!(
        lines_problem.message.contains("1 remain"),
        "{}",
        lines_problem.message
    );

    // The valid part alone ships; then the same line again is ALREADY_FULFILLED (another tracking number).
    h.send(&command(
        "ok",
        SHOP,
        ship(
            vec![line(Item::LineItemId(items[0].clone()), 1)],
            &order,
            here,
        ),
    ))
    .await;
    assert!(succeeded(&h.result_of("ok").await));
    let again = Op::CreateFulfillment(pb::CreateFulfillment {
        order_id: order.clone(),
        location_id: here.into(),
        lines: vec![line(Item::LineItemId(items[0].clone()), 1)],
        tracking: tracking("1Z999"),
        notify_customer: false,
    });
    h.send(&command("again", SHOP, again)).await;
    let again = h.result_of("again").await;
    assert_eq!(codes(&again), vec!["ALREADY_FULFILLED"], "{again:?}");
    assert_eq!(h.stats(SHOP).await["mutations"]["fulfillmentCreate"], 1);
    h.finish().await;
}

/// The gateway dies after Shopify applied fulfillmentCreate and before the result committed: the command comes
/// back, finds its items fulfilled and the shipment (same location and tracking number) in Shopify, and answers
/// with that fulfillment instead of creating another or failing.
#[tokio::test]
async fn a_shipment_whose_first_attempt_died_after_shopify_applied_it_is_answered_once() {
    let h = Harness::start(&[(SHOP, seed(10, 1, 0))]).await;
    let skus = skus(&h.read(SHOP, "products").await, 2);
    let here = h.locations(SHOP).await.remove(0);
    let order = h
        .place_order(SHOP, &[(&skus[0], 1, &here), (&skus[1], 1, &here)])
        .await;
    let ship = command(
        "ship-crash",
        SHOP,
        Op::CreateFulfillment(pb::CreateFulfillment {
            order_id: order.clone(),
            location_id: here.clone(),
            lines: vec![],
            tracking: tracking("1Z777"),
            notify_customer: false,
        }),
    );
    // First attempt: the handler runs in a transaction that never commits (the process died).
    let handler = CommandHandler::new(
        h.f.executor.clone(),
        std::sync::Arc::new(Tokens(
            [(SHOP.to_string(), h.tokens[SHOP].clone().into())].into(),
        )),
        h.db.pool.clone(),
        reqwest::Client::new(),
        None,
    );
    let envelope = Envelope {
        message_id: "ship-crash".into(),
        subject: String::new(),
        meta: EventMeta::tenant("t1"),
        message: ship.clone(),
        delivered: 1,
        last_delivery: false,
    };
    handler.prepare(&envelope).await.unwrap();
    let mut tx = h.db.pool.begin().await.unwrap();
    handler.handle(&mut tx, &envelope).await.unwrap();
    tx.rollback().await.unwrap();
    // The dead process's claim lapses; the running gateway takes it over (its takeover age is shrunk below).
    sqlx::query("UPDATE command_claims SET heartbeat_at = now() - interval '1 hour'")
        .execute(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(h.stats(SHOP).await["mutations"]["fulfillmentCreate"], 1);
    let first = h.read(SHOP, "fulfillments").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // JetStream redelivers it to the running gateway.
    h.send(&ship).await;
    let result = h.result_of("ship-crash").await;
    assert!(succeeded(&result), "{result:?}");
    let fulfillment = created(&result);
    assert_eq!(fulfillment.id, first);
    assert!(fulfillment.already_existed);
    assert_eq!(fulfillment.tracking.as_ref().unwrap().number, "1Z777");
    let stats = h.stats(SHOP).await;
    assert_eq!(
        stats["mutations"]["fulfillmentCreate"], 1,
        "never created twice"
    );
    assert_eq!(
        h.read(SHOP, "fulfillments").await.as_array().unwrap().len(),
        1
    );
    assert_eq!(h.results().await.len(), 1);
    h.finish().await;
}

#[tokio::test]
async fn webhooks_are_registered_once_and_only_the_missing_ones_are_created() {
    let h = Harness::start(&[(SHOP, seed(1, 1, 0))]).await;
    let url = "https://gateway.example.com/shopify/webhooks";
    // One subscription exists already.
    let existing = h
        .graphql(
            SHOP,
            "mutation($sub: WebhookSubscriptionInput!) { webhookSubscriptionCreate(topic: ORDERS_CREATE, webhookSubscription: $sub) { webhookSubscription { id } } }",
            serde_json::json!({"sub": {"uri": url}}),
        )
        .await["webhookSubscriptionCreate"]["webhookSubscription"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let register = |topics: &[&str]| {
        Op::RegisterWebhooks(pb::RegisterWebhooks {
            callback_url: url.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
        })
    };
    h.send(&command(
        "hooks-1",
        SHOP,
        register(&[
            "orders/create",
            "ORDERS_UPDATED",
            "app/uninstalled",
            "orders/updated",
        ]),
    ))
    .await;
    let result = h.result_of("hooks-1").await;
    assert!(succeeded(&result), "{result:?}");
    let Some(R::WebhooksRegistered(registered)) = &result.result else {
        panic!("{result:?}")
    };
    let seen: Vec<(&str, bool)> = registered
        .subscriptions
        .iter()
        .map(|s| (s.topic.as_str(), s.created))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("ORDERS_CREATE", false),
            ("ORDERS_UPDATED", true),
            ("APP_UNINSTALLED", true)
        ]
    );
    assert_eq!(registered.subscriptions[0].id, existing);
    assert!(
        registered
            .subscriptions
            .iter()
            .all(|s| s.callback_url == url)
    );

    // Again (a scheduled repair), with a topic Shopify does not have and one that is not a topic at all.
    h.send(&command(
        "hooks-2",
        SHOP,
        register(&[
            "orders/create",
            "ORDERS_UPDATED",
            "APP_UNINSTALLED",
            "ORDERS_EXPLODED",
            "not a topic",
        ]),
    ))
    .await;
    let again = h.result_of("hooks-2").await;
    assert_eq!(
        again.status,
        pb::command_result::Status::Partial as i32,
        "{again:?}"
    );
    assert_eq!(
        codes(&again),
        vec!["INVALID_TOPIC", "INVALID_REQUEST"],
        "{:?}",
        again.problems
    );
    let Some(R::WebhooksRegistered(registered)) = &again.result else {
        panic!("{again:?}")
    };
    assert!(registered.subscriptions.iter().all(|s| !s.created));
    assert_eq!(registered.subscriptions.len(), 3);
    let stats = h.stats(SHOP).await;
    assert_eq!(
        stats["mutations"]["webhookSubscriptionCreate"], 3,
        "the test's own, then two by the gateway, none on the repeat"
    );
    h.finish().await;
}

/// Issue 4: with 5xx bursts, 429s and dropped connections, every fulfillment, tracking update, tag and close is
/// answered once and applied once.
#[tokio::test]
async fn under_5xx_429_and_dropped_connections_every_order_mutation_is_applied_once() {
    let h = Harness::start(&[(SHOP, seed(10, 1, 0))]).await;
    let skus = skus(&h.read(SHOP, "products").await, 4);
    let here = h.locations(SHOP).await.remove(0);
    let mut orders = Vec::new();
    for i in 0..12 {
        let sku = &skus[i % skus.len()];
        orders.push(h.place_order(SHOP, &[(sku, 2, &here)]).await);
    }
    let faults: shopify_sim::FaultConfig = serde_json::from_value(serde_json::json!({
        "error_rate": 0.15, "error_status": 503, "rate_429": 0.1, "retry_after_secs": 0.1, "drop_rate": 0.1,
        "shops": [SHOP], "seed": 21
    }))
    .unwrap();
    h.f.client.set_faults(&faults).await.unwrap();

    let ship_ids: Vec<String> = (0..orders.len()).map(|i| format!("ship-{i}")).collect();
    for (i, order) in orders.iter().enumerate() {
        let ship = pb::CreateFulfillment {
            order_id: order.clone(),
            location_id: here.clone(),
            lines: vec![line(Item::Sku(skus[i % skus.len()].clone()), 2)],
            tracking: tracking(&format!("1Z{i:04}")),
            notify_customer: false,
        };
        h.send(&command(&ship_ids[i], SHOP, Op::CreateFulfillment(ship)))
            .await;
    }
    let ids: Vec<&str> = ship_ids.iter().map(String::as_str).collect();
    let shipped = h.results_of(&ids).await;
    assert!(shipped.iter().all(succeeded), "{shipped:?}");
    let mut follow_ups = Vec::new();
    for (i, result) in shipped.iter().enumerate() {
        let fulfillment = created(result).id.clone();
        let track = pb::UpdateTracking {
            fulfillment_id: fulfillment,
            tracking: tracking(&format!("2Z{i:04}")),
            notify_customer: false,
        };
        follow_ups.push(command(
            &format!("track-{i}"),
            SHOP,
            Op::UpdateTracking(track),
        ));
        follow_ups.push(command(
            &format!("tag-{i}"),
            SHOP,
            Op::TagOrder(pb::TagOrder {
                order_id: orders[i].clone(),
                tags: vec!["shipped".into()],
            }),
        ));
        follow_ups.push(command(
            &format!("close-{i}"),
            SHOP,
            Op::CloseOrder(pb::CloseOrder {
                order_id: orders[i].clone(),
            }),
        ));
    }
    for c in &follow_ups {
        h.send(c).await;
    }
    let ids: Vec<&str> = follow_ups.iter().map(|c| c.command_id.as_str()).collect();
    let done = h.results_of(&ids).await;
    assert!(done.iter().all(succeeded), "{done:?}");

    let results = h.results().await;
    let unique: HashSet<&str> = results.iter().map(|r| r.command_id.as_str()).collect();
    assert_eq!(unique.len(), results.len(), "no command answered twice");
    assert_eq!(results.len(), 12 * 4);
    let stats = h.stats(SHOP).await;
    assert!(
        stats["faults_injected"].as_u64().unwrap() > 10,
        "faults really happened: {stats}"
    );
    assert_eq!(stats["duplicate_idempotency_keys"], 0);
    for mutation in [
        "fulfillmentCreate",
        "fulfillmentTrackingInfoUpdate",
        "tagsAdd",
        "orderClose",
    ] {
        assert_eq!(stats["mutations"][mutation], 12, "{mutation}: {stats}");
    }
    let store = h.read(SHOP, "fulfillments").await;
    assert_eq!(store.as_array().unwrap().len(), 12);
    h.finish().await;
}
