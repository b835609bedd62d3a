//! HTTP wiring: Shopify's paths (shop chosen by `Host`), the `/_sim/` control API, staged
//! uploads and bulk result files; starts bulk jobs and webhook deliveries after each request.

use crate::faults::Injected;
use crate::sim::{InFlight, Shop, Sim};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use std::sync::Arc;

pub type AppState = Arc<Sim>;

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/admin/api/{version}/graphql.json", post(graphql))
        .route("/admin/oauth/authorize", get(crate::oauth::authorize))
        .route(
            "/admin/oauth/access_token",
            post(crate::oauth::access_token),
        )
        .route("/_sim/shops", post(crate::control::create_shop))
        .route("/_sim/shops/{domain}/seed", post(crate::control::seed))
        .route("/_sim/shops/{domain}/stats", get(crate::control::stats))
        .route(
            "/_sim/shops/{domain}/orders",
            get(crate::control::orders).post(crate::control::create_order),
        )
        .route(
            "/_sim/shops/{domain}/orders/custom",
            post(crate::order_model::create_custom_order),
        )
        .route(
            "/_sim/shops/{domain}/orders/{id}/change",
            post(crate::order_model::change_order),
        )
        .route(
            "/_sim/shops/{domain}/compliance",
            post(crate::order_model::send_compliance),
        )
        .route(
            "/_sim/shops/{domain}/products",
            get(crate::control::products),
        )
        .route(
            "/_sim/shops/{domain}/inventory",
            get(crate::control::inventory),
        )
        .route(
            "/_sim/shops/{domain}/fulfillments",
            get(crate::control::fulfillments),
        )
        .route(
            "/_sim/shops/{domain}/webhooks",
            get(crate::control::webhooks),
        )
        .route(
            "/_sim/shops/{domain}/webhook-subscriptions",
            get(crate::control::webhook_subscriptions),
        )
        .route(
            "/_sim/shops/{domain}/uninstall",
            post(crate::control::uninstall),
        )
        .route(
            "/_sim/faults",
            put(crate::control::set_faults).get(crate::control::get_faults),
        )
        .route("/_sim/clock/advance", post(crate::control::advance_clock))
        .route("/_sim/uploads", post(upload))
        .route("/_sim/bulk/{token}", get(bulk_result))
        .with_state(sim)
}

/// The shop a request is for: its `Host` (or HTTP/2 authority), without the port.
pub fn host_of(headers: &HeaderMap, uri: &Uri) -> String {
    let h = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    h.split(':').next().unwrap_or("").to_ascii_lowercase()
}

pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let mut r = (status, serde_json::to_vec(body).unwrap_or_default()).into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// The stable versions Shopify serves today (2026-12: each about a year; 2025-10 ended 2026-10-16), oldest first. A
/// request for another falls forward to the oldest, and `X-Shopify-API-Version` says so
/// (https://shopify.dev/docs/api/usage/versioning). Whatever the version, the simulator serves 2026-10's semantics.
const SUPPORTED_VERSIONS: &[&str] = &["2026-01", "2026-04", "2026-07", "2026-10", "unstable"];

fn valid_version(v: &str) -> bool {
    v == "unstable"
        || (v.len() == 7
            && v.as_bytes()[4] == b'-'
            && v[..4].bytes().all(|b| b.is_ascii_digit())
            && v[5..].bytes().all(|b| b.is_ascii_digit()))
}

async fn graphql(
    State(sim): State<AppState>,
    Path(version): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !valid_version(&version) {
        return json_response(StatusCode::NOT_FOUND, &json!({"errors": "Not Found"}));
    }
    let domain = host_of(&headers, &uri);
    let Some(shop) = sim.shop(&domain) else {
        return json_response(StatusCode::NOT_FOUND, &json!({"errors": "Not Found"}));
    };
    let _guard = InFlight::enter(&shop);
    let latency = sim.faults.latency(&domain);
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let token = headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !token_ok(&sim, &shop, token) {
        shop.stats.lock().unwrap().unauthorized += 1;
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}),
        );
    }
    let mut force_throttle = false;
    match sim.faults.request(&domain) {
        Injected::None => {}
        Injected::Throttle => force_throttle = true,
        other => {
            shop.stats.lock().unwrap().faults_injected += 1;
            return injected_response(other);
        }
    }
    if force_throttle {
        shop.stats.lock().unwrap().faults_injected += 1;
    }
    // Shopify takes JSON bodies, or the bare document with `Content-Type: application/graphql`.
    let graphql_body = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/graphql"));
    let parsed = if graphql_body {
        std::str::from_utf8(&body).ok().map(|q| json!({"query": q}))
    } else {
        serde_json::from_slice::<Value>(&body).ok()
    };
    let req: Value = match parsed {
        Some(v @ Value::Object(_)) if v.get("query").and_then(Value::as_str).is_some() => v,
        _ => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"errors": {"query": "Required parameter missing or invalid"}}),
            );
        }
    };
    let include_fields = headers
        .get("x-graphql-cost-include-fields")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let out = crate::graphql::run(&sim, &shop, &req, force_throttle, include_fields);
    crate::webhooks::dispatch(&sim, &shop, out.events);
    for id in out.bulk_started {
        tokio::spawn(run_bulk(sim.clone(), shop.clone(), id));
    }
    // The request ran, but its answer never arrives (the client cannot tell whether it applied).
    if sim.faults.lose_answer(&domain) {
        shop.stats.lock().unwrap().faults_injected += 1;
        return injected_response(Injected::Drop);
    }
    let mut r = match sim.faults.drop_field(&domain) {
        Some(field) => {
            shop.stats.lock().unwrap().faults_injected += 1;
            let mut body = serde_json::to_value(&out.body).unwrap_or_default();
            drop_field(&mut body["data"], &field);
            json_response(StatusCode::OK, &body)
        }
        None => json_response(StatusCode::OK, &out.body),
    };
    let served = if SUPPORTED_VERSIONS.contains(&version.as_str()) {
        version.as_str()
    } else {
        SUPPORTED_VERSIONS[0]
    };
    if let Ok(v) = HeaderValue::from_str(served) {
        r.headers_mut().insert("x-shopify-api-version", v);
    }
    r
}

/// Removes `field` from every object under `value` (the `drop_field` fault).
fn drop_field(value: &mut Value, field: &str) {
    match value {
        Value::Object(map) => {
            map.remove(field);
            map.values_mut().for_each(|v| drop_field(v, field));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| drop_field(v, field)),
        _ => {}
    }
}

fn token_ok(sim: &Sim, shop: &Shop, token: &str) -> bool {
    if token.is_empty() {
        return false;
    }
    let now = sim.now_secs();
    shop.tokens
        .lock()
        .unwrap()
        .get(token)
        .is_some_and(|t| t.expires_at.is_none_or(|e| now < e))
}

fn injected_response(f: Injected) -> Response {
    match f {
        Injected::Error(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            json_response(status, &json!({"errors": "Internal Server Error"}))
        }
        Injected::TooMany(secs) => {
            let mut r = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("{secs:.1}")) {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        // A body that fails after the headers: the client sees the connection cut mid-response.
        _ => {
            let stream = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other(
                    "connection dropped by fault injection",
                ))
            });
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(Body::from_stream(stream))
                .unwrap_or_default()
        }
    }
}

/// Runs a bulk operation in the background, then announces `bulk_operations/finish`.
pub async fn run_bulk(sim: Arc<Sim>, shop: Arc<Shop>, id: u64) {
    let delay = sim.faults.get().bulk_delay_ms;
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let stop_after = sim.faults.bulk_mutation_stop_after(&shop.domain);
    let sim2 = sim.clone();
    let shop2 = shop.clone();
    let events = tokio::task::spawn_blocking(move || {
        let now = sim2.config.clock.now();
        let mut st = shop2.store.lock().unwrap();
        let Some(op) = st.bulk_ops.get_mut(&id) else {
            return vec![];
        };
        // Canceled (bulkOperationCancel) before it ran: it ends CANCELED, having run nothing.
        let canceled = op.status == "CANCELING";
        op.status = "RUNNING".into();
        let (kind, doc, staged, group) = (
            op.kind.clone(),
            op.query.clone(),
            op.staged_path.clone(),
            op.group_objects,
        );
        // (result lines, objects, roots, events, stopped part way)
        let result = if canceled {
            Err("canceled".to_string())
        } else if kind == "QUERY" {
            crate::bulk::run_query(&mut st, &doc, now, group)
                .map(|o| (o.jsonl, o.objects, o.roots, vec![], false))
        } else {
            let input = staged
                .and_then(|k| crate::bulk::take_staged(&k))
                .unwrap_or_default();
            crate::bulk::run_mutation(&mut st, &doc, &input, now, stop_after)
                .map(|r| (r.jsonl, r.lines, r.lines, r.events, r.stopped))
        };
        let mut events = Vec::new();
        let done_at = sim2.config.clock.now();
        let Some(op) = st.bulk_ops.get_mut(&id) else {
            return vec![];
        };
        match result {
            Ok((jsonl, objects, roots, evs, stopped)) => {
                events = evs;
                let token = uuid::Uuid::new_v4().simple().to_string();
                op.file_size = Some(jsonl.len() as u64);
                op.object_count = objects;
                op.root_object_count = roots;
                let url =
                    (!jsonl.is_empty()).then(|| format!("{}/_sim/bulk/{token}", sim2.base_url));
                crate::bulk::put_result(
                    token,
                    Bytes::from(jsonl),
                    sim2.now_secs() + crate::bulk::RESULT_TTL_SECS,
                );
                if stopped {
                    op.partial_url = url;
                    op.status = "FAILED".into();
                    op.error_code = Some("INTERNAL_SERVER_ERROR".into());
                } else {
                    op.url = url;
                    op.status = "COMPLETED".into();
                }
            }
            Err(_) if canceled => op.status = "CANCELED".into(),
            Err(_) => {
                op.status = "FAILED".into();
                op.error_code = Some("INTERNAL_SERVER_ERROR".into());
            }
        }
        op.completed_at = Some(done_at);
        let payload = json!({
            "admin_graphql_api_id": crate::model::gid("BulkOperation", id),
            "completed_at": crate::model::ts(&done_at),
            "created_at": crate::model::ts(&op.created_at),
            "error_code": op.error_code.as_ref().map(|e| e.to_lowercase()),
            "status": op.status.to_lowercase(),
            "type": op.kind.to_lowercase(),
        });
        events.push(crate::model::Event {
            topic: "bulk_operations/finish",
            payload,
        });
        events
    })
    .await
    .unwrap_or_default();
    crate::webhooks::dispatch(&sim, &shop, events);
}

/// The staged-upload target: a multipart POST with `key` and `file` fields.
async fn upload(mut mp: axum::extract::Multipart) -> Response {
    let (mut key, mut file) = (None, None);
    while let Ok(Some(field)) = mp.next_field().await {
        let name = field.name().unwrap_or("").to_string();
        let Ok(data) = field.bytes().await else {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": "bad multipart body"}),
            );
        };
        match name.as_str() {
            "key" => key = Some(String::from_utf8_lossy(&data).into_owned()),
            "file" => file = Some(data.to_vec()),
            _ => {}
        }
    }
    match (key, file) {
        (Some(k), Some(f)) => {
            crate::bulk::put_staged(k.clone(), f);
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><PostResponse><Key>{k}</Key></PostResponse>"
            );
            (
                StatusCode::CREATED,
                [("content-type", "application/xml")],
                xml,
            )
                .into_response()
        }
        _ => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "key and file fields are required"}),
        ),
    }
}

async fn bulk_result(State(sim): State<AppState>, Path(token): Path<String>) -> Response {
    match crate::bulk::get_result(&token, sim.now_secs()) {
        crate::bulk::ResultFile::Found(b) => (StatusCode::OK, [("content-type", "application/jsonl")], b).into_response(),
        // Signed-URL storage answers an expired link like this.
        crate::bulk::ResultFile::Expired => (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/xml")],
            "<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>",
        )
            .into_response(),
        crate::bulk::ResultFile::Missing => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}
