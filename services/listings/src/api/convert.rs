//! The API's messages and the catalog's types: listings out (with variants, quantities and links), and listings in
//! (CreateListings), checked field by field so that bad input is refused with a message naming what is wrong.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use shopbridge_proto::listings as pb;
use uuid::Uuid;

use crate::{
    catalog::model::{
        ImageRef, ImportedVariant, Link, Listing, ListingStatus, NameValue, NewListing, NewVariant,
        OptionDef, ParentData, Quantity, Variant, VariantData, Weight, WeightUnit,
    },
    decimal,
    error::{Error, Result},
};

/// Listings per CreateListings call (a bigger catalog is sent in several calls).
pub const MAX_LISTINGS_PER_CALL: usize = 500;
/// Variants per listing in CreateListings: Shopify's own maximum per product.
pub const MAX_VARIANTS_PER_LISTING: usize = 2048;
/// The longest SKU (Shopify's SKU field is limited to 255 characters too).
pub const MAX_SKU_CHARS: usize = 255;

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

fn status_out(status: ListingStatus) -> pb::ListingStatus {
    match status {
        ListingStatus::Active => pb::ListingStatus::Active,
        ListingStatus::Paused => pb::ListingStatus::Paused,
    }
}

fn unit_out(unit: WeightUnit) -> pb::WeightUnit {
    match unit {
        WeightUnit::Oz => pb::WeightUnit::Oz,
        WeightUnit::Lb => pb::WeightUnit::Lb,
        WeightUnit::Kg => pb::WeightUnit::Kg,
        WeightUnit::G => pb::WeightUnit::G,
    }
}

fn name_values_out(values: &[NameValue]) -> Vec<pb::OptionValue> {
    values
        .iter()
        .map(|v| pb::OptionValue {
            name: v.name.clone(),
            value: v.value.clone(),
        })
        .collect()
}

fn custom_fields_out(fields: &[NameValue]) -> Vec<pb::CustomField> {
    fields
        .iter()
        .map(|f| pb::CustomField {
            name: f.name.clone(),
            value: f.value.clone(),
        })
        .collect()
}

fn images_out(images: &[ImageRef]) -> Vec<pb::Image> {
    images
        .iter()
        .map(|i| pb::Image {
            url: i.url.clone(),
            alt_text: i.alt_text.clone(),
        })
        .collect()
}

fn link_out(link: &Link) -> pb::ShopifyLink {
    pb::ShopifyLink {
        channel_id: link.channel_id.to_string(),
        product_id: link.product_id.clone(),
        variant_id: link.shopify_variant_id.clone(),
        inventory_item_id: link.inventory_item_id.clone(),
        linked_at: Some(timestamp(link.linked_at)),
    }
}

fn variant_out(variant: &Variant) -> pb::Variant {
    let data = &variant.data;
    pb::Variant {
        variant_id: variant.id.to_string(),
        sku: variant.sku.clone(),
        barcode: data.imported.barcode.clone(),
        upc: data.upc.clone(),
        gtin: data.gtin.clone(),
        mpn: data.mpn.clone(),
        asin: data.asin.clone(),
        option_values: name_values_out(&data.imported.option_values),
        weight: data.imported.weight.as_ref().map(|w| pb::Weight {
            value: w.value.clone(),
            unit: unit_out(w.unit) as i32,
        }),
        images: images_out(&data.images),
        custom_fields: custom_fields_out(&data.imported.custom_fields),
        quantities: variant
            .quantities
            .iter()
            .map(|q| pb::LocationQuantity {
                location_id: q.location_id.clone(),
                quantity: q.quantity,
            })
            .collect(),
        total_quantity: variant.total_quantity,
        cost: data.cost.clone().unwrap_or_default(),
        list_price: data.list_price.clone().unwrap_or_default(),
        msrp: data.msrp.clone().unwrap_or_default(),
        map: data.map.clone().unwrap_or_default(),
        links: variant.links.iter().map(link_out).collect(),
    }
}

pub fn listing_out(listing: &Listing) -> pb::Listing {
    let parent = &listing.parent;
    pb::Listing {
        listing_id: listing.id.to_string(),
        title: parent.title.clone(),
        description_html: parent.description_html.clone(),
        brand: parent.brand.clone(),
        product_type: parent.product_type.clone(),
        tags: parent.tags.clone(),
        options: parent
            .options
            .iter()
            .map(|o| pb::Option {
                name: o.name.clone(),
                values: o.values.clone(),
            })
            .collect(),
        images: images_out(&parent.images),
        custom_fields: custom_fields_out(&parent.custom_fields),
        status: status_out(listing.status) as i32,
        variants: listing.variants.iter().map(variant_out).collect(),
        created_by_run_id: listing
            .created_by_run_id
            .map(|r| r.to_string())
            .unwrap_or_default(),
        created_at: Some(timestamp(listing.created_at)),
        updated_at: Some(timestamp(listing.updated_at)),
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidArgument(message)
}

/// A money field: empty is "not set".
fn money_in(what: &str, value: &str) -> Result<Option<String>> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    decimal::money(value).map(Some).ok_or_else(|| {
        invalid(format!(
            "{what} `{value}` is not an amount: a non-negative decimal with at most 4 fractional digits, e.g. 19.99"
        ))
    })
}

fn weight_in(what: &str, weight: Option<&pb::Weight>) -> Result<Option<Weight>> {
    let Some(weight) = weight else {
        return Ok(None);
    };
    if weight.value.trim().is_empty() && weight.unit == pb::WeightUnit::Unspecified as i32 {
        return Ok(None);
    }
    let value = decimal::canonical(&weight.value).ok_or_else(|| {
        invalid(format!(
            "{what}: weight `{}` is not a non-negative decimal",
            weight.value
        ))
    })?;
    let unit = match pb::WeightUnit::try_from(weight.unit) {
        Ok(pb::WeightUnit::Oz) => WeightUnit::Oz,
        Ok(pb::WeightUnit::Lb) => WeightUnit::Lb,
        Ok(pb::WeightUnit::Kg) => WeightUnit::Kg,
        Ok(pb::WeightUnit::G) => WeightUnit::G,
        _ => {
            return Err(invalid(format!(
                "{what}: a weight needs its unit (WEIGHT_UNIT_OZ, _LB, _KG or _G)"
            )));
        }
    };
    Ok(Some(Weight { value, unit }))
}

fn images_in(what: &str, images: &[pb::Image]) -> Result<Vec<ImageRef>> {
    images
        .iter()
        .map(|i| {
            if i.url.trim().is_empty() {
                Err(invalid(format!("{what}: an image needs its url")))
            } else {
                Ok(ImageRef {
                    url: i.url.trim().to_string(),
                    alt_text: i.alt_text.clone(),
                })
            }
        })
        .collect()
}

fn custom_fields_in(what: &str, fields: &[pb::CustomField]) -> Result<Vec<NameValue>> {
    let mut seen = HashSet::new();
    fields
        .iter()
        .map(|f| {
            let name = f.name.trim();
            if name.is_empty() {
                return Err(invalid(format!("{what}: a custom field needs its name")));
            }
            if !seen.insert(name.to_string()) {
                return Err(invalid(format!(
                    "{what}: custom field `{name}` is given twice"
                )));
            }
            Ok(NameValue {
                name: name.to_string(),
                value: f.value.clone(),
            })
        })
        .collect()
}

fn options_in(what: &str, options: &[pb::Option]) -> Result<Vec<OptionDef>> {
    let mut names = HashSet::new();
    options
        .iter()
        .map(|o| {
            let name = o.name.trim();
            if name.is_empty() {
                return Err(invalid(format!("{what}: an option needs its name")));
            }
            if !names.insert(name.to_string()) {
                return Err(invalid(format!("{what}: option `{name}` is given twice")));
            }
            let mut values = Vec::new();
            for value in &o.values {
                if !values.contains(value) {
                    values.push(value.clone());
                }
            }
            Ok(OptionDef {
                name: name.to_string(),
                values,
            })
        })
        .collect()
}

/// Checks a CreateListings request and turns it into rows; ids are new, links and timestamps ignored.
pub fn new_listings(
    listings: &[pb::Listing],
    new_id: &mut impl FnMut() -> Uuid,
) -> Result<(Vec<NewListing>, Vec<NewVariant>)> {
    if listings.is_empty() {
        return Err(invalid(
            "listings is empty: send at least one listing".into(),
        ));
    }
    if listings.len() > MAX_LISTINGS_PER_CALL {
        return Err(invalid(format!(
            "{} listings in one call; send at most {MAX_LISTINGS_PER_CALL} per call",
            listings.len()
        )));
    }
    let mut skus = HashSet::new();
    let mut new_listings = Vec::with_capacity(listings.len());
    let mut new_variants = Vec::new();
    for (index, listing) in listings.iter().enumerate() {
        let what = format!("listings[{index}]");
        let title = listing.title.trim();
        if title.is_empty() {
            return Err(invalid(format!("{what}: a listing needs a title")));
        }
        let status = match pb::ListingStatus::try_from(listing.status) {
            Ok(pb::ListingStatus::Unspecified | pb::ListingStatus::Active) => ListingStatus::Active,
            Ok(pb::ListingStatus::Paused) => ListingStatus::Paused,
            Err(_) => {
                return Err(invalid(format!(
                    "{what}: unknown status {}",
                    listing.status
                )));
            }
        };
        let options = options_in(&what, &listing.options)?;
        if listing.variants.is_empty() {
            return Err(invalid(format!(
                "{what}: a listing needs at least one variant (the variant holds the SKU)"
            )));
        }
        if listing.variants.len() > MAX_VARIANTS_PER_LISTING {
            return Err(invalid(format!(
                "{what}: {} variants; at most {MAX_VARIANTS_PER_LISTING}",
                listing.variants.len()
            )));
        }
        let id = new_id();
        for (position, variant) in listing.variants.iter().enumerate() {
            let sku = variant.sku.trim();
            let what = format!("{what}.variants[{position}]");
            if sku.is_empty() {
                return Err(invalid(format!("{what}: a variant needs a SKU")));
            }
            if sku.chars().count() > MAX_SKU_CHARS {
                return Err(invalid(format!(
                    "{what}: the SKU is longer than {MAX_SKU_CHARS} characters"
                )));
            }
            if !skus.insert(sku.to_string()) {
                return Err(invalid(format!(
                    "{what}: SKU `{sku}` is given twice in this request; each variant needs its own"
                )));
            }
            let what = format!("{what} (SKU {sku})");
            let mut option_names = HashSet::new();
            for value in &variant.option_values {
                if !options.iter().any(|o| o.name == value.name) {
                    return Err(invalid(format!(
                        "{what}: option `{}` is not one of the listing's options",
                        value.name
                    )));
                }
                if !option_names.insert(value.name.clone()) {
                    return Err(invalid(format!(
                        "{what}: option `{}` has two values",
                        value.name
                    )));
                }
            }
            let mut locations = HashSet::new();
            let mut quantities = Vec::new();
            for q in &variant.quantities {
                let location = q.location_id.trim();
                if location.is_empty() {
                    return Err(invalid(format!("{what}: a quantity needs its location_id")));
                }
                if !locations.insert(location.to_string()) {
                    return Err(invalid(format!(
                        "{what}: location `{location}` has two quantities"
                    )));
                }
                quantities.push(Quantity {
                    location_id: location.to_string(),
                    quantity: q.quantity,
                });
            }
            quantities.sort_by(|a, b| a.location_id.cmp(&b.location_id));
            new_variants.push(NewVariant {
                id: new_id(),
                listing_id: id,
                position: position as i32 + 1,
                sku: sku.to_string(),
                data: VariantData {
                    imported: ImportedVariant {
                        barcode: variant.barcode.trim().to_string(),
                        option_values: variant
                            .option_values
                            .iter()
                            .map(|v| NameValue {
                                name: v.name.clone(),
                                value: v.value.clone(),
                            })
                            .collect(),
                        weight: weight_in(&what, variant.weight.as_ref())?,
                        custom_fields: custom_fields_in(&what, &variant.custom_fields)?,
                    },
                    upc: variant.upc.trim().to_string(),
                    gtin: variant.gtin.trim().to_string(),
                    mpn: variant.mpn.trim().to_string(),
                    asin: variant.asin.trim().to_string(),
                    images: images_in(&what, &variant.images)?,
                    cost: money_in(&format!("{what}: cost"), &variant.cost)?,
                    list_price: money_in(&format!("{what}: list_price"), &variant.list_price)?,
                    msrp: money_in(&format!("{what}: msrp"), &variant.msrp)?,
                    map: money_in(&format!("{what}: map"), &variant.map)?,
                },
                quantities,
            });
        }
        new_listings.push(NewListing {
            id,
            parent: ParentData {
                title: title.to_string(),
                description_html: listing.description_html.clone(),
                brand: listing.brand.trim().to_string(),
                product_type: listing.product_type.trim().to_string(),
                tags: listing.tags.clone(),
                options,
                images: images_in(&what, &listing.images)?,
                custom_fields: custom_fields_in(&what, &listing.custom_fields)?,
            },
            status,
            created_by_run_id: None,
        });
    }
    Ok((new_listings, new_variants))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(sku: &str) -> pb::Variant {
        pb::Variant {
            sku: sku.into(),
            cost: "4.5".into(),
            weight: Some(pb::Weight {
                value: "1.50".into(),
                unit: pb::WeightUnit::Kg as i32,
            }),
            quantities: vec![pb::LocationQuantity {
                location_id: "gid://shopify/Location/1".into(),
                quantity: 3,
            }],
            ..Default::default()
        }
    }

    fn listing(variants: Vec<pb::Variant>) -> pb::Listing {
        pb::Listing {
            title: "Tee".into(),
            variants,
            ..Default::default()
        }
    }

    #[test]
    fn a_good_listing_becomes_rows_with_canonical_decimals() {
        let (listings, variants) =
            new_listings(&[listing(vec![variant("A-1")])], &mut Uuid::now_v7).unwrap();
        assert_eq!(listings.len(), 1);
        assert_eq!(variants[0].listing_id, listings[0].id);
        assert_eq!(variants[0].data.cost.as_deref(), Some("4.5"));
        assert_eq!(
            variants[0]
                .data
                .imported
                .weight
                .as_ref()
                .map(|w| w.value.as_str()),
            Some("1.5")
        );
    }

    #[test]
    fn bad_listings_are_refused_naming_what_is_wrong() {
        let cases: Vec<(Vec<pb::Listing>, &str)> = vec![
            (vec![], "at least one listing"),
            (vec![listing(vec![])], "at least one variant"),
            (vec![listing(vec![variant("")])], "needs a SKU"),
            (
                vec![listing(vec![variant("A"), variant("A")])],
                "given twice",
            ),
            (
                vec![listing(vec![pb::Variant {
                    cost: "-1".into(),
                    ..variant("A")
                }])],
                "cost",
            ),
            (
                vec![listing(vec![pb::Variant {
                    weight: Some(pb::Weight {
                        value: "2".into(),
                        unit: 0,
                    }),
                    ..variant("A")
                }])],
                "its unit",
            ),
            (
                vec![listing(vec![pb::Variant {
                    option_values: vec![pb::OptionValue {
                        name: "Size".into(),
                        value: "M".into(),
                    }],
                    ..variant("A")
                }])],
                "not one of the listing's options",
            ),
            (
                vec![pb::Listing {
                    title: " ".into(),
                    ..listing(vec![variant("A")])
                }],
                "needs a title",
            ),
        ];
        for (input, expected) in cases {
            match new_listings(&input, &mut Uuid::now_v7) {
                Err(Error::InvalidArgument(m)) => assert!(m.contains(expected), "{m}"),
                other => panic!("{expected}: {other:?}"),
            }
        }
    }
}
