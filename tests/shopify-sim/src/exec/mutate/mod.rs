//! Mutation root fields: catalog, inventory, metafields, publishing, collections, tags,
//! webhooks and bulk operations (order mutations live in `orders_mut`), one file per area.

mod bulk_ops;
mod inventory;
mod products;
mod resources;

use bulk_ops::*;
use inventory::*;
pub use products::new_variant;
use products::*;
use resources::*;

use super::{Ctx, V, arg_str};
use apollo_compiler::resolvers::{FieldError, ResolveInfo};
use serde_json::{Map, Value};

pub fn mutation_field(
    cx: &Ctx<'_>,
    name: &str,
    args: &Map<String, Value>,
    info: &ResolveInfo<'_>,
) -> Result<V, FieldError> {
    let key = || {
        info.field_selections()
            .first()
            .and_then(|f| idempotency_key(f, &cx.variables))
    };
    match name {
        "productSet" => product_set(cx, args),
        "productVariantsBulkUpdate" => variants_bulk_update(cx, args),
        "productVariantsBulkCreate" => variants_bulk_create(cx, args),
        "inventorySetQuantities" => inventory_set_quantities(cx, args, key()),
        "inventoryAdjustQuantities" => inventory_adjust_quantities(cx, args, key()),
        "inventoryItemUpdate" => inventory_item_update(cx, args),
        "metafieldsSet" => metafields_set(cx, args),
        "publishablePublish" => publishable_publish(cx, args),
        "collectionCreate" => collection_create(cx, args),
        "tagsAdd" => tags_add(cx, args),
        "tagsRemove" => tags_remove(cx, args),
        "publishableUnpublish" => publishable_unpublish(cx, args),
        "productDelete" => product_delete(cx, args),
        "webhookSubscriptionDelete" => webhook_subscription_delete(cx, args),
        "webhookSubscriptionCreate" => webhook_subscription_create(cx, args),
        "bulkOperationRunQuery" => bulk_run(
            cx,
            "QUERY",
            arg_str(args, "query").unwrap_or(""),
            None,
            // The schema's default is false from 2026-01 (see schema.rs).
            args.get("groupObjects")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        "bulkOperationRunMutation" => bulk_run(
            cx,
            "MUTATION",
            arg_str(args, "mutation").unwrap_or(""),
            arg_str(args, "stagedUploadPath").map(str::to_string),
            false,
        ),
        "bulkOperationCancel" => bulk_cancel(cx, arg_str(args, "id").unwrap_or("")),
        "stagedUploadsCreate" => staged_uploads_create(cx, args),
        "fulfillmentCreate" | "fulfillmentTrackingInfoUpdate" | "orderClose" => {
            crate::exec::orders_mut::mutation_field(cx, name, args)
        }
        other => Err(super::err(format!(
            "The simulator does not implement Mutation.{other}"
        ))),
    }
}

/// The key of a field's `@idempotent(key:)` directive, with variables bound.
pub fn idempotency_key(
    field: &apollo_compiler::executable::Field,
    vars: &Map<String, Value>,
) -> Option<String> {
    let directive = field.directives.get("idempotent")?;
    let key = directive.specified_argument_by_name("key")?;
    crate::cost::ast_to_json(key, vars)
        .as_str()
        .map(str::to_string)
}

/// The root fields of a mutation that need `@idempotent` (see `schema::IDEMPOTENT_MUTATIONS`) and lack it.
pub fn missing_idempotent(op: &apollo_compiler::executable::Operation) -> Vec<String> {
    op.selection_set
        .fields()
        .filter(|f| crate::schema::IDEMPOTENT_MUTATIONS.contains(&f.name.as_str()))
        .filter(|f| f.directives.get("idempotent").is_none())
        .map(|f| f.response_key().to_string())
        .collect()
}

pub(super) fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

pub(super) fn handleize(t: &str) -> String {
    let mut h = String::new();
    for c in t.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            h.push(c);
        } else if !h.ends_with('-') {
            h.push('-');
        }
    }
    h.trim_matches('-').to_string()
}
