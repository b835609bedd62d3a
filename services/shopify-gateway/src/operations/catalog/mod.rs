//! Catalog writes and reads. Writes: product upsert (`products`: `productSet`, one product per call), inventory item
//! cost (`costs`: `inventoryItemUpdate`, one item per call), metafields (`metafields`: `metafieldsSet`, 25 per call),
//! publishing (`publish`: `publishablePublish`, one product per call with all its publications) and smart collections
//! (`collections`: `collectionCreate`). Above a size threshold, product upserts and metafields go as one bulk mutation
//! instead (`bulk::mutation`). Reads: the catalog export (`export`, bulk) and the delta export (`delta`, pages), both
//! mapped to the same records (`records`).
//!
//! A redelivered command, or a call sent again after a lost answer, never applies a write twice: these writes set
//! absolute values (`productSet` upserts by id or handle, costs, metafields, publications), and a smart collection is
//! looked up by handle before it is created (Shopify has no idempotency key for them; `@idempotent` is for inventory
//! mutations only). Known gap: a `collectionCreate` whose answer is lost and that the executor sends again can create a
//! second collection. Input Shopify is known to refuse is checked before any call: a bad item becomes a
//! problem naming it (`<list>.<index>...`) and is not sent, the others are. Shopify's userErrors are renamed the same
//! way, so every problem says which input item it is about.

pub mod collections;
pub mod costs;
pub mod delta;
pub mod export;
pub mod metafields;
pub mod products;
pub mod publish;
pub mod records;

use shopbridge_proto::gateway as pb;

use crate::{
    outcome::{Outcome, invalid, renamed},
    shopify::{
        executor::CallError,
        wire::{UserError, catalog::MetafieldInput},
    },
};

/// Items above which UpsertProducts and SetMetafields go as one bulk mutation by default (the configuration's
/// `service.catalog.bulk_mutation_threshold`, held by the command handler's settings).
pub const DEFAULT_BULK_MUTATION_THRESHOLD: usize = 500;
/// The largest JSONL of variables sent as one bulk mutation by default (`service.catalog.bulk_upload_max_bytes`):
/// Shopify takes uploads up to 100 MB; larger ones are split into bulk mutations run in turn.
pub const DEFAULT_BULK_UPLOAD_MAX_BYTES: usize = 99_000_000;

/// The `[service.catalog]` section.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSettings {
    pub bulk_mutation_threshold: usize,
    pub bulk_upload_max_bytes: usize,
}

/// Is `s` a plain decimal number ("12", "12.50", "-3.1")? Money is passed to Shopify as this string, never a float.
fn decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// The amount of `money`, with a problem when it is not a non-negative decimal.
fn checked_money(
    errors: &mut Vec<UserError>,
    (list, index): (&str, usize),
    field: &[&str],
    money: &shopbridge_proto::common::Money,
) -> String {
    let amount = money.amount.trim();
    if !decimal(amount) || amount.starts_with('-') {
        errors.push(invalid(
            list,
            index,
            field,
            "INVALID",
            format!("{amount:?} is not an amount (a non-negative decimal such as \"12.50\")"),
        ));
    }
    amount.to_string()
}

/// Shopify's metafield rules: namespace 3..255 characters, key 2..64 of letters, digits, `-` and `_`.
fn check_metafield(
    errors: &mut Vec<UserError>,
    (list, index): (&str, usize),
    prefix: &[&str],
    m: &pb::MetafieldValue,
) {
    let at = |f: &'static str| {
        let mut path = prefix.to_vec();
        path.push(f);
        path
    };
    let name_ok = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let ns = m.namespace.chars().count();
    if !(3..=255).contains(&ns) {
        errors.push(invalid(
            list,
            index,
            &at("namespace"),
            if ns < 3 { "TOO_SHORT" } else { "TOO_LONG" },
            format!(
                "metafield namespace {:?} must have 3 to 255 characters",
                m.namespace
            ),
        ));
    }
    let key = m.key.chars().count();
    if !(2..=64).contains(&key) {
        errors.push(invalid(
            list,
            index,
            &at("key"),
            if key < 2 { "TOO_SHORT" } else { "TOO_LONG" },
            format!("metafield key {:?} must have 2 to 64 characters", m.key),
        ));
    } else if !name_ok(&m.key) {
        errors.push(invalid(
            list,
            index,
            &at("key"),
            "INVALID",
            format!(
                "metafield key {:?} may hold only letters, digits, '-' and '_'",
                m.key
            ),
        ));
    }
    if m.r#type.trim().is_empty() {
        errors.push(invalid(
            list,
            index,
            &at("type"),
            "BLANK",
            format!(
                "metafield {}.{} needs a type (e.g. single_line_text_field)",
                m.namespace, m.key
            ),
        ));
    }
}

/// A metafield as Shopify's input (`owner_id` only in `metafieldsSet`).
fn metafield_input(m: &pb::MetafieldValue, owner_id: Option<&str>) -> MetafieldInput {
    MetafieldInput {
        owner_id: owner_id.map(str::to_string),
        namespace: m.namespace.clone(),
        key: m.key.clone(),
        kind: m.r#type.clone(),
        value: m.value.clone(),
    }
}

/// A proto enum's value as Shopify names it ("PRODUCT_STATUS_ACTIVE" -> "ACTIVE").
fn shopify_name<'a>(name: &'a str, prefix: &str) -> &'a str {
    name.strip_prefix(prefix).unwrap_or(name)
}

/// Finishes an outcome: FAILED when items were asked for and none was written.
fn finish(mut outcome: Outcome, written: usize) -> Outcome {
    outcome.failed = written == 0;
    outcome
}

/// Call results -> (item, answer), failed calls recorded in `outcome`.
fn answered<T>(
    results: Vec<(usize, Result<T, CallError>)>,
    outcome: &mut Outcome,
) -> Vec<(usize, T)> {
    results
        .into_iter()
        .filter_map(|(i, result)| {
            outcome.calls += 1;
            match result {
                Ok(answer) => Some((i, answer)),
                Err(e) => {
                    outcome.failed_calls.push((i, e));
                    None
                }
            }
        })
        .collect()
}

/// Records one call per item's user errors, renamed to `<list>.<index>...`; returns how many items were applied.
fn count_applied(
    answers: impl IntoIterator<Item = (usize, Vec<UserError>)>,
    list: &str,
    outcome: &mut Outcome,
) -> usize {
    let mut written = 0;
    for (i, errors) in answers {
        if errors.is_empty() {
            written += 1;
        }
        outcome
            .user_errors
            .extend(errors.iter().map(|e| renamed(list, i, e, 0)));
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_plain_numbers() {
        for ok in ["0", "12", "12.50", "-3.1"] {
            assert!(decimal(ok), "{ok}");
        }
        for bad in ["", "1e3", "12.", ".5", "1,5", "abc", "NaN"] {
            assert!(!decimal(bad), "{bad}");
        }
    }
}
