//! Exit codes and messages for what goes wrong: scripts branch on the code, people read the one line.

use std::net::TcpListener;

use secrecy::ExposeSecret;

use crate::helpers::{Auth, Cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_channel_is_not_found_with_exit_code_3() {
    let auth = Auth::start().await;
    let cli = auth.cli();
    let by_name = cli.run(&["channels", "show", "nope"]).await;
    by_name.expect_code(3);
    assert!(
        by_name.stderr.contains("shopbridge channels list"),
        "{by_name:?}"
    );
    let by_id = cli
        .run(&["channels", "show", &uuid::Uuid::new_v4().to_string()])
        .await;
    by_id.expect_code(3);
    assert!(by_id.stdout.is_empty());
    assert_eq!(by_id.stderr.lines().count(), 1, "{by_id:?}");
    auth.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_exit_code_7_and_says_to_configure() {
    let auth = Auth::start().await;
    let wrong = "not-the-secret-0123456789";
    let cli = Cli::new()
        .env("SHOPBRIDGE_CLI_AUTH_URL", &auth.url())
        .env("SHOPBRIDGE_CLI_CLIENT_ID", &auth.admin.client_id)
        .env("SHOPBRIDGE_CLI_CLIENT_SECRET", wrong);
    let refused = cli.run(&["channels", "list", "-o", "json"]).await;
    refused.expect_code(7);
    assert!(
        refused.stderr.contains("shopbridge configure"),
        "{refused:?}"
    );
    assert_eq!(refused.stderr.lines().count(), 1);
    assert!(!refused.output().contains(wrong));
    assert!(
        !refused
            .output()
            .contains(auth.admin.client_secret.expose_secret())
    );

    // No credentials at all: the same code, the same advice.
    let bare = Cli::new().env("SHOPBRIDGE_CLI_AUTH_URL", &auth.url());
    let missing = bare.run(&["channels", "list"]).await;
    missing.expect_code(7);
    assert!(
        missing.stderr.contains("shopbridge configure"),
        "{missing:?}"
    );
    auth.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_exit_code_6_naming_it() {
    // A port nothing listens on any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let cli = Cli::new()
        .env("SHOPBRIDGE_CLI_AUTH_URL", &url)
        .env("SHOPBRIDGE_CLI_CLIENT_ID", "someone")
        .env("SHOPBRIDGE_CLI_CLIENT_SECRET", "something");
    let run = cli.run(&["channels", "list"]).await;
    run.expect_code(6);
    assert!(run.stderr.contains(&url), "{run:?}");
    assert!(run.stderr.contains("auth"), "{run:?}");
    assert!(!run.output().contains("something"));
}

#[tokio::test]
async fn usage_errors_are_exit_code_2() {
    let cli = Cli::new();
    cli.run(&["run", "import-everything", "--channel", "main"])
        .await
        .expect_code(2);
    cli.run(&["channels"]).await.expect_code(2);
    let bad_url = cli
        .run(&["configure", "--auth-url", "127.0.0.1:50051"])
        .await;
    bad_url.expect_code(2);
    assert!(bad_url.stderr.contains("http://"), "{bad_url:?}");
    assert!(
        !cli.config_file().exists(),
        "a refused configure writes nothing"
    );
}

#[tokio::test]
async fn what_this_deployment_lacks_is_exit_code_8_and_changes_nothing() {
    let cli = Cli::new();
    let yaml = cli.dir.join("mapping.yaml");
    std::fs::write(&yaml, "title: name\n").unwrap();
    for args in [
        vec!["mapping", "get", "import-listings", "--channel", "main"],
        vec![
            "mapping",
            "set",
            "publish-listings",
            "--channel",
            "main",
            "-f",
            yaml.to_str().unwrap(),
        ],
        vec!["settings", "get", "sync-orders", "--channel", "main"],
    ] {
        let run = cli.run(&args).await;
        run.expect_code(8);
        assert!(run.stderr.contains("not available"), "{args:?}: {run:?}");
        assert!(run.stdout.is_empty());
    }
}

#[tokio::test]
async fn configure_writes_a_private_file_that_the_environment_overrides() {
    let cli = Cli::new();
    let secret = "client-secret-value-42";
    let written = cli
        .run_with_stdin(
            &[
                "configure",
                "--auth-url",
                "http://10.0.0.1:50051/",
                "--scheduler-url",
                "http://10.0.0.2:50055",
                "--client-id",
                "client-1",
                "--client-secret-stdin",
                "-o",
                "json",
            ],
            Some(&format!("{secret}\n")),
        )
        .await;
    let view = written.expect_code(0).json();
    assert_eq!(view["written"], true);
    assert_eq!(view["auth_url"], "http://10.0.0.1:50051");
    assert_eq!(view["client_id"], "client-1");
    assert_eq!(view["client_secret_set"], true);
    assert!(!written.output().contains(secret));

    let file = cli.config_file();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(secret), "the secret is kept in the file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A later configure keeps what it is not told; the environment wins over the file.
    let shown = cli
        .with("SHOPBRIDGE_CLI_AUTH_URL", "http://10.0.0.9:1")
        .run(&[
            "configure",
            "--listings-url",
            "http://10.0.0.3:50052",
            "-o",
            "json",
        ])
        .await;
    let view = shown.expect_code(0).json();
    assert_eq!(view["auth_url"], "http://10.0.0.9:1");
    assert_eq!(view["scheduler_url"], "http://10.0.0.2:50055");
    assert_eq!(view["listings_url"], "http://10.0.0.3:50052");
    assert_eq!(view["client_id"], "client-1");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("http://10.0.0.1:50051"),
        "the env is not written: {text}"
    );
}
