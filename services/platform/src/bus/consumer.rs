//! The consumer runner: a durable pull consumer declared by the topology, explicit acks, bounded concurrency, progress
//! acks while a handler runs long, redelivery with backoff, and a dead-letter table for what cannot be handled.
//! The handler's effect and the inbox row commit together, so redelivery never applies an effect twice.
//!
//! A handler may also hand a message back for later ([`HandlerError::Defer`]): its capacity for that kind of message
//! is taken (the gateway: a shop already has its limit of commands running), and the consumer's slots should go to
//! other messages meanwhile. Such a message is *parked* in this process, not NAKed: JetStream counts every delivery,
//! NAKs included, toward the consumer's `max_deliver`, so a command deferred a few dozen times behind its shop's
//! backlog would exhaust it and be dead-lettered (or, past `max_deliver`, never be delivered again) without ever
//! failing. A parked message stays delivered-and-unacknowledged, holds no slot and no database connection, and is
//! tried again after its delay ahead of newly pulled messages. So `max_deliver` keeps counting failures only.
//!
//! Each parked message has a task of its own (the *park task*) that holds it until a slot has taken it back: it sends
//! progress acks while the message waits out its delay, and goes on sending them after handing it back, while it
//! waits in the hand-back channel for a free slot (every slot may be busy with long handlers for longer than
//! `ack_wait`; without them JetStream would redeliver it, a spurious delivery counted toward `max_deliver`). A handed
//! back message is claimed exactly once, by the slot that takes it or, if the consumer stops first, by its park task.
//! When the consumer stops, it ends its pull at once (so that JetStream does not redeliver the NAKed messages to this
//! consumer, which would drop them), then NAKs its parked messages, those waiting in the hand-back channel included,
//! while its slots finish what they are handling: whoever consumes next gets them without waiting out `ack_wait`
//! (after a crash they come back after `ack_wait`, like any message in hand). [`ConsumerRunner::run`] returns only
//! once the park tasks have sent their NAKs and they are flushed to the server.
//!
//! Parking is bounded ([`PARKED_PER_SLOT`] per slot): at the bound the consumer pulls no new messages until some
//! parked message has been handled, so memory stays bounded and parked messages come back on time. Fairness therefore
//! reaches as far as that bound: a message behind more deferred messages than that waits until enough of them have
//! run.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures::{StreamExt, stream::PollNext};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use super::{
    envelope::{Decode, Envelope, EventMeta, headers},
    inbox::{self, DeadLetter},
    names::Namespace,
};
use crate::config::ConsumerSettings;

/// Why a handler did not apply a message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth another try (a dependency is down, a conflict): redelivered with backoff until `max_deliver`.
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// Will never succeed (invalid content): dead-lettered at once.
    #[error("{0:#}")]
    Reject(anyhow::Error),
    /// Not now: the handler has no capacity for this message at the moment (not a failure). The message's writes
    /// and inbox row are undone and it is tried again after about this delay; it does not count as a delivery
    /// toward `max_deliver` (see the module documentation).
    #[error("deferred for {0:?}")]
    Defer(Duration),
}

/// Messages a consumer keeps parked per slot of its concurrency (deferred messages waiting out their delay).
pub const PARKED_PER_SLOT: usize = 16;

/// Applies one message inside the transaction that also records it in the inbox.
pub trait Handler: Send + Sync + 'static {
    type Message: Decode + Sync;

    fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope<Self::Message>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a;

    /// Checked before the message's transaction begins: `Some(delay)` defers the message as
    /// [`HandlerError::Defer`] would, without touching the database (cheap re-checks of parked messages). A hint:
    /// `handle` must still defer (or wait) itself when it finds no capacity, since another message may take it
    /// between the two.
    fn defer_hint(&self, _event: &Envelope<Self::Message>) -> Option<Duration> {
        None
    }
}

/// One handler shared by several consumers (the gateway's partitions share one executor, so one budget per shop).
impl<H: Handler> Handler for Arc<H> {
    type Message = H::Message;

    fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope<Self::Message>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a {
        H::handle(self, tx, event)
    }

    fn defer_hint(&self, event: &Envelope<Self::Message>) -> Option<Duration> {
        H::defer_hint(self, event)
    }
}

/// Runs one durable consumer of the topology with a handler.
pub struct ConsumerRunner<H> {
    pool: PgPool,
    js: jetstream::Context,
    namespace: Namespace,
    stream: String,
    durable: String,
    handler: Arc<H>,
    settings: ConsumerSettings,
}

enum Outcome {
    Applied,
    Duplicate,
    Retry(Duration),
    DeadLettered,
    Deferred(Duration),
}

/// What a consumer slot works on: pulled messages, a parked message whose delay has passed, or the end of the pull.
enum Work<M> {
    Pulled(Vec<Result<jetstream::Message, jetstream::consumer::pull::MessagesError>>),
    Parked(Arc<HandedBack<M>>),
    PullEnded,
}

/// A parked message whose delay has passed, on its way back to a slot. Its park task keeps it progress-acked until a
/// slot takes it, and takes it back itself to NAK it if the consumer stops first: whichever claims it first has it,
/// so a message is never both handled and NAKed.
struct HandedBack<M> {
    prepared: std::sync::Mutex<Option<Box<Prepared<M>>>>,
    /// Cancelled when it is claimed: the park task's progress acks are no longer needed.
    claimed: CancellationToken,
}

impl<M> HandedBack<M> {
    fn new(prepared: Box<Prepared<M>>) -> Self {
        Self {
            prepared: std::sync::Mutex::new(Some(prepared)),
            claimed: CancellationToken::new(),
        }
    }

    /// The message, to the first caller only.
    fn claim(&self) -> Option<Box<Prepared<M>>> {
        let prepared = self
            .prepared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        self.claimed.cancel();
        prepared
    }
}

/// Where deferred messages wait out their delay, and how they come back to the consumer's slots.
struct Parking<M> {
    back: tokio::sync::mpsc::UnboundedSender<Arc<HandedBack<M>>>,
    /// Parked now, including those sent back and not yet taken by a slot.
    parked: Arc<AtomicUsize>,
    /// Signalled when a parked message leaves (taken back by a slot, or given back to JetStream).
    unparked: Arc<tokio::sync::Notify>,
    /// Cancelled when the consumer stops, once it has ended its pull: parked messages are then NAKed, to be
    /// redelivered at once.
    stop: CancellationToken,
    /// The park tasks, awaited before `run` returns so their NAKs are sent (a detached task may not run again
    /// before the process exits).
    tasks: TaskTracker,
}

impl<H: Handler> ConsumerRunner<H> {
    /// `stream` and `durable` are the names in the topology file (without namespace).
    pub fn new(
        pool: PgPool,
        js: jetstream::Context,
        namespace: Namespace,
        stream: &str,
        durable: &str,
        handler: H,
        settings: ConsumerSettings,
    ) -> Self {
        Self {
            pool,
            js,
            namespace,
            stream: stream.to_string(),
            durable: durable.to_string(),
            handler: Arc::new(handler),
            settings,
        }
    }

    /// Consumes until `cancel`; messages being handled then are finished, the rest go back to JetStream.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let stream_name = self.namespace.resource(&self.stream);
        let durable = self.namespace.resource(&self.durable);
        let mut consumer: PullConsumer = self
            .js
            .get_stream(&stream_name)
            .await
            .map_err(|e| {
                anyhow::anyhow!("stream {stream_name} is missing (apply the NATS topology): {e}")
            })?
            .get_consumer(&durable)
            .await
            .map_err(|e| {
                anyhow::anyhow!("consumer {durable} is missing (apply the NATS topology): {e}")
            })?;
        let info = consumer.info().await?.config.clone();
        let max_deliver = info.max_deliver;
        let progress_every = (info.ack_wait / 3).max(Duration::from_millis(100));
        let concurrency = self.settings.concurrency.max(1);

        let batch_size = self.settings.batch_size.max(1);
        let messages = consumer
            .stream()
            .max_messages_per_batch(concurrency * batch_size)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await?;
        tracing::info!(consumer = %durable, stream = %stream_name, concurrency, batch_size, "consumer started");
        let stop = cancel.child_token();
        let (back, parked_rx) = tokio::sync::mpsc::unbounded_channel();
        let parking_limit = concurrency * PARKED_PER_SLOT;
        let parking = Parking {
            back,
            parked: Arc::default(),
            unparked: Arc::default(),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        // The pull is ended (its subscription dropped) as soon as the consumer stops, not when the slots are done:
        // its outstanding pull requests would otherwise get the messages NAKed at the stop redelivered to this very
        // consumer, which takes no more and drops them, so they would come back only after `ack_wait`.
        let pull = Arc::new(std::sync::Mutex::new(Some(Box::pin(messages))));
        let pulled = Box::pin(
            futures::stream::poll_fn({
                let pull = pull.clone();
                move |cx| match pull
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_mut()
                {
                    Some(messages) => messages.poll_next_unpin(cx),
                    None => std::task::Poll::Ready(None),
                }
            })
            .take_until(cancel.clone().cancelled_owned())
            .ready_chunks(batch_size),
        );
        // At the parking bound nothing new is pulled until a parked message has been taken back by a slot.
        let gated = futures::stream::unfold(
            (pulled, parking.parked.clone(), parking.unparked.clone()),
            move |(mut pulled, parked, unparked)| async move {
                loop {
                    let taken = unparked.notified();
                    if parked.load(Ordering::Relaxed) < parking_limit {
                        break;
                    }
                    taken.await;
                }
                let next = pulled.next().await?;
                Some((next, (pulled, parked, unparked)))
            },
        );
        let pulled = gated
            .map(Work::Pulled)
            .chain(futures::stream::once(async { Work::PullEnded }));
        let unparked =
            tokio_stream::wrappers::UnboundedReceiverStream::new(parked_rx).map(Work::Parked);
        // Parked messages whose delay has passed go before newly pulled ones: they were pulled earlier.
        let work =
            futures::stream::select_with_strategy(unparked, pulled, |_: &mut ()| PollNext::Left)
                .take_until(stop.clone().cancelled_owned());
        let this = &self;
        let parking = &parking;
        let stop = &stop;
        let stopping = async {
            stop.cancelled().await;
            drop(
                pull.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take(),
            );
            // Only now (the unsubscription goes out before the NAKs, on the same connection) may parked messages be
            // given back.
            parking.stop.cancel();
        };
        let slots = work.for_each_concurrent(concurrency, |work| async move {
            let batch = match work {
                Work::Pulled(pulled) => {
                    let mut batch = Vec::with_capacity(pulled.len());
                    for message in pulled {
                        match message {
                            Ok(message) => batch.push(this.prepare(message, max_deliver)),
                            Err(e) => tracing::warn!(consumer = %this.durable, error = %e, "pull failed; continuing"),
                        }
                    }
                    batch
                }
                Work::Parked(handed) => {
                    // None: the consumer is stopping and the park task has NAKed it already.
                    let Some(prepared) = handed.claim() else {
                        return;
                    };
                    parking.parked.fetch_sub(1, Ordering::Relaxed);
                    parking.unparked.notify_one();
                    vec![*prepared]
                }
                Work::PullEnded => {
                    stop.cancel();
                    return;
                }
            };
            this.process(batch, progress_every, parking).await;
        });
        let slots = async {
            slots.await;
            stop.cancel();
        };
        tokio::join!(slots, stopping);
        // The slots are done, so nothing more gets parked; the park tasks NAK what they hold (parked or waiting in the
        // hand-back channel). Wait for them, then flush, so the NAKs reach the server before the process may exit.
        parking.tasks.close();
        parking.tasks.wait().await;
        match tokio::time::timeout(Duration::from_secs(5), self.js.client().flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(consumer = %durable, error = %e, "could not flush the last acknowledgements")
            }
            Err(_) => {
                tracing::warn!(consumer = %durable, "flushing the last acknowledgements timed out")
            }
        }
        tracing::info!(consumer = %durable, "consumer stopped");
        Ok(())
    }

    /// Keeps a deferred message until its delay has passed, then hands it back to the slots, keeping it
    /// progress-acked until a slot has taken it; see the module documentation.
    fn park(
        &self,
        mut prepared: Prepared<H::Message>,
        delay: Duration,
        progress_every: Duration,
        parking: &Parking<H::Message>,
    ) {
        parking.parked.fetch_add(1, Ordering::Relaxed);
        let (back, parked, unparked, stop) = (
            parking.back.clone(),
            parking.parked.clone(),
            parking.unparked.clone(),
            parking.stop.clone(),
        );
        // The consumer is stopping: give the message back to JetStream for whoever consumes next.
        let give_back = move |prepared: Box<Prepared<H::Message>>| async move {
            parked.fetch_sub(1, Ordering::Relaxed);
            unparked.notify_one();
            let _ = prepared.message.ack_with(AckKind::Nak(None)).await;
        };
        let wait = async move {
            // Being deferred is no reason for JetStream to redeliver it: progress acks restart its ack timer while
            // it waits.
            let until = tokio::time::Instant::now() + delay;
            loop {
                let progress =
                    tokio::time::Instant::from_std(prepared.progress_at + progress_every);
                tokio::select! {
                    // Stopping wins over a delay that has just passed: nothing is handed back after the stop.
                    biased;
                    _ = stop.cancelled() => return give_back(Box::new(prepared)).await,
                    _ = tokio::time::sleep_until(until.min(progress)) => {}
                }
                if prepared.progress_at.elapsed() + Duration::from_millis(50) >= progress_every {
                    let _ = prepared.message.ack_with(AckKind::Progress).await;
                    prepared.progress_at = Instant::now();
                }
                if tokio::time::Instant::now() >= until {
                    break;
                }
            }
            // Handed back, it may wait for a free slot for longer than ack_wait (every slot busy with long
            // handlers): keep it progress-acked through a clone of the message until a slot claims it.
            let message = prepared.message.clone();
            let mut progress_at = prepared.progress_at;
            let handed = Arc::new(HandedBack::new(Box::new(prepared)));
            if back.send(handed.clone()).is_err() {
                // The slots are gone: the consumer is stopping.
                if let Some(prepared) = handed.claim() {
                    give_back(prepared).await;
                }
                return;
            }
            loop {
                let progress = tokio::time::Instant::from_std(progress_at + progress_every);
                tokio::select! {
                    biased;
                    _ = handed.claimed.cancelled() => return,
                    // Taken back from the channel unless a slot has just claimed it (then the slot handles it).
                    _ = stop.cancelled() => {
                        if let Some(prepared) = handed.claim() {
                            give_back(prepared).await;
                        }
                        return;
                    }
                    _ = tokio::time::sleep_until(progress) => {
                        let _ = message.ack_with(AckKind::Progress).await;
                        progress_at = Instant::now();
                    }
                }
            }
        };
        parking.tasks.spawn(wait);
    }

    /// Reads a message's envelope and decodes its payload (the failure is kept as the dead-letter reason).
    fn prepare(&self, message: jetstream::Message, max_deliver: i64) -> Prepared<H::Message> {
        let headers = message.headers.clone().unwrap_or_default();
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
        let message_id = header(headers::MSG_ID);
        let type_name = header(headers::TYPE);
        let progress_at = Instant::now();
        let delivered = message
            .info()
            .map(|i| i.delivered.max(1) as u64)
            .unwrap_or(1);
        let last_delivery = max_deliver > 0 && delivered >= max_deliver as u64;
        let subject = self.namespace.strip(message.subject.as_str()).to_string();
        let span = tracing::info_span!(
            "consume",
            consumer = %self.durable,
            subject = %subject,
            message_id = message_id.as_deref().unwrap_or("-"),
            delivered,
            tenant_id = header(headers::TENANT).as_deref().unwrap_or("-"),
            correlation_id = header(headers::CORRELATION).as_deref().unwrap_or("-"),
        );
        crate::telemetry::set_remote_parent(&span, header);
        let envelope = match (message_id.as_deref(), type_name.as_deref()) {
            (Some(id), Some(type_name)) => H::Message::decode(type_name, &message.payload)
                .map(|decoded| Envelope {
                    message_id: id.to_string(),
                    subject: subject.clone(),
                    meta: EventMeta {
                        tenant_id: header(headers::TENANT),
                        channel_id: header(headers::CHANNEL),
                        correlation_id: header(headers::CORRELATION),
                    },
                    message: decoded,
                    delivered,
                    last_delivery,
                })
                .map_err(|e| e.to_string()),
            _ => Err(format!(
                "missing `{}` or `{}` header",
                headers::MSG_ID,
                headers::TYPE
            )),
        };
        Prepared {
            message,
            headers,
            subject,
            message_id,
            type_name,
            delivered,
            last_delivery,
            progress_at,
            span,
            envelope,
        }
    }

    /// Applies a batch in one transaction (one commit for many messages), then acknowledges each message as it
    /// fared: applied and duplicates acked, failures redelivered with backoff or dead-lettered, deferred ones parked.
    async fn process(
        &self,
        batch: Vec<Prepared<H::Message>>,
        progress_every: Duration,
        parking: &Parking<H::Message>,
    ) {
        let started = std::time::Instant::now();
        let results = self.apply(&batch, progress_every).await;
        let mut deferred = Vec::new();
        for (prepared, result) in batch.into_iter().zip(results) {
            let outcome = self
                .outcome(&prepared, result)
                .instrument(prepared.span.clone())
                .await;
            let message = &prepared.message;
            let acked = match outcome {
                Outcome::Applied | Outcome::Duplicate => message.double_ack().await,
                Outcome::Retry(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
                Outcome::DeadLettered => message.ack_with(AckKind::Term).await,
                Outcome::Deferred(_) => Ok(()),
            };
            let label = match outcome {
                Outcome::Applied => "applied",
                Outcome::Duplicate => "duplicate",
                Outcome::Retry(_) => "retry",
                Outcome::DeadLettered => "dead_lettered",
                Outcome::Deferred(_) => "deferred",
            };
            metrics::counter!("bus_messages_total", "consumer" => self.durable.clone(), "outcome" => label).increment(1);
            if let Err(e) = acked {
                // The message comes back after ack_wait; the inbox absorbs it if it was applied.
                tracing::warn!(parent: &prepared.span, error = %e, "acknowledgement failed");
            }
            if let Outcome::Deferred(delay) = outcome {
                deferred.push((prepared, delay));
            }
        }
        metrics::histogram!("bus_batch_seconds", "consumer" => self.durable.clone())
            .record(started.elapsed().as_secs_f64());
        for (prepared, delay) in deferred {
            self.park(prepared, delay, progress_every, parking);
        }
    }

    async fn outcome(
        &self,
        prepared: &Prepared<H::Message>,
        result: Option<Result<bool, HandlerError>>,
    ) -> Outcome {
        let delivered = prepared.delivered;
        let dead = |reason: String| DeadLetter {
            consumer: &self.durable,
            subject: &prepared.subject,
            message_id: prepared.message_id.as_deref(),
            type_name: prepared.type_name.as_deref(),
            headers: headers_json(&prepared.headers),
            payload: &prepared.message.payload,
            reason,
            deliveries: delivered as i64,
        };
        let result = match (&prepared.envelope, result) {
            (Err(reason), _) => return self.dead_letter(dead(reason.clone())).await,
            (Ok(_), Some(result)) => result,
            (Ok(_), None) => Err(HandlerError::Retry(anyhow::anyhow!("not applied"))),
        };
        match result {
            Ok(true) => Outcome::Applied,
            Ok(false) => Outcome::Duplicate,
            Err(HandlerError::Reject(e)) => {
                self.dead_letter(dead(format!("rejected by handler: {e:#}")))
                    .await
            }
            Err(HandlerError::Retry(e)) if prepared.last_delivery => {
                self.dead_letter(dead(format!("gave up after {delivered} deliveries: {e:#}")))
                    .await
            }
            Err(HandlerError::Retry(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "handler failed; will retry");
                Outcome::Retry(self.settings.backoff(delivered))
            }
            // Not a failure: no warning, no delivery counted (parked, not NAKed).
            Err(HandlerError::Defer(delay)) => {
                tracing::debug!(?delay, "handler deferred the message");
                Outcome::Deferred(delay)
            }
        }
    }

    /// Runs the handler for every decodable message of the batch in one transaction, each with its inbox row inside
    /// a savepoint so one failure does not undo the others. Per message: `Ok(true)`
    /// applied, `Ok(false)` already applied before, `Err` not applied; `None` for an undecodable message.
    async fn apply(
        &self,
        batch: &[Prepared<H::Message>],
        progress_every: Duration,
    ) -> Vec<Option<Result<bool, HandlerError>>> {
        // Messages the handler would defer anyway are deferred before a transaction (and a connection) is taken.
        let mut results: Vec<Option<Result<bool, HandlerError>>> = batch
            .iter()
            .map(|p| {
                let delay = self.handler.defer_hint(p.envelope.as_ref().ok()?)?;
                Some(Err(HandlerError::Defer(delay)))
            })
            .collect();
        let decodable = batch
            .iter()
            .zip(&results)
            .filter(|(p, r)| p.envelope.is_ok() && r.is_none())
            .count();
        if decodable == 0 {
            return results;
        }
        let retry_all = |e: &sqlx::Error, results: &mut Vec<Option<Result<bool, HandlerError>>>| {
            for (slot, prepared) in results.iter_mut().zip(batch) {
                if prepared.envelope.is_ok() && slot.is_none() {
                    *slot = Some(Err(HandlerError::Retry(anyhow::anyhow!("database: {e}"))));
                }
            }
        };
        let mut tx = match self.pool.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                retry_all(&e, &mut results);
                return results;
            }
        };
        {
            let work = async {
                for (slot, prepared) in results.iter_mut().zip(batch) {
                    let (Ok(envelope), None) = (&prepared.envelope, &slot) else {
                        continue;
                    };
                    *slot = Some(
                        self.apply_one(&mut tx, envelope)
                            .instrument(prepared.span.clone())
                            .await,
                    );
                }
            };
            tokio::pin!(work);
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + progress_every,
                progress_every,
            );
            loop {
                tokio::select! {
                    _ = &mut work => break,
                    // Tell JetStream we are still working, so long handlers are not redelivered under our feet.
                    _ = ticker.tick() => {
                        for prepared in batch {
                            let _ = prepared.message.ack_with(AckKind::Progress).await;
                        }
                    }
                }
            }
        }
        let applied = results.iter().any(|r| matches!(r, Some(Ok(true))));
        match tx.commit().await {
            Ok(()) if applied => super::outbox::wake(),
            Ok(()) => {}
            Err(e) => {
                for slot in results.iter_mut() {
                    if matches!(slot, Some(Ok(_))) {
                        *slot = Some(Err(HandlerError::Retry(anyhow::anyhow!(
                            "commit failed: {e}"
                        ))));
                    }
                }
            }
        }
        results
    }

    /// One message inside a savepoint of the batch's transaction, so its failure undoes only its own writes.
    async fn apply_one(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        envelope: &Envelope<H::Message>,
    ) -> Result<bool, HandlerError> {
        let retry = |e: sqlx::Error| HandlerError::Retry(e.into());
        sqlx::query("SAVEPOINT consume")
            .execute(&mut **tx)
            .await
            .map_err(retry)?;
        let result = match inbox::record(tx, &self.durable, &envelope.message_id)
            .await
            .map_err(retry)
        {
            Ok(false) => {
                tracing::debug!("already applied; acknowledging the redelivery");
                Ok(false)
            }
            Ok(true) => self.handler.handle(tx, envelope).await.map(|()| true),
            Err(e) => Err(e),
        };
        let end = if result.is_ok() {
            "RELEASE SAVEPOINT consume"
        } else {
            "ROLLBACK TO SAVEPOINT consume"
        };
        sqlx::query(end).execute(&mut **tx).await.map_err(retry)?;
        result
    }

    async fn dead_letter(&self, letter: DeadLetter<'_>) -> Outcome {
        match inbox::dead_letter(&self.pool, letter).await {
            Ok(()) => Outcome::DeadLettered,
            // Never terminate a message we could not record: let it come back.
            Err(e) => {
                tracing::error!(error = %e, "could not record a dead letter; the message will be redelivered");
                Outcome::Retry(self.settings.backoff(1))
            }
        }
    }
}

/// A pulled message with its envelope read.
struct Prepared<M> {
    message: jetstream::Message,
    headers: async_nats::HeaderMap,
    subject: String,
    message_id: Option<String>,
    type_name: Option<String>,
    delivered: u64,
    /// The consumer's `max_deliver` is reached: a failure is dead-lettered, not redelivered.
    last_delivery: bool,
    /// When JetStream's ack timer for it last restarted (delivery or progress ack), as far as the runner knows (not
    /// counting the park task's progress acks while it waited in the hand-back channel: an earlier time only makes
    /// the next progress ack come sooner).
    progress_at: Instant,
    span: tracing::Span,
    /// The decoded envelope, or why the message cannot be decoded.
    envelope: Result<Envelope<M>, String>,
}

fn headers_json(headers: &async_nats::HeaderMap) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| {
            let values: Vec<serde_json::Value> = v.iter().map(|v| v.as_str().into()).collect();
            (k.to_string(), serde_json::Value::Array(values))
        })
        .collect();
    serde_json::Value::Object(map)
}
