//! Execution of validated documents against one shop's store, using apollo-compiler's
//! synchronous resolver executor. Every GraphQL object is an `O` (a store key `K` plus the
//! request context); plain payload data is JSON typed by the schema at resolution time.

mod mutate;
pub use mutate::missing_idempotent;
mod orders;
mod orders_mut;
mod read;

use crate::model::{Store, cursor};
use crate::schema::schema;
use apollo_compiler::resolvers::{FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::schema::ExtendedType;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Per-request context.
pub struct Ctx<'s> {
    pub store: RefCell<&'s mut Store>,
    pub now: DateTime<Utc>,
    pub now_secs: f64,
    /// `http://host:port` of the simulator, for staged-upload and bulk-result URLs.
    pub base_url: String,
    /// The request's coerced variables (directive arguments such as `@idempotent(key: $k)` read them).
    pub variables: Map<String, Value>,
    pub mutations: RefCell<Vec<String>>,
    /// Replays of an `@idempotent` key.
    pub duplicate_keys: Cell<u64>,
    /// Concurrent bulk operations allowed per shop (all types together).
    pub bulk_limit: usize,
    /// Bulk mode: connections need no `first`/`last` and return everything.
    pub bulk: bool,
}

impl<'s> Ctx<'s> {
    pub fn new(store: &'s mut Store, now: DateTime<Utc>, base_url: String) -> Self {
        let now_secs = now.timestamp() as f64 + f64::from(now.timestamp_subsec_nanos()) / 1e9;
        Ctx {
            store: RefCell::new(store),
            now,
            now_secs,
            base_url,
            variables: Map::new(),
            mutations: RefCell::new(Vec::new()),
            duplicate_keys: Cell::new(0),
            bulk_limit: 1,
            bulk: false,
        }
    }
}

/// A GraphQL object: a live store entity or a typed JSON value.
#[derive(Clone, Debug)]
pub enum K {
    Query,
    Mutation,
    Shop,
    Product(u64),
    Variant(u64),
    InventoryItem(u64),
    /// (inventory item, location)
    InventoryLevel(u64, u64),
    Location(u64),
    Publication(u64),
    Collection(u64),
    Metafield(u64),
    Media(u64, u64),
    Order(u64),
    /// (order, line index)
    LineItem(u64, usize),
    FulfillmentOrder(u64),
    /// (fulfillment order, line index)
    FoLine(u64, usize),
    Fulfillment(u64),
    WebhookSub(u64),
    BulkOp(u64),
    /// An asynchronous productSet operation.
    ProductOp(u64),
    Conn(Rc<Conn>),
    Edge(Rc<Conn>, usize),
    /// A payload whose fields are given: (type name, fields).
    Rec(&'static str, Rc<Vec<(&'static str, V)>>),
    Json(String, Rc<Value>),
}

/// A resolved value before it is handed to the executor.
#[derive(Clone, Debug)]
pub enum V {
    Null,
    Leaf(Value),
    Obj(K),
    List(Vec<V>),
    /// Object(s) as JSON, typed by the field's type (`__typename` picks the type of an interface).
    Json(Value),
}

impl V {
    pub fn s(s: impl Into<String>) -> V {
        V::Leaf(Value::String(s.into()))
    }
    pub fn opt_s(s: Option<impl Into<String>>) -> V {
        s.map_or(V::Null, V::s)
    }
}

#[derive(Debug)]
pub struct Conn {
    /// (cursor, object)
    pub items: Vec<(String, K)>,
    pub has_next: bool,
    pub has_prev: bool,
}

pub struct O<'c, 's> {
    pub cx: &'c Ctx<'s>,
    pub k: K,
    /// The concrete type, when the field's type is an object type (connections, edges, payloads).
    pub ty: Option<&'c str>,
}

impl<'c, 's> O<'c, 's> {
    pub fn root(cx: &'c Ctx<'s>, k: K) -> Self {
        O { cx, k, ty: None }
    }
}

fn is_leaf_type(ty: &str) -> bool {
    matches!(
        schema().types.get(ty),
        Some(ExtendedType::Scalar(_)) | Some(ExtendedType::Enum(_)) | None
    )
}

fn to_resolved<'a>(cx: &'a Ctx<'_>, v: V, ty: &'a str) -> ResolvedValue<'a> {
    match v {
        V::Null => ResolvedValue::null(),
        // Lists of scalars/enums (e.g. `tags`) go to the executor as lists; JSON stays whole.
        V::Leaf(Value::Array(items)) if ty != "JSON" => ResolvedValue::List(Box::new(
            items.into_iter().map(|v| Ok(ResolvedValue::leaf(v))),
        )),
        V::Leaf(j) => ResolvedValue::leaf(j),
        V::Obj(k) => {
            let concrete =
                matches!(schema().types.get(ty), Some(ExtendedType::Object(_))).then_some(ty);
            ResolvedValue::object(O {
                cx,
                k,
                ty: concrete,
            })
        }
        V::List(vs) => ResolvedValue::List(Box::new(
            vs.into_iter().map(move |v| Ok(to_resolved(cx, v, ty))),
        )),
        V::Json(Value::Null) => ResolvedValue::null(),
        V::Json(Value::Array(items)) if is_leaf_type(ty) && ty != "JSON" => ResolvedValue::List(
            Box::new(items.into_iter().map(|v| Ok(ResolvedValue::leaf(v)))),
        ),
        V::Json(j) if is_leaf_type(ty) => ResolvedValue::leaf(j),
        V::Json(Value::Array(items)) => ResolvedValue::List(Box::new(
            items
                .into_iter()
                .map(move |v| Ok(to_resolved(cx, V::Json(v), ty))),
        )),
        V::Json(j) => {
            let concrete = j
                .get("__typename")
                .and_then(Value::as_str)
                .unwrap_or(ty)
                .to_string();
            ResolvedValue::object(O {
                cx,
                k: K::Json(concrete, Rc::new(j)),
                ty: None,
            })
        }
    }
}

pub type R = Result<V, FieldError>;

thread_local! {
    /// Set while a bulk operation executes (paginate has no context parameter).
    static BULK: Cell<bool> = const { Cell::new(false) };
}

/// (data, errors) of an execution, as plain JSON.
pub type Executed = (Option<Map<String, Value>>, Vec<Value>);

/// (data in field order, errors) of an execution.
pub type ExecutedOrdered = (Option<apollo_compiler::response::JsonMap>, Vec<Value>);

/// Executes one operation of a validated document; returns (data, errors) as plain JSON.
pub fn execute(
    cx: &Ctx<'_>,
    doc: &apollo_compiler::validation::Valid<apollo_compiler::ExecutableDocument>,
    op: &apollo_compiler::executable::Operation,
    vars: &Map<String, Value>,
    root: K,
) -> Result<Executed, String> {
    let (data, errors) = execute_ordered(cx, doc, op, vars, root)?;
    let data = data.map(|d| match serde_json::to_value(d) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    });
    Ok((data, errors))
}

/// Like `execute`, keeping the response's field order (GraphQL responses follow the query).
pub fn execute_ordered(
    cx: &Ctx<'_>,
    doc: &apollo_compiler::validation::Valid<apollo_compiler::ExecutableDocument>,
    op: &apollo_compiler::executable::Operation,
    vars: &Map<String, Value>,
    root: K,
) -> Result<ExecutedOrdered, String> {
    let coerced = apollo_compiler::validation::Valid::assume_valid(crate::bulk::to_bytes_map(vars));
    BULK.with(|b| b.set(cx.bulk));
    let res = apollo_compiler::resolvers::Execution::new(schema(), doc)
        .operation(op)
        .coerced_variable_values(&coerced)
        .execute_sync(&O::root(cx, root));
    BULK.with(|b| b.set(false));
    let res = res.map_err(|e| e.message().to_string())?;
    let data = res.data;
    let errors = res
        .errors
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
            // apollo-compiler prefixes resolver errors; Shopify's messages have no prefix.
            if let Some(m) = v
                .get("message")
                .and_then(Value::as_str)
                .and_then(|m| m.strip_prefix("resolver error: "))
            {
                v["message"] = Value::String(m.to_string());
            }
            v
        })
        .collect();
    Ok((data, errors))
}

pub fn err(message: impl Into<String>) -> FieldError {
    FieldError {
        message: message.into(),
    }
}

impl ObjectValue for O<'_, '_> {
    fn type_name(&self) -> &str {
        if let Some(t) = self.ty {
            return t;
        }
        match &self.k {
            K::Query => "QueryRoot",
            K::Mutation => "Mutation",
            K::Shop => "Shop",
            K::Product(_) => "Product",
            K::Variant(_) => "ProductVariant",
            K::InventoryItem(_) => "InventoryItem",
            K::InventoryLevel(..) => "InventoryLevel",
            K::Location(_) => "Location",
            K::Publication(_) => "Publication",
            K::Collection(_) => "Collection",
            K::Metafield(_) => "Metafield",
            K::Media(..) => "MediaImage",
            K::Order(_) => "Order",
            K::LineItem(..) => "LineItem",
            K::FulfillmentOrder(_) => "FulfillmentOrder",
            K::FoLine(..) => "FulfillmentOrderLineItem",
            K::Fulfillment(_) => "Fulfillment",
            K::WebhookSub(_) => "WebhookSubscription",
            K::BulkOp(_) => "BulkOperation",
            K::ProductOp(_) => "ProductSetOperation",
            // Connections and edges are typed by the field that returned them.
            K::Conn(_) | K::Edge(..) => "",
            K::Rec(t, _) => t,
            K::Json(t, _) => t,
        }
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        let args = match serde_json::to_value(info.arguments()) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let name = info.field_name();
        let cx = self.cx;
        let v = match &self.k {
            K::Query => read::query_field(cx, name, &args)?,
            K::Mutation => {
                cx.mutations.borrow_mut().push(name.to_string());
                mutate::mutation_field(cx, name, &args, info)?
            }
            K::Conn(c) => conn_field(c, name),
            K::Edge(c, i) => match name {
                "node" => V::Obj(c.items[*i].1.clone()),
                "cursor" => V::s(c.items[*i].0.clone()),
                _ => V::Null,
            },
            K::Rec(_, fields) => fields
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(V::Null, |(_, v)| v.clone()),
            K::Json(_, j) => match name {
                "__typename" => V::Null,
                _ => j.get(name).cloned().map_or(V::Null, V::Json),
            },
            K::Order(_)
            | K::LineItem(..)
            | K::FulfillmentOrder(_)
            | K::FoLine(..)
            | K::Fulfillment(_) => orders::field(cx, &self.k, name, &args)?,
            k => read::entity_field(cx, k, name, &args)?,
        };
        Ok(to_resolved(
            cx,
            v,
            info.field_definition().ty.inner_named_type().as_str(),
        ))
    }
}

fn conn_field(c: &Rc<Conn>, name: &str) -> V {
    match name {
        "nodes" => V::List(c.items.iter().map(|(_, k)| V::Obj(k.clone())).collect()),
        "edges" => V::List(
            (0..c.items.len())
                .map(|i| V::Obj(K::Edge(c.clone(), i)))
                .collect(),
        ),
        "pageInfo" => V::Json(json!({
            "hasNextPage": c.has_next,
            "hasPreviousPage": c.has_prev,
            "startCursor": c.items.first().map(|(c, _)| c),
            "endCursor": c.items.last().map(|(c, _)| c),
        })),
        _ => V::Null,
    }
}

/// Slices a list in a fixed order (positions, ids) by `first/after/last/before`; cursors carry
/// the id.
pub fn paginate(all: Vec<(u64, K)>, args: &Map<String, Value>, max: u64) -> R {
    paginate_entries(
        all.into_iter().map(|(id, k)| (id, k, None)).collect(),
        false,
        args,
        max,
    )
}

/// Slices a list sorted by (sort value, id) — descending when `reverse`. Cursors carry the sort
/// value as Shopify's do, so a page continues after the cursor's position even when the object
/// under it changed or disappeared.
pub fn paginate_sorted(
    all: Vec<(u64, K, String)>,
    reverse: bool,
    args: &Map<String, Value>,
    max: u64,
) -> R {
    paginate_entries(
        all.into_iter().map(|(id, k, v)| (id, k, Some(v))).collect(),
        reverse,
        args,
        max,
    )
}

type Entry = (u64, K, Option<String>);

fn paginate_entries(all: Vec<Entry>, reverse: bool, args: &Map<String, Value>, max: u64) -> R {
    let cursor_of = |e: &Entry| match &e.2 {
        Some(v) => crate::model::cursor_with_value(e.0, v),
        None => cursor(e.0),
    };
    let finish = |entries: Vec<Entry>, has_next, has_prev| {
        let items = entries.into_iter().map(|e| (cursor_of(&e), e.1)).collect();
        Ok(V::Obj(K::Conn(Rc::new(Conn {
            items,
            has_next,
            has_prev,
        }))))
    };
    if BULK.with(|b| b.get()) && !args.contains_key("first") && !args.contains_key("last") {
        return finish(all, false, false);
    }
    let first = args.get("first").and_then(Value::as_u64);
    let last = args.get("last").and_then(Value::as_u64);
    if first.is_none() && last.is_none() {
        return Err(err("you must provide one of first or last"));
    }
    for n in [first, last].into_iter().flatten() {
        if n > max {
            return Err(err(format!(
                "The page size ({n}) exceeds the maximum allowed ({max})."
            )));
        }
    }
    // Index of the first entry after the cursor (`after`) or at/after it (`before`).
    let boundary = |c: &str, after: bool| -> Result<usize, FieldError> {
        let bad = || err(format!("Invalid cursor for current pagination sort: {c}"));
        let (id, value) = crate::model::cursor_value(c).ok_or_else(bad)?;
        match value {
            Some(v) if all.iter().all(|e| e.2.is_some()) => {
                use std::cmp::Ordering;
                let past = |e: &Entry| {
                    let o = (e.2.as_deref().unwrap_or(""), e.0).cmp(&(v.as_str(), id));
                    let o = if reverse { o.reverse() } else { o };
                    if after {
                        o == Ordering::Greater
                    } else {
                        o != Ordering::Less
                    }
                };
                Ok(all.iter().position(past).unwrap_or(all.len()))
            }
            _ => {
                let p = all.iter().position(|e| e.0 == id).ok_or_else(bad)?;
                Ok(if after { p + 1 } else { p })
            }
        }
    };
    let mut start = 0usize;
    let mut end = all.len();
    if let Some(c) = args.get("after").and_then(Value::as_str) {
        start = boundary(c, true)?;
    }
    if let Some(c) = args.get("before").and_then(Value::as_str) {
        end = end.min(boundary(c, false)?);
    }
    start = start.min(end);
    if let Some(n) = first {
        end = end.min(start + n as usize);
    }
    if let Some(n) = last {
        start = start.max(end.saturating_sub(n as usize));
    }
    let has_next = end < all.len();
    let has_prev = start > 0;
    let items: Vec<Entry> = all.into_iter().skip(start).take(end - start).collect();
    finish(items, has_next, has_prev)
}

pub fn rec(ty: &'static str, fields: Vec<(&'static str, V)>) -> V {
    V::Obj(K::Rec(ty, Rc::new(fields)))
}

pub fn user_errors(errs: Vec<Value>) -> V {
    V::Json(Value::Array(errs))
}

pub fn user_error(field: &[&str], message: impl Into<String>, code: Option<&str>) -> Value {
    json!({"field": field, "message": message.into(), "code": code})
}

pub fn arg_str<'a>(args: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    args.get(k).and_then(Value::as_str)
}

/// Creates a variant (with its inventory item, stocked at the primary location).
pub fn new_variant_pub(st: &mut Store, pid: u64, now: DateTime<Utc>) -> u64 {
    mutate::new_variant(st, pid, now)
}
