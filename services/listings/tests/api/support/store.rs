//! A Shopify store for imports: products made by a deterministic generator (options, variants, images, metafields,
//! weights in every unit, quantities at every location), written into the simulator the way a merchant's tools
//! would at scale (a bulk mutation of `productSet`s through a staged upload), and the catalog an import of it must
//! produce, computed from the same description.

use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};
use shopbridge_proto::listings as pb;
use shopify_sim::{SimClient, client::SeedRequestJson};

#[derive(Debug, Clone)]
pub struct ProductSpec {
    pub title: String,
    pub description_html: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    /// Option names with their values, in order.
    pub options: Vec<(String, Vec<String>)>,
    /// (url, alt)
    pub images: Vec<(String, String)>,
    /// (namespace, key, value)
    pub metafields: Vec<(String, String, String)>,
    pub variants: Vec<VariantSpec>,
}

#[derive(Debug, Clone)]
pub struct VariantSpec {
    pub sku: String,
    pub barcode: String,
    pub option_values: Vec<(String, String)>,
    /// (value, Shopify unit)
    pub weight: (f64, &'static str),
    /// Available quantity at each location, in the order of the store's locations.
    pub quantities: Vec<i64>,
    pub metafields: Vec<(String, String, String)>,
    pub price: String,
    pub compare_at_price: String,
}

const UNITS: [&str; 4] = ["GRAMS", "KILOGRAMS", "OUNCES", "POUNDS"];
const SIZES: [&str; 3] = ["S", "M", "L"];
const COLORS: [&str; 2] = ["Red", "Blue"];
const MATERIALS: [&str; 2] = ["Cotton", "Wool"];
const VENDORS: [&str; 4] = ["Acme", "Globex", "Initech", "Hooli"];

/// `count` products from `first` on: 1 to 8 variants each over 1 to 3 options, 1 to 3 images, product and variant
/// metafields, weights cycling through every unit, quantities at `locations` locations.
pub fn generate(first: usize, count: usize, locations: usize) -> Vec<ProductSpec> {
    (first..first + count)
        .map(|i| {
            let variants = 1 + i % 8;
            let option_count = match variants {
                1..=3 => 1,
                4..=6 => 2,
                _ => 3,
            };
            let mut combos: Vec<Vec<(String, String)>> = Vec::new();
            'combos: for material in MATERIALS {
                for color in COLORS {
                    for size in SIZES {
                        if combos.len() == variants {
                            break 'combos;
                        }
                        let mut combo = vec![("Size".to_string(), size.to_string())];
                        if option_count > 1 {
                            combo.push(("Color".into(), color.into()));
                        }
                        if option_count > 2 {
                            combo.push(("Material".into(), material.into()));
                        }
                        if !combos.contains(&combo) {
                            combos.push(combo);
                        }
                    }
                }
            }
            let mut options: Vec<(String, Vec<String>)> = Vec::new();
            for combo in &combos {
                for (name, value) in combo {
                    match options.iter_mut().find(|(n, _)| n == name) {
                        Some((_, values)) if !values.contains(value) => values.push(value.clone()),
                        Some(_) => {}
                        None => options.push((name.clone(), vec![value.clone()])),
                    }
                }
            }
            ProductSpec {
                title: format!("{} Product {i}", VENDORS[i % VENDORS.len()]),
                description_html: format!("<p>Product {i}, <b>made well</b>.</p>"),
                vendor: VENDORS[i % VENDORS.len()].into(),
                product_type: ["Toys", "Beds", "Leashes"][i % 3].into(),
                tags: vec!["imported".into(), format!("group-{}", i % 7)],
                options,
                images: (0..1 + i % 3)
                    .map(|k| {
                        (
                            format!("https://cdn.shopify.com/s/files/1/0001/products/p{i}-{k}.jpg"),
                            format!("Product {i} picture {k}"),
                        )
                    })
                    .collect(),
                metafields: vec![
                    (
                        "specs".into(),
                        "material".into(),
                        format!("fabric {}", i % 5),
                    ),
                    ("custom".into(), "care".into(), "Machine wash".into()),
                ],
                variants: combos
                    .into_iter()
                    .enumerate()
                    .map(|(j, combo)| VariantSpec {
                        sku: format!("SKU-{i:05}-{j}"),
                        barcode: format!("BC{i:05}{j:02}"),
                        option_values: combo,
                        weight: (
                            ((i * 7 + j) % 50) as f64 + ((i + j) % 4) as f64 * 0.25,
                            UNITS[(i + j) % UNITS.len()],
                        ),
                        quantities: (0..locations)
                            .map(|l| ((i * 31 + j * 7 + l * 3) % 40) as i64)
                            .collect(),
                        metafields: vec![(
                            "custom".into(),
                            "color_code".into(),
                            format!("CC-{i}-{j}"),
                        )],
                        price: format!("{}.99", 10 + i % 50),
                        compare_at_price: format!("{}.00", 70 + i % 20),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The store's locations (the shop's own and `locations - 1` warehouses), as GIDs in a stable order.
pub async fn locations(sim: &SimClient, shop: &str, token: &str, locations: usize) -> Vec<String> {
    sim.seed(
        shop,
        &SeedRequestJson {
            products: 0,
            variants_per_product: 1,
            locations,
            orders: 0,
            seed: 1,
        },
    )
    .await
    .expect("seed locations");
    let (_, body) = sim
        .graphql(
            shop,
            token,
            "{ locations(first: 50) { nodes { id } } }",
            json!({}),
        )
        .await
        .expect("locations");
    let mut ids: Vec<String> = body["data"]["locations"]["nodes"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn product_set_input(p: &ProductSpec, locations: &[String]) -> Value {
    json!({"input": {
        "title": p.title,
        "descriptionHtml": p.description_html,
        "vendor": p.vendor,
        "productType": p.product_type,
        "tags": p.tags,
        "status": "ACTIVE",
        // Categories are never imported: give the products one to prove it.
        "category": "gid://shopify/TaxonomyCategory/ap-2",
        "productOptions": p.options.iter().enumerate().map(|(k, (name, values))| json!({
            "name": name, "position": k + 1, "values": values.iter().map(|v| json!({"name": v})).collect::<Vec<_>>()
        })).collect::<Vec<_>>(),
        "files": p.images.iter().map(|(url, alt)| json!({"originalSource": url, "alt": alt, "contentType": "IMAGE"}))
            .collect::<Vec<_>>(),
        "metafields": p.metafields.iter().map(|(ns, key, value)| json!({
            "namespace": ns, "key": key, "type": "single_line_text_field", "value": value
        })).collect::<Vec<_>>(),
        "variants": p.variants.iter().map(|v| json!({
            "optionValues": v.option_values.iter().map(|(n, value)| json!({"optionName": n, "name": value}))
                .collect::<Vec<_>>(),
            "sku": v.sku,
            "barcode": v.barcode,
            "price": v.price,
            "compareAtPrice": v.compare_at_price,
            "inventoryItem": {"cost": "3.50", "measurement": {"weight": {"value": v.weight.0, "unit": v.weight.1}}},
            "inventoryQuantities": v.quantities.iter().zip(locations).map(|(q, l)| json!({
                "locationId": l, "name": "available", "quantity": q
            })).collect::<Vec<_>>(),
            "metafields": v.metafields.iter().map(|(ns, key, value)| json!({
                "namespace": ns, "key": key, "type": "single_line_text_field", "value": value
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    }})
}

/// Products per bulk mutation: the staged upload target takes bodies of up to 2 MB.
const PRODUCTS_PER_UPLOAD: usize = 200;

/// Writes the products into the store with bulk mutations (staged upload, `bulkOperationRunMutation`), and checks
/// that every `productSet` succeeded.
pub async fn load(
    sim: &SimClient,
    shop: &str,
    token: &str,
    products: &[ProductSpec],
    locations: &[String],
) {
    for chunk in products.chunks(PRODUCTS_PER_UPLOAD) {
        load_chunk(sim, shop, token, chunk, locations).await;
    }
}

async fn load_chunk(
    sim: &SimClient,
    shop: &str,
    token: &str,
    products: &[ProductSpec],
    locations: &[String],
) {
    let gql = |query: &'static str, variables: Value| async move {
        let (status, body) = sim
            .graphql(shop, token, query, variables)
            .await
            .expect("graphql");
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    };
    let mut jsonl = String::new();
    for product in products {
        jsonl.push_str(&product_set_input(product, locations).to_string());
        jsonl.push('\n');
    }
    let key = sim
        .stage_jsonl(shop, token, "products.jsonl", &jsonl)
        .await
        .expect("staged upload");
    let mutation = "mutation M($input: ProductSetInput!) { productSet(input: $input, synchronous: true) { product { id } userErrors { field message code } } }";
    let data = gql(
        "mutation B($m: String!, $p: String!) { bulkOperationRunMutation(mutation: $m, stagedUploadPath: $p) { bulkOperation { id } userErrors { field message code } } }",
        json!({"m": mutation, "p": key}),
    )
    .await;
    assert_eq!(
        data["bulkOperationRunMutation"]["userErrors"],
        json!([]),
        "{data}"
    );
    let url = loop {
        let data = gql(
            "{ currentBulkOperation(type: MUTATION) { status errorCode url } }",
            json!({}),
        )
        .await;
        let op = &data["currentBulkOperation"];
        match op["status"].as_str() {
            Some("COMPLETED") => break op["url"].as_str().unwrap().to_string(),
            Some("FAILED" | "CANCELED" | "EXPIRED") => panic!("bulk mutation failed: {op}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let results = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let mut lines = 0;
    for line in results.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        assert!(line.get("errors").is_none(), "{line}");
        assert_eq!(
            line["data"]["productSet"]["userErrors"],
            json!([]),
            "{line}"
        );
        lines += 1;
    }
    assert_eq!(lines, products.len());
}

/// Shopify's ids of a variant: (product, variant, inventory item).
#[derive(Debug, Clone)]
pub struct ShopifyIds {
    pub product: String,
    pub variant: String,
    pub inventory_item: String,
}

/// The Shopify ids of every variant of the store, by SKU (variants without a SKU are left out).
pub async fn shopify_ids(sim: &SimClient, shop: &str) -> HashMap<String, ShopifyIds> {
    let products = sim.read(shop, "products").await.expect("products");
    let mut ids = HashMap::new();
    for product in products.as_array().unwrap() {
        for variant in product["variants"].as_array().unwrap() {
            let sku = variant["sku"].as_str().unwrap_or_default();
            if sku.is_empty() {
                continue;
            }
            ids.insert(
                sku.to_string(),
                ShopifyIds {
                    product: product["id"].as_str().unwrap().to_string(),
                    variant: variant["id"].as_str().unwrap().to_string(),
                    inventory_item: variant["inventory_item_id"].as_str().unwrap().to_string(),
                },
            );
        }
    }
    ids
}

/// Metafields as the catalog holds them: custom fields `<namespace>.<key>`, by name.
fn sorted_fields(metafields: &[(String, String, String)]) -> Vec<pb::CustomField> {
    let mut fields: Vec<pb::CustomField> = metafields
        .iter()
        .map(|(ns, key, value)| pb::CustomField {
            name: format!("{ns}.{key}"),
            value: value.clone(),
        })
        .collect();
    fields.sort_by(|a, b| a.name.cmp(&b.name));
    fields
}

fn unit(shopify: &str) -> pb::WeightUnit {
    match shopify {
        "GRAMS" => pb::WeightUnit::G,
        "KILOGRAMS" => pb::WeightUnit::Kg,
        "OUNCES" => pb::WeightUnit::Oz,
        _ => pb::WeightUnit::Lb,
    }
}

/// What the spec says an import of `product` creates: its data, every variant with its options, quantities per
/// location and total, weight and unit, custom fields, and links; no price of any kind. Ids and times are left
/// empty (see [`normalized`]).
pub fn expected_listing(
    product: &ProductSpec,
    ids: &HashMap<String, ShopifyIds>,
    locations: &[String],
    channel_id: &str,
    status: pb::ListingStatus,
    run_id: &str,
) -> pb::Listing {
    pb::Listing {
        title: product.title.clone(),
        description_html: product.description_html.clone(),
        brand: product.vendor.clone(),
        product_type: product.product_type.clone(),
        tags: product.tags.clone(),
        options: product
            .options
            .iter()
            .map(|(name, values)| pb::Option {
                name: name.clone(),
                values: values.clone(),
            })
            .collect(),
        images: product
            .images
            .iter()
            .map(|(url, alt)| pb::Image {
                url: url.clone(),
                alt_text: alt.clone(),
            })
            .collect(),
        custom_fields: sorted_fields(&product.metafields),
        status: status as i32,
        created_by_run_id: run_id.to_string(),
        variants: product
            .variants
            .iter()
            .map(|v| {
                let shopify = &ids[&v.sku];
                let mut quantities: Vec<pb::LocationQuantity> = v
                    .quantities
                    .iter()
                    .zip(locations)
                    .map(|(q, l)| pb::LocationQuantity {
                        location_id: l.clone(),
                        quantity: *q,
                    })
                    .collect();
                quantities.sort_by(|a, b| a.location_id.cmp(&b.location_id));
                pb::Variant {
                    sku: v.sku.clone(),
                    barcode: v.barcode.clone(),
                    option_values: v
                        .option_values
                        .iter()
                        .map(|(name, value)| pb::OptionValue {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                    weight: Some(pb::Weight {
                        value: shopbridge_listings::decimal::canonical(&v.weight.0.to_string())
                            .unwrap(),
                        unit: unit(v.weight.1) as i32,
                    }),
                    custom_fields: sorted_fields(&v.metafields),
                    total_quantity: v.quantities.iter().sum(),
                    quantities,
                    links: vec![pb::ShopifyLink {
                        channel_id: channel_id.to_string(),
                        product_id: shopify.product.clone(),
                        variant_id: shopify.variant.clone(),
                        inventory_item_id: shopify.inventory_item.clone(),
                        linked_at: None,
                    }],
                    ..Default::default()
                }
            })
            .collect(),
        ..Default::default()
    }
}

/// A listing without what differs between two equal catalogs (ids, times), for comparisons. Images are compared as
/// a set: the gateway's bulk export does not keep the order of a product's media (the JSONL lines of a connection
/// come in no guaranteed order, and CatalogImage carries no position).
pub fn normalized(listing: &pb::Listing) -> pb::Listing {
    let mut listing = listing.clone();
    listing.listing_id.clear();
    listing.created_at = None;
    listing.updated_at = None;
    listing.images.sort_by(|a, b| a.url.cmp(&b.url));
    for variant in &mut listing.variants {
        variant.variant_id.clear();
        for link in &mut variant.links {
            link.linked_at = None;
        }
    }
    listing
}

/// Listings normalized and ordered by their first SKU.
pub fn comparable(listings: &[pb::Listing]) -> Vec<pb::Listing> {
    let mut listings: Vec<pb::Listing> = listings.iter().map(normalized).collect();
    listings.sort_by(|a, b| {
        let first = |l: &pb::Listing| {
            l.variants
                .first()
                .map(|v| v.sku.clone())
                .unwrap_or_default()
        };
        first(a).cmp(&first(b))
    });
    listings
}
