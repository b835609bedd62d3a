//! The shopify-gateway service: the only process that talks to Shopify. By concern:
//! - [`shopify`]: talking to Shopify: HTTP, each shop's cost budget, the one executor, the GraphQL documents in
//!   `graphql/` and their typed variables and answers;
//! - [`bulk`]: bulk operations (start once, poll, query results, mutations and their uploads);
//! - [`operations`]: what commands ask for, one per module (catalog, inventory, orders, fulfillments, webhook
//!   subscriptions, access for auth);
//! - [`partitions`]: which replica serves which shops (leases) and how many commands run at once (in flight);
//! - [`commands`]: the bus handler: credentials, dispatch to an operation, results;
//! - [`webhooks`] and [`channel_webhooks`]: verified webhooks in, subscriptions for newly active channels.

pub mod bulk;
pub mod channel_webhooks;
pub mod commands;
pub mod operations;
pub mod outcome;
pub mod partitions;
pub mod retention;
pub mod shopify;
pub mod webhooks;

use std::{sync::Arc, time::Duration};

use secrecy::SecretString;
use serde::Deserialize;
use shopbridge_platform::{
    auth_token::{TokenVerifier, VerifierSettings},
    grpc::auth_interceptor,
    service::{Application, Runtime, ServiceParts, ServiceSpec},
};
use shopbridge_proto::gateway::shopify_access_service_server::ShopifyAccessServiceServer;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/gateway");

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "gateway",
    binary: "shopbridge-gateway",
    about: "Shopbridge gateway service: the only door to Shopify: per-shop cost budget, GraphQL commands, bulk operations, webhooks",
    defaults: include_str!("../config/default.toml"),
    migrator: &MIGRATOR,
};

/// The `[service]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    pub shopify: shopify::ShopifySettings,
    pub budget: BudgetSection,
    pub retry: shopify::executor::RetrySettings,
    pub webhooks: WebhookSettings,
    pub auth: commands::credentials::AuthSettings,
    pub leases: partitions::leases::LeaseSettings,
    pub access: operations::access::AccessSettings,
    /// Who may call the gateway's gRPC services: tokens signed by auth, verified with its published keys.
    pub tokens: VerifierSettings,
    /// Catalog writes (product upserts, metafields): when they go as a bulk mutation.
    pub catalog: operations::catalog::CatalogSettings,
    pub commands: CommandsSection,
    pub retention: retention::RetentionSettings,
}

/// The `[service.commands]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsSection {
    /// Commands running at once in this replica, across every consumer; 0 for no bound.
    pub max_running: usize,
    /// A running command's claim whose heartbeat is older than this many seconds is taken over by its next delivery.
    pub claim_takeover_secs: u64,
}

/// How often the gateway refetches auth's published keys (a token signed by a key it does not know also triggers a
/// fetch).
const TOKEN_KEYS_REFRESH: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSection {
    pub max_in_flight_per_shop: usize,
    pub start_maximum: f64,
    pub start_restore_rate: f64,
}

impl From<&BudgetSection> for shopify::budget::BudgetSettings {
    fn from(s: &BudgetSection) -> Self {
        Self {
            max_in_flight_per_shop: s.max_in_flight_per_shop,
            start_maximum: s.start_maximum,
            start_restore_rate: s.start_restore_rate,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub client_secret: SecretString,
    pub previous_client_secret: SecretString,
    /// Where Shopify delivers this deployment's webhooks; empty: channels get no subscriptions.
    pub callback_url: String,
    /// Topics subscribed for every channel that becomes active.
    pub topics: Vec<String>,
}

pub type Settings = shopbridge_platform::config::Settings<ServiceSettings>;

/// The executor a service instance uses for every Shopify call.
pub fn executor(settings: &ServiceSettings) -> anyhow::Result<shopify::executor::Executor> {
    let http = shopify::ShopifyHttp::new(settings.shopify.clone())?;
    Ok(shopify::executor::Executor::new(
        http,
        shopify::budget::Budget::new((&settings.budget).into()),
        settings.retry.clone(),
    ))
}

pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let runtime = Runtime::start(&SPEC, &settings).await?;
    let hooks = &settings.service.webhooks;
    if secrecy::ExposeSecret::expose_secret(&hooks.client_secret).is_empty() {
        tracing::warn!(
            "service.webhooks.client_secret is empty: every webhook will be refused with 401"
        );
    }
    let webhook_state = webhooks::WebhookState {
        pool: runtime.pool.clone(),
        secrets: Arc::new(vec![
            hooks.client_secret.clone(),
            hooks.previous_client_secret.clone(),
        ]),
    };
    let mut parts = ServiceParts::default().http_routes(webhooks::router(webhook_state));
    let (pool, retention) = (runtime.pool.clone(), settings.service.retention.clone());
    parts = parts.task("gateway-retention", move |cancel| {
        retention::run(pool, retention, cancel)
    });
    // One executor (so one budget per shop) for the commands and for auth's token verifications.
    let executor = Arc::new(executor(&settings.service)?);
    parts = access_service(&settings.service, executor.clone(), parts)?;
    if settings.service.auth.client_id.is_empty() {
        tracing::warn!(
            "service.auth.client_id is empty: commands are not consumed (run `shopbridge-auth bootstrap-gateway`)"
        );
    } else {
        parts = command_consumers(&runtime, &settings, executor, parts)?;
        parts = channel_webhooks_consumer(&runtime, hooks, parts);
    }
    Ok(Application::new(runtime, parts))
}

/// Registers the configured webhooks of every channel that becomes active (consumer `gateway-channels`).
fn channel_webhooks_consumer(
    runtime: &Runtime,
    hooks: &WebhookSettings,
    parts: ServiceParts,
) -> ServiceParts {
    if hooks.callback_url.trim().is_empty() {
        tracing::warn!(
            "service.webhooks.callback_url is empty: connected stores get no webhook subscriptions \
             (app/uninstalled will not disconnect their channels)"
        );
        return parts;
    }
    let runner = shopbridge_platform::bus::ConsumerRunner::new(
        runtime.pool.clone(),
        runtime.js.clone(),
        runtime.namespace.clone(),
        "EVENTS",
        "gateway-channels",
        channel_webhooks::ChannelWebhooks {
            subscriptions: channel_webhooks::Subscriptions {
                callback_url: hooks.callback_url.trim().to_string(),
                topics: hooks.topics.clone(),
            },
        },
        runtime.consumer.clone(),
    );
    parts.task("channels-consumer", move |cancel| runner.run(cancel))
}

/// `ShopifyAccessService` for auth, behind tokens verified with auth's keys (refreshed in the background).
fn access_service(
    settings: &ServiceSettings,
    executor: Arc<shopify::executor::Executor>,
    mut parts: ServiceParts,
) -> anyhow::Result<ServiceParts> {
    if settings.access.client_id.trim().is_empty() {
        tracing::warn!(
            "service.access.client_id is empty: OAuth code exchanges and token refreshes are refused"
        );
    }
    let verifier = TokenVerifier::from_settings(&settings.tokens)
        .map_err(|e| anyhow::anyhow!("configuration key `service.tokens.jwks_url`: {e}"))?;
    let service = operations::access::AccessService::new(
        settings.shopify.clone(),
        &settings.access,
        settings.webhooks.client_secret.clone(),
        executor,
    )?;
    let authenticator: Arc<dyn shopbridge_platform::grpc::Authenticator> =
        Arc::new(verifier.clone());
    parts.grpc = parts
        .grpc
        .add_service(ShopifyAccessServiceServer::with_interceptor(
            service,
            auth_interceptor(authenticator),
        ));
    Ok(parts.task("token-keys", move |cancel| {
        verifier.refresh_periodically(TOKEN_KEYS_REFRESH, cancel)
    }))
}

/// The command consumers, started per partition by the partition manager for the partitions this replica holds.
fn command_consumers(
    runtime: &Runtime,
    settings: &Settings,
    executor: Arc<shopify::executor::Executor>,
    parts: ServiceParts,
) -> anyhow::Result<ServiceParts> {
    let fence = partitions::leases::Leases::new(&settings.service.leases);
    let handler = Arc::new(
        commands::CommandHandler::new(
            executor,
            Arc::new(commands::credentials::AuthCredentials::new(
                settings.service.auth.clone(),
            )?),
            runtime.pool.clone(),
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(300))
                .build()?,
            Some(fence.clone()),
        )
        .with_settings(commands::CommandSettings::from_service(&settings.service)),
    );
    let spawner = partition_spawner(runtime, handler);
    let js = runtime.js.clone();
    let bucket = runtime.namespace.resource("gateway-leases");
    let lease_settings = settings.service.leases.clone();
    Ok(parts.task("partition-manager", move |cancel| async move {
        let kv = js.get_key_value(&bucket).await.map_err(|e| {
            anyhow::anyhow!("key-value bucket {bucket} is missing (apply the NATS topology): {e}")
        })?;
        partitions::leases::PartitionManager::new(kv, lease_settings, fence, spawner)
            .run(cancel)
            .await
    }))
}

/// Starts one consumer per lane of a partition, sharing one handler (one executor, so one budget per shop).
pub fn partition_spawner(
    runtime: &Runtime,
    handler: Arc<commands::CommandHandler>,
) -> partitions::leases::Spawner {
    let (pool, js, namespace, consumer) = (
        runtime.pool.clone(),
        runtime.js.clone(),
        runtime.namespace.clone(),
        runtime.consumer.clone(),
    );
    spawner(pool, js, namespace, consumer, handler)
}

/// [`partition_spawner`] from its parts (tests run several replicas in one process).
pub fn spawner(
    pool: sqlx::PgPool,
    js: async_nats::jetstream::Context,
    namespace: shopbridge_platform::bus::Namespace,
    consumer: shopbridge_platform::config::ConsumerSettings,
    handler: Arc<commands::CommandHandler>,
) -> partitions::leases::Spawner {
    use shopbridge_platform::bus::{ConsumerRunner, names::partition_token};
    Arc::new(move |partition, cancel| {
        ["orders", "sync", "publish", "import"]
            .into_iter()
            .map(|lane| {
                let runner = ConsumerRunner::new(
                    pool.clone(),
                    js.clone(),
                    namespace.clone(),
                    "GATEWAY_COMMANDS",
                    &format!("gateway-{}-{lane}", partition_token(partition)),
                    handler.clone(),
                    consumer.clone(),
                );
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    if let Err(e) = runner.run(cancel).await {
                        tracing::error!(partition, lane, error = %format!("{e:#}"), "command consumer failed");
                    }
                })
            })
            .collect()
    })
}
