//! Shipments: a fulfillment of an order's items at one location, with tracking. The gateway reads the order's
//! fulfillment orders (a cheap call first, so urgent work is not held long by the budget), the line items of those
//! assigned to the location, maps the requested lines onto them, and makes one `fulfillmentCreate`. Mapping is all or
//! nothing: a line that cannot be mapped fails the
//! command with a typed problem and nothing is sent.
//!
//! A command redelivered after a crash between `fulfillmentCreate` and the commit of its result finds the items
//! already fulfilled; if a fulfillment at the same location carries the same tracking number, that fulfillment is
//! the answer (`already_existed`), so the shipment is reported once and never created twice.

mod plan;
mod tracking;

pub use self::tracking::{tracking_from, tracking_input, tracking_problems, update_tracking};

use shopbridge_proto::gateway as pb;

use self::plan::{FoLine, FulfillmentOrder, is_gid, plan, problem};
use super::MUTATION_COST;
use crate::{
    outcome::Outcome,
    shopify::{
        budget::Lane,
        executor::{CallError, Executor, ShopCredentials},
        wire::{
            fulfillments::{
                FulfillmentCreate, FulfillmentInput, FulfillmentNode,
                FulfillmentOrderLineItemInput, FulfillmentOrderLineItems, FulfillmentOrderLines,
                OrderFulfillments,
            },
            orders::{OrderConnectionPage, OrderFulfillmentOrders},
        },
    },
};

/// Fulfillment orders per call of `order_fulfillment_orders`: 1 + 2 + 10 x 3 = 33 points.
const FULFILLMENT_ORDERS_PAGE: u32 = 10;
/// Line items per call of `fulfillment_order_lines`: 1 + 2 + 50 x 2 = 103 points.
const LINES_PAGE: u32 = 50;

/// What to fulfil, as the command says it.
#[derive(Debug, Clone)]
pub struct Request {
    pub order_id: String,
    pub location_id: String,
    /// Empty: everything that remains at the location.
    pub lines: Vec<Line>,
    pub tracking: Option<pb::Tracking>,
    pub notify_customer: bool,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub item: Item,
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    LineItem(String),
    Sku(String),
    Missing,
}

impl From<&pb::CreateFulfillment> for Request {
    fn from(c: &pb::CreateFulfillment) -> Self {
        Self {
            order_id: c.order_id.trim().to_string(),
            location_id: c.location_id.trim().to_string(),
            lines: c
                .lines
                .iter()
                .map(|l| Line {
                    item: match &l.item {
                        Some(pb::fulfillment_line::Item::LineItemId(id)) => {
                            Item::LineItem(id.trim().to_string())
                        }
                        Some(pb::fulfillment_line::Item::Sku(sku)) => Item::Sku(sku.clone()),
                        None => Item::Missing,
                    },
                    quantity: l.quantity,
                })
                .collect(),
            tracking: c.tracking.clone(),
            notify_customer: c.notify_customer,
        }
    }
}

/// Creates the fulfillment `request` asks for; returns what was created (or found) and the outcome.
pub async fn create(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    request: &Request,
) -> (Option<pb::FulfillmentCreated>, Outcome) {
    let mut outcome = Outcome::default();
    let mut invalid = Vec::new();
    if !is_gid(&request.order_id, "Order") {
        invalid.push(problem(
            "INVALID_REQUEST",
            &["order_id"],
            "order_id must be an order GID (gid://shopify/Order/<id>)",
        ));
    }
    if !is_gid(&request.location_id, "Location") {
        invalid.push(problem(
            "INVALID_REQUEST",
            &["location_id"],
            "location_id must be a location GID (gid://shopify/Location/<id>)",
        ));
    }
    invalid.extend(tracking_problems(request.tracking.as_ref()));
    if !invalid.is_empty() {
        outcome.user_errors = invalid;
        outcome.failed = true;
        return (None, outcome);
    }
    let orders = match read_fulfillment_orders(executor, shop, lane, request, &mut outcome).await {
        Ok(Some(orders)) => orders,
        Ok(None) => {
            outcome.user_errors.push(problem(
                "ORDER_NOT_FOUND",
                &["order_id"],
                format!("Shopify has no order {}", request.order_id),
            ));
            outcome.failed = true;
            return (None, outcome);
        }
        Err(e) => {
            outcome.failed_calls.push((outcome.calls, e));
            outcome.failed = true;
            return (None, outcome);
        }
    };
    if orders.is_empty() {
        outcome.user_errors.push(problem(
            "NO_FULFILLMENT_ORDER",
            &["location_id"],
            format!(
                "nothing of order {} is assigned to location {}",
                request.order_id, request.location_id
            ),
        ));
        outcome.failed = true;
        return (None, outcome);
    }
    let plan = match plan(&orders, &request.lines) {
        Ok(plan) => plan,
        Err(problems) => {
            // Nothing left to fulfil may mean this very shipment is already in Shopify (a redelivered command whose
            // first attempt died after fulfillmentCreate, or a shipment sent twice): then that is the answer.
            let nothing_left = problems
                .iter()
                .all(|p| matches!(p.code(), "ALREADY_FULFILLED" | "QUANTITY_EXCEEDS_REMAINING"));
            if nothing_left {
                match existing(executor, shop, lane, request, &mut outcome).await {
                    Ok(Some(found)) => {
                        return (
                            Some(pb::FulfillmentCreated {
                                fulfillments: vec![found],
                            }),
                            outcome,
                        );
                    }
                    Ok(None) => {}
                    Err(e) => outcome.failed_calls.push((outcome.calls, e)),
                }
            }
            outcome.user_errors.extend(problems);
            outcome.failed = true;
            return (None, outcome);
        }
    };
    let mut by_order: Vec<(usize, Vec<FulfillmentOrderLineItemInput>)> = Vec::new();
    let mut fulfilled = Vec::new();
    for (f, l, quantity) in &plan {
        let line = &orders[*f].lines[*l];
        let item = FulfillmentOrderLineItemInput {
            id: line.id.clone(),
            quantity: *quantity,
        };
        match by_order.iter_mut().find(|(o, _)| o == f) {
            Some((_, items)) => items.push(item),
            None => by_order.push((*f, vec![item])),
        }
        fulfilled.push(pb::FulfilledLine {
            line_item_id: line.line_item_id.clone(),
            fulfillment_order_line_item_id: line.id.clone(),
            quantity: *quantity,
        });
    }
    let create = FulfillmentCreate {
        fulfillment: FulfillmentInput {
            line_items_by_fulfillment_order: by_order
                .into_iter()
                .map(|(f, items)| FulfillmentOrderLineItems {
                    fulfillment_order_id: orders[f].id.clone(),
                    fulfillment_order_line_items: items,
                })
                .collect(),
            notify_customer: request.notify_customer,
            tracking_info: request.tracking.as_ref().map(|t| tracking_input(Some(t))),
        },
    };
    outcome.calls += 1;
    let data = match executor.send(shop, lane, &create, MUTATION_COST).await {
        Ok(data) => data,
        Err(e) => {
            outcome.failed_calls.push((outcome.calls - 1, e));
            outcome.failed = true;
            return (None, outcome);
        }
    };
    let (fulfillment, errors) = data
        .fulfillment_create
        .map(|p| (p.fulfillment, p.user_errors))
        .unwrap_or_default();
    if !errors.is_empty() {
        // Shopify has no idempotency key for fulfillmentCreate. When the executor sent it again after a lost answer,
        // the first attempt may have fulfilled the items and this one is refused: read back whether this shipment
        // (same location and tracking number) exists, as a redelivered command does. Without a tracking number it
        // cannot be told apart from another shipment, and the refusal stands.
        match existing(executor, shop, lane, request, &mut outcome).await {
            Ok(Some(found)) => {
                return (
                    Some(pb::FulfillmentCreated {
                        fulfillments: vec![found],
                    }),
                    outcome,
                );
            }
            Ok(None) => {}
            Err(e) => outcome.failed_calls.push((outcome.calls, e)),
        }
    }
    let Some(fulfillment) = fulfillment.filter(|_| errors.is_empty()) else {
        outcome.user_errors.extend(errors);
        outcome.failed = true;
        return (None, outcome);
    };
    let created = pb::CreatedFulfillment {
        tracking: tracking_from(&fulfillment.tracking_info),
        id: fulfillment.id,
        status: fulfillment.status,
        lines: fulfilled,
        already_existed: false,
    };
    (
        Some(pb::FulfillmentCreated {
            fulfillments: vec![created],
        }),
        outcome,
    )
}

/// The order's fulfillment orders assigned to the request's location, with their lines; None if there is no such
/// order.
async fn read_fulfillment_orders(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    request: &Request,
    outcome: &mut Outcome,
) -> Result<Option<Vec<FulfillmentOrder>>, CallError> {
    let mut at_location = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let read = OrderFulfillmentOrders(OrderConnectionPage {
            id: request.order_id.clone(),
            first: FULFILLMENT_ORDERS_PAGE,
            after,
        });
        outcome.calls += 1;
        let cost = 3.0 + f64::from(FULFILLMENT_ORDERS_PAGE) * 3.0;
        let Some(order) = executor.send(shop, lane, &read, cost).await?.order else {
            return Ok(None);
        };
        let connection = order.fulfillment_orders;
        for node in connection.nodes {
            let location = node.assigned_location.location.map(|l| l.id);
            if location.as_deref() == Some(&request.location_id) {
                at_location.push((node.id, node.status));
            }
        }
        match connection.page_info.next() {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    let mut orders = Vec::new();
    for (id, status) in at_location {
        // Closed and cancelled fulfillment orders have nothing left; their lines are read only to tell
        // "already fulfilled" from "not at this location".
        let lines = fulfillment_order_lines(executor, shop, lane, &id, outcome).await?;
        orders.push(FulfillmentOrder { id, status, lines });
    }
    Ok(Some(orders))
}

async fn fulfillment_order_lines(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    id: &str,
    outcome: &mut Outcome,
) -> Result<Vec<FoLine>, CallError> {
    let mut lines = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let read = FulfillmentOrderLines {
            id: id.to_string(),
            first: LINES_PAGE,
            after,
        };
        outcome.calls += 1;
        let cost = 3.0 + f64::from(LINES_PAGE) * 2.0;
        let Some(order) = executor
            .send(shop, lane, &read, cost)
            .await?
            .fulfillment_order
        else {
            // Gone between the two reads: it has nothing left to fulfil.
            return Ok(lines);
        };
        let connection = order.line_items;
        for node in connection.nodes {
            lines.push(FoLine {
                sku: node.sku.or(node.line_item.sku).unwrap_or_default(),
                id: node.id,
                line_item_id: node.line_item.id,
                remaining: node.remaining_quantity,
            });
        }
        match connection.page_info.next() {
            Some(cursor) => after = Some(cursor),
            None => return Ok(lines),
        }
    }
}

/// A fulfillment of the order at the request's location with the request's tracking number, if there is one.
async fn existing(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    request: &Request,
    outcome: &mut Outcome,
) -> Result<Option<pb::CreatedFulfillment>, CallError> {
    let Some(number) = request
        .tracking
        .as_ref()
        .map(|t| t.number.trim())
        .filter(|n| !n.is_empty())
    else {
        return Ok(None);
    };
    let read = OrderFulfillments {
        id: request.order_id.clone(),
    };
    outcome.calls += 1;
    let data = executor.send(shop, lane, &read, 5.0).await?;
    let ours = |f: &FulfillmentNode| {
        f.location.as_ref().map(|l| l.id.as_str()) == Some(request.location_id.as_str())
            && f.status != "CANCELLED"
            && f.tracking_info
                .iter()
                .any(|t| t.number.as_deref() == Some(number))
    };
    let found = data
        .order
        .into_iter()
        .flat_map(|o| o.fulfillments)
        .find(ours);
    Ok(found.map(|f| pb::CreatedFulfillment {
        tracking: tracking_from(&f.tracking_info),
        id: f.id,
        status: f.status,
        lines: Vec::new(),
        already_existed: true,
    }))
}
