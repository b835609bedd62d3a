//! Runs through the scheduler's gRPC API and the CLI: `run --wait` follows WatchRun while the test, as the owning
//! service, reports on the bus; `runs` and `logs` read the registry. Every `-o json` is parsed.

use serde_json::Value;
use shopbridge_platform::testing::eventually;
use shopbridge_proto::{
    common::Operation,
    runs::{
        Counters, Entity, LogEntry, LogLevel, Outcome, RunFinished, RunLogged, RunProgress,
        RunRequested, RunStarted,
    },
};

use crate::helpers::{Cli, GOOD_SHOP, Stack, now};

fn started(run: &RunRequested) -> RunStarted {
    RunStarted {
        run_id: run.run_id.clone(),
        tenant_id: run.tenant_id.clone(),
        channel_id: run.channel_id.clone(),
        operation: run.operation,
        started_at: Some(now()),
    }
}

fn progress(
    run: &RunRequested,
    seq: u64,
    counters: Counters,
    total: u64,
    stage: &str,
) -> RunProgress {
    RunProgress {
        run_id: run.run_id.clone(),
        tenant_id: run.tenant_id.clone(),
        channel_id: run.channel_id.clone(),
        operation: run.operation,
        seq,
        counters: Some(counters),
        total,
        stage: stage.into(),
        at: Some(now()),
    }
}

fn finished(run: &RunRequested, outcome: Outcome, counters: Counters, error: &str) -> RunFinished {
    RunFinished {
        run_id: run.run_id.clone(),
        tenant_id: run.tenant_id.clone(),
        channel_id: run.channel_id.clone(),
        operation: run.operation,
        outcome: outcome as i32,
        counters: Some(counters),
        error: error.into(),
        finished_at: Some(now()),
    }
}

fn entry(
    key: &str,
    level: LogLevel,
    code: &str,
    sku: &str,
    message: &str,
    action: &str,
) -> LogEntry {
    LogEntry {
        key: key.into(),
        level: level as i32,
        code: code.into(),
        message: message.into(),
        entity: Some(Entity {
            kind: "sku".into(),
            value: sku.into(),
            shopify_id: "gid://shopify/ProductVariant/7".into(),
        }),
        action: action.into(),
        at: Some(now()),
    }
}

async fn json_of(cli: &Cli, args: &[&str]) -> Value {
    cli.run(args).await.expect_code(0).json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_followed_to_its_end_and_its_log_read_through_the_cli() {
    let stack = Stack::start().await;
    let cli = stack.cli();
    let channel_id = stack.active_channel(&cli, "main").await;

    let waiting = cli.spawn(&[
        "run",
        "import-listings",
        "--channel",
        "main",
        "--wait",
        "-o",
        "json",
    ]);
    let run = stack.requested_run(&channel_id, &[]).await;
    assert_eq!(run.operation, Operation::ImportListings as i32);
    assert_eq!(run.shop_domain, GOOD_SHOP);
    assert_eq!(run.tenant_id, stack.tenant_id());
    let id = run.run_id.as_str();

    stack.report(&run, "started", &started(&run)).await;
    let one = Counters {
        processed: 1,
        created: 1,
        ..Default::default()
    };
    stack
        .report(
            &run,
            "progress-1",
            &progress(&run, 1, one, 3, "importing products"),
        )
        .await;
    // Meanwhile `runs show` sees it running, with its progress.
    eventually("runs show reports the progress", || async {
        let shown = cli
            .run(&["runs", "show", id, "-o", "json"])
            .await
            .expect_code(0)
            .json();
        shown["status"] == "running" && shown["counters"]["processed"] == 1 && shown["total"] == 3
    })
    .await;
    assert!(
        !waiting.is_finished(),
        "--wait waits while the run is running"
    );

    stack
        .report(
            &run,
            "logged",
            &RunLogged {
                run_id: run.run_id.clone(),
                tenant_id: run.tenant_id.clone(),
                channel_id: run.channel_id.clone(),
                operation: run.operation,
                entries: vec![
                    entry(
                        "DUPLICATE_MASTER_SKU:ABC-1",
                        LogLevel::Warning,
                        "DUPLICATE_MASTER_SKU",
                        "ABC-1",
                        "two Shopify variants have SKU ABC-1",
                        "give each variant its own SKU in Shopify",
                    ),
                    entry(
                        "MISSING_MASTER_SKU:7",
                        LogLevel::Error,
                        "MISSING_MASTER_SKU",
                        "",
                        "a Shopify variant has no SKU",
                        "set a SKU on the variant in Shopify and import again",
                    ),
                ],
            },
        )
        .await;
    let done_counters = Counters {
        processed: 3,
        created: 1,
        linked: 1,
        failed: 1,
        ..Default::default()
    };
    stack
        .report(
            &run,
            "finished",
            &finished(&run, Outcome::Partial, done_counters, ""),
        )
        .await;

    // PARTIAL: exit code 5, the final run as JSON, and a line saying where to look.
    let done = waiting.await.unwrap();
    done.expect_code(5);
    let view = done.json();
    assert_eq!(view["run_id"], id);
    assert_eq!(view["status"], "partial");
    assert_eq!(view["operation"], "import-listings");
    assert_eq!(view["trigger"], "manual");
    assert_eq!(view["channel_id"], channel_id.as_str());
    assert_eq!(view["counters"]["processed"], 3);
    assert_eq!(view["counters"]["linked"], 1);
    assert_eq!(view["counters"]["failed"], 1);
    assert!(view["finished_at"].is_string());
    assert!(
        done.stderr.contains(&format!("shopbridge logs {id}")),
        "{done:?}"
    );

    // The log, oldest first; by level.
    eventually("the log has both entries", || async {
        let logs = cli
            .run(&["logs", id, "-o", "json"])
            .await
            .expect_code(0)
            .json();
        logs.as_array().is_some_and(|l| l.len() == 2)
    })
    .await;
    let logs = json_of(&cli, &["logs", id, "-o", "json"]).await;
    let warning = &logs[0];
    assert_eq!(warning["level"], "warning");
    assert_eq!(warning["code"], "DUPLICATE_MASTER_SKU");
    assert_eq!(warning["entity"]["kind"], "sku");
    assert_eq!(warning["entity"]["value"], "ABC-1");
    assert_eq!(
        warning["entity"]["shopify_id"],
        "gid://shopify/ProductVariant/7"
    );
    assert_eq!(
        warning["action"],
        "give each variant its own SKU in Shopify"
    );
    let errors = json_of(&cli, &["logs", id, "--level", "error", "-o", "json"]).await;
    let errors = errors.as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["code"], "MISSING_MASTER_SKU");

    let table = cli.run(&["logs", id]).await;
    table.expect_code(0);
    let header: Vec<&str> = table
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["LEVEL", "CODE", "ENTITY", "MESSAGE", "ACTION"]);
    assert!(table.stdout.contains("sku ABC-1"), "{}", table.stdout);

    // The registry: the run with its log counts, and filters that exclude it.
    let runs = json_of(&cli, &["runs", "--channel", "main", "-o", "json"]).await;
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["run_id"], id);
    assert_eq!(runs[0]["status"], "partial");
    assert_eq!(runs[0]["errors"], 1);
    assert_eq!(runs[0]["warnings"], 1);
    let failed = json_of(
        &cli,
        &["runs", "--status", "failed,cancelled", "-o", "json"],
    )
    .await;
    assert_eq!(failed, serde_json::json!([]));
    let table = cli.run(&["runs"]).await;
    table.expect_code(0);
    assert!(table.stdout.contains(id) && table.stdout.contains("partial"));
    assert!(
        table.stdout.contains("main"),
        "channels by name: {}",
        table.stdout
    );
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_refused_a_cancel_is_followed_and_a_failed_run_exits_4() {
    let stack = Stack::start().await;
    let cli = stack.cli();
    let channel_id = stack.active_channel(&cli, "main").await;

    // Without --wait: the requested run, at once.
    let requested = json_of(
        &cli,
        &[
            "run",
            "import-listings",
            "--channel",
            &channel_id,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(requested["status"], "requested");
    let first = requested["run_id"].as_str().unwrap().to_string();

    let run = stack.requested_run(&channel_id, &[]).await;
    assert_eq!(run.run_id, first);
    stack.report(&run, "started", &started(&run)).await;
    eventually("the run is running", || async {
        cli.run(&["runs", "show", &first, "-o", "json"])
            .await
            .json()["status"]
            == "running"
    })
    .await;

    // A second run of the same operation while the first is in progress: refused, saying where to look.
    let again = cli
        .run(&["run", "import-listings", "--channel", "main"])
        .await;
    again.expect_code(9);
    assert!(
        again.stderr.contains(&first),
        "names the run in progress: {again:?}"
    );
    assert!(
        again.stderr.contains("shopbridge runs --channel main"),
        "{again:?}"
    );

    // Cancel: the scheduler asks the owner to stop; the owner reports it cancelled.
    let cancelling = json_of(&cli, &["runs", "cancel", &first, "-o", "json"]).await;
    assert_eq!(cancelling["status"], "cancelling");
    stack
        .report(
            &run,
            "finished",
            &finished(&run, Outcome::Cancelled, Counters::default(), ""),
        )
        .await;
    eventually("the run is cancelled", || async {
        cli.run(&["runs", "show", &first, "-o", "json"])
            .await
            .json()["status"]
            == "cancelled"
    })
    .await;

    // A run that fails: exit code 4 and the reason.
    let waiting = cli.spawn(&["run", "import-listings", "--channel", "main", "--wait"]);
    let run = stack.requested_run(&channel_id, &[&first]).await;
    stack.report(&run, "started", &started(&run)).await;
    stack
        .report(
            &run,
            "finished",
            &finished(
                &run,
                Outcome::Failed,
                Counters::default(),
                "Shopify refused the store's access token",
            ),
        )
        .await;
    let done = waiting.await.unwrap();
    done.expect_code(4);
    assert!(
        done.stdout.contains("failed"),
        "the run as fields: {done:?}"
    );
    assert!(
        done.stderr
            .contains("Shopify refused the store's access token"),
        "{done:?}"
    );
    stack.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_set_and_shown_and_unknown_runs_are_not_found() {
    let stack = Stack::start().await;
    let cli = stack.cli();
    let channel_id = stack.active_channel(&cli, "main").await;
    let set = |extra: &[&str]| {
        let mut args = vec![
            "schedule",
            "set",
            "--channel",
            "main",
            "--operation",
            "import-listings",
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let cli = &cli;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli.run(&args).await
        }
    };

    let every = run(set(&["--every", "15m"])).await.expect_code(0).json();
    assert_eq!(every["channel_id"], channel_id.as_str());
    assert_eq!(every["operation"], "import-listings");
    assert_eq!(every["enabled"], true);
    assert_eq!(every["every_seconds"], 900);
    assert!(every["next_due_at"].is_string());

    let cron = run(set(&["--cron", "0 */2 * * *", "--tz", "Europe/Berlin"]))
        .await
        .expect_code(0)
        .json();
    assert_eq!(cron["cron"], "0 */2 * * *");
    assert_eq!(cron["time_zone"], "Europe/Berlin");
    assert_eq!(cron["every_seconds"], Value::Null);

    // Disabling keeps the timing.
    let disabled = run(set(&["--disable"])).await.expect_code(0).json();
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["cron"], "0 */2 * * *");
    assert_eq!(disabled["next_due_at"], Value::Null);

    let shown = json_of(
        &cli,
        &["schedule", "show", "--channel", "main", "-o", "json"],
    )
    .await;
    assert_eq!(shown.as_array().unwrap().len(), 1);
    assert_eq!(shown[0]["enabled"], false);
    let table = cli.run(&["schedule", "show"]).await;
    table.expect_code(0);
    assert!(
        table
            .stdout
            .contains("cron \"0 */2 * * *\" (Europe/Berlin)"),
        "{}",
        table.stdout
    );

    // Bad input is refused before anything changes; the server's refusals keep their meaning.
    run(set(&["--every", "15x"])).await.expect_code(2);
    let bad_cron = run(set(&["--cron", "not a cron"])).await;
    bad_cron.expect_code(2);
    let unknown = uuid::Uuid::new_v4().to_string();
    let not_found = cli.run(&["runs", "show", &unknown]).await;
    not_found.expect_code(3);
    assert!(
        not_found.stderr.contains("shopbridge runs"),
        "{not_found:?}"
    );
    cli.run(&["logs", &unknown]).await.expect_code(3);
    cli.run(&["runs", "show", "not-a-run-id"])
        .await
        .expect_code(2);
    stack.finish().await;
}
