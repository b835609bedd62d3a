use apollo_compiler::{ExecutableDocument, Schema, validation::Valid};
use shopbridge_gateway::shopify::documents::{ALL, Kind};

/// Shopify's Admin schema as vendored by the simulator (descriptions stripped, `scalar ID` removed).
const ADMIN_SDL: &str = include_str!("../../../../tests/shopify-sim/schema/admin_2025-10.graphql");
/// What 2026-10 adds for the fields we use, each definition citing its source.
const DELTA_2026_10: &str =
    include_str!("../../../../tests/shopify-sim/schema/admin_2026-10_delta.graphql");

/// The 2025-10 schema with the sourced 2026-10 delta: what the documents (written for 2026-10) are checked against.
fn admin_schema() -> Valid<Schema> {
    Schema::builder()
        .parse(ADMIN_SDL, "admin_2025-10.graphql")
        .parse(DELTA_2026_10, "admin_2026-10_delta.graphql")
        .build()
        .expect("schema")
        .validate()
        .expect("schema with the delta")
}

#[test]
fn every_document_validates_against_shopifys_admin_schema() {
    let schema = admin_schema();
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
    let schema = admin_schema();
    let bad = "query { shop { name nonexistentField } }";
    assert!(ExecutableDocument::parse_and_validate(&schema, bad, "bad.graphql").is_err());
}

/// Every definition of the delta cites its source: a `# source` comment right above it (comment blocks may run over
/// several lines).
#[test]
fn every_definition_of_the_schema_delta_cites_its_source() {
    let mut sourced = false;
    for line in DELTA_2026_10.lines() {
        let line = line.trim();
        if line.starts_with("# source") {
            sourced = true;
        } else if line.is_empty() {
            sourced = false;
        } else if !line.starts_with('#') && line.ends_with('{') || line.starts_with("directive ") {
            assert!(sourced, "no `# source` right above: {line}");
        }
    }
}

/// The mutations Shopify requires `@idempotent` on (2026-04+), among those a document could name.
const IDEMPOTENT: &[&str] = &[
    "inventorySetQuantities",
    "inventoryAdjustQuantities",
    "inventoryMoveQuantities",
    "inventorySetOnHandQuantities",
    "inventoryActivate",
    "refundCreate",
];

/// From 2026-04 Shopify refuses these mutations without `@idempotent(key:)`; it accepts the directive on them only.
#[test]
fn exactly_the_inventory_mutations_carry_the_idempotent_directive() {
    let schema = admin_schema();
    for document in ALL {
        let parsed = ExecutableDocument::parse_and_validate(&schema, document.text, document.name)
            .expect("valid");
        for operation in parsed.operations.iter() {
            for field in operation.selection_set.fields() {
                let directive = field.directives.get("idempotent");
                let needs = IDEMPOTENT.contains(&field.name.as_str());
                assert_eq!(
                    directive.is_some(),
                    needs,
                    "{}: {} {} @idempotent",
                    document.name,
                    field.name,
                    if needs { "lacks" } else { "must not carry" }
                );
                if let Some(directive) = directive {
                    let key = directive.specified_argument_by_name("key").expect("key");
                    assert_eq!(
                        key.as_variable().map(|v| v.as_str()),
                        Some("idempotencyKey"),
                        "{}: the key is the $idempotencyKey variable (see idempotency.rs)",
                        document.name
                    );
                }
            }
        }
    }
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
    let schema = admin_schema();
    let search = r#"updated_at:>='2025-11-01T00:00:00Z' AND tag:"a \"b\" \\ c""#;
    let text = shopbridge_gateway::operations::orders::bulk_query(search);
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
