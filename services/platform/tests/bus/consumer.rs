use std::time::Duration;

use async_nats::jetstream::{self, stream};
use shopbridge_platform::{
    bus::{EventMeta, header_names, outbox::envelope_headers},
    proto::platform::Probe,
};

use crate::support::{Behaviour, Ctx, ProbeHandler, eventually};

async fn dead_letters(ctx: &Ctx) -> Vec<(String, i64, Option<String>)> {
    sqlx::query_as("SELECT reason, deliveries, type_name FROM dead_letters ORDER BY id")
        .fetch_all(&ctx.db.pool)
        .await
        .unwrap()
}

/// Publishes a raw message with the given id and type header.
async fn publish_raw(ctx: &Ctx, id: &str, type_name: Option<&str>, payload: Vec<u8>) -> bool {
    let mut headers = envelope_headers(
        type_name.unwrap_or(""),
        &EventMeta::tenant("t1"),
        &Default::default(),
    );
    if type_name.is_none() {
        headers = async_nats::HeaderMap::new();
    }
    let message = jetstream::message::PublishMessage::build()
        .headers(headers)
        .message_id(id)
        .payload(payload.into());
    let ack = ctx
        .nats
        .js
        .send_publish(
            ctx.nats.namespace.subject("events.platform.v1.Probe"),
            message,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    ack.duplicate
}

fn probe_bytes(seq: u64) -> Vec<u8> {
    use prost::Message;
    Probe {
        seq,
        sent_at: None,
        note: String::new(),
    }
    .encode_to_vec()
}

/// A message that comes again after JetStream's duplicate window (a re-publish long after a relay crash, or a
/// redelivery after a lost ack) reaches the consumer a second time; the inbox keeps its effect single.
#[tokio::test]
async fn the_same_message_delivered_twice_applies_its_effect_once() {
    let ctx = Ctx::new().await;
    // Shrink this test's duplicate window so the second copy is not dropped by JetStream and really is delivered.
    let name = ctx.nats.namespace.resource("EVENTS");
    let mut config: stream::Config = ctx
        .nats
        .js
        .get_stream(&name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    config.duplicate_window = Duration::from_millis(200);
    ctx.nats.js.update_stream(&config).await.unwrap();

    let handler = ProbeHandler::new(Behaviour::Apply);
    ctx.start_consumer(handler.clone(), vec![50]);
    assert!(
        !publish_raw(
            &ctx,
            "msg-1",
            Some("shopbridge.platform.v1.Probe"),
            probe_bytes(1)
        )
        .await
    );
    eventually("the first delivery", || async { ctx.effects().await == 1 }).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let duplicate = publish_raw(
        &ctx,
        "msg-1",
        Some("shopbridge.platform.v1.Probe"),
        probe_bytes(1),
    )
    .await;
    assert!(!duplicate, "the copy went past JetStream's dedup");
    assert_eq!(ctx.stream_messages().await, 2);

    let durable = ctx.nats.namespace.resource("platform-probe");
    eventually("the second delivery acknowledged", || async {
        let mut consumer: jetstream::consumer::PullConsumer = ctx
            .nats
            .js
            .get_stream(&name)
            .await
            .unwrap()
            .get_consumer(&durable)
            .await
            .unwrap();
        consumer.info().await.unwrap().ack_floor.stream_sequence == 2
    })
    .await;
    assert_eq!(ctx.effects().await, 1, "the inbox dropped the second copy");
    assert_eq!(
        handler.calls().len(),
        1,
        "the handler never saw the second copy"
    );
    ctx.finish().await;
}

#[tokio::test]
async fn a_handler_that_keeps_failing_is_retried_with_backoff_then_dead_lettered_with_the_reason() {
    let ctx = Ctx::new().await;
    let handler = ProbeHandler::new(Behaviour::AlwaysRetry);
    ctx.start_consumer(handler.clone(), vec![100, 200]);
    publish_raw(
        &ctx,
        "msg-failing",
        Some("shopbridge.platform.v1.Probe"),
        probe_bytes(9),
    )
    .await;
    eventually("a dead letter", || async {
        !dead_letters(&ctx).await.is_empty()
    })
    .await;

    let letters = dead_letters(&ctx).await;
    assert_eq!(letters.len(), 1);
    let (reason, deliveries, type_name) = &letters[0];
    // max_deliver of the platform-probe consumer in deploy/nats/topology.yaml
    assert_eq!(*deliveries, 5);
    assert!(
        reason.contains("gave up after 5 deliveries") && reason.contains("downstream unavailable"),
        "{reason}"
    );
    assert_eq!(type_name.as_deref(), Some("shopbridge.platform.v1.Probe"));

    let calls = handler.calls();
    assert_eq!(calls.len(), 5);
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= Duration::from_millis(90),
        "first retry waits the first backoff step: {gaps:?}"
    );
    assert!(
        gaps[1..].iter().all(|g| *g >= Duration::from_millis(190)),
        "later retries wait the last step: {gaps:?}"
    );
    assert_eq!(ctx.effects().await, 0);
    ctx.finish().await;
}

#[tokio::test]
async fn a_payload_that_does_not_decode_is_dead_lettered_at_once() {
    let ctx = Ctx::new().await;
    let handler = ProbeHandler::new(Behaviour::Apply);
    ctx.start_consumer(handler.clone(), vec![50]);
    publish_raw(
        &ctx,
        "garbage",
        Some("shopbridge.platform.v1.Probe"),
        vec![0xff, 0xff, 0xff],
    )
    .await;
    publish_raw(&ctx, "untyped", None, probe_bytes(1)).await;
    publish_raw(
        &ctx,
        "wrong-type",
        Some("shopbridge.orders.v1.Nothing"),
        probe_bytes(1),
    )
    .await;
    eventually("three dead letters", || async {
        dead_letters(&ctx).await.len() == 3
    })
    .await;

    let letters = dead_letters(&ctx).await;
    assert!(
        letters.iter().all(|(_, deliveries, _)| *deliveries == 1),
        "no retries: {letters:?}"
    );
    let reasons: Vec<&str> = letters.iter().map(|(r, _, _)| r.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("does not decode")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains(header_names::TYPE)),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("not handled by this consumer")),
        "{reasons:?}"
    );
    assert!(handler.calls().is_empty());
    ctx.finish().await;
}
