//! Shopify's product objects as our `CatalogProduct` records. The bulk export's JSONL lines and the delta export's
//! page nodes select the same fields, so both decode into the same typed nodes (`shopify::wire::catalog`) and map
//! through here; a line or node without a field we need is an error naming the document and the field.

use serde::de::DeserializeOwned;
use serde_json::Value;
use shopbridge_proto::gateway as pb;

use crate::shopify::{
    documents::Document,
    executor::CallError,
    wire::{
        catalog::{InventoryLevelNode, MediaImageNode, MetafieldNode, ProductNode, VariantNode},
        decode,
    },
};

/// A product's child line, parsed.
pub enum Child {
    Variant(pb::CatalogVariant),
    Image(pb::CatalogImage),
    Metafield(pb::CatalogMetafield),
}

/// Lines are taken by value: a catalog has hundreds of thousands of them, decoded without a copy.
fn typed<T: DeserializeOwned>(document: Document, v: Value) -> Result<T, CallError> {
    decode(document, v)
}

pub fn metafield(document: Document, v: Value) -> Result<pb::CatalogMetafield, CallError> {
    let m: MetafieldNode = typed(document, v)?;
    Ok(pb::CatalogMetafield {
        namespace: m.namespace,
        key: m.key,
        r#type: m.kind,
        value: m.value,
    })
}

/// A product's own fields (no variants, media or metafields).
pub fn product(document: Document, v: Value) -> Result<pb::CatalogProduct, CallError> {
    let p: ProductNode = typed(document, v)?;
    let mut options: Vec<pb::CatalogOption> = p
        .options
        .into_iter()
        .map(|o| pb::CatalogOption {
            name: o.name,
            position: o.position,
            values: o.option_values.into_iter().map(|v| v.name).collect(),
        })
        .collect();
    options.sort_by_key(|o| o.position);
    Ok(pb::CatalogProduct {
        id: p.id,
        title: p.title,
        handle: p.handle,
        description_html: p.description_html,
        vendor: p.vendor,
        product_type: p.product_type,
        tags: p.tags,
        status: p.status,
        options,
        updated_at: p.updated_at,
        ..Default::default()
    })
}

/// One location's available quantity, from an inventory level.
pub fn quantity(document: Document, v: Value) -> Result<pb::CatalogQuantity, CallError> {
    let level: InventoryLevelNode = typed(document, v)?;
    let available = level
        .quantities
        .iter()
        .find(|q| q.name == "available")
        .map_or(0, |q| q.quantity);
    Ok(pb::CatalogQuantity {
        location_id: level.location.id,
        available,
    })
}

/// Parses a product's child line (variant, image or metafield); None for anything else (media that is not an
/// image).
pub fn child(document: Document, v: Value) -> Result<Option<Child>, CallError> {
    if v["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("gid://shopify/ProductVariant/"))
    {
        let v: VariantNode = typed(document, v)?;
        let weight = v.inventory_item.measurement.weight;
        let variant = pb::CatalogVariant {
            id: v.id,
            sku: v.sku.unwrap_or_default(),
            barcode: v.barcode.unwrap_or_default(),
            price: v.price,
            compare_at_price: v.compare_at_price.unwrap_or_default(),
            position: v.position,
            option_values: v
                .selected_options
                .into_iter()
                .map(|o| pb::CatalogOptionValue {
                    name: o.name,
                    value: o.value,
                })
                .collect(),
            inventory_item_id: v.inventory_item.id,
            weight_value: weight
                .as_ref()
                .map(|w| w.value.to_string())
                .unwrap_or_default(),
            weight_unit: weight.map(|w| w.unit).unwrap_or_default(),
            ..Default::default()
        };
        Ok(Some(Child::Variant(variant)))
    } else if v.get("image").is_some() {
        let media: MediaImageNode = typed(document, v)?;
        Ok(media.image.map(|image| {
            Child::Image(pb::CatalogImage {
                id: media.id,
                url: image.url,
                alt_text: image.alt_text.unwrap_or_default(),
            })
        }))
    } else if v.get("namespace").is_some() {
        Ok(Some(Child::Metafield(metafield(document, v)?)))
    } else {
        Ok(None)
    }
}
