//! Shipments: a fulfillment of an order's items at one location, with tracking. The gateway reads the order's
//! fulfillment orders (a cheap call first, so urgent work is not held long by the budget), the line items of those
//! assigned to the location, maps the requested lines onto them, and makes one `fulfillmentCreate`. Mapping is all or
//! nothing: a line that cannot be mapped fails the
//! command with a typed problem and nothing is sent.
//!
//! A command redelivered after a crash between `fulfillmentCreate` and the commit of its result finds the items
//! already fulfilled; if a fulfillment at the same location carries the same tracking number, that fulfillment is
//! the answer (`already_existed`), so the shipment is reported once and never created twice.

use serde_json::{Value, json};
use shopbridge_proto::gateway as pb;

use crate::{
    budget::Lane,
    documents,
    executor::{CallError, Executor, Operation, ShopCredentials},
    ops::Outcome,
};

/// Fulfillment orders per call of `order_fulfillment_orders`: 1 + 2 + 10 x 3 = 33 points.
const FULFILLMENT_ORDERS_PAGE: u32 = 10;
/// Line items per call of `fulfillment_order_lines`: 1 + 2 + 50 x 2 = 103 points.
const LINES_PAGE: u32 = 50;
/// Shopify's documented base cost of a mutation.
const MUTATION_COST: f64 = 10.0;

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

/// A typed problem, as `Outcome::user_errors` carries them (`code`, `message`, `field`).
fn problem(code: &str, field: &[&str], message: impl Into<String>) -> Value {
    json!({ "code": code, "field": field, "message": message.into() })
}

/// One fulfillment order at the location, with its lines.
#[derive(Debug, Clone)]
struct FulfillmentOrder {
    id: String,
    status: String,
    lines: Vec<FoLine>,
}

impl FulfillmentOrder {
    /// Shopify accepts fulfillments for open and partly fulfilled fulfillment orders only.
    fn fulfillable(&self) -> bool {
        matches!(self.status.as_str(), "OPEN" | "IN_PROGRESS")
    }

    fn held(&self) -> bool {
        matches!(self.status.as_str(), "ON_HOLD" | "SCHEDULED")
    }
}

#[derive(Debug, Clone)]
struct FoLine {
    id: String,
    line_item_id: String,
    sku: String,
    remaining: i64,
}

/// (fulfillment order index, line index, quantity)
type Plan = Vec<(usize, usize, i64)>;

/// Maps the requested lines onto the location's fulfillment orders. Problems name the request line (`lines.N`).
fn plan(orders: &[FulfillmentOrder], lines: &[Line]) -> Result<Plan, Vec<Value>> {
    let mut plan: Plan = Vec::new();
    if lines.is_empty() {
        for (f, fo) in orders.iter().enumerate().filter(|(_, fo)| fo.fulfillable()) {
            for (l, line) in fo.lines.iter().enumerate() {
                if line.remaining > 0 {
                    plan.push((f, l, line.remaining));
                }
            }
        }
        if plan.is_empty() {
            let held = orders
                .iter()
                .any(|fo| fo.held() && fo.lines.iter().any(|l| l.remaining > 0));
            return Err(vec![if held {
                problem(
                    "FULFILLMENT_ON_HOLD",
                    &[],
                    "what remains at this location is on hold or scheduled in Shopify",
                )
            } else {
                problem(
                    "ALREADY_FULFILLED",
                    &[],
                    "nothing of the order remains to be fulfilled at this location",
                )
            }]);
        }
        return Ok(plan);
    }
    let mut problems = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let index = n.to_string();
        let field = ["lines", index.as_str()];
        let matches = |fo_line: &FoLine| match &line.item {
            Item::LineItem(id) => &fo_line.line_item_id == id,
            Item::Sku(sku) => &fo_line.sku == sku,
            Item::Missing => false,
        };
        let candidates: Vec<(usize, usize)> = orders
            .iter()
            .enumerate()
            .flat_map(|(f, fo)| {
                fo.lines
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| matches(l))
                    .map(move |(l, _)| (f, l))
            })
            .collect();
        let planned = |f: usize, l: usize, plan: &Plan| -> i64 {
            plan.iter()
                .filter(|(pf, pl, _)| *pf == f && *pl == l)
                .map(|p| p.2)
                .sum()
        };
        let available: i64 = candidates
            .iter()
            .filter(|(f, _)| orders[*f].fulfillable())
            .map(|(f, l)| orders[*f].lines[*l].remaining - planned(*f, *l, &plan))
            .sum();
        let held: i64 = candidates
            .iter()
            .filter(|(f, _)| orders[*f].held())
            .map(|(f, l)| orders[*f].lines[*l].remaining)
            .sum();
        let what = match &line.item {
            Item::LineItem(id) => format!("line item {id}"),
            Item::Sku(sku) => format!("SKU {sku:?}"),
            Item::Missing => String::new(),
        };
        if line.item == Item::Missing
            || matches!(&line.item, Item::LineItem(id) | Item::Sku(id) if id.is_empty())
        {
            problems.push(problem(
                "INVALID_REQUEST",
                &field,
                "a line needs a line item id or a SKU",
            ));
        } else if line.quantity < 1 {
            problems.push(problem(
                "INVALID_REQUEST",
                &field,
                format!("the quantity of {what} must be at least 1"),
            ));
        } else if candidates.is_empty() {
            problems.push(problem(
                "LINE_ITEM_NOT_FOUND",
                &field,
                format!("{what} is not among the order's items assigned to this location"),
            ));
        } else if available <= 0 && held > 0 {
            problems.push(problem(
                "FULFILLMENT_ON_HOLD",
                &field,
                format!("{what} is on hold or scheduled in Shopify"),
            ));
        } else if available <= 0 {
            problems.push(problem(
                "ALREADY_FULFILLED",
                &field,
                format!("{what} is already fulfilled at this location"),
            ));
        } else if available < line.quantity {
            problems.push(problem(
                "QUANTITY_EXCEEDS_REMAINING",
                &field,
                format!(
                    "{what}: {} requested, {available} remain to be fulfilled",
                    line.quantity
                ),
            ));
        } else {
            let mut wanted = line.quantity;
            for (f, l) in candidates
                .iter()
                .copied()
                .filter(|(f, _)| orders[*f].fulfillable())
            {
                let free = orders[f].lines[l].remaining - planned(f, l, &plan);
                let take = free.min(wanted);
                if take > 0 {
                    plan.push((f, l, take));
                    wanted -= take;
                }
                if wanted == 0 {
                    break;
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems)
    }
}

fn is_gid(id: &str, kind: &str) -> bool {
    id.strip_prefix("gid://shopify/")
        .and_then(|rest| rest.strip_prefix(kind))
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|n| !n.is_empty())
}

/// Problems with the tracking that Shopify would refuse as a whole request (its `url` is a URL scalar).
pub fn tracking_problems(tracking: Option<&pb::Tracking>) -> Vec<Value> {
    match tracking {
        Some(t)
            if !t.url.is_empty()
                && !t.url.starts_with("https://")
                && !t.url.starts_with("http://") =>
        {
            vec![problem(
                "INVALID_REQUEST",
                &["tracking", "url"],
                "the tracking URL must start with https:// or http://",
            )]
        }
        _ => Vec::new(),
    }
}

/// Shopify's `FulfillmentTrackingInput` for `tracking`; empty fields are left out.
pub fn tracking_input(tracking: Option<&pb::Tracking>) -> Value {
    let Some(t) = tracking else {
        return json!({});
    };
    let mut input = serde_json::Map::new();
    for (key, value) in [
        ("company", &t.company),
        ("number", &t.number),
        ("url", &t.url),
    ] {
        if !value.is_empty() {
            input.insert(key.into(), json!(value));
        }
    }
    Value::Object(input)
}

/// The first tracking entry of a fulfillment node.
pub fn tracking_from(fulfillment: &Value) -> Option<pb::Tracking> {
    let first = fulfillment["trackingInfo"].as_array()?.first()?;
    let s = |k: &str| first[k].as_str().unwrap_or_default().to_string();
    Some(pb::Tracking {
        company: s("company"),
        number: s("number"),
        url: s("url"),
    })
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
            let nothing_left = problems.iter().all(|p| {
                matches!(
                    p["code"].as_str(),
                    Some("ALREADY_FULFILLED" | "QUANTITY_EXCEEDS_REMAINING")
                )
            });
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
    let mut by_order: Vec<(usize, Vec<Value>)> = Vec::new();
    let mut fulfilled = Vec::new();
    for (f, l, quantity) in &plan {
        let line = &orders[*f].lines[*l];
        let item = json!({ "id": line.id, "quantity": quantity });
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
    let groups: Vec<Value> = by_order
        .into_iter()
        .map(|(f, items)| {
            json!({ "fulfillmentOrderId": orders[f].id, "fulfillmentOrderLineItems": items })
        })
        .collect();
    let mut input = json!({
        "lineItemsByFulfillmentOrder": groups,
        "notifyCustomer": request.notify_customer,
    });
    if request.tracking.is_some() {
        input["trackingInfo"] = tracking_input(request.tracking.as_ref());
    }
    let op = Operation {
        document: documents::FULFILLMENT_CREATE,
        variables: json!({ "fulfillment": input }),
        expected_cost: MUTATION_COST,
    };
    outcome.calls += 1;
    let data = match executor.call(shop, lane, &op).await {
        Ok(data) => data,
        Err(e) => {
            outcome.failed_calls.push((outcome.calls - 1, e));
            outcome.failed = true;
            return (None, outcome);
        }
    };
    let payload = &data["fulfillmentCreate"];
    let errors = payload["userErrors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let fulfillment = &payload["fulfillment"];
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
    if !errors.is_empty() || !fulfillment.is_object() {
        outcome.user_errors.extend(errors);
        outcome.failed = true;
        return (None, outcome);
    }
    let created = pb::CreatedFulfillment {
        id: fulfillment["id"].as_str().unwrap_or_default().to_string(),
        status: fulfillment["status"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        tracking: tracking_from(fulfillment),
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
        let op = Operation {
            document: documents::ORDER_FULFILLMENT_ORDERS,
            variables: json!({ "id": request.order_id, "first": FULFILLMENT_ORDERS_PAGE, "after": after }),
            expected_cost: 3.0 + f64::from(FULFILLMENT_ORDERS_PAGE) * 3.0,
        };
        outcome.calls += 1;
        let data = executor.call(shop, lane, &op).await?;
        if data["order"].is_null() {
            return Ok(None);
        }
        let connection = &data["order"]["fulfillmentOrders"];
        for node in connection["nodes"].as_array().into_iter().flatten() {
            if node["assignedLocation"]["location"]["id"].as_str() == Some(&request.location_id) {
                at_location.push((
                    node["id"].as_str().unwrap_or_default().to_string(),
                    node["status"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        match connection["pageInfo"]["endCursor"].as_str() {
            Some(cursor) if connection["pageInfo"]["hasNextPage"] == true => {
                after = Some(cursor.to_string())
            }
            _ => break,
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
        let op = Operation {
            document: documents::FULFILLMENT_ORDER_LINES,
            variables: json!({ "id": id, "first": LINES_PAGE, "after": after }),
            expected_cost: 3.0 + f64::from(LINES_PAGE) * 2.0,
        };
        outcome.calls += 1;
        let data = executor.call(shop, lane, &op).await?;
        let connection = &data["fulfillmentOrder"]["lineItems"];
        for node in connection["nodes"].as_array().into_iter().flatten() {
            let sku = node["sku"]
                .as_str()
                .or(node["lineItem"]["sku"].as_str())
                .unwrap_or_default();
            lines.push(FoLine {
                id: node["id"].as_str().unwrap_or_default().to_string(),
                line_item_id: node["lineItem"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                sku: sku.to_string(),
                remaining: node["remainingQuantity"].as_i64().unwrap_or(0),
            });
        }
        match connection["pageInfo"]["endCursor"].as_str() {
            Some(cursor) if connection["pageInfo"]["hasNextPage"] == true => {
                after = Some(cursor.to_string())
            }
            _ => return Ok(lines),
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
    let op = Operation {
        document: documents::ORDER_FULFILLMENTS,
        variables: json!({ "id": request.order_id }),
        expected_cost: 5.0,
    };
    outcome.calls += 1;
    let data = executor.call(shop, lane, &op).await?;
    let found = data["order"]["fulfillments"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| {
            f["location"]["id"].as_str() == Some(&request.location_id)
                && f["status"] != "CANCELLED"
                && f["trackingInfo"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t["number"].as_str() == Some(number)))
        });
    Ok(found.map(|f| pb::CreatedFulfillment {
        id: f["id"].as_str().unwrap_or_default().to_string(),
        status: f["status"].as_str().unwrap_or_default().to_string(),
        tracking: tracking_from(f),
        lines: Vec::new(),
        already_existed: true,
    }))
}

/// Replaces a fulfillment's tracking.
pub async fn update_tracking(
    executor: &Executor,
    shop: &ShopCredentials,
    lane: Lane,
    update: &pb::UpdateTracking,
) -> (Option<pb::TrackingUpdated>, Outcome) {
    let mut outcome = Outcome::default();
    let fulfillment_id = update.fulfillment_id.trim();
    let mut invalid = tracking_problems(update.tracking.as_ref());
    if !is_gid(fulfillment_id, "Fulfillment") {
        invalid.push(problem(
            "INVALID_REQUEST",
            &["fulfillment_id"],
            "fulfillment_id must be a fulfillment GID (gid://shopify/Fulfillment/<id>)",
        ));
    }
    if update.tracking.is_none() {
        invalid.push(problem(
            "INVALID_REQUEST",
            &["tracking"],
            "the new tracking is missing",
        ));
    }
    if !invalid.is_empty() {
        outcome.user_errors = invalid;
        outcome.failed = true;
        return (None, outcome);
    }
    let op = Operation {
        document: documents::FULFILLMENT_TRACKING_UPDATE,
        variables: json!({
            "fulfillmentId": fulfillment_id,
            "trackingInfoInput": tracking_input(update.tracking.as_ref()),
            "notifyCustomer": update.notify_customer,
        }),
        expected_cost: MUTATION_COST,
    };
    outcome.calls = 1;
    let data = match executor.call(shop, lane, &op).await {
        Ok(data) => data,
        Err(e) => {
            outcome.failed_calls.push((0, e));
            outcome.failed = true;
            return (None, outcome);
        }
    };
    let payload = &data["fulfillmentTrackingInfoUpdate"];
    let errors = payload["userErrors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !errors.is_empty() || !payload["fulfillment"].is_object() {
        outcome.user_errors = errors;
        outcome.failed = true;
        return (None, outcome);
    }
    let fulfillment = &payload["fulfillment"];
    (
        Some(pb::TrackingUpdated {
            fulfillment_id: fulfillment["id"].as_str().unwrap_or_default().to_string(),
            tracking: tracking_from(fulfillment),
        }),
        outcome,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fo(status: &str, lines: &[(&str, &str, i64)]) -> FulfillmentOrder {
        FulfillmentOrder {
            id: format!("gid://shopify/FulfillmentOrder/{status}"),
            status: status.into(),
            lines: lines
                .iter()
                .enumerate()
                .map(|(i, (item, sku, remaining))| FoLine {
                    id: format!("gid://shopify/FulfillmentOrderLineItem/{i}"),
                    line_item_id: item.to_string(),
                    sku: sku.to_string(),
                    remaining: *remaining,
                })
                .collect(),
        }
    }

    fn line(item: Item, quantity: i64) -> Line {
        Line { item, quantity }
    }

    fn codes(problems: &[Value]) -> Vec<&str> {
        problems
            .iter()
            .map(|p| p["code"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn lines_map_by_line_item_or_sku_and_a_sku_spreads_over_its_lines() {
        let orders = [
            fo("IN_PROGRESS", &[("L1", "A", 2), ("L2", "B", 1)]),
            fo("OPEN", &[("L3", "B", 4)]),
        ];
        let plan = plan(
            &orders,
            &[
                line(Item::LineItem("L1".into()), 2),
                line(Item::Sku("B".into()), 3),
            ],
        )
        .unwrap();
        assert_eq!(plan, vec![(0, 0, 2), (0, 1, 1), (1, 0, 2)]);
    }

    #[test]
    fn without_lines_everything_remaining_is_fulfilled() {
        let orders = [
            fo("OPEN", &[("L1", "A", 2), ("L2", "B", 0)]),
            fo("CLOSED", &[("L3", "C", 0)]),
        ];
        assert_eq!(plan(&orders, &[]).unwrap(), vec![(0, 0, 2)]);
        let done = [fo("CLOSED", &[("L1", "A", 0)])];
        assert_eq!(
            codes(&plan(&done, &[]).unwrap_err()),
            vec!["ALREADY_FULFILLED"]
        );
        let held = [fo("ON_HOLD", &[("L1", "A", 1)])];
        assert_eq!(
            codes(&plan(&held, &[]).unwrap_err()),
            vec!["FULFILLMENT_ON_HOLD"]
        );
    }

    #[test]
    fn every_unmappable_line_is_named() {
        let orders = [
            fo("OPEN", &[("L1", "A", 1)]),
            fo("CLOSED", &[("L2", "B", 0)]),
        ];
        let problems = plan(
            &orders,
            &[
                line(Item::Sku("Z".into()), 1),
                line(Item::LineItem("L2".into()), 1),
                line(Item::LineItem("L1".into()), 5),
                line(Item::Missing, 1),
                line(Item::LineItem("L1".into()), 0),
            ],
        )
        .unwrap_err();
        assert_eq!(
            codes(&problems),
            vec![
                "LINE_ITEM_NOT_FOUND",
                "ALREADY_FULFILLED",
                "QUANTITY_EXCEEDS_REMAINING",
                "INVALID_REQUEST",
                "INVALID_REQUEST"
            ]
        );
        assert_eq!(problems[2]["field"], json!(["lines", "2"]));
        assert!(
            problems[2]["message"]
                .as_str()
                .unwrap()
                .contains("1 remain")
        );
    }

    #[test]
    fn two_lines_for_one_item_cannot_take_more_than_remains() {
        let orders = [fo("OPEN", &[("L1", "A", 3)])];
        let problems = plan(
            &orders,
            &[
                line(Item::LineItem("L1".into()), 2),
                line(Item::Sku("A".into()), 2),
            ],
        )
        .unwrap_err();
        assert_eq!(codes(&problems), vec!["QUANTITY_EXCEEDS_REMAINING"]);
    }

    #[test]
    fn gids_are_checked_by_kind() {
        assert!(is_gid("gid://shopify/Order/12", "Order"));
        assert!(!is_gid("gid://shopify/Order/", "Order"));
        assert!(!is_gid("gid://shopify/Location/12", "Order"));
        assert!(!is_gid("12", "Order"));
    }
}
