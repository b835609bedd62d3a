//! `shopify-sim --listen 127.0.0.1:PORT --client-id ID --client-secret SECRET [--seed-shop DOMAIN ...]`

use clap::Parser;
use shopify_sim::{Clock, Plan, SeedRequest, SimConfig, Simulator};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "shopify-sim", about = "Shopify Admin API simulator")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8787", env = "SHOPIFY_SIM_LISTEN")]
    listen: String,
    #[arg(long, default_value = "sim-client-id", env = "SHOPIFY_SIM_CLIENT_ID")]
    client_id: String,
    #[arg(
        long,
        default_value = "sim-client-secret",
        env = "SHOPIFY_SIM_CLIENT_SECRET"
    )]
    client_secret: String,
    /// Concurrent bulk operations per shop, all types together (5 as in API 2026-01+).
    #[arg(long, default_value_t = 5)]
    bulk_concurrency: usize,
    /// Start on a manual clock (moved with POST /_sim/clock/advance).
    #[arg(long)]
    manual_clock: bool,
    /// First webhook retry delay in milliseconds (doubles each retry).
    #[arg(long, default_value_t = 60_000)]
    webhook_retry_base_ms: u64,
    /// Write the test CA (PEM) that clients must trust for HTTPS to this path.
    #[arg(long)]
    ca_out: Option<std::path::PathBuf>,
    /// Create this shop at start and print its access token.
    #[arg(long)]
    seed_shop: Option<String>,
    #[arg(long, default_value = "standard")]
    plan: String,
    #[arg(long, default_value_t = 0)]
    products: usize,
    #[arg(long, default_value_t = 1)]
    variants_per_product: usize,
    #[arg(long, default_value_t = 1)]
    locations: usize,
    #[arg(long, default_value_t = 0)]
    orders: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let config = SimConfig {
        client_id: a.client_id.clone(),
        client_secret: a.client_secret.clone(),
        bulk_concurrency: a.bulk_concurrency,
        clock: if a.manual_clock {
            Clock::manual()
        } else {
            Clock::Real
        },
        webhook_retry_base: Duration::from_millis(a.webhook_retry_base_ms),
        ..SimConfig::default()
    };
    let handle = Simulator::start_on(config, &a.listen).await?;
    println!(
        "shopify-sim listening on {} (HTTP and HTTPS)",
        handle.base_url()
    );
    if let Some(path) = &a.ca_out {
        std::fs::write(path, shopify_sim::tls::CA_PEM)?;
        println!("test CA written to {}", path.display());
    }
    if let Some(domain) = &a.seed_shop {
        let plan =
            Plan::parse(&a.plan).ok_or_else(|| anyhow::anyhow!("unknown plan {}", a.plan))?;
        let (shop, token) = handle.sim.create_shop(domain, plan);
        let req = SeedRequest {
            products: a.products,
            variants_per_product: a.variants_per_product,
            locations: a.locations,
            orders: a.orders,
            seed: a.seed,
        };
        let mut st = shop.store.lock().unwrap();
        shopify_sim::seed::seed(&mut st, &req);
        st.events.clear();
        println!(
            "shop {domain} access_token {token} ({} products, {} variants)",
            st.products.len(),
            st.variants.len()
        );
    }
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
