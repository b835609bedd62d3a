//! Import Listings at scale: a store of 100,000 variants (25,000 products of 4 variants, 3 locations, 2 images per
//! product, a weight per variant) imported from the run request to RunFinished.
//! Reports the wall time, variants per second and peak resident memory of listings and shopify-gateway: each runs as
//! its own process (its release binary; `deploy/local/bench.sh` builds the gateway's, which is another package's),
//! so each figure is that service's own. Auth and the simulator run inside this benchmark's process. Real NATS and
//! PostgreSQL. Run with `make bench ONLY=import` (deploy/local/bench.sh import); figures go to
//! target/bench/import.json.

// The tests' system builder; the benchmark uses part of it.
#[allow(dead_code)]
#[path = "../tests/api/support/mod.rs"]
mod support;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use shopbridge_proto::{listings as pb, runs};
use shopify_sim::{client::SeedRequestJson, model::Media};
use support::stack::{Options, Stack, client_at};

const PRODUCTS: usize = 25_000;
const VARIANTS_PER_PRODUCT: usize = 4;
const WALL_GOAL_SECS: f64 = 30.0;
const RSS_GOAL_MB: f64 = 300.0;

/// Resident memory of a process from /proc: (current, peak) in MB.
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

/// Resets a process's peak resident size to its current size (Linux `clear_refs` 5), so the peak read after the run
/// is the run's.
fn reset_peak(pid: &str) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// 2 images per product and a weight per variant (every unit in turn): the seeding API makes options, variants,
/// locations and quantities; the rest is written into the simulated store directly. No metafields: the simulator
/// finds an owner's metafields by scanning all of them, which at this size (125,000 owners) takes it minutes; the
/// import of custom fields is covered by the tests (1,000 products with product and variant metafields).
fn enrich(stack: &Stack) {
    let shop = stack.sim.sim.shop(&stack.shop).expect("the shop");
    let mut st = shop.store.lock().unwrap();
    let products: Vec<u64> = st.products.keys().copied().collect();
    for pid in products {
        let media: Vec<Media> = (0..2)
            .map(|k| Media {
                id: st.next_id(),
                alt: format!("picture {k}"),
                url: format!("https://cdn.shopify.com/s/files/1/0001/products/{pid}-{k}.jpg"),
            })
            .collect();
        if let Some(p) = st.products.get_mut(&pid) {
            p.media = media;
        }
    }
    const UNITS: [&str; 4] = ["GRAMS", "KILOGRAMS", "OUNCES", "POUNDS"];
    for (n, item) in st.inventory_items.values_mut().enumerate() {
        item.weight = Some((1.25 + (n % 40) as f64, UNITS[n % 4].to_string()));
    }
}

/// Kills a service process however the benchmark ends.
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

/// Starts the listings binary on the stack's database and namespace.
fn spawn_listings(stack: &Stack, grpc_port: u16) -> Child {
    let namespace = stack.nats.namespace.subject("x");
    let namespace = namespace.strip_suffix(".x").unwrap_or("");
    Command::new(env!("CARGO_BIN_EXE_shopbridge-listings"))
        .arg("serve")
        .env("SHOPBRIDGE__GRPC__LISTEN", format!("127.0.0.1:{grpc_port}"))
        .env("SHOPBRIDGE__HTTP__LISTEN", "127.0.0.1:0")
        .env("SHOPBRIDGE__DATABASE__URL", &stack.listings_db.url)
        .env(
            "SHOPBRIDGE__NATS__URL",
            shopbridge_platform::testing::nats_url(),
        )
        .env("SHOPBRIDGE__NATS__NAMESPACE", namespace)
        .env("SHOPBRIDGE__SERVICE__AUTH__JWKS_URL", stack.jwks_url())
        // IMPORT_BENCH_LISTINGS_LOG=<filter> shows listings' logs (e.g. "warn,shopbridge_listings=debug": each
        // batch's timings); by default only its warnings.
        .env(
            "SHOPBRIDGE__TELEMETRY__LOG_LEVEL",
            std::env::var("IMPORT_BENCH_LISTINGS_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(if std::env::var_os("IMPORT_BENCH_LISTINGS_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("start the listings binary")
}

/// Starts the gateway's release binary (built by deploy/local/bench.sh next to this benchmark's own executable's
/// directory) on the stack's database and namespace, with the settings the tests' in-process gateway gets.
fn spawn_gateway(stack: &Stack, http_port: u16) -> Child {
    let exe = std::env::current_exe().expect("the benchmark's path");
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("shopbridge-gateway"))
        .filter(|path| path.exists())
        .expect("the gateway's binary next to the benchmark: run `cargo build --release --bin shopbridge-gateway`");
    let namespace = stack.nats.namespace.subject("x");
    let namespace = namespace.strip_suffix(".x").unwrap_or("");
    Command::new(binary)
        .arg("serve")
        .env("SHOPBRIDGE__GRPC__LISTEN", "127.0.0.1:0")
        .env("SHOPBRIDGE__HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
        .env("SHOPBRIDGE__DATABASE__URL", &stack.gateway_db.url)
        .env(
            "SHOPBRIDGE__NATS__URL",
            shopbridge_platform::testing::nats_url(),
        )
        .env("SHOPBRIDGE__NATS__NAMESPACE", namespace)
        .env("SHOPBRIDGE__TELEMETRY__LOG_LEVEL", "warn")
        .envs(stack.gateway_env())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the gateway binary")
}

/// Waits for a service's /readyz on its HTTP port.
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

fn main() {
    // A smaller store for a quick check of the benchmark itself (a debug `cargo test --bench import`); the figures
    // reported are those of the default size.
    let products: usize = std::env::var("IMPORT_BENCH_PRODUCTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(PRODUCTS);
    let variants = (products * VARIANTS_PER_PRODUCT) as u64;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let stack = Stack::start(Options {
            gateway: false,
            fast_timers: false,
            listings: false,
        })
        .await;
        let seeding = Instant::now();
        stack
            .sim_client
            .seed(
                &stack.shop,
                &SeedRequestJson {
                    products,
                    variants_per_product: VARIANTS_PER_PRODUCT,
                    locations: 3,
                    orders: 0,
                    seed: 7,
                },
            )
            .await
            .expect("seed");
        enrich(&stack);
        println!("store of {variants} variants seeded in {:.1} s", seeding.elapsed().as_secs_f64());

        let gateway_http = free_port();
        let gateway = ChildGuard(spawn_gateway(&stack, gateway_http));
        let gateway_pid = gateway.0.id().to_string();
        ready(gateway_http, "the gateway").await;
        let grpc_port = free_port();
        let listings = ChildGuard(spawn_listings(&stack, grpc_port));
        let listings_pid = listings.0.id().to_string();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{grpc_port}").parse().unwrap();
        // Ready when it answers an authenticated call.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut client = loop {
            if let Ok(mut client) = client_at(addr, &stack.tenant.token).await
                && client
                    .set_import_settings(pb::SetImportSettingsRequest {
                        settings: Some(pb::ImportSettings {
                            channel_id: stack.channel_id.clone(),
                            enabled: true,
                            mode: pb::ImportMode::CreateOnly as i32,
                            master_sku_field: pb::MasterSkuField::ShopifyVariantSku as i32,
                            pause_new_listings: false,
                        }),
                    })
                    .await
                    .is_ok()
            {
                break client;
            }
            assert!(Instant::now() < deadline, "listings did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };

        let (rss_before, _) = rss_mb(&gateway_pid);
        let peak_reset = reset_peak(&gateway_pid);
        let started = Instant::now();
        let run = stack.request_import().await;
        let finished = stack.finished_within(&run, Duration::from_secs(600)).await;
        let wall = started.elapsed().as_secs_f64();
        let (_, gateway_peak) = rss_mb(&gateway_pid);
        let (_, listings_peak) = rss_mb(&listings_pid);

        // Where the time went, from the run's own reports: until the export was complete and staged (the
        // gateway's bulk export, its batches through the bus), then listings applying them.
        let seconds = |t: Option<prost_types::Timestamp>| {
            t.map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
        };
        let started_at = stack
            .nats
            .events::<runs::RunStarted>()
            .await
            .into_iter()
            .find(|s| s.run_id == run)
            .map(|s| seconds(s.started_at))
            .unwrap_or_default();
        let applying_at = stack
            .nats
            .events::<runs::RunProgress>()
            .await
            .into_iter()
            .find(|p| p.run_id == run && p.stage.starts_with("applying the catalog"))
            .map(|p| seconds(p.at))
            .unwrap_or_default();
        let export_secs = applying_at - started_at;
        let apply_secs = seconds(finished.finished_at) - applying_at;
        let counters = finished.counters.unwrap_or_default();
        assert_eq!(finished.outcome, runs::Outcome::Succeeded as i32, "{finished:?}");
        assert_eq!(counters.created, variants, "{counters:?}");
        let total = client
            .list_listings(pb::ListListingsRequest {
                page: Some(shopbridge_proto::common::PageRequest {
                    page_size: 1,
                    page_token: String::new(),
                }),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner()
            .total;
        assert_eq!(total, products as u64);
        let rate = variants as f64 / wall;

        let build = if cfg!(debug_assertions) { "DEBUG" } else { "release" };
        let peak_note = if peak_reset { "" } else { " (peak since start: clear_refs refused)" };
        println!(
            "import benchmark: {products} products, {variants} variants, 3 locations; {build} build; listings and the gateway each in its own process"
        );
        println!("{:<58} {:>10} {:>6} {:>8}", "figure", "value", "unit", "goal");
        println!("{:<58} {:>10.1} {:>6} {:>8}", "run requested -> RunFinished", wall, "s", format!("< {WALL_GOAL_SECS}"));
        println!("{:<58} {:>10.0} {:>6}", "variants imported per second", rate, "1/s");
        println!("{:<58} {:>10.1} {:>6}", "  of which: export complete and staged (gateway, bus)", export_secs, "s");
        println!("{:<58} {:>10.1} {:>6}", "  of which: batches applied (listings)", apply_secs, "s");
        println!("{:<58} {:>10.0} {:>6} {:>8}", "listings peak RSS (its process)", listings_peak, "MB", format!("< {RSS_GOAL_MB}"));
        println!("{:<58} {:>10.0} {:>6}", "gateway RSS before the run (its process)", rss_before, "MB");
        println!("{:<58} {:>10.0} {:>6} {:>8}{peak_note}", "gateway peak RSS during the run", gateway_peak, "MB", format!("< {RSS_GOAL_MB}"));

        let figures = serde_json::json!([
            {"name": "import_wall_seconds", "value": wall, "unit": "s", "baseline": WALL_GOAL_SECS, "ratio": wall / WALL_GOAL_SECS},
            {"name": "import_variants_per_sec", "value": rate, "unit": "variants/s"},
            {"name": "import_export_and_staging_seconds", "value": export_secs, "unit": "s"},
            {"name": "import_apply_seconds", "value": apply_secs, "unit": "s"},
            {"name": "listings_peak_rss", "value": listings_peak, "unit": "MB", "baseline": RSS_GOAL_MB, "ratio": listings_peak / RSS_GOAL_MB},
            {"name": "gateway_rss_before_run", "value": rss_before, "unit": "MB"},
            {"name": "gateway_peak_rss", "value": gateway_peak, "unit": "MB", "baseline": RSS_GOAL_MB, "ratio": gateway_peak / RSS_GOAL_MB},
        ]);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("import.json"), serde_json::to_string_pretty(&figures).unwrap()).unwrap();
        println!("figures written to target/bench/import.json");

        drop(client);
        drop(listings);
        drop(gateway);
        stack.finish().await;
    });
}
