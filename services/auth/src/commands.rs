//! Operator subcommands of `shopbridge-auth` beyond the platform's `serve`/`migrate`/`print-config`/`print-defaults`:
//! they run once against the service's database and exit.

use std::{path::Path, process::ExitCode, sync::Arc};

use secrecy::ExposeSecret;
use shopbridge_platform::db;

use crate::{
    SPEC, Settings, channels::reencrypt_all, clients, crypto::Encryptor, signing::SigningKeys,
    warn_if_development_key,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// Create an administrator API client (and the tenant, if missing); the secret is printed once.
    BootstrapAdmin { tenant: String },
    /// Create shopify-gateway's service identity (scope `credentials:read`); the secret is printed once.
    BootstrapGateway,
    /// Retire the signing key and make a new one; old tokens keep verifying until they expire.
    RotateSigningKey,
    /// Re-encrypt every stored secret with `service.active_encryption_key`.
    RotateEncryptionKey,
}

/// Runs `command` with the settings from the defaults, `config_file` and the environment; the whole `main` of a
/// subcommand.
pub fn run(command: AdminCommand, config_file: Option<&Path>) -> ExitCode {
    let settings: Settings = match shopbridge_platform::config::load(SPEC.defaults, config_file) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{}: invalid configuration: {e}", SPEC.binary);
            return ExitCode::from(78);
        }
    };
    shopbridge_platform::install_crypto_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", SPEC.binary);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let _telemetry = shopbridge_platform::telemetry::init(SPEC.name, &settings.telemetry)?;
        execute(command, &settings).await
    });
    match result {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e:#}", SPEC.binary);
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` and returns what it prints.
pub async fn execute(command: AdminCommand, settings: &Settings) -> anyhow::Result<String> {
    let encryptor = Arc::new(Encryptor::from_settings(&settings.service)?);
    warn_if_development_key(&encryptor);
    let pool = db::connect(&settings.database).await?;
    if settings.database.migrate_on_start {
        db::migrate(&pool, SPEC.migrator).await?;
    } else {
        db::ensure_migrated(&pool, SPEC.migrator).await?;
    }
    let keys = SigningKeys::new(
        pool.clone(),
        encryptor.clone(),
        settings.service.signing_key_grace(),
    );
    let output = match command {
        AdminCommand::BootstrapAdmin { tenant } => {
            keys.ensure_active().await?;
            let client =
                clients::bootstrap_admin(&pool, &tenant, settings.service.pbkdf2_iterations)
                    .await?;
            format!(
                "tenant_id: {}\nclient_id: {}\nclient_secret: {}\nscopes: {}\n\
                 The secret is shown only this once: store it in your secret manager now.\n",
                client.tenant_id,
                client.client_id,
                client.client_secret.expose_secret(),
                client.scopes.join(" ")
            )
        }
        AdminCommand::BootstrapGateway => {
            keys.ensure_active().await?;
            let client =
                clients::bootstrap_gateway(&pool, settings.service.pbkdf2_iterations).await?;
            format!(
                "client_id: {}\nclient_secret: {}\nscopes: {}\n\
                 Set them as the gateway's SHOPBRIDGE__SERVICE__AUTH__CLIENT_ID and \
                 SHOPBRIDGE__SERVICE__AUTH__CLIENT_SECRET; the secret is shown only this once.\n",
                client.client_id,
                client.client_secret.expose_secret(),
                client.scopes.join(" ")
            )
        }
        AdminCommand::RotateSigningKey => {
            keys.ensure_active().await?;
            let (kid, retiring) = keys.rotate().await?;
            format!(
                "new signing key: {kid}\nstill published until their tokens expire: {}\n",
                if retiring.is_empty() {
                    "none".to_string()
                } else {
                    retiring.join(", ")
                }
            )
        }
        AdminCommand::RotateEncryptionKey => {
            let count = reencrypt_all(&pool, &encryptor).await?;
            format!(
                "re-encrypted {count} stored secrets with key `{}`\n",
                encryptor.active_kid()
            )
        }
    };
    pool.close().await;
    Ok(output)
}
