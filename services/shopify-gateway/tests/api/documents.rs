use apollo_compiler::{ExecutableDocument, Schema};
use shopbridge_gateway::documents::{ALL, Kind};

/// Shopify's Admin schema as vendored by the simulator (descriptions stripped, `scalar ID` removed).
const ADMIN_SDL: &str = include_str!("../../../../tests/shopify-sim/schema/admin_2025-10.graphql");

#[test]
fn every_document_validates_against_shopifys_admin_schema() {
    let schema = Schema::parse_and_validate(ADMIN_SDL, "admin.graphql").expect("schema");
    let mut failures = Vec::new();
    for document in ALL {
        if let Err(e) =
            ExecutableDocument::parse_and_validate(&schema, document.text, document.name)
        {
            failures.push(format!("{}: {}", document.name, e.errors));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_document_with_a_field_shopify_lacks_is_refused_by_the_same_check() {
    let schema = Schema::parse_and_validate(ADMIN_SDL, "admin.graphql").expect("schema");
    let bad = "query { shop { name nonexistentField } }";
    assert!(ExecutableDocument::parse_and_validate(&schema, bad, "bad.graphql").is_err());
}

#[test]
fn the_bulk_export_query_respects_shopifys_bulk_limits() {
    let export = ALL
        .iter()
        .find(|d| d.kind == Kind::BulkQuery)
        .expect("a bulk query");
    // At most five connections: count the selections that go through `edges`.
    let connections = export.text.matches("edges").count();
    assert!(connections <= 5, "{connections} connections");
}
