//! The matching rules on hand-made batches (no database).

use super::*;

fn run(mode: ImportMode, field: MasterSkuField, pause: bool) -> RunContext {
    RunContext {
        run_id: Uuid::from_u128(99),
        mode,
        master_sku_field: field,
        pause_new_listings: pause,
    }
}

fn create_only() -> RunContext {
    run(ImportMode::CreateOnly, MasterSkuField::Sku, false)
}

fn overwrite() -> RunContext {
    run(ImportMode::CreateAndOverwrite, MasterSkuField::Sku, false)
}

fn variant(n: u32, sku: &str, size: &str) -> gw::CatalogVariant {
    gw::CatalogVariant {
        id: format!("gid://shopify/ProductVariant/{n}"),
        sku: sku.into(),
        barcode: format!("BAR-{n}"),
        price: "19.99".into(),
        compare_at_price: "25.00".into(),
        position: n,
        option_values: vec![gw::CatalogOptionValue {
            name: "Size".into(),
            value: size.into(),
        }],
        inventory_item_id: format!("gid://shopify/InventoryItem/{n}"),
        weight_value: "1.50".into(),
        weight_unit: "POUNDS".into(),
        quantities: vec![
            gw::CatalogQuantity {
                location_id: "gid://shopify/Location/2".into(),
                available: 4,
            },
            gw::CatalogQuantity {
                location_id: "gid://shopify/Location/1".into(),
                available: 3,
            },
        ],
        metafields: vec![gw::CatalogMetafield {
            namespace: "custom".into(),
            key: "color_code".into(),
            r#type: "single_line_text_field".into(),
            value: format!("C{n}"),
        }],
    }
}

fn product(n: u32, variants: Vec<gw::CatalogVariant>) -> gw::CatalogProduct {
    let sizes: Vec<String> = variants
        .iter()
        .map(|v| v.option_values[0].value.clone())
        .collect();
    gw::CatalogProduct {
        id: format!("gid://shopify/Product/{n}"),
        title: format!("Product {n}"),
        handle: format!("product-{n}"),
        description_html: "<p>Nice</p>".into(),
        vendor: "Acme".into(),
        product_type: "Toys".into(),
        tags: vec!["a".into(), "b".into()],
        status: "ACTIVE".into(),
        options: vec![gw::CatalogOption {
            name: "Size".into(),
            position: 1,
            values: sizes,
        }],
        images: vec![gw::CatalogImage {
            id: "gid://shopify/MediaImage/1".into(),
            url: "https://cdn.shopify.com/1.jpg".into(),
            alt_text: "front".into(),
        }],
        metafields: vec![gw::CatalogMetafield {
            namespace: "specs".into(),
            key: "material".into(),
            r#type: "single_line_text_field".into(),
            value: "cotton".into(),
        }],
        variants,
        updated_at: String::new(),
    }
}

fn listing_state(parent: ParentData, last_position: i32, first: u128) -> ListingToChange {
    ListingToChange {
        parent,
        last_position,
        first_variant: Some(Uuid::from_u128(first)),
    }
}

fn ids() -> impl FnMut() -> Uuid {
    let mut n = 0u128;
    move || {
        n += 1;
        Uuid::from_u128(n)
    }
}

/// A catalog variant holding exactly what `variant` would import (so nothing differs).
fn existing_like(v: &gw::CatalogVariant, id: u128, listing: u128) -> MatchedVariant {
    MatchedVariant {
        id: Uuid::from_u128(id),
        listing_id: Uuid::from_u128(listing),
        imported: imported_variant(v),
        quantities: quantities(v),
        link: None,
    }
}

#[test]
fn a_product_nothing_matches_becomes_a_new_listing_with_its_data() {
    let p = product(1, vec![variant(1, "A-1", "S"), variant(2, "A-2", "M")]);
    let plan = plan(&create_only(), &[p], &Known::default(), ids());
    assert_eq!(plan.new_listings.len(), 1);
    let listing = &plan.new_listings[0];
    assert_eq!(listing.status, ListingStatus::Active);
    assert_eq!(listing.created_by_run_id, Some(Uuid::from_u128(99)));
    assert_eq!(listing.parent.brand, "Acme");
    assert_eq!(listing.parent.custom_fields[0].name, "specs.material");
    assert_eq!(
        listing.parent.images[0].url,
        "https://cdn.shopify.com/1.jpg"
    );
    assert_eq!(plan.new_variants.len(), 2);
    let v = &plan.new_variants[0];
    assert_eq!((v.sku.as_str(), v.position), ("A-1", 1));
    assert_eq!(v.listing_id, listing.id);
    assert_eq!(
        v.data.imported.weight,
        Some(Weight {
            value: "1.5".into(),
            unit: WeightUnit::Lb
        })
    );
    assert_eq!(v.data.imported.custom_fields[0].name, "custom.color_code");
    // Quantities at every location, ordered by location; no price of any kind.
    assert_eq!(v.quantities.len(), 2);
    assert_eq!(v.quantities[0].location_id, "gid://shopify/Location/1");
    assert_eq!(v.data.list_price, None);
    assert_eq!(v.data.cost, None);
    assert_eq!(plan.links.len(), 2);
    assert_eq!(
        plan.counters,
        Counters {
            processed: 2,
            created: 2,
            ..Counters::default()
        }
    );
}

#[test]
fn new_listings_are_paused_when_the_settings_say_so() {
    let p = product(1, vec![variant(1, "A-1", "S")]);
    let plan = plan(
        &run(ImportMode::CreateOnly, MasterSkuField::Sku, true),
        &[p],
        &Known::default(),
        ids(),
    );
    assert_eq!(plan.new_listings[0].status, ListingStatus::Paused);
}

#[test]
fn create_only_links_a_match_and_leaves_its_data_alone() {
    let shopify = variant(1, "A-1", "S");
    let mut existing = existing_like(&shopify, 500, 600);
    existing.imported.barcode = "OURS".into();
    existing.quantities = vec![];
    let known = Known {
        matched: [("A-1".to_string(), existing)].into(),
        listings: [(
            Uuid::from_u128(600),
            listing_state(ParentData::default(), 1, 500),
        )]
        .into(),
        ..Known::default()
    };
    let plan = plan(&create_only(), &[product(1, vec![shopify])], &known, ids());
    assert!(plan.new_listings.is_empty() && plan.new_variants.is_empty());
    assert!(plan.variant_updates.is_empty() && plan.quantity_updates.is_empty());
    assert!(plan.parent_updates.is_empty());
    assert_eq!(plan.links.len(), 1);
    assert_eq!(plan.links[0].0, Uuid::from_u128(500));
    assert_eq!(
        plan.counters,
        Counters {
            processed: 1,
            linked: 1,
            skipped: 1,
            ..Counters::default()
        }
    );
}

#[test]
fn create_and_overwrite_updates_a_match_only_where_it_differs() {
    let shopify = variant(1, "A-1", "S");
    let p = product(1, vec![shopify.clone()]);
    let mut differs = existing_like(&shopify, 500, 600);
    differs.imported.barcode = "OURS".into();
    let known = Known {
        matched: [("A-1".to_string(), differs)].into(),
        listings: [(
            Uuid::from_u128(600),
            listing_state(ParentData::default(), 1, 500),
        )]
        .into(),
        ..Known::default()
    };
    let changed = plan(&overwrite(), std::slice::from_ref(&p), &known, ids());
    assert_eq!(changed.variant_updates.len(), 1);
    assert_eq!(changed.variant_updates[0].1.barcode, "BAR-1");
    assert!(
        changed.quantity_updates.is_empty(),
        "the quantities were equal"
    );
    assert_eq!(changed.parent_updates.len(), 1);
    assert_eq!(changed.parent_updates[0].1.title, "Product 1");
    assert_eq!(changed.counters.updated, 1);

    // Everything equal, and already linked: nothing to write at all.
    let mut same = existing_like(&shopify, 500, 600);
    same.link = Some(link_target(&p, &shopify));
    let known = Known {
        matched: [("A-1".to_string(), same)].into(),
        listings: [(Uuid::from_u128(600), listing_state(parent_data(&p), 1, 500))].into(),
        ..Known::default()
    };
    let unchanged = plan(&overwrite(), std::slice::from_ref(&p), &known, ids());
    assert!(unchanged.variant_updates.is_empty() && unchanged.parent_updates.is_empty());
    assert!(unchanged.links.is_empty() && unchanged.quantity_updates.is_empty());
    assert_eq!(
        unchanged.counters,
        Counters {
            processed: 1,
            linked: 1,
            skipped: 1,
            ..Counters::default()
        }
    );
}

#[test]
fn a_new_sibling_of_a_matched_variant_joins_its_listing_after_its_variants() {
    let p = product(1, vec![variant(1, "A-1", "S"), variant(2, "A-2", "XL")]);
    let existing = existing_like(&p.variants[0], 500, 600);
    let parent = ParentData {
        title: "Ours".into(),
        options: vec![OptionDef {
            name: "Size".into(),
            values: vec!["S".into()],
        }],
        ..ParentData::default()
    };
    let known = Known {
        matched: [("A-1".to_string(), existing)].into(),
        listings: [(Uuid::from_u128(600), listing_state(parent, 3, 500))].into(),
        ..Known::default()
    };
    let plan = plan(&create_only(), &[p], &known, ids());
    assert!(plan.new_listings.is_empty());
    assert_eq!(plan.new_variants.len(), 1);
    assert_eq!(plan.new_variants[0].listing_id, Uuid::from_u128(600));
    assert_eq!(plan.new_variants[0].position, 4);
    // The listing keeps its data and learns the new option value.
    assert_eq!(plan.parent_updates.len(), 1);
    assert_eq!(plan.parent_updates[0].1.title, "Ours");
    assert_eq!(
        plan.parent_updates[0].1.options[0].values,
        vec!["S".to_string(), "XL".to_string()]
    );
    assert_eq!((plan.counters.linked, plan.counters.created), (1, 1));
}

#[test]
fn duplicate_master_skus_are_neither_created_nor_linked_whatever_their_order() {
    let a = product(1, vec![variant(1, "DUP", "S"), variant(2, "A-2", "M")]);
    let b = product(2, vec![variant(3, "DUP", "S")]);
    let known = Known {
        duplicates: [("DUP".to_string(), 2)].into(),
        ..Known::default()
    };
    for order in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
        let plan = plan(&create_only(), &order, &known, ids());
        assert!(plan.new_variants.iter().all(|v| v.sku != "DUP"));
        assert!(plan.links.iter().all(|(_, l)| l.shopify_variant_id
            != "gid://shopify/ProductVariant/1"
            && l.shopify_variant_id != "gid://shopify/ProductVariant/3"));
        let mut keys: Vec<&str> = plan.problems.iter().map(|p| p.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                "DUPLICATE_MASTER_SKU:gid://shopify/ProductVariant/1",
                "DUPLICATE_MASTER_SKU:gid://shopify/ProductVariant/3"
            ]
        );
        assert!(plan.problems.iter().all(|p| p.entity.kind == "sku"
            && p.entity.value == "DUP"
            && p.code == problems::DUPLICATE_MASTER_SKU));
        assert_eq!(
            (
                plan.counters.failed,
                plan.counters.created,
                plan.counters.processed
            ),
            (2, 1, 3)
        );
    }
}

#[test]
fn a_variant_without_a_master_sku_is_logged_and_not_imported() {
    let p = product(1, vec![variant(1, "  ", "S"), variant(2, "A-2", "M")]);
    let plan = plan(&create_only(), &[p], &Known::default(), ids());
    assert_eq!(plan.new_variants.len(), 1);
    assert_eq!(plan.problems.len(), 1);
    let problem = &plan.problems[0];
    assert_eq!(problem.code, problems::MISSING_MASTER_SKU);
    assert_eq!(problem.entity.shopify_id, "gid://shopify/ProductVariant/1");
    assert!(problem.action.contains("Shopify Variant - SKU"));
    assert_eq!(plan.counters.failed, 1);
}

#[test]
fn the_barcode_can_be_the_master_sku() {
    let p = product(1, vec![variant(1, "", "S")]);
    let plan = plan(
        &run(ImportMode::CreateOnly, MasterSkuField::Barcode, false),
        &[p],
        &Known::default(),
        ids(),
    );
    assert!(plan.problems.is_empty());
    assert_eq!(plan.new_variants[0].sku, "BAR-1");
    assert_eq!(plan.new_variants[0].data.imported.barcode, "BAR-1");
}

#[test]
fn a_product_over_the_limits_is_not_imported_at_all() {
    let many: Vec<gw::CatalogVariant> = (1..=MAX_VARIANTS as u32 + 1)
        .map(|n| variant(n, &format!("S-{n}"), &format!("{n}")))
        .collect();
    let mut long = product(2, vec![variant(900, "L-1", "S")]);
    long.title = "x".repeat(MAX_TITLE_CHARS + 1);
    let plan = plan(
        &create_only(),
        &[product(1, many), long],
        &Known::default(),
        ids(),
    );
    assert!(plan.new_listings.is_empty() && plan.new_variants.is_empty());
    assert_eq!(plan.problems.len(), 2);
    assert!(
        plan.problems
            .iter()
            .all(|p| p.code == problems::PRODUCT_OVER_LIMITS && p.entity.kind == "shopify_product")
    );
    assert!(plan.problems[0].message.contains("101 variants"));
    assert!(plan.problems[1].message.contains("256 characters"));
    assert_eq!(plan.counters.failed, MAX_VARIANTS as u64 + 2);
}

#[test]
fn a_link_that_moved_is_rewritten() {
    let shopify = variant(1, "A-1", "S");
    let p = product(1, vec![shopify.clone()]);
    let mut existing = existing_like(&shopify, 500, 600);
    existing.link = Some(LinkTarget {
        product_id: "gid://shopify/Product/old".into(),
        shopify_variant_id: "gid://shopify/ProductVariant/old".into(),
        inventory_item_id: "gid://shopify/InventoryItem/old".into(),
    });
    let known = Known {
        matched: [("A-1".to_string(), existing)].into(),
        listings: [(Uuid::from_u128(600), listing_state(parent_data(&p), 1, 500))].into(),
        ..Known::default()
    };
    let plan = plan(&create_only(), &[p], &known, ids());
    assert_eq!(plan.links.len(), 1);
    assert_eq!(
        plan.links[0].1.shopify_variant_id,
        "gid://shopify/ProductVariant/1"
    );
}

#[test]
fn a_listings_parent_follows_the_product_of_its_first_variant_only() {
    let p = product(1, vec![variant(1, "A-1", "S")]);
    let mut existing = existing_like(&p.variants[0], 500, 600);
    existing.imported.barcode = "OURS".into();
    let ours = ParentData {
        title: "Ours".into(),
        ..ParentData::default()
    };
    // The listing's first variant is another one (501): its variant is updated, its parent is not.
    let known = Known {
        matched: [("A-1".to_string(), existing)].into(),
        listings: [(Uuid::from_u128(600), listing_state(ours, 2, 501))].into(),
        ..Known::default()
    };
    let plan = plan(&overwrite(), &[p], &known, ids());
    assert_eq!(plan.variant_updates.len(), 1);
    assert!(plan.parent_updates.is_empty());
    assert_eq!(plan.counters.updated, 1);
}
