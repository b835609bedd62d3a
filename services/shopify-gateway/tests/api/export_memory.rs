//! What one catalog export costs the gateway's process in memory: a measurement, not a check, so it is ignored by
//! default. The simulator runs as its own process (its store and bulk files would otherwise count), and the figure
//! is the process's peak resident set (what the bench and a container limit see) while the command handler runs
//! the export and writes its events to the outbox, against the resident set before. Run it with:
//!
//! ```text
//! cargo build -p shopify-sim && SHOPIFY_SIM_BIN=$CARGO_TARGET_DIR/debug/shopify-sim \
//!   cargo nextest run -p shopbridge-gateway --run-ignored only --no-capture export_memory
//! ```
//!
//! EXPORT_MEMORY_PRODUCTS and EXPORT_MEMORY_VARIANTS (per product) size the catalog (2,000 × 10 by default).

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use secrecy::SecretString;
use shopbridge_gateway::{
    budget::{Budget, BudgetSettings},
    commands::CommandHandler,
    executor::{Executor, RetrySettings},
    shopify::{ShopifyHttp, ShopifySettings},
};
use shopbridge_platform::{
    bus::{Envelope, EventMeta, Handler, Relay},
    testing::{TestDb, TestNats, eventually, service_settings},
};
use shopbridge_proto::gateway as pb;
use shopify_sim::{SimClient, client::SeedRequestJson};
use tokio_util::sync::CancellationToken;

use crate::harness::Tokens;

/// The simulator's process, stopped when the measurement ends (or panics).
struct SimProcess(Child);

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A kB figure of a process's /proc status (VmRSS, VmHWM); `process` is "self" or a pid.
fn status_kb(process: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
#[ignore = "a measurement: run by hand with SHOPIFY_SIM_BIN (see the module's doc)"]
async fn export_memory_peak_of_a_catalog_export_command() {
    let bin = std::env::var("SHOPIFY_SIM_BIN").expect("SHOPIFY_SIM_BIN: the shopify-sim binary");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let sim = SimProcess(
        Command::new(bin)
            .args(["--listen", &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start shopify-sim"),
    );
    let client = SimClient::new(addr);
    let domain = "memory-shop.myshopify.com";
    let started = Instant::now();
    let token = loop {
        match client.create_shop(domain, "standard").await {
            Ok(token) => break token,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("shopify-sim did not start: {e}"),
        }
    };
    let products = env_or("EXPORT_MEMORY_PRODUCTS", 2_000);
    let variants = env_or("EXPORT_MEMORY_VARIANTS", 10);
    let seed = SeedRequestJson {
        products,
        variants_per_product: variants,
        locations: 2,
        orders: 0,
        seed: 21,
    };
    client.seed(domain, &seed).await.unwrap();

    let executor = Executor::new(
        ShopifyHttp::new(ShopifySettings {
            api_version: "2025-10".into(),
            scheme: "http".into(),
            port,
            connect_to: addr.to_string(),
            request_timeout_secs: 60,
        })
        .unwrap(),
        Budget::new(BudgetSettings::default()),
        RetrySettings {
            base_delay_ms: 20,
            max_delay_ms: 500,
            deadline_secs: 120,
        },
    );
    let db = TestDb::new(&shopbridge_gateway::MIGRATOR).await;
    let handler = CommandHandler::new(
        Arc::new(executor),
        Arc::new(Tokens(
            [(domain.to_string(), SecretString::from(token))].into(),
        )),
        db.pool.clone(),
        reqwest::Client::new(),
        None,
    );
    let command = pb::Command {
        command_id: "export-memory".into(),
        shop_domain: domain.into(),
        channel_id: domain.into(),
        lane: pb::Lane::Import as i32,
        operation: Some(pb::command::Operation::ExportCatalog(pb::ExportCatalog {})),
    };
    let envelope = Envelope {
        message_id: "export-memory".into(),
        subject: "test".into(),
        meta: EventMeta::tenant("t1"),
        message: command,
        delivered: 1,
    };

    // The peak from here on: writing 5 to clear_refs resets VmHWM to the current resident set.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident set");
    let before = status_kb("self", "VmRSS");
    let started = Instant::now();
    let mut tx = db.pool.begin().await.unwrap();
    handler.handle(&mut tx, &envelope).await.expect("export");
    tx.commit().await.unwrap();
    let elapsed = started.elapsed();
    let peak = status_kb("self", "VmHWM");

    // Then the relay publishes the events, as the gateway's own relay does, with the deployed settings.
    let nats = TestNats::new().await;
    let deployed: shopbridge_gateway::Settings =
        service_settings(&shopbridge_gateway::SPEC, &db.url, &nats.namespace, &[]);
    let batch_size = deployed.outbox.batch_size;
    let cancel = CancellationToken::new();
    let relay = Relay::new(
        db.pool.clone(),
        nats.js.clone(),
        nats.namespace.clone(),
        deployed.outbox,
    );
    let relaying = tokio::spawn(relay.run(cancel.clone()));
    eventually("the outbox sent", || async {
        let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        unsent == 0
    })
    .await;
    cancel.cancel();
    let _ = relaying.await;
    let peak_with_relay = status_kb("self", "VmHWM");
    let outbox_mb: i64 =
        sqlx::query_scalar("SELECT COALESCE(sum(length(payload)), 0)::bigint FROM outbox")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    // For comparison: the simulator's own peak (its store and bulk result files), which a process that hosts both
    // (the listings import bench) adds to the gateway's.
    let sim_peak = status_kb(&sim.0.id().to_string(), "VmHWM");

    let batches: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE type_name LIKE '%CatalogBatch'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    // Batches are cut at 250 products or 960 KiB, whichever comes first.
    assert!(batches as usize >= products.div_ceil(shopbridge_gateway::export::CATALOG_BATCH));
    println!(
        "export_memory: {products} products x {variants} variants ({} variants), 2 locations: resident before {} MB, \
         peak during the command {} MB (+{} MB), {:.1} s; peak once the relay (batch_size {batch_size}) \
         published the {} MB of events ({batches} batches): {} MB; the simulator's process peaked at {} MB",
        products * variants,
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024,
        elapsed.as_secs_f64(),
        outbox_mb / (1024 * 1024),
        peak_with_relay / 1024,
        sim_peak / 1024
    );
    nats.cleanup().await;
    db.drop_db().await;
}
