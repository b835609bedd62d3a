//! The gRPC API: settings, the catalog's queries and actions, tenancy and scopes; and how a run is refused when
//! Import Listings is off. No gateway is needed here.

use std::time::Duration;

use shopbridge_proto::{
    common::{Operation, PageRequest},
    listings::{self as pb, unpause_listings_request::Selector},
    runs,
};
use tonic::Code;

use crate::support::stack::{Options, Stack};

const API_ONLY: Options = Options {
    gateway: false,
    fast_timers: false,
    listings: true,
};

fn variant(sku: &str, size: &str) -> pb::Variant {
    pb::Variant {
        sku: sku.into(),
        barcode: format!("B-{sku}"),
        option_values: vec![pb::OptionValue {
            name: "Size".into(),
            value: size.into(),
        }],
        weight: Some(pb::Weight {
            value: "2.50".into(),
            unit: pb::WeightUnit::Oz as i32,
        }),
        quantities: vec![
            pb::LocationQuantity {
                location_id: "gid://shopify/Location/2".into(),
                quantity: 5,
            },
            pb::LocationQuantity {
                location_id: "gid://shopify/Location/1".into(),
                quantity: 7,
            },
        ],
        cost: "4.10".into(),
        list_price: "19.99".into(),
        msrp: "24".into(),
        map: "18.5".into(),
        ..Default::default()
    }
}

fn listing(title: &str, brand: &str, skus: &[&str], status: pb::ListingStatus) -> pb::Listing {
    pb::Listing {
        title: title.into(),
        brand: brand.into(),
        description_html: "<p>x</p>".into(),
        tags: vec!["t1".into()],
        options: vec![pb::Option {
            name: "Size".into(),
            values: vec!["S".into(), "M".into()],
        }],
        images: vec![pb::Image {
            url: "https://img.example/1.jpg".into(),
            alt_text: "one".into(),
        }],
        custom_fields: vec![pb::CustomField {
            name: "origin".into(),
            value: "CA".into(),
        }],
        status: status as i32,
        variants: skus
            .iter()
            .enumerate()
            .map(|(i, sku)| variant(sku, if i == 0 { "S" } else { "M" }))
            .collect(),
        ..Default::default()
    }
}

fn page(size: u32, token: &str) -> Option<PageRequest> {
    Some(PageRequest {
        page_size: size,
        page_token: token.into(),
    })
}

#[tokio::test]
async fn import_settings_are_off_until_set_are_checked_and_belong_to_the_tenant() {
    let stack = Stack::start(API_ONLY).await;
    let mut client = stack.client().await;
    let get = |channel: &str| pb::GetImportSettingsRequest {
        channel_id: channel.into(),
    };
    let defaults = client
        .get_import_settings(get(&stack.channel_id))
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert_eq!(
        defaults,
        pb::ImportSettings {
            channel_id: stack.channel_id.clone(),
            enabled: false,
            mode: pb::ImportMode::CreateOnly as i32,
            master_sku_field: pb::MasterSkuField::ShopifyVariantSku as i32,
            pause_new_listings: false,
        }
    );

    let wanted = pb::ImportSettings {
        channel_id: stack.channel_id.clone(),
        enabled: true,
        mode: pb::ImportMode::CreateAndOverwrite as i32,
        master_sku_field: pb::MasterSkuField::ShopifyVariantBarcode as i32,
        pause_new_listings: true,
    };
    for (bad, expected) in [
        (
            pb::ImportSettings {
                mode: 0,
                ..wanted.clone()
            },
            "mode",
        ),
        (
            pb::ImportSettings {
                master_sku_field: 0,
                ..wanted.clone()
            },
            "master_sku_field",
        ),
        (
            pb::ImportSettings {
                channel_id: "main".into(),
                ..wanted.clone()
            },
            "channel_id",
        ),
    ] {
        let status = client
            .set_import_settings(pb::SetImportSettingsRequest {
                settings: Some(bad),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(expected), "{}", status.message());
    }
    let stored = client
        .set_import_settings(pb::SetImportSettingsRequest {
            settings: Some(wanted.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert_eq!(stored, wanted);
    let read_back = client
        .get_import_settings(get(&stack.channel_id))
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert_eq!(read_back, wanted);

    // Another tenant naming the same channel sees nothing of it.
    let other = stack
        .other_tenant("other", &["listings:read", "listings:write"])
        .await;
    let theirs = stack
        .client_with(&other.token)
        .await
        .get_import_settings(get(&stack.channel_id))
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert!(!theirs.enabled);
    stack.finish().await;
}

#[tokio::test]
async fn created_listings_are_read_back_filtered_and_paged() {
    let stack = Stack::start(API_ONLY).await;
    let mut client = stack.client().await;
    let created = client
        .create_listings(pb::CreateListingsRequest {
            listings: vec![
                listing(
                    "Red Ball",
                    "Acme",
                    &["BALL-1", "BALL-2"],
                    pb::ListingStatus::Active,
                ),
                listing(
                    "Blue Leash",
                    "Globex",
                    &["LEASH-1"],
                    pb::ListingStatus::Paused,
                ),
                listing(
                    "Cat Bed",
                    "Acme",
                    &["BED-1"],
                    pb::ListingStatus::Unspecified,
                ),
            ],
        })
        .await
        .unwrap()
        .into_inner()
        .listings;
    assert_eq!(created.len(), 3);
    let ball = &created[0];
    assert_eq!(ball.status, pb::ListingStatus::Active as i32);
    assert_eq!(created[2].status, pb::ListingStatus::Active as i32);
    let v = &ball.variants[0];
    assert_eq!(v.sku, "BALL-1");
    assert_eq!(v.total_quantity, 12);
    assert_eq!(
        v.quantities
            .iter()
            .map(|q| q.location_id.as_str())
            .collect::<Vec<_>>(),
        vec!["gid://shopify/Location/1", "gid://shopify/Location/2"]
    );
    // Decimals come back canonical, exactly as they were meant.
    assert_eq!(
        (
            v.cost.as_str(),
            v.list_price.as_str(),
            v.msrp.as_str(),
            v.map.as_str()
        ),
        ("4.1", "19.99", "24", "18.5")
    );
    assert_eq!(v.weight.as_ref().unwrap().value, "2.5");
    assert!(v.links.is_empty());

    let got = client
        .get_listing(pb::GetListingRequest {
            listing_id: ball.listing_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .listing
        .unwrap();
    assert_eq!(&got, ball);

    let list = |filter: pb::ListListingsRequest| {
        let mut client = client.clone();
        async move {
            let page = client.list_listings(filter).await.unwrap().into_inner();
            let titles: Vec<String> = page.listings.iter().map(|l| l.title.clone()).collect();
            (titles, page.total)
        }
    };
    assert_eq!(
        list(pb::ListListingsRequest {
            sku: "BALL-2".into(),
            ..Default::default()
        })
        .await,
        (vec!["Red Ball".to_string()], 1)
    );
    assert_eq!(
        list(pb::ListListingsRequest {
            status: pb::ListingStatus::Paused as i32,
            ..Default::default()
        })
        .await,
        (vec!["Blue Leash".to_string()], 1)
    );
    assert_eq!(
        list(pb::ListListingsRequest {
            text: "acme bed".into(),
            ..Default::default()
        })
        .await,
        (vec!["Cat Bed".to_string()], 1)
    );
    assert_eq!(
        list(pb::ListListingsRequest {
            text: "leash-1".into(),
            ..Default::default()
        })
        .await,
        (vec!["Blue Leash".to_string()], 1)
    );
    assert_eq!(
        list(pb::ListListingsRequest {
            link_state: pb::LinkState::Linked as i32,
            ..Default::default()
        })
        .await
        .1,
        0
    );
    assert_eq!(
        list(pb::ListListingsRequest {
            link_state: pb::LinkState::Unlinked as i32,
            ..Default::default()
        })
        .await
        .1,
        3
    );

    // Pages of two: every listing once, the total on each page.
    let first = client
        .list_listings(pb::ListListingsRequest {
            page: page(2, ""),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.listings.len(), first.total), (2, 3));
    let token = first.page.unwrap().next_page_token;
    assert!(!token.is_empty());
    let second = client
        .list_listings(pb::ListListingsRequest {
            page: page(2, &token),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((second.listings.len(), second.total), (1, 3));
    assert!(second.page.unwrap().next_page_token.is_empty());
    let mut seen: Vec<String> = first
        .listings
        .iter()
        .chain(&second.listings)
        .map(|l| l.listing_id.clone())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);

    let status = client
        .list_listings(pb::ListListingsRequest {
            page: page(2, "garbage"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    stack.finish().await;
}

#[tokio::test]
async fn create_listings_refuses_bad_input_and_taken_skus_and_creates_nothing() {
    let stack = Stack::start(API_ONLY).await;
    let mut client = stack.client().await;
    client
        .create_listings(pb::CreateListingsRequest {
            listings: vec![listing("One", "A", &["TAKEN"], pb::ListingStatus::Active)],
        })
        .await
        .unwrap();
    let status = client
        .create_listings(pb::CreateListingsRequest {
            listings: vec![
                listing("Two", "A", &["NEW-1"], pb::ListingStatus::Active),
                listing("Three", "A", &["TAKEN"], pb::ListingStatus::Active),
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(status.message().contains("TAKEN"), "{}", status.message());
    let mut bad = listing("Four", "A", &["NEW-2"], pb::ListingStatus::Active);
    bad.variants[0].list_price = "12.345678".into();
    let status = client
        .create_listings(pb::CreateListingsRequest {
            listings: vec![bad],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("list_price"),
        "{}",
        status.message()
    );
    let all = stack.catalog().await;
    assert_eq!(all.len(), 1, "nothing of the refused requests was created");
    stack.finish().await;
}

#[tokio::test]
async fn another_tenants_listing_is_not_found_and_scopes_are_enforced() {
    let stack = Stack::start(API_ONLY).await;
    let mine = stack
        .client()
        .await
        .create_listings(pb::CreateListingsRequest {
            listings: vec![listing("Mine", "A", &["MINE-1"], pb::ListingStatus::Paused)],
        })
        .await
        .unwrap()
        .into_inner()
        .listings
        .remove(0);

    let other = stack
        .other_tenant("other", &["listings:read", "listings:write"])
        .await;
    let mut theirs = stack.client_with(&other.token).await;
    let status = theirs
        .get_listing(pb::GetListingRequest {
            listing_id: mine.listing_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let missing = theirs
        .get_listing(pb::GetListingRequest {
            listing_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (missing.code(), missing.message().contains("not found")),
        (Code::NotFound, true),
        "another tenant's listing looks exactly like a missing one"
    );
    let page = theirs
        .list_listings(pb::ListListingsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((page.listings.len(), page.total), (0, 0));
    let unpaused = theirs
        .unpause_listings(pb::UnpauseListingsRequest {
            selector: Some(Selector::ListingIds(pb::ListingIds {
                ids: vec![mine.listing_id.clone()],
            })),
        })
        .await
        .unwrap()
        .into_inner()
        .unpaused;
    assert_eq!(unpaused, 0, "another tenant's listing is not touched");
    // The other tenant may create the same SKU: catalogs are per tenant.
    theirs
        .create_listings(pb::CreateListingsRequest {
            listings: vec![listing(
                "Theirs",
                "B",
                &["MINE-1"],
                pb::ListingStatus::Active,
            )],
        })
        .await
        .unwrap();

    let reader = stack.client_of(stack.tenant.id, &["listings:read"]).await;
    let mut reader = stack.client_with(&reader.token).await;
    reader
        .list_listings(pb::ListListingsRequest::default())
        .await
        .unwrap();
    for status in [
        reader
            .create_listings(pb::CreateListingsRequest {
                listings: vec![listing("X", "A", &["X-1"], pb::ListingStatus::Active)],
            })
            .await
            .unwrap_err(),
        reader
            .unpause_listings(pb::UnpauseListingsRequest {
                selector: Some(Selector::CreatedByRunId(uuid::Uuid::now_v7().to_string())),
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(status.message().contains("listings:write"));
    }
    let writer_only = stack.client_of(stack.tenant.id, &["listings:write"]).await;
    let status = stack
        .client_with(&writer_only.token)
        .await
        .list_listings(pb::ListListingsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // A token that is not one, and a real token whose signature was tampered with.
    let (head, signature) = stack.tenant.token.rsplit_once('.').expect("a JWT");
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{head}.{flipped}{}", &signature[1..]);
    for token in ["not-a-token", tampered.as_str()] {
        let status = stack
            .client_with(token)
            .await
            .list_listings(pb::ListListingsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{token}");
    }
    // No token at all.
    let listings_addr = stack.listings.as_ref().expect("listings runs").grpc;
    let channel = tonic::transport::Channel::from_shared(format!("http://{listings_addr}"))
        .expect("a URI")
        .connect()
        .await
        .expect("connect to listings");
    let status = pb::listings_service_client::ListingsServiceClient::new(channel)
        .list_listings(pb::ListListingsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // The owner unpauses by id.
    let unpaused = stack
        .client()
        .await
        .unpause_listings(pb::UnpauseListingsRequest {
            selector: Some(Selector::ListingIds(pb::ListingIds {
                ids: vec![mine.listing_id.clone()],
            })),
        })
        .await
        .unwrap()
        .into_inner()
        .unpaused;
    assert_eq!(unpaused, 1);
    let status = stack
        .client()
        .await
        .unpause_listings(pb::UnpauseListingsRequest { selector: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    stack.finish().await;
}

#[tokio::test]
async fn a_run_on_a_channel_with_import_off_fails_saying_how_to_turn_it_on_and_other_operations_are_ignored()
 {
    let stack = Stack::start(API_ONLY).await;
    let other_operation = stack
        .request_run_on(&stack.channel_id, &stack.shop, Operation::GetOrders)
        .await;
    let run = stack.request_import().await;
    let finished = stack.finished_within(&run, Duration::from_secs(45)).await;
    assert_eq!(finished.outcome, runs::Outcome::Failed as i32);
    assert!(finished.error.contains("turned off"), "{}", finished.error);
    let log = stack.log(&run).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].code, "IMPORT_DISABLED");
    assert!(log[0].action.contains("turn on Import Listings"));

    // The orders run was consumed (its inbox row is there) and left alone: no run, no report.
    shopbridge_platform::testing::eventually("the other operation's request consumed", || async {
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_id = $1")
            .bind(format!("request-{other_operation}"))
            .fetch_one(&stack.listings_db.pool)
            .await
            .unwrap();
        seen == 1
    })
    .await;
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM import_runs WHERE run_id = $1::uuid")
        .bind(&other_operation)
        .fetch_one(&stack.listings_db.pool)
        .await
        .unwrap();
    assert_eq!(runs, 0);
    assert!(
        stack
            .nats
            .events::<runs::RunFinished>()
            .await
            .iter()
            .all(|f| f.run_id != other_operation)
    );
    stack.finish().await;
}
