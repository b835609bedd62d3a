//! How one batch of Shopify products becomes changes to the catalog: a pure function from the batch, the run's
//! settings and what the catalog holds for the batch's SKUs to a [`Plan`] of writes, log entries and counters.
//!
//! Per Shopify variant, by its master SKU (the Shopify field the settings name, trimmed, case-sensitive):
//! - no value: not imported, `MISSING_MASTER_SKU`;
//! - a value two or more Shopify variants of the export share: a conflict. None of them is imported or linked (not
//!   even the "first": which one comes first depends on Shopify's export order, and merging two products into one
//!   listing silently is what the merchant must never get). Each is logged `DUPLICATE_MASTER_SKU` with its GID.
//!   Links made by earlier runs are left as they are. Duplicates are counted over the whole export, so the outcome
//!   does not depend on which batch comes first;
//! - a catalog variant with that SKU: linked to the Shopify variant on the channel; in CREATE_AND_OVERWRITE its
//!   imported fields and its quantities are updated from Shopify, and so is its listing's parent data when it is the
//!   listing's first variant (a listing's parent follows the Shopify product of its first variant: one product, so
//!   the result does not depend on the order batches are applied in); in CREATE_ONLY it is left as it is;
//! - no catalog variant: created. If another variant of the same Shopify product matched, in the listing of the first
//!   one that did (Shopify's variant order), after its variants; otherwise in a new listing made from the product,
//!   paused when "pause new listings" is on, and marked as created by the run.
//!
//! A product over the limits below is not imported at all (`PRODUCT_OVER_LIMITS`, each variant counted failed).
//!
//! Counters (per Shopify variant): `created`; `linked` (matched a catalog variant), of which `updated` (its data or
//! its listing's changed) or `skipped` (left as it was: CREATE_ONLY, or nothing differed); `failed` (logged).
//! `processed` is created + linked + failed.

use std::collections::{HashMap, HashSet};

use shopbridge_proto::gateway as gw;
use uuid::Uuid;

use super::problems::{self, Problem};
use crate::{
    catalog::{
        model::{
            ImageRef, ImportedVariant, LinkTarget, ListingStatus, NameValue, NewListing,
            NewVariant, OptionDef, ParentData, Quantity, VariantData, Weight, WeightUnit,
        },
        read::{ListingToChange, MatchedVariant},
    },
    import_settings::{ImportMode, MasterSkuField},
};

/// Product titles: Shopify's own limit, and what Publish Listings truncates to ("Truncate Title to 255"); a longer
/// title could not be published back unchanged.
pub const MAX_TITLE_CHARS: usize = 255;
/// Options per product: Shopify's limit (Size, Color, Material); a listing with more could not be published back.
pub const MAX_OPTIONS: usize = 3;
/// Variants per listing: the catalog feeds other sales channels as well, most of which cap a parent listing at 100
/// variants (as Shopify did until 2024); a bigger product is a catalog design problem the merchant should split
/// rather than a listing the other channels will refuse.
pub const MAX_VARIANTS: usize = 100;

/// What a run was asked to do (the settings it started with).
#[derive(Debug, Clone, Copy)]
pub struct RunContext {
    pub run_id: Uuid,
    pub mode: ImportMode,
    pub master_sku_field: MasterSkuField,
    pub pause_new_listings: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub processed: u64,
    pub created: u64,
    pub linked: u64,
    pub updated: u64,
    pub skipped: u64,
    pub failed: u64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.processed += other.processed;
        self.created += other.created;
        self.linked += other.linked;
        self.updated += other.updated;
        self.skipped += other.skipped;
        self.failed += other.failed;
    }
}

/// What the catalog holds for a batch, loaded before planning.
#[derive(Debug, Default)]
pub struct Known {
    /// Master SKUs held by two or more Shopify variants of the whole export, with how many.
    pub duplicates: HashMap<String, u64>,
    /// Catalog variants by SKU.
    pub matched: HashMap<String, MatchedVariant>,
    /// The matched variants' listings.
    pub listings: HashMap<Uuid, ListingToChange>,
}

/// The writes of one batch.
#[derive(Debug, Default)]
pub struct Plan {
    pub new_listings: Vec<NewListing>,
    pub new_variants: Vec<NewVariant>,
    pub parent_updates: Vec<(Uuid, ParentData)>,
    pub variant_updates: Vec<(Uuid, ImportedVariant)>,
    pub quantity_updates: Vec<(Uuid, Vec<Quantity>)>,
    pub links: Vec<(Uuid, LinkTarget)>,
    pub problems: Vec<Problem>,
    pub counters: Counters,
}

/// A Shopify variant's value in the master SKU field.
pub fn master_sku(field: MasterSkuField, variant: &gw::CatalogVariant) -> &str {
    match field {
        MasterSkuField::Sku => variant.sku.trim(),
        MasterSkuField::Barcode => variant.barcode.trim(),
    }
}

/// Every master SKU of the batch (what to look up before planning).
pub fn master_skus(field: MasterSkuField, products: &[gw::CatalogProduct]) -> Vec<String> {
    let mut skus: Vec<String> = products
        .iter()
        .flat_map(|p| p.variants.iter())
        .map(|v| master_sku(field, v).to_string())
        .filter(|s| !s.is_empty())
        .collect();
    skus.sort();
    skus.dedup();
    skus
}

/// What breaks the limits, as (what is wrong, what to do), empty when the product is within them.
pub fn breaches(product: &gw::CatalogProduct) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let title = product.title.chars().count();
    if title > MAX_TITLE_CHARS {
        found.push((
            format!("has a title of {title} characters (at most {MAX_TITLE_CHARS})"),
            format!("shorten its title to {MAX_TITLE_CHARS} characters"),
        ));
    }
    if product.options.len() > MAX_OPTIONS {
        found.push((
            format!(
                "has {} options (at most {MAX_OPTIONS})",
                product.options.len()
            ),
            format!("use at most {MAX_OPTIONS} options"),
        ));
    }
    if product.variants.len() > MAX_VARIANTS {
        found.push((
            format!(
                "has {} variants (at most {MAX_VARIANTS})",
                product.variants.len()
            ),
            format!("split it into products of at most {MAX_VARIANTS} variants"),
        ));
    }
    found
}

pub fn parent_data(product: &gw::CatalogProduct) -> ParentData {
    let mut options: Vec<&gw::CatalogOption> = product.options.iter().collect();
    options.sort_by_key(|o| o.position);
    ParentData {
        title: product.title.clone(),
        description_html: product.description_html.clone(),
        brand: product.vendor.clone(),
        product_type: product.product_type.clone(),
        tags: product.tags.clone(),
        options: options
            .into_iter()
            .map(|o| OptionDef {
                name: o.name.clone(),
                values: o.values.clone(),
            })
            .collect(),
        images: product
            .images
            .iter()
            .filter(|i| !i.url.is_empty())
            .map(|i| ImageRef {
                url: i.url.clone(),
                alt_text: i.alt_text.clone(),
            })
            .collect(),
        custom_fields: custom_fields(&product.metafields),
    }
}

/// Metafields come in as custom fields named `<namespace>.<key>`, ordered by name: metafields have no order of their
/// own, and a bulk export's lines come in no guaranteed order, so a fixed one keeps an unchanged store unchanged.
fn custom_fields(metafields: &[gw::CatalogMetafield]) -> Vec<NameValue> {
    let mut fields: Vec<NameValue> = metafields
        .iter()
        .map(|m| NameValue {
            name: format!("{}.{}", m.namespace, m.key),
            value: m.value.clone(),
        })
        .collect();
    fields.sort_by(|a, b| a.name.cmp(&b.name));
    fields.dedup_by(|a, b| a.name == b.name);
    fields
}

pub fn imported_variant(variant: &gw::CatalogVariant) -> ImportedVariant {
    let weight = match (
        crate::decimal::canonical(&variant.weight_value),
        WeightUnit::from_shopify(&variant.weight_unit),
    ) {
        (Some(value), Some(unit)) => Some(Weight { value, unit }),
        _ => None,
    };
    ImportedVariant {
        barcode: variant.barcode.trim().to_string(),
        option_values: variant
            .option_values
            .iter()
            .map(|o| NameValue {
                name: o.name.clone(),
                value: o.value.clone(),
            })
            .collect(),
        weight,
        custom_fields: custom_fields(&variant.metafields),
    }
}

/// Quantities at every location, ordered by location (as the catalog reads them back).
pub fn quantities(variant: &gw::CatalogVariant) -> Vec<Quantity> {
    let mut quantities: Vec<Quantity> = variant
        .quantities
        .iter()
        .filter(|q| !q.location_id.is_empty())
        .map(|q| Quantity {
            location_id: q.location_id.clone(),
            quantity: q.available,
        })
        .collect();
    quantities.sort_by(|a, b| a.location_id.cmp(&b.location_id));
    quantities.dedup_by(|a, b| a.location_id == b.location_id);
    quantities
}

fn link_target(product: &gw::CatalogProduct, variant: &gw::CatalogVariant) -> LinkTarget {
    LinkTarget {
        product_id: product.id.clone(),
        shopify_variant_id: variant.id.clone(),
        inventory_item_id: variant.inventory_item_id.clone(),
    }
}

/// A listing as the plan changes it.
struct Working {
    original: ParentData,
    current: ParentData,
    last_position: i32,
    is_new: bool,
}

/// Plans one batch. `new_id` makes the ids of new listings and variants.
pub fn plan(
    run: &RunContext,
    products: &[gw::CatalogProduct],
    known: &Known,
    mut new_id: impl FnMut() -> Uuid,
) -> Plan {
    let mut plan = Plan::default();
    let mut listings: HashMap<Uuid, Working> = HashMap::new();
    let mut new_listing_order: Vec<Uuid> = Vec::new();
    for product in products {
        let count = product.variants.len() as u64;
        let found = breaches(product);
        if !found.is_empty() {
            let (what, fixes): (Vec<String>, Vec<String>) = found.into_iter().unzip();
            plan.problems
                .push(problems::over_limits(product, &what, &fixes));
            plan.counters.processed += count;
            plan.counters.failed += count;
            continue;
        }
        let mut matched: Vec<(&gw::CatalogVariant, &MatchedVariant)> = Vec::new();
        let mut unmatched: Vec<(&gw::CatalogVariant, String)> = Vec::new();
        for variant in &product.variants {
            plan.counters.processed += 1;
            let sku = master_sku(run.master_sku_field, variant);
            if sku.is_empty() {
                plan.problems.push(problems::missing_master_sku(
                    run.master_sku_field,
                    product,
                    variant,
                ));
                plan.counters.failed += 1;
            } else if let Some(holders) = known.duplicates.get(sku) {
                plan.problems.push(problems::duplicate_master_sku(
                    run.master_sku_field,
                    sku,
                    *holders,
                    product,
                    variant,
                ));
                plan.counters.failed += 1;
            } else if let Some(existing) = known.matched.get(sku) {
                matched.push((variant, existing));
            } else {
                unmatched.push((variant, sku.to_string()));
            }
        }
        let parent = parent_data(product);

        // Matched: linked; in CREATE_AND_OVERWRITE updated from Shopify, the parent data of the listings whose first
        // variant is one of them included.
        let mut parents_changed: HashSet<Uuid> = HashSet::new();
        if run.mode == ImportMode::CreateAndOverwrite {
            for (_, existing) in &matched {
                let first = known
                    .listings
                    .get(&existing.listing_id)
                    .and_then(|l| l.first_variant);
                if first == Some(existing.id)
                    && let Some(working) = working(&mut listings, known, existing.listing_id)
                    && working.current != parent
                {
                    working.current = parent.clone();
                    parents_changed.insert(existing.listing_id);
                }
            }
        }
        for (variant, existing) in &matched {
            plan.counters.linked += 1;
            let target = link_target(product, variant);
            if existing.link.as_ref() != Some(&target) {
                plan.links.push((existing.id, target));
            }
            if run.mode == ImportMode::CreateOnly {
                plan.counters.skipped += 1;
                continue;
            }
            let mut changed = false;
            let imported = imported_variant(variant);
            if imported != existing.imported {
                plan.variant_updates.push((existing.id, imported));
                changed = true;
            }
            let new_quantities = quantities(variant);
            if new_quantities != existing.quantities {
                plan.quantity_updates.push((existing.id, new_quantities));
                changed = true;
            }
            if changed || parents_changed.contains(&existing.listing_id) {
                plan.counters.updated += 1;
            } else {
                plan.counters.skipped += 1;
            }
        }

        // Unmatched: created, beside the first matched variant or in a new listing.
        if unmatched.is_empty() {
            continue;
        }
        let target = match matched
            .first()
            .map(|(_, existing)| existing.listing_id)
            .filter(|id| working(&mut listings, known, *id).is_some())
        {
            Some(id) => id,
            None => {
                let id = new_id();
                listings.insert(
                    id,
                    Working {
                        original: parent.clone(),
                        current: parent.clone(),
                        last_position: 0,
                        is_new: true,
                    },
                );
                new_listing_order.push(id);
                id
            }
        };
        for (variant, sku) in unmatched {
            let Some(working) = listings.get_mut(&target) else {
                continue;
            };
            working.last_position += 1;
            let imported = imported_variant(variant);
            if !working.is_new {
                merge_options(&mut working.current.options, &imported.option_values);
            }
            let id = new_id();
            plan.new_variants.push(NewVariant {
                id,
                listing_id: target,
                position: working.last_position,
                sku,
                data: VariantData {
                    imported,
                    ..VariantData::default()
                },
                quantities: quantities(variant),
            });
            plan.links.push((id, link_target(product, variant)));
            plan.counters.created += 1;
        }
    }
    let status = if run.pause_new_listings {
        ListingStatus::Paused
    } else {
        ListingStatus::Active
    };
    for id in new_listing_order {
        if let Some(working) = listings.remove(&id) {
            plan.new_listings.push(NewListing {
                id,
                parent: working.current,
                status,
                created_by_run_id: Some(run.run_id),
            });
        }
    }
    let mut updates: Vec<(Uuid, ParentData)> = listings
        .into_iter()
        .filter(|(_, w)| !w.is_new && w.current != w.original)
        .map(|(id, w)| (id, w.current))
        .collect();
    updates.sort_by_key(|(id, _)| *id);
    plan.parent_updates = updates;
    plan
}

/// The working copy of an existing listing (None if it vanished since the variants were read).
fn working<'a>(
    listings: &'a mut HashMap<Uuid, Working>,
    known: &Known,
    id: Uuid,
) -> Option<&'a mut Working> {
    match listings.entry(id) {
        std::collections::hash_map::Entry::Occupied(entry) => Some(entry.into_mut()),
        std::collections::hash_map::Entry::Vacant(entry) => {
            let listing = known.listings.get(&id)?;
            Some(entry.insert(Working {
                original: listing.parent.clone(),
                current: listing.parent.clone(),
                last_position: listing.last_position,
                is_new: false,
            }))
        }
    }
}

/// A variant added to an existing listing brings its option values into the listing's options (appended, never
/// reordered), so the listing describes every variant it has.
fn merge_options(options: &mut Vec<OptionDef>, values: &[NameValue]) {
    for value in values {
        match options.iter_mut().find(|o| o.name == value.name) {
            Some(option) => {
                if !option.values.contains(&value.value) {
                    option.values.push(value.value.clone());
                }
            }
            None => options.push(OptionDef {
                name: value.name.clone(),
                values: vec![value.value.clone()],
            }),
        }
    }
}

#[cfg(test)]
mod tests;
