use std::time::Duration;

use async_nats::jetstream::{self, stream};
use prost::Message;
use shopbridge_platform::{
    bus::{
        EventMeta, OutboxMessage, Relay,
        outbox::{self, BatchReport, PayloadTooLarge},
    },
    config::{OutboxLimits, OutboxSettings},
    proto::platform::Probe,
    testing::{TcpProxy, TestDb, TestNats, eventually, nats_url, socket_addr_of, url_via},
};
use tokio_util::sync::CancellationToken;

struct Ctx {
    db: TestDb,
    nats: TestNats,
}

impl Ctx {
    async fn new() -> Self {
        Self {
            db: TestDb::with_bus_tables().await,
            nats: TestNats::new().await,
        }
    }

    fn relay(&self, batch_max_bytes: usize) -> Relay {
        self.relay_via(self.nats.js.clone(), batch_max_bytes)
    }

    fn relay_via(&self, js: jetstream::Context, batch_max_bytes: usize) -> Relay {
        Relay::new(
            self.db.pool.clone(),
            js,
            self.nats.namespace.clone(),
            OutboxSettings {
                poll_interval_ms: 50,
                batch_size: 500,
                retention_hours: 1,
            },
        )
        .with_limits(OutboxLimits {
            batch_max_bytes,
            ..OutboxLimits::default()
        })
    }

    /// Writes `messages` to the outbox in one committed transaction.
    async fn enqueue(&self, messages: impl IntoIterator<Item = OutboxMessage>) {
        let mut tx = self.db.pool.begin().await.unwrap();
        for message in messages {
            outbox::enqueue(&mut tx, message).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    async fn count(&self, filter: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM outbox WHERE {filter}"
        )))
        .fetch_one(&self.db.pool)
        .await
        .unwrap()
    }

    async fn stream_messages(&self, stream: &str) -> u64 {
        let mut stream = self
            .nats
            .js
            .get_stream(self.nats.namespace.resource(stream))
            .await
            .unwrap();
        stream.info().await.unwrap().state.messages
    }

    async fn finish(self) {
        self.nats.cleanup().await;
        self.db.drop_db().await;
    }
}

/// A probe event whose payload is `bytes` long.
fn probe(seq: u64, bytes: usize) -> OutboxMessage {
    let mut probe = Probe {
        seq,
        sent_at: None,
        note: String::new(),
    };
    // The note's length prefix grows with it: adjust until the encoding is exactly `bytes` long.
    let mut note = bytes - probe.encoded_len() - 2;
    loop {
        probe.note = "x".repeat(note);
        match probe.encoded_len() {
            len if len == bytes => break,
            len if len < bytes => note += bytes - len,
            len => note -= len - bytes,
        }
    }
    let message = OutboxMessage::event(EventMeta::tenant("tenant-1"), &probe);
    assert_eq!(message.payload.len(), bytes, "probe size");
    message
}

/// A message of `bytes` on `subject` (without the namespace).
fn raw(subject: &str, bytes: usize) -> OutboxMessage {
    OutboxMessage {
        subject: subject.into(),
        type_name: "shopbridge.platform.v1.Probe".into(),
        payload: vec![7; bytes],
        meta: EventMeta::tenant("tenant-1"),
    }
}

/// The "200 MB burst of outbox rows", scaled down by the budget: 300 rows of 64 KiB (19.7 MB) and one row
/// larger than the budget, against a batch budget of 256 KiB. The relay's own accounting (each batch's loaded
/// payload bytes) never exceeds the budget, except for the one larger row, alone in its batch; every row is sent.
#[tokio::test]
async fn a_burst_of_large_rows_is_relayed_a_budget_of_payload_bytes_at_a_time() {
    const ROW: usize = 64 * 1024;
    const BUDGET: usize = 256 * 1024;
    const LARGE: usize = 300 * 1024;
    let ctx = Ctx::new().await;
    for chunk in 0..6u64 {
        ctx.enqueue((0..50).map(|i| probe(chunk * 50 + i, ROW)))
            .await;
        if chunk == 2 {
            ctx.enqueue([probe(1_000, LARGE)]).await;
        }
    }
    let relay = ctx.relay(BUDGET);
    let mut reports: Vec<BatchReport> = Vec::new();
    loop {
        let report = relay.drain_once_reporting().await.unwrap();
        if report.rows == 0 {
            break;
        }
        reports.push(report);
        assert!(reports.len() < 1_000, "the relay does not finish");
    }

    let sent: usize = reports.iter().map(|r| r.sent).sum();
    assert_eq!(sent, 301);
    assert!(reports.iter().all(|r| r.sent == r.rows && r.failed == 0));
    let over: Vec<&BatchReport> = reports
        .iter()
        .filter(|r| r.payload_bytes > BUDGET)
        .collect();
    assert_eq!(
        over,
        [&BatchReport {
            rows: 1,
            payload_bytes: LARGE,
            sent: 1,
            failed: 0,
            retry: 0
        }],
        "only the row larger than the budget goes over it, alone"
    );
    // The budget is filled, not merely respected: every batch but the last and the large row's holds 4 rows.
    let full = BUDGET / ROW;
    let short = reports
        .iter()
        .filter(|r| r.rows != full && r.payload_bytes != LARGE)
        .count();
    assert!(short <= 2, "{short} batches held fewer than {full} rows");
    let most = reports.iter().map(|r| r.payload_bytes).max().unwrap();
    println!(
        "{} batches for {} payload bytes; largest batch {most} bytes, budget {BUDGET}",
        reports.len(),
        300 * ROW + LARGE
    );
    assert_eq!(ctx.count("sent_at IS NULL").await, 0);
    assert_eq!(ctx.stream_messages("EVENTS").await, 301);
    ctx.finish().await;
}

/// Rows JetStream refuses for good sit among good rows: one larger than its stream's max_msg_size (JetStream error
/// 10054), one on a subject no stream takes, one larger than the server's max_payload (written past the outbox's cap,
/// as a row from before it would be). The running relay marks each failed with its reason and publishes every row
/// behind them.
#[tokio::test]
async fn a_row_jetstream_refuses_for_good_is_marked_failed_and_the_rows_behind_it_are_sent() {
    let ctx = Ctx::new().await;
    let ns = &ctx.nats.namespace;
    ctx.nats
        .js
        .create_stream(stream::Config {
            name: ns.resource("TINY"),
            subjects: vec![ns.subject("tiny.>")],
            max_message_size: 1024,
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    let max_payload = ctx.nats.client.server_info().max_payload;

    ctx.enqueue([
        probe(0, 100),
        raw("tiny.large", 4096),
        probe(1, 100),
        raw("nowhere.at.all", 100),
        probe(2, 100),
        raw("tiny.small", 100),
    ])
    .await;
    // Past the outbox's cap: only a row written directly gets here.
    sqlx::query(
        "INSERT INTO outbox (id, subject, type_name, payload) VALUES ($1, 'events.platform.v1.Probe', 'x', $2)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(vec![1u8; max_payload + 1])
    .execute(&ctx.db.pool)
    .await
    .unwrap();
    ctx.enqueue([probe(3, 100)]).await;

    let cancel = CancellationToken::new();
    let relay = tokio::spawn(ctx.relay(1024 * 1024).run(cancel.clone()));
    eventually("every row sent or failed", || async {
        ctx.count("sent_at IS NULL AND failed_at IS NULL").await == 0
    })
    .await;
    cancel.cancel();
    relay.await.unwrap().unwrap();

    let failed: Vec<(String, String)> = sqlx::query_as(
        "SELECT subject, failure_reason FROM outbox WHERE failed_at IS NOT NULL ORDER BY id",
    )
    .fetch_all(&ctx.db.pool)
    .await
    .unwrap();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert_eq!(failed[0].0, "tiny.large");
    assert!(
        failed[0].1.contains("4096 payload bytes") && failed[0].1.contains("10054"),
        "{}",
        failed[0].1
    );
    assert_eq!(failed[1].0, "nowhere.at.all");
    assert!(
        failed[1]
            .1
            .contains("no JetStream stream takes the subject"),
        "{}",
        failed[1].1
    );
    assert_eq!(failed[2].0, "events.platform.v1.Probe");
    assert!(
        failed[2].1.contains("max payload size exceeded"),
        "{}",
        failed[2].1
    );
    assert_eq!(ctx.count("sent_at IS NOT NULL").await, 5);
    assert_eq!(ctx.stream_messages("EVENTS").await, 4);
    assert_eq!(ctx.stream_messages("TINY").await, 1);
    // Failed rows are out of the relay's queue.
    assert_eq!(ctx.relay(1024).drain_once().await.unwrap(), 0);

    ctx.nats
        .js
        .delete_stream(ns.resource("TINY"))
        .await
        .unwrap();
    ctx.finish().await;
}

/// A publish that fails for a passing reason (the link to NATS is cut: no ack before the timeout) leaves the rows
/// unsent, not failed, and a relay that can reach NATS publishes them.
#[tokio::test]
async fn a_passing_publish_failure_leaves_the_rows_unsent_for_the_next_try() {
    let ctx = Ctx::new().await;
    let proxy = TcpProxy::start(socket_addr_of(&nats_url()).await).await;
    let client = async_nats::connect(url_via(&nats_url(), proxy.addr))
        .await
        .unwrap();
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(500))
        .build(client);
    ctx.enqueue((0..3).map(|seq| probe(seq, 100))).await;
    proxy.cut();

    let err = ctx.relay_via(js, 1024).drain_once().await.unwrap_err();
    assert!(err.to_string().contains("not acknowledged"), "{err}");
    assert_eq!(ctx.count("sent_at IS NULL AND failed_at IS NULL").await, 3);

    assert_eq!(ctx.relay(1024 * 1024).drain_once().await.unwrap(), 3);
    assert_eq!(ctx.count("failed_at IS NOT NULL").await, 0);
    ctx.finish().await;
}

/// The outbox refuses, at write time, a payload above `outbox.max_payload_bytes`, naming the subject and the size;
/// nothing is written and the transaction goes on.
#[tokio::test]
async fn enqueue_refuses_a_payload_over_the_cap_naming_its_subject_and_size() {
    let db = TestDb::with_bus_tables().await;
    let limit = outbox::max_payload_bytes();
    assert_eq!(limit, OutboxLimits::default().max_payload_bytes);
    let mut tx = db.pool.begin().await.unwrap();
    let err = outbox::enqueue(&mut tx, raw("events.platform.v1.Probe", limit + 1))
        .await
        .unwrap_err();
    assert_eq!(
        PayloadTooLarge::of(&err),
        Some(&PayloadTooLarge {
            subject: "events.platform.v1.Probe".into(),
            size: limit + 1,
            limit,
        })
    );
    let text = err.to_string();
    assert!(
        text.contains("`events.platform.v1.Probe`")
            && text.contains(&format!("{} bytes", limit + 1)),
        "{text}"
    );
    outbox::enqueue(&mut tx, raw("events.platform.v1.Probe", limit))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    db.drop_db().await;
}
