//! Commands from the bus: each `Command` is run through the executor and answered with one `CommandResult` event,
//! written to the outbox in the transaction that records the command as done. A command id seen before (a re-sent
//! command, or one redelivered after a crash) publishes nothing new; its Shopify calls are safe to send again (inventory
//! writes carry `@idempotent` keys derived from the command id, see `idempotency`; the other writes set absolute values
//! or are read back first), so a crash between the calls and the commit never applies a call twice.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use secrecy::SecretString;
use shopbridge_platform::bus::{Envelope, Handler, HandlerError, OutboxMessage, outbox};
use shopbridge_proto::gateway::{self as pb, command::Operation as Op, command_result::Status};
use sqlx::{Postgres, Transaction};

use crate::{
    budget::Lane,
    catalog_writes, documents,
    executor::{CallError, Executor, Operation, ShopCredentials},
    in_flight::{InFlight, ReplicaLimit},
    ops,
    shopify::FatalKind,
};

/// Where the gateway gets a channel's Shopify shop and token (auth, over gRPC, with the gateway's service identity).
pub trait CredentialSource: Send + Sync + 'static {
    fn credentials<'a>(
        &'a self,
        channel_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<ChannelCredentials, CredentialError>> + Send + 'a>>;
}

/// A channel's shop as auth knows it: the domain its token was granted for, and the token. The gateway calls this
/// domain, never one a command names (a command naming another shop is refused).
pub struct ChannelCredentials {
    pub shop_domain: String,
    pub token: SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The channel has no token (disconnected, uninstalled): the command fails, retrying cannot help.
    #[error("no Shopify credentials for channel {0}: connect the channel again")]
    NotFound(String),
    /// Auth is unreachable: worth retrying.
    #[error("credentials unavailable: {0}")]
    Unavailable(String),
}

pub struct CommandHandler {
    pub executor: Arc<Executor>,
    pub credentials: Arc<dyn CredentialSource>,
    /// The gateway's database, for bookkeeping that must commit on its own (bulk operations started).
    pub pool: sqlx::PgPool,
    /// Downloads bulk results (their URLs are Shopify's storage, not the shop's API).
    pub download: reqwest::Client,
    /// The partition leases of this replica: a command for a shop whose partition it no longer holds goes back to
    /// JetStream for the holder. None where one replica runs alone (tests).
    pub fence: Option<crate::leases::Leases>,
    /// Set with [`CommandHandler::with_settings`]; tests construct handlers with [`CommandHandler::new`] and the
    /// defaults, so a setting added here touches no test.
    settings: CommandSettings,
    /// Commands running per shop and lane (`settings.max_running_per_shop_lane`).
    in_flight: InFlight,
    /// Commands running in this replica (`settings.max_running`).
    replica: ReplicaLimit,
}

/// How the handler runs commands (from the `[service]` configuration; see [`CommandSettings::from_service`]).
#[derive(Debug, Clone)]
pub struct CommandSettings {
    /// Commands of one shop on one lane running at once; more are deferred, so a shop's backlog never fills the
    /// consumer's slots that other shops of its partition need (`service.budget.max_in_flight_per_shop`: more
    /// running commands would only queue in the shop's budget). 0 for no limit.
    pub max_running_per_shop_lane: usize,
    /// UpsertProducts and SetMetafields with more items than this go as one bulk mutation
    /// (`service.catalog.bulk_mutation_threshold`).
    pub bulk_mutation_threshold: usize,
    /// The largest JSONL of variables sent as one bulk mutation (`service.catalog.bulk_upload_max_bytes`).
    pub bulk_upload_max_bytes: usize,
    /// Commands running at once in this replica (`service.commands.max_running`); 0 for no bound.
    pub max_running: usize,
}

impl Default for CommandSettings {
    fn default() -> Self {
        Self {
            max_running_per_shop_lane: crate::budget::BudgetSettings::default()
                .max_in_flight_per_shop,
            bulk_mutation_threshold: catalog_writes::DEFAULT_BULK_MUTATION_THRESHOLD,
            bulk_upload_max_bytes: catalog_writes::DEFAULT_BULK_UPLOAD_MAX_BYTES,
            max_running: 16,
        }
    }
}

impl CommandSettings {
    pub fn from_service(settings: &crate::ServiceSettings) -> Self {
        Self {
            max_running_per_shop_lane: settings.budget.max_in_flight_per_shop,
            bulk_mutation_threshold: settings.catalog.bulk_mutation_threshold.max(1),
            bulk_upload_max_bytes: settings.catalog.bulk_upload_max_bytes.max(1),
            max_running: settings.commands.max_running,
        }
    }
}

impl CommandHandler {
    /// A handler with the default [`CommandSettings`].
    pub fn new(
        executor: Arc<Executor>,
        credentials: Arc<dyn CredentialSource>,
        pool: sqlx::PgPool,
        download: reqwest::Client,
        fence: Option<crate::leases::Leases>,
    ) -> Self {
        let settings = CommandSettings::default();
        Self {
            executor,
            credentials,
            pool,
            download,
            fence,
            in_flight: InFlight::new(settings.max_running_per_shop_lane),
            replica: ReplicaLimit::new(settings.max_running),
            settings,
        }
    }

    pub fn with_settings(mut self, settings: CommandSettings) -> Self {
        self.in_flight = InFlight::new(settings.max_running_per_shop_lane);
        self.replica = ReplicaLimit::new(settings.max_running);
        self.settings = settings;
        self
    }

    pub fn settings(&self) -> &CommandSettings {
        &self.settings
    }
}

/// Products per CatalogBatch event, at most (batches are also cut by size: see `export::catalog_batches`).
pub use crate::export::CATALOG_BATCH;
/// Orders per OrderPage event, at most.
pub const ORDER_PAGE: usize = 250;
/// Encoded bytes per OrderPage event, at most: orders with hundreds of lines make a page of 250 too big for NATS's
/// 1 MB message limit, so such a page is cut earlier.
const ORDER_PAGE_BYTES: usize = 512 * 1024;

/// Events a command publishes before its CommandResult, in the same transaction.
#[derive(Debug)]
enum Published {
    Catalog(pb::CatalogBatch),
    Orders(pb::OrderPage),
}

/// Splits orders into OrderPage events of at most [`ORDER_PAGE`] orders and [`ORDER_PAGE_BYTES`] bytes.
fn order_pages(command: &pb::Command, orders: Vec<pb::Order>) -> Vec<pb::OrderPage> {
    use prost::Message;
    let mut pages: Vec<Vec<pb::Order>> = Vec::new();
    let mut bytes = 0;
    for order in orders {
        let size = order.encoded_len();
        match pages.last_mut() {
            Some(page) if page.len() < ORDER_PAGE && bytes + size <= ORDER_PAGE_BYTES => {
                bytes += size;
                page.push(order);
            }
            _ => {
                bytes = size;
                pages.push(vec![order]);
            }
        }
    }
    let total = pages.len() as u32;
    pages
        .into_iter()
        .enumerate()
        .map(|(i, orders)| pb::OrderPage {
            command_id: command.command_id.clone(),
            shop_domain: command.shop_domain.clone(),
            channel_id: command.channel_id.clone(),
            seq: i as u32 + 1,
            total_pages: total,
            orders,
        })
        .collect()
}

fn lane(lane: i32) -> Lane {
    match pb::Lane::try_from(lane).unwrap_or(pb::Lane::Unspecified) {
        pb::Lane::Orders => Lane::Orders,
        pb::Lane::Sync => Lane::Sync,
        pb::Lane::Publish => Lane::Publish,
        pb::Lane::Import | pb::Lane::Unspecified => Lane::Import,
    }
}

fn problem(code: &str, message: impl Into<String>) -> pb::Problem {
    pb::Problem {
        code: code.to_string(),
        message: message.into(),
        field: String::new(),
    }
}

fn call_problem(error: &CallError) -> pb::Problem {
    let code = match error {
        CallError::Fatal {
            kind: FatalKind::InvalidToken,
            ..
        } => "INVALID_TOKEN",
        CallError::Fatal {
            kind: FatalKind::UnknownShop,
            ..
        } => "UNKNOWN_SHOP",
        CallError::Fatal {
            kind: FatalKind::Forbidden,
            ..
        } => "FORBIDDEN",
        CallError::Fatal {
            kind: FatalKind::InvalidRequest,
            ..
        } => "INVALID_REQUEST",
        CallError::DeadlineExceeded { .. } => "DEADLINE_EXCEEDED",
    };
    problem(code, error.to_string())
}

fn user_error_problem(value: &serde_json::Value) -> pb::Problem {
    let field = value["field"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|p| {
                    p.as_str()
                        .map(str::to_string)
                        .or_else(|| Some(p.to_string()))
                })
                .collect::<Vec<_>>()
                .join(".")
        })
        .unwrap_or_default();
    pb::Problem {
        code: value["code"].as_str().unwrap_or("USER_ERROR").to_string(),
        message: value["message"].as_str().unwrap_or_default().to_string(),
        field,
    }
}

fn money(m: &Option<shopbridge_proto::common::Money>) -> Option<String> {
    m.as_ref().map(|m| m.amount.clone())
}

impl CommandHandler {
    /// A listing's nodes and the outcome of its calls (one failed call fails the listing).
    fn listed(
        listed: Result<Vec<serde_json::Value>, CallError>,
    ) -> (Vec<serde_json::Value>, ops::Outcome) {
        match listed {
            Ok(nodes) => (
                nodes,
                ops::Outcome {
                    calls: 1,
                    ..Default::default()
                },
            ),
            Err(e) => (
                Vec::new(),
                ops::Outcome {
                    calls: 1,
                    failed_calls: vec![(0, e)],
                    ..Default::default()
                },
            ),
        }
    }

    fn writer<'a>(
        &'a self,
        command: &'a pb::Command,
        shop: &'a ShopCredentials,
    ) -> catalog_writes::Writer<'a> {
        catalog_writes::Writer {
            executor: &self.executor,
            pool: &self.pool,
            download: &self.download,
            shop,
            lane: lane(command.lane),
            command_id: &command.command_id,
            bulk_mutation_threshold: self.settings.bulk_mutation_threshold,
            bulk_upload_max_bytes: self.settings.bulk_upload_max_bytes,
        }
    }

    fn exporter(&self) -> crate::export::Exporter<'_> {
        crate::export::Exporter {
            executor: &self.executor,
            pool: &self.pool,
            download: self.download.clone(),
            poll: Default::default(),
        }
    }

    async fn export(
        &self,
        command: &pb::Command,
        shop: &ShopCredentials,
        mut result: pb::CommandResult,
    ) -> (pb::CommandResult, Vec<Published>) {
        match self.exporter().export(shop, &command.command_id).await {
            Ok(products) => {
                // Products move into their batches (no copy of the catalog), and the handler drops each batch as
                // soon as its outbox row is written.
                let batches = crate::export::catalog_batches(command, products)
                    .into_iter()
                    .map(Published::Catalog)
                    .collect();
                result.status = Status::Succeeded as i32;
                (result, batches)
            }
            Err(e) => {
                result.status = Status::Failed as i32;
                // A refused token or an unknown shop keeps its own code, so listings can give the spec's advice.
                let failure = match &e {
                    crate::export::ExportError::Call(call) => call_problem(call),
                    other => problem("EXPORT_FAILED", other.to_string()),
                };
                result.problems.push(failure);
                (result, Vec::new())
            }
        }
    }

    /// FetchOrders: every matching order, published as OrderPage events before the result.
    async fn fetch_orders(
        &self,
        command: &pb::Command,
        fetch: &pb::FetchOrders,
        shop: &ShopCredentials,
        mut result: pb::CommandResult,
    ) -> (pb::CommandResult, Vec<Published>) {
        let lane = lane(command.lane);
        let filter = fetch.filter.clone().unwrap_or_default();
        let fetched = if fetch.bulk {
            crate::orders::fetch_bulk(&self.exporter(), shop, lane, &command.command_id, &filter)
                .await
        } else {
            crate::orders::fetch_pages(&self.executor, shop, lane, &filter, fetch.page_size).await
        };
        match fetched {
            Ok(fetched) => {
                let orders = fetched.orders.len() as u32;
                let pages = order_pages(command, fetched.orders);
                result.calls = fetched.calls as u32;
                result.status = Status::Succeeded as i32;
                result.result = Some(pb::command_result::Result::OrdersFetched(
                    pb::OrdersFetched {
                        orders,
                        pages: pages.len() as u32,
                        bulk_operation_id: fetched.bulk_operation_id,
                    },
                ));
                (result, pages.into_iter().map(Published::Orders).collect())
            }
            Err(e) => {
                result.status = Status::Failed as i32;
                result.problems.push(match &e {
                    crate::orders::FetchError::Call(call) => call_problem(call),
                    crate::orders::FetchError::Bulk(_) => problem("BULK_FAILED", e.to_string()),
                });
                (result, Vec::new())
            }
        }
    }

    /// Runs the command; returns its result and any events it produces before the result (catalog batches, order
    /// pages), or, when work Shopify accepted for it could not be followed to its end for a reason that passes, why
    /// (the command is then delivered again, see `ops::Outcome::unfinished`; on its `last_delivery` it is answered
    /// instead).
    async fn run(
        &self,
        command: &pb::Command,
        shop: &ShopCredentials,
        last_delivery: bool,
    ) -> Result<(pb::CommandResult, Vec<Published>), String> {
        let mut result = pb::CommandResult {
            command_id: command.command_id.clone(),
            shop_domain: command.shop_domain.clone(),
            channel_id: command.channel_id.clone(),
            ..Default::default()
        };
        let lane = lane(command.lane);
        let mut outcome = match &command.operation {
            Some(Op::GetShopInfo(_)) => {
                let op = Operation {
                    document: documents::SHOP_INFO,
                    variables: serde_json::json!({}),
                    expected_cost: 2.0,
                };
                result.calls = 1;
                match self.executor.call(shop, lane, &op).await {
                    Ok(data) => {
                        let shop = &data["shop"];
                        result.result = Some(pb::command_result::Result::ShopInfo(pb::ShopInfo {
                            name: shop["name"].as_str().unwrap_or_default().to_string(),
                            plan: shop["plan"]["displayName"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                            currency_code: shop["currencyCode"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        }));
                        ops::Outcome::default()
                    }
                    Err(e) => ops::Outcome {
                        calls: 1,
                        failed_calls: vec![(0, e)],
                        ..Default::default()
                    },
                }
            }
            Some(Op::SetInventory(set)) => {
                let quantities: Vec<ops::QuantitySet> = set
                    .quantities
                    .iter()
                    .map(|q| ops::QuantitySet {
                        inventory_item_id: q.inventory_item_id.clone(),
                        location_id: q.location_id.clone(),
                        quantity: q.quantity,
                        compare_quantity: q.compare_quantity,
                    })
                    .collect();
                ops::set_inventory(&self.executor, shop, lane, &command.command_id, &quantities)
                    .await
            }
            Some(Op::UpdateVariantPrices(update)) => {
                let products: Vec<ops::ProductPrices> = update
                    .products
                    .iter()
                    .map(|p| ops::ProductPrices {
                        product_id: p.product_id.clone(),
                        variants: p
                            .variants
                            .iter()
                            .map(|v| ops::VariantPrice {
                                variant_id: v.variant_id.clone(),
                                price: money(&v.price).unwrap_or_default(),
                                compare_at_price: money(&v.compare_at_price),
                            })
                            .collect(),
                    })
                    .collect();
                ops::update_variant_prices(&self.executor, shop, lane, &products).await
            }
            Some(Op::ExportCatalog(_)) => return Ok(self.export(command, shop, result).await),
            Some(Op::ExportCatalogDelta(delta)) => {
                let (result, batches) = crate::export_delta::run(
                    &self.executor,
                    shop,
                    lane,
                    call_problem,
                    command,
                    delta,
                    result,
                )
                .await;
                return Ok((
                    result,
                    batches.into_iter().map(Published::Catalog).collect(),
                ));
            }
            Some(Op::ListLocations(_)) => {
                let listed = ops::all_nodes(
                    &self.executor,
                    shop,
                    lane,
                    documents::LOCATIONS,
                    "locations",
                    100,
                    1.0,
                )
                .await;
                let (nodes, outcome) = Self::listed(listed);
                result.result = Some(pb::command_result::Result::Locations(pb::Locations {
                    locations: nodes
                        .iter()
                        .map(|n| pb::Location {
                            id: n["id"].as_str().unwrap_or_default().into(),
                            name: n["name"].as_str().unwrap_or_default().into(),
                            active: n["isActive"].as_bool().unwrap_or(false),
                            fulfills_online_orders: n["fulfillsOnlineOrders"]
                                .as_bool()
                                .unwrap_or(false),
                        })
                        .collect(),
                }));
                outcome
            }
            Some(Op::ListPublications(_)) => {
                let listed = ops::all_nodes(
                    &self.executor,
                    shop,
                    lane,
                    documents::PUBLICATIONS,
                    "publications",
                    100,
                    2.0,
                )
                .await;
                let (nodes, outcome) = Self::listed(listed);
                result.result = Some(pb::command_result::Result::Publications(pb::Publications {
                    publications: nodes
                        .iter()
                        .map(|n| pb::Publication {
                            id: n["id"].as_str().unwrap_or_default().into(),
                            title: n["catalog"]["title"].as_str().unwrap_or_default().into(),
                            auto_publish: n["autoPublish"].as_bool().unwrap_or(false),
                        })
                        .collect(),
                }));
                outcome
            }
            Some(Op::LookupVariants(lookup)) => {
                let field = match pb::LookupField::try_from(lookup.field) {
                    Ok(pb::LookupField::Barcode) => ops::LookupField::Barcode,
                    _ => ops::LookupField::Sku,
                };
                let (matches, outcome) =
                    ops::lookup_variants(&self.executor, shop, lane, field, &lookup.values).await;
                result.result = Some(pb::command_result::Result::VariantMatches(
                    pb::VariantMatches {
                        matches: matches
                            .into_iter()
                            .map(|m| pb::VariantMatch {
                                variant_id: m.variant_id,
                                product_id: m.product_id,
                                inventory_item_id: m.inventory_item_id,
                                sku: m.sku,
                                barcode: m.barcode,
                            })
                            .collect(),
                    },
                ));
                outcome
            }
            Some(Op::FetchOrders(fetch)) => {
                return Ok(self.fetch_orders(command, fetch, shop, result).await);
            }
            Some(Op::TagOrder(tag)) => {
                ops::tag_order(&self.executor, shop, lane, tag.order_id.trim(), &tag.tags).await
            }
            Some(Op::CloseOrder(close)) => {
                let order_id = close.order_id.trim();
                let (closed, outcome) =
                    ops::close_order(&self.executor, shop, lane, order_id).await;
                if let Some(closed) = closed {
                    result.result =
                        Some(pb::command_result::Result::OrderClosed(pb::OrderClosed {
                            order_id: order_id.to_string(),
                            closed,
                        }));
                }
                outcome
            }
            Some(Op::CreateFulfillment(create)) => {
                let request = crate::fulfillments::Request::from(create);
                let (created, outcome) =
                    crate::fulfillments::create(&self.executor, shop, lane, &request).await;
                result.result = created.map(pb::command_result::Result::FulfillmentCreated);
                outcome
            }
            Some(Op::UpdateTracking(update)) => {
                let (updated, outcome) =
                    crate::fulfillments::update_tracking(&self.executor, shop, lane, update).await;
                result.result = updated.map(pb::command_result::Result::TrackingUpdated);
                outcome
            }
            Some(Op::RegisterWebhooks(register)) => {
                let (registered, outcome) =
                    crate::webhook_subscriptions::register(&self.executor, shop, lane, register)
                        .await;
                result.result = Some(pb::command_result::Result::WebhooksRegistered(registered));
                outcome
            }
            Some(Op::UpsertProducts(upsert)) => {
                let (upserted, outcome) =
                    catalog_writes::upsert_products(&self.writer(command, shop), upsert).await;
                result.result = upserted.map(pb::command_result::Result::ProductsUpserted);
                outcome
            }
            Some(Op::SetInventoryItemCosts(set)) => {
                catalog_writes::set_inventory_item_costs(&self.writer(command, shop), set).await
            }
            Some(Op::SetMetafields(set)) => {
                let (set, outcome) =
                    catalog_writes::set_metafields(&self.writer(command, shop), set).await;
                result.result = set.map(pb::command_result::Result::MetafieldsSet);
                outcome
            }
            Some(Op::PublishProducts(publish)) => {
                catalog_writes::publish_products(&self.writer(command, shop), publish).await
            }
            Some(Op::CreateSmartCollection(create)) => {
                let (created, outcome) =
                    catalog_writes::create_smart_collection(&self.writer(command, shop), create)
                        .await;
                result.result = created.map(pb::command_result::Result::CollectionCreated);
                outcome
            }
            None => {
                result.status = Status::Failed as i32;
                result
                    .problems
                    .push(problem("INVALID_REQUEST", "the command names no operation"));
                return Ok((result, Vec::new()));
            }
        };
        if let Some(why) = outcome.unfinished.take() {
            if !last_delivery {
                return Err(why);
            }
            // Answered rather than dead-lettered unanswered: the sender learns that it is not known what Shopify did.
            outcome.failed = true;
            outcome.user_errors.push(serde_json::json!({"code": "BULK_UNFOLLOWED", "field": [],
                "message": format!("given up on the last delivery: {why}. Shopify may still apply some or all of \
                    the bulk mutation's lines: read the items back before writing them again")}));
        }
        if result.calls == 0 {
            result.calls = outcome.calls as u32;
        }
        result
            .problems
            .extend(outcome.user_errors.iter().map(user_error_problem));
        result
            .problems
            .extend(outcome.failed_calls.iter().map(|(_, e)| call_problem(e)));
        result.status = if result.problems.is_empty() {
            Status::Succeeded
        } else if outcome.failed || outcome.failed_calls.len() == outcome.calls.max(1) {
            Status::Failed
        } else {
            Status::Partial
        } as i32;
        Ok((result, Vec::new()))
    }
}

impl Handler for CommandHandler {
    type Message = pb::Command;

    /// Defers a command whose shop is at its limit on the command's lane, or while the replica runs as many commands
    /// as it may, before a transaction (a connection) is taken for it.
    fn defer_hint(&self, event: &Envelope<pb::Command>) -> Option<Duration> {
        let command = &event.message;
        if let Some(delay) = self.replica.would_defer() {
            return Some(delay);
        }
        self.in_flight.would_defer(
            &command.shop_domain,
            lane(command.lane),
            &command.command_id,
        )
    }

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<pb::Command>,
    ) -> Result<(), HandlerError> {
        let command = &event.message;
        if command.command_id.is_empty() || command.shop_domain.is_empty() {
            return Err(HandlerError::Reject(anyhow::anyhow!(
                "a command needs command_id and shop_domain"
            )));
        }
        if let Some(fence) = &self.fence
            && !fence.holds_shop(&command.shop_domain)
        {
            // Not the command's failure: it goes back to whoever holds the partition now, uncounted.
            return Err(HandlerError::Release(anyhow::anyhow!(
                "this replica no longer holds the partition of {}",
                command.shop_domain
            )));
        }
        // The replica's bound first, so a command deferred by it keeps its turn among its shop's commands.
        let _replica_place = self.replica.try_start().map_err(HandlerError::Defer)?;
        // At its shop's limit on this lane, the command steps aside for other shops' commands and comes back in a
        // moment, keeping its turn among its shop's commands (see `in_flight`). The place is held until the handler
        // returns.
        let _running = self
            .in_flight
            .try_start(
                &command.shop_domain,
                lane(command.lane),
                &command.command_id,
            )
            .map_err(HandlerError::Defer)?;
        // Two deliveries of one command (a re-send while the first still runs) take turns: the second waits here
        // until the first commits, then finds its result.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(&command.command_id)
            .execute(&mut **tx)
            .await
            .map_err(|e| HandlerError::Retry(e.into()))?;
        let seen: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT result FROM command_results WHERE command_id = $1")
                .bind(&command.command_id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(|e| HandlerError::Retry(e.into()))?;
        if let Some(stored) = seen {
            return answer_again(tx, event, stored).await;
        }
        let (result, published) = match self.credentials.credentials(&command.channel_id).await {
            // The bus is not trusted with where a token goes: the shop is the channel's, as auth says.
            Ok(channel) if channel.shop_domain != command.shop_domain => {
                tracing::warn!(
                    command_id = %command.command_id,
                    channel_id = %command.channel_id,
                    command_shop = %command.shop_domain,
                    channel_shop = %channel.shop_domain,
                    "a command names another shop than its channel's; refused, nothing sent"
                );
                (
                    pb::CommandResult {
                        command_id: command.command_id.clone(),
                        shop_domain: command.shop_domain.clone(),
                        channel_id: command.channel_id.clone(),
                        status: Status::Failed as i32,
                        problems: vec![problem(
                            "SHOP_MISMATCH",
                            format!(
                                "channel {} belongs to shop {}, not {}: nothing was sent",
                                command.channel_id, channel.shop_domain, command.shop_domain
                            ),
                        )],
                        ..Default::default()
                    },
                    Vec::new(),
                )
            }
            Ok(channel) => {
                let shop = ShopCredentials {
                    domain: channel.shop_domain,
                    token: channel.token,
                };
                self.run(command, &shop, event.last_delivery)
                    .await
                    .map_err(|why| HandlerError::Retry(anyhow::anyhow!(why)))?
            }
            Err(CredentialError::Unavailable(e)) => {
                return Err(HandlerError::Retry(anyhow::anyhow!(e)));
            }
            Err(e @ CredentialError::NotFound(_)) => (
                pb::CommandResult {
                    command_id: command.command_id.clone(),
                    shop_domain: command.shop_domain.clone(),
                    channel_id: command.channel_id.clone(),
                    status: Status::Failed as i32,
                    problems: vec![problem("NO_CREDENTIALS", e.to_string())],
                    ..Default::default()
                },
                Vec::new(),
            ),
        };
        let status = Status::try_from(result.status).unwrap_or(Status::Unspecified);
        sqlx::query(
            "INSERT INTO command_results (command_id, shop_domain, status, calls, result) VALUES ($1, $2, $3, $4, $5)",
        )
            .bind(&command.command_id)
            .bind(&command.shop_domain)
            .bind(status.as_str_name())
            .bind(result.calls as i32)
            .bind(prost::Message::encode_to_vec(&result))
            .execute(&mut **tx)
            .await
            .map_err(|e| HandlerError::Retry(e.into()))?;
        // By value: each event is dropped once encoded, so the decoded and encoded forms of the whole export are
        // never held together.
        for message in published {
            let message = match message {
                Published::Catalog(batch) => OutboxMessage::event(event.meta.clone(), &batch),
                Published::Orders(page) => OutboxMessage::event(event.meta.clone(), &page),
            };
            outbox::enqueue(tx, message)
                .await
                .map_err(|e| HandlerError::Retry(e.into()))?;
        }
        outbox::enqueue(tx, OutboxMessage::event(event.meta.clone(), &result))
            .await
            .map_err(|e| HandlerError::Retry(e.into()))?;
        tracing::info!(command_id = %command.command_id, status = status.as_str_name(), calls = result.calls, "command done");
        Ok(())
    }
}

/// A command answered before (re-sent by its sender, or redelivered after the answer committed): runs nothing and
/// publishes its stored result again, so a sender that lost the answer gets it.
async fn answer_again(
    tx: &mut Transaction<'static, Postgres>,
    event: &Envelope<pb::Command>,
    stored: Option<Vec<u8>>,
) -> Result<(), HandlerError> {
    let command_id = &event.message.command_id;
    let Some(stored) = stored else {
        tracing::info!(%command_id, "command answered before results were kept; not running it again");
        return Ok(());
    };
    let result = <pb::CommandResult as prost::Message>::decode(stored.as_slice())
        .map_err(|e| HandlerError::Reject(anyhow::anyhow!("stored result of {command_id}: {e}")))?;
    outbox::enqueue(tx, OutboxMessage::event(event.meta.clone(), &result))
        .await
        .map_err(|e| HandlerError::Retry(e.into()))?;
    tracing::info!(%command_id, "command already answered; its result sent again, nothing run");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> pb::Command {
        pb::Command {
            command_id: "c1".into(),
            shop_domain: "s.myshopify.com".into(),
            ..Default::default()
        }
    }

    fn order(i: usize, note_bytes: usize) -> pb::Order {
        pb::Order {
            id: format!("gid://shopify/Order/{i}"),
            note: "x".repeat(note_bytes),
            ..Default::default()
        }
    }

    #[test]
    fn order_pages_hold_at_most_250_orders_numbered_in_order() {
        let pages = order_pages(&command(), (0..600).map(|i| order(i, 10)).collect());
        let sizes: Vec<usize> = pages.iter().map(|p| p.orders.len()).collect();
        assert_eq!(sizes, vec![250, 250, 100]);
        assert!(
            pages
                .iter()
                .enumerate()
                .all(|(i, p)| p.seq == i as u32 + 1 && p.total_pages == 3 && p.command_id == "c1")
        );
        assert_eq!(pages[2].orders[99].id, "gid://shopify/Order/599");
        assert!(order_pages(&command(), Vec::new()).is_empty());
    }

    #[test]
    fn big_orders_are_cut_into_pages_under_the_byte_limit() {
        use prost::Message;
        let pages = order_pages(&command(), (0..10).map(|i| order(i, 200_000)).collect());
        assert_eq!(pages.len(), 5);
        assert!(
            pages
                .iter()
                .all(|p| p.encoded_len() < ORDER_PAGE_BYTES + 1024)
        );
        assert_eq!(pages.iter().map(|p| p.orders.len()).sum::<usize>(), 10);
    }
}
