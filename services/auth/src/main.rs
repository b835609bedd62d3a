//! `shopbridge-auth`: the platform's `serve`/`migrate`/`print-config`/`print-defaults`, plus the operator commands
//! `bootstrap-admin`, `bootstrap-gateway`, `rotate-signing-key` and `rotate-encryption-key`. `--help` lists them all.

use std::{path::PathBuf, process::ExitCode};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use shopbridge_auth::{
    SPEC,
    commands::{self, AdminCommand},
};
use shopbridge_platform::cli::ServiceCommand;

#[derive(Debug, Parser)]
struct AuthCli {
    /// A settings file (TOML, YAML or JSON) layered over the built-in defaults; the environment
    /// (SHOPBRIDGE__<SECTION>__<KEY>) overrides both.
    #[arg(long, env = shopbridge_platform::config::CONFIG_FILE_ENV, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<AuthCommand>,
}

#[derive(Debug, Subcommand)]
enum AuthCommand {
    #[command(flatten)]
    Service(ServiceCommand),
    /// Create an administrator API client of tenant NAME (and the tenant if missing); prints its id and secret once.
    BootstrapAdmin {
        /// The tenant's name.
        #[arg(long, value_name = "NAME")]
        tenant: String,
    },
    /// Create shopify-gateway's service identity (tenant "system", scope credentials:read); prints its id and secret
    /// once, to be set as the gateway's service.auth.client_id and client_secret.
    BootstrapGateway,
    /// Retire the token signing key and make a new one; tokens it signed keep verifying until they expire.
    RotateSigningKey,
    /// Re-encrypt every stored secret with service.active_encryption_key (after adding a new key).
    RotateEncryptionKey,
}

fn main() -> ExitCode {
    let matches = AuthCli::command()
        .name(SPEC.binary)
        .about(SPEC.about)
        .try_get_matches()
        .and_then(|m| AuthCli::from_arg_matches(&m));
    let cli = match matches {
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
    let admin = match cli.command {
        None | Some(AuthCommand::Service(_)) => {
            return shopbridge_platform::cli::run(&SPEC, shopbridge_auth::build);
        }
        Some(AuthCommand::BootstrapAdmin { tenant }) => AdminCommand::BootstrapAdmin { tenant },
        Some(AuthCommand::BootstrapGateway) => AdminCommand::BootstrapGateway,
        Some(AuthCommand::RotateSigningKey) => AdminCommand::RotateSigningKey,
        Some(AuthCommand::RotateEncryptionKey) => AdminCommand::RotateEncryptionKey,
    };
    commands::run(admin, cli.config.as_deref())
}
