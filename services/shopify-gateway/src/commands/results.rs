//! A command's result: the problems (Shopify's user errors and failed calls, one mapping), the status they make,
//! and the events published before the result (order pages cut to NATS's message size).

use shopbridge_proto::gateway::{self as pb, command_result::Status};

use crate::{
    outcome::Outcome,
    shopify::{FatalKind, budget::Lane, executor::CallError, wire::UserError},
};

/// Orders per OrderPage event, at most.
pub const ORDER_PAGE: usize = 250;
/// Encoded bytes per OrderPage event, at most: orders with hundreds of lines make a page of 250 too big for NATS's
/// 1 MB message limit, so such a page is cut earlier.
const ORDER_PAGE_BYTES: usize = 512 * 1024;

/// Events a command publishes before its CommandResult, in the same transaction.
#[derive(Debug)]
pub(super) enum Published {
    Catalog(pb::CatalogBatch),
    Orders(pb::OrderPage),
}

/// Splits orders into OrderPage events of at most [`ORDER_PAGE`] orders and [`ORDER_PAGE_BYTES`] bytes.
pub(super) fn order_pages(command: &pb::Command, orders: Vec<pb::Order>) -> Vec<pb::OrderPage> {
    use prost::Message;
    let mut pages: Vec<Vec<pb::Order>> = Vec::new();
    let mut bytes = 0;
    for order in orders {
        let size = order.encoded_len();
        match pages.last_mut() {
            Some(page) if page.len() < ORDER_PAGE && bytes + size <= ORDER_PAGE_BYTES => {
                bytes += size;
                page.push(order);
            }
            _ => {
                bytes = size;
                pages.push(vec![order]);
            }
        }
    }
    let total = pages.len() as u32;
    pages
        .into_iter()
        .enumerate()
        .map(|(i, orders)| pb::OrderPage {
            command_id: command.command_id.clone(),
            shop_domain: command.shop_domain.clone(),
            channel_id: command.channel_id.clone(),
            seq: i as u32 + 1,
            total_pages: total,
            orders,
        })
        .collect()
}

pub(super) fn lane(lane: i32) -> Lane {
    match pb::Lane::try_from(lane).unwrap_or(pb::Lane::Unspecified) {
        pb::Lane::Orders => Lane::Orders,
        pb::Lane::Sync => Lane::Sync,
        pb::Lane::Publish => Lane::Publish,
        pb::Lane::Import | pb::Lane::Unspecified => Lane::Import,
    }
}

pub(super) fn problem(code: &str, message: impl Into<String>) -> pb::Problem {
    pb::Problem {
        code: code.to_string(),
        message: message.into(),
        field: String::new(),
    }
}

pub(super) fn call_problem(error: &CallError) -> pb::Problem {
    let code = match error {
        CallError::Fatal {
            kind: FatalKind::InvalidToken,
            ..
        } => "INVALID_TOKEN",
        CallError::Fatal {
            kind: FatalKind::UnknownShop,
            ..
        } => "UNKNOWN_SHOP",
        CallError::Fatal {
            kind: FatalKind::Forbidden,
            ..
        } => "FORBIDDEN",
        CallError::Fatal {
            kind: FatalKind::InvalidRequest,
            ..
        } => "INVALID_REQUEST",
        CallError::Fatal {
            kind: FatalKind::UnexpectedAnswer,
            ..
        } => "UNEXPECTED_ANSWER",
        CallError::Fatal {
            kind: FatalKind::Deposed,
            ..
        } => "DEPOSED",
        CallError::DeadlineExceeded { .. } => "DEADLINE_EXCEEDED",
    };
    problem(code, error.to_string())
}

fn user_error_problem(error: &UserError) -> pb::Problem {
    pb::Problem {
        code: error.code().to_string(),
        message: error.message.clone(),
        field: error.field.as_deref().unwrap_or_default().join("."),
    }
}

/// Completes `result` from `outcome`: its problems, its calls (unless counted already), and the status they make.
pub(super) fn conclude(mut result: pb::CommandResult, outcome: &Outcome) -> pb::CommandResult {
    if result.calls == 0 {
        result.calls = outcome.calls as u32;
    }
    result
        .problems
        .extend(outcome.user_errors.iter().map(user_error_problem));
    result
        .problems
        .extend(outcome.failed_calls.iter().map(|(_, e)| call_problem(e)));
    result.status = if result.problems.is_empty() {
        Status::Succeeded
    } else if outcome.failed || outcome.failed_calls.len() == outcome.calls.max(1) {
        Status::Failed
    } else {
        Status::Partial
    } as i32;
    result
}

pub(super) fn money(m: &Option<shopbridge_proto::common::Money>) -> Option<String> {
    m.as_ref().map(|m| m.amount.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> pb::Command {
        pb::Command {
            command_id: "c1".into(),
            shop_domain: "s.myshopify.com".into(),
            ..Default::default()
        }
    }

    fn order(i: usize, note_bytes: usize) -> pb::Order {
        pb::Order {
            id: format!("gid://shopify/Order/{i}"),
            note: "x".repeat(note_bytes),
            ..Default::default()
        }
    }

    #[test]
    fn order_pages_hold_at_most_250_orders_numbered_in_order() {
        let pages = order_pages(&command(), (0..600).map(|i| order(i, 10)).collect());
        let sizes: Vec<usize> = pages.iter().map(|p| p.orders.len()).collect();
        assert_eq!(sizes, vec![250, 250, 100]);
        assert!(
            pages
                .iter()
                .enumerate()
                .all(|(i, p)| p.seq == i as u32 + 1 && p.total_pages == 3 && p.command_id == "c1")
        );
        assert_eq!(pages[2].orders[99].id, "gid://shopify/Order/599");
        assert!(order_pages(&command(), Vec::new()).is_empty());
    }

    #[test]
    fn big_orders_are_cut_into_pages_under_the_byte_limit() {
        use prost::Message;
        let pages = order_pages(&command(), (0..10).map(|i| order(i, 200_000)).collect());
        assert_eq!(pages.len(), 5);
        assert!(
            pages
                .iter()
                .all(|p| p.encoded_len() < ORDER_PAGE_BYTES + 1024)
        );
        assert_eq!(pages.iter().map(|p| p.orders.len()).sum::<usize>(), 10);
    }
}
