//! Get Orders through the scheduler, as an operator starts it: RunNow(GET_ORDERS) -> RunRequested -> orders ->
//! FetchOrders through the gateway -> the simulated store -> pages applied -> reports -> the run registry.

use std::time::{Duration, Instant};

use shopbridge_proto::{
    common::Operation,
    orders as pb,
    runs::LogLevel,
    scheduler::{self as sched, RunStatus, scheduler_service_client::SchedulerServiceClient},
};
use tonic::transport::Channel;

use crate::support::{
    shop::{self, OrderSpec},
    stack::{Options, Stack, authed},
};

#[tokio::test]
async fn run_now_of_get_orders_goes_through_the_scheduler_the_gateway_and_orders_to_a_finished_run()
{
    let stack = Stack::start(Options {
        gateway: true,
        fast_timers: false,
        orders: true,
        bulk: false,
    })
    .await;
    let scheduler = stack.start_scheduler().await;
    stack
        .set_settings(pb::GetOrdersSettings {
            enabled: true,
            import_orders_without_location: true,
            fulfillment_statuses: vec![pb::FulfillmentStatus::Unfulfilled as i32],
            financial_statuses: vec![pb::FinancialStatus::Any as i32],
            pii_retention: pb::PiiRetention::Indefinitely as i32,
            updated_within_days: 14,
            ..Default::default()
        })
        .await;
    let good = shop::place(&stack, &OrderSpec::default()).await;
    let bad = shop::place(
        &stack,
        &OrderSpec {
            missing_address: true,
            ..OrderSpec::default()
        },
    )
    .await;

    let channel = Channel::from_shared(format!("http://{}", scheduler.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = SchedulerServiceClient::new(channel);
    // The scheduler knows the channel once auth's ChannelStateChanged reached it.
    let started = Instant::now();
    let run = loop {
        match client
            .run_now(authed(
                sched::RunNowRequest {
                    channel_id: stack.channel_id.clone(),
                    operation: Operation::GetOrders as i32,
                },
                &stack.tenant.token,
            ))
            .await
        {
            Ok(r) => break r.into_inner().run.unwrap(),
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                eprintln!("run now not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("run now: {e}"),
        }
    };
    let finished = loop {
        let r = client
            .get_run(authed(
                sched::GetRunRequest {
                    run_id: run.run_id.clone(),
                },
                &stack.tenant.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap();
        if ![RunStatus::Requested as i32, RunStatus::Running as i32].contains(&r.status) {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run did not finish: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(finished.status, RunStatus::Partial as i32, "{finished:?}");
    let counters = finished.counters.unwrap();
    assert_eq!(
        (counters.processed, counters.created, counters.failed),
        (2, 1, 1)
    );
    let log = client
        .list_run_log(authed(
            sched::ListRunLogRequest {
                run_id: run.run_id.clone(),
                min_level: LogLevel::Error as i32,
                page: None,
            },
            &stack.tenant.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        log[0].message,
        format!(
            "Order {} cannot be saved: it has no shipping address.",
            bad.name
        )
    );
    let orders = stack.orders().await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].shopify_order_id, good.id);
    scheduler.stop().await;
    stack.finish().await;
}
