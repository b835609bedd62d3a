//! The command line every service binary shares: `serve` (default), `migrate`, `print-config`, and `--config FILE`.

use std::{future::Future, path::PathBuf, process::ExitCode};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Settings,
    service::{Application, ServiceSpec},
};

#[derive(Debug, Parser)]
pub struct ServiceCli {
    /// A settings file (TOML, YAML or JSON) layered over the built-in defaults; the environment
    /// (SHOPBRIDGE__<SECTION>__<KEY>) overrides both.
    #[arg(long, env = crate::config::CONFIG_FILE_ENV, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<ServiceCommand>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ServiceCommand {
    /// Run the service until SIGTERM or SIGINT (the default).
    Serve,
    /// Apply the service's database migrations and exit.
    Migrate,
    /// Print the effective settings (secrets redacted) and exit.
    PrintConfig,
    /// Print the built-in defaults (every key the service reads, documented) and exit.
    PrintDefaults,
}

/// A start refused because the configuration does not fit the service's stored state (e.g. auth's encryption keys
/// do not decrypt what its database holds): the binary exits 78 (EX_CONFIG), like an invalid setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigMismatch(pub String);

/// The whole `main` of a service binary.
pub fn run<S, F, Fut>(spec: &'static ServiceSpec, build: F) -> ExitCode
where
    S: DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: FnOnce(Settings<S>) -> Fut,
    Fut: Future<Output = anyhow::Result<Application>>,
{
    let command = ServiceCli::command().name(spec.binary).about(spec.about);
    let cli = match command
        .try_get_matches()
        .and_then(|m| ServiceCli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let command = cli.command.unwrap_or(ServiceCommand::Serve);
    if let ServiceCommand::PrintDefaults = command {
        print!("{}", spec.defaults);
        return ExitCode::SUCCESS;
    }
    let settings: Settings<S> = match crate::config::load(spec.defaults, cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{}: invalid configuration: {e}", spec.binary);
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    if let ServiceCommand::PrintConfig = command {
        println!("{settings:#?}");
        return ExitCode::SUCCESS;
    }
    crate::install_crypto_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", spec.binary);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let _telemetry = crate::telemetry::init(spec.name, &settings.telemetry)?;
        match command {
            ServiceCommand::Migrate => {
                let pool = crate::db::connect(&settings.database).await?;
                crate::db::migrate(&pool, spec.migrator).await?;
                tracing::info!(service = spec.name, "migrations applied");
                Ok(())
            }
            _ => {
                let app = build(settings).await?;
                app.run_until_stopped(shutdown_on_signal()).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "{} failed", spec.binary);
            eprintln!("{}: {e:#}", spec.binary);
            if e.downcast_ref::<ConfigMismatch>().is_some() {
                ExitCode::from(78) // EX_CONFIG
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A token cancelled on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {
                tracing::info!("SIGTERM received")
            }
        }
        cancel.cancel();
    });
    token
}
