//! Mapping a shipment's lines onto the fulfillment orders at its location: all or nothing, every line that cannot
//! be mapped named.

use super::{Item, Line};
use crate::shopify::wire::UserError;

/// A typed problem, as `Outcome::user_errors` carries them.
pub(super) fn problem(code: &str, field: &[&str], message: impl Into<String>) -> UserError {
    UserError::new(code, field, message)
}

/// One fulfillment order at the location, with its lines.
#[derive(Debug, Clone)]
pub(super) struct FulfillmentOrder {
    pub(super) id: String,
    pub(super) status: String,
    pub(super) lines: Vec<FoLine>,
}

impl FulfillmentOrder {
    /// Shopify accepts fulfillments for open and partly fulfilled fulfillment orders only.
    pub(super) fn fulfillable(&self) -> bool {
        matches!(self.status.as_str(), "OPEN" | "IN_PROGRESS")
    }

    pub(super) fn held(&self) -> bool {
        matches!(self.status.as_str(), "ON_HOLD" | "SCHEDULED")
    }
}

#[derive(Debug, Clone)]
pub(super) struct FoLine {
    pub(super) id: String,
    pub(super) line_item_id: String,
    pub(super) sku: String,
    pub(super) remaining: i64,
}

/// (fulfillment order index, line index, quantity)
pub(super) type Plan = Vec<(usize, usize, i64)>;

/// Maps the requested lines onto the location's fulfillment orders. Problems name the request line (`lines.N`).
pub(super) fn plan(orders: &[FulfillmentOrder], lines: &[Line]) -> Result<Plan, Vec<UserError>> {
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

pub(super) fn is_gid(id: &str, kind: &str) -> bool {
    id.strip_prefix("gid://shopify/")
        .and_then(|rest| rest.strip_prefix(kind))
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|n| !n.is_empty())
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

    fn codes(problems: &[UserError]) -> Vec<&str> {
        problems.iter().map(UserError::code).collect()
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
        assert_eq!(
            problems[2].field,
            Some(vec!["lines".to_string(), "2".to_string()])
        );
        assert!(problems[2].message.contains("1 remain"));
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
