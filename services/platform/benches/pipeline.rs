//! The event pipeline end to end: commit with outbox row -> relay -> JetStream -> consumer with inbox -> effect
//! committed. Reports sustained events/s (producers flat out) and p50/p99 latency at a paced 5,000 events/s, against
//! a baseline in the same run: bare JetStream publish-with-ack -> pull consume -> ack, no database, no guarantees.
//! Run with `make bench ONLY=pipeline`; figures go to target/bench/pipeline.json.

use std::time::{Duration, Instant};

use futures::StreamExt;
use shopbridge_platform::{
    bus::{
        ConsumerRunner, Envelope, EventMeta, Handler, HandlerError, OutboxMessage, Relay, outbox,
    },
    config::{ConsumerSettings, OutboxSettings},
    proto::platform::Probe,
    testing::{TestDb, TestNats},
};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

const SUSTAINED_EVENTS: u64 = 30_000;
const PACED_EVENTS: u64 = 15_000;
const PACED_RATE: u64 = 5_000;
const PRODUCERS: u64 = 16;

struct Effects;

impl Handler for Effects {
    type Message = Probe;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<Probe>,
    ) -> Result<(), HandlerError> {
        let sent = event
            .message
            .sent_at
            .as_ref()
            .map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000);
        sqlx::query("INSERT INTO bench_effects (seq, latency_us) VALUES ($1, (extract(epoch from clock_timestamp()) * 1000000)::bigint - $2)")
            .bind(event.message.seq as i64)
            .bind(sent)
            .execute(&mut **tx)
            .await
            .map_err(|e| HandlerError::Retry(e.into()))?;
        Ok(())
    }
}

fn now_timestamp() -> prost_types::Timestamp {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    prost_types::Timestamp {
        seconds: now.as_secs() as i64,
        nanos: now.subsec_nanos() as i32,
    }
}

async fn produce(pool: PgPool, from: u64, count: u64, pace: Option<Duration>) {
    let start = Instant::now();
    for i in 0..count {
        if let Some(every) = pace {
            let due = start + every * i as u32;
            tokio::time::sleep_until(due.into()).await;
        }
        let mut tx = pool.begin().await.unwrap();
        let probe = Probe {
            seq: from + i,
            sent_at: Some(now_timestamp()),
            note: String::new(),
        };
        outbox::enqueue(
            &mut tx,
            OutboxMessage::event(EventMeta::tenant("bench"), &probe),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        outbox::wake();
    }
}

async fn effects(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bench_effects")
        .fetch_one(pool)
        .await
        .unwrap()
}

struct Phase {
    events_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `total` events through the whole pipeline; `rate` None for flat out.
async fn pipeline_phase(db: &TestDb, total: u64, rate: Option<u64>) -> Phase {
    sqlx::query("TRUNCATE bench_effects")
        .execute(&db.pool)
        .await
        .unwrap();
    let started = Instant::now();
    let per_producer = total / PRODUCERS;
    let pace = rate.map(|r| Duration::from_secs_f64(PRODUCERS as f64 / r as f64));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            tokio::spawn(produce(
                db.pool.clone(),
                p * per_producer,
                per_producer,
                pace,
            ))
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    let expected = (per_producer * PRODUCERS) as i64;
    while effects(&db.pool).await < expected {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (p50, p99): (f64, f64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_us)::float8,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_us)::float8 FROM bench_effects",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    Phase {
        events_per_sec: expected as f64 / elapsed,
        p50_ms: p50 / 1000.0,
        p99_ms: p99 / 1000.0,
    }
}

/// What the producers alone cost: the same 16 writers committing one outbox-sized row per transaction, nothing
/// published. The pipeline cannot beat PostgreSQL's commit rate on this disk.
async fn commit_rate(pool: &PgPool, total: u64) -> f64 {
    sqlx::query("CREATE TABLE bench_commits (seq BIGINT NOT NULL, payload BYTEA NOT NULL)")
        .execute(pool)
        .await
        .unwrap();
    let started = Instant::now();
    let per = total / PRODUCERS;
    let writers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    let mut tx = pool.begin().await.unwrap();
                    sqlx::query("INSERT INTO bench_commits (seq, payload) VALUES ($1, $2)")
                        .bind((p * per + i) as i64)
                        .bind(vec![0u8; 64])
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    (per * PRODUCERS) as f64 / started.elapsed().as_secs_f64()
}

/// The baseline: JetStream alone, publish with ack (pipelined like the relay) and pull-consume with ack.
async fn baseline(nats: &TestNats, total: u64) -> f64 {
    // Outside `events.platform.v1.>`: the probe consumer measured next would otherwise take these 30,000 header-less
    // messages and dead-letter each, writing to the database while the pipeline is being measured.
    let subject = nats.namespace.subject("events.bench.v1.Baseline");
    let stream = nats
        .js
        .get_stream(nats.namespace.resource("EVENTS"))
        .await
        .unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("baseline".into()),
            filter_subject: subject.clone(),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 20_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let started = Instant::now();
    let js = nats.js.clone();
    let publisher = tokio::spawn(async move {
        for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
            let mut acks = Vec::new();
            for i in chunk {
                let message = async_nats::jetstream::message::PublishMessage::build()
                    .message_id(format!("b{i}"))
                    .payload(vec![0u8; 24].into());
                acks.push(js.send_publish(subject.clone(), message).await.unwrap());
            }
            for ack in acks {
                ack.await.unwrap();
            }
        }
    });
    let mut messages = consumer.messages().await.unwrap();
    let mut seen = 0;
    while seen < total {
        let message = messages.next().await.unwrap().unwrap();
        message.ack().await.unwrap();
        seen += 1;
    }
    publisher.await.unwrap();
    total as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    shopbridge_platform::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = TestDb::with_bus_tables().await;
        sqlx::query("CREATE TABLE bench_effects (seq BIGINT NOT NULL, latency_us BIGINT NOT NULL)")
            .execute(&db.pool)
            .await
            .unwrap();
        let nats = TestNats::new().await;
        let cancel = CancellationToken::new();
        let relay_settings = OutboxSettings { poll_interval_ms: 20, batch_size: 500, retention_hours: 1 };
        let relay = Relay::new(db.pool.clone(), nats.js.clone(), nats.namespace.clone(), relay_settings);
        tokio::spawn(relay.run(cancel.clone()));
        let runner = ConsumerRunner::new(
            db.pool.clone(),
            nats.js.clone(),
            nats.namespace.clone(),
            "EVENTS",
            "platform-probe",
            Effects,
            ConsumerSettings { concurrency: 16, batch_size: 32, backoff_ms: vec![100], max_failures: 10 },
        );
        tokio::spawn(runner.run(cancel.clone()));

        let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&db.pool).await.unwrap();
        let sync_commit: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&db.pool).await.unwrap();
        let base = baseline(&nats, SUSTAINED_EVENTS).await;
        let commits = commit_rate(&db.pool, SUSTAINED_EVENTS / 3).await;
        // A/B: the same pipeline with a NOTIFY trigger on the outbox (every producer commit notifies the relay).
        sqlx::query("CREATE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('outbox_rows', ''); RETURN NULL; END; $$")
            .execute(&db.pool).await.unwrap();
        sqlx::query("CREATE TRIGGER bench_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION bench_notify()")
            .execute(&db.pool).await.unwrap();
        let notify_sustained = pipeline_phase(&db, SUSTAINED_EVENTS / 3, None).await;
        sqlx::query("DROP TRIGGER bench_notify ON outbox").execute(&db.pool).await.unwrap();
        let sustained = pipeline_phase(&db, SUSTAINED_EVENTS, None).await;
        let paced = pipeline_phase(&db, PACED_EVENTS, Some(PACED_RATE)).await;
        cancel.cancel();

        println!("pipeline benchmark (PostgreSQL fsync={fsync}, synchronous_commit={sync_commit}; {PRODUCERS} producers, one event per transaction)");
        println!("{:<52} {:>12} {:>10} {:>8}", "figure", "value", "unit", "vs commits");
        println!("{:<52} {:>12.0} {:>10}", "baseline: bare JetStream publish+consume", base, "events/s");
        println!("{:<52} {:>12.0} {:>10}", "baseline: PostgreSQL commits, 16 writers, no bus", commits, "commits/s");
        println!("{:<52} {:>12.0} {:>10} {:>8.2}", "same, with a NOTIFY trigger on every commit", notify_sustained.events_per_sec, "events/s", notify_sustained.events_per_sec / commits);
        println!("{:<52} {:>12.0} {:>10} {:>8.2}", "outbox->relay->JetStream->inbox, flat out", sustained.events_per_sec, "events/s", sustained.events_per_sec / commits);
        println!("{:<52} {:>12.1} {:>10}", "  latency p50 (flat out, includes queueing)", sustained.p50_ms, "ms");
        println!("{:<52} {:>12.1} {:>10}", "  latency p99 (flat out, includes queueing)", sustained.p99_ms, "ms");
        println!("{:<52} {:>12.0} {:>10}", format!("paced at {PACED_RATE}/s: achieved"), paced.events_per_sec, "events/s");
        println!("{:<52} {:>12.1} {:>10}", "  latency p50 (paced)", paced.p50_ms, "ms");
        println!("{:<52} {:>12.1} {:>10}", "  latency p99 (paced)", paced.p99_ms, "ms");

        let figures = serde_json::json!([
            {"name": "baseline_jetstream_events_per_sec", "value": base, "unit": "events/s"},
            {"name": "baseline_postgres_commits_per_sec", "value": commits, "unit": "commits/s"},
            {"name": "pipeline_sustained_events_per_sec", "value": sustained.events_per_sec, "unit": "events/s",
             "baseline": commits, "ratio": sustained.events_per_sec / commits},
            {"name": "pipeline_with_notify_trigger_events_per_sec", "value": notify_sustained.events_per_sec, "unit": "events/s",
             "baseline": sustained.events_per_sec, "ratio": notify_sustained.events_per_sec / sustained.events_per_sec},
            {"name": "pipeline_sustained_p50_latency", "value": sustained.p50_ms, "unit": "ms"},
            {"name": "pipeline_sustained_p99_latency", "value": sustained.p99_ms, "unit": "ms"},
            {"name": "pipeline_paced_events_per_sec", "value": paced.events_per_sec, "unit": "events/s"},
            {"name": "pipeline_paced_p50_latency", "value": paced.p50_ms, "unit": "ms"},
            {"name": "pipeline_paced_p99_latency", "value": paced.p99_ms, "unit": "ms"},
            {"name": "postgres_fsync", "value": if fsync == "on" { 1 } else { 0 }, "unit": "bool"},
        ]);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pipeline.json"), serde_json::to_string_pretty(&figures).unwrap()).unwrap();
        println!("figures written to target/bench/pipeline.json");

        nats.cleanup().await;
        db.drop_db().await;
    });
}
