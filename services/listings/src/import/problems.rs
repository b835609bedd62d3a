//! What an import run tells the merchant in its log: a stable code, what happened in their words, what it concerns
//! (a SKU, a Shopify variant or product with its GID) and what to do about it, modelled on the spec's "If Something
//! Goes Wrong" texts. Keys are stable ("<CODE>:<GID>"), so a problem reported twice is stored once.

use shopbridge_proto::{gateway as gw, runs as pb};

use crate::import_settings::MasterSkuField;

pub const MISSING_MASTER_SKU: &str = "MISSING_MASTER_SKU";
pub const DUPLICATE_MASTER_SKU: &str = "DUPLICATE_MASTER_SKU";
pub const PRODUCT_OVER_LIMITS: &str = "PRODUCT_OVER_LIMITS";
pub const IMPORT_DISABLED: &str = "IMPORT_DISABLED";
pub const ALREADY_RUNNING: &str = "ALREADY_RUNNING";
pub const EXPORT_TIMEOUT: &str = "EXPORT_TIMEOUT";
pub const APPLY_FAILED: &str = "APPLY_FAILED";
/// The gateway's own code when it reports none (an export that failed for a reason without a code).
pub const EXPORT_FAILED: &str = "EXPORT_FAILED";

/// The spec's "Connection Issues" advice, for every failure that comes from the store's connection.
const CHECK_CONNECTION: &str = "Connection Issues: double-check the channel's Shopify connection (its Admin API \
     token and store URL, or connect it again with OAuth), then run the import again.";

/// One entry of a run's log, before it gets its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub level: pb::LogLevel,
    pub code: &'static str,
    pub message: String,
    pub entity: pb::Entity,
    pub action: String,
}

impl Problem {
    pub fn into_entry(self, at: prost_types::Timestamp) -> pb::LogEntry {
        pb::LogEntry {
            key: self.key,
            level: self.level as i32,
            code: self.code.to_string(),
            message: self.message,
            entity: Some(self.entity),
            action: self.action,
            at: Some(at),
        }
    }
}

/// How a Shopify variant is named in a message: its product's title and its option values ("Tee / M / Red").
pub fn variant_name(product: &gw::CatalogProduct, variant: &gw::CatalogVariant) -> String {
    let mut name = product.title.clone();
    for option in &variant.option_values {
        name.push_str(" / ");
        name.push_str(&option.value);
    }
    name
}

pub fn missing_master_sku(
    field: MasterSkuField,
    product: &gw::CatalogProduct,
    variant: &gw::CatalogVariant,
) -> Problem {
    let label = field.label();
    Problem {
        key: format!("{MISSING_MASTER_SKU}:{}", variant.id),
        level: pb::LogLevel::Warning,
        code: MISSING_MASTER_SKU,
        message: format!(
            "The Shopify variant \"{}\" has no value in {label}, the Master SKU field, so it cannot be matched to a \
             listing; it was not imported.",
            variant_name(product, variant)
        ),
        entity: pb::Entity {
            kind: "shopify_variant".into(),
            value: variant_name(product, variant),
            shopify_id: variant.id.clone(),
        },
        action: format!(
            "Listings Not Linking: give the variant a value in {label} in Shopify (or choose another Master SKU field \
             in the Import Listings settings), then run the import again."
        ),
    }
}

/// One of `holders` Shopify variants sharing the master SKU `sku`; neither is imported (see `matching`).
pub fn duplicate_master_sku(
    field: MasterSkuField,
    sku: &str,
    holders: u64,
    product: &gw::CatalogProduct,
    variant: &gw::CatalogVariant,
) -> Problem {
    let label = field.label();
    Problem {
        key: format!("{DUPLICATE_MASTER_SKU}:{}", variant.id),
        level: pb::LogLevel::Error,
        code: DUPLICATE_MASTER_SKU,
        message: format!(
            "{holders} Shopify variants have \"{sku}\" in {label}, the Master SKU field; \"{}\" is one of them. None \
             of them was imported or linked, so that one listing is never made of two different products.",
            variant_name(product, variant)
        ),
        entity: pb::Entity {
            kind: "sku".into(),
            value: sku.to_string(),
            shopify_id: variant.id.clone(),
        },
        action: format!(
            "Make the Master SKU unique: give each of these Shopify variants its own value in {label}, then run the \
             import again."
        ),
    }
}

pub fn over_limits(product: &gw::CatalogProduct, breaches: &[String], fixes: &[String]) -> Problem {
    Problem {
        key: format!("{PRODUCT_OVER_LIMITS}:{}", product.id),
        level: pb::LogLevel::Error,
        code: PRODUCT_OVER_LIMITS,
        message: format!(
            "The Shopify product \"{}\" {}; none of its {} variants was imported.",
            shorten(&product.title, 80),
            breaches.join(" and "),
            product.variants.len()
        ),
        entity: pb::Entity {
            kind: "shopify_product".into(),
            value: shorten(&product.title, 255),
            shopify_id: product.id.clone(),
        },
        action: format!(
            "In Shopify, {}; then run the import again.",
            fixes.join(" and ")
        ),
    }
}

pub fn import_disabled(channel: &str) -> Problem {
    Problem {
        key: IMPORT_DISABLED.into(),
        level: pb::LogLevel::Error,
        code: IMPORT_DISABLED,
        message: "Import Listings is turned off for this channel, so nothing was imported.".into(),
        entity: channel_entity(channel),
        action: "Import Not Running: turn on Import Listings in the channel's Import Listings settings, choose how \
                 listings are imported and the Master SKU field, then run the import again."
            .into(),
    }
}

pub fn already_running(channel: &str, other_run: &str) -> Problem {
    Problem {
        key: ALREADY_RUNNING.into(),
        level: pb::LogLevel::Error,
        code: ALREADY_RUNNING,
        message: format!(
            "Another import of this channel (run {other_run}) is still running; this one did not start."
        ),
        entity: channel_entity(channel),
        action: "Wait for the running import to finish (or cancel it), then run the import again."
            .into(),
    }
}

pub fn export_timeout(channel: &str, waited: std::time::Duration) -> Problem {
    Problem {
        key: EXPORT_TIMEOUT.into(),
        level: pb::LogLevel::Error,
        code: EXPORT_TIMEOUT,
        message: format!(
            "The store's catalog did not arrive from Shopify within {} minutes; the import stopped.",
            waited.as_secs() / 60
        ),
        entity: channel_entity(channel),
        action: format!("Run the import again. If it keeps happening: {CHECK_CONNECTION}"),
    }
}

pub fn apply_failed(channel: &str, applied: i32, total: i32) -> Problem {
    Problem {
        key: APPLY_FAILED.into(),
        level: pb::LogLevel::Error,
        code: APPLY_FAILED,
        message: format!(
            "Part of the catalog could not be saved after several attempts; the import stopped after {applied} of \
             {total} parts."
        ),
        entity: channel_entity(channel),
        action: "Run the import again: what was imported stays, and the rest is picked up. If it keeps failing, \
                 contact support with the run id."
            .into(),
    }
}

/// The gateway answered the export with a failure: the run's error (a sentence for the merchant) and its log entry.
/// The first problem with a connection code decides the advice.
pub fn export_failed(channel: &str, problems: &[gw::Problem]) -> (String, Problem) {
    let first = problems
        .iter()
        .find(|p| is_connection(&p.code))
        .or_else(|| problems.first());
    let (code, detail) = match first {
        Some(p) if !p.code.is_empty() => (p.code.as_str(), p.message.as_str()),
        Some(p) => (EXPORT_FAILED, p.message.as_str()),
        None => (EXPORT_FAILED, ""),
    };
    let (code, error, action) = match code {
        "INVALID_TOKEN" => (
            "INVALID_TOKEN",
            "Shopify refused the channel's access token, so the catalog could not be read.".to_string(),
            CHECK_CONNECTION.to_string(),
        ),
        "UNKNOWN_SHOP" => (
            "UNKNOWN_SHOP",
            "Shopify does not know the channel's store, so the catalog could not be read.".to_string(),
            CHECK_CONNECTION.to_string(),
        ),
        "FORBIDDEN" => (
            "FORBIDDEN",
            "Shopify refused to let the channel read the catalog (a missing permission, or the store is locked)."
                .to_string(),
            format!(
                "Make sure the app has the read_products and read_inventory permissions and the store is active. \
                 {CHECK_CONNECTION}"
            ),
        ),
        "NO_CREDENTIALS" => (
            "NO_CREDENTIALS",
            "The channel is not connected to Shopify, so the catalog could not be read.".to_string(),
            CHECK_CONNECTION.to_string(),
        ),
        _ => (
            EXPORT_FAILED,
            if detail.is_empty() {
                "The store's catalog could not be exported from Shopify.".to_string()
            } else {
                format!("The store's catalog could not be exported from Shopify: {detail}")
            },
            format!(
                "Run the import again. If it keeps failing, look at the operation details; it may be a connection \
                 problem. {CHECK_CONNECTION}"
            ),
        ),
    };
    let problem = Problem {
        key: code.to_string(),
        level: pb::LogLevel::Error,
        code,
        message: if detail.is_empty() || error.contains(detail) {
            error.clone()
        } else {
            format!("{error} (Shopify said: {detail})")
        },
        entity: channel_entity(channel),
        action,
    };
    (error, problem)
}

fn is_connection(code: &str) -> bool {
    matches!(
        code,
        "INVALID_TOKEN" | "UNKNOWN_SHOP" | "FORBIDDEN" | "NO_CREDENTIALS"
    )
}

fn channel_entity(channel: &str) -> pb::Entity {
    pb::Entity {
        kind: "channel".into(),
        value: channel.to_string(),
        shopify_id: String::new(),
    }
}

fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(max_chars.saturating_sub(1)).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_export_with_a_bad_token_gets_the_connection_advice() {
        let problems = vec![gw::Problem {
            code: "INVALID_TOKEN".into(),
            message: "Shopify refused the access token (401)".into(),
            field: String::new(),
        }];
        let (error, problem) = export_failed("c1", &problems);
        assert!(error.contains("access token"), "{error}");
        assert_eq!(problem.code, "INVALID_TOKEN");
        assert!(problem.action.contains("token and store URL"));
    }

    #[test]
    fn a_failed_export_without_a_known_code_keeps_the_gateway_detail() {
        let problems = vec![gw::Problem {
            code: "EXPORT_FAILED".into(),
            message:
                "bulk operation gid://shopify/BulkOperation/1 ended FAILED (INTERNAL_SERVER_ERROR)"
                    .into(),
            field: String::new(),
        }];
        let (error, problem) = export_failed("c1", &problems);
        assert!(error.contains("ended FAILED"), "{error}");
        assert_eq!(problem.code, EXPORT_FAILED);
        assert_eq!(problem.key, EXPORT_FAILED);
    }
}
