//! Get Orders at scale: 50,000 orders read with one bulk operation, from the run request to RunFinished (wall time,
//! orders per second, peak resident memory of orders and of shopify-gateway, each in its own process: their release
//! binaries), then webhook -> OrderImported latency (p50, p99) with orders placed at 50 a second. Auth and the
//! simulator run inside this benchmark's process; real NATS and PostgreSQL. Run with `make bench ONLY=orders`
//! (deploy/local/bench.sh orders); figures go to target/bench/orders.json. ORDERS_BENCH_ORDERS sets the size,
//! ORDERS_BENCH_WEBHOOK_SECS how long webhooks are sent.

// The tests' system builder; the benchmark uses part of it.
#[allow(dead_code)]
#[path = "../tests/api/support/mod.rs"]
mod support;

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use prost::Message;
use shopbridge_proto::{orders as pb, runs};
use shopify_sim::model::LineItem;
use support::stack::{Options, Stack, client_at};

const ORDERS: usize = 50_000;
const WALL_GOAL_SECS: f64 = 60.0;
const RSS_GOAL_MB: f64 = 300.0;
const WEBHOOK_RATE: u64 = 50;

fn rss_mb(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn reset_peak(pid: &str) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn namespace(stack: &Stack) -> String {
    let ns = stack.nats.namespace.subject("x");
    ns.strip_suffix(".x").unwrap_or("").to_string()
}

fn spawn_orders(stack: &Stack, grpc_port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_shopbridge-orders"))
        .arg("serve")
        .env("SHOPBRIDGE__GRPC__LISTEN", format!("127.0.0.1:{grpc_port}"))
        .env("SHOPBRIDGE__HTTP__LISTEN", "127.0.0.1:0")
        .env("SHOPBRIDGE__DATABASE__URL", &stack.orders_db.url)
        .env(
            "SHOPBRIDGE__NATS__URL",
            shopbridge_platform::testing::nats_url(),
        )
        .env("SHOPBRIDGE__NATS__NAMESPACE", namespace(stack))
        .env("SHOPBRIDGE__SERVICE__AUTH__JWKS_URL", stack.jwks_url())
        .env("SHOPBRIDGE__SERVICE__GET_ORDERS__BULK", "true")
        .env("SHOPBRIDGE__TELEMETRY__LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the orders binary")
}

fn spawn_gateway(stack: &Stack, http_port: u16) -> Child {
    let exe = std::env::current_exe().expect("the benchmark's path");
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("shopbridge-gateway"))
        .filter(|path| path.exists())
        .expect("the gateway's binary next to the benchmark: run `cargo build --release --bin shopbridge-gateway`");
    Command::new(binary)
        .arg("serve")
        .env("SHOPBRIDGE__GRPC__LISTEN", "127.0.0.1:0")
        .env("SHOPBRIDGE__HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
        .env("SHOPBRIDGE__DATABASE__URL", &stack.gateway_db.url)
        .env(
            "SHOPBRIDGE__NATS__URL",
            shopbridge_platform::testing::nats_url(),
        )
        .env("SHOPBRIDGE__NATS__NAMESPACE", namespace(stack))
        .env("SHOPBRIDGE__TELEMETRY__LOG_LEVEL", "warn")
        .envs(stack.gateway_env())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the gateway binary")
}

async fn ready(http_port: u16, what: &str) {
    let url = format!("http://127.0.0.1:{http_port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reqwest::get(&url)
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "{what} did not get ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Orders placed straight into the simulated store (no webhooks: none is subscribed yet).
fn place(stack: &Stack, n: usize) {
    let shop = stack.sim.sim.shop(&stack.shop).expect("the shop");
    let now = stack.sim.sim.config.clock.now();
    let mut st = shop.store.lock().unwrap();
    for i in 0..n {
        let items = (0..1 + i % 3)
            .map(|k| LineItem {
                id: 0,
                variant_id: None,
                product_id: None,
                sku: format!("SKU-{}", (i + k) % 1000),
                name: format!("Item {}", (i + k) % 1000),
                vendor: "Acme".into(),
                quantity: 1 + (k as i64),
                price: "12.50".into(),
            })
            .collect();
        shopify_sim::seed::create_order(&mut st, items, "PAID", &[], now);
    }
    st.events.clear();
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let orders: usize = std::env::var("ORDERS_BENCH_ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ORDERS);
    let webhook_secs: u64 = std::env::var("ORDERS_BENCH_WEBHOOK_SECS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let stack = Stack::start(Options { gateway: false, fast_timers: false, orders: false, bulk: true }).await;
        let placing = Instant::now();
        place(&stack, orders);
        println!("{orders} orders placed in {:.1} s", placing.elapsed().as_secs_f64());

        let gateway_http = free_port();
        let gateway = ChildGuard(spawn_gateway(&stack, gateway_http));
        let gateway_pid = gateway.0.id().to_string();
        ready(gateway_http, "the gateway").await;
        let grpc_port = free_port();
        let orders_proc = ChildGuard(spawn_orders(&stack, grpc_port));
        let orders_pid = orders_proc.0.id().to_string();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{grpc_port}").parse().unwrap();
        let settings = pb::GetOrdersSettings {
            channel_id: stack.channel_id.clone(),
            enabled: true,
            import_orders_without_location: true,
            fulfillment_statuses: vec![pb::FulfillmentStatus::Unfulfilled as i32],
            financial_statuses: vec![pb::FinancialStatus::Any as i32],
            pii_retention: pb::PiiRetention::Indefinitely as i32,
            tag_after_import: String::new(),
            updated_within_days: 14,
            location_id: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut client = loop {
            if let Ok(mut client) = client_at(addr, &stack.tenant.token).await
                && client
                    .set_get_orders_settings(pb::SetGetOrdersSettingsRequest { settings: Some(settings.clone()) })
                    .await
                    .is_ok()
            {
                break client;
            }
            assert!(Instant::now() < deadline, "orders did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };

        let (gateway_before, _) = rss_mb(&gateway_pid);
        let peak_reset = reset_peak(&gateway_pid) & reset_peak(&orders_pid);
        let started = Instant::now();
        let run = stack.request_get_orders().await;
        let finished = stack.finished_within(&run, Duration::from_secs(1800)).await;
        let wall = started.elapsed().as_secs_f64();
        let (_, gateway_peak) = rss_mb(&gateway_pid);
        let (_, orders_peak) = rss_mb(&orders_pid);
        let counters = finished.counters.unwrap_or_default();
        assert_eq!(finished.outcome, runs::Outcome::Succeeded as i32, "{finished:?}");
        assert_eq!(counters.created, orders as u64, "{counters:?}");
        let seconds = |t: Option<prost_types::Timestamp>| t.map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9);
        let first_page_at = stack
            .nats
            .events::<runs::RunProgress>()
            .await
            .into_iter()
            .filter(|p| p.run_id == run && p.stage.starts_with("applied page"))
            .map(|p| seconds(p.at))
            .fold(f64::INFINITY, f64::min);
        let started_at = stack
            .nats
            .events::<runs::RunStarted>()
            .await
            .into_iter()
            .find(|s| s.run_id == run)
            .map(|s| seconds(s.started_at))
            .unwrap_or_default();
        let fetch_secs = first_page_at - started_at;
        let rate = orders as f64 / wall;

        // Webhooks: orders placed at 50 a second through the control API (orders/create to the gateway), each timed
        // from its placement to its OrderImported on the bus.
        stack.subscribe_order_webhooks_at(&format!("http://127.0.0.1:{gateway_http}/shopify/webhooks")).await;
        let subject = stack.nats.namespace.subject("events.orders.v1.OrderImported");
        let mut imported = stack.nats.client.subscribe(subject).await.expect("subscribe");
        let placed_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
        let collector = {
            let (placed_at, latencies) = (placed_at.clone(), latencies.clone());
            tokio::spawn(async move {
                while let Some(message) = imported.next().await {
                    let now = Instant::now();
                    let Ok(event) = pb::OrderImported::decode(message.payload.as_ref()) else { continue };
                    let id = event.order.map(|o| o.shopify_order_id).unwrap_or_default();
                    // Wait for the placement to be recorded (the POST's answer may come after the event).
                    for _ in 0..100 {
                        if let Some(at) = placed_at.lock().unwrap().get(&id) {
                            latencies.lock().unwrap().push(now.duration_since(*at).as_secs_f64() * 1000.0);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            })
        };
        let http = reqwest::Client::new();
        let url = format!("http://{}/_sim/shops/{}/orders/custom", stack.sim.addr(), stack.shop);
        let total = webhook_secs * WEBHOOK_RATE;
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / WEBHOOK_RATE));
        for i in 0..total {
            tick.tick().await;
            let (http, url, placed_at) = (http.clone(), url.clone(), placed_at.clone());
            tokio::spawn(async move {
                let at = Instant::now();
                let body = serde_json::json!({"lines": [{"sku": format!("WH-{i}"), "title": "Webhook tee"}]});
                if let Ok(r) = http.post(&url).json(&body).send().await
                    && let Ok(v) = r.json::<serde_json::Value>().await
                {
                    placed_at.lock().unwrap().insert(v["id"].as_str().unwrap_or_default().to_string(), at);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while (latencies.lock().unwrap().len() as u64) < total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        collector.abort();
        let mut lat = latencies.lock().unwrap().clone();
        lat.sort_by(|a, b| a.total_cmp(b));
        let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));

        let build = if cfg!(debug_assertions) { "DEBUG" } else { "release" };
        let peak_note = if peak_reset { "" } else { " (peak since start: clear_refs refused)" };
        println!("orders benchmark: {orders} orders (1-3 lines), bulk fetch; {build} build; orders and the gateway each in its own process");
        println!("{:<58} {:>10} {:>6} {:>8}", "figure", "value", "unit", "goal");
        println!("{:<58} {:>10.1} {:>6} {:>8}", "run requested -> RunFinished", wall, "s", format!("< {WALL_GOAL_SECS}"));
        println!("{:<58} {:>10.0} {:>6}", "orders imported per second", rate, "1/s");
        println!("{:<58} {:>10.1} {:>6}", "  of which: until the first page applied (bulk, bus)", fetch_secs, "s");
        println!("{:<58} {:>10.0} {:>6} {:>8}{peak_note}", "orders peak RSS (its process)", orders_peak, "MB", format!("< {RSS_GOAL_MB}"));
        println!("{:<58} {:>10.0} {:>6}", "gateway RSS before the run", gateway_before, "MB");
        println!("{:<58} {:>10.0} {:>6} {:>8}", "gateway peak RSS during the run", gateway_peak, "MB", format!("< {RSS_GOAL_MB}"));
        println!("{:<58} {:>10} {:>6}", format!("webhooks at {WEBHOOK_RATE}/s: OrderImported seen"), format!("{}/{total}", lat.len()), "");
        println!("{:<58} {:>10.0} {:>6}", "webhook -> OrderImported p50", p50, "ms");
        println!("{:<58} {:>10.0} {:>6}", "webhook -> OrderImported p99", p99, "ms");
        let figures = serde_json::json!([
            {"name": "orders_import_wall_seconds", "value": wall, "unit": "s", "baseline": WALL_GOAL_SECS, "ratio": wall / WALL_GOAL_SECS},
            {"name": "orders_import_per_sec", "value": rate, "unit": "orders/s"},
            {"name": "orders_import_until_first_page_seconds", "value": fetch_secs, "unit": "s"},
            {"name": "orders_peak_rss", "value": orders_peak, "unit": "MB", "baseline": RSS_GOAL_MB, "ratio": orders_peak / RSS_GOAL_MB},
            {"name": "gateway_peak_rss", "value": gateway_peak, "unit": "MB", "baseline": RSS_GOAL_MB, "ratio": gateway_peak / RSS_GOAL_MB},
            {"name": "webhook_to_order_imported_p50", "value": p50, "unit": "ms"},
            {"name": "webhook_to_order_imported_p99", "value": p99, "unit": "ms"},
            {"name": "webhook_orders_seen", "value": lat.len(), "unit": "orders", "baseline": total},
        ]);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("orders.json"), serde_json::to_string_pretty(&figures).unwrap()).unwrap();
        println!("figures written to target/bench/orders.json");
        drop(client.list_orders(pb::ListOrdersRequest::default()).await);
        drop(orders_proc);
        drop(gateway);
        stack.finish().await;
    });
}
