//! The `shopbridge` operator CLI: a gRPC client of auth (channels), the scheduler (runs, logs, schedules) and
//! listings (settings, listings).
//!
//! - [`cli`]: the command line (clap);
//! - [`config`]: endpoints and credentials, from the config file and `SHOPBRIDGE_CLI_*` variables;
//! - [`client`]: connections, the access token and the interceptor that sends it;
//! - [`output`]: tables for humans, JSON for scripts;
//! - [`error`]: one-line errors that say what to do, and the exit codes;
//! - [`commands`]: one module per command.

pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod error;
pub mod names;
pub mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::{
    cli::{Cli, Command},
    client::Ctx,
    config::Config,
    error::{CliError, Exit},
};

/// Parses the command line, runs the command and turns its result into the process's exit code.
pub fn main() -> ExitCode {
    // clap prints its own usage errors and exits with 2 (help and version with 0).
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&CliError::other(format!("cannot start: {e}"))),
    };
    match runtime.block_on(run(cli)) {
        Ok(exit) => ExitCode::from(exit.code() as u8),
        Err(err) => fail(&err),
    }
}

fn fail(err: &CliError) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::from(err.exit.code() as u8)
}

async fn run(cli: Cli) -> Result<Exit, CliError> {
    let config_flag = cli.config.as_deref();
    // Configuration is loaded only by commands that talk to a server: `configure` must work on a broken file.
    let ctx = || Config::load(config_flag).map(|config| Ctx::new(config, cli.output));
    match cli.command {
        Command::Configure(args) => commands::configure::run(config_flag, args, cli.output),
        Command::Channels(cmd) => commands::channels::run(&ctx()?, cmd).await,
        Command::Settings(cmd) => commands::settings::run(&ctx()?, cmd).await,
        Command::Mapping(cmd) => commands::mapping::run(&ctx()?, cmd).await,
        Command::Run(args) => commands::run::run(&ctx()?, args).await,
        Command::Runs(args) => commands::runs::run(&ctx()?, args).await,
        Command::Logs(args) => commands::logs::run(&ctx()?, args).await,
        Command::Schedule(cmd) => commands::schedule::run(&ctx()?, cmd).await,
        Command::Listings(cmd) => commands::listings::run(&ctx()?, cmd).await,
        Command::Orders(cmd) => commands::orders::run(&ctx()?, cmd).await,
    }
}
