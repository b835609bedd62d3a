//! The GraphQL request pipeline: parse, validate, coerce variables, cost, bucket, execute,
//! refund, and the Shopify-shaped response (`extensions.cost` on every answer).

use crate::cost::{self, CostCtx};
use crate::exec::{Ctx, K, execute_ordered};
use crate::schema::{schema, validate};
use crate::sim::{Shop, Sim};
use apollo_compiler::executable::OperationType;
use apollo_compiler::response::{JsonMap, JsonValue};
use serde_json::{Map, Value, json};

pub struct Outcome {
    /// The response body, fields in query order.
    pub body: JsonValue,
    /// Store changes to announce by webhook.
    pub events: Vec<crate::model::Event>,
    /// Bulk operations to start.
    pub bulk_started: Vec<u64>,
}

fn cost_ext(requested: u64, actual: Option<u64>, status: Value) -> Value {
    json!({"cost": {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": status}})
}

pub fn throttled_body(requested: u64, status: Value) -> Value {
    json!({
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
        "extensions": cost_ext(requested, None, status),
    })
}

/// Runs one GraphQL request for a shop. HTTP status is always 200 here (Shopify answers
/// validation errors and THROTTLED with 200); request-shape errors are handled by the caller.
pub fn run(
    sim: &Sim,
    shop: &Shop,
    req: &Value,
    force_throttle: bool,
    include_fields: bool,
) -> Outcome {
    let now = sim.config.clock.now();
    let now_s = sim.now_secs();
    let status = || shop.bucket.lock().unwrap().status(now_s);
    let done = |body: Value| Outcome {
        body: JsonValue::from(body),
        events: vec![],
        bulk_started: vec![],
    };
    shop.stats.lock().unwrap().graphql_requests += 1;

    let query = req.get("query").and_then(Value::as_str).unwrap_or("");
    let op_name = req
        .get("operationName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let raw_vars = match req.get("variables") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let doc = match validate(query) {
        Ok(d) => d,
        Err(errors) => {
            shop.stats.lock().unwrap().validation_errors += 1;
            return done(json!({"errors": errors, "extensions": cost_ext(0, Some(0), status())}));
        }
    };
    let op = match doc.operations.get(op_name) {
        Ok(op) => op,
        Err(_) => {
            let msg = match op_name {
                Some(n) => format!("No operation named \"{n}\""),
                None => "An operation name is required".to_string(),
            };
            return done(
                json!({"errors": [{"message": msg}], "extensions": cost_ext(0, Some(0), status())}),
            );
        }
    };
    let vars = match apollo_compiler::request::coerce_variable_values(
        schema(),
        op,
        &crate::bulk::to_bytes_map(&raw_vars),
    ) {
        Ok(v) => match serde_json::to_value(v.into_inner()) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        },
        Err(e) => {
            shop.stats.lock().unwrap().validation_errors += 1;
            let err = json!({"message": e.message().to_string(), "extensions": {"code": "INVALID_VARIABLE"}});
            return done(json!({"errors": [err], "extensions": cost_ext(0, Some(0), status())}));
        }
    };
    // 2026-04: the inventory mutations need `@idempotent(key:)`; the schema does not say so, the server refuses
    // ([SD] https://shopify.dev/changelog/making-idempotency-mandatory-for-inventory-adjustments-and-refund-mutations;
    // the answer's shape and text are [3P]: a top-level BAD_REQUEST error, the field null). Nothing runs.
    let missing = crate::exec::missing_idempotent(op);
    if !missing.is_empty() {
        shop.stats.lock().unwrap().validation_errors += 1;
        let errors: Vec<Value> = missing
            .iter()
            .map(|f| json!({
                "message": "The @idempotent directive is required for this mutation but was not provided.",
                "path": [f],
                "extensions": {"code": "BAD_REQUEST"},
            }))
            .collect();
        let data: Map<String, Value> = missing.into_iter().map(|f| (f, Value::Null)).collect();
        return done(
            json!({"errors": errors, "data": data, "extensions": cost_ext(0, Some(0), status())}),
        );
    }
    if let Some(err) = oversized_input(op, &vars) {
        shop.stats.lock().unwrap().validation_errors += 1;
        return done(json!({"errors": [err], "extensions": cost_ext(0, Some(0), status())}));
    }
    let cx_cost = CostCtx {
        schema: schema(),
        doc: &doc,
        vars: &vars,
    };
    let requested = cost::requested(&cx_cost, op);
    shop.stats.lock().unwrap().points_requested += requested;
    let max = sim.config.max_query_cost;
    if requested > max {
        shop.stats.lock().unwrap().max_cost_exceeded += 1;
        let err = json!({
            "message": format!("Query cost is {requested}, which exceeds the single query max cost limit ({max})."),
            "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": max,
                           "documentation": "https://shopify.dev/api/usage/rate-limits"},
        });
        return done(json!({"errors": [err], "extensions": cost_ext(requested, None, status())}));
    }
    {
        let mut b = shop.bucket.lock().unwrap();
        if force_throttle {
            b.drain(now_s);
        }
        if !b.try_take(requested as f64, now_s) {
            drop(b);
            shop.stats.lock().unwrap().throttled += 1;
            return done(throttled_body(requested, status()));
        }
    }
    let is_mutation = op.operation_type == OperationType::Mutation;
    let (result, mutations, dups, events, bulk_started) = {
        let mut store = shop.store.lock().unwrap();
        let before: Vec<u64> = store.bulk_ops.keys().copied().collect();
        let mut cx = Ctx::new(&mut store, now, sim.base_url.clone());
        cx.variables = vars.clone();
        cx.bulk_limit = sim.config.bulk_concurrency.max(1);
        let root = if is_mutation { K::Mutation } else { K::Query };
        let r = execute_ordered(&cx, &doc, op, &vars, root);
        let mutations = cx.mutations.take();
        let dups = cx.duplicate_keys.get();
        drop(cx);
        let events = std::mem::take(&mut store.events);
        let started: Vec<u64> = store
            .bulk_ops
            .keys()
            .filter(|k| !before.contains(k))
            .copied()
            .collect();
        (r, mutations, dups, events, started)
    };
    let (data, errors) = match result {
        Ok(x) => x,
        Err(m) => (None, vec![json!({"message": m})]),
    };
    let plain = data.as_ref().map(|d| match serde_json::to_value(d) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    });
    let actual = cost::actual(&cx_cost, op, plain.as_ref()).min(requested);
    shop.bucket
        .lock()
        .unwrap()
        .refund((requested - actual) as f64, now_s);
    {
        let mut s = shop.stats.lock().unwrap();
        s.points_consumed += actual;
        s.duplicate_idempotency_keys += dups;
        s.bulk_operations += bulk_started.len() as u64;
        if is_mutation {
            for m in mutations {
                *s.mutations.entry(m).or_default() += 1;
            }
        }
    }
    let mut body = JsonMap::new();
    if !errors.is_empty() {
        body.insert("errors", JsonValue::from(Value::Array(errors)));
    }
    body.insert("data", data.map_or(JsonValue::Null, JsonValue::Object));
    let mut ext = cost_ext(requested, Some(actual), status());
    if include_fields {
        ext["cost"]["fields"] = Value::Array(cost::requested_fields(&cx_cost, op));
    }
    body.insert("extensions", JsonValue::from(ext));
    Outcome {
        body: JsonValue::Object(body),
        events,
        bulk_started,
    }
}

/// Any array input is limited to 250 items (Shopify's input limits), except variant lists,
/// which productSet/productVariantsBulk* accept up to the 2,048-variant product limit.
pub const MAX_INPUT_ARRAY: usize = 250;

fn oversized_input(
    op: &apollo_compiler::executable::Operation,
    vars: &Map<String, Value>,
) -> Option<Value> {
    fn walk(v: &Value, path: &mut Vec<String>) -> Option<(usize, Vec<String>)> {
        match v {
            Value::Array(items) => {
                let exempt = path.last().is_some_and(|k| k == "variants");
                if items.len() > MAX_INPUT_ARRAY && !exempt {
                    return Some((items.len(), path.clone()));
                }
                items.iter().find_map(|i| walk(i, path))
            }
            Value::Object(m) => m.iter().find_map(|(k, x)| {
                path.push(k.clone());
                let r = walk(x, path);
                path.pop();
                r
            }),
            _ => None,
        }
    }
    for sel in &op.selection_set.selections {
        let apollo_compiler::executable::Selection::Field(f) = sel else {
            continue;
        };
        for a in &f.arguments {
            let v = crate::cost::ast_to_json(&a.value, vars);
            let mut path = vec![f.name.to_string(), a.name.to_string()];
            if let Some((n, p)) = walk(&v, &mut path) {
                return Some(json!({
                    "message": format!("The input array size of {n} is greater than the maximum allowed of {MAX_INPUT_ARRAY}."),
                    "path": p,
                    "extensions": {"code": "MAX_INPUT_SIZE_EXCEEDED"},
                }));
            }
        }
    }
    None
}
