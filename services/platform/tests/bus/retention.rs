//! The bus tables' retention and the dead-letter operator path: pruning deletes only what is past its time and keeps
//! what deduplication needs; a dead letter replayed after its cause is fixed is applied by the consumer that gave up
//! on it, once.

use shopbridge_platform::{
    bus::{EventMeta, dead_letters, header_names, outbox::envelope_headers, retention},
    config::RetentionSettings,
};

use crate::support::{Behaviour, Ctx, ProbeHandler, Step, eventually};

fn settings() -> RetentionSettings {
    RetentionSettings {
        inbox_days: 14,
        dead_letter_days: 30,
        every_secs: 3600,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_deletes_only_what_is_past_its_retention_and_a_kept_id_still_dedupes() {
    let ctx = Ctx::new().await;
    tokio::spawn(ctx.relay().run(ctx.cancel.clone()));
    ctx.start_consumer(ProbeHandler::new(Behaviour::Apply), vec![50]);
    ctx.enqueue(1, true).await;
    eventually("probe 1 applied", || async { ctx.effects().await == 1 }).await;
    let applied: String = sqlx::query_scalar("SELECT message_id FROM inbox")
        .fetch_one(&ctx.db.pool)
        .await
        .unwrap();
    // Rows past their time: an inbox id of 20 days, a dead letter of 40 days; and one dead letter of 10 days.
    sqlx::query(
        "INSERT INTO inbox (consumer, message_id, received_at) VALUES ('platform-probe', 'old', now() - interval '20 days')",
    )
    .execute(&ctx.db.pool)
    .await
    .unwrap();
    for (id, age) in [("old-letter", "40 days"), ("recent-letter", "10 days")] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO dead_letters (consumer, subject, message_id, headers, payload, reason, deliveries, recorded_at)
             VALUES ('platform-probe', 'events.platform.v1.Probe', '{id}', '{{}}', '', 'test', 1, now() - interval '{age}')"
        )))
        .execute(&ctx.db.pool)
        .await
        .unwrap();
    }

    let pruned = retention::prune(&ctx.db.pool, &settings()).await.unwrap();
    assert_eq!((pruned.inbox, pruned.dead_letters), (1, 1), "{pruned:?}");
    let inbox: Vec<String> = sqlx::query_scalar("SELECT message_id FROM inbox")
        .fetch_all(&ctx.db.pool)
        .await
        .unwrap();
    assert_eq!(
        inbox,
        std::slice::from_ref(&applied),
        "the recent id is kept"
    );
    let letters: Vec<Option<String>> = sqlx::query_scalar("SELECT message_id FROM dead_letters")
        .fetch_all(&ctx.db.pool)
        .await
        .unwrap();
    assert_eq!(letters, [Some("recent-letter".to_string())]);

    // The kept id still dedupes: the same message delivered again (as a replay: a new JetStream id, the first one in
    // Shopbridge-Replay-Of) has no second effect.
    let mut headers = envelope_headers(
        "shopbridge.platform.v1.Probe",
        &EventMeta::tenant("tenant-1"),
        &Default::default(),
    );
    headers.insert(header_names::REPLAY_OF, applied.as_str());
    let message = async_nats::jetstream::message::PublishMessage::build()
        .headers(headers)
        .message_id(format!("{applied}:again").as_str())
        .payload(prost::Message::encode_to_vec(&probe(1)).into());
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
    assert!(!ack.duplicate);
    ctx.consumed_all().await;
    assert_eq!(ctx.effects().await, 1);
    ctx.finish().await;
}

fn probe(seq: u64) -> shopbridge_platform::proto::platform::Probe {
    shopbridge_platform::proto::platform::Probe {
        seq,
        sent_at: None,
        note: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_dead_letter_is_applied_once_by_the_consumer_that_gave_up_on_it() {
    let ctx = Ctx::new().await;
    tokio::spawn(ctx.relay().run(ctx.cancel.clone()));
    // Probe 3 is rejected the first time (a bug since fixed), applied when it comes again.
    let handler = ProbeHandler::new(Behaviour::Script(|seq, call| match (seq, call) {
        (3, 1) => Step::Reject,
        _ => Step::Apply,
    }));
    ctx.start_consumer(handler.clone(), vec![50]);
    ctx.enqueue(3, true).await;
    eventually("a dead letter", || async {
        ctx.dead_letter_count().await == 1
    })
    .await;
    let listed = dead_letters::list(&ctx.db.pool, Some("platform-probe"), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].reason.contains("not yet understood"),
        "{:?}",
        listed[0]
    );
    let id = listed[0].id;

    // Replayed at once, inside JetStream's duplicate window: it still gets through, and is applied.
    let seq = dead_letters::replay(&ctx.db.pool, &ctx.nats.js, &ctx.nats.namespace, id, false)
        .await
        .unwrap();
    assert!(seq.is_some(), "JetStream took the replay");
    eventually("the replay applied", || async { ctx.effects().await == 1 }).await;
    // A second replay is refused without --again; with it, the inbox keeps the effect single.
    assert!(matches!(
        dead_letters::replay(&ctx.db.pool, &ctx.nats.js, &ctx.nats.namespace, id, false).await,
        Err(dead_letters::ReplayError::AlreadyReplayed { .. })
    ));
    dead_letters::replay(&ctx.db.pool, &ctx.nats.js, &ctx.nats.namespace, id, true)
        .await
        .unwrap();
    ctx.consumed_all().await;
    assert_eq!(ctx.effects().await, 1, "applied once");
    assert_eq!(
        handler.calls_for(3).len(),
        2,
        "rejected, then applied; the third copy was a duplicate"
    );
    ctx.finish().await;
}
