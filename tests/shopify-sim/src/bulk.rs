//! Bulk operations: validation of bulk documents, running them against a store and producing
//! JSONL (nested connection nodes become their own lines with `__parentId`), staged uploads and
//! expiring result files.

use crate::exec::{Ctx, K, execute};
use crate::model::Store;
use crate::schema::{schema, validate};
use apollo_compiler::executable::{Field, Operation, OperationType, Selection};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Shopify keeps result URLs for 7 days.
pub const RESULT_TTL_SECS: f64 = 7.0 * 86_400.0;

fn staged() -> &'static Mutex<HashMap<String, Vec<u8>>> {
    static S: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    S.get_or_init(Default::default)
}

/// Staged upload keys embed the shop domain (`tmp/<domain>/bulk/<uuid>/<file>`).
pub fn staged_exists(domain: &str, key: &str) -> bool {
    key.starts_with(&format!("tmp/{domain}/")) && staged().lock().unwrap().contains_key(key)
}

pub fn put_staged(key: String, body: Vec<u8>) {
    staged().lock().unwrap().insert(key, body);
}

pub fn take_staged(key: &str) -> Option<Vec<u8>> {
    staged().lock().unwrap().get(key).cloned()
}

/// Result files: token -> (bytes, expiry in clock seconds).
fn results() -> &'static Mutex<HashMap<String, (bytes::Bytes, f64)>> {
    static R: OnceLock<Mutex<HashMap<String, (bytes::Bytes, f64)>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

pub fn put_result(token: String, body: bytes::Bytes, expires: f64) {
    results().lock().unwrap().insert(token, (body, expires));
}

pub enum ResultFile {
    Found(bytes::Bytes),
    Expired,
    Missing,
}

pub fn get_result(token: &str, now: f64) -> ResultFile {
    match results().lock().unwrap().get(token) {
        Some((_, exp)) if now >= *exp => ResultFile::Expired,
        Some((b, _)) => ResultFile::Found(b.clone()),
        None => ResultFile::Missing,
    }
}

fn single_op(
    doc: &str,
) -> Result<
    (
        apollo_compiler::validation::Valid<apollo_compiler::ExecutableDocument>,
        String,
    ),
    String,
> {
    let d = validate(doc).map_err(|errs| {
        errs.iter()
            .filter_map(|e| e["message"].as_str())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let name = {
        let op = d
            .operations
            .get(None)
            .map_err(|_| "The bulk document must contain exactly one operation.".to_string())?;
        op.name.as_ref().map(|n| n.to_string()).unwrap_or_default()
    };
    Ok((d, name))
}

fn is_conn(f: &Field) -> bool {
    crate::cost::is_connection(schema(), f.definition.ty.inner_named_type().as_str())
}

fn fields(sels: &[Selection]) -> Vec<&Field> {
    let mut out = Vec::new();
    for s in sels {
        match s {
            Selection::Field(f) => out.push(f.as_ref()),
            Selection::InlineFragment(i) => out.extend(fields(&i.selection_set.selections)),
            Selection::FragmentSpread(_) => {}
        }
    }
    out
}

/// The field selecting one node of a connection: `nodes` or `edges { node }`.
fn node_field(conn: &Field) -> Option<(&'static str, &Field)> {
    for f in fields(&conn.selection_set.selections) {
        match f.name.as_str() {
            "nodes" => return Some(("nodes", f)),
            "edges" => {
                for e in fields(&f.selection_set.selections) {
                    if e.name == "node" {
                        return Some(("edges", e));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// (connections, deepest connection nesting) of a selection.
fn conn_stats(sels: &[Selection], depth: usize) -> (usize, usize) {
    let (mut n, mut d) = (0, depth);
    for f in fields(sels) {
        if is_conn(f) {
            n += 1;
            d = d.max(depth + 1);
            if let Some((_, nf)) = node_field(f) {
                let (cn, cd) = conn_stats(&nf.selection_set.selections, depth + 1);
                n += cn;
                d = d.max(cd);
            }
        } else {
            let (cn, cd) = conn_stats(&f.selection_set.selections, depth);
            n += cn;
            d = d.max(cd);
        }
    }
    (n, d)
}

/// Shopify's bulk query rules: a query, at least one connection, at most five, nesting depth ≤ 2.
pub fn validate_bulk_query(doc: &str) -> Result<(), String> {
    let (d, _) = single_op(doc)?;
    let op = d
        .operations
        .get(None)
        .map_err(|e| e.message().to_string())?;
    if op.operation_type != OperationType::Query {
        return Err("Bulk queries must be queries.".into());
    }
    let (n, depth) = conn_stats(&op.selection_set.selections, 0);
    if n == 0 {
        return Err("Bulk queries must contain at least one connection.".into());
    }
    if n > 5 {
        return Err("Bulk queries cannot contain more than 5 connections.".into());
    }
    if depth > 2 {
        return Err(
            "Bulk queries cannot contain connections with a nesting depth greater than 2.".into(),
        );
    }
    Ok(())
}

pub fn validate_bulk_mutation(doc: &str) -> Result<(), String> {
    let (d, _) = single_op(doc)?;
    let op = d
        .operations
        .get(None)
        .map_err(|e| e.message().to_string())?;
    if op.operation_type != OperationType::Mutation
        || fields(&op.selection_set.selections).len() != 1
    {
        return Err(
            "Invalid mutation: a bulk mutation must contain exactly one mutation field.".into(),
        );
    }
    Ok(())
}

pub struct BulkOutput {
    pub jsonl: Vec<u8>,
    pub objects: u64,
    pub roots: u64,
}

/// Runs a bulk query over the whole store (connections need no `first`).
pub fn run_query(
    store: &mut Store,
    doc: &str,
    now: chrono::DateTime<chrono::Utc>,
    group_objects: bool,
) -> Result<BulkOutput, String> {
    let (d, _) = single_op(doc)?;
    let op = d
        .operations
        .get(None)
        .map_err(|e| e.message().to_string())?;
    let vars = Map::new();
    let mut cx = Ctx::new(store, now, String::new());
    cx.bulk = true;
    let (data, errors) = execute(&cx, &d, op, &vars, K::Query)?;
    if data.is_none() {
        return Err(format!("bulk query failed: {errors:?}"));
    }
    Ok(flatten(op, &data.unwrap_or_default(), group_objects))
}

/// Turns the nested response into JSONL lines. With `group_objects` each child is written directly below its parent
/// (depth first). Without (the default from 2026-01, [SD]
/// https://shopify.dev/changelog/bulk-operations-group-objects-default-changed-to-false), Shopify promises no order,
/// and the simulator scatters children so a reader relying on one fails: of every five children, one goes to the start
/// of the file (before any parent), one to the end, the others after their parent.
pub fn flatten(op: &Operation, data: &Map<String, Value>, group_objects: bool) -> BulkOutput {
    let mut lines = Lines {
        scatter: !group_objects,
        ..Lines::default()
    };
    for f in fields(&op.selection_set.selections) {
        let Some(v) = data.get(f.response_key().as_str()) else {
            continue;
        };
        if !is_conn(f) {
            continue;
        }
        for node in conn_nodes(f, v) {
            lines.roots += 1;
            emit(f, node, None, &mut lines);
        }
    }
    let Lines {
        mut early,
        out,
        late,
        objects,
        roots,
        ..
    } = lines;
    early.extend(out);
    early.extend(late);
    BulkOutput {
        jsonl: early,
        objects,
        roots,
    }
}

/// The JSONL being written: the lines put first, in place, and last.
#[derive(Default)]
struct Lines {
    scatter: bool,
    early: Vec<u8>,
    out: Vec<u8>,
    late: Vec<u8>,
    objects: u64,
    roots: u64,
    children: u64,
}

fn conn_nodes<'v>(f: &Field, v: &'v Value) -> Vec<&'v Value> {
    let Some((kind, nf)) = node_field(f) else {
        return vec![];
    };
    let key = |fl: &Field| fl.response_key().to_string();
    match kind {
        "nodes" => v
            .get(key(nf))
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => {
            let edges_key = fields(&f.selection_set.selections)
                .into_iter()
                .find(|x| x.name == "edges")
                .map(key)
                .unwrap_or_default();
            v.get(&edges_key)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|e| e.get(key(nf))).collect())
                .unwrap_or_default()
        }
    }
}

fn emit(conn: &Field, node: &Value, parent: Option<&str>, lines: &mut Lines) {
    let Some((_, nf)) = node_field(conn) else {
        return;
    };
    let mut line = node.as_object().cloned().unwrap_or_default();
    let nested: Vec<&Field> = fields(&nf.selection_set.selections)
        .into_iter()
        .filter(|f| is_conn(f))
        .collect();
    let mut children = Vec::new();
    for c in &nested {
        if let Some(v) = line.remove(c.response_key().as_str()) {
            children.push((*c, v));
        }
    }
    if let Some(p) = parent {
        line.insert("__parentId".into(), json!(p));
    }
    lines.objects += 1;
    let bytes = serde_json::to_vec(&Value::Object(line.clone())).unwrap_or_default();
    let place = if parent.is_some() && lines.scatter {
        lines.children += 1;
        lines.children % 5
    } else {
        1
    };
    let target = match place {
        0 => &mut lines.late,
        2 => &mut lines.early,
        _ => &mut lines.out,
    };
    target.extend_from_slice(&bytes);
    target.push(b'\n');
    let id = line.get("id").and_then(Value::as_str).map(str::to_string);
    for (c, v) in children {
        for child in conn_nodes(c, &v) {
            emit(c, child, id.as_deref(), lines);
        }
    }
}

/// What a bulk mutation did: a result line per line run, the store's events, how many lines ran, and whether it
/// stopped before the end (the `bulk_mutation_stop_after` fault).
pub struct MutationRun {
    pub jsonl: Vec<u8>,
    pub events: Vec<crate::model::Event>,
    pub lines: u64,
    pub stopped: bool,
}

/// Runs a bulk mutation: one execution per JSONL line of variables; one result line each. With `stop_after`, only
/// that many lines run.
pub fn run_mutation(
    store: &mut Store,
    doc: &str,
    input: &[u8],
    now: chrono::DateTime<chrono::Utc>,
    stop_after: Option<u64>,
) -> Result<MutationRun, String> {
    let (d, _) = single_op(doc)?;
    let op = d
        .operations
        .get(None)
        .map_err(|e| e.message().to_string())?;
    // A mutation that needs `@idempotent` and lacks it fails on every line, as it would alone (see graphql::run).
    let missing = crate::exec::missing_idempotent(op);
    let mut out = Vec::new();
    let mut n = 0u64;
    let mut stopped = false;
    for (i, line) in input.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if stop_after.is_some_and(|max| n >= max) {
            stopped = true;
            break;
        }
        let vars: Map<String, Value> = match serde_json::from_slice(line) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(format!(
                    "line {} of the staged file is not a JSON object",
                    i + 1
                ));
            }
        };
        let result = if !missing.is_empty() {
            json!({"errors": [{"message": "The @idempotent directive is required for this mutation but was not provided.",
                               "extensions": {"code": "BAD_REQUEST"}}], "__lineNumber": i})
        } else {
            match apollo_compiler::request::coerce_variable_values(
                schema(),
                op,
                &to_bytes_map(&vars),
            ) {
                Err(e) => {
                    json!({"errors": [{"message": e.message().to_string()}], "__lineNumber": i})
                }
                Ok(coerced) => {
                    let plain: Map<String, Value> = match serde_json::to_value(coerced.into_inner())
                    {
                        Ok(Value::Object(m)) => m,
                        _ => Map::new(),
                    };
                    let mut cx = Ctx::new(store, now, String::new());
                    cx.variables = plain.clone();
                    let (data, errors) = execute(&cx, &d, op, &plain, K::Mutation)?;
                    let mut r = json!({"data": data, "__lineNumber": i});
                    if !errors.is_empty() {
                        r["errors"] = Value::Array(errors);
                    }
                    r
                }
            }
        };
        n += 1;
        out.extend_from_slice(&serde_json::to_vec(&result).unwrap_or_default());
        out.push(b'\n');
    }
    let events = std::mem::take(&mut store.events);
    Ok(MutationRun {
        jsonl: out,
        events,
        lines: n,
        stopped,
    })
}

pub fn to_bytes_map(m: &Map<String, Value>) -> apollo_compiler::response::JsonMap {
    match apollo_compiler::response::JsonValue::from(Value::Object(m.clone())) {
        apollo_compiler::response::JsonValue::Object(o) => o,
        _ => Default::default(),
    }
}
