//! Shopify's product objects as our `CatalogProduct` records. The bulk export's JSONL lines and the delta export's
//! page nodes use the same field names, so both map through here. These are bulk JSONL lines passed through as JSON
//! (the one place `Value` is read field by field); the delta export checks its pages' shape first
//! (`shopify::wire::catalog::DeltaProduct`).

use serde_json::Value;
use shopbridge_proto::gateway as pb;

/// A product's child line, parsed.
pub enum Child {
    Variant(pb::CatalogVariant),
    Image(pb::CatalogImage),
    Metafield(pb::CatalogMetafield),
}

fn s(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

pub fn metafield(v: &Value) -> pb::CatalogMetafield {
    pb::CatalogMetafield {
        namespace: s(v, "namespace"),
        key: s(v, "key"),
        r#type: s(v, "type"),
        value: s(v, "value"),
    }
}
/// A product's own fields (no variants, media or metafields), from a product object of the bulk JSONL or of a
/// products page: both use the same field names.
pub fn product(v: &Value) -> pb::CatalogProduct {
    let id = s(v, "id");
    let mut options: Vec<pb::CatalogOption> = v["options"]
        .as_array()
        .map(|o| {
            o.iter()
                .map(|o| pb::CatalogOption {
                    name: s(o, "name"),
                    position: o["position"].as_u64().unwrap_or(0) as u32,
                    values: o["optionValues"]
                        .as_array()
                        .map(|vs| vs.iter().map(|x| s(x, "name")).collect())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    options.sort_by_key(|o| o.position);
    pb::CatalogProduct {
        id,
        title: s(v, "title"),
        handle: s(v, "handle"),
        description_html: s(v, "descriptionHtml"),
        vendor: s(v, "vendor"),
        product_type: s(v, "productType"),
        tags: v["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        status: s(v, "status"),
        options,
        updated_at: s(v, "updatedAt"),
        ..Default::default()
    }
}

/// One location's available quantity, from an inventory level (`location { id } quantities { name quantity }`).
pub fn quantity(v: &Value) -> pb::CatalogQuantity {
    let available = v["quantities"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["name"] == "available"))
        .and_then(|q| q["quantity"].as_i64())
        .unwrap_or(0);
    pb::CatalogQuantity {
        location_id: s(&v["location"], "id"),
        available,
    }
}

/// Parses a product's child line (variant, image or metafield); None for anything else.
pub fn child(v: &Value) -> Option<Child> {
    let id = s(v, "id");
    if id.starts_with("gid://shopify/ProductVariant/") {
        let weight = &v["inventoryItem"]["measurement"]["weight"];
        let variant = pb::CatalogVariant {
            id: id.clone(),
            sku: s(v, "sku"),
            barcode: s(v, "barcode"),
            price: s(v, "price"),
            compare_at_price: s(v, "compareAtPrice"),
            position: v["position"].as_u64().unwrap_or(0) as u32,
            option_values: v["selectedOptions"]
                .as_array()
                .map(|o| {
                    o.iter()
                        .map(|o| pb::CatalogOptionValue {
                            name: s(o, "name"),
                            value: s(o, "value"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            inventory_item_id: s(&v["inventoryItem"], "id"),
            weight_value: s(weight, "value"),
            weight_unit: s(weight, "unit"),
            ..Default::default()
        };
        Some(Child::Variant(variant))
    } else if v.get("image").is_some() {
        let image = &v["image"];
        Some(Child::Image(pb::CatalogImage {
            id,
            url: s(image, "url"),
            alt_text: s(image, "altText"),
        }))
    } else if v.get("namespace").is_some() {
        Some(Child::Metafield(metafield(v)))
    } else {
        None
    }
}
