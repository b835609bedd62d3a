//! Firing schedules: across replicas and a leader's death, when a run is still going, and after downtime.

use std::{collections::HashSet, time::Duration};

use chrono::Utc;
use shopbridge_platform::testing::eventually;

use crate::helpers::{
    Env, Owner, OwnerMode, READ, ScheduledRun, WRITE, interval_schedule, new_tenant, set_schedule,
};

/// Whole seconds between two due times.
fn gap(a: &ScheduledRun, b: &ScheduledRun) -> i64 {
    (b.due_at - a.due_at).num_milliseconds() / 1000
}

/// Every due time from the first to the last has exactly one run: consecutive due times are one interval apart.
fn assert_contiguous(runs: &[ScheduledRun], interval: i64) {
    for pair in runs.windows(2) {
        assert_eq!(
            gap(&pair[0], &pair[1]),
            interval,
            "due times {} and {} are not consecutive: a due time is missing or doubled",
            pair[0].due_at,
            pair[1].due_at
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fire_every_due_time_once_and_a_killed_leader_hands_over_within_the_lease() {
    const LEASE_SECS: u64 = 3;
    let env = Env::new().await;
    env.shorten_leases(LEASE_SECS).await;
    let leases = [
        ("SHOPBRIDGE__SERVICE__LEADER__LEASE_SECS", "3"),
        ("SHOPBRIDGE__SERVICE__LEADER__RENEW_INTERVAL_MS", "300"),
    ];
    let owner = Owner::start(
        &env.nats,
        OwnerMode::Complete {
            hold: Duration::from_millis(50),
        },
    )
    .await;
    let a = env.start("replica-a", &leases).await;
    // A leads: it started first on an empty bucket.
    eventually("replica A leads", || async {
        leader_of(&env).await.as_deref() == Some("replica-a")
    })
    .await;
    let b = env.start("replica-b", &leases).await;
    let tenant = new_tenant();
    let token = env.token(&tenant, &[READ, WRITE]);
    let channel = env.active_channel(&tenant).await;
    let mut client = b.client().await;
    set_schedule(&mut client, &token, interval_schedule(&channel, 1)).await;

    // A minute of due times in all: 45 s with both replicas up, then the leader dies, then 15 s more.
    tokio::time::sleep(Duration::from_secs(45)).await;
    let killed_at = Utc::now();
    a.kill().await;
    eventually("replica B takes the lease over", || async {
        leader_of(&env).await.as_deref() == Some("replica-b")
    })
    .await;
    // 15 s more after the handover.
    tokio::time::sleep(Duration::from_secs(15)).await;
    b.stop().await;

    let runs = env.scheduled_runs(&channel).await;
    let by_a: Vec<&ScheduledRun> = runs
        .iter()
        .filter(|r| r.fired_by.as_deref() == Some("replica-a"))
        .collect();
    let by_b: Vec<&ScheduledRun> = runs
        .iter()
        .filter(|r| r.fired_by.as_deref() == Some("replica-b"))
        .collect();
    assert!(by_a.len() >= 40, "replica A fired {} due times", by_a.len());
    assert!(by_b.len() >= 15, "replica B fired {} due times", by_b.len());
    assert!(runs.len() >= 60, "{} due times in a minute", runs.len());
    // Only the leader fired: all of A's due times come before all of B's.
    assert!(by_a.last().unwrap().due_at < by_b.first().unwrap().due_at);
    assert_contiguous(&runs, 1);
    // B took over within the lease (plus a renewal, a tick and slack for a busy machine): the due times that passed
    // in the gap it fired one by one (they were within service.catch_up_after_secs), the first of them promptly.
    let took_over = by_b.first().unwrap().requested_at - killed_at;
    assert!(
        took_over <= chrono::Duration::milliseconds(LEASE_SECS as i64 * 1000 + 2500),
        "B fired its first due time {took_over} after A died"
    );
    // Each requested run was published once, and only requested runs were.
    let requested: Vec<String> = runs
        .iter()
        .filter(|r| r.status != "SKIPPED")
        .map(|r| r.run_id.to_string())
        .collect();
    eventually("the owner has every run request", || async {
        owner.requested().len() >= requested.len()
    })
    .await;
    let published = owner.requested();
    let unique: HashSet<&str> = published.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(
        unique.len(),
        published.len(),
        "a run request was published twice"
    );
    assert_eq!(
        unique,
        requested.iter().map(String::as_str).collect::<HashSet<_>>()
    );
    owner.stop();
    env.finish().await;
}

async fn leader_of(env: &Env) -> Option<String> {
    let kv = env
        .nats
        .js
        .get_key_value(
            env.nats
                .namespace
                .resource(shopbridge_scheduler::LEASE_BUCKET),
        )
        .await
        .unwrap();
    kv.get("leader")
        .await
        .unwrap()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_time_that_finds_its_run_still_going_is_recorded_as_skipped() {
    let env = Env::new().await;
    // Each run takes 2.5 s: with a schedule every second, the next due times find it running.
    let owner = Owner::start(
        &env.nats,
        OwnerMode::Complete {
            hold: Duration::from_millis(2500),
        },
    )
    .await;
    let scheduler = env.start("replica-a", &[]).await;
    let tenant = new_tenant();
    let token = env.token(&tenant, &[READ, WRITE]);
    let channel = env.active_channel(&tenant).await;
    let mut client = scheduler.client().await;
    set_schedule(&mut client, &token, interval_schedule(&channel, 1)).await;

    eventually(
        "a second run is requested after a skipped due time",
        || async {
            let runs = env.scheduled_runs(&channel).await;
            let first_skip = runs.iter().position(|r| r.status == "SKIPPED");
            first_skip.is_some_and(|i| runs[i..].iter().any(|r| r.status != "SKIPPED"))
        },
    )
    .await;
    scheduler.stop().await;
    let runs = env.scheduled_runs(&channel).await;
    assert_contiguous(&runs, 1);
    assert_ne!(runs[0].status, "SKIPPED");
    let skipped = runs.iter().find(|r| r.status == "SKIPPED").unwrap();
    let (error, finished): (String, Option<chrono::DateTime<Utc>>) =
        sqlx::query_as("SELECT error, finished_at FROM runs WHERE run_id = $1")
            .bind(skipped.run_id)
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert!(
        error.contains(&runs[0].run_id.to_string()) && error.contains("still in progress"),
        "{error}"
    );
    assert!(finished.is_some());
    // Never two in progress: every requested run began after the previous one finished.
    let overlapping: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runs a JOIN runs b ON a.channel_id = b.channel_id AND a.run_id < b.run_id
         WHERE a.status <> 'SKIPPED' AND b.status <> 'SKIPPED'
           AND b.requested_at < a.finished_at AND a.requested_at < b.requested_at",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(overlapping, 0);
    // Skipped due times were not published.
    let requested = runs.iter().filter(|r| r.status != "SKIPPED").count();
    eventually("the owner has every request", || async {
        owner.requested().len() >= requested
    })
    .await;
    assert_eq!(owner.requested().len(), requested);
    owner.stop();
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_stopped_across_five_due_times_fires_one_catch_up_run_on_restart() {
    let env = Env::new().await;
    let owner = Owner::start(
        &env.nats,
        OwnerMode::Complete {
            hold: Duration::from_millis(20),
        },
    )
    .await;
    // Due times more than 2 s late count as missed.
    let grace = [("SHOPBRIDGE__SERVICE__CATCH_UP_AFTER_SECS", "2")];
    let scheduler = env.start("replica-a", &grace).await;
    let tenant = new_tenant();
    let token = env.token(&tenant, &[READ, WRITE]);
    let channel = env.active_channel(&tenant).await;
    let mut client = scheduler.client().await;
    set_schedule(&mut client, &token, interval_schedule(&channel, 1)).await;
    eventually("the schedule fires", || async {
        !env.scheduled_runs(&channel).await.is_empty()
    })
    .await;
    scheduler.stop().await;
    let before = env.scheduled_runs(&channel).await;
    let last_before = before.last().unwrap().due_at;

    // Down for six seconds: at least five due times pass.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let restarted_at = Utc::now();
    let scheduler = env.start("replica-a", &grace).await;
    eventually("a run after the restart", || async {
        env.scheduled_runs(&channel).await.len() > before.len() + 1
    })
    .await;
    scheduler.stop().await;

    let after: Vec<ScheduledRun> = env
        .scheduled_runs(&channel)
        .await
        .into_iter()
        .filter(|r| r.due_at > last_before)
        .collect();
    let catch_up = &after[0];
    assert_eq!(catch_up.trigger, "CATCH_UP", "{after:?}");
    // It stands for every due time missed: the latest one before the restart.
    let missed = (catch_up.due_at - last_before).num_seconds();
    assert!(missed >= 5, "only {missed} due times were missed");
    assert!(catch_up.due_at <= restarted_at);
    assert_eq!(
        after.iter().filter(|r| r.trigger == "CATCH_UP").count(),
        1,
        "{after:?}"
    );
    // Then the schedule goes on as scheduled, one due time after the other.
    assert!(after[1..].iter().all(|r| r.trigger == "SCHEDULED"));
    assert_contiguous(&after, 1);
    owner.stop();
    env.finish().await;
}
