//! Idempotency keys for the mutations Shopify de-duplicates: from API 2026-04 the inventory mutations
//! (`inventorySetQuantities`, `inventoryAdjustQuantities`, `inventoryActivate`, ..., and `refundCreate`) must carry
//! `@idempotent(key: $idempotencyKey)` on the mutation field, and a retry with the same key answers the first
//! attempt's result instead of applying again (https://shopify.dev/changelog/making-idempotency-mandatory-for-inventory-adjustments-and-refund-mutations).
//! Shopify accepts the directive on those mutations only; the others we send are safe to repeat (productSet by
//! handle or id, metafieldsSet, tagsAdd, price updates) or are resolved by reading back (fulfillmentCreate).
//!
//! A key is derived, never stored: the command id, what the call is and its index within the command, and a digest of
//! its variables. So every retry of the call (the executor's, or a redelivered command's) sends the same key, and a
//! call whose variables differ (a command recomputed from a re-read) gets another key: Shopify answers a key reused
//! with other variables with `IDEMPOTENCY_KEY_PARAMETER_MISMATCH`. A call whose earlier attempt failed on Shopify's
//! side (`IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED`) is sent again under the next attempt's key, also derived, so a
//! redelivered command walks the same keys.

use std::time::Duration;

use serde_json::Value;

use super::wire::UserError;

/// The variable the documents name in `@idempotent(key: $idempotencyKey)`.
pub const VARIABLE: &str = "idempotencyKey";

/// Attempts under a new key after `IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED`, and waits for a concurrent request with the
/// same key (`IDEMPOTENCY_CONCURRENT_REQUEST`) to end.
pub const MAX_NEW_KEYS: u32 = 3;
pub const MAX_CONCURRENT_WAITS: u32 = 5;
pub const CONCURRENT_WAIT: Duration = Duration::from_millis(500);

/// The key of call `index` of kind `what` of command `command_id`, `attempt` 0 unless Shopify asked for a new key.
pub fn key(command_id: &str, what: &str, index: usize, attempt: u32, variables: &Value) -> String {
    // serde_json keeps object keys sorted, so equal variables serialise equally.
    let canonical = serde_json::to_vec(variables).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &canonical);
    let short: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if attempt == 0 {
        format!("{command_id}:{what}:{index}:{short}")
    } else {
        format!("{command_id}:{what}:{index}:{short}:{attempt}")
    }
}

/// What an idempotent call's user errors ask of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do about idempotency: the answer stands (it may carry other user errors).
    Done,
    /// The same key is being processed: wait, then send again with the same key.
    RetrySameKey,
    /// The key's earlier attempt failed: send again with a new key.
    RetryNewKey,
    /// The key was used with other variables: a bug on our side (keys are derived from the variables). Reported.
    KeyMismatch,
}

/// Reads the `IDEMPOTENCY_*` codes among a payload's `userErrors`
/// (https://shopify.dev/docs/api/admin-graphql/latest/enums/InventorySetQuantitiesUserErrorCode).
pub fn verdict(user_errors: &[UserError]) -> Verdict {
    let codes: Vec<&str> = user_errors.iter().map(UserError::code).collect();
    if codes.contains(&"IDEMPOTENCY_KEY_PARAMETER_MISMATCH") {
        Verdict::KeyMismatch
    } else if codes.contains(&"IDEMPOTENCY_CONCURRENT_REQUEST") {
        Verdict::RetrySameKey
    } else if codes.contains(&"IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED") {
        Verdict::RetryNewKey
    } else {
        Verdict::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_key_is_stable_for_the_same_call_and_differs_for_other_variables_or_attempts() {
        let vars = json!({"input": {"quantities": [{"quantity": 3, "changeFromQuantity": null}]}});
        let same = json!({"input": {"quantities": [{"changeFromQuantity": null, "quantity": 3}]}});
        let other = json!({"input": {"quantities": [{"quantity": 4, "changeFromQuantity": null}]}});
        let k = key("cmd-1", "inventory", 0, 0, &vars);
        assert!(k.starts_with("cmd-1:inventory:0:"), "{k}");
        assert_eq!(
            k,
            key("cmd-1", "inventory", 0, 0, &same),
            "key order does not matter"
        );
        assert_ne!(k, key("cmd-1", "inventory", 0, 0, &other));
        assert_ne!(k, key("cmd-1", "inventory", 1, 0, &vars));
        assert_ne!(k, key("cmd-2", "inventory", 0, 0, &vars));
        assert_ne!(k, key("cmd-1", "inventory", 0, 1, &vars));
        assert_eq!(
            key("cmd-1", "inventory", 0, 1, &vars),
            key("cmd-1", "inventory", 0, 1, &vars)
        );
    }

    #[test]
    fn the_idempotency_codes_are_told_apart() {
        let errors = |code: &str| vec![UserError::new(code, &["input"], "m")];
        assert_eq!(verdict(&[]), Verdict::Done);
        assert_eq!(
            verdict(&errors("CHANGE_FROM_QUANTITY_STALE")),
            Verdict::Done
        );
        assert_eq!(
            verdict(&errors("IDEMPOTENCY_CONCURRENT_REQUEST")),
            Verdict::RetrySameKey
        );
        assert_eq!(
            verdict(&errors("IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED")),
            Verdict::RetryNewKey
        );
        assert_eq!(
            verdict(&errors("IDEMPOTENCY_KEY_PARAMETER_MISMATCH")),
            Verdict::KeyMismatch
        );
    }
}
