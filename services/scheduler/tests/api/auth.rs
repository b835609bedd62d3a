//! Every call is authenticated with auth's tokens, needs its scope, and sees only its tenant.

use shopbridge_proto::{
    common::Operation,
    scheduler::{self as pb, scheduler_service_client::SchedulerServiceClient},
};
use tonic::{Code, Request, transport::Channel};

use crate::helpers::{
    Env, READ, WRITE, authed, get_run, interval_schedule, key_pair, new_tenant, set_schedule,
};

async fn list_code(
    client: &mut SchedulerServiceClient<Channel>,
    request: Request<pb::ListRunsRequest>,
) -> Code {
    match client.list_runs(request).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_gets_not_found_for_channels_and_runs_it_does_not_own() {
    let env = Env::new().await;
    let scheduler = env.start("replica-a", &[]).await;
    let tenant_a = new_tenant();
    let tenant_b = new_tenant();
    let token_a = env.token(&tenant_a, &[READ, WRITE]);
    let token_b = env.token(&tenant_b, &[READ, WRITE]);
    let channel = env.active_channel(&tenant_a).await;
    let mut client = scheduler.client().await;
    set_schedule(&mut client, &token_a, interval_schedule(&channel, 3600)).await;
    let run = client
        .run_now(authed(
            pb::RunNowRequest {
                channel_id: channel.clone(),
                operation: Operation::ImportListings as i32,
            },
            &token_a,
        ))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();

    let on_channel = [
        client
            .set_schedule(authed(
                pb::SetScheduleRequest {
                    schedule: Some(interval_schedule(&channel, 60)),
                },
                &token_b,
            ))
            .await
            .map(|_| ()),
        client
            .get_schedule(authed(
                pb::GetScheduleRequest {
                    channel_id: channel.clone(),
                    operation: Operation::ImportListings as i32,
                },
                &token_b,
            ))
            .await
            .map(|_| ()),
        client
            .list_schedules(authed(
                pb::ListSchedulesRequest {
                    channel_id: channel.clone(),
                },
                &token_b,
            ))
            .await
            .map(|_| ()),
        client
            .run_now(authed(
                pb::RunNowRequest {
                    channel_id: channel.clone(),
                    operation: Operation::ImportListings as i32,
                },
                &token_b,
            ))
            .await
            .map(|_| ()),
        client
            .list_runs(authed(
                pb::ListRunsRequest {
                    channel_id: channel.clone(),
                    ..Default::default()
                },
                &token_b,
            ))
            .await
            .map(|_| ()),
    ];
    for result in on_channel {
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{}", status.message());
        assert!(
            status
                .message()
                .contains(&format!("channel {channel} not found"))
        );
    }
    let run_id = run.run_id.clone();
    let on_run = [
        client
            .get_run(authed(
                pb::GetRunRequest {
                    run_id: run_id.clone(),
                },
                &token_b,
            ))
            .await
            .map(|_| ()),
        client
            .cancel_run(authed(
                pb::CancelRunRequest {
                    run_id: run_id.clone(),
                },
                &token_b,
            ))
            .await
            .map(|_| ()),
        client
            .list_run_log(authed(
                pb::ListRunLogRequest {
                    run_id: run_id.clone(),
                    ..Default::default()
                },
                &token_b,
            ))
            .await
            .map(|_| ()),
        client
            .watch_run(authed(
                pb::WatchRunRequest {
                    run_id: run_id.clone(),
                },
                &token_b,
            ))
            .await
            .map(|_| ()),
    ];
    for result in on_run {
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{}", status.message());
    }
    // B's own lists are empty; A's run is untouched (B's cancel did nothing).
    let b_runs = client
        .list_runs(authed(pb::ListRunsRequest::default(), &token_b))
        .await
        .unwrap()
        .into_inner();
    assert!(b_runs.runs.is_empty());
    let b_schedules = client
        .list_schedules(authed(pb::ListSchedulesRequest::default(), &token_b))
        .await
        .unwrap()
        .into_inner();
    assert!(b_schedules.schedules.is_empty());
    assert_eq!(
        get_run(&mut client, &token_a, &run_id).await.status,
        pb::RunStatus::Requested as i32
    );
    scheduler.stop().await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_expired_badly_signed_and_wrong_scope_tokens_are_refused() {
    let env = Env::new().await;
    let scheduler = env.start("replica-a", &[]).await;
    let tenant = new_tenant();
    let channel = env.active_channel(&tenant).await;
    let mut client = scheduler.client().await;
    let now = chrono::Utc::now().timestamp();

    assert_eq!(
        list_code(&mut client, Request::new(pb::ListRunsRequest::default())).await,
        Code::Unauthenticated
    );
    let expired = env.token_with(&tenant, &[READ], now - 3600, now - 1800, &env.key);
    let forged = env.token_with(&tenant, &[READ], now, now + 300, &key_pair());
    for token in [expired.as_str(), forged.as_str(), "not-a-token"] {
        assert_eq!(
            list_code(&mut client, authed(pb::ListRunsRequest::default(), token)).await,
            Code::Unauthenticated,
            "{token}"
        );
    }
    // Scopes: reads need runs:read, changes runs:write.
    let no_runs = env.token(&tenant, &["channels:read"]);
    assert_eq!(
        list_code(
            &mut client,
            authed(pb::ListRunsRequest::default(), &no_runs)
        )
        .await,
        Code::PermissionDenied
    );
    let read_only = env.token(&tenant, &[READ]);
    assert_eq!(
        list_code(
            &mut client,
            authed(pb::ListRunsRequest::default(), &read_only)
        )
        .await,
        Code::Ok
    );
    let denied = client
        .run_now(authed(
            pb::RunNowRequest {
                channel_id: channel.clone(),
                operation: Operation::ImportListings as i32,
            },
            &read_only,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains("runs:write"),
        "{}",
        denied.message()
    );
    let denied = client
        .set_schedule(authed(
            pb::SetScheduleRequest {
                schedule: Some(interval_schedule(&channel, 60)),
            },
            &read_only,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let write_only = env.token(&tenant, &[WRITE]);
    let denied = client
        .watch_run(authed(
            pb::WatchRunRequest {
                run_id: uuid::Uuid::new_v4().to_string(),
            },
            &write_only,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    scheduler.stop().await;
    env.finish().await;
}
