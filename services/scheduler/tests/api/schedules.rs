//! Schedules through the API: validation, operations not deployed, unknown channels, and pausing with the channel.

use std::time::Duration;

use shopbridge_platform::testing::eventually;
use shopbridge_proto::{
    auth::ChannelState,
    common::Operation,
    scheduler::{self as pb, scheduler_service_client::SchedulerServiceClient},
};
use tonic::{Code, transport::Channel};

use crate::helpers::{
    Env, Owner, OwnerMode, READ, WRITE, authed, interval_schedule, new_tenant, set_schedule,
};

async fn set_err(
    client: &mut SchedulerServiceClient<Channel>,
    token: &str,
    schedule: pb::Schedule,
) -> tonic::Status {
    client
        .set_schedule(authed(
            pb::SetScheduleRequest {
                schedule: Some(schedule),
            },
            token,
        ))
        .await
        .unwrap_err()
}

fn cron(channel: &str, expression: &str, time_zone: &str) -> pb::Schedule {
    pb::Schedule {
        channel_id: channel.into(),
        operation: Operation::ImportListings as i32,
        enabled: true,
        timing: Some(pb::schedule::Timing::Cron(pb::Cron {
            expression: expression.into(),
            time_zone: time_zone.into(),
        })),
        ..Default::default()
    }
}

async fn get_schedule(
    client: &mut SchedulerServiceClient<Channel>,
    token: &str,
    channel: &str,
) -> pb::Schedule {
    client
        .get_schedule(authed(
            pb::GetScheduleRequest {
                channel_id: channel.into(),
                operation: Operation::ImportListings as i32,
            },
            token,
        ))
        .await
        .expect("get schedule")
        .into_inner()
        .schedule
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_checked_and_bad_ones_are_refused_naming_the_problem() {
    let env = Env::new().await;
    let scheduler = env.start("replica-a", &[]).await;
    let tenant = new_tenant();
    let token = env.token(&tenant, &[READ, WRITE]);
    let channel = env.active_channel(&tenant).await;
    let mut client = scheduler.client().await;

    let cases = [
        (cron(&channel, "* * *", ""), "has 3 fields"),
        (cron(&channel, "0 25 * * *", ""), "`0 25 * * *` is invalid"),
        (
            cron(&channel, "0 9 * * 1-5", "Europe/Berlinn"),
            "`Europe/Berlinn` is not an IANA time zone",
        ),
        (interval_schedule(&channel, 0), "at least 1"),
        (
            pb::Schedule {
                timing: None,
                ..interval_schedule(&channel, 60)
            },
            "interval_seconds or cron",
        ),
        (
            pb::Schedule {
                operation: 0,
                ..interval_schedule(&channel, 60)
            },
            "operation is required",
        ),
    ];
    for (schedule, problem) in cases {
        let status = set_err(&mut client, &token, schedule).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{problem}");
        assert!(status.message().contains(problem), "{}", status.message());
    }
    // An operation whose owner is not deployed.
    let orders = set_err(
        &mut client,
        &token,
        pb::Schedule {
            operation: Operation::GetOrders as i32,
            ..interval_schedule(&channel, 60)
        },
    )
    .await;
    assert_eq!(orders.code(), Code::FailedPrecondition);
    assert!(
        orders
            .message()
            .contains("Get Orders is not available in this deployment yet"),
        "{}",
        orders.message()
    );
    let run_orders = client
        .run_now(authed(
            pb::RunNowRequest {
                channel_id: channel.clone(),
                operation: Operation::GetOrders as i32,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(run_orders.code(), Code::FailedPrecondition);
    // A channel nobody knows.
    let unknown = set_err(
        &mut client,
        &token,
        interval_schedule("no-such-channel", 60),
    )
    .await;
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(
        unknown.message().contains("shopbridge channels list"),
        "{}",
        unknown.message()
    );
    let nothing_yet = client
        .get_schedule(authed(
            pb::GetScheduleRequest {
                channel_id: channel.clone(),
                operation: Operation::ImportListings as i32,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(nothing_yet.code(), Code::NotFound);

    // A good one: weekdays at 09:00 in Berlin.
    let saved = set_schedule(
        &mut client,
        &token,
        cron(&channel, "0 9 * * 1-5", "Europe/Berlin"),
    )
    .await;
    assert!(saved.enabled && saved.paused_reason.is_empty());
    let next = saved.next_due_at.expect("a next due time");
    let next = chrono::DateTime::from_timestamp(next.seconds, 0).unwrap();
    let berlin = next.with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!(
        (
            berlin.format("%H:%M").to_string(),
            chrono::Datelike::weekday(&berlin).number_from_monday() <= 5
        ),
        ("09:00".to_string(), true)
    );
    assert_eq!(get_schedule(&mut client, &token, &channel).await, saved);
    // Setting it again unchanged keeps its next due time; disabling drops it.
    let again = set_schedule(
        &mut client,
        &token,
        cron(&channel, "0 9 * * 1-5", "Europe/Berlin"),
    )
    .await;
    assert_eq!(again.next_due_at, saved.next_due_at);
    let disabled = set_schedule(
        &mut client,
        &token,
        pb::Schedule {
            enabled: false,
            ..cron(&channel, "0 9 * * 1-5", "Europe/Berlin")
        },
    )
    .await;
    assert!(!disabled.enabled && disabled.next_due_at.is_none());
    // Six fields: seconds first.
    let sync = set_schedule(
        &mut client,
        &token,
        pb::Schedule {
            operation: Operation::SyncListings as i32,
            ..cron(&channel, "30 */5 * * * *", "")
        },
    )
    .await;
    assert_eq!(sync.next_due_at.unwrap().seconds % 60, 30);
    let listed = client
        .list_schedules(authed(
            pb::ListSchedulesRequest {
                channel_id: channel.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .schedules;
    let operations: Vec<i32> = listed.iter().map(|s| s.operation).collect();
    assert_eq!(
        operations,
        [
            Operation::ImportListings as i32,
            Operation::SyncListings as i32
        ]
    );
    scheduler.stop().await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_channel_pauses_its_schedule_and_reconnecting_resumes_it() {
    let env = Env::new().await;
    let owner = Owner::start(
        &env.nats,
        OwnerMode::Complete {
            hold: Duration::from_millis(20),
        },
    )
    .await;
    let scheduler = env.start("replica-a", &[]).await;
    let tenant = new_tenant();
    let token = env.token(&tenant, &[READ, WRITE]);
    let channel = env.active_channel(&tenant).await;
    let mut client = scheduler.client().await;
    set_schedule(&mut client, &token, interval_schedule(&channel, 1)).await;
    eventually("the schedule fires twice", || async {
        env.scheduled_runs(&channel).await.len() >= 2
    })
    .await;

    env.channel_state(&tenant, &channel, ChannelState::Disconnected)
        .await;
    let paused = get_schedule(&mut client, &token, &channel).await;
    assert!(paused.enabled);
    assert_eq!(paused.paused_reason, "the channel is disconnected");
    assert!(paused.next_due_at.is_none());
    let refused = client
        .run_now(authed(
            pb::RunNowRequest {
                channel_id: channel.clone(),
                operation: Operation::ImportListings as i32,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("connect the channel first"),
        "{}",
        refused.message()
    );
    // A fire that read the schedule just before the change may still commit; after that, nothing for 3 due times.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let while_paused = env.scheduled_runs(&channel).await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.scheduled_runs(&channel).await.len(), while_paused);

    let reconnected_at = chrono::Utc::now();
    env.channel_state(&tenant, &channel, ChannelState::Active)
        .await;
    eventually("the schedule fires again", || async {
        env.scheduled_runs(&channel).await.len() >= while_paused + 2
    })
    .await;
    let resumed: Vec<_> = env
        .scheduled_runs(&channel)
        .await
        .into_iter()
        .skip(while_paused)
        .collect();
    // It resumes from the next due time: the due times of the pause are not owed, not even as a catch-up.
    assert!(
        resumed.iter().all(|r| r.trigger == "SCHEDULED"),
        "{resumed:?}"
    );
    assert!(resumed[0].due_at > reconnected_at, "{resumed:?}");
    assert!(
        get_schedule(&mut client, &token, &channel)
            .await
            .next_due_at
            .is_some()
    );
    owner.stop();
    scheduler.stop().await;
    env.finish().await;
}
