//! Import Listings end to end: a run requested on the bus, the gateway exporting the simulated store with bulk
//! operations, listings applying the catalog batches; checked through the listings API and the run's events.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use shopbridge_proto::{
    listings::{self as pb, unpause_listings_request::Selector},
    runs,
};
use shopify_sim::FaultConfig;

use crate::support::{
    stack::{Options, Stack},
    store::{self, ProductSpec, ShopifyIds, comparable, expected_listing},
};

const WITH_GATEWAY: Options = Options {
    gateway: true,
    fast_timers: false,
    listings: true,
};

/// A stack whose shop holds `products` (at 3 locations); returns the locations and the Shopify ids by SKU.
async fn store_with(
    stack: &Stack,
    products: &[ProductSpec],
) -> (Vec<String>, HashMap<String, ShopifyIds>) {
    let locations = store::locations(&stack.sim_client, &stack.shop, &stack.shop_token, 3).await;
    store::load(
        &stack.sim_client,
        &stack.shop,
        &stack.shop_token,
        products,
        &locations,
    )
    .await;
    let ids = store::shopify_ids(&stack.sim_client, &stack.shop).await;
    (locations, ids)
}

fn variants(products: &[ProductSpec]) -> u64 {
    products.iter().map(|p| p.variants.len() as u64).sum()
}

/// Compares two catalogs listing by listing, so a failure shows the one listing that differs.
fn assert_same_catalog(actual: &[pb::Listing], expected: &[pb::Listing]) {
    let (actual, expected) = (comparable(actual), comparable(expected));
    for (a, e) in actual.iter().zip(&expected) {
        assert_eq!(a, e, "a listing differs from what the import should make");
    }
    assert_eq!(actual.len(), expected.len(), "number of listings");
}

fn counters(finished: &runs::RunFinished) -> runs::Counters {
    finished.counters.unwrap_or_default()
}

#[tokio::test]
async fn a_store_of_a_thousand_products_is_imported_whole_and_a_second_run_changes_nothing() {
    let stack = Stack::start(WITH_GATEWAY).await;
    let products = store::generate(0, 1000, 3);
    let (locations, ids) = store_with(&stack, &products).await;
    let total = variants(&products);
    stack
        .set_import_settings(
            true,
            pb::ImportMode::CreateOnly,
            pb::MasterSkuField::ShopifyVariantSku,
            false,
        )
        .await;

    let started = Instant::now();
    let run = stack.request_import().await;
    let finished = stack.finished_within(&run, Duration::from_secs(180)).await;
    println!(
        "import of {} products, {total} variants: {:?} from request to RunFinished (debug build)",
        products.len(),
        started.elapsed()
    );
    assert_eq!(
        finished.outcome,
        runs::Outcome::Succeeded as i32,
        "{finished:?}"
    );
    assert_eq!(
        counters(&finished),
        runs::Counters {
            processed: total,
            created: total,
            ..Default::default()
        }
    );
    let catalog = stack.catalog().await;
    let expected: Vec<pb::Listing> = products
        .iter()
        .map(|p| {
            expected_listing(
                p,
                &ids,
                &locations,
                &stack.channel_id,
                pb::ListingStatus::Active,
                &run,
            )
        })
        .collect();
    assert_same_catalog(&catalog, &expected);
    let skus: HashSet<&str> = catalog
        .iter()
        .flat_map(|l| l.variants.iter().map(|v| v.sku.as_str()))
        .collect();
    assert_eq!(skus.len() as u64, total, "every variant exists once");

    // Reports: started once, progress with a growing seq, finished once.
    let started_events = stack.nats.events::<runs::RunStarted>().await;
    assert_eq!(started_events.iter().filter(|s| s.run_id == run).count(), 1);
    let seqs: Vec<u64> = stack
        .nats
        .events::<runs::RunProgress>()
        .await
        .iter()
        .filter(|p| p.run_id == run)
        .map(|p| p.seq)
        .collect();
    assert!(seqs.len() >= 3, "progress while it ran: {seqs:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // The same import again: everything linked as it is, nothing created, the catalog untouched to the timestamp.
    let again = stack.request_import().await;
    let finished = stack
        .finished_within(&again, Duration::from_secs(180))
        .await;
    assert_eq!(finished.outcome, runs::Outcome::Succeeded as i32);
    assert_eq!(
        counters(&finished),
        runs::Counters {
            processed: total,
            linked: total,
            skipped: total,
            ..Default::default()
        }
    );
    let after = stack.catalog().await;
    assert_eq!(after.len(), catalog.len());
    for (a, b) in after.iter().zip(&catalog) {
        assert_eq!(a, b, "the second run changed a listing");
    }
    stack.finish().await;
}

/// Our catalog's version of a product: other data, our own prices, and only the first `keep` variants.
fn ours(product: &ProductSpec, keep: usize) -> pb::Listing {
    pb::Listing {
        title: format!("Our {}", product.title),
        brand: "Our brand".into(),
        tags: vec!["ours".into()],
        options: product
            .options
            .iter()
            .map(|(name, values)| pb::Option {
                name: name.clone(),
                values: values.clone(),
            })
            .collect(),
        variants: product
            .variants
            .iter()
            .take(keep)
            .map(|v| pb::Variant {
                sku: v.sku.clone(),
                barcode: format!("OURS-{}", v.sku),
                option_values: v
                    .option_values
                    .iter()
                    .map(|(name, value)| pb::OptionValue {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                weight: Some(pb::Weight {
                    value: "9".into(),
                    unit: pb::WeightUnit::Kg as i32,
                }),
                quantities: vec![pb::LocationQuantity {
                    location_id: "our-warehouse".into(),
                    quantity: 1,
                }],
                cost: "1.5".into(),
                list_price: "99.99".into(),
                msrp: "120".into(),
                map: "90".into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_only_links_existing_skus_as_they_are_and_create_and_overwrite_updates_them() {
    let stack = Stack::start(WITH_GATEWAY).await;
    let products = store::generate(0, 12, 3);
    let (locations, ids) = store_with(&stack, &products).await;
    // The catalog holds products 0-3 whole and the first variant of products 4-5, with data of its own.
    let seeded: Vec<pb::Listing> = products[..6]
        .iter()
        .enumerate()
        .map(|(i, p)| ours(p, if i < 4 { p.variants.len() } else { 1 }))
        .collect();
    let seeded = stack
        .client()
        .await
        .create_listings(pb::CreateListingsRequest { listings: seeded })
        .await
        .unwrap()
        .into_inner()
        .listings;
    let seeded_variants: u64 = seeded.iter().map(|l| l.variants.len() as u64).sum();
    let total = variants(&products);

    stack
        .set_import_settings(
            true,
            pb::ImportMode::CreateOnly,
            pb::MasterSkuField::ShopifyVariantSku,
            false,
        )
        .await;
    let first = stack.request_import().await;
    let finished = stack.finished(&first).await;
    assert_eq!(
        counters(&finished),
        runs::Counters {
            processed: total,
            created: total - seeded_variants,
            linked: seeded_variants,
            skipped: seeded_variants,
            ..Default::default()
        }
    );
    let catalog = stack.catalog().await;
    assert_eq!(catalog.len(), 12, "matched products made no new listing");
    for before in &seeded {
        let now = catalog
            .iter()
            .find(|l| l.listing_id == before.listing_id)
            .unwrap();
        assert_eq!(
            now.title, before.title,
            "CREATE_ONLY leaves the listing as it is"
        );
        for (v, was) in now.variants.iter().zip(&before.variants) {
            assert_eq!(
                (&v.barcode, &v.weight, &v.quantities, &v.list_price),
                (&was.barcode, &was.weight, &was.quantities, &was.list_price)
            );
            let link = &v.links[0];
            let shopify = &ids[&v.sku];
            assert_eq!(
                (&link.channel_id, &link.variant_id, &link.product_id),
                (&stack.channel_id, &shopify.variant, &shopify.product)
            );
        }
    }
    // Products 4-5: their other variants joined our listing, after ours, with Shopify's data.
    let four = catalog
        .iter()
        .find(|l| l.listing_id == seeded[4].listing_id)
        .unwrap();
    assert_eq!(four.variants.len(), products[4].variants.len());
    assert_eq!(four.variants[1].sku, products[4].variants[1].sku);
    assert_eq!(four.variants[1].barcode, products[4].variants[1].barcode);
    assert_eq!(four.variants[1].list_price, "", "no price is imported");

    stack
        .set_import_settings(
            true,
            pb::ImportMode::CreateAndOverwrite,
            pb::MasterSkuField::ShopifyVariantSku,
            false,
        )
        .await;
    let second = stack.request_import().await;
    let finished = stack.finished(&second).await;
    // Updated: every variant of the seeded listings (their parent data changed; the seeded variants' own data too),
    // including the siblings the first run added to them.
    let c = counters(&finished);
    assert_eq!(
        (c.processed, c.created, c.linked, c.updated, c.failed),
        (total, 0, total, variants(&products[..6]), 0),
        "{c:?}"
    );
    // Now the seeded listings hold Shopify's data, and still their own prices and status.
    let catalog = stack.catalog().await;
    let mut expected: Vec<pb::Listing> = products
        .iter()
        .map(|p| {
            expected_listing(
                p,
                &ids,
                &locations,
                &stack.channel_id,
                pb::ListingStatus::Active,
                &first,
            )
        })
        .collect();
    for (listing, product_seeded) in expected.iter_mut().zip(&seeded) {
        listing.created_by_run_id.clear();
        for (variant, kept) in listing.variants.iter_mut().zip(&product_seeded.variants) {
            variant.cost = kept.cost.clone();
            variant.list_price = kept.list_price.clone();
            variant.msrp = kept.msrp.clone();
            variant.map = kept.map.clone();
        }
    }
    assert_same_catalog(&catalog, &expected);
    stack.finish().await;
}

/// The products as an import with the barcode as master SKU sees them (our SKU is Shopify's barcode).
fn by_barcode(
    products: &[ProductSpec],
    ids: &HashMap<String, ShopifyIds>,
) -> (Vec<ProductSpec>, HashMap<String, ShopifyIds>) {
    let mut by_barcode = HashMap::new();
    let products = products
        .iter()
        .map(|p| {
            let mut p = p.clone();
            for v in &mut p.variants {
                by_barcode.insert(v.barcode.clone(), ids[&v.sku].clone());
                v.sku = v.barcode.clone();
            }
            p
        })
        .collect();
    (products, by_barcode)
}

#[tokio::test]
async fn the_barcode_can_be_the_master_sku_and_paused_new_listings_are_unpaused_by_run() {
    let mut stack = Stack::start(WITH_GATEWAY).await;
    let first_products = store::generate(0, 6, 3);
    let (locations, ids) = store_with(&stack, &first_products).await;
    stack
        .set_import_settings(
            true,
            pb::ImportMode::CreateOnly,
            pb::MasterSkuField::ShopifyVariantBarcode,
            true,
        )
        .await;
    let first = stack.request_import().await;
    assert_eq!(
        stack.finished(&first).await.outcome,
        runs::Outcome::Succeeded as i32
    );
    let (expected_products, expected_ids) = by_barcode(&first_products, &ids);
    let expected_first: Vec<pb::Listing> = expected_products
        .iter()
        .map(|p| {
            expected_listing(
                p,
                &expected_ids,
                &locations,
                &stack.channel_id,
                pb::ListingStatus::Paused,
                &first,
            )
        })
        .collect();
    assert_same_catalog(&stack.catalog().await, &expected_first);

    // More products in the store, and new listings no longer paused.
    let more = store::generate(6, 3, 3);
    store::load(
        &stack.sim_client,
        &stack.shop,
        &stack.shop_token,
        &more,
        &locations,
    )
    .await;
    let ids = store::shopify_ids(&stack.sim_client, &stack.shop).await;
    stack
        .set_import_settings(
            true,
            pb::ImportMode::CreateOnly,
            pb::MasterSkuField::ShopifyVariantBarcode,
            false,
        )
        .await;
    // A listings restart between the runs changes nothing to how they go.
    stack.stop_listings().await;
    stack.start_listings().await;
    let second = stack.request_import().await;
    let finished = stack.finished(&second).await;
    assert_eq!(
        (counters(&finished).created, counters(&finished).linked),
        (variants(&more), variants(&first_products))
    );
    let (more_expected, more_ids) = by_barcode(&more, &ids);
    let mut expected: Vec<pb::Listing> = expected_first.clone();
    expected.extend(more_expected.iter().map(|p| {
        expected_listing(
            p,
            &more_ids,
            &locations,
            &stack.channel_id,
            pb::ListingStatus::Active,
            &second,
        )
    }));
    assert_same_catalog(&stack.catalog().await, &expected);
    let paused = stack
        .catalog_where(pb::ListListingsRequest {
            status: pb::ListingStatus::Paused as i32,
            ..Default::default()
        })
        .await;
    assert_eq!(paused.len(), 6);

    let mut client = stack.client().await;
    let unpause = |run: &str| pb::UnpauseListingsRequest {
        selector: Some(Selector::CreatedByRunId(run.to_string())),
    };
    let none = client.unpause_listings(unpause(&second)).await.unwrap();
    assert_eq!(
        none.into_inner().unpaused,
        0,
        "the second run's listings were never paused"
    );
    let six = client.unpause_listings(unpause(&first)).await.unwrap();
    assert_eq!(six.into_inner().unpaused, 6);
    let still_paused = stack
        .catalog_where(pb::ListListingsRequest {
            status: pb::ListingStatus::Paused as i32,
            ..Default::default()
        })
        .await;
    assert!(still_paused.is_empty());
    let of_first = stack
        .catalog_where(pb::ListListingsRequest {
            created_by_run_id: first.clone(),
            link_state: pb::LinkState::Linked as i32,
            channel_id: stack.channel_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(of_first.len(), 6);
    stack.finish().await;
}

#[tokio::test]
async fn duplicate_and_missing_master_skus_and_oversized_products_are_logged_and_nothing_is_merged()
{
    let stack = Stack::start(WITH_GATEWAY).await;
    // 300 products: two batches, with the two holders of one SKU in different ones.
    let mut products = store::generate(0, 300, 3);
    products[3].variants[0].sku = "DUP-1".into();
    products[280].variants[0].sku = "DUP-1".into();
    products[5].variants[0].sku = String::new();
    let missing_barcode = products[5].variants[0].barcode.clone();
    let sizes: Vec<String> = (1..=101).map(|n| format!("S{n}")).collect();
    products[7].options = vec![("Size".into(), sizes.clone())];
    products[7].variants = sizes
        .iter()
        .enumerate()
        .map(|(n, size)| store::VariantSpec {
            sku: format!("BIG-{n}"),
            barcode: format!("BIGBC-{n}"),
            option_values: vec![("Size".into(), size.clone())],
            ..products[8].variants[0].clone()
        })
        .collect();
    let (_, _) = store_with(&stack, &products).await;
    let store_products = stack
        .sim_client
        .read(&stack.shop, "products")
        .await
        .unwrap();
    let gid_of = |test: &dyn Fn(&serde_json::Value) -> bool| -> Vec<String> {
        store_products
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["variants"].as_array().unwrap().iter())
            .filter(|v| test(v))
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut duplicates = gid_of(&|v| v["sku"] == "DUP-1");
    duplicates.sort();
    let missing = gid_of(&|v| v["barcode"] == missing_barcode.as_str());
    let big = store_products
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == products[7].title.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    stack
        .set_import_settings(
            true,
            pb::ImportMode::CreateOnly,
            pb::MasterSkuField::ShopifyVariantSku,
            false,
        )
        .await;

    let run = stack.request_import().await;
    let finished = stack.finished(&run).await;
    assert_eq!(finished.outcome, runs::Outcome::Partial as i32);
    let c = counters(&finished);
    assert_eq!(c.failed, 2 + 1 + 101, "{c:?}");
    assert_eq!(c.processed, variants(&products));
    assert_eq!(c.created, c.processed - c.failed);

    let log = stack.log(&run).await;
    let of =
        |code: &str| -> Vec<&runs::LogEntry> { log.iter().filter(|e| e.code == code).collect() };
    let dup_entries = of("DUPLICATE_MASTER_SKU");
    let mut dup_gids: Vec<String> = dup_entries
        .iter()
        .map(|e| e.entity.clone().unwrap().shopify_id)
        .collect();
    dup_gids.sort();
    assert_eq!(dup_gids, duplicates);
    for entry in &dup_entries {
        let entity = entry.entity.clone().unwrap();
        assert_eq!(
            (entity.kind.as_str(), entity.value.as_str()),
            ("sku", "DUP-1")
        );
        assert_eq!(entry.level, runs::LogLevel::Error as i32);
        assert!(entry.action.contains("unique"), "{}", entry.action);
    }
    let missing_entries = of("MISSING_MASTER_SKU");
    assert_eq!(missing_entries.len(), 1);
    let entity = missing_entries[0].entity.clone().unwrap();
    assert_eq!(
        (entity.kind.as_str(), entity.shopify_id.as_str()),
        ("shopify_variant", missing[0].as_str())
    );
    assert!(missing_entries[0].action.contains("Shopify Variant - SKU"));
    let over = of("PRODUCT_OVER_LIMITS");
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].entity.clone().unwrap().shopify_id, big);
    assert!(
        over[0].message.contains("101 variants"),
        "{}",
        over[0].message
    );
    assert_eq!(log.len(), 4, "{log:?}");

    // Nothing merged: no DUP-1 anywhere, nothing of the big product, and every listing is one Shopify product.
    let catalog = stack.catalog().await;
    let all_skus: Vec<&str> = catalog
        .iter()
        .flat_map(|l| l.variants.iter().map(|v| v.sku.as_str()))
        .collect();
    assert!(!all_skus.contains(&"DUP-1"));
    assert!(!all_skus.iter().any(|s| s.starts_with("BIG-")));
    assert!(catalog.iter().all(|l| l.title != products[7].title));
    for listing in &catalog {
        let products: HashSet<&str> = listing
            .variants
            .iter()
            .map(|v| v.links[0].product_id.as_str())
            .collect();
        assert_eq!(
            products.len(),
            1,
            "{} mixes Shopify products",
            listing.title
        );
    }
    // The holders' siblings were imported (the conflict is the variant's, not the product's).
    let three = catalog
        .iter()
        .find(|l| l.title == products[3].title)
        .unwrap();
    assert_eq!(three.variants.len(), products[3].variants.len() - 1);

    // Again: the same problems under the same keys, the same catalog.
    let again = stack.request_import().await;
    let finished = stack.finished(&again).await;
    assert_eq!(counters(&finished).failed, c.failed);
    let keys = |log: &[runs::LogEntry]| log.iter().map(|e| e.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&stack.log(&again).await), keys(&log));
    assert_eq!(stack.catalog().await, catalog);
    stack.finish().await;
}

#[tokio::test]
async fn an_import_through_a_gateway_crash_and_two_listings_restarts_ends_with_the_same_catalog() {
    let mut stack = Stack::start(Options {
        gateway: true,
        fast_timers: true,
        listings: true,
    })
    .await;
    let products = store::generate(0, 600, 3);
    let (locations, ids) = store_with(&stack, &products).await;
    stack
        .set_import_settings(
            true,
            pb::ImportMode::CreateOnly,
            pb::MasterSkuField::ShopifyVariantSku,
            false,
        )
        .await;
    let bulk_before = stack.sim_client.stats(&stack.shop).await.unwrap()["bulk_operations"]
        .as_u64()
        .unwrap();
    // Shopify takes 1.5 s to start each bulk query: the export is slow enough to interrupt.
    stack
        .sim_client
        .set_faults(&FaultConfig {
            bulk_delay_ms: 1500,
            ..Default::default()
        })
        .await
        .unwrap();
    // An uncommitted variant with a SKU of batch 2 (products 250-499): the applier's insert of that SKU waits for
    // it, which holds the import in the middle of batch 2 until the test lets go.
    let mut blocker = stack.listings_db.pool.begin().await.unwrap();
    let listing = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO listings (id, tenant_id, title, status) VALUES ($1, $2, 'blocker', 'active')",
    )
    .bind(listing)
    .bind(stack.tenant.id)
    .execute(&mut *blocker)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO variants (id, tenant_id, listing_id, position, sku) VALUES ($1, $2, $3, 1, $4)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(stack.tenant.id)
    .bind(listing)
    .bind(&products[300].variants[0].sku)
    .execute(&mut *blocker)
    .await
    .unwrap();
    let run = stack.request_import().await;
    let run_state = |pool: sqlx::PgPool, run: String| async move {
        sqlx::query_as::<_, (String, i32, Option<i32>)>(
            "SELECT state, applied_batches, total_batches FROM import_runs WHERE run_id = $1::uuid",
        )
        .bind(run)
        .fetch_optional(&pool)
        .await
        .unwrap()
    };

    // 1. listings stops while the gateway exports (the run is recorded, the command sent) and starts again.
    shopbridge_platform::testing::eventually("the run recorded", || {
        let (pool, run) = (stack.listings_db.pool.clone(), run.clone());
        async move { run_state(pool, run).await.is_some() }
    })
    .await;
    stack.stop_listings().await;
    stack.start_listings().await;

    // 2. The gateway dies while Shopify runs its first bulk query, and a new one takes over.
    shopbridge_platform::testing::eventually(
        "the export's first bulk operation started",
        || async {
            let started: i64 = sqlx::query_scalar("SELECT count(*) FROM bulk_operations")
                .fetch_one(&stack.gateway_db.pool)
                .await
                .unwrap_or(0);
            started >= 1
        },
    )
    .await;
    stack.crash_gateway().await;
    stack.start_gateway().await;

    // 3. listings dies in the middle of batch 2 of 3: its insert of a variant waits behind the blocker's row with
    //    the same SKU (set up before the run), so the crash lands there whatever the timing (the other batches may
    //    be applied by then).
    shopbridge_platform::testing::eventually("the applier blocked in batch 2", || async {
        let state = run_state(stack.listings_db.pool.clone(), run.clone()).await;
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&stack.listings_db.pool)
        .await
        .unwrap();
        matches!(state, Some((s, applied, Some(3))) if s == "applying" && applied < 3) && waiting > 0
    })
    .await;
    stack.crash_listings().await;
    blocker.rollback().await.unwrap();
    stack.start_listings().await;

    let finished = stack.finished_within(&run, Duration::from_secs(120)).await;
    assert_eq!(
        finished.outcome,
        runs::Outcome::Succeeded as i32,
        "{finished:?}"
    );
    let total = variants(&products);
    assert_eq!(
        counters(&finished),
        runs::Counters {
            processed: total,
            created: total,
            ..Default::default()
        },
        "every batch applied exactly once"
    );
    let expected: Vec<pb::Listing> = products
        .iter()
        .map(|p| {
            expected_listing(
                p,
                &ids,
                &locations,
                &stack.channel_id,
                pb::ListingStatus::Active,
                &run,
            )
        })
        .collect();
    assert_same_catalog(&stack.catalog().await, &expected);
    let bulk_after = stack.sim_client.stats(&stack.shop).await.unwrap()["bulk_operations"]
        .as_u64()
        .unwrap();
    assert_eq!(
        bulk_after - bulk_before,
        3,
        "the new gateway resumed the export, never started over"
    );
    stack.finish().await;
}

#[tokio::test]
async fn a_refused_token_fails_the_run_and_a_cancelled_run_is_run_again_to_the_same_catalog() {
    let stack = Stack::start(WITH_GATEWAY).await;
    let products = store::generate(0, 40, 3);
    let (locations, ids) = store_with(&stack, &products).await;

    // A channel whose token Shopify refuses.
    let other_shop = format!("stale-{}", stack.shop);
    stack
        .sim_client
        .create_shop(&other_shop, "standard")
        .await
        .unwrap();
    let bad_channel = stack
        .connect_channel("stale token", &other_shop, "shpat_not_valid")
        .await;
    stack
        .client()
        .await
        .set_import_settings(pb::SetImportSettingsRequest {
            settings: Some(pb::ImportSettings {
                channel_id: bad_channel.clone(),
                enabled: true,
                mode: pb::ImportMode::CreateOnly as i32,
                master_sku_field: pb::MasterSkuField::ShopifyVariantSku as i32,
                pause_new_listings: false,
            }),
        })
        .await
        .unwrap();
    let refused = stack
        .request_run_on(
            &bad_channel,
            &other_shop,
            shopbridge_proto::common::Operation::ImportListings,
        )
        .await;
    let finished = stack.finished(&refused).await;
    assert_eq!(finished.outcome, runs::Outcome::Failed as i32);
    assert!(finished.error.contains("Shopify"), "{}", finished.error);
    let log = stack.log(&refused).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].code, "INVALID_TOKEN", "{log:?}");
    assert!(
        log[0].action.contains("token and store URL"),
        "{}",
        log[0].action
    );
    assert!(stack.catalog().await.is_empty());

    // A slow export, cancelled: the run stops CANCELLED; a second request meanwhile is refused.
    stack
        .set_import_settings(
            true,
            pb::ImportMode::CreateOnly,
            pb::MasterSkuField::ShopifyVariantSku,
            false,
        )
        .await;
    stack
        .sim_client
        .set_faults(&FaultConfig {
            bulk_delay_ms: 2000,
            ..Default::default()
        })
        .await
        .unwrap();
    let cancelled = stack.request_import().await;
    shopbridge_platform::testing::eventually("the run exporting", || async {
        stack
            .nats
            .events::<runs::RunStarted>()
            .await
            .iter()
            .any(|s| s.run_id == cancelled)
    })
    .await;
    let refused_meanwhile = stack.request_import().await;
    let finished = stack.finished(&refused_meanwhile).await;
    assert_eq!(finished.outcome, runs::Outcome::Failed as i32);
    assert_eq!(
        stack.log(&refused_meanwhile).await[0].code,
        "ALREADY_RUNNING"
    );
    stack.cancel_run(&cancelled).await;
    let finished = stack.finished(&cancelled).await;
    assert_eq!(finished.outcome, runs::Outcome::Cancelled as i32);

    stack
        .sim_client
        .set_faults(&FaultConfig::default())
        .await
        .unwrap();
    let run = stack.request_import().await;
    let finished = stack.finished(&run).await;
    assert_eq!(
        finished.outcome,
        runs::Outcome::Succeeded as i32,
        "{finished:?}"
    );
    let expected: Vec<pb::Listing> = products
        .iter()
        .map(|p| {
            expected_listing(
                p,
                &ids,
                &locations,
                &stack.channel_id,
                pb::ListingStatus::Active,
                &run,
            )
        })
        .collect();
    assert_same_catalog(&stack.catalog().await, &expected);
    // The cancelled run's export, finishing later, changes nothing.
    let cancelled_state: (String, Option<String>) =
        sqlx::query_as("SELECT state, outcome FROM import_runs WHERE run_id = $1::uuid")
            .bind(&cancelled)
            .fetch_one(&stack.listings_db.pool)
            .await
            .unwrap();
    assert_eq!(
        cancelled_state,
        ("finished".into(), Some("cancelled".into()))
    );
    stack.finish().await;
}
