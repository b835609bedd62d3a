//! `shopbridge configure`: writes the endpoints and credentials given to the config file, then shows what is in
//! effect (with the environment applied). The secret is never shown, only whether one is set.

use std::path::Path;

use secrecy::ExposeSecret;
use serde::Serialize;

use crate::{
    cli::ConfigureArgs,
    config::{Config, check_url, config_path, read_file, write_file},
    error::{CliError, Exit},
    output::{self, Format},
};

#[derive(Serialize)]
struct ConfigView {
    config_file: String,
    written: bool,
    auth_url: String,
    scheduler_url: String,
    listings_url: String,
    orders_url: String,
    client_id: Option<String>,
    client_secret_set: bool,
}

pub fn run(flag: Option<&Path>, args: ConfigureArgs, format: Format) -> Result<Exit, CliError> {
    let path = config_path(flag)?;
    let mut file = read_file(&path)?;
    let secret = if args.client_secret_stdin {
        let secret = super::read_stdin("the client secret")?.trim().to_string();
        if secret.is_empty() {
            return Err(CliError::usage(
                "standard input held no client secret: pipe it in, e.g. `shopbridge configure --client-secret-stdin < secret.txt`",
            ));
        }
        Some(secret)
    } else {
        args.client_secret
    };
    let mut written = false;
    for (name, value, slot) in [
        ("auth", args.auth_url, &mut file.endpoints.auth),
        (
            "scheduler",
            args.scheduler_url,
            &mut file.endpoints.scheduler,
        ),
        ("listings", args.listings_url, &mut file.endpoints.listings),
        ("orders", args.orders_url, &mut file.endpoints.orders),
    ] {
        if let Some(url) = value {
            let url = url.trim().trim_end_matches('/').to_string();
            check_url(name, &url)?;
            *slot = Some(url);
            written = true;
        }
    }
    if let Some(id) = args.client_id {
        file.credentials.client_id = Some(id.trim().to_string());
        written = true;
    }
    if let Some(secret) = secret {
        file.credentials.client_secret = Some(secret);
        written = true;
    }
    if written {
        write_file(&path, &file)?;
    }

    let config = Config::load(Some(&path))?;
    let view = ConfigView {
        config_file: path.display().to_string(),
        written,
        auth_url: config.auth_url,
        scheduler_url: config.scheduler_url,
        listings_url: config.listings_url,
        orders_url: config.orders_url,
        client_id: config.client_id,
        client_secret_set: config
            .client_secret
            .is_some_and(|s| !s.expose_secret().is_empty()),
    };
    if format == Format::Json {
        output::json(&view)?;
    } else {
        if written {
            eprintln!("wrote {}", view.config_file);
        }
        output::fields(&[
            ("config file", view.config_file.clone()),
            ("auth", view.auth_url.clone()),
            ("scheduler", view.scheduler_url.clone()),
            ("listings", view.listings_url.clone()),
            ("orders", view.orders_url.clone()),
            (
                "client id",
                view.client_id.clone().unwrap_or_else(|| "(not set)".into()),
            ),
            (
                "client secret",
                if view.client_secret_set {
                    "(set, hidden)".into()
                } else {
                    "(not set)".into()
                },
            ),
        ])?;
    }
    Ok(Exit::Ok)
}
