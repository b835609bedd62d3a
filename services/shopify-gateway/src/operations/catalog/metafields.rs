//! Metafields: `metafieldsSet` 25 at a time, or one bulk mutation above the threshold. Shopify applies a call all or
//! nothing: when it refuses some metafields of a call (userErrors naming them), the others of that call are sent
//! again once, so only the refused ones fail.

use std::collections::BTreeSet;

use shopbridge_proto::gateway as pb;

use super::{answered, check_metafield, finish, metafield_input};
use crate::{
    bulk::{
        Writer,
        mutation::{Stopped, line_data, run_bulk_mutation},
    },
    operations::{MUTATION_COST, run_costed},
    outcome::{Outcome, invalid, renamed},
    shopify::wire::{
        self, Request, UserError,
        catalog::{MetafieldInput, MetafieldsSet, MetafieldsSetData, MetafieldsSetPayload},
    },
};

/// Shopify's cap on metafields per `metafieldsSet`.
pub const METAFIELDS_BATCH: usize = 25;

/// (input index, the entry sent)
type Entry = (usize, MetafieldInput);

fn batch_request(batch: &[Entry]) -> MetafieldsSet {
    MetafieldsSet {
        metafields: batch.iter().map(|(_, m)| m.clone()).collect(),
    }
}

/// What one `metafieldsSet` of `entries` costs: the mutation, and the metafields selected in its payload.
fn batch_cost(entries: usize) -> f64 {
    MUTATION_COST + 2.0 + entries as f64
}

/// Sends `batches`, one `metafieldsSet` each; returns each answered batch's payload by batch index.
async fn send_batches(
    w: &Writer<'_>,
    batches: &[Vec<Entry>],
    outcome: &mut Outcome,
) -> Vec<(usize, Option<MetafieldsSetPayload>)> {
    let requests = batches
        .iter()
        .map(|batch| (batch_request(batch), batch_cost(batch.len())))
        .collect();
    let results = run_costed(w.executor, w.shop, w.lane, requests).await;
    answered(results, outcome)
        .into_iter()
        .map(|(b, data)| (b, data.metafields_set))
        .collect()
}

/// Sets metafields, 25 per metafieldsSet, or in one bulk mutation above the threshold.
pub async fn set_metafields(
    w: &Writer<'_>,
    set: &pb::SetMetafields,
) -> (Option<pb::MetafieldsSet>, Outcome) {
    let mut outcome = Outcome::default();
    if set.metafields.is_empty() {
        outcome.user_errors.push(UserError::new(
            "INVALID_REQUEST",
            &["metafields"],
            "no metafield to set",
        ));
        return (None, finish(outcome, 0));
    }
    let mut valid: Vec<Entry> = Vec::new();
    for (i, m) in set.metafields.iter().enumerate() {
        let mut errors = Vec::new();
        if !m.owner_id.starts_with("gid://shopify/") {
            errors.push(invalid(
                "metafields",
                i,
                &["owner_id"],
                "INVALID",
                format!(
                    "{:?} is not a Shopify id (gid://shopify/<Type>/<id>)",
                    m.owner_id
                ),
            ));
        }
        match &m.metafield {
            Some(value) => check_metafield(&mut errors, ("metafields", i), &[], value),
            None => errors.push(invalid(
                "metafields",
                i,
                &["metafield"],
                "BLANK",
                "no metafield given".to_string(),
            )),
        }
        match (&m.metafield, errors.is_empty()) {
            (Some(value), true) => valid.push((i, metafield_input(value, Some(&m.owner_id)))),
            _ => outcome.user_errors.extend(errors),
        }
    }
    let batches: Vec<Vec<Entry>> = valid.chunks(METAFIELDS_BATCH).map(<[_]>::to_vec).collect();
    let mut result = pb::MetafieldsSet::default();
    // Per batch: its payload (None: the call failed or Shopify answered without one).
    let payloads: Vec<(usize, Option<MetafieldsSetPayload>)> =
        if valid.len() > w.bulk_mutation_threshold {
            let lines = batches
                .iter()
                .map(|b| wire::variables(&batch_request(b)))
                .collect();
            match run_bulk_mutation(
                w,
                "metafields",
                MetafieldsSet::DOCUMENT,
                lines,
                &mut outcome,
            )
            .await
            {
                Ok(done) => {
                    result.bulk_operation_id = done.id.clone();
                    (0..batches.len())
                        .map(|b| {
                            let items: Vec<usize> = batches[b].iter().map(|(i, _)| *i).collect();
                            let data: Option<MetafieldsSetData> = line_data(
                                &done,
                                b,
                                MetafieldsSet::DOCUMENT,
                                &mut outcome,
                                "metafields",
                                &items,
                            );
                            (b, data.and_then(|d| d.metafields_set))
                        })
                        .collect()
                }
                Err(Stopped) => return (None, finish(outcome, 0)),
            }
        } else {
            send_batches(w, &batches, &mut outcome).await
        };
    // Batches Shopify refused in part: their other metafields, sent again.
    let mut resend: Vec<Vec<Entry>> = Vec::new();
    for (b, payload) in payloads {
        let Some(payload) = payload else { continue };
        let batch = &batches[b];
        if payload.user_errors.is_empty() {
            record_set(&mut result, batch, &payload);
            continue;
        }
        if let Some(rest) = refused(batch, &payload.user_errors, &mut outcome) {
            resend.push(rest);
        }
    }
    if !resend.is_empty() {
        for (n, payload) in send_batches(w, &resend, &mut outcome).await {
            let Some(payload) = payload else { continue };
            let rest = &resend[n];
            if payload.user_errors.is_empty() {
                record_set(&mut result, rest, &payload);
            } else {
                // Refused again: reported against the first of them (the call applied nothing).
                outcome
                    .user_errors
                    .extend(payload.user_errors.iter().map(|e| {
                        let at = position(e)
                            .and_then(|x| rest.get(x))
                            .map_or(rest[0].0, |entry| entry.0);
                        renamed("metafields", at, e, 2)
                    }));
            }
        }
    }
    result.metafields.sort_by_key(|m| m.index);
    let written = result.metafields.len();
    (Some(result), finish(outcome, written))
}

/// The position in its call of the entry a metafieldsSet user error names: `["metafields", "<i>", ...]`.
fn position(error: &UserError) -> Option<usize> {
    error.field.as_ref()?.get(1)?.parse().ok()
}

/// Records the userErrors of a refused metafieldsSet call against the metafields they name, and returns the call's
/// other metafields, to be sent again (None when an error names no metafield, or none is left).
fn refused(batch: &[Entry], errors: &[UserError], outcome: &mut Outcome) -> Option<Vec<Entry>> {
    let mut refused = BTreeSet::new();
    let mut whole_call = false;
    for e in errors {
        match position(e).filter(|n| *n < batch.len()) {
            Some(n) => {
                refused.insert(n);
                outcome
                    .user_errors
                    .push(renamed("metafields", batch[n].0, e, 2));
            }
            None => {
                whole_call = true;
                outcome
                    .user_errors
                    .push(renamed("metafields", batch[0].0, e, 1));
            }
        }
    }
    let rest: Vec<Entry> = batch
        .iter()
        .enumerate()
        .filter(|(n, _)| !refused.contains(n))
        .map(|(_, entry)| entry.clone())
        .collect();
    (!whole_call && !rest.is_empty()).then_some(rest)
}

/// The ids metafieldsSet returned, in the order sent, by input index.
fn record_set(result: &mut pb::MetafieldsSet, sent: &[Entry], payload: &MetafieldsSetPayload) {
    for ((i, _), m) in sent.iter().zip(payload.metafields.iter().flatten()) {
        result.metafields.push(pb::SetMetafield {
            index: *i as u32,
            id: m.id.clone(),
        });
    }
}
