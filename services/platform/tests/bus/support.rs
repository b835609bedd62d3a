use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use shopbridge_platform::{
    bus::{
        ConsumerRunner, Envelope, EventMeta, Handler, HandlerError, OutboxMessage, Relay, outbox,
    },
    config::{ConsumerSettings, OutboxSettings},
    proto::platform::Probe,
    testing::{TestDb, TestNats},
};
use sqlx::{Postgres, Transaction};
use tokio_util::sync::CancellationToken;

pub struct Ctx {
    pub db: TestDb,
    pub nats: TestNats,
    pub cancel: CancellationToken,
}

impl Ctx {
    pub async fn new() -> Self {
        shopbridge_platform::telemetry::init_for_tests();
        let db = TestDb::with_bus_tables().await;
        sqlx::query("CREATE TABLE probe_effects (message_id TEXT NOT NULL, seq BIGINT NOT NULL, trace_id TEXT)")
            .execute(&db.pool)
            .await
            .unwrap();
        Self {
            db,
            nats: TestNats::new().await,
            cancel: CancellationToken::new(),
        }
    }

    pub fn relay(&self) -> Relay {
        let settings = OutboxSettings {
            poll_interval_ms: 200,
            batch_size: 500,
            retention_hours: 1,
        };
        Relay::new(
            self.db.pool.clone(),
            self.nats.js.clone(),
            self.nats.namespace.clone(),
            settings,
        )
    }

    /// Enqueues a probe in its own committed (or rolled back) transaction.
    pub async fn enqueue(&self, seq: u64, commit: bool) {
        let mut tx = self.db.pool.begin().await.unwrap();
        let probe = Probe {
            seq,
            sent_at: None,
            note: "test".into(),
        };
        outbox::enqueue(
            &mut tx,
            OutboxMessage::event(EventMeta::tenant("tenant-1"), &probe),
        )
        .await
        .unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
    }

    pub fn start_consumer(&self, handler: ProbeHandler, backoff_ms: Vec<u64>) {
        self.start_consumer_until(handler, backoff_ms, self.cancel.clone());
    }

    /// Like [`Ctx::start_consumer`], running until `cancel`.
    pub fn start_consumer_until(
        &self,
        handler: ProbeHandler,
        backoff_ms: Vec<u64>,
        cancel: CancellationToken,
    ) {
        // Batches of up to 8: several messages share a transaction, each in its own savepoint.
        let settings = ConsumerSettings {
            concurrency: 4,
            batch_size: 8,
            backoff_ms,
            max_failures: 10,
        };
        self.start_consumer_on(self.db.pool.clone(), handler, settings, cancel);
    }

    /// A consumer of `platform-probe` on `pool` (e.g. through a [`TcpProxy`](shopbridge_platform::testing::TcpProxy)).
    pub fn start_consumer_on(
        &self,
        pool: sqlx::PgPool,
        handler: ProbeHandler,
        settings: ConsumerSettings,
        cancel: CancellationToken,
    ) {
        let runner = ConsumerRunner::new(
            pool,
            self.nats.js.clone(),
            self.nats.namespace.clone(),
            "EVENTS",
            "platform-probe",
            handler,
            settings,
        );
        tokio::spawn(runner.run(cancel));
    }

    pub async fn dead_letter_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM dead_letters")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    pub async fn effects(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM probe_effects")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    /// Waits until the platform-probe consumer has every message of the stream delivered and acknowledged (applied,
    /// found in the inbox, or dead-lettered): after it, "nothing more happened" is a fact, not a guess.
    pub async fn consumed_all(&self) {
        eventually("the probe consumer has acknowledged everything", || async {
            let mut consumer: async_nats::jetstream::consumer::PullConsumer = self
                .nats
                .js
                .get_stream(self.nats.namespace.resource("EVENTS"))
                .await
                .unwrap()
                .get_consumer(&self.nats.namespace.resource("platform-probe"))
                .await
                .unwrap();
            let info = consumer.info().await.unwrap();
            info.num_pending == 0 && info.num_ack_pending == 0
        })
        .await;
    }

    pub async fn stream_messages(&self) -> u64 {
        let mut stream = self
            .nats
            .js
            .get_stream(self.nats.namespace.resource("EVENTS"))
            .await
            .unwrap();
        stream.info().await.unwrap().state.messages
    }

    pub async fn finish(self) {
        self.cancel.cancel();
        self.nats.cleanup().await;
        self.db.drop_db().await;
    }
}

#[derive(Clone, Copy)]
pub enum Behaviour {
    Apply,
    AlwaysRetry,
    /// Applies every probe but this one, which it rejects (after writing its effect, which must be undone).
    RejectSeq(u64),
    /// Applies every probe but `seq`, which it defers for `delay_ms` its first `times` calls (after writing its
    /// effect, which must be undone), then applies.
    DeferSeq {
        seq: u64,
        times: usize,
        delay_ms: u64,
    },
    /// Defers every probe for `delay_ms`, every time.
    DeferAll {
        delay_ms: u64,
    },
    /// Does what the script says for a probe seq on its n-th call for that probe (from 1).
    Script(fn(seq: u64, call: usize) -> Step),
}

/// A step of [`Behaviour::Script`].
#[derive(Clone, Copy, Debug)]
pub enum Step {
    Apply,
    Defer(Duration),
    /// Holds its slot this long (a long handler), then applies.
    Hold(Duration),
    /// Fails (a real failure, counted).
    Fail,
    /// Gives the message back (not its fault: counted as no failure).
    Release,
    /// Rejects it (dead-lettered at once).
    Reject,
}

/// Records each call; applies the probe as a row in `probe_effects`, or fails as told.
#[derive(Clone)]
pub struct ProbeHandler {
    pub behaviour: Behaviour,
    /// Every call.
    log: Arc<Mutex<Vec<Call>>>,
}

/// One call of a [`ProbeHandler`].
struct Call {
    seq: u64,
    /// JetStream's delivery count.
    delivered: u64,
    at: Instant,
    /// What the envelope said.
    last_delivery: bool,
}

impl ProbeHandler {
    pub fn new(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            log: Arc::default(),
        }
    }

    /// What `f` gives of each call so far.
    fn each<T>(&self, f: impl Fn(&Call) -> Option<T>) -> Vec<T> {
        self.log.lock().unwrap().iter().filter_map(f).collect()
    }

    pub fn calls(&self) -> Vec<Instant> {
        self.each(|c| Some(c.at))
    }

    /// (probe seq, delivery count) of every call so far.
    pub fn deliveries(&self) -> Vec<(u64, u64)> {
        self.each(|c| Some((c.seq, c.delivered)))
    }

    /// (delivery count, when) of every call for probe `seq`.
    pub fn calls_for(&self, seq: u64) -> Vec<(u64, Instant)> {
        self.each(|c| (c.seq == seq).then_some((c.delivered, c.at)))
    }

    /// Whether each call so far was told it was the message's last delivery.
    pub fn last_delivery_flags(&self) -> Vec<bool> {
        self.each(|c| Some(c.last_delivery))
    }
}

impl Handler for ProbeHandler {
    type Message = Probe;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<Probe>,
    ) -> Result<(), HandlerError> {
        let calls_for_seq = {
            let mut log = self.log.lock().unwrap();
            log.push(Call {
                seq: event.message.seq,
                delivered: event.delivered,
                at: Instant::now(),
                last_delivery: event.last_delivery,
            });
            log.iter().filter(|c| c.seq == event.message.seq).count()
        };
        let behaviour = match self.behaviour {
            Behaviour::Script(script) => match script(event.message.seq, calls_for_seq) {
                Step::Defer(delay) => return Err(HandlerError::Defer(delay)),
                Step::Hold(long) => {
                    tokio::time::sleep(long).await;
                    Behaviour::Apply
                }
                Step::Apply => Behaviour::Apply,
                Step::Fail => {
                    return Err(HandlerError::Retry(anyhow::anyhow!("step failed")));
                }
                Step::Release => {
                    return Err(HandlerError::Release(anyhow::anyhow!("not mine now")));
                }
                Step::Reject => {
                    return Err(HandlerError::Reject(anyhow::anyhow!("not yet understood")));
                }
            },
            other => other,
        };
        match behaviour {
            Behaviour::DeferAll { delay_ms } => {
                Err(HandlerError::Defer(Duration::from_millis(delay_ms)))
            }
            Behaviour::DeferSeq {
                seq,
                times,
                delay_ms,
            } if event.message.seq == seq && calls_for_seq <= times => {
                sqlx::query("INSERT INTO probe_effects (message_id, seq) VALUES ($1, $2)")
                    .bind(&event.message_id)
                    .bind(seq as i64)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| HandlerError::Retry(e.into()))?;
                Err(HandlerError::Defer(Duration::from_millis(delay_ms)))
            }
            Behaviour::AlwaysRetry => Err(HandlerError::Retry(anyhow::anyhow!(
                "downstream unavailable"
            ))),
            Behaviour::RejectSeq(seq) if event.message.seq == seq => {
                sqlx::query("INSERT INTO probe_effects (message_id, seq) VALUES ($1, $2)")
                    .bind(&event.message_id)
                    .bind(seq as i64)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| HandlerError::Retry(e.into()))?;
                Err(HandlerError::Reject(anyhow::anyhow!(
                    "probe {seq} is invalid"
                )))
            }
            Behaviour::Apply
            | Behaviour::RejectSeq(_)
            | Behaviour::DeferSeq { .. }
            | Behaviour::Script(_) => {
                sqlx::query(
                    "INSERT INTO probe_effects (message_id, seq, trace_id) VALUES ($1, $2, $3)",
                )
                .bind(&event.message_id)
                .bind(event.message.seq as i64)
                .bind(shopbridge_platform::telemetry::current_trace_id())
                .execute(&mut **tx)
                .await
                .map_err(|e| HandlerError::Retry(e.into()))?;
                Ok(())
            }
        }
    }
}

pub use shopbridge_platform::testing::eventually;
