//! Reading orders: a typed filter becomes Shopify's search syntax, and the matching orders are read to the end,
//! either page by page (pages sized to stay under Shopify's 1,000-point single-query limit, orders with many lines
//! completed with extra calls) or with one bulk operation that goes through the export's bulk machinery (recorded
//! when Shopify accepts it, resumed after a restart). Both produce the same typed `Order` records.

use std::collections::HashMap;

use serde_json::{Value, json};
use shopbridge_proto::{common::Money, gateway as pb};

use crate::{
    budget::Lane,
    documents,
    executor::{CallError, Executor, Operation, ShopCredentials},
    export::{ExportError, Exporter},
};

/// Shopify's single-query cost limit.
const MAX_QUERY_COST: u32 = 1000;
/// Line items read with each order of a page; the rest come from `order_line_items`.
const LINES_PER_ORDER: u32 = 10;
/// What one order of `orders_page` costs by Shopify's documented rules: the order 1, totalPriceSet + shopMoney 2,
/// customer + defaultEmailAddress 2, two addresses 2, lineItems 2 + lines x (1 + variant + price set + shopMoney),
/// fulfillmentOrders 2 + 5 x (1 + assignedLocation + location).
const ORDER_COST: u32 = 1 + 2 + 2 + 2 + (2 + LINES_PER_ORDER * 4) + (2 + 5 * 3);
/// The most orders one page may ask for without passing the single-query limit (the connection itself costs 2).
pub const MAX_PAGE: u32 = (MAX_QUERY_COST - 2) / ORDER_COST;
// A full page stays under the single-query limit, and pages are not uselessly small.
const _: () = assert!(2 + MAX_PAGE * ORDER_COST <= MAX_QUERY_COST && MAX_PAGE >= 10);
/// Line items per follow-up call for an order with more than `LINES_PER_ORDER`: 1 + 2 + 100 x 4 points.
const LINES_PAGE: u32 = 100;
/// Fulfillment orders per follow-up call for an order with more than five: 1 + 2 + 50 x 3 points.
const FULFILLMENT_ORDERS_PAGE: u32 = 50;
/// The stage name of an orders bulk read in the bulk_operations table.
pub const BULK_STAGE: &str = "orders_bulk";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Bulk(#[from] ExportError),
}

/// Orders read for one command, in Shopify's order (oldest change first), and the bulk operation if one was used.
#[derive(Debug, Default)]
pub struct Fetched {
    pub orders: Vec<pb::Order>,
    pub calls: usize,
    pub bulk_operation_id: String,
}

/// Shopify's search string for `filter` (empty: every order). Values come from enums and timestamps only, so no
/// user text reaches the search syntax.
pub fn search_query(filter: &pb::OrderFilter) -> String {
    let mut terms = Vec::new();
    let time = |t: &prost_types::Timestamp| {
        chrono::DateTime::from_timestamp(t.seconds, t.nanos.clamp(0, 999_999_999) as u32)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    };
    if let Some(t) = filter.updated_at_min.as_ref().and_then(time) {
        terms.push(format!("updated_at:>='{t}'"));
    }
    if let Some(t) = filter.created_at_min.as_ref().and_then(time) {
        terms.push(format!("created_at:>='{t}'"));
    }
    if let Some(t) = filter.created_at_max.as_ref().and_then(time) {
        terms.push(format!("created_at:<'{t}'"));
    }
    use pb::OrderStatusFilter as S;
    let status = match S::try_from(filter.status).unwrap_or(S::Unspecified) {
        S::Unspecified => None,
        S::Open => Some("open"),
        S::Closed => Some("closed"),
        S::Cancelled => Some("cancelled"),
        S::NotClosed => Some("not_closed"),
    };
    if let Some(status) = status {
        terms.push(format!("status:{status}"));
    }
    use pb::FinancialStatusFilter as F;
    let financial: Vec<&str> = filter
        .financial_statuses
        .iter()
        .filter_map(|s| match F::try_from(*s).ok()? {
            F::Unspecified => None,
            F::Paid => Some("paid"),
            F::Pending => Some("pending"),
            F::Authorized => Some("authorized"),
            F::PartiallyPaid => Some("partially_paid"),
            F::PartiallyRefunded => Some("partially_refunded"),
            F::Refunded => Some("refunded"),
            F::Voided => Some("voided"),
            F::Expired => Some("expired"),
        })
        .collect();
    if let Some(any) = any_of("financial_status", &financial) {
        terms.push(any);
    }
    use pb::FulfillmentStatusFilter as U;
    let fulfillment: Vec<&str> = filter
        .fulfillment_statuses
        .iter()
        .filter_map(|s| match U::try_from(*s).ok()? {
            U::Unspecified => None,
            U::Unshipped => Some("unshipped"),
            U::Shipped => Some("shipped"),
            U::Fulfilled => Some("fulfilled"),
            U::Partial => Some("partial"),
            U::Scheduled => Some("scheduled"),
            U::OnHold => Some("on_hold"),
            U::Unfulfilled => Some("unfulfilled"),
            U::RequestDeclined => Some("request_declined"),
        })
        .collect();
    if let Some(any) = any_of("fulfillment_status", &fulfillment) {
        terms.push(any);
    }
    terms.join(" AND ")
}

fn any_of(field: &str, values: &[&str]) -> Option<String> {
    match values {
        [] => None,
        [one] => Some(format!("{field}:{one}")),
        many => Some(format!(
            "({})",
            many.iter()
                .map(|v| format!("{field}:{v}"))
                .collect::<Vec<_>>()
                .join(" OR ")
        )),
    }
}

/// The text of `orders_bulk` with `search` bound in. Bulk queries take no variables, so the search goes into the
/// document as a GraphQL string literal (a JSON string is one: same quoting and escapes), never spliced raw.
pub fn bulk_query(search: &str) -> String {
    let literal = serde_json::to_string(search).expect("a string serializes");
    let text = documents::ORDERS_BULK
        .text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replacen("query OrdersBulk($query: String)", "query OrdersBulk", 1)
        .replacen(
            "orders(query: $query,",
            &format!("orders(query: {literal},"),
            1,
        );
    debug_assert!(!text.contains("$query"), "orders_bulk changed shape");
    text
}

/// Reads every order matching `filter`, page by page, `page_size` (capped at [`MAX_PAGE`]) at a time.
pub async fn fetch_pages(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    filter: &pb::OrderFilter,
    page_size: u32,
) -> Result<Fetched, FetchError> {
    let first = match page_size {
        0 => MAX_PAGE,
        n => n.min(MAX_PAGE),
    };
    let search = search_query(filter);
    let mut fetched = Fetched::default();
    let mut after: Option<String> = None;
    loop {
        let op = Operation {
            document: documents::ORDERS_PAGE,
            variables: json!({
                "first": first, "after": after, "lines": LINES_PER_ORDER,
                "query": if search.is_empty() { None } else { Some(&search) },
            }),
            expected_cost: f64::from(2 + first * ORDER_COST),
        };
        fetched.calls += 1;
        let data = executor.call(shop, lane, &op).await?;
        let connection = &data["orders"];
        for node in connection["nodes"].as_array().into_iter().flatten() {
            let mut order = order_from(node);
            if node["lineItems"]["pageInfo"]["hasNextPage"] == true {
                let cursor = node["lineItems"]["pageInfo"]["endCursor"].as_str();
                let (rest, calls) = rest_of(
                    executor,
                    shop,
                    lane,
                    documents::ORDER_LINE_ITEMS,
                    &order.id,
                    "lineItems",
                    cursor,
                    LINES_PAGE,
                    4.0,
                )
                .await?;
                fetched.calls += calls;
                order.line_items.extend(rest.iter().map(line_item_from));
            }
            if node["fulfillmentOrders"]["pageInfo"]["hasNextPage"] == true {
                let cursor = node["fulfillmentOrders"]["pageInfo"]["endCursor"].as_str();
                let (rest, calls) = rest_of(
                    executor,
                    shop,
                    lane,
                    documents::ORDER_FULFILLMENT_ORDERS,
                    &order.id,
                    "fulfillmentOrders",
                    cursor,
                    FULFILLMENT_ORDERS_PAGE,
                    3.0,
                )
                .await?;
                fetched.calls += calls;
                order
                    .fulfillment_orders
                    .extend(rest.iter().map(fulfillment_order_from));
            }
            fetched.orders.push(order);
        }
        match connection["pageInfo"]["endCursor"].as_str() {
            Some(cursor) if connection["pageInfo"]["hasNextPage"] == true => {
                after = Some(cursor.to_string())
            }
            _ => return Ok(fetched),
        }
    }
}

/// The remaining nodes of one order's connection `field`, after `cursor`; returns them and the calls made.
#[allow(clippy::too_many_arguments)]
async fn rest_of(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    document: documents::Document,
    order_id: &str,
    field: &str,
    cursor: Option<&str>,
    page: u32,
    node_cost: f64,
) -> Result<(Vec<Value>, usize), CallError> {
    let mut nodes = Vec::new();
    let mut calls = 0;
    let mut after = cursor.map(str::to_string);
    loop {
        let op = Operation {
            document,
            variables: json!({ "id": order_id, "first": page, "after": after }),
            expected_cost: 3.0 + f64::from(page) * node_cost,
        };
        calls += 1;
        let data = executor.call(shop, lane, &op).await?;
        let connection = &data["order"][field];
        nodes.extend(
            connection["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned(),
        );
        match connection["pageInfo"]["endCursor"].as_str() {
            Some(cursor) if connection["pageInfo"]["hasNextPage"] == true => {
                after = Some(cursor.to_string())
            }
            _ => return Ok((nodes, calls)),
        }
    }
}

/// Reads every order matching `filter` with one bulk operation (resumed if this command started one before).
pub async fn fetch_bulk(
    exporter: &Exporter<'_>,
    shop: &ShopCredentials,
    lane: Lane,
    command_id: &str,
    filter: &pb::OrderFilter,
) -> Result<Fetched, FetchError> {
    let query = bulk_query(&search_query(filter));
    let done = exporter
        .run_bulk_query(shop, lane, command_id, BULK_STAGE, &query)
        .await?;
    let mut assembler = BulkOrders::default();
    if let Some(url) = &done.url {
        let body = exporter.fetch(url).await?;
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Value>(line) {
                Ok(value) => assembler.line(value),
                Err(e) => tracing::warn!(error = %e, "skipping a JSONL line that is not JSON"),
            }
        }
    }
    Ok(Fetched {
        orders: assembler.finish(),
        calls: 0,
        bulk_operation_id: done.id,
    })
}

/// Orders from bulk JSONL: orders are root lines; line items and fulfillment orders are lines of their own with the
/// order's id in `__parentId`, and may come before their order.
#[derive(Default)]
pub struct BulkOrders {
    orders: Vec<pb::Order>,
    children: HashMap<String, Vec<Value>>,
}

impl BulkOrders {
    pub fn line(&mut self, line: Value) {
        match line["__parentId"].as_str() {
            Some(parent) => self
                .children
                .entry(parent.to_string())
                .or_default()
                .push(line),
            None => self.orders.push(order_from(&line)),
        }
    }

    pub fn finish(mut self) -> Vec<pb::Order> {
        for order in &mut self.orders {
            for child in self.children.remove(&order.id).unwrap_or_default() {
                let id = child["id"].as_str().unwrap_or_default();
                if id.starts_with("gid://shopify/LineItem/") {
                    order.line_items.push(line_item_from(&child));
                } else if id.starts_with("gid://shopify/FulfillmentOrder/") {
                    order
                        .fulfillment_orders
                        .push(fulfillment_order_from(&child));
                }
            }
        }
        if !self.children.is_empty() {
            let orphans: usize = self.children.values().map(Vec::len).sum();
            tracing::warn!(orphans, "bulk order lines whose order never came; dropped");
        }
        self.orders
    }
}

fn s(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn timestamp(v: &Value) -> Option<prost_types::Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok()?;
    Some(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

fn money(set: &Value) -> Option<Money> {
    let m = &set["shopMoney"];
    m.is_object().then(|| Money {
        amount: s(m, "amount"),
        currency_code: s(m, "currencyCode"),
    })
}

fn address(v: &Value) -> Option<pb::OrderAddress> {
    v.is_object().then(|| pb::OrderAddress {
        name: s(v, "name"),
        first_name: s(v, "firstName"),
        last_name: s(v, "lastName"),
        company: s(v, "company"),
        address1: s(v, "address1"),
        address2: s(v, "address2"),
        city: s(v, "city"),
        province_code: s(v, "provinceCode"),
        zip: s(v, "zip"),
        country_code: s(v, "countryCodeV2"),
        phone: s(v, "phone"),
    })
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// An order node of `orders_page` (with `lineItems`/`fulfillmentOrders` connections) or a root line of
/// `orders_bulk` (without them).
pub fn order_from(v: &Value) -> pb::Order {
    let customer = &v["customer"];
    pb::Order {
        id: s(v, "id"),
        name: s(v, "name"),
        created_at: timestamp(&v["createdAt"]),
        updated_at: timestamp(&v["updatedAt"]),
        processed_at: timestamp(&v["processedAt"]),
        closed_at: timestamp(&v["closedAt"]),
        cancelled_at: timestamp(&v["cancelledAt"]),
        financial_status: s(v, "displayFinancialStatus"),
        fulfillment_status: s(v, "displayFulfillmentStatus"),
        tags: v["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        email: s(v, "email"),
        phone: s(v, "phone"),
        note: s(v, "note"),
        test: v["test"].as_bool().unwrap_or(false),
        total_price: money(&v["totalPriceSet"]),
        customer: customer.is_object().then(|| pb::OrderCustomer {
            id: s(customer, "id"),
            first_name: s(customer, "firstName"),
            last_name: s(customer, "lastName"),
            email: s(&customer["defaultEmailAddress"], "emailAddress"),
        }),
        shipping_address: address(&v["shippingAddress"]),
        billing_address: address(&v["billingAddress"]),
        line_items: v["lineItems"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(line_item_from)
            .collect(),
        fulfillment_orders: v["fulfillmentOrders"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(fulfillment_order_from)
            .collect(),
    }
}

fn line_item_from(v: &Value) -> pb::OrderLineItem {
    pb::OrderLineItem {
        id: s(v, "id"),
        sku: s(v, "sku"),
        name: s(v, "name"),
        variant_id: s(&v["variant"], "id"),
        quantity: int(&v["quantity"]),
        current_quantity: int(&v["currentQuantity"]),
        unfulfilled_quantity: int(&v["unfulfilledQuantity"]),
        price: money(&v["originalUnitPriceSet"]),
        requires_shipping: v["requiresShipping"].as_bool().unwrap_or(true),
    }
}

fn fulfillment_order_from(v: &Value) -> pb::OrderFulfillmentOrder {
    pb::OrderFulfillmentOrder {
        id: s(v, "id"),
        status: s(v, "status"),
        location_id: s(&v["assignedLocation"]["location"], "id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_becomes_shopifys_search_syntax() {
        let filter = pb::OrderFilter {
            updated_at_min: Some(prost_types::Timestamp {
                seconds: 1_761_955_200,
                nanos: 0,
            }),
            created_at_max: Some(prost_types::Timestamp {
                seconds: 1_762_041_600,
                nanos: 0,
            }),
            status: pb::OrderStatusFilter::Open as i32,
            financial_statuses: vec![
                pb::FinancialStatusFilter::Paid as i32,
                pb::FinancialStatusFilter::Authorized as i32,
            ],
            fulfillment_statuses: vec![pb::FulfillmentStatusFilter::Unshipped as i32],
            ..Default::default()
        };
        assert_eq!(
            search_query(&filter),
            "updated_at:>='2025-11-01T00:00:00Z' AND created_at:<'2025-11-02T00:00:00Z' AND status:open \
             AND (financial_status:paid OR financial_status:authorized) AND fulfillment_status:unshipped"
        );
        assert_eq!(search_query(&pb::OrderFilter::default()), "");
    }

    #[test]
    fn the_bulk_query_carries_the_search_as_a_quoted_literal() {
        let text = bulk_query("updated_at:>='2025-11-01T00:00:00Z' AND tag:\"a\\b\"");
        assert!(!text.contains("$query"));
        assert!(text.contains(
            r#"orders(query: "updated_at:>='2025-11-01T00:00:00Z' AND tag:\"a\\b\"", sortKey"#
        ));
    }

    #[test]
    fn bulk_children_before_their_order_are_attached() {
        let mut bulk = BulkOrders::default();
        bulk.line(json!({"__parentId": "gid://shopify/Order/1", "id": "gid://shopify/LineItem/2", "sku": "A",
            "quantity": 3, "originalUnitPriceSet": {"shopMoney": {"amount": "9.5", "currencyCode": "CAD"}}}));
        bulk.line(json!({"id": "gid://shopify/Order/1", "name": "#1001", "updatedAt": "2025-11-01T10:00:00Z",
            "tags": ["x"], "shippingAddress": null}));
        bulk.line(json!({"__parentId": "gid://shopify/Order/1", "id": "gid://shopify/FulfillmentOrder/3",
            "status": "OPEN", "assignedLocation": {"location": {"id": "gid://shopify/Location/4"}}}));
        let orders = bulk.finish();
        assert_eq!(orders.len(), 1);
        let order = &orders[0];
        assert_eq!(order.updated_at.unwrap().seconds, 1_761_991_200);
        assert_eq!(order.shipping_address, None);
        assert_eq!(order.line_items[0].sku, "A");
        assert_eq!(order.line_items[0].price.as_ref().unwrap().amount, "9.5");
        assert_eq!(
            order.fulfillment_orders[0].location_id,
            "gid://shopify/Location/4"
        );
    }
}
