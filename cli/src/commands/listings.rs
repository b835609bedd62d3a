//! `shopbridge listings list|show|unpause`: the catalog in the listings service.

use serde::Serialize;
use shopbridge_proto::{
    common::PageRequest,
    listings::{self as pb, LinkState, ListingStatus, unpause_listings_request::Selector},
};

use crate::{
    cli::{ListingStatusArg, ListingsCommand, ListingsListArgs},
    client::Ctx,
    commands::channels,
    error::{CallExt, CliError, Exit},
    output::{self, or_dash},
};

/// A listing as the CLI prints it; the JSON field names are stable.
#[derive(Debug, Serialize)]
pub struct ListingView {
    pub listing_id: String,
    pub title: String,
    pub brand: String,
    pub product_type: String,
    pub status: String,
    pub tags: Vec<String>,
    pub created_by_run_id: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub variants: Vec<VariantView>,
}

#[derive(Debug, Serialize)]
pub struct VariantView {
    pub variant_id: String,
    pub sku: String,
    pub barcode: String,
    pub options: Vec<String>,
    pub total_quantity: i64,
    pub list_price: String,
    pub cost: String,
    pub links: Vec<LinkView>,
}

#[derive(Debug, Serialize)]
pub struct LinkView {
    pub channel_id: String,
    pub product_id: String,
    pub variant_id: String,
    pub linked_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct ListView {
    /// How many listings match the filters (may be more than are listed).
    total: u64,
    listings: Vec<ListingView>,
}

fn status_name(value: i32) -> String {
    match ListingStatus::try_from(value) {
        Ok(ListingStatus::Active) => "active".into(),
        Ok(ListingStatus::Paused) => "paused".into(),
        _ => format!("unknown({value})"),
    }
}

impl From<pb::Listing> for ListingView {
    fn from(l: pb::Listing) -> Self {
        Self {
            status: status_name(l.status),
            created_at: output::rfc3339(l.created_at.as_ref()),
            updated_at: output::rfc3339(l.updated_at.as_ref()),
            created_by_run_id: (!l.created_by_run_id.is_empty()).then_some(l.created_by_run_id),
            variants: l
                .variants
                .into_iter()
                .map(|v| VariantView {
                    options: v
                        .option_values
                        .iter()
                        .map(|o| format!("{}: {}", o.name, o.value))
                        .collect(),
                    links: v
                        .links
                        .into_iter()
                        .map(|link| LinkView {
                            linked_at: output::rfc3339(link.linked_at.as_ref()),
                            channel_id: link.channel_id,
                            product_id: link.product_id,
                            variant_id: link.variant_id,
                        })
                        .collect(),
                    variant_id: v.variant_id,
                    sku: v.sku,
                    barcode: v.barcode,
                    total_quantity: v.total_quantity,
                    list_price: v.list_price,
                    cost: v.cost,
                })
                .collect(),
            listing_id: l.listing_id,
            title: l.title,
            brand: l.brand,
            product_type: l.product_type,
            tags: l.tags,
        }
    }
}

impl ListingView {
    fn skus(&self) -> String {
        let skus: Vec<&str> = self.variants.iter().map(|v| v.sku.as_str()).collect();
        match skus.len() {
            0..=3 => or_dash(&skus.join(", ")),
            n => format!("{} +{}", skus[..3].join(", "), n - 3),
        }
    }

    fn linked(&self) -> String {
        let linked = self.variants.iter().filter(|v| !v.links.is_empty()).count();
        format!("{linked}/{}", self.variants.len())
    }
}

pub async fn run(ctx: &Ctx, cmd: ListingsCommand) -> Result<Exit, CliError> {
    match cmd {
        ListingsCommand::List(args) => list(ctx, args).await,
        ListingsCommand::Show { id } => {
            let listing = ctx
                .listings()
                .await?
                .get_listing(pb::GetListingRequest { listing_id: id })
                .await
                .or_fail(&ctx.listings)
                .map_err(|e| {
                    e.with_hint(
                        Exit::NotFound,
                        "find listings with `shopbridge listings list`",
                    )
                })?
                .listing
                .ok_or_else(|| CliError::other("listings answered without the listing"))?;
            print_listing(ctx, listing.into())
        }
        ListingsCommand::Unpause { ids, run } => {
            let selector = match run {
                Some(run) => Selector::CreatedByRunId(run),
                None => Selector::ListingIds(pb::ListingIds { ids }),
            };
            let unpaused = ctx
                .listings()
                .await?
                .unpause_listings(pb::UnpauseListingsRequest {
                    selector: Some(selector),
                })
                .await
                .or_fail(&ctx.listings)?
                .unpaused;
            if ctx.json() {
                output::json(&serde_json::json!({ "unpaused": unpaused }))?;
            } else {
                output::print_line(&format!("unpaused {unpaused} listings"))?;
            }
            Ok(Exit::Ok)
        }
    }
}

async fn list(ctx: &Ctx, args: ListingsListArgs) -> Result<Exit, CliError> {
    if args.limit == 0 {
        return Err(CliError::usage("--limit must be at least 1"));
    }
    let channel_id = match &args.channel {
        Some(channel) => channels::resolve_id(ctx, channel).await?,
        None => String::new(),
    };
    let link_state = if args.linked {
        LinkState::Linked
    } else if args.unlinked {
        LinkState::Unlinked
    } else {
        LinkState::Unspecified
    };
    let mut client = ctx.listings().await?;
    let mut listings = Vec::new();
    let mut page_token = String::new();
    let total = loop {
        let remaining = args.limit as usize - listings.len();
        let response = client
            .list_listings(pb::ListListingsRequest {
                sku: args.sku.clone().unwrap_or_default(),
                status: match args.status {
                    Some(ListingStatusArg::Active) => ListingStatus::Active,
                    Some(ListingStatusArg::Paused) => ListingStatus::Paused,
                    None => ListingStatus::Unspecified,
                } as i32,
                link_state: link_state as i32,
                channel_id: channel_id.clone(),
                text: args.text.clone().unwrap_or_default(),
                created_by_run_id: args.run.clone().unwrap_or_default(),
                page: Some(PageRequest {
                    page_size: remaining.min(200) as u32,
                    page_token,
                }),
            })
            .await
            .or_fail(&ctx.listings)?;
        listings.extend(response.listings.into_iter().take(remaining));
        page_token = response.page.map(|p| p.next_page_token).unwrap_or_default();
        if page_token.is_empty() || listings.len() >= args.limit as usize {
            break response.total;
        }
    };
    let view = ListView {
        total,
        listings: listings.into_iter().map(Into::into).collect(),
    };
    if ctx.json() {
        output::json(&view)?;
        return Ok(Exit::Ok);
    }
    if view.listings.is_empty() {
        eprintln!("no listings match");
        return Ok(Exit::Ok);
    }
    let rows = view
        .listings
        .iter()
        .map(|l| {
            vec![
                l.listing_id.clone(),
                l.title.clone(),
                l.status.clone(),
                l.skus(),
                l.linked(),
            ]
        })
        .collect();
    output::table(&["id", "title", "status", "skus", "linked"], rows)?;
    if (view.listings.len() as u64) < total {
        eprintln!(
            "showing {} of {total} listings; see more with --limit",
            view.listings.len()
        );
    }
    Ok(Exit::Ok)
}

fn print_listing(ctx: &Ctx, view: ListingView) -> Result<Exit, CliError> {
    if ctx.json() {
        output::json(&view)?;
        return Ok(Exit::Ok);
    }
    output::fields(&[
        ("id", view.listing_id.clone()),
        ("title", view.title.clone()),
        ("status", view.status.clone()),
        ("brand", or_dash(&view.brand)),
        ("type", or_dash(&view.product_type)),
        ("tags", or_dash(&view.tags.join(", "))),
        (
            "created by run",
            or_dash(view.created_by_run_id.as_deref().unwrap_or_default()),
        ),
        ("created", output::human_time(view.created_at.as_deref())),
        ("updated", output::human_time(view.updated_at.as_deref())),
    ])?;
    output::print_line("")?;
    let rows = view
        .variants
        .iter()
        .map(|v| {
            vec![
                or_dash(&v.sku),
                or_dash(&v.barcode),
                or_dash(&v.options.join(", ")),
                v.total_quantity.to_string(),
                or_dash(&v.list_price),
                or_dash(
                    &v.links
                        .iter()
                        .map(|l| l.variant_id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ]
        })
        .collect();
    output::table(
        &[
            "sku",
            "barcode",
            "options",
            "quantity",
            "price",
            "shopify variant",
        ],
        rows,
    )?;
    Ok(Exit::Ok)
}
