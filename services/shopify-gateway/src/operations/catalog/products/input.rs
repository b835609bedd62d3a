//! One product as `productSet`'s input, checked against what Shopify is known to refuse before it is sent.

use shopbridge_proto::gateway as pb;

use super::super::{check_metafield, checked_money, decimal, metafield_input, shopify_name};
use crate::{
    operations::MUTATION_COST,
    outcome::invalid,
    shopify::wire::{
        UserError,
        catalog::{
            BarcodeInput, InventoryItemSetInput, MeasurementInput, OptionSetInput,
            OptionValueSetInput, ProductSet, ProductSetIdentifiers, ProductSetInput,
            ProductVariantSetInput, VariantOptionValueInput, WeightInput,
        },
    },
};

/// Shopify's variant limit per product (since 2025-10-15, for every shop).
pub const MAX_VARIANTS: usize = 2048;
/// Shopify's option limit per product.
pub const MAX_OPTIONS: usize = 3;

/// productSet's variables for one product (also one line of the bulk mutation), or the problems that keep it from
/// being sent.
pub fn product_set(
    index: usize,
    p: &pb::ProductInput,
) -> Result<(ProductSet, f64), Vec<UserError>> {
    let list = ("products", index);
    let mut errors = Vec::new();
    let mut input = ProductSetInput::default();
    let identifier = match &p.identifier {
        Some(pb::product_input::Identifier::Id(id)) => {
            if !id.starts_with("gid://shopify/Product/") {
                errors.push(invalid(
                    "products",
                    index,
                    &["id"],
                    "INVALID",
                    format!("{id:?} is not a product id (gid://shopify/Product/<id>)"),
                ));
            }
            ProductSetIdentifiers::Id(id.clone())
        }
        Some(pb::product_input::Identifier::Handle(handle)) => {
            if handle.trim().is_empty() || handle.chars().count() > 255 {
                errors.push(invalid(
                    "products",
                    index,
                    &["handle"],
                    "INVALID",
                    "a handle has 1 to 255 characters".to_string(),
                ));
            }
            input.handle = Some(handle.clone());
            ProductSetIdentifiers::Handle(handle.clone())
        }
        // A product is created by handle, never anonymously: productSet with a handle updates the product that has
        // it, so a command re-run after a crash (its first run's calls applied, its result not committed) finds the
        // product it created instead of creating a second one.
        None => {
            errors.push(invalid(
                "products",
                index,
                &["handle"],
                "MISSING_IDENTIFIER",
                "give the product's id, or a handle for a new one (a handle keeps a re-sent command from creating it twice)"
                    .to_string(),
            ));
            ProductSetIdentifiers::Handle(String::new())
        }
    };
    if matches!(p.identifier, Some(pb::product_input::Identifier::Handle(_)))
        && p.title.trim().is_empty()
    {
        // Shopify creates a missing handle's product, and a product needs a title; for an existing one the title is
        // left as it is, so an empty title is only safe with an id.
        errors.push(invalid(
            "products",
            index,
            &["title"],
            "BLANK",
            "a product given by handle may be created and needs a title (give the id to update an existing one without it)"
                .to_string(),
        ));
    }
    if p.title.chars().count() > 255 {
        errors.push(invalid(
            "products",
            index,
            &["title"],
            "TOO_LONG",
            "a title has at most 255 characters".to_string(),
        ));
    }
    let given = |v: &String| (!v.is_empty()).then(|| v.clone());
    input.title = given(&p.title);
    input.description_html = given(&p.description_html);
    input.vendor = given(&p.vendor);
    input.product_type = given(&p.product_type);
    input.tags = p.tags.clone();
    match pb::ProductStatus::try_from(p.status) {
        Ok(pb::ProductStatus::Unspecified) => {}
        Ok(status) => {
            input.status = Some(shopify_name(status.as_str_name(), "PRODUCT_STATUS_").to_string());
        }
        Err(_) => errors.push(invalid(
            "products",
            index,
            &["status"],
            "INVALID",
            format!("unknown product status {}", p.status),
        )),
    }
    if p.options.len() > MAX_OPTIONS {
        errors.push(invalid(
            "products",
            index,
            &["options"],
            "TOO_MANY",
            format!(
                "{} options: Shopify allows at most {MAX_OPTIONS} per product",
                p.options.len()
            ),
        ));
    }
    input.product_options = p
        .options
        .iter()
        .enumerate()
        .map(|(i, o)| OptionSetInput {
            name: o.name.clone(),
            position: i + 1,
            values: o
                .values
                .iter()
                .map(|v| OptionValueSetInput { name: v.clone() })
                .collect(),
        })
        .collect();
    if p.variants.len() > MAX_VARIANTS {
        errors.push(invalid(
            "products",
            index,
            &["variants"],
            "TOO_MANY",
            format!(
                "{} variants: Shopify allows at most {MAX_VARIANTS} per product",
                p.variants.len()
            ),
        ));
    }
    let mut variant_metafields = 0;
    if !p.variants.is_empty() {
        let mut variants = Vec::with_capacity(p.variants.len());
        for (i, v) in p.variants.iter().enumerate() {
            let n = i.to_string();
            let at = |f: &'static str| ["variants", n.as_str(), f];
            let mut variant = ProductVariantSetInput::default();
            if !v.id.is_empty() {
                if !v.id.starts_with("gid://shopify/ProductVariant/") {
                    errors.push(invalid(
                        "products",
                        index,
                        &at("id"),
                        "INVALID",
                        format!(
                            "{:?} is not a variant id (gid://shopify/ProductVariant/<id>)",
                            v.id
                        ),
                    ));
                }
                variant.id = Some(v.id.clone());
            }
            variant.option_values = v
                .option_values
                .iter()
                .map(|o| VariantOptionValueInput {
                    option_name: o.option_name.clone(),
                    name: o.name.clone(),
                })
                .collect();
            variant.sku = given(&v.sku);
            if !v.barcode.is_empty() {
                // Never both fields: Shopify refuses that (INCOMPATIBLE_BARCODE_FIELDS).
                match barcode_input(&v.barcode) {
                    Some(barcode) => variant.barcodes = Some(vec![barcode]),
                    None => variant.barcode = Some(v.barcode.clone()),
                }
            }
            if let Some(price) = &v.price {
                variant.price = Some(checked_money(&mut errors, list, &at("price"), price));
            }
            if let Some(compare_at) = &v.compare_at_price {
                variant.compare_at_price = Some(checked_money(
                    &mut errors,
                    list,
                    &at("compare_at_price"),
                    compare_at,
                ));
            }
            let mut item = InventoryItemSetInput::default();
            if let Some(cost) = &v.cost {
                item.cost = Some(checked_money(&mut errors, list, &at("cost"), cost));
            }
            if let Some(weight) = &v.weight {
                // Shopify's WeightInput.value is a Float; the decimal string is checked, then passed as a number.
                let unit =
                    pb::WeightUnit::try_from(weight.unit).unwrap_or(pb::WeightUnit::Unspecified);
                match (weight.value.trim().parse::<serde_json::Number>(), unit) {
                    (Ok(value), unit)
                        if decimal(weight.value.trim()) && unit != pb::WeightUnit::Unspecified =>
                    {
                        item.measurement = Some(MeasurementInput {
                            weight: WeightInput {
                                value,
                                unit: shopify_name(unit.as_str_name(), "WEIGHT_UNIT_").to_string(),
                            },
                        });
                    }
                    _ => errors.push(invalid(
                        "products",
                        index,
                        &at("weight"),
                        "INVALID",
                        format!("weight {:?} needs a decimal value and a unit", weight.value),
                    )),
                }
            }
            if item.cost.is_some() || item.measurement.is_some() {
                variant.inventory_item = Some(item);
            }
            if !v.metafields.is_empty() {
                for m in &v.metafields {
                    check_metafield(&mut errors, list, &at("metafields"), m);
                }
                variant_metafields += v.metafields.len();
                variant.metafields = v
                    .metafields
                    .iter()
                    .map(|m| metafield_input(m, None))
                    .collect();
            }
            variants.push(variant);
        }
        input.variants = variants;
    }
    if !p.metafields.is_empty() {
        for m in &p.metafields {
            check_metafield(&mut errors, list, &["metafields"], m);
        }
        input.metafields = p
            .metafields
            .iter()
            .map(|m| metafield_input(m, None))
            .collect();
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Shopify's dynamic cost of productSet, plus the product and up to 250 variants selected in the payload.
    let cost = MUTATION_COST
        + 0.2 * p.variants.len() as f64
        + 0.4 * (variant_metafields + p.metafields.len()) as f64
        + 2.0
        + 250.0 * 2.0;
    Ok((ProductSet { identifier, input }, cost))
}

/// A variant's barcode as 2026-10's `barcodes` entry (`{type, value}`; `barcode` is deprecated there:
/// https://shopify.dev/changelog/product-variant-barcode-is-being-replaced-by-barcodes). The type is inferred from the
/// code's form, which the changelog does not spell out [INF]: 8 or 13 digits EAN (13 starting 978/979: ISBN), 12
/// digits UPC, 14 digits GTIN, 10 characters of an ISBN-10, `B0` and 8 letters or digits ASIN. None when no type fits:
/// the caller then sends the deprecated `barcode`, still accepted in 2026-10, rather than guess.
pub fn barcode_input(code: &str) -> Option<BarcodeInput> {
    let code = code.trim();
    if !code.is_ascii() {
        return None;
    }
    let digits = code.bytes().all(|b| b.is_ascii_digit());
    let kind = match code.len() {
        8 if digits => "EAN",
        12 if digits => "UPC",
        13 if digits && (code.starts_with("978") || code.starts_with("979")) => "ISBN",
        13 if digits => "EAN",
        14 if digits => "GTIN",
        10 if code.starts_with("B0") && code.bytes().all(|b| b.is_ascii_alphanumeric()) => "ASIN",
        10 if code[..9].bytes().all(|b| b.is_ascii_digit())
            && code[9..].bytes().all(|b| b.is_ascii_digit() || b == b'X') =>
        {
            "ISBN"
        }
        _ => return None,
    };
    Some(BarcodeInput {
        kind,
        value: code.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde_json::json;

    use super::*;
    use crate::shopify::wire;
    use shopbridge_proto::common::Money;

    fn money(amount: &str) -> Option<Money> {
        Some(Money {
            amount: amount.into(),
            currency_code: "USD".into(),
        })
    }

    #[test]
    fn a_product_becomes_product_set_variables_with_money_as_strings() {
        let product = pb::ProductInput {
            identifier: Some(pb::product_input::Identifier::Handle("tee".into())),
            title: "Tee".into(),
            status: pb::ProductStatus::Draft as i32,
            options: vec![pb::ProductOptionInput {
                name: "Size".into(),
                values: vec!["M".into()],
            }],
            variants: vec![pb::VariantInput {
                option_values: vec![pb::VariantOptionValue {
                    option_name: "Size".into(),
                    name: "M".into(),
                }],
                sku: "TEE-M".into(),
                price: money("19.90"),
                cost: money("4.10"),
                weight: Some(pb::Weight {
                    value: "0.25".into(),
                    unit: pb::WeightUnit::Kilograms as i32,
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let (request, _) = product_set(0, &product).unwrap();
        let vars = wire::variables(&request);
        assert_eq!(vars["identifier"], json!({"handle": "tee"}));
        assert_eq!(vars["input"]["handle"], "tee");
        assert_eq!(vars["input"]["status"], "DRAFT");
        let variant = &vars["input"]["variants"][0];
        assert_eq!(variant["price"], "19.90");
        assert_eq!(variant["inventoryItem"]["cost"], "4.10");
        assert_eq!(
            variant["inventoryItem"]["measurement"]["weight"],
            json!({"value": 0.25, "unit": "KILOGRAMS"})
        );
        assert_eq!(vars["input"]["productOptions"][0]["values"][0]["name"], "M");
    }

    #[test]
    fn bad_products_are_named_and_not_sent() {
        let product = pb::ProductInput {
            variants: (0..2049).map(|_| pb::VariantInput::default()).collect(),
            metafields: vec![pb::MetafieldValue {
                namespace: "x".into(),
                key: "k".into(),
                r#type: String::new(),
                value: "v".into(),
            }],
            ..Default::default()
        };
        let errors = product_set(4, &product).unwrap_err();
        let fields: Vec<String> = errors
            .iter()
            .map(|e| e.field.clone().unwrap_or_default().join("."))
            .collect();
        assert!(
            fields.contains(&"products.4.handle".to_string()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"products.4.variants".to_string()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"products.4.metafields.namespace".to_string()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"products.4.metafields.key".to_string()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"products.4.metafields.type".to_string()),
            "{fields:?}"
        );
        let price = pb::ProductInput {
            identifier: Some(pb::product_input::Identifier::Handle("t".into())),
            title: "T".into(),
            variants: vec![pb::VariantInput {
                price: money("12,50"),
                ..Default::default()
            }],
            ..Default::default()
        };
        let errors = product_set(0, &price).unwrap_err();
        assert_eq!(
            errors[0].field.clone().unwrap().join("."),
            "products.0.variants.0.price"
        );
    }

    #[test]
    fn barcodes_are_typed_by_their_form_or_left_to_the_old_field() {
        let typed = |code: &str| barcode_input(code).map(|b| b.kind.to_string());
        assert_eq!(typed("012345678905").as_deref(), Some("UPC"));
        assert_eq!(typed("4006381333931").as_deref(), Some("EAN"));
        assert_eq!(typed("96385074").as_deref(), Some("EAN"));
        assert_eq!(typed("9780306406157").as_deref(), Some("ISBN"));
        assert_eq!(typed("030640615X").as_deref(), Some("ISBN"));
        assert_eq!(typed("10012345678902").as_deref(), Some("GTIN"));
        assert_eq!(typed("B08N5WRWNW").as_deref(), Some("ASIN"));
        assert_eq!(typed("BAR-1"), None);
        assert_eq!(typed("ÄÖÜ1234567"), None);
        assert_eq!(
            wire::catalog::BarcodeInput::serialize(
                &barcode_input(" 012345678905 ").unwrap(),
                serde_json::value::Serializer
            )
            .unwrap(),
            json!({"type": "UPC", "value": "012345678905"})
        );
    }
}
