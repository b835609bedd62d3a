//! Runs a command's operation: one arm per operation, each handing the request to its module in `operations` and
//! turning what it reports into the command's result.

use shopbridge_proto::gateway::{self as pb, command::Operation as Op, command_result::Status};

use super::{
    CommandHandler,
    results::{Published, call_problem, conclude, lane, money, order_pages, problem},
};
use crate::{
    bulk::{Writer, query::Exporter},
    operations::{
        catalog, fulfillments,
        inventory::{self, QuantitySet},
        lookup::{self, LookupField},
        order_writes, orders, pages,
        prices::{self, ProductPrices, VariantPrice},
        webhook_subscriptions,
    },
    outcome::Outcome,
    shopify::{
        executor::{CallError, ShopCredentials},
        wire::{
            access::{Locations, ShopInfo},
            catalog::Publications,
        },
    },
};

/// A listing's nodes and the outcome of its calls (one failed call fails the listing).
fn listed<T>(listed: Result<Vec<T>, CallError>) -> (Vec<T>, Outcome) {
    match listed {
        Ok(nodes) => (
            nodes,
            Outcome {
                calls: 1,
                ..Default::default()
            },
        ),
        Err(e) => (Vec::new(), Outcome::failed_call(e)),
    }
}

impl CommandHandler {
    fn writer<'a>(&'a self, command: &'a pb::Command, shop: &'a ShopCredentials) -> Writer<'a> {
        Writer {
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

    fn exporter(&self) -> Exporter<'_> {
        Exporter {
            executor: &self.executor,
            pool: &self.pool,
            download: self.download.clone(),
            poll: Default::default(),
        }
    }

    /// ExportCatalog: the whole catalog, published as CatalogBatch events before the result.
    async fn export(
        &self,
        command: &pb::Command,
        shop: &ShopCredentials,
        mut result: pb::CommandResult,
    ) -> (pb::CommandResult, Vec<Published>) {
        match catalog::export::export(&self.exporter(), shop, &command.command_id).await {
            Ok(products) => {
                // Products move into their batches (no copy of the catalog), and the handler drops each batch as
                // soon as its outbox row is written.
                let batches = catalog::export::catalog_batches(command, products)
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
                    crate::bulk::query::ExportError::Call(call) => call_problem(call),
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
            orders::fetch_bulk(&self.exporter(), shop, lane, &command.command_id, &filter).await
        } else {
            orders::fetch_pages(&self.executor, shop, lane, &filter, fetch.page_size).await
        };
        match fetched {
            Ok(fetched) => {
                let count = fetched.orders.len() as u32;
                let pages = order_pages(command, fetched.orders);
                result.calls = fetched.calls as u32;
                result.status = Status::Succeeded as i32;
                result.result = Some(pb::command_result::Result::OrdersFetched(
                    pb::OrdersFetched {
                        orders: count,
                        pages: pages.len() as u32,
                        bulk_operation_id: fetched.bulk_operation_id,
                    },
                ));
                (result, pages.into_iter().map(Published::Orders).collect())
            }
            Err(e) => {
                result.status = Status::Failed as i32;
                result.problems.push(match &e {
                    orders::FetchError::Call(call) => call_problem(call),
                    orders::FetchError::Bulk(_) => problem("BULK_FAILED", e.to_string()),
                });
                (result, Vec::new())
            }
        }
    }

    /// Runs the command; returns its result and any events it produces before the result (catalog batches, order
    /// pages), or, when work Shopify accepted for it could not be followed to its end for a reason that passes, why
    /// (the command is then delivered again, see `Outcome::unfinished`; on its `last_delivery` it is answered
    /// instead).
    pub(super) async fn run(
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
        let executor = &*self.executor;
        let (answer, mut outcome) = match &command.operation {
            Some(Op::GetShopInfo(_)) => match executor.send(shop, lane, &ShopInfo {}, 2.0).await {
                Ok(data) => {
                    result.calls = 1;
                    let info = crate::operations::access::shop_info(data);
                    (
                        Some(pb::command_result::Result::ShopInfo(info)),
                        Outcome::default(),
                    )
                }
                Err(e) => (None, Outcome::failed_call(e)),
            },
            Some(Op::SetInventory(set)) => {
                let quantities: Vec<QuantitySet> = set
                    .quantities
                    .iter()
                    .map(|q| QuantitySet {
                        inventory_item_id: q.inventory_item_id.clone(),
                        location_id: q.location_id.clone(),
                        quantity: q.quantity,
                        compare_quantity: q.compare_quantity,
                    })
                    .collect();
                let outcome = inventory::set_inventory(
                    executor,
                    shop,
                    lane,
                    &command.command_id,
                    &quantities,
                )
                .await;
                (None, outcome)
            }
            Some(Op::UpdateVariantPrices(update)) => {
                let products = update
                    .products
                    .iter()
                    .map(product_prices)
                    .collect::<Vec<_>>();
                (
                    None,
                    prices::update_variant_prices(executor, shop, lane, &products).await,
                )
            }
            Some(Op::ExportCatalog(_)) => return Ok(self.export(command, shop, result).await),
            Some(Op::ExportCatalogDelta(delta)) => {
                let (result, batches) =
                    catalog::delta::run(executor, shop, lane, call_problem, command, delta, result)
                        .await;
                let batches = batches.into_iter().map(Published::Catalog).collect();
                return Ok((result, batches));
            }
            Some(Op::ListLocations(_)) => {
                let (nodes, outcome) = listed(
                    pages::all_nodes(executor, shop, lane, Locations, |d| d.locations, 100, 1.0)
                        .await,
                );
                let locations = nodes
                    .into_iter()
                    .map(|n| pb::Location {
                        id: n.id,
                        name: n.name,
                        active: n.is_active,
                        fulfills_online_orders: n.fulfills_online_orders,
                    })
                    .collect();
                let answer = pb::command_result::Result::Locations(pb::Locations { locations });
                (Some(answer), outcome)
            }
            Some(Op::ListPublications(_)) => {
                let (nodes, outcome) = listed(
                    pages::all_nodes(
                        executor,
                        shop,
                        lane,
                        Publications,
                        |d| d.publications,
                        100,
                        2.0,
                    )
                    .await,
                );
                let publications = nodes
                    .into_iter()
                    .map(|n| pb::Publication {
                        id: n.id,
                        title: n.catalog.map(|c| c.title).unwrap_or_default(),
                        auto_publish: n.auto_publish,
                    })
                    .collect();
                let answer =
                    pb::command_result::Result::Publications(pb::Publications { publications });
                (Some(answer), outcome)
            }
            Some(Op::LookupVariants(request)) => {
                let field = match pb::LookupField::try_from(request.field) {
                    Ok(pb::LookupField::Barcode) => LookupField::Barcode,
                    _ => LookupField::Sku,
                };
                let (matches, outcome) =
                    lookup::lookup_variants(executor, shop, lane, field, &request.values).await;
                let matches = matches
                    .into_iter()
                    .map(|m| pb::VariantMatch {
                        variant_id: m.variant_id,
                        product_id: m.product_id,
                        inventory_item_id: m.inventory_item_id,
                        sku: m.sku,
                        barcode: m.barcode,
                    })
                    .collect();
                let answer =
                    pb::command_result::Result::VariantMatches(pb::VariantMatches { matches });
                (Some(answer), outcome)
            }
            Some(Op::FetchOrders(fetch)) => {
                return Ok(self.fetch_orders(command, fetch, shop, result).await);
            }
            Some(Op::TagOrder(tag)) => {
                let outcome =
                    order_writes::tag_order(executor, shop, lane, tag.order_id.trim(), &tag.tags)
                        .await;
                (None, outcome)
            }
            Some(Op::CloseOrder(close)) => {
                let order_id = close.order_id.trim();
                let (closed, outcome) =
                    order_writes::close_order(executor, shop, lane, order_id).await;
                let answer = closed.map(|closed| {
                    pb::command_result::Result::OrderClosed(pb::OrderClosed {
                        order_id: order_id.to_string(),
                        closed,
                    })
                });
                (answer, outcome)
            }
            Some(Op::CreateFulfillment(create)) => {
                let request = fulfillments::Request::from(create);
                let (created, outcome) = fulfillments::create(executor, shop, lane, &request).await;
                (
                    created.map(pb::command_result::Result::FulfillmentCreated),
                    outcome,
                )
            }
            Some(Op::UpdateTracking(update)) => {
                let (updated, outcome) =
                    fulfillments::update_tracking(executor, shop, lane, update).await;
                (
                    updated.map(pb::command_result::Result::TrackingUpdated),
                    outcome,
                )
            }
            Some(Op::RegisterWebhooks(register)) => {
                let (registered, outcome) =
                    webhook_subscriptions::register(executor, shop, lane, register).await;
                (
                    Some(pb::command_result::Result::WebhooksRegistered(registered)),
                    outcome,
                )
            }
            Some(Op::UpsertProducts(upsert)) => {
                let (upserted, outcome) =
                    catalog::products::upsert_products(&self.writer(command, shop), upsert).await;
                (
                    upserted.map(pb::command_result::Result::ProductsUpserted),
                    outcome,
                )
            }
            Some(Op::SetInventoryItemCosts(set)) => {
                let writer = self.writer(command, shop);
                (
                    None,
                    catalog::costs::set_inventory_item_costs(&writer, set).await,
                )
            }
            Some(Op::SetMetafields(set)) => {
                let (set, outcome) =
                    catalog::metafields::set_metafields(&self.writer(command, shop), set).await;
                (set.map(pb::command_result::Result::MetafieldsSet), outcome)
            }
            Some(Op::PublishProducts(publish)) => {
                let writer = self.writer(command, shop);
                (
                    None,
                    catalog::publish::publish_products(&writer, publish).await,
                )
            }
            Some(Op::CreateSmartCollection(create)) => {
                let writer = self.writer(command, shop);
                let (created, outcome) =
                    catalog::collections::create_smart_collection(&writer, create).await;
                (
                    created.map(pb::command_result::Result::CollectionCreated),
                    outcome,
                )
            }
            None => {
                result.status = Status::Failed as i32;
                result
                    .problems
                    .push(problem("INVALID_REQUEST", "the command names no operation"));
                return Ok((result, Vec::new()));
            }
        };
        if answer.is_some() {
            result.result = answer;
        }
        if let Some(why) = outcome.unfinished.take() {
            if !last_delivery {
                return Err(why);
            }
            // Answered rather than dead-lettered unanswered: the sender learns that it is not known what Shopify did.
            outcome.failed = true;
            outcome.user_errors.push(crate::shopify::wire::UserError::new(
                "BULK_UNFOLLOWED",
                &[],
                format!(
                    "given up on the last delivery: {why}. Shopify may still apply some or all of the bulk \
                     mutation's lines: read the items back before writing them again"
                ),
            ));
        }
        Ok((conclude(result, &outcome), Vec::new()))
    }
}

/// A product's new prices from the command.
fn product_prices(p: &pb::ProductPrices) -> ProductPrices {
    ProductPrices {
        product_id: p.product_id.clone(),
        variants: p
            .variants
            .iter()
            .map(|v| VariantPrice {
                variant_id: v.variant_id.clone(),
                price: money(&v.price).unwrap_or_default(),
                compare_at_price: money(&v.compare_at_price),
            })
            .collect(),
    }
}
