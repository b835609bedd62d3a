//! The CLI's configuration: the services' gRPC endpoints and the API client's credentials.
//!
//! Layers, later wins: built-in defaults (the local ports of `services/*/config/default.toml`), the config file
//! (`--config`, else `SHOPBRIDGE_CLI_CONFIG`, else `$XDG_CONFIG_HOME/shopbridge/cli.toml`, else
//! `~/.config/shopbridge/cli.toml`; a missing file is fine), then `SHOPBRIDGE_CLI_*` environment variables. The
//! services' own `SHOPBRIDGE__X__Y` variables are deliberately a different form, so a shell configured for a service
//! does not reconfigure the CLI.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::CliError;

pub const CONFIG_ENV: &str = "SHOPBRIDGE_CLI_CONFIG";
pub const AUTH_URL_ENV: &str = "SHOPBRIDGE_CLI_AUTH_URL";
pub const SCHEDULER_URL_ENV: &str = "SHOPBRIDGE_CLI_SCHEDULER_URL";
pub const LISTINGS_URL_ENV: &str = "SHOPBRIDGE_CLI_LISTINGS_URL";
pub const ORDERS_URL_ENV: &str = "SHOPBRIDGE_CLI_ORDERS_URL";
pub const CLIENT_ID_ENV: &str = "SHOPBRIDGE_CLI_CLIENT_ID";
pub const CLIENT_SECRET_ENV: &str = "SHOPBRIDGE_CLI_CLIENT_SECRET";

/// The gRPC listen addresses in the services' built-in defaults.
pub const DEFAULT_AUTH_URL: &str = "http://127.0.0.1:50051";
pub const DEFAULT_LISTINGS_URL: &str = "http://127.0.0.1:50052";
pub const DEFAULT_ORDERS_URL: &str = "http://127.0.0.1:50053";
pub const DEFAULT_SCHEDULER_URL: &str = "http://127.0.0.1:50055";

/// The file as written by `shopbridge configure`; every key is optional.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default, skip_serializing_if = "Endpoints::is_empty")]
    pub endpoints: Endpoints,
    #[serde(default, skip_serializing_if = "Credentials::is_empty")]
    pub credentials: Credentials,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// auth's gRPC URL, e.g. "http://127.0.0.1:50051".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listings: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<String>,
}

impl Endpoints {
    fn is_empty(&self) -> bool {
        self.auth.is_none()
            && self.scheduler.is_none()
            && self.listings.is_none()
            && self.orders.is_none()
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Plain in the file (which is 0600), like a kubeconfig; never printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl Credentials {
    fn is_empty(&self) -> bool {
        self.client_id.is_none() && self.client_secret.is_none()
    }
}

/// The effective configuration of one invocation.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub auth_url: String,
    pub scheduler_url: String,
    pub listings_url: String,
    pub orders_url: String,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
}

/// Where the config file is: the flag, else the environment variable, else the XDG location.
pub fn config_path(flag: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(path) = flag {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = non_empty_env(CONFIG_ENV) {
        return Ok(PathBuf::from(path));
    }
    let base = match non_empty_env("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => match non_empty_env("HOME") {
            Some(home) => Path::new(&home).join(".config"),
            None => {
                return Err(CliError::usage(format!(
                    "cannot tell where the config file is (neither XDG_CONFIG_HOME nor HOME is set): pass \
                     --config FILE or set {CONFIG_ENV}"
                )));
            }
        },
    };
    Ok(base.join("shopbridge").join("cli.toml"))
}

/// Reads the file if it exists.
pub fn read_file(path: &Path) -> Result<FileConfig, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
        Err(e) => {
            return Err(CliError::other(format!(
                "cannot read the config file {}: {e}",
                path.display()
            )));
        }
    };
    toml::from_str(&text).map_err(|e| {
        CliError::usage(format!(
            "the config file {} is invalid: {}; fix it, or delete it and run `shopbridge configure` again",
            path.display(),
            e.message()
        ))
    })
}

/// Writes the file (creating its directory), readable by its owner alone since it holds the client secret.
pub fn write_file(path: &Path, file: &FileConfig) -> Result<(), CliError> {
    let fail = |e: std::io::Error| {
        CliError::other(format!(
            "cannot write the config file {}: {e}",
            path.display()
        ))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let text = toml::to_string(file)
        .map_err(|e| CliError::other(format!("cannot encode the config: {e}")))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file keeps its mode on open: tighten it before the secret goes in.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
        }
    }
    let mut out = options.open(path).map_err(fail)?;
    out.write_all(
        b"# shopbridge CLI configuration, written by `shopbridge configure`. Holds a secret: keep it 0600.\n",
    )
    .map_err(fail)?;
    out.write_all(text.as_bytes()).map_err(fail)?;
    Ok(())
}

impl Config {
    /// Defaults, then the file, then the environment.
    pub fn load(flag: Option<&Path>) -> Result<Self, CliError> {
        let path = config_path(flag)?;
        let file = read_file(&path)?;
        let pick = |env: &str, from_file: Option<String>, default: &str| {
            non_empty_env(env)
                .or(from_file)
                .unwrap_or_else(|| default.to_string())
        };
        let config = Self {
            auth_url: pick(AUTH_URL_ENV, file.endpoints.auth, DEFAULT_AUTH_URL),
            scheduler_url: pick(
                SCHEDULER_URL_ENV,
                file.endpoints.scheduler,
                DEFAULT_SCHEDULER_URL,
            ),
            listings_url: pick(
                LISTINGS_URL_ENV,
                file.endpoints.listings,
                DEFAULT_LISTINGS_URL,
            ),
            orders_url: pick(ORDERS_URL_ENV, file.endpoints.orders, DEFAULT_ORDERS_URL),
            client_id: non_empty_env(CLIENT_ID_ENV).or(file.credentials.client_id),
            client_secret: non_empty_env(CLIENT_SECRET_ENV)
                .or(file.credentials.client_secret)
                .map(SecretString::from),
            path,
        };
        Ok(config)
    }

    /// The credentials, or an error saying how to set them.
    pub fn credentials(&self) -> Result<(&str, &SecretString), CliError> {
        match (&self.client_id, &self.client_secret) {
            (Some(id), Some(secret)) if !secret.expose_secret().is_empty() => Ok((id, secret)),
            _ => Err(CliError::new(
                crate::error::Exit::Unauthenticated,
                format!(
                    "no API client credentials configured: run `shopbridge configure --client-id ID \
                     --client-secret-stdin` (or set {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV})"
                ),
            )),
        }
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Checks a gRPC URL early, so a typo is a usage error and not "unreachable".
pub fn check_url(name: &str, url: &str) -> Result<(), CliError> {
    if url.starts_with("https://") {
        // tonic is built without TLS in this workspace (one TLS stack, none needed in-cluster).
        return Err(CliError::usage(format!(
            "the {name} URL `{url}` uses TLS, which this build of the CLI does not speak: reach the service over              http, e.g. through `kubectl port-forward`, and set `shopbridge configure --{name}-url http://...`"
        )));
    }
    match url.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(CliError::usage(format!(
            "the {name} URL `{url}` is not a URL like http://127.0.0.1:50051: fix it with `shopbridge configure \
             --{name}-url URL`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_rejects_unknown_keys() {
        let file = FileConfig {
            endpoints: Endpoints {
                auth: Some("http://a:1".into()),
                ..Default::default()
            },
            credentials: Credentials {
                client_id: Some("id".into()),
                client_secret: Some("s3cret".into()),
            },
        };
        let text = toml::to_string(&file).unwrap();
        let back: FileConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.endpoints.auth.as_deref(), Some("http://a:1"));
        assert_eq!(back.credentials.client_secret.as_deref(), Some("s3cret"));
        assert!(toml::from_str::<FileConfig>("[endpoints]\nauht = \"x\"\n").is_err());
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("auth", "http://127.0.0.1:50051").is_ok());
        assert!(check_url("auth", "https://auth.example:443").is_err());
        assert!(check_url("auth", "127.0.0.1:50051").is_err());
        assert!(check_url("auth", "http://").is_err());
    }
}
