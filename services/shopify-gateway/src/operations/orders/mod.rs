//! Reading orders: a typed filter becomes Shopify's search syntax, and the matching orders are read to the end,
//! either page by page (pages sized to stay under Shopify's 1,000-point single-query limit, orders with many lines
//! completed with extra calls) or with one bulk operation that goes through the export's bulk machinery (recorded
//! when Shopify accepts it, resumed after a restart). Both produce the same typed `Order` records.

mod bulk;
mod records;

use shopbridge_proto::gateway as pb;

pub use self::bulk::{BulkOrders, bulk_query, fetch_bulk};
use self::records::{fulfillment_order_from, line_item_from, order_from};
use crate::{
    bulk::query::ExportError,
    shopify::{
        budget::Lane,
        executor::{CallError, Executor, ShopCredentials},
        wire::{
            Page,
            orders::{OrderConnectionPage, OrderFulfillmentOrders, OrderLineItems, OrdersPage},
        },
    },
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
        let request = OrdersPage {
            first,
            after,
            lines: LINES_PER_ORDER,
            query: (!search.is_empty()).then(|| search.clone()),
        };
        fetched.calls += 1;
        let cost = f64::from(2 + first * ORDER_COST);
        let connection = executor.send(shop, lane, &request, cost).await?.orders;
        for mut node in connection.nodes {
            let lines = node.line_items.take();
            let fulfillment_orders = node.fulfillment_orders.take();
            let mut order = order_from(node);
            if let Some(lines) = lines {
                let more = lines.page_info.next();
                order
                    .line_items
                    .extend(lines.nodes.into_iter().map(line_item_from));
                if let Some(cursor) = more {
                    let (rest, calls) = rest_of(
                        executor,
                        shop,
                        lane,
                        &order.id,
                        cursor,
                        LINES_PAGE,
                        4.0,
                        OrderLineItems,
                        |data| data.order.map(|o| o.line_items),
                    )
                    .await?;
                    fetched.calls += calls;
                    order
                        .line_items
                        .extend(rest.into_iter().map(line_item_from));
                }
            }
            if let Some(orders) = fulfillment_orders {
                let more = orders.page_info.next();
                order
                    .fulfillment_orders
                    .extend(orders.nodes.into_iter().map(fulfillment_order_from));
                if let Some(cursor) = more {
                    let (rest, calls) = rest_of(
                        executor,
                        shop,
                        lane,
                        &order.id,
                        cursor,
                        FULFILLMENT_ORDERS_PAGE,
                        3.0,
                        OrderFulfillmentOrders,
                        |data| data.order.map(|o| o.fulfillment_orders),
                    )
                    .await?;
                    fetched.calls += calls;
                    order
                        .fulfillment_orders
                        .extend(rest.into_iter().map(fulfillment_order_from));
                }
            }
            fetched.orders.push(order);
        }
        match connection.page_info.next() {
            Some(cursor) => after = Some(cursor),
            None => return Ok(fetched),
        }
    }
}

/// The remaining nodes of one order's connection, after `cursor`; returns them and the calls made. An order gone
/// since its page was read has no more.
#[allow(clippy::too_many_arguments)]
async fn rest_of<R, T>(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    order_id: &str,
    cursor: String,
    page: u32,
    node_cost: f64,
    request: impl Fn(OrderConnectionPage) -> R,
    connection: impl Fn(R::Response) -> Option<Page<T>>,
) -> Result<(Vec<T>, usize), CallError>
where
    R: crate::shopify::wire::Request,
{
    let mut nodes = Vec::new();
    let mut calls = 0;
    let mut after = Some(cursor);
    loop {
        let call = request(OrderConnectionPage {
            id: order_id.to_string(),
            first: page,
            after,
        });
        calls += 1;
        let cost = 3.0 + f64::from(page) * node_cost;
        let Some(connection) = connection(executor.send(shop, lane, &call, cost).await?) else {
            return Ok((nodes, calls));
        };
        nodes.extend(connection.nodes);
        match connection.page_info.next() {
            Some(cursor) => after = Some(cursor),
            None => return Ok((nodes, calls)),
        }
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
}
