use secrecy::ExposeSecret;

use crate::helpers::{APP_CLIENT_ID, APP_CLIENT_SECRET, Auth, GOOD_SHOP, GOOD_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_added_connected_listed_shown_and_disconnected_through_the_cli() {
    let auth = Auth::start().await;
    let cli = auth.cli();

    let added = cli.run(&["channels", "add", "main", "-o", "json"]).await;
    let added = added.expect_code(0).json();
    assert_eq!(added["name"], "main");
    assert_eq!(added["state"], "connecting");
    let id = added["channel_id"]
        .as_str()
        .expect("channel_id")
        .to_string();

    // The token goes in on stdin and never comes out, in any stream.
    let connected = cli
        .run_with_stdin(
            &[
                "channels",
                "connect-token",
                "main",
                "--shop",
                &format!("https://{GOOD_SHOP}/"),
                "--token-stdin",
                "--scopes",
                "read_products,write_inventory",
                "-o",
                "json",
            ],
            Some(&format!("{GOOD_TOKEN}\n")),
        )
        .await;
    let view = connected.expect_code(0).json();
    assert_eq!(view["state"], "active");
    assert_eq!(view["shop_domain"], GOOD_SHOP);
    assert_eq!(view["shop_name"], "Good Shop");
    assert_eq!(
        view["granted_scopes"],
        serde_json::json!(["read_products", "write_inventory"])
    );
    assert!(!connected.output().contains(GOOD_TOKEN));

    let listed = cli.run(&["channels", "list", "-o", "json"]).await;
    let listed = listed.expect_code(0).json();
    let listed = listed.as_array().expect("a JSON array");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["channel_id"], id.as_str());
    assert_eq!(listed[0]["state"], "active");

    // By name and by id, the same channel.
    for arg in ["main", id.as_str()] {
        let shown = cli.run(&["channels", "show", arg, "-o", "json"]).await;
        let shown = shown.expect_code(0).json();
        assert_eq!(shown["channel_id"], id.as_str(), "{arg}");
        assert_eq!(shown["plan"], "basic");
    }

    // The human table names the channel, its state and shop.
    let table = cli.run(&["channels", "list"]).await;
    table.expect_code(0);
    let header = table.stdout.lines().next().expect("a header");
    assert!(header.starts_with("NAME"), "{}", table.stdout);
    assert!(table.stdout.contains("main") && table.stdout.contains(GOOD_SHOP));

    let disconnected = cli
        .run(&["channels", "disconnect", "main", "-o", "json"])
        .await;
    assert_eq!(disconnected.expect_code(0).json()["state"], "disconnected");

    // Neither the client secret nor an access token appears in anything the CLI printed.
    for run in [&table, &disconnected] {
        assert!(
            !run.output()
                .contains(auth.admin.client_secret.expose_secret())
        );
        assert!(!run.output().contains("eyJ"), "no JWS in the output");
    }
    auth.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_channel_of_the_same_name_is_a_conflict() {
    let auth = Auth::start().await;
    let cli = auth.cli();
    cli.run(&["channels", "add", "main"]).await.expect_code(0);
    let again = cli.run(&["channels", "add", "main"]).await;
    again.expect_code(9);
    assert!(again.stderr.contains("exists already"), "{again:?}");
    auth.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_store_token_changes_nothing_and_says_why() {
    let auth = Auth::start().await;
    let cli = auth.cli();
    cli.run(&["channels", "add", "main"]).await.expect_code(0);
    let refused = cli
        .with("SHOPBRIDGE_CLI_SHOP_TOKEN", "shpat_wrong")
        .run(&["channels", "connect-token", "main", "--shop", GOOD_SHOP])
        .await;
    refused.expect_code(9);
    assert!(
        refused.stderr.contains("refused the access token"),
        "{refused:?}"
    );
    assert_eq!(refused.stderr.lines().count(), 1, "one line: {refused:?}");
    assert!(!refused.output().contains("shpat_wrong"));
    let shown = cli.run(&["channels", "show", "main", "-o", "json"]).await;
    assert_eq!(shown.expect_code(0).json()["state"], "connecting");
    auth.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_oauth_prints_the_url_to_open() {
    let auth = Auth::start().await;
    let cli = auth.cli();
    cli.run(&["channels", "add", "main"]).await.expect_code(0);

    // For people: the URL alone on stdout, what to do with it on stderr.
    let human = cli
        .run(&["channels", "connect-oauth", "main", "--shop", GOOD_SHOP])
        .await;
    human.expect_code(0);
    let url = human.stdout.trim();
    assert!(
        url.starts_with(&format!("https://{GOOD_SHOP}/admin/oauth/authorize?")),
        "{human:?}"
    );
    assert!(url.contains(&format!("client_id={APP_CLIENT_ID}")), "{url}");
    assert!(url.contains("state="), "{url}");
    assert!(human.stderr.contains("open this URL"), "{human:?}");

    let json = cli
        .run(&[
            "channels",
            "connect-oauth",
            "main",
            "--shop",
            GOOD_SHOP,
            "-o",
            "json",
        ])
        .await;
    let view = json.expect_code(0).json();
    assert_eq!(view["shop_domain"], GOOD_SHOP);
    assert!(view["authorize_url"].as_str().unwrap().contains("state="));
    assert!(view["expires_at"].is_string());
    for run in [&human, &json] {
        assert!(!run.output().contains(APP_CLIENT_SECRET));
    }

    // A store URL that is not a store is refused as bad input.
    let bad = cli
        .run(&["channels", "connect-oauth", "main", "--shop", "evil.com"])
        .await;
    bad.expect_code(2);
    auth.finish().await;
}
