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

/// How deep connections (`edges`) nest in a bulk query, and how many there are.
fn connections(text: &str) -> (usize, usize) {
    let (mut depth, mut open_edges, mut deepest, mut count) = (0usize, Vec::new(), 0usize, 0usize);
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if word == "edges" {
            count += 1;
            open_edges.push(depth);
            deepest = deepest.max(open_edges.len());
        }
        word.clear();
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                while open_edges.last().is_some_and(|d| *d >= depth) {
                    open_edges.pop();
                }
            }
            _ => {}
        }
    }
    (count, deepest)
}

#[test]
fn the_connection_counter_sees_nesting() {
    assert_eq!(
        connections("{ a { edges { node { b { edges { node { id } } } } } } }"),
        (2, 2)
    );
    assert_eq!(
        connections(
            "{ a { edges { node { b { edges { node { c { edges { node { id } } } } } } } } } }"
        ),
        (3, 3)
    );
    assert_eq!(
        connections("{ a { edges { node { id } } } b { edges { node { id } } } }"),
        (2, 1)
    );
}

/// Shopify refuses a bulk query with more than five connections or connections nested deeper than two.
#[test]
fn every_bulk_query_respects_shopifys_bulk_limits() {
    let bulk: Vec<_> = ALL.iter().filter(|d| d.kind == Kind::BulkQuery).collect();
    assert_eq!(
        bulk.len(),
        4,
        "the catalog's three stages and the orders read"
    );
    for export in bulk {
        let (count, depth) = connections(export.text);
        assert!(count <= 5, "{}: {count} connections", export.name);
        assert!(
            depth <= 2,
            "{}: connections nested {depth} deep",
            export.name
        );
    }
}

/// The orders bulk query is sent with its search bound in as a literal: what is sent must still be valid, with a
/// search holding quotes and backslashes, and must obey the bulk limits.
#[test]
fn the_orders_bulk_query_with_its_search_bound_in_validates() {
    let schema = Schema::parse_and_validate(ADMIN_SDL, "admin.graphql").expect("schema");
    let search = r#"updated_at:>='2025-11-01T00:00:00Z' AND tag:"a \"b\" \\ c""#;
    let text = shopbridge_gateway::orders::bulk_query(search);
    let document = ExecutableDocument::parse_and_validate(&schema, &text, "orders_bulk_bound")
        .unwrap_or_else(|e| panic!("{}\n{text}", e.errors));
    let operation = document.operations.get(None).unwrap();
    assert!(
        operation.variables.is_empty(),
        "bulk queries take no variables"
    );
    let (count, depth) = connections(&text);
    assert!(
        count <= 5 && depth <= 2,
        "{count} connections, depth {depth}"
    );
    let orders = operation
        .selection_set
        .fields()
        .find(|f| f.name == "orders")
        .unwrap();
    let query = orders.argument_by_name("query").unwrap();
    assert_eq!(
        query.as_str(),
        Some(search),
        "the literal reads back as the search"
    );
}
