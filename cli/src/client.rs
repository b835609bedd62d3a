//! Connections to the services and the access token every call carries.
//!
//! Each invocation exchanges the configured client credentials for an access token at auth's
//! `TokenService.IssueToken` (once, re-issued only if it expires while the CLI runs, e.g. a long `run --wait`) and
//! sends it as `authorization: Bearer <token>` on every call. Neither the secret nor the token is ever printed.
//! Connections are lazy: a server that cannot be reached shows up at the first call as UNAVAILABLE, which
//! [`CliError::from_status`] turns into exit code 6 naming the service and its URL.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use secrecy::{ExposeSecret, SecretString};
use shopbridge_proto::{
    auth::{
        IssueTokenRequest, channel_service_client::ChannelServiceClient,
        token_service_client::TokenServiceClient,
    },
    listings::listings_service_client::ListingsServiceClient,
    orders::orders_service_client::OrdersServiceClient,
    scheduler::scheduler_service_client::SchedulerServiceClient,
};
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

use crate::{
    config::{Config, check_url},
    error::{CallExt, CliError},
    output::Format,
};

/// A service the CLI talks to, named in errors.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub service: &'static str,
    pub url: String,
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

struct Token {
    header: MetadataValue<Ascii>,
    renew_at: Instant,
}

/// What every command gets: the configuration, the output format and authenticated clients.
pub struct Ctx {
    pub config: Config,
    pub format: Format,
    pub auth: Endpoint,
    pub scheduler: Endpoint,
    pub listings: Endpoint,
    pub orders: Endpoint,
    token: Mutex<Option<Token>>,
    /// One connection per service, shared by its clients.
    connections: Mutex<HashMap<&'static str, Channel>>,
}

/// A dead connection is noticed within about this long (HTTP/2 keepalive), also during a long `run --wait`.
const KEEPALIVE: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Ctx {
    pub fn new(config: Config, format: Format) -> Self {
        Self {
            auth: Endpoint {
                service: "auth",
                url: config.auth_url.clone(),
            },
            scheduler: Endpoint {
                service: "scheduler",
                url: config.scheduler_url.clone(),
            },
            listings: Endpoint {
                service: "listings",
                url: config.listings_url.clone(),
            },
            orders: Endpoint {
                service: "orders",
                url: config.orders_url.clone(),
            },
            config,
            format,
            token: Mutex::new(None),
            connections: Mutex::new(HashMap::new()),
        }
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    pub async fn channels(&self) -> Result<ChannelServiceClient<Authed>, CliError> {
        let (channel, bearer) = self.authed(&self.auth).await?;
        Ok(ChannelServiceClient::with_interceptor(channel, bearer))
    }

    pub async fn scheduler(&self) -> Result<SchedulerServiceClient<Authed>, CliError> {
        let (channel, bearer) = self.authed(&self.scheduler).await?;
        Ok(SchedulerServiceClient::with_interceptor(channel, bearer))
    }

    pub async fn orders(&self) -> Result<OrdersServiceClient<Authed>, CliError> {
        let (channel, bearer) = self.authed(&self.orders).await?;
        Ok(OrdersServiceClient::with_interceptor(channel, bearer))
    }

    pub async fn listings(&self) -> Result<ListingsServiceClient<Authed>, CliError> {
        let (channel, bearer) = self.authed(&self.listings).await?;
        Ok(ListingsServiceClient::with_interceptor(channel, bearer))
    }

    async fn authed(&self, endpoint: &Endpoint) -> Result<(Channel, Bearer), CliError> {
        let channel = self.connection(endpoint)?;
        let bearer = self.bearer().await?;
        Ok((channel, bearer))
    }

    /// The current token, issued on first use and again once it is about to expire.
    async fn bearer(&self) -> Result<Bearer, CliError> {
        if let Some(token) = self.token.lock().expect("token lock").as_ref()
            && Instant::now() < token.renew_at
        {
            return Ok(Bearer(token.header.clone()));
        }
        let (client_id, secret) = self.config.credentials()?;
        let issued = TokenServiceClient::new(self.connection(&self.auth)?)
            .issue_token(IssueTokenRequest {
                client_id: client_id.to_string(),
                client_secret: secret.expose_secret().to_string(),
            })
            .await
            .or_fail(&self.auth)?;
        let token = SecretString::from(issued.access_token);
        let mut header: MetadataValue<Ascii> = format!("Bearer {}", token.expose_secret())
            .parse()
            .map_err(|_| CliError::other("auth issued a token that is not ASCII"))?;
        header.set_sensitive(true);
        // Renew a little early so a call never leaves with a token that expires on the way.
        let lifetime =
            Duration::from_secs(issued.expires_in).saturating_sub(Duration::from_secs(30));
        *self.token.lock().expect("token lock") = Some(Token {
            header: header.clone(),
            renew_at: Instant::now() + lifetime,
        });
        Ok(Bearer(header))
    }
}

impl Ctx {
    fn connection(&self, endpoint: &Endpoint) -> Result<Channel, CliError> {
        let mut connections = self.connections.lock().expect("connections lock");
        if let Some(channel) = connections.get(endpoint.service) {
            return Ok(channel.clone());
        }
        let channel = connect(endpoint)?;
        connections.insert(endpoint.service, channel.clone());
        Ok(channel)
    }
}

/// A lazy channel to `endpoint` (no I/O until the first call).
pub fn connect(endpoint: &Endpoint) -> Result<Channel, CliError> {
    check_url(endpoint.service, &endpoint.url)?;
    let channel = tonic::transport::Endpoint::from_shared(endpoint.url.clone())
        .map_err(|e| {
            CliError::usage(format!(
                "the {} URL `{}` is invalid ({e}): fix it with `shopbridge configure --{}-url URL`",
                endpoint.service, endpoint.url, endpoint.service
            ))
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(Some(KEEPALIVE))
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(CONNECT_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect_lazy();
    Ok(channel)
}
