use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer, stream};
use shopbridge_platform::{
    bus::{ConsumerRunner, EventMeta, header_names, outbox::envelope_headers},
    config::ConsumerSettings,
    proto::platform::Probe,
};
use tokio_util::sync::CancellationToken;

use crate::support::{Behaviour, Ctx, ProbeHandler, Step, eventually};

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

/// Publishes probe `seq` as message `msg-<seq>`; false when JetStream took it for a duplicate.
async fn publish_probe(ctx: &Ctx, seq: u64) -> bool {
    publish_raw(
        ctx,
        &format!("msg-{seq}"),
        Some("shopbridge.platform.v1.Probe"),
        probe_bytes(seq),
    )
    .await
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
    assert!(!publish_probe(&ctx, 1).await);
    eventually("the first delivery", || async { ctx.effects().await == 1 }).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let duplicate = publish_probe(&ctx, 1).await;
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
        reason.contains("gave up after 5 failures (5 deliveries)")
            && reason.contains("downstream unavailable"),
        "{reason}"
    );
    assert_eq!(type_name.as_deref(), Some("shopbridge.platform.v1.Probe"));

    let calls = handler.calls();
    assert_eq!(calls.len(), 5);
    assert_eq!(
        handler.last_delivery_flags(),
        [false, false, false, false, true],
        "the handler is told which delivery is its last"
    );
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

/// A handler with no capacity for a message right now defers it: the message is handed back without failing. Deferred
/// more often than the consumer's max_deliver (5 for platform-probe), it is still applied, once: deferrals are not
/// deliveries (JetStream delivered every message once), nothing is dead-lettered, the deferred attempts' writes are
/// undone, and the messages behind it are applied while it waits.
#[tokio::test]
async fn a_deferred_message_comes_back_without_using_up_its_deliveries_and_does_not_hold_up_others()
{
    let ctx = Ctx::new().await;
    let handler = ProbeHandler::new(Behaviour::DeferSeq {
        seq: 1,
        times: 12,
        delay_ms: 200,
    });
    ctx.start_consumer(handler.clone(), vec![50]);
    for seq in 1..=20 {
        publish_probe(&ctx, seq).await;
    }
    eventually("every probe applied", || async {
        ctx.effects().await == 20
    })
    .await;

    let deliveries = handler.deliveries();
    let first: Vec<usize> = (0..deliveries.len())
        .filter(|i| deliveries[*i].0 == 1)
        .collect();
    assert_eq!(
        first.len(),
        13,
        "12 deferrals, then applied: {deliveries:?}"
    );
    assert!(
        deliveries.iter().all(|(_, delivered)| *delivered == 1),
        "a deferral is not a redelivery: {deliveries:?}"
    );
    let others_before_first_applied = deliveries[..*first.last().unwrap()]
        .iter()
        .filter(|(seq, _)| *seq != 1)
        .count();
    assert_eq!(
        others_before_first_applied, 19,
        "the others did not wait for the deferred one: {deliveries:?}"
    );
    let first_effects: i64 = sqlx::query_scalar("SELECT count(*) FROM probe_effects WHERE seq = 1")
        .fetch_one(&ctx.db.pool)
        .await
        .unwrap();
    assert_eq!(first_effects, 1, "the deferred attempts' writes are undone");
    assert!(dead_letters(&ctx).await.is_empty());
    ctx.finish().await;
}

/// A consumer that stops gives the messages it has parked back to JetStream at once (a NAK), so the next consumer
/// gets them without waiting out the ack wait (30 s for platform-probe), even though the deferral was long.
#[tokio::test]
async fn a_stopping_consumer_gives_its_deferred_messages_back_at_once() {
    let ctx = Ctx::new().await;
    let deferring = ProbeHandler::new(Behaviour::DeferAll { delay_ms: 120_000 });
    let first = tokio_util::sync::CancellationToken::new();
    ctx.start_consumer_until(deferring.clone(), vec![50], first.clone());
    publish_raw(
        &ctx,
        "msg-parked",
        Some("shopbridge.platform.v1.Probe"),
        probe_bytes(3),
    )
    .await;
    eventually("the probe deferred", || async {
        !deferring.calls().is_empty()
    })
    .await;

    first.cancel();
    let stopped = std::time::Instant::now();
    let applying = ProbeHandler::new(Behaviour::Apply);
    ctx.start_consumer(applying.clone(), vec![50]);
    eventually("the probe applied by the next consumer", || async {
        ctx.effects().await == 1
    })
    .await;
    let waited = stopped.elapsed();
    assert!(
        waited < Duration::from_secs(15),
        "the parked message came back only after {waited:?} (the ack wait is 30 s)"
    );
    assert_eq!(deferring.calls().len(), 1);
    assert_eq!(applying.deliveries(), vec![(3, 2)]);
    ctx.finish().await;
}

/// Parking is bounded: with every message deferred, a consumer (concurrency 4, so 64 parked at most) stops pulling
/// at the bound instead of taking the whole stream into memory, and keeps trying the parked ones, each still
/// delivered once.
#[tokio::test]
async fn a_consumer_pulls_no_more_than_it_can_park() {
    let ctx = Ctx::new().await;
    let deferring = ProbeHandler::new(Behaviour::DeferAll { delay_ms: 100 });
    ctx.start_consumer(deferring.clone(), vec![50]);
    for seq in 1..=300 {
        publish_probe(&ctx, seq).await;
    }
    let seen = || {
        let mut seqs: Vec<u64> = deferring.deliveries().iter().map(|(s, _)| *s).collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs.len()
    };
    eventually("the parking bound reached", || async { seen() >= 64 }).await;
    let calls = deferring.calls().len();
    eventually("the parked messages tried again", || async {
        deferring.calls().len() >= calls + 600
    })
    .await;
    // The bound, plus what the four slots had pulled (batches of 8) when it was reached.
    let pulled = seen();
    assert!(pulled <= 64 + 4 * 8, "{pulled} messages pulled");
    assert!(
        deferring
            .deliveries()
            .iter()
            .all(|(_, delivered)| *delivered == 1),
        "parked messages are not redelivered"
    );
    ctx.finish().await;
}

/// A runner of the platform-probe consumer taking one message at a time in each of its two slots, so two long
/// handlers hold every slot.
fn two_slot_runner(ctx: &Ctx, handler: ProbeHandler) -> ConsumerRunner<ProbeHandler> {
    ConsumerRunner::new(
        ctx.db.pool.clone(),
        ctx.nats.js.clone(),
        ctx.nats.namespace.clone(),
        "EVENTS",
        "platform-probe",
        handler,
        ConsumerSettings {
            concurrency: 2,
            batch_size: 1,
            backoff_ms: vec![50],
            max_failures: 10,
        },
    )
}

async fn probe_consumer(ctx: &Ctx) -> PullConsumer {
    ctx.nats
        .js
        .get_stream(ctx.nats.namespace.resource("EVENTS"))
        .await
        .unwrap()
        .get_consumer(&ctx.nats.namespace.resource("platform-probe"))
        .await
        .unwrap()
}

/// A deferred message whose delay has passed waits for a free slot, here longer than the consumer's ack wait (both
/// slots held by long handlers). It is kept progress-acked until a slot takes it, so JetStream does not redeliver it
/// meanwhile (a redelivery would count toward max_deliver): it is handled on its first delivery, and JetStream
/// delivered each of the three messages once.
#[tokio::test]
async fn a_deferred_message_waiting_for_a_free_slot_is_not_redelivered() {
    let ctx = Ctx::new().await;
    let ack_wait = Duration::from_secs(1);
    let mut consumer = probe_consumer(&ctx).await;
    let mut config = consumer.info().await.unwrap().config.clone();
    config.ack_wait = ack_wait;
    ctx.nats
        .js
        .get_stream(ctx.nats.namespace.resource("EVENTS"))
        .await
        .unwrap()
        .update_consumer(config)
        .await
        .unwrap();

    let handler = ProbeHandler::new(Behaviour::Script(|seq, call| match (seq, call) {
        (1, 1) => Step::Defer(Duration::from_millis(800)),
        (1, _) => Step::Apply,
        _ => Step::Hold(Duration::from_secs(5)),
    }));
    tokio::spawn(two_slot_runner(&ctx, handler.clone()).run(ctx.cancel.clone()));
    publish_probe(&ctx, 1).await;
    eventually("probe 1 deferred", || async {
        !handler.calls_for(1).is_empty()
    })
    .await;
    publish_probe(&ctx, 2).await;
    publish_probe(&ctx, 3).await;
    eventually("both slots held", || async {
        !handler.calls_for(2).is_empty() && !handler.calls_for(3).is_empty()
    })
    .await;
    assert_eq!(
        handler.calls_for(1).len(),
        1,
        "probe 1 came back before the slots were held; the test proves nothing"
    );
    eventually("every probe applied", || async { ctx.effects().await == 3 }).await;

    let first = handler.calls_for(1);
    assert_eq!(first.len(), 2, "deferred once, then applied: {first:?}");
    let waited = first[1].1 - first[0].1;
    assert!(
        waited > Duration::from_millis(800) + 2 * ack_wait,
        "probe 1 waited for a slot longer than the ack wait: {waited:?}"
    );
    assert!(
        first.iter().all(|(delivered, _)| *delivered == 1),
        "probe 1 was redelivered while it waited for a slot: {first:?}"
    );
    let deliveries = consumer.info().await.unwrap().delivered.consumer_sequence;
    assert_eq!(deliveries, 3, "JetStream delivered 3 messages once each");
    ctx.finish().await;
}

/// A consumer that stops with a deferred message already handed back to its slots but not yet taken (both slots held
/// by long handlers) gives it back to JetStream at once, with the one still waiting out its delay: the next consumer
/// gets both long before the ack wait (30 s), while the stopping consumer still finishes its long handlers.
#[tokio::test]
async fn a_stopping_consumer_gives_back_at_once_a_deferred_message_waiting_for_a_slot() {
    let ctx = Ctx::new().await;
    let handler = ProbeHandler::new(Behaviour::Script(|seq, _| match seq {
        1 => Step::Defer(Duration::from_secs(120)),
        2 => Step::Defer(Duration::from_millis(1500)),
        _ => Step::Hold(Duration::from_secs(4)),
    }));
    let first = CancellationToken::new();
    tokio::spawn(two_slot_runner(&ctx, handler.clone()).run(first.clone()));
    publish_probe(&ctx, 1).await;
    publish_probe(&ctx, 2).await;
    eventually("probes 1 and 2 deferred", || async {
        !handler.calls_for(1).is_empty() && !handler.calls_for(2).is_empty()
    })
    .await;
    publish_probe(&ctx, 3).await;
    publish_probe(&ctx, 4).await;
    eventually("both slots held", || async {
        !handler.calls_for(3).is_empty() && !handler.calls_for(4).is_empty()
    })
    .await;
    // Probe 2's delay passes: it is handed back and waits for a slot.
    let deferred = handler.calls_for(2)[0].1;
    tokio::time::sleep_until((deferred + Duration::from_millis(2000)).into()).await;
    assert_eq!(
        handler.calls_for(2).len(),
        1,
        "probe 2 was taken by a slot; the test proves nothing"
    );

    first.cancel();
    let stopped = Instant::now();
    let applying = ProbeHandler::new(Behaviour::Apply);
    ctx.start_consumer(applying.clone(), vec![50]);
    eventually("probes 1 and 2 applied by the next consumer", || async {
        let mut seqs: Vec<u64> = applying.deliveries().iter().map(|(s, _)| *s).collect();
        seqs.sort_unstable();
        seqs == [1, 2]
    })
    .await;
    let waited = stopped.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "the deferred messages came back only after {waited:?} (the ack wait is 30 s)"
    );
    let mut deliveries = applying.deliveries();
    deliveries.sort_unstable();
    assert_eq!(deliveries, vec![(1, 2), (2, 2)]);
    eventually("the long handlers finished", || async {
        ctx.effects().await == 4
    })
    .await;
    assert_eq!(handler.calls_for(2).len(), 1, "not taken after the stop");
    ctx.finish().await;
}

/// When `run` returns, the consumer's parked messages have been given back to JetStream: here the consumer runs in a
/// runtime of its own (a process, in effect) that is dropped the moment `run` returns, and the next consumer still
/// gets every parked message at once, not after the ack wait (30 s).
#[tokio::test]
async fn a_stopped_consumer_has_given_back_its_parked_messages_when_run_returns() {
    let ctx = Ctx::new().await;
    for seq in 1..=3 {
        publish_probe(&ctx, seq).await;
    }
    let deferring = ProbeHandler::new(Behaviour::DeferAll { delay_ms: 120_000 });
    let stop = CancellationToken::new();
    let process = {
        let (deferring, stop) = (deferring.clone(), stop.clone());
        let (db_url, namespace) = (ctx.db.url.clone(), ctx.nats.namespace.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = async_nats::connect(shopbridge_platform::testing::nats_url())
                    .await
                    .unwrap();
                let pool = sqlx::PgPool::connect(&db_url).await.unwrap();
                let runner = ConsumerRunner::new(
                    pool,
                    jetstream::new(client),
                    namespace,
                    "EVENTS",
                    "platform-probe",
                    deferring,
                    ConsumerSettings {
                        concurrency: 4,
                        batch_size: 8,
                        backoff_ms: vec![50],
                        max_failures: 10,
                    },
                );
                runner.run(stop).await.unwrap();
            });
            // The process exits: whatever it had not sent is lost.
            drop(runtime);
        })
    };
    eventually("every probe deferred", || async {
        deferring.calls().len() >= 3
    })
    .await;

    stop.cancel();
    tokio::task::spawn_blocking(move || process.join().unwrap())
        .await
        .unwrap();
    let stopped = Instant::now();
    let applying = ProbeHandler::new(Behaviour::Apply);
    ctx.start_consumer(applying.clone(), vec![50]);
    eventually("every probe applied by the next consumer", || async {
        ctx.effects().await == 3
    })
    .await;
    let waited = stopped.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "the parked messages came back only after {waited:?} (the ack wait is 30 s)"
    );
    assert!(
        applying
            .deliveries()
            .iter()
            .all(|(_, delivered)| *delivered == 2),
        "{:?}",
        applying.deliveries()
    );
    ctx.finish().await;
}
