//! The vendored Shopify Admin schema (parsed once per process), document validation with
//! Shopify-style (graphql-ruby) error messages, and the vendored taxonomy.

use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The Admin SDL, descriptions stripped by `scripts/vendor-schema.py`.
pub const ADMIN_SDL: &str = include_str!("../schema/admin_2025-10.graphql");
/// What 2026-10 adds for the fields Shopbridge uses, each definition with its source (see the file's header).
pub const DELTA_2026_10_SDL: &str = include_str!("../schema/admin_2026-10_delta.graphql");
const TAXONOMY_TSV: &str = include_str!("../schema/taxonomy_categories.tsv");

/// The API version whose semantics the simulator serves: the 2025-10 schema, the 2026-10 delta, and in code what
/// 2026-10 removed or changed (see `schema()`). Requests to other versions are served with it too (Shopify falls
/// forward to a supported version and says so in `X-Shopify-API-Version`).
pub const API_VERSION: &str = "2026-10";

/// The mutations that need `@idempotent(key:)` from 2026-04 (enforced at run time, the schema does not say so),
/// among those the simulator implements or that a client may name. Source [SD]:
/// https://shopify.dev/changelog/making-idempotency-mandatory-for-inventory-adjustments-and-refund-mutations (the full
/// list of 17 is not confirmed; these are the ones it names) and, for `inventoryActivate`,
/// https://shopify.dev/docs/api/admin-graphql/unstable/mutations/inventoryActivate.
pub const IDEMPOTENT_MUTATIONS: &[&str] = &[
    "inventorySetQuantities",
    "inventoryAdjustQuantities",
    "inventoryMoveQuantities",
    "inventorySetOnHandQuantities",
    "inventoryActivate",
    "refundCreate",
];

/// The Admin schema as 2026-10 serves it, for the parts the simulator knows: 2025-10 plus the sourced delta, minus
/// what was removed, with the defaults that changed.
pub fn schema() -> &'static Valid<Schema> {
    static S: OnceLock<Valid<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        let mut schema = Schema::builder()
            .parse(ADMIN_SDL, "admin_2025-10.graphql")
            .parse(DELTA_2026_10_SDL, "admin_2026-10_delta.graphql")
            .build()
            .unwrap_or_else(|e| panic!("vendored schema does not build: {}", e.errors));
        apply_2026_removals(&mut schema);
        schema
            .validate()
            .unwrap_or_else(|e| panic!("vendored schema does not validate: {}", e.errors))
    })
}

/// What SDL extensions cannot say. Removed in 2026-04 [SD]:
/// https://shopify.dev/changelog/finalizing-compare-and-swap-redesign-for-inventory-set-quantities
/// (`compareQuantity`, `ignoreCompareQuantity`); `bulkOperationRunQuery(groupObjects:)` defaults to false from
/// 2026-01 [SD]: https://shopify.dev/changelog/bulk-operations-group-objects-default-changed-to-false.
fn apply_2026_removals(schema: &mut Schema) {
    use apollo_compiler::schema::ExtendedType;
    let mut drop_input_field = |ty: &str, field: &str| {
        if let Some(ExtendedType::InputObject(t)) = schema.types.get_mut(ty) {
            t.make_mut().fields.shift_remove(field);
        }
    };
    drop_input_field("InventoryQuantityInput", "compareQuantity");
    drop_input_field("InventorySetQuantitiesInput", "ignoreCompareQuantity");
    if let Some(ExtendedType::Object(mutation)) = schema.types.get_mut("Mutation")
        && let Some(field) = mutation.make_mut().fields.get_mut("bulkOperationRunQuery")
    {
        for arg in &mut field.make_mut().arguments {
            if arg.name == "groupObjects" {
                arg.make_mut().default_value = Some(apollo_compiler::Node::new(
                    apollo_compiler::ast::Value::Boolean(false),
                ));
            }
        }
    }
}

/// Category id (without gid prefix) -> full path ("Animals & Pet Supplies > Live Animals").
pub fn taxonomy() -> &'static HashMap<&'static str, &'static str> {
    static T: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    T.get_or_init(|| {
        let mut m = HashMap::new();
        for line in TAXONOMY_TSV.lines() {
            if line.starts_with('#') {
                continue;
            }
            if let Some((id, path)) = line.split_once('\t') {
                // The source repeats a few ids; the first wins.
                m.entry(id).or_insert(path);
            }
        }
        m
    })
}

/// Normalises a category GID (accepting the pre-2024 `gid://shopify/Taxonomy/Category/x` form)
/// and returns (`gid://shopify/TaxonomyCategory/x`, full path) when the category exists.
pub fn lookup_category(gid: &str) -> Option<(String, &'static str)> {
    let id = gid
        .strip_prefix("gid://shopify/TaxonomyCategory/")
        .or_else(|| gid.strip_prefix("gid://shopify/Taxonomy/Category/"))?;
    let path = taxonomy().get(id)?;
    Some((format!("gid://shopify/TaxonomyCategory/{id}"), path))
}

/// Parses and validates a document against the Admin schema. On failure returns the
/// Shopify-style `errors` array.
pub fn validate(query: &str) -> Result<Valid<ExecutableDocument>, Vec<Value>> {
    ExecutableDocument::parse_and_validate(schema(), query, "query.graphql").map_err(|e| {
        e.errors
            .iter()
            .map(|d| {
                let raw = d.error.to_string();
                let compat = d.error.unstable_compat_message();
                let j = d.to_json();
                let locations: Vec<Value> = j
                    .locations
                    .iter()
                    .map(|l| json!({"line": l.line, "column": l.column}))
                    .collect();
                shopify_error(&raw, compat, locations)
            })
            .collect()
    })
}

/// Translates an apollo-compiler diagnostic into graphql-ruby's wording and `extensions.code`,
/// which is what Shopify answers with; unknown kinds keep apollo's (graphql-js style) text.
fn shopify_error(raw: &str, compat: Option<String>, locations: Vec<Value>) -> Value {
    let ticks: Vec<&str> = raw.split('`').skip(1).step_by(2).collect();
    let (message, ext) =
        if raw.starts_with("type `") && raw.contains("does not have a field") && ticks.len() >= 2 {
            (
                format!("Field '{}' doesn't exist on type '{}'", ticks[1], ticks[0]),
                json!({"code": "undefinedField", "typeName": ticks[0], "fieldName": ticks[1]}),
            )
        } else if raw.starts_with("syntax error") {
            (raw.to_string(), json!({"code": "parseError"}))
        } else if let Some(c) = compat
            .as_deref()
            .filter(|c| c.starts_with("Unknown argument"))
        {
            // Unknown argument "x" on field "Type.field".
            let q: Vec<&str> = c.split('"').skip(1).step_by(2).collect();
            let field = q.get(1).and_then(|f| f.split('.').nth(1)).unwrap_or("");
            let arg = q.first().copied().unwrap_or("");
            (
                format!("Field '{field}' doesn't accept argument '{arg}'"),
                json!({"code": "argumentNotAccepted", "name": field, "argumentName": arg}),
            )
        } else if let Some(c) = compat.as_deref().filter(|c| c.starts_with("Unknown type")) {
            let name = c.split('"').nth(1).unwrap_or("");
            (
                format!("No such type {name}, so it can't be a fragment condition"),
                json!({"code": "undefinedType", "typeName": name}),
            )
        } else if let Some(c) = compat
            .as_deref()
            .filter(|c| c.contains("is required, but it was not provided"))
        {
            (c.to_string(), json!({"code": "missingRequiredArguments"}))
        } else {
            (
                compat.unwrap_or_else(|| raw.to_string()),
                json!({"code": "validationError"}),
            )
        };
    json!({"message": message, "locations": locations, "extensions": ext})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parses_and_taxonomy_loads() {
        assert!(schema().types.contains_key("Product"));
        assert!(lookup_category("gid://shopify/TaxonomyCategory/ap-2-3-7").is_some());
        let (gid, path) = lookup_category("gid://shopify/Taxonomy/Category/ap-1").unwrap();
        assert_eq!(gid, "gid://shopify/TaxonomyCategory/ap-1");
        assert!(path.starts_with("Animals & Pet Supplies"));
        assert!(lookup_category("gid://shopify/TaxonomyCategory/zz-999").is_none());
    }

    #[test]
    fn undefined_field_is_worded_like_shopify() {
        let errs = validate("{ shop { name nonexistentField } }").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0]["message"],
            "Field 'nonexistentField' doesn't exist on type 'Shop'"
        );
        assert_eq!(errs[0]["extensions"]["code"], "undefinedField");
        assert_eq!(errs[0]["locations"][0]["line"], 1);
    }

    #[test]
    fn unknown_argument_is_reported() {
        let errs = validate("{ shop { name(bogus: 1) } }").unwrap_err();
        assert_eq!(errs[0]["extensions"]["code"], "argumentNotAccepted");
        assert!(validate("{ shop { name } }").is_ok());
    }
}
