//! Shopify's calculated query cost.
//!
//! Rules (shopify-admin-api.md §1.1, Shopify's rate-limit docs and engineering blog):
//! * scalar and enum fields cost 0, `__typename` 0;
//! * an object (or interface/union) field costs 1 plus its selections; a plain list of objects
//!   (not a connection) is not multiplied;
//! * a connection costs 2 + n × (cost of one node), n = `first` or `last`; one node costs
//!   1 + its selections; `pageInfo` and `cursor` are free; when both `nodes` and `edges { node }`
//!   are selected the dearer of the two counts;
//! * inline fragments / spreads on other types than the parent are alternatives: the dearest counts
//!   (interface/union = max of the possible selections);
//! * a mutation field costs 10 (productSet: the documented dynamic formula, rounded up); inside a
//!   mutation payload plain objects are free (Shopify reports 10 for a typical mutation), but
//!   connections selected in the payload still cost as above.
//!
//! The same walk computes `actualQueryCost` from the response data: real list lengths instead of
//! `first`, nulls cost nothing.

use apollo_compiler::executable::{Field, Operation, OperationType, Selection};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use serde_json::{Map, Value};

/// Single-query limit, independent of the plan.
pub const MAX_SINGLE_QUERY_COST: u64 = 1000;

pub struct CostCtx<'a> {
    pub schema: &'a Valid<Schema>,
    pub doc: &'a Valid<ExecutableDocument>,
    pub vars: &'a Map<String, Value>,
}

/// Requested (static) cost of an operation.
pub fn requested(cx: &CostCtx<'_>, op: &Operation) -> u64 {
    let mutation = op.operation_type == OperationType::Mutation;
    let mut total = 0.0;
    for f in flatten(cx, &op.selection_set.selections, op.object_type().as_str()) {
        total += if mutation {
            mutation_field_cost(cx, f) + sel_cost(cx, f, None, true)
        } else {
            field_cost(cx, f, None, false)
        };
    }
    total.ceil() as u64
}

/// Actual cost, measured on the data that was returned.
pub fn actual(cx: &CostCtx<'_>, op: &Operation, data: Option<&Map<String, Value>>) -> u64 {
    let Some(data) = data else { return 0 };
    let mutation = op.operation_type == OperationType::Mutation;
    let mut total = 0.0;
    for f in flatten(cx, &op.selection_set.selections, op.object_type().as_str()) {
        let v = data.get(f.response_key().as_str()).unwrap_or(&Value::Null);
        total += if mutation {
            mutation_field_cost(cx, f)
                + if v.is_null() {
                    0.0
                } else {
                    sel_cost(cx, f, Some(v), true)
                }
        } else {
            field_cost(cx, f, Some(v), false)
        };
    }
    total.ceil() as u64
}

/// Fields of a selection set as seen for one object: fragments on the parent type (or without
/// condition) are merged, fragments on other types are alternatives and only the dearest counts.
fn flatten<'d>(cx: &CostCtx<'d>, sels: &'d [Selection], parent: &str) -> Vec<&'d Field> {
    let mut out = Vec::new();
    let mut alts: Vec<(String, Vec<&'d Field>)> = Vec::new();
    collect(cx, sels, parent, &mut out, &mut alts);
    // The dearest alternative is picked by requested cost.
    if let Some((_, fields)) = alts.into_iter().max_by(|a, b| {
        let ca: f64 = a.1.iter().map(|f| field_cost(cx, f, None, false)).sum();
        let cb: f64 = b.1.iter().map(|f| field_cost(cx, f, None, false)).sum();
        ca.total_cmp(&cb)
    }) {
        out.extend(fields);
    }
    out
}

fn collect<'d>(
    cx: &CostCtx<'d>,
    sels: &'d [Selection],
    parent: &str,
    out: &mut Vec<&'d Field>,
    alts: &mut Vec<(String, Vec<&'d Field>)>,
) {
    for s in sels {
        match s {
            Selection::Field(f) => out.push(f),
            Selection::InlineFragment(i) => {
                let cond = i
                    .type_condition
                    .as_ref()
                    .map(|n| n.as_str())
                    .unwrap_or(parent);
                push_fragment(cx, &i.selection_set.selections, cond, parent, out, alts);
            }
            Selection::FragmentSpread(sp) => {
                if let Some(frag) = cx.doc.fragments.get(&sp.fragment_name) {
                    let cond = frag.type_condition().as_str();
                    push_fragment(cx, &frag.selection_set.selections, cond, parent, out, alts);
                }
            }
        }
    }
}

fn push_fragment<'d>(
    cx: &CostCtx<'d>,
    sels: &'d [Selection],
    cond: &str,
    parent: &str,
    out: &mut Vec<&'d Field>,
    alts: &mut Vec<(String, Vec<&'d Field>)>,
) {
    let is_abstract_cond = matches!(
        cx.schema.types.get(cond),
        Some(ExtendedType::Interface(_)) | Some(ExtendedType::Union(_))
    );
    if cond == parent || is_abstract_cond {
        collect(cx, sels, parent, out, alts);
    } else {
        let mut inner = Vec::new();
        let mut inner_alts = Vec::new();
        collect(cx, sels, cond, &mut inner, &mut inner_alts);
        for (_, f) in inner_alts {
            inner.extend(f);
        }
        match alts.iter_mut().find(|(c, _)| c == cond) {
            Some((_, v)) => v.extend(inner),
            None => alts.push((cond.to_string(), inner)),
        }
    }
}

fn is_leaf(schema: &Schema, ty: &str) -> bool {
    matches!(
        schema.types.get(ty),
        Some(ExtendedType::Scalar(_)) | Some(ExtendedType::Enum(_)) | None
    )
}

pub fn is_connection(schema: &Schema, ty: &str) -> bool {
    ty.ends_with("Connection")
        && matches!(schema.types.get(ty), Some(ExtendedType::Object(o)) if o.fields.contains_key("pageInfo"))
}

/// Cost of one field. `data` is `Some` when measuring actual cost. `payload` is true inside a
/// mutation payload, where plain objects are free.
fn field_cost(cx: &CostCtx<'_>, f: &Field, data: Option<&Value>, payload: bool) -> f64 {
    if f.name.starts_with("__") {
        return 0.0;
    }
    let ty = f.definition.ty.inner_named_type().as_str();
    if is_leaf(cx.schema, ty) {
        return 0.0;
    }
    if let Some(Value::Null) = data {
        return 0.0;
    }
    if is_connection(cx.schema, ty) {
        return connection_cost(cx, f, data);
    }
    let own = if payload { 0.0 } else { 1.0 };
    match data {
        // A plain list of objects counts once, like the static rule: take the dearest element.
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return own;
            }
            own + items
                .iter()
                .map(|it| sel_cost(cx, f, Some(it), payload))
                .fold(0.0, f64::max)
        }
        _ => own + sel_cost(cx, f, data, payload),
    }
}

/// Cost of a field's sub-selections (one object's worth).
fn sel_cost(cx: &CostCtx<'_>, f: &Field, data: Option<&Value>, payload: bool) -> f64 {
    let ty = f.definition.ty.inner_named_type().as_str();
    let obj = data.and_then(Value::as_object);
    flatten(cx, &f.selection_set.selections, ty)
        .into_iter()
        .map(|c| {
            let v = match data {
                Some(_) => Some(
                    obj.and_then(|o| o.get(c.response_key().as_str()))
                        .unwrap_or(&Value::Null),
                ),
                None => None,
            };
            field_cost(cx, c, v, payload)
        })
        .sum()
}

fn connection_cost(cx: &CostCtx<'_>, f: &Field, data: Option<&Value>) -> f64 {
    let conn_ty = f.definition.ty.inner_named_type().as_str();
    let children = flatten(cx, &f.selection_set.selections, conn_ty);
    match data {
        None => {
            let n = page_size(cx, f) as f64;
            let mut per_node: f64 = 0.0;
            for c in &children {
                match c.name.as_str() {
                    "nodes" => per_node = per_node.max(1.0 + sel_cost(cx, c, None, false)),
                    "edges" => {
                        let edge_ty = c.definition.ty.inner_named_type().as_str();
                        for e in flatten(cx, &c.selection_set.selections, edge_ty) {
                            if e.name == "node" {
                                per_node = per_node.max(1.0 + sel_cost(cx, e, None, false));
                            }
                        }
                    }
                    _ => {}
                }
            }
            2.0 + n * per_node
        }
        Some(v) => {
            let obj = v.as_object();
            let mut by_nodes: Option<f64> = None;
            let mut by_edges: Option<f64> = None;
            for c in &children {
                let cv = obj.and_then(|o| o.get(c.response_key().as_str()));
                let Some(Value::Array(items)) = cv else {
                    continue;
                };
                match c.name.as_str() {
                    "nodes" => {
                        let s: f64 = items
                            .iter()
                            .map(|it| 1.0 + sel_cost(cx, c, Some(it), false))
                            .sum();
                        by_nodes = Some(by_nodes.unwrap_or(0.0).max(s));
                    }
                    "edges" => {
                        let edge_ty = c.definition.ty.inner_named_type().as_str();
                        let node_fields: Vec<&Field> =
                            flatten(cx, &c.selection_set.selections, edge_ty)
                                .into_iter()
                                .filter(|e| e.name == "node")
                                .collect();
                        let mut s = 0.0;
                        for it in items {
                            for nf in &node_fields {
                                let nv = it.get(nf.response_key().as_str()).unwrap_or(&Value::Null);
                                if !nv.is_null() {
                                    s += 1.0 + sel_cost(cx, nf, Some(nv), false);
                                }
                            }
                            if node_fields.is_empty() {
                                s += 1.0;
                            }
                        }
                        by_edges = Some(by_edges.unwrap_or(0.0).max(s));
                    }
                    _ => {}
                }
            }
            2.0 + by_nodes.unwrap_or(0.0).max(by_edges.unwrap_or(0.0))
        }
    }
}

/// `first` or `last` from literal or variable; 0 when absent (execution rejects that case).
pub fn page_size(cx: &CostCtx<'_>, f: &Field) -> u64 {
    for name in ["first", "last"] {
        if let Some(v) = arg_json(f, name, cx.vars)
            && let Some(n) = v.as_u64()
        {
            return n;
        }
    }
    0
}

/// An argument's value as JSON, variables substituted.
pub fn arg_json(f: &Field, name: &str, vars: &Map<String, Value>) -> Option<Value> {
    let a = f.arguments.iter().find(|a| a.name == name)?;
    Some(ast_to_json(&a.value, vars))
}

pub fn ast_to_json(v: &apollo_compiler::ast::Value, vars: &Map<String, Value>) -> Value {
    use apollo_compiler::ast::Value as V;
    match v {
        V::Null => Value::Null,
        V::Enum(e) => Value::String(e.to_string()),
        V::Variable(n) => vars.get(n.as_str()).cloned().unwrap_or(Value::Null),
        V::String(s) => Value::String(s.clone()),
        V::Float(f) => f.try_to_f64().map(Value::from).unwrap_or(Value::Null),
        V::Int(i) => i.try_to_i32().map(Value::from).unwrap_or(Value::Null),
        V::Boolean(b) => Value::Bool(*b),
        V::List(l) => Value::Array(l.iter().map(|x| ast_to_json(x, vars)).collect()),
        V::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.to_string(), ast_to_json(x, vars)))
                .collect(),
        ),
    }
}

/// The defined cost of a mutation root field.
fn mutation_field_cost(cx: &CostCtx<'_>, f: &Field) -> f64 {
    match f.name.as_str() {
        "productSet" => {
            let input = arg_json(f, "input", cx.vars).unwrap_or(Value::Null);
            product_set_cost(&input)
        }
        _ => 10.0,
    }
}

/// productSet = 10 + 0.2·variants + 0.6·variant files + 0.4·variant metafields
///            + 0.4·product metafields + 1.9·product files (Shopify changelog, 2025-10).
pub fn product_set_cost(input: &Value) -> f64 {
    let len = |v: &Value, k: &str| v.get(k).and_then(Value::as_array).map_or(0, Vec::len) as f64;
    let variants = input
        .get("variants")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let variant_files = variants
        .iter()
        .filter(|v| v.get("file").is_some_and(|f| !f.is_null()))
        .count() as f64;
    let variant_metafields: f64 = variants.iter().map(|v| len(v, "metafields")).sum();
    10.0 + 0.2 * variants.len() as f64
        + 0.6 * variant_files
        + 0.4 * variant_metafields
        + 0.4 * len(input, "metafields")
        + 1.9 * len(input, "files")
}

/// Per-field requested costs, as `X-GraphQL-Cost-Include-Fields: true` asks for:
/// `[{path, definedCost, requestedTotalCost, requestedChildrenCost}]` for every field that costs
/// something (paths are response keys; `nodes` / `edges.node` levels are included).
pub fn requested_fields(cx: &CostCtx<'_>, op: &Operation) -> Vec<Value> {
    let mutation = op.operation_type == OperationType::Mutation;
    let mut out = Vec::new();
    for f in flatten(cx, &op.selection_set.selections, op.object_type().as_str()) {
        let path = vec![f.response_key().to_string()];
        if mutation {
            let defined = mutation_field_cost(cx, f);
            let children = sel_cost(cx, f, None, true);
            push_field(&mut out, &path, defined, children);
            walk_fields(cx, f, &path, true, &mut out);
        } else {
            describe(cx, f, &path, false, &mut out);
        }
    }
    out
}

fn push_field(out: &mut Vec<Value>, path: &[String], defined: f64, children: f64) {
    if defined + children > 0.0 {
        out.push(serde_json::json!({
            "path": path,
            "definedCost": defined,
            "requestedTotalCost": defined + children,
            "requestedChildrenCost": children,
        }));
    }
}

/// Records one field and recurses into its selections.
fn describe(cx: &CostCtx<'_>, f: &Field, path: &[String], payload: bool, out: &mut Vec<Value>) {
    if f.name.starts_with("__") || is_leaf(cx.schema, f.definition.ty.inner_named_type().as_str()) {
        return;
    }
    let total = field_cost(cx, f, None, payload);
    let ty = f.definition.ty.inner_named_type().as_str();
    let defined = if is_connection(cx.schema, ty) {
        2.0
    } else if payload {
        0.0
    } else {
        1.0
    };
    push_field(out, path, defined, total - defined);
    // Inside a connection the nodes are priced like objects again.
    let inner_payload = payload && !is_connection(cx.schema, ty);
    walk_fields(cx, f, path, inner_payload, out);
}

fn walk_fields(cx: &CostCtx<'_>, f: &Field, path: &[String], payload: bool, out: &mut Vec<Value>) {
    let ty = f.definition.ty.inner_named_type().as_str();
    for c in flatten(cx, &f.selection_set.selections, ty) {
        let mut p = path.to_vec();
        p.push(c.response_key().to_string());
        describe(cx, c, &p, payload, out);
    }
}
