//! Order commands over the bus against the simulator: FetchOrders page by page and in bulk (typed OrderPage events,
//! every order once, filters applied by Shopify), TagOrder and CloseOrder (applied once even when re-sent).

use std::collections::{HashMap, HashSet};

use prost_types::Timestamp;
use shopbridge_proto::gateway::{self as pb, command::Operation as Op};

use crate::harness::{Harness, codes, command, seed, succeeded};

const SHOP: &str = "orders-shop.myshopify.com";

/// Every order of the OrderPage events of `command_id`, checking the pages' numbering.
async fn fetched_orders(h: &Harness, command_id: &str) -> Vec<pb::Order> {
    let pages: Vec<pb::OrderPage> = h
        .nats
        .events::<pb::OrderPage>()
        .await
        .into_iter()
        .filter(|p| p.command_id == command_id)
        .collect();
    let total = pages.len() as u32;
    let mut seqs: Vec<u32> = pages.iter().map(|p| p.seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "pages 1..n, once each"
    );
    for page in &pages {
        assert_eq!(page.total_pages, total);
        assert!(page.orders.len() <= 250);
        assert_eq!(page.shop_domain, SHOP);
    }
    pages.into_iter().flat_map(|p| p.orders).collect()
}

fn ids(orders: &[pb::Order]) -> Vec<&str> {
    orders.iter().map(|o| o.id.as_str()).collect()
}

#[tokio::test]
async fn fetch_orders_reads_every_page_and_publishes_typed_orders_once() {
    let h = Harness::start(&[(SHOP, seed(20, 2, 40))]).await;
    // One order with more lines than a page carries per order, so the gateway must fetch the rest.
    let products = h.read(SHOP, "products").await;
    let skus: Vec<String> = products
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["variants"].as_array().unwrap().iter())
        .map(|v| v["sku"].as_str().unwrap().to_string())
        .take(13)
        .collect();
    let location = h.locations(SHOP).await.remove(0);
    let lines: Vec<(&str, i64, &str)> = skus
        .iter()
        .map(|s| (s.as_str(), 2, location.as_str()))
        .collect();
    let big = h.place_order(SHOP, &lines).await;

    let fetch = pb::FetchOrders {
        filter: None,
        page_size: 7,
        bulk: false,
    };
    h.send(&command("fetch-all", SHOP, Op::FetchOrders(fetch)))
        .await;
    let result = h.result_of("fetch-all").await;
    assert!(succeeded(&result), "{result:?}");
    let orders = fetched_orders(&h, "fetch-all").await;

    let store = h.read(SHOP, "orders").await;
    let store = store.as_array().unwrap();
    assert_eq!(orders.len(), 41);
    assert_eq!(
        ids(&orders).into_iter().collect::<HashSet<_>>().len(),
        41,
        "no order twice"
    );
    let Some(pb::command_result::Result::OrdersFetched(summary)) = &result.result else {
        panic!("{result:?}")
    };
    assert_eq!(summary.orders, 41);
    assert_eq!(summary.pages, 1);
    assert!(
        result.calls >= 7,
        "41 orders 7 a page, and the big order's rest: {} calls",
        result.calls
    );
    let by_id: HashMap<&str, &serde_json::Value> = store
        .iter()
        .map(|o| (o["id"].as_str().unwrap(), o))
        .collect();
    for order in &orders {
        let stored = by_id[order.id.as_str()];
        assert_eq!(order.name, stored["name"].as_str().unwrap());
        assert_eq!(
            order.financial_status,
            stored["financial_status"].as_str().unwrap()
        );
        assert_eq!(
            order.fulfillment_status,
            stored["fulfillment_status"].as_str().unwrap()
        );
        assert!(order.created_at.is_some() && order.updated_at.is_some());
        let address = order.shipping_address.as_ref().expect("shipping address");
        assert_eq!(
            (address.city.as_str(), address.country_code.as_str()),
            ("Montreal", "CA")
        );
        assert_eq!(order.total_price.as_ref().unwrap().amount, stored["total"]);
        let stored_lines = stored["line_items"].as_array().unwrap();
        assert_eq!(order.line_items.len(), stored_lines.len(), "{}", order.id);
        for (line, stored) in order.line_items.iter().zip(stored_lines) {
            assert_eq!(line.id, stored["id"].as_str().unwrap());
            assert_eq!(line.sku, stored["sku"].as_str().unwrap());
            assert_eq!(line.quantity, stored["quantity"].as_i64().unwrap());
            assert!(line.variant_id.starts_with("gid://shopify/ProductVariant/"));
            let price = line.price.as_ref().unwrap();
            assert_eq!(price.amount, stored["price"].as_str().unwrap());
            assert_eq!(price.currency_code.len(), 3);
        }
        let locations: HashSet<&str> = order
            .fulfillment_orders
            .iter()
            .map(|f| f.location_id.as_str())
            .collect();
        let stored_locations: HashSet<&str> = stored["fulfillment_orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["location_id"].as_str().unwrap())
            .collect();
        assert_eq!(locations, stored_locations);
    }
    let big = orders.iter().find(|o| o.id == big).unwrap();
    assert_eq!(
        big.line_items.len(),
        13,
        "lines beyond the first page's ten"
    );
    h.finish().await;
}

#[tokio::test]
async fn filters_are_applied_by_shopify_and_a_bulk_fetch_gives_the_same_orders() {
    let h = Harness::start(&[(SHOP, seed(10, 1, 60))]).await;
    // Seeded orders are 90 s apart from 2025-10-31T00:00:00Z: the second half changed at or after 00:45.
    let filter = pb::OrderFilter {
        updated_at_min: Some(Timestamp {
            seconds: 1_761_871_500,
            nanos: 0,
        }),
        financial_statuses: vec![
            pb::FinancialStatusFilter::Paid as i32,
            pb::FinancialStatusFilter::Pending as i32,
        ],
        fulfillment_statuses: vec![pb::FulfillmentStatusFilter::Unshipped as i32],
        status: pb::OrderStatusFilter::Open as i32,
        ..Default::default()
    };
    let store = h.read(SHOP, "orders").await;
    let mut expected: Vec<&str> = store
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| {
            o["updated_at"].as_str().unwrap() >= "2025-10-31T00:45:00Z"
                && ["PAID", "PENDING"].contains(&o["financial_status"].as_str().unwrap())
        })
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    expected.sort_unstable();
    assert!(
        expected.len() > 5 && expected.len() < 30,
        "a filter that selects: {}",
        expected.len()
    );

    h.send(&command(
        "fetch-paged",
        SHOP,
        Op::FetchOrders(pb::FetchOrders {
            filter: Some(filter.clone()),
            page_size: 0,
            bulk: false,
        }),
    ))
    .await;
    h.send(&command(
        "fetch-bulk",
        SHOP,
        Op::FetchOrders(pb::FetchOrders {
            filter: Some(filter),
            page_size: 0,
            bulk: true,
        }),
    ))
    .await;
    let results = h.results_of(&["fetch-paged", "fetch-bulk"]).await;
    assert!(results.iter().all(succeeded), "{results:?}");
    let paged = fetched_orders(&h, "fetch-paged").await;
    let bulk = fetched_orders(&h, "fetch-bulk").await;
    let mut paged_ids = ids(&paged);
    paged_ids.sort_unstable();
    assert_eq!(paged_ids, expected);
    let mut bulk_ids = ids(&bulk);
    bulk_ids.sort_unstable();
    assert_eq!(bulk_ids, expected, "bulk reads the same orders");
    // Bulk files do not keep children in order: compare with lines sorted.
    let sorted = |order: &pb::Order| {
        let mut order = order.clone();
        order.line_items.sort_by(|a, b| a.id.cmp(&b.id));
        order.fulfillment_orders.sort_by(|a, b| a.id.cmp(&b.id));
        order
    };
    for order in &bulk {
        let same = paged.iter().find(|o| o.id == order.id).unwrap();
        assert_eq!(
            sorted(order),
            sorted(same),
            "bulk and pages build the same record"
        );
    }
    let Some(pb::command_result::Result::OrdersFetched(summary)) = &results[1].result else {
        panic!("{:?}", results[1])
    };
    assert!(
        summary
            .bulk_operation_id
            .starts_with("gid://shopify/BulkOperation/")
    );
    assert_eq!(h.stats(SHOP).await["bulk_operations"], 1);
    h.finish().await;
}

#[tokio::test]
async fn tag_and_close_are_applied_once_even_when_re_sent() {
    let h = Harness::start(&[(SHOP, seed(5, 1, 3))]).await;
    let store = h.read(SHOP, "orders").await;
    let order = store[0]["id"].as_str().unwrap().to_string();
    let tag = command(
        "tag-1",
        SHOP,
        Op::TagOrder(pb::TagOrder {
            order_id: order.clone(),
            tags: vec!["received-by-shopbridge".into(), " ".into()],
        }),
    );
    let close = command(
        "close-1",
        SHOP,
        Op::CloseOrder(pb::CloseOrder {
            order_id: order.clone(),
        }),
    );
    h.send(&tag).await;
    h.send(&close).await;
    let results = h.results_of(&["tag-1", "close-1"]).await;
    assert!(results.iter().all(succeeded), "{results:?}");
    assert_eq!(
        results[1].result,
        Some(pb::command_result::Result::OrderClosed(pb::OrderClosed {
            order_id: order.clone(),
            closed: true
        }))
    );
    // Re-sent later under new message ids (an outbox re-send): answered before, so nothing runs again; each re-send
    // gets the original result.
    h.send_as(&tag, "resend-tag").await;
    h.send_as(&close, "resend-close").await;
    crate::harness::consumed(&h, &["resend-tag", "resend-close"]).await;
    shopbridge_platform::testing::eventually("the re-sends answered", || async {
        h.results().await.len() >= 4
    })
    .await;
    let bad = command(
        "tag-bad",
        SHOP,
        Op::TagOrder(pb::TagOrder {
            order_id: "12345".into(),
            tags: vec!["x".into()],
        }),
    );
    h.send(&bad).await;
    let bad = h.result_of("tag-bad").await;
    assert_eq!(codes(&bad), vec!["INVALID_REQUEST"]);
    assert_eq!(bad.status, pb::command_result::Status::Failed as i32);

    let results = h.results().await;
    assert_eq!(results.len(), 5, "one result per send: {results:?}");
    for id in ["tag-1", "close-1"] {
        let answers: Vec<_> = results.iter().filter(|r| r.command_id == id).collect();
        assert_eq!(answers.len(), 2, "{id}");
        assert_eq!(answers[0], answers[1], "{id}: the original result again");
    }
    let stats = h.stats(SHOP).await;
    assert_eq!(stats["mutations"]["tagsAdd"], 1);
    assert_eq!(stats["mutations"]["orderClose"], 1);
    let store = h.read(SHOP, "orders").await;
    let stored = store
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == order.as_str())
        .unwrap();
    assert_eq!(
        stored["tags"],
        serde_json::json!(["received-by-shopbridge"])
    );
    assert_eq!(stored["closed"], true);
    h.finish().await;
}
