//! `shopbridge-nats-topology apply`: applies the JetStream topology (streams, consumers, key-value buckets) declared in
//! `deploy/nats/topology.yaml`, idempotently. Used by `make`, CI and the Helm chart's job.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use shopbridge_platform::bus::{Namespace, topology::Topology};

#[derive(Parser)]
#[command(
    name = "shopbridge-nats-topology",
    about = "Apply Shopbridge's JetStream topology (idempotent)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create missing streams, consumers and buckets; update those whose settings differ.
    Apply {
        /// The topology file; the copy embedded at build time when omitted.
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:54222")]
        nats_url: String,
        /// Prefix for every subject and name (nats.namespace of the services).
        #[arg(long, env = "SHOPBRIDGE__NATS__NAMESPACE", default_value = "")]
        namespace: String,
        /// NATS credentials file.
        #[arg(long, env = "SHOPBRIDGE__NATS__CREDENTIALS_FILE", default_value = "")]
        credentials_file: String,
    },
    /// Check the topology file and print what it declares, without connecting.
    Check {
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

fn load(file: Option<PathBuf>) -> anyhow::Result<Topology> {
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            Topology::parse(&text)
        }
        None => Ok(Topology::embedded()),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check { file } => {
            let topology = load(file)?;
            println!(
                "{} streams, {} consumers, {} key-value buckets",
                topology.streams.len(),
                topology.expanded_consumers().len(),
                topology.key_value.len()
            );
            Ok(())
        }
        Command::Apply {
            file,
            nats_url,
            namespace,
            credentials_file,
        } => {
            let topology = load(file)?;
            let namespace = Namespace::new(&namespace)?;
            let settings = shopbridge_platform::config::NatsSettings {
                url: nats_url,
                namespace: String::new(),
                credentials_file,
                connect_timeout_secs: 5,
            };
            let client =
                shopbridge_platform::bus::connect(&settings, "shopbridge-nats-topology").await?;
            let js = async_nats::jetstream::new(client);
            let report = topology.apply(&js, &namespace).await?;
            println!("topology applied: {report}");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    shopbridge_platform::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shopbridge-nats-topology: {e:#}");
            ExitCode::FAILURE
        }
    }
}
