//! Get Orders end to end: runs requested on the bus and webhooks delivered by the simulated store, through the
//! gateway, into the orders service; checked through the orders API, the run's events and the orders' events.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use chrono::Utc;
use serde_json::json;
use shopbridge_platform::testing::eventually;
use shopbridge_proto::{orders as pb, runs};
use sqlx::Row;
use tonic::Code;

use crate::support::{
    shop::{self, OrderSpec},
    stack::{Options, Stack},
};

const FULL: Options = Options {
    gateway: true,
    fast_timers: false,
    orders: true,
    bulk: false,
};

const TAG: &str = "Received by Shopbridge";

fn enabled(location: &str) -> pb::GetOrdersSettings {
    pb::GetOrdersSettings {
        enabled: true,
        location_id: location.to_string(),
        import_orders_without_location: true,
        fulfillment_statuses: vec![
            pb::FulfillmentStatus::Unfulfilled as i32,
            pb::FulfillmentStatus::PartiallyFulfilled as i32,
        ],
        financial_statuses: vec![pb::FinancialStatus::Any as i32],
        pii_retention: pb::PiiRetention::Indefinitely as i32,
        tag_after_import: String::new(),
        updated_within_days: 14,
        channel_id: String::new(),
    }
}

async fn run(stack: &Stack) -> (String, runs::RunFinished) {
    let run_id = stack.request_get_orders().await;
    let finished = stack
        .finished_within(&run_id, Duration::from_secs(60))
        .await;
    (run_id, finished)
}

async fn get(stack: &Stack, shopify_id: &str) -> Result<pb::Order, tonic::Status> {
    stack
        .client()
        .await
        .get_order(pb::GetOrderRequest {
            order_id: shopify_id.to_string(),
            channel_id: stack.channel_id.clone(),
        })
        .await
        .map(|r| r.into_inner().order.unwrap())
}

const FINANCIAL: [&str; 8] = [
    "PAID",
    "PENDING",
    "AUTHORIZED",
    "PARTIALLY_PAID",
    "PARTIALLY_REFUNDED",
    "VOIDED",
    "REFUNDED",
    "EXPIRED",
];

/// The table: every fulfillment status x location (ours, other, none) x hold (open, on hold, scheduled), every
/// financial status in turn, missing SKUs and addresses sprinkled in. The expected sets are computed here from the
/// spec's rules, independently of the service's code.
#[tokio::test]
async fn a_run_imports_exactly_the_orders_the_settings_imply_and_logs_each_rejected_one() {
    let stack = Stack::start(FULL).await;
    shopify_sim_locations(&stack, 2).await;
    let locations = stack.locations().await;
    let (ours, other) = (locations[0].clone(), locations[1].clone());
    let mut settings = enabled(&ours);
    settings.financial_statuses = vec![
        pb::FinancialStatus::Paid as i32,
        pb::FinancialStatus::Unpaid as i32,
    ];
    stack.set_settings(settings).await;

    let mut expected_imported = BTreeSet::new();
    let mut expected_rejected = BTreeMap::new();
    let mut all = 0;
    for i in 0..81usize {
        let fulfilled = ["none", "partial", "all"][i % 3];
        let location = [Some(ours.clone()), Some(other.clone()), None][(i / 3) % 3].clone();
        // Shopify holds fulfillment orders, so an order with none (no location) is never held; held work is not
        // fulfilled.
        let hold = if fulfilled == "none" && location.is_some() {
            ["OPEN", "ON_HOLD", "SCHEDULED"][(i / 9) % 3]
        } else {
            "OPEN"
        };
        let financial = FINANCIAL[(i + i / 27) % FINANCIAL.len()];
        let missing_sku = i % 5 == 0;
        let missing_address = i % 7 == 3;
        let placed = shop::place(
            &stack,
            &OrderSpec {
                financial_status: financial,
                // No location: nothing can be fulfilled either.
                fulfilled: if location.is_some() {
                    fulfilled
                } else {
                    "none"
                },
                no_location: location.is_none(),
                location: location.clone(),
                hold,
                missing_sku,
                missing_address,
                ..OrderSpec::default()
            },
        )
        .await;
        all += 1;
        // The spec's rules, written out for the test.
        let held = hold != "OPEN";
        let status_ok = fulfilled != "all" || location.is_none();
        // paid, and Shopify's "unpaid": authorized or partially paid.
        let financial_ok = matches!(financial, "PAID" | "AUTHORIZED" | "PARTIALLY_PAID");
        // Our location, or none (imported: import_orders_without_location).
        let location_ok = location.as_deref() != Some(other.as_str());
        if !held && status_ok && financial_ok && location_ok {
            if missing_sku || missing_address {
                expected_rejected.insert(
                    placed.id.clone(),
                    (placed.name.clone(), missing_sku, missing_address),
                );
            } else {
                expected_imported.insert(placed.id.clone());
            }
        }
    }
    assert!(expected_imported.len() >= 5 && !expected_rejected.is_empty());

    let (run_id, finished) = run(&stack).await;
    let imported: BTreeSet<String> = stack
        .orders()
        .await
        .into_iter()
        .map(|o| o.shopify_order_id)
        .collect();
    assert_eq!(
        imported, expected_imported,
        "the imported set is what the settings imply"
    );
    assert_eq!(
        finished.outcome,
        runs::Outcome::Partial as i32,
        "{finished:?}"
    );
    let counters = finished.counters.unwrap();
    assert_eq!(counters.processed, all);
    assert_eq!(counters.created, expected_imported.len() as u64);
    assert_eq!(counters.failed, expected_rejected.len() as u64);

    let log = stack.log(&run_id).await;
    let rejected: BTreeMap<String, String> = log
        .iter()
        .filter(|e| e.code == "ORDER_CANNOT_BE_SAVED")
        .map(|e| (e.entity.clone().unwrap().shopify_id, e.message.clone()))
        .collect();
    assert_eq!(
        rejected.keys().collect::<BTreeSet<_>>(),
        expected_rejected.keys().collect::<BTreeSet<_>>(),
        "each rejected order is named in the log"
    );
    for (id, (name, missing_sku, missing_address)) in &expected_rejected {
        let message = &rejected[id];
        assert!(
            message.starts_with(&format!("Order {name} cannot be saved")),
            "{message}"
        );
        assert_eq!(message.contains("has no SKU"), *missing_sku, "{message}");
        assert_eq!(
            message.contains("no shipping address"),
            *missing_address,
            "{message}"
        );
    }
    assert!(
        log.iter().any(|e| e.code == "ORDER_HELD"),
        "held orders are named too"
    );

    // Another tenant sees none of them: NOT_FOUND, exactly like a missing order.
    let other_tenant = stack.other_tenant("someone else", &["orders:read"]).await;
    let mut foreign = stack.client_with(&other_tenant.token).await;
    let mine = stack.orders().await.remove(0);
    let err = foreign
        .get_order(pb::GetOrderRequest {
            order_id: mine.order_id.clone(),
            channel_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let listed = foreign
        .list_orders(pb::ListOrdersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total, 0);
    // Filters: status, text on the name or a SKU.
    let by_name = stack
        .orders_where(pb::ListOrdersRequest {
            text: mine.name.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(by_name.len(), 1);
    let by_sku = stack
        .orders_where(pb::ListOrdersRequest {
            text: "sku-b".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(by_sku.len(), expected_imported.len());
    stack.finish().await;
}

/// Adds locations to the simulated shop (it starts with one).
async fn shopify_sim_locations(stack: &Stack, n: usize) {
    stack
        .sim_client
        .seed(
            &stack.shop,
            &shopify_sim::client::SeedRequestJson {
                products: 0,
                variants_per_product: 1,
                locations: n,
                orders: 0,
                seed: 1,
            },
        )
        .await
        .expect("seed locations");
}

#[tokio::test]
async fn a_held_order_comes_after_release_an_update_is_not_a_duplicate_and_the_tag_is_added_once() {
    let stack = Stack::start(FULL).await;
    let mut settings = enabled("");
    settings.tag_after_import = TAG.into();
    stack.set_settings(settings).await;
    let held = shop::place(
        &stack,
        &OrderSpec {
            hold: "ON_HOLD",
            ..OrderSpec::default()
        },
    )
    .await;

    let (run_id, finished) = run(&stack).await;
    assert_eq!(finished.outcome, runs::Outcome::Succeeded as i32);
    assert!(stack.orders().await.is_empty(), "a held order waits");
    assert!(
        stack
            .log(&run_id)
            .await
            .iter()
            .any(|e| e.code == "ORDER_HELD")
    );

    // Released without a webhook: the next run imports it.
    shop::change(
        &stack,
        &held.id,
        json!({"release_hold": true, "notify": false}),
    )
    .await;
    let (_, finished) = run(&stack).await;
    assert_eq!(finished.counters.unwrap().created, 1);
    eventually("the order is tagged", || async {
        get(&stack, &held.id)
            .await
            .map(|o| o.tagged_at.is_some())
            .unwrap_or(false)
    })
    .await;

    // Paid later and partly shipped: the next run updates it, never a second order.
    shop::change(
        &stack,
        &held.id,
        json!({"financial_status": "PARTIALLY_REFUNDED", "fulfill": "partial", "notify": false}),
    )
    .await;
    let (_, finished) = run(&stack).await;
    assert_eq!(finished.counters.unwrap().updated, 1);
    let orders = stack.orders().await;
    assert_eq!(orders.len(), 1, "updated, not duplicated");
    let order = get(&stack, &held.id).await.unwrap();
    assert_eq!(order.financial_status, "PARTIALLY_REFUNDED");
    assert_eq!(order.fulfillment_status, "PARTIALLY_FULFILLED");
    let kinds: Vec<&str> = order.history.iter().map(|h| h.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["imported", "tagged", "updated"],
        "{:?}",
        order.history
    );
    let update = &order.history[2];
    assert!(
        update
            .changes
            .iter()
            .any(|c| c == "financial_status: PAID -> PARTIALLY_REFUNDED"),
        "{update:?}"
    );
    assert!(update.changes.iter().any(|c| c == "lines"), "{update:?}");

    // One more run with nothing new: nothing changes, no second tag.
    let (_, finished) = run(&stack).await;
    let c = finished.counters.unwrap();
    assert_eq!((c.created, c.updated), (0, 0));
    let in_shopify = shop::shopify_order(&stack, &held.id).await;
    let tags: Vec<&str> = in_shopify["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tags, [TAG]);
    let tagged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM order_history WHERE kind = 'tagged'")
            .fetch_one(&stack.orders_db.pool)
            .await
            .unwrap();
    assert_eq!(tagged, 1, "tagged once");
    stack.finish().await;
}

#[tokio::test]
async fn a_webhook_stores_the_order_and_publishes_order_imported_within_seconds_and_a_missed_one_is_reconciled()
 {
    let stack = Stack::start(FULL).await;
    stack.set_settings(enabled("")).await;
    stack.subscribe_order_webhooks().await;

    let started = Instant::now();
    let placed = shop::place(&stack, &OrderSpec::default()).await;
    let imported = loop {
        let events = stack.nats.events::<pb::OrderImported>().await;
        if let Some(e) = events
            .into_iter()
            .find(|e| e.order.as_ref().unwrap().shopify_order_id == placed.id)
        {
            break e.order.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no OrderImported within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let latency = started.elapsed();
    assert!(
        latency < Duration::from_secs(5),
        "webhook to OrderImported took {latency:?}"
    );
    assert_eq!(imported.name, placed.name);
    assert_eq!(imported.lines.len(), 2);
    let stored = get(&stack, &placed.id).await.unwrap();
    assert_eq!(stored.history[0].source, "webhook");

    // A change whose webhook never came: the next scheduled run catches it.
    shop::change(
        &stack,
        &placed.id,
        json!({"financial_status": "REFUNDED", "notify": false}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        get(&stack, &placed.id).await.unwrap().financial_status,
        "PAID"
    );
    let (_, finished) = run(&stack).await;
    assert_eq!(finished.counters.unwrap().updated, 1);
    assert_eq!(
        get(&stack, &placed.id).await.unwrap().financial_status,
        "REFUNDED"
    );

    // A change with its webhook: updated within seconds, OrderUpdated says what changed.
    shop::change(&stack, &placed.id, json!({"fulfill": "all"})).await;
    eventually("orders/updated is applied", || async {
        get(&stack, &placed.id).await.unwrap().fulfillment_status == "FULFILLED"
    })
    .await;
    let updated = stack.nats.events::<pb::OrderUpdated>().await;
    assert!(updated.iter().any(|u| {
        u.changes
            .iter()
            .any(|c| c == "fulfillment_status: UNFULFILLED -> FULFILLED")
    }));
    assert_eq!(stack.orders().await.len(), 1);
    stack.finish().await;
}

#[tokio::test]
async fn disabled_mapping_fields_are_absent_in_storage_and_in_events() {
    let stack = Stack::start(FULL).await;
    stack.set_settings(enabled("")).await;
    let off = [
        "billing_address.phone",
        "order.total",
        "line_item.title",
        "customer.email_to_shipping",
    ];
    stack
        .client()
        .await
        .set_get_orders_mapping(pb::SetGetOrdersMappingRequest {
            mapping: Some(pb::GetOrdersMapping {
                channel_id: stack.channel_id.clone(),
                fields: off
                    .iter()
                    .map(|f| pb::MappingField {
                        field: f.to_string(),
                        enabled: false,
                    })
                    .collect(),
                currency_by_location: Default::default(),
            }),
        })
        .await
        .unwrap();
    let placed = shop::place(
        &stack,
        &OrderSpec {
            digital: false,
            ..OrderSpec::default()
        },
    )
    .await;
    let (_, finished) = run(&stack).await;
    assert_eq!(finished.counters.unwrap().created, 1);

    let pool = &stack.orders_db.pool;
    let total: Option<String> = sqlx::query_scalar("SELECT total_amount::text FROM orders")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(total, None);
    let titles: Vec<Option<String>> = sqlx::query_scalar("SELECT title FROM order_lines")
        .fetch_all(pool)
        .await
        .unwrap();
    assert!(titles.iter().all(Option::is_none));
    let rows = sqlx::query("SELECT kind, phone, email FROM order_addresses ORDER BY kind")
        .fetch_all(pool)
        .await
        .unwrap();
    let billing = &rows[0];
    assert_eq!(billing.get::<String, _>("kind"), "billing");
    assert_eq!(billing.get::<Option<String>, _>("phone"), None);
    assert_eq!(
        billing.get::<Option<String>, _>("email").as_deref(),
        Some("jane@example.com")
    );
    let shipping = &rows[1];
    assert_eq!(
        shipping.get::<Option<String>, _>("phone").as_deref(),
        Some("+15145550100")
    );
    assert_eq!(shipping.get::<Option<String>, _>("email"), None);

    let event = stack
        .nats
        .events::<pb::OrderImported>()
        .await
        .into_iter()
        .find(|e| e.order.as_ref().unwrap().shopify_order_id == placed.id)
        .expect("OrderImported")
        .order
        .unwrap();
    assert_eq!(event.total, None);
    assert!(
        event
            .lines
            .iter()
            .all(|l| l.title.is_empty() && !l.sku.is_empty())
    );
    assert!(event.billing_address.as_ref().unwrap().phone.is_empty());
    assert!(event.shipping_address.as_ref().unwrap().email.is_empty());
    assert_eq!(event.currency, "USD");
    stack.finish().await;
}

#[tokio::test]
async fn pii_is_erased_after_retention_and_on_customers_redact_and_a_data_request_exports_that_customer_only()
 {
    let stack = Stack::start(FULL).await;
    let mut settings = enabled("");
    settings
        .fulfillment_statuses
        .push(pb::FulfillmentStatus::Fulfilled as i32);
    settings.pii_retention = pb::PiiRetention::Days30 as i32;
    stack.set_settings(settings).await;
    let shipped = shop::place(
        &stack,
        &OrderSpec {
            fulfilled: "all",
            customer_email: "ann@example.com".into(),
            ..OrderSpec::default()
        },
    )
    .await;
    let bob = shop::place(
        &stack,
        &OrderSpec {
            customer_email: "bob@example.com".into(),
            ..OrderSpec::default()
        },
    )
    .await;
    let cat = shop::place(
        &stack,
        &OrderSpec {
            customer_email: "cat@example.com".into(),
            ..OrderSpec::default()
        },
    )
    .await;
    let (_, finished) = run(&stack).await;
    assert_eq!(finished.counters.unwrap().created, 3);
    let pool = &stack.orders_db.pool;

    // Retention counts from the shipment: nothing before 30 days, the shipped order after.
    let now = Utc::now();
    assert_eq!(
        shopbridge_orders::pii::sweep(pool, now + chrono::Duration::days(29), 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        shopbridge_orders::pii::sweep(pool, now + chrono::Duration::days(31), 10)
            .await
            .unwrap(),
        1
    );
    let erased = get(&stack, &shipped.id).await.unwrap();
    assert!(
        erased.pii_erased && erased.billing_address.is_none() && erased.shipping_address.is_none()
    );
    assert_eq!(erased.lines.len(), 2, "the order itself is kept");
    assert!(
        get(&stack, &bob.id)
            .await
            .unwrap()
            .shipping_address
            .is_some()
    );

    // customers/data_request: an export of exactly that customer's data, recorded for the operator.
    let customer_number = |gid: &str| gid.rsplit('/').next().unwrap().parse::<u64>().unwrap();
    shop::compliance(
        &stack,
        "customers/data_request",
        json!({"shop_id": 1, "customer": {"id": customer_number(&bob.customer_id), "email": "bob@example.com"},
               "orders_requested": [customer_number(&bob.id)], "data_request": {"id": 77}}),
    )
    .await;
    let mut client = stack.client().await;
    let mut requests = Vec::new();
    for _ in 0..100 {
        requests = client
            .list_data_requests(pb::ListDataRequestsRequest {
                channel_id: stack.channel_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .requests;
        if !requests.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(requests.len(), 1);
    let export: serde_json::Value = serde_json::from_str(&requests[0].export_json).unwrap();
    let orders = export["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["shopify_order_id"], bob.id.as_str());
    assert_eq!(orders[0]["billing_address"]["email"], "bob@example.com");
    assert!(
        !requests[0].export_json.contains("cat@example.com")
            && !requests[0].export_json.contains("ann@")
    );

    // customers/redact: bob's PII goes at once, cat's stays.
    shop::compliance(
        &stack,
        "customers/redact",
        json!({"shop_id": 1, "customer": {"id": customer_number(&bob.customer_id), "email": "bob@example.com"},
               "orders_to_redact": [customer_number(&bob.id)]}),
    )
    .await;
    eventually("bob's PII is erased", || async {
        get(&stack, &bob.id).await.unwrap().pii_erased
    })
    .await;
    let bob_order = get(&stack, &bob.id).await.unwrap();
    assert!(bob_order.billing_address.is_none() && bob_order.shipping_address.is_none());
    assert!(
        bob_order
            .history
            .iter()
            .any(|h| h.kind == "pii_erased" && h.source == "customers/redact")
    );
    assert!(
        get(&stack, &cat.id)
            .await
            .unwrap()
            .shipping_address
            .is_some()
    );
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM order_addresses a JOIN orders o ON o.id = a.order_id WHERE o.shopify_order_id = $1",
    )
    .bind(&bob.id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "no address of bob's is stored");

    // shop/redact: everything.
    shop::compliance(&stack, "shop/redact", json!({"shop_id": 1})).await;
    eventually("the shop's PII is erased", || async {
        get(&stack, &cat.id).await.unwrap().pii_erased
    })
    .await;
    stack.finish().await;
}
