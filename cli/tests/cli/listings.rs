//! Settings (as YAML) and catalog queries through the CLI against the listings service.

use serde_json::Value;
use shopbridge_proto::listings::{self as pb, listings_service_client::ListingsServiceClient};

use crate::helpers::{Cli, ListingsStack};

async fn json_of(cli: &Cli, args: &[&str]) -> Value {
    cli.run(args).await.expect_code(0).json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_settings_are_read_and_changed_as_yaml() {
    let stack = ListingsStack::start().await;
    let cli = stack.cli();
    cli.run(&["channels", "add", "main"]).await.expect_code(0);
    let get = [
        "settings",
        "get",
        "import-listings",
        "--channel",
        "main",
        "-o",
        "json",
    ];

    let defaults = json_of(&cli, &get).await;
    assert_eq!(defaults["enabled"], false);
    assert_eq!(defaults["mode"], "create_only");
    assert_eq!(defaults["master_sku_field"], "sku");

    // A file with two keys changes those two; the others keep their values.
    let file = cli.dir.join("import.yaml");
    std::fs::write(&file, "enabled: true\nmode: create_and_overwrite\n").unwrap();
    let path = file.to_str().unwrap();
    let set = json_of(
        &cli,
        &[
            "settings",
            "set",
            "import-listings",
            "--channel",
            "main",
            "-f",
            path,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(set["enabled"], true);
    assert_eq!(set["mode"], "create_and_overwrite");
    assert_eq!(set["master_sku_field"], "sku");
    assert_eq!(set["pause_new_listings"], false);

    // What `get` prints is YAML that `set -f -` reads back.
    let printed = cli
        .run(&["settings", "get", "import-listings", "--channel", "main"])
        .await;
    printed.expect_code(0);
    assert!(
        printed.stdout.contains("mode: create_and_overwrite"),
        "{printed:?}"
    );
    let yaml = printed
        .stdout
        .replace("pause_new_listings: false", "pause_new_listings: true");
    cli.run_with_stdin(
        &[
            "settings",
            "set",
            "import-listings",
            "--channel",
            "main",
            "-f",
            "-",
        ],
        Some(&yaml),
    )
    .await
    .expect_code(0);
    assert_eq!(json_of(&cli, &get).await["pause_new_listings"], true);

    // A wrong value is a usage error naming the keys, and changes nothing.
    std::fs::write(&file, "mode: create_everything\n").unwrap();
    let refused = cli
        .run(&[
            "settings",
            "set",
            "import-listings",
            "--channel",
            "main",
            "-f",
            path,
        ])
        .await;
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("create_and_overwrite"),
        "{refused:?}"
    );
    assert_eq!(json_of(&cli, &get).await["mode"], "create_and_overwrite");
    stack.finish().await;
}

fn listing(title: &str, sku: &str, status: pb::ListingStatus) -> pb::Listing {
    pb::Listing {
        title: title.into(),
        brand: "Acme".into(),
        status: status as i32,
        variants: vec![pb::Variant {
            sku: sku.into(),
            list_price: "19.99".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_are_queried_shown_and_unpaused() {
    let stack = ListingsStack::start().await;
    let cli = stack.cli();
    // The catalog, as a catalog system would fill it.
    let token = stack.admin_token().await;
    let channel = tonic::transport::Channel::from_shared(stack.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::CreateListingsRequest {
        listings: vec![
            listing("Blue shirt", "SKU-A1", pb::ListingStatus::Active),
            listing("Red shirt", "SKU-B1", pb::ListingStatus::Paused),
        ],
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let created = ListingsServiceClient::new(channel)
        .create_listings(request)
        .await
        .unwrap()
        .into_inner()
        .listings;
    let red = created.iter().find(|l| l.title == "Red shirt").unwrap();

    let all = json_of(&cli, &["listings", "list", "-o", "json"]).await;
    assert_eq!(all["total"], 2);
    assert_eq!(all["listings"].as_array().unwrap().len(), 2);
    let paused = json_of(
        &cli,
        &["listings", "list", "--status", "paused", "-o", "json"],
    )
    .await;
    assert_eq!(paused["total"], 1);
    assert_eq!(paused["listings"][0]["listing_id"], red.listing_id.as_str());
    let by_sku = json_of(&cli, &["listings", "list", "--sku", "SKU-A1", "-o", "json"]).await;
    assert_eq!(by_sku["listings"][0]["title"], "Blue shirt");

    let shown = json_of(&cli, &["listings", "show", &red.listing_id, "-o", "json"]).await;
    assert_eq!(shown["status"], "paused");
    assert_eq!(shown["variants"][0]["sku"], "SKU-B1");
    assert_eq!(shown["variants"][0]["list_price"], "19.99");
    let table = cli.run(&["listings", "list"]).await;
    table.expect_code(0);
    assert!(table.stdout.contains("Red shirt") && table.stdout.contains("paused"));
    cli.run(&["listings", "show", &uuid::Uuid::new_v4().to_string()])
        .await
        .expect_code(3);

    let unpaused = json_of(
        &cli,
        &[
            "listings",
            "unpause",
            "--ids",
            &red.listing_id,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(unpaused["unpaused"], 1);
    let paused = json_of(
        &cli,
        &["listings", "list", "--status", "paused", "-o", "json"],
    )
    .await;
    assert_eq!(paused["total"], 0);
    stack.finish().await;
}
