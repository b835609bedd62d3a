//! Runs through the API: Run now, the owner's reports (duplicated and out of order), the log, WatchRun, ListRuns,
//! cancelling, the start timeout and retention.

use std::time::Duration;

use futures::StreamExt;
use shopbridge_platform::testing::eventually;
use shopbridge_proto::{
    common::{Operation, PageRequest},
    runs::{self, LogLevel, RunCancelRequested, Trigger},
    scheduler::{self as pb, RunStatus, scheduler_service_client::SchedulerServiceClient},
};
use tonic::{Code, transport::Channel};

use crate::helpers::{
    Env, Owner, OwnerMode, READ, WRITE, authed, get_run, new_tenant, now_ts, shop_of, status_of,
};

async fn run_now(
    client: &mut SchedulerServiceClient<Channel>,
    token: &str,
    channel: &str,
) -> Result<pb::Run, tonic::Status> {
    client
        .run_now(authed(
            pb::RunNowRequest {
                channel_id: channel.into(),
                operation: Operation::ImportListings as i32,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().run.unwrap())
}

fn entry(key: &str, level: LogLevel, code: &str) -> runs::LogEntry {
    runs::LogEntry {
        key: key.into(),
        level: level as i32,
        code: code.into(),
        message: format!("{code} happened"),
        entity: Some(runs::Entity {
            kind: "sku".into(),
            value: key.into(),
            shopify_id: String::new(),
        }),
        action: "fix it in the catalog".into(),
        at: Some(now_ts()),
    }
}

async fn list_runs(
    client: &mut SchedulerServiceClient<Channel>,
    token: &str,
    request: pb::ListRunsRequest,
) -> pb::ListRunsResponse {
    client
        .list_runs(authed(request, token))
        .await
        .expect("list runs")
        .into_inner()
}

async fn log_page(
    client: &mut SchedulerServiceClient<Channel>,
    token: &str,
    run_id: &str,
    min_level: LogLevel,
    page_size: u32,
    page_token: &str,
) -> pb::ListRunLogResponse {
    client
        .list_run_log(authed(
            pb::ListRunLogRequest {
                run_id: run_id.into(),
                min_level: min_level as i32,
                page: Some(PageRequest {
                    page_size,
                    page_token: page_token.into(),
                }),
            },
            token,
        ))
        .await
        .expect("list run log")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_goes_from_requested_to_finished_with_its_progress_and_log_through_the_api() {
    let env = Env::new().await;
    let owner = Owner::start(&env.nats, OwnerMode::Silent).await;
    let scheduler = env.start("replica-a", &[]).await;
    let tenant = new_tenant();
    let token = env.token(&tenant, &[READ, WRITE]);
    let channel = env.active_channel(&tenant).await;
    let mut client = scheduler.client().await;

    let run = run_now(&mut client, &token, &channel).await.unwrap();
    assert_eq!(status_of(&run), RunStatus::Requested);
    assert_eq!(run.trigger, Trigger::Manual as i32);
    let run_id = run.run_id.clone();
    // One run of (channel, operation) at a time.
    let busy = run_now(&mut client, &token, &channel).await.unwrap_err();
    assert_eq!(busy.code(), Code::FailedPrecondition);
    assert!(busy.message().contains(&run_id), "{}", busy.message());

    // Watch it from the start.
    let mut watch = client
        .watch_run(authed(
            pb::WatchRunRequest {
                run_id: run_id.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(message) = watch.next().await {
            seen.push(message.unwrap().run.unwrap());
        }
        seen
    });

    let request = owner.wait_requested(&run_id).await;
    assert_eq!(request.tenant_id, tenant);
    assert_eq!(request.shop_domain, shop_of(&channel));
    assert_eq!(request.operation, Operation::ImportListings as i32);

    let ids = |m: &str| format!("{run_id}-{m}");
    let started = runs::RunStarted {
        run_id: run_id.clone(),
        tenant_id: tenant.clone(),
        channel_id: channel.clone(),
        operation: request.operation,
        started_at: Some(now_ts()),
    };
    env.report(&ids("started"), &started).await;
    eventually("the run is running", || async {
        status_of(&get_run(&mut client.clone(), &token, &run_id).await) == RunStatus::Running
    })
    .await;

    // Progress 2 arrives before progress 1: the registry keeps 2.
    let progress = |seq: u64, processed: u64, stage: &str| runs::RunProgress {
        run_id: run_id.clone(),
        tenant_id: tenant.clone(),
        channel_id: channel.clone(),
        operation: request.operation,
        seq,
        counters: Some(runs::Counters {
            processed,
            created: processed / 2,
            ..Default::default()
        }),
        total: 100,
        stage: stage.into(),
        at: Some(now_ts()),
    };
    env.report(&ids("progress-2"), &progress(2, 20, "applying batch 2"))
        .await;
    env.report(&ids("progress-1"), &progress(1, 10, "applying batch 1"))
        .await;
    env.wait_applied(&ids("progress-1")).await;
    env.wait_applied(&ids("progress-2")).await;
    let current = get_run(&mut client, &token, &run_id).await;
    let counters = current.counters.unwrap();
    assert_eq!((counters.processed, counters.created), (20, 10));
    assert_eq!(
        (current.total, current.stage.as_str()),
        (100, "applying batch 2")
    );

    // Log entries, the batch sent twice (a re-sent report): each entry stored once.
    let logged = runs::RunLogged {
        run_id: run_id.clone(),
        tenant_id: tenant.clone(),
        channel_id: channel.clone(),
        operation: request.operation,
        entries: vec![
            entry("IMPORTED:A-1", LogLevel::Info, "IMPORTED"),
            entry(
                "DUPLICATE_SKU:A-2",
                LogLevel::Warning,
                "DUPLICATE_MASTER_SKU",
            ),
            entry("MISSING_SKU:A-3", LogLevel::Error, "MISSING_MASTER_SKU"),
        ],
    };
    env.report(&ids("log-1"), &logged).await;
    env.report(&ids("log-1-again"), &logged).await;
    env.wait_applied(&ids("log-1")).await;
    env.wait_applied(&ids("log-1-again")).await;

    let finished = |outcome: runs::Outcome| runs::RunFinished {
        run_id: run_id.clone(),
        tenant_id: tenant.clone(),
        channel_id: channel.clone(),
        operation: request.operation,
        outcome: outcome as i32,
        counters: Some(runs::Counters {
            processed: 30,
            created: 15,
            failed: 1,
            ..Default::default()
        }),
        error: String::new(),
        finished_at: Some(now_ts()),
    };
    env.report(&ids("finished"), &finished(runs::Outcome::Partial))
        .await;
    let seen = tokio::time::timeout(Duration::from_secs(30), watcher)
        .await
        .expect("WatchRun ends when the run finishes")
        .unwrap();
    let statuses: Vec<RunStatus> = seen.iter().map(status_of).collect();
    assert_eq!(
        statuses.first(),
        Some(&RunStatus::Requested),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&RunStatus::Partial), "{statuses:?}");
    assert!(statuses.contains(&RunStatus::Running), "{statuses:?}");

    // A finished run stays finished: a late duplicate with another outcome and a late start change nothing.
    env.report(&ids("finished-again"), &finished(runs::Outcome::Failed))
        .await;
    env.report(&ids("started-again"), &started).await;
    env.wait_applied(&ids("finished-again")).await;
    env.wait_applied(&ids("started-again")).await;
    let done = get_run(&mut client, &token, &run_id).await;
    assert_eq!(status_of(&done), RunStatus::Partial);
    assert_eq!(done.counters.unwrap().processed, 30);
    assert_eq!((done.errors, done.warnings), (1, 1));
    assert!(done.started_at.is_some() && done.finished_at.is_some());

    // The log, oldest first, two at a time; and only warnings and errors.
    let first = log_page(&mut client, &token, &run_id, LogLevel::Unspecified, 2, "").await;
    assert_eq!(first.entries.len(), 2);
    let token2 = first.page.unwrap().next_page_token;
    assert!(!token2.is_empty());
    let second = log_page(
        &mut client,
        &token,
        &run_id,
        LogLevel::Unspecified,
        2,
        &token2,
    )
    .await;
    assert_eq!(second.entries.len(), 1);
    assert!(second.page.unwrap().next_page_token.is_empty());
    let keys: Vec<String> = first
        .entries
        .iter()
        .chain(&second.entries)
        .map(|e| e.key.clone())
        .collect();
    assert_eq!(
        keys,
        ["IMPORTED:A-1", "DUPLICATE_SKU:A-2", "MISSING_SKU:A-3"]
    );
    let problems = log_page(&mut client, &token, &run_id, LogLevel::Warning, 0, "").await;
    let codes: Vec<&str> = problems.entries.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(codes, ["DUPLICATE_MASTER_SKU", "MISSING_MASTER_SKU"]);
    let error = &problems.entries[1];
    assert_eq!(error.action, "fix it in the catalog");
    assert_eq!(error.entity.clone().unwrap().value, "MISSING_SKU:A-3");
    let bad_token = client
        .list_run_log(authed(
            pb::ListRunLogRequest {
                run_id: run_id.clone(),
                min_level: 0,
                page: Some(PageRequest {
                    page_size: 2,
                    page_token: "garbage".into(),
                }),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_token.code(), Code::InvalidArgument);

    // A second run, then ListRuns with filters and pages.
    let second_run = run_now(&mut client, &token, &channel).await.unwrap();
    let listed = list_runs(&mut client, &token, pb::ListRunsRequest::default()).await;
    let listed: Vec<&str> = listed.runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(
        listed,
        [second_run.run_id.as_str(), run_id.as_str()],
        "newest first"
    );
    let partial = list_runs(
        &mut client,
        &token,
        pb::ListRunsRequest {
            statuses: vec![RunStatus::Partial as i32],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(partial.runs.len(), 1);
    assert_eq!(partial.runs[0].run_id, run_id);
    let other_operation = list_runs(
        &mut client,
        &token,
        pb::ListRunsRequest {
            channel_id: channel.clone(),
            operation: Operation::SyncListings as i32,
            ..Default::default()
        },
    )
    .await;
    assert!(other_operation.runs.is_empty());
    let since_second = list_runs(
        &mut client,
        &token,
        pb::ListRunsRequest {
            since: second_run.requested_at,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(since_second.runs.len(), 1);
    let until_second = list_runs(
        &mut client,
        &token,
        pb::ListRunsRequest {
            until: second_run.requested_at,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(until_second.runs.len(), 1);
    assert_eq!(until_second.runs[0].run_id, run_id);
    let page_one = list_runs(
        &mut client,
        &token,
        pb::ListRunsRequest {
            page: Some(PageRequest {
                page_size: 1,
                page_token: String::new(),
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(page_one.runs[0].run_id, second_run.run_id);
    let next = page_one.page.unwrap().next_page_token;
    let page_two = list_runs(
        &mut client,
        &token,
        pb::ListRunsRequest {
            page: Some(PageRequest {
                page_size: 1,
                page_token: next,
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(page_two.runs[0].run_id, run_id);
    assert!(page_two.page.unwrap().next_page_token.is_empty());

    owner.stop();
    scheduler.stop().await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_ends_an_unstarted_run_at_once_and_a_started_one_when_its_owner_stops() {
    let env = Env::new().await;
    let owner = Owner::start(&env.nats, OwnerMode::Silent).await;
    let scheduler = env.start("replica-a", &[]).await;
    let tenant = new_tenant();
    let token = env.token(&tenant, &[READ, WRITE]);
    let channel = env.active_channel(&tenant).await;
    let mut client = scheduler.client().await;
    let cancel = |run_id: &str| pb::CancelRunRequest {
        run_id: run_id.into(),
    };

    // Nobody started it: cancelled directly.
    let waiting = run_now(&mut client, &token, &channel).await.unwrap();
    let cancelled = client
        .cancel_run(authed(cancel(&waiting.run_id), &token))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert_eq!(status_of(&cancelled), RunStatus::Cancelled);
    assert!(cancelled.finished_at.is_some());

    // Started: CANCELLING until the owner reports it stopped.
    let running = run_now(&mut client, &token, &channel).await.unwrap();
    let request = owner.wait_requested(&running.run_id).await;
    let started = runs::RunStarted {
        run_id: running.run_id.clone(),
        tenant_id: tenant.clone(),
        channel_id: channel.clone(),
        operation: request.operation,
        started_at: Some(now_ts()),
    };
    env.report(&format!("{}-started", running.run_id), &started)
        .await;
    eventually("the run is running", || async {
        status_of(&get_run(&mut client.clone(), &token, &running.run_id).await)
            == RunStatus::Running
    })
    .await;
    for _ in 0..2 {
        let cancelling = client
            .cancel_run(authed(cancel(&running.run_id), &token))
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap();
        assert_eq!(status_of(&cancelling), RunStatus::Cancelling);
    }
    // Still one in progress: no new run meanwhile.
    assert_eq!(
        run_now(&mut client, &token, &channel)
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    eventually("the owner is told to cancel both", || async {
        let cancels = owner.cancels.lock().unwrap().clone();
        [&waiting.run_id, &running.run_id].iter().all(|id| {
            cancels
                .iter()
                .any(|c: &RunCancelRequested| &c.run_id == *id)
        })
    })
    .await;
    let stopped = runs::RunFinished {
        run_id: running.run_id.clone(),
        tenant_id: tenant.clone(),
        channel_id: channel.clone(),
        operation: request.operation,
        outcome: runs::Outcome::Cancelled as i32,
        counters: None,
        error: String::new(),
        finished_at: Some(now_ts()),
    };
    env.report(&format!("{}-finished", running.run_id), &stopped)
        .await;
    eventually("the run is cancelled", || async {
        status_of(&get_run(&mut client.clone(), &token, &running.run_id).await)
            == RunStatus::Cancelled
    })
    .await;
    let finished = client
        .cancel_run(authed(cancel(&running.run_id), &token))
        .await
        .unwrap_err();
    assert_eq!(finished.code(), Code::FailedPrecondition);
    assert!(
        finished.message().contains("already finished"),
        "{}",
        finished.message()
    );

    owner.stop();
    scheduler.stop().await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_nobody_starts_fails_after_the_start_timeout_with_an_actionable_error() {
    let env = Env::new().await;
    let scheduler = env
        .start(
            "replica-a",
            &[("SHOPBRIDGE__SERVICE__START_TIMEOUT_SECS", "1")],
        )
        .await;
    let tenant = new_tenant();
    let token = env.token(&tenant, &[READ, WRITE]);
    let channel = env.active_channel(&tenant).await;
    let mut client = scheduler.client().await;
    let run = run_now(&mut client, &token, &channel).await.unwrap();
    eventually("the unstarted run fails", || async {
        status_of(&get_run(&mut client.clone(), &token, &run.run_id).await) == RunStatus::Failed
    })
    .await;
    let failed = get_run(&mut client, &token, &run.run_id).await;
    assert!(
        failed
            .error
            .contains("the listings service did not pick up the run")
            && failed.error.contains("check that it is running"),
        "{}",
        failed.error
    );
    assert_eq!(failed.errors, 1);
    let log = log_page(&mut client, &token, &run.run_id, LogLevel::Error, 0, "").await;
    assert_eq!(log.entries[0].code, "RUN_NOT_STARTED");
    // The owner is told not to start it late, and the channel operation is free again.
    eventually("a cancel request is published", || async {
        env.nats
            .events::<RunCancelRequested>()
            .await
            .iter()
            .any(|c| c.run_id == run.run_id)
    })
    .await;
    run_now(&mut client, &token, &channel).await.unwrap();
    scheduler.stop().await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_runs_older_than_the_retention_are_deleted_with_their_logs() {
    let env = Env::new().await;
    let scheduler = env.start("replica-a", &[]).await;
    let tenant = new_tenant();
    let token = env.token(&tenant, &[READ, WRITE]);
    let channel = env.active_channel(&tenant).await;
    let mut client = scheduler.client().await;
    let old = run_now(&mut client, &token, &channel).await.unwrap();
    let logged = runs::RunLogged {
        run_id: old.run_id.clone(),
        tenant_id: tenant.clone(),
        channel_id: channel.clone(),
        operation: Operation::ImportListings as i32,
        entries: vec![entry("K1", LogLevel::Info, "IMPORTED")],
    };
    env.report("old-log", &logged).await;
    env.wait_applied("old-log").await;
    // It finished 31 days ago (the default retention is 30 days).
    let old_id = uuid::Uuid::parse_str(&old.run_id).unwrap();
    sqlx::query(
        "UPDATE runs SET status = 'SUCCEEDED', finished_at = now() - interval '31 days' WHERE run_id = $1",
    )
    .bind(old_id)
    .execute(&env.db.pool)
    .await
    .unwrap();
    let recent = run_now(&mut client, &token, &channel).await.unwrap();
    sqlx::query(
        "UPDATE runs SET status = 'SUCCEEDED', finished_at = now() - interval '29 days' WHERE run_id = $1",
    )
    .bind(uuid::Uuid::parse_str(&recent.run_id).unwrap())
    .execute(&env.db.pool)
    .await
    .unwrap();
    eventually("the expired run is deleted", || async {
        client
            .clone()
            .get_run(authed(
                pb::GetRunRequest {
                    run_id: old.run_id.clone(),
                },
                &token,
            ))
            .await
            .is_err_and(|s| s.code() == Code::NotFound)
    })
    .await;
    let log_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM run_log WHERE run_id = $1")
        .bind(old_id)
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(log_rows, 0);
    get_run(&mut client, &token, &recent.run_id).await;
    scheduler.stop().await;
    env.finish().await;
}
