//! Get Orders settings and mapping (as YAML) and order queries through the CLI against the orders service.

use serde_json::Value;

use crate::helpers::{Cli, OrdersStack};

async fn json_of(cli: &Cli, args: &[&str]) -> Value {
    cli.run(args).await.expect_code(0).json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_orders_settings_and_mapping_are_read_and_changed_as_yaml_and_orders_are_listed() {
    let stack = OrdersStack::start().await;
    let cli = stack.cli();
    cli.run(&["channels", "add", "main"]).await.expect_code(0);
    let get = [
        "settings",
        "get",
        "get-orders",
        "--channel",
        "main",
        "-o",
        "json",
    ];
    let defaults = json_of(&cli, &get).await;
    assert_eq!(defaults["enabled"], false);
    assert_eq!(defaults["financial_statuses"], serde_json::json!(["any"]));
    assert_eq!(defaults["updated_within_days"], 14);

    let file = cli.dir.join("get-orders.yaml");
    std::fs::write(
        &file,
        "enabled: true\nfinancial_statuses: [paid, unpaid]\npii_retention: 30_days\ntag_after_import: \"Received\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let set = json_of(
        &cli,
        &[
            "settings",
            "set",
            "get-orders",
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
    assert_eq!(
        set["financial_statuses"],
        serde_json::json!(["paid", "unpaid"])
    );
    assert_eq!(set["pii_retention"], "30_days");
    assert_eq!(
        set["fulfillment_statuses"],
        serde_json::json!(["unfulfilled", "partially_fulfilled"])
    );

    // What `get` prints is YAML that `set -f -` reads back unchanged.
    let printed = cli
        .run(&["settings", "get", "get-orders", "--channel", "main"])
        .await;
    printed.expect_code(0);
    let again = cli
        .run_with_stdin(
            &[
                "settings",
                "set",
                "get-orders",
                "--channel",
                "main",
                "-f",
                "-",
                "-o",
                "json",
            ],
            Some(&printed.stdout),
        )
        .await;
    again.expect_code(0);
    assert_eq!(again.json(), set);

    // The service refuses an invalid combination with its reason: usage, not a crash.
    std::fs::write(&file, "financial_statuses: [any, paid]\n").unwrap();
    let refused = cli
        .run(&[
            "settings",
            "set",
            "get-orders",
            "--channel",
            "main",
            "-f",
            path,
        ])
        .await;
    refused.expect_code(2);
    assert!(refused.stderr.contains("any alone"), "{refused:?}");

    let mapping_file = cli.dir.join("mapping.yaml");
    std::fs::write(
        &mapping_file,
        "disabled: [billing_address.phone, order.total]\ncurrency_by_location: [\"gid://shopify/Location/1=usd\"]\n",
    )
    .unwrap();
    let mapping = json_of(
        &cli,
        &[
            "mapping",
            "set",
            "get-orders",
            "--channel",
            "main",
            "-f",
            mapping_file.to_str().unwrap(),
            "-o",
            "json",
        ],
    )
    .await;
    let off: Vec<&str> = mapping["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["enabled"] == false)
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(off, ["billing_address.phone", "order.total"]);
    assert_eq!(
        mapping["currency_by_location"]["gid://shopify/Location/1"],
        "USD"
    );

    let list = json_of(&cli, &["orders", "list", "--channel", "main", "-o", "json"]).await;
    assert_eq!(list["total"], 0);
    let missing = cli
        .run(&["orders", "show", "01a25300-0000-7000-8000-000000000000"])
        .await;
    missing.expect_code(3);
    stack.finish().await;
}
