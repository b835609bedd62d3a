//! Only real failures bring a message toward the dead letters: a database outage keeps every message (none skipped,
//! none dead-lettered) and pauses consuming until the database answers; a message given back (its replica lost the
//! partition, a stop) is not counted; real failures are counted across deliveries and forgotten once it applies.

use std::time::Duration;

use shopbridge_platform::{
    config::ConsumerSettings,
    testing::{TcpProxy, socket_addr_of, url_via},
};
use sqlx::postgres::PgPoolOptions;

use crate::support::{Behaviour, Ctx, ProbeHandler, Step, eventually};

fn settings(max_failures: u32) -> ConsumerSettings {
    ConsumerSettings {
        concurrency: 4,
        batch_size: 8,
        backoff_ms: vec![50],
        max_failures,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_longer_than_every_retry_loses_nothing_and_dead_letters_nothing() {
    let ctx = Ctx::new().await;
    let relay = ctx.relay();
    tokio::spawn(relay.run(ctx.cancel.clone()));
    // The consumer reaches the database through a proxy the test takes down; the relay and the checks do not.
    let proxy = TcpProxy::start(socket_addr_of(&ctx.db.url).await).await;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_millis(500))
        .connect(&url_via(&ctx.db.url, proxy.addr))
        .await
        .unwrap();
    ctx.start_consumer_on(
        pool,
        ProbeHandler::new(Behaviour::Apply),
        settings(3),
        ctx.cancel.clone(),
    );
    for seq in 1..=5 {
        ctx.enqueue(seq, true).await;
    }
    eventually("the first five applied", || async {
        ctx.effects().await == 5
    })
    .await;

    proxy.outage();
    for seq in 6..=25 {
        ctx.enqueue(seq, true).await;
    }
    // Far longer than the 3 failures x 50 ms backoff, and than JetStream's 5 deliveries of platform-probe: before,
    // every message was failed to its last delivery, and then lost when its dead letter could not be written.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        ctx.effects().await,
        5,
        "nothing applied while the database is down"
    );
    proxy.restore();

    eventually("all twenty-five applied after the outage", || async {
        ctx.effects().await == 25
    })
    .await;
    assert_eq!(ctx.dead_letter_count().await, 0, "nothing dead-lettered");
    let applied_once: i64 = sqlx::query_scalar("SELECT count(DISTINCT seq) FROM probe_effects")
        .fetch_one(&ctx.db.pool)
        .await
        .unwrap();
    assert_eq!(applied_once, 25, "each applied once");
    ctx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_given_back_is_not_counted_and_real_failures_are_counted_until_it_applies() {
    let ctx = Ctx::new().await;
    let relay = ctx.relay();
    tokio::spawn(relay.run(ctx.cancel.clone()));
    // Probe 1: given back three times (platform-probe's max_deliver is 5 deliveries; max_failures 2), then applies.
    // Probe 2: fails once (recorded), then applies: its failure row is gone afterwards.
    let handler = ProbeHandler::new(Behaviour::Script(|seq, call| match (seq, call) {
        (1, 1..=3) => Step::Release,
        (2, 1) => Step::Fail,
        _ => Step::Apply,
    }));
    ctx.start_consumer_on(
        ctx.db.pool.clone(),
        handler.clone(),
        settings(2),
        ctx.cancel.clone(),
    );
    ctx.enqueue(1, true).await;
    ctx.enqueue(2, true).await;
    eventually("both applied", || async { ctx.effects().await == 2 }).await;
    assert_eq!(ctx.dead_letter_count().await, 0);
    assert_eq!(
        handler.calls_for(1).len(),
        4,
        "three give-backs, then applied"
    );
    assert_eq!(handler.calls_for(2).len(), 2, "one failure, then applied");
    let failure_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM consumer_failures")
        .fetch_one(&ctx.db.pool)
        .await
        .unwrap();
    assert_eq!(
        failure_rows, 0,
        "an applied message's failures are forgotten"
    );
    ctx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_failures_are_counted_across_deliveries_and_dead_letter_at_max_failures() {
    let ctx = Ctx::new().await;
    let relay = ctx.relay();
    tokio::spawn(relay.run(ctx.cancel.clone()));
    let handler = ProbeHandler::new(Behaviour::Script(|_, _| Step::Fail));
    ctx.start_consumer_on(
        ctx.db.pool.clone(),
        handler.clone(),
        settings(3),
        ctx.cancel.clone(),
    );
    ctx.enqueue(7, true).await;
    eventually("a dead letter", || async {
        ctx.dead_letter_count().await == 1
    })
    .await;
    assert_eq!(
        handler.calls_for(7).len(),
        3,
        "dead-lettered at the third failure"
    );
    assert_eq!(
        handler.last_delivery_flags(),
        [false, false, true],
        "the handler is told its last attempt"
    );
    let reason: String = sqlx::query_scalar("SELECT reason FROM dead_letters")
        .fetch_one(&ctx.db.pool)
        .await
        .unwrap();
    assert!(reason.contains("gave up after 3 failures"), "{reason}");
    ctx.finish().await;
}
