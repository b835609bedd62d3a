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

#[derive(Debug, Clone, Subcommand)]
pub enum ServiceCommand {
    /// Run the service until SIGTERM or SIGINT (the default).
    Serve,
    /// Apply the service's database migrations and exit.
    Migrate,
    /// Print the effective settings (secrets redacted) and exit.
    PrintConfig,
    /// Print the built-in defaults (every key the service reads, documented) and exit.
    PrintDefaults,
    /// Messages this service's consumers gave up on: list them, or replay one once its cause is fixed.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum DeadLetterCommand {
    /// The newest dead letters first: id, consumer, subject, message id, deliveries, when, reason.
    List {
        /// Only this consumer's (e.g. listings-gateway).
        #[arg(long)]
        consumer: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Publish dead letter ID again on its subject, with its headers and message id: the consumer that gave up on it
    /// applies it, the others find it in their inbox.
    Replay {
        id: i64,
        /// Replay it even though it was replayed before.
        #[arg(long)]
        again: bool,
    },
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
            ServiceCommand::DeadLetters(command) => {
                let pool = crate::db::connect(&settings.database).await?;
                dead_letters(spec, &settings, &pool, command).await
            }
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

/// `dead-letters list|replay`, printed for a person.
async fn dead_letters<S>(
    spec: &ServiceSpec,
    settings: &Settings<S>,
    pool: &sqlx::PgPool,
    command: DeadLetterCommand,
) -> anyhow::Result<()> {
    use crate::bus::dead_letters;
    match command {
        DeadLetterCommand::List { consumer, limit } => {
            let rows = dead_letters::list(pool, consumer.as_deref(), limit).await?;
            if rows.is_empty() {
                println!("no dead letters");
            }
            for row in rows {
                let replayed = row
                    .replayed_at
                    .map(|at| format!(" (replayed {})", at.format("%Y-%m-%d %H:%M:%SZ")))
                    .unwrap_or_default();
                println!(
                    "{id}  {consumer}  {subject}  msg {message}  {deliveries} deliveries  {at}{replayed}\n    {reason}",
                    id = row.id,
                    consumer = row.consumer,
                    subject = row.subject,
                    message = row.message_id.as_deref().unwrap_or("-"),
                    deliveries = row.deliveries,
                    at = row.recorded_at.format("%Y-%m-%d %H:%M:%SZ"),
                    reason = row.reason,
                );
            }
            Ok(())
        }
        DeadLetterCommand::Replay { id, again } => {
            let client = crate::bus::connect(&settings.nats, spec.binary).await?;
            let js = async_nats::jetstream::new(client);
            let namespace = crate::bus::Namespace::new(&settings.nats.namespace)?;
            match dead_letters::replay(pool, &js, &namespace, id, again).await? {
                Some(seq) => println!("dead letter {id} published again (stream sequence {seq})"),
                None => println!(
                    "dead letter {id}: JetStream took the replay for a duplicate; replay it --again"
                ),
            }
            Ok(())
        }
    }
}
