//! Tracking: checked before it is sent, as Shopify's input, read back from a fulfillment, and replaced on an existing
//! fulfillment (`fulfillmentTrackingInfoUpdate`).

use shopbridge_proto::gateway as pb;

use super::plan::{is_gid, problem};
use crate::{
    operations::MUTATION_COST,
    outcome::Outcome,
    shopify::{
        budget::Lane,
        executor::{Executor, ShopCredentials},
        wire::{
            UserError,
            fulfillments::{FulfillmentTrackingInput, FulfillmentTrackingUpdate, TrackingInfo},
        },
    },
};

/// Problems with the tracking that Shopify would refuse as a whole request (its `url` is a URL scalar).
pub fn tracking_problems(tracking: Option<&pb::Tracking>) -> Vec<UserError> {
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
pub fn tracking_input(tracking: Option<&pb::Tracking>) -> FulfillmentTrackingInput {
    let Some(t) = tracking else {
        return FulfillmentTrackingInput::default();
    };
    let given = |v: &String| (!v.is_empty()).then(|| v.clone());
    FulfillmentTrackingInput {
        company: given(&t.company),
        number: given(&t.number),
        url: given(&t.url),
    }
}

/// The first tracking entry of a fulfillment.
pub fn tracking_from(tracking: &[TrackingInfo]) -> Option<pb::Tracking> {
    let first = tracking.first()?;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    Some(pb::Tracking {
        company: text(&first.company),
        number: text(&first.number),
        url: text(&first.url),
    })
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
    let request = FulfillmentTrackingUpdate {
        fulfillment_id: fulfillment_id.to_string(),
        tracking_info_input: tracking_input(update.tracking.as_ref()),
        notify_customer: update.notify_customer,
    };
    outcome.calls = 1;
    let data = match executor.send(shop, lane, &request, MUTATION_COST).await {
        Ok(data) => data,
        Err(e) => {
            outcome.failed_calls.push((0, e));
            outcome.failed = true;
            return (None, outcome);
        }
    };
    let (fulfillment, errors) = data
        .fulfillment_tracking_info_update
        .map(|p| (p.fulfillment, p.user_errors))
        .unwrap_or_default();
    let Some(fulfillment) = fulfillment.filter(|_| errors.is_empty()) else {
        outcome.user_errors = errors;
        outcome.failed = true;
        return (None, outcome);
    };
    (
        Some(pb::TrackingUpdated {
            tracking: tracking_from(&fulfillment.tracking_info),
            fulfillment_id: fulfillment.id,
        }),
        outcome,
    )
}
