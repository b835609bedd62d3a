use std::time::Duration;

use crate::support::{Behaviour, Ctx, ProbeHandler, eventually};

#[tokio::test]
async fn a_rolled_back_transaction_publishes_nothing() {
    let ctx = Ctx::new().await;
    ctx.enqueue(1, false).await;
    assert_eq!(ctx.relay().drain_once().await.unwrap(), 0);
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&ctx.db.pool)
        .await
        .unwrap();
    assert_eq!(unsent, 0);
    assert_eq!(ctx.stream_messages().await, 0);
    ctx.finish().await;
}

#[tokio::test]
async fn a_committed_message_is_published_by_the_running_relay_and_applied_once() {
    let ctx = Ctx::new().await;
    tokio::spawn(ctx.relay().run(ctx.cancel.clone()));
    let handler = ProbeHandler::new(Behaviour::Apply);
    ctx.start_consumer(handler.clone(), vec![50]);
    for seq in 0..20 {
        ctx.enqueue(seq, true).await;
    }
    eventually("20 effects", || async { ctx.effects().await == 20 }).await;
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        .fetch_one(&ctx.db.pool)
        .await
        .unwrap();
    assert_eq!(unsent, 0, "every row is marked sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ctx.effects().await, 20);
    assert_eq!(handler.calls().len(), 20);
    ctx.finish().await;
}

/// The relay publishes, then dies before marking the rows sent; on restart it publishes them again. The copy carries
/// the same Nats-Msg-Id, and JetStream's duplicate window drops it: the stream holds one message, applied once.
#[tokio::test]
async fn a_relay_killed_after_publishing_and_before_marking_delivers_exactly_once_by_jetstream_dedup()
 {
    let ctx = Ctx::new().await;
    ctx.enqueue(7, true).await;
    let relay = ctx.relay();
    assert_eq!(relay.publish_batch_then_crash().await.unwrap(), 1);
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        .fetch_one(&ctx.db.pool)
        .await
        .unwrap();
    assert_eq!(unsent, 1, "the crash left the row unmarked");

    // The restarted relay publishes the row again and marks it.
    assert_eq!(ctx.relay().drain_once().await.unwrap(), 1);
    assert_eq!(
        ctx.stream_messages().await,
        1,
        "JetStream dropped the re-publish as a duplicate"
    );

    ctx.start_consumer(ProbeHandler::new(Behaviour::Apply), vec![50]);
    eventually("the effect", || async { ctx.effects().await == 1 }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ctx.effects().await, 1);
    ctx.finish().await;
}

/// Messages share a transaction in batches; one rejected message undoes only its own writes.
#[tokio::test]
async fn a_rejected_message_in_a_batch_leaves_the_others_applied() {
    let ctx = Ctx::new().await;
    for seq in 0..20 {
        ctx.enqueue(seq, true).await;
    }
    assert_eq!(ctx.relay().drain_once().await.unwrap(), 20);
    ctx.start_consumer(ProbeHandler::new(Behaviour::RejectSeq(13)), vec![50]);
    eventually("19 effects and one dead letter", || async {
        let letters: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
            .fetch_one(&ctx.db.pool)
            .await
            .unwrap();
        ctx.effects().await == 19 && letters == 1
    })
    .await;
    let rejected: i64 = sqlx::query_scalar("SELECT count(*) FROM probe_effects WHERE seq = 13")
        .fetch_one(&ctx.db.pool)
        .await
        .unwrap();
    assert_eq!(rejected, 0, "the rejected message's own write was undone");
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&ctx.db.pool)
        .await
        .unwrap();
    assert_eq!(inbox, 19, "no inbox row for the rejected message");
    ctx.finish().await;
}
