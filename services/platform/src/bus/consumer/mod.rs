//! The consumer runner: a durable pull consumer declared by the topology, explicit acks, bounded concurrency, progress
//! acks while a handler runs long, redelivery with backoff, and a dead-letter table for what cannot be handled.
//! The handler's effect and the inbox row commit together, so redelivery never applies an effect twice.
//!
//! Only real failures lead to the dead letters. JetStream counts every delivery toward `max_deliver`, and messages
//! are delivered again for reasons that are not theirs: a consumer stopped at a deploy or a rebalance, a handler that
//! gave a message back ([`HandlerError::Release`]), a database outage. So the runner counts a message's real
//! failures itself (`consumer_failures`, one row per failing message, read only on redelivery) and dead-letters it at
//! `consumer.max_failures`; the topology's `max_deliver` stays above that, as a safety net. A database that does not
//! answer is an infrastructure state, not a failure (module `database`): messages in hand are kept, pulling stops,
//! and consuming resumes when a probe finds the database back.
//!
//! A handler may also hand a message back for later ([`HandlerError::Defer`]): its capacity for that kind of message
//! is taken (the gateway: a shop already has its limit of commands running), and the consumer's slots should go to
//! other messages meanwhile. Such a message is *parked* in this process, not NAKed: JetStream counts every delivery,
//! NAKs included, toward the consumer's `max_deliver`, so a command deferred a few dozen times behind its shop's
//! backlog would exhaust it and be dead-lettered (or, past `max_deliver`, never be delivered again) without ever
//! failing. A parked message stays delivered-and-unacknowledged, holds no slot and no database connection, and is
//! tried again after its delay ahead of newly pulled messages.
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
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures::{StreamExt, stream::PollNext};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

mod apply;
mod database;
mod outcome;
mod parking;
mod prepared;

use parking::{HandedBack, Parking};

use super::{
    envelope::{Decode, Envelope},
    names::Namespace,
};
use crate::config::ConsumerSettings;

/// Why a handler did not apply a message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth another try (a dependency is down, a conflict): counted as a failure and redelivered with backoff, until
    /// `consumer.max_failures` (then dead-lettered). Not counted while the database does not answer.
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// Will never succeed (invalid content): dead-lettered at once.
    #[error("{0:#}")]
    Reject(anyhow::Error),
    /// Not this consumer's to handle now (its replica lost the shop's partition, it is shutting down): given back to
    /// JetStream at once for whoever consumes next; not a failure of the message, so not counted toward
    /// `consumer.max_failures`.
    #[error("{0:#}")]
    Release(anyhow::Error),
    /// Not now: the handler has no capacity for this message at the moment (not a failure). The message's writes
    /// and inbox row are undone and it is tried again after about this delay; it is not redelivered, so it spends no
    /// delivery (see the module documentation).
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

    /// Work done before the message's transaction begins, with no database connection held: calls to other systems
    /// that may take long (the gateway's calls to Shopify). The handler keeps what it needs for `handle`, which runs
    /// next in the transaction (or not at all: a message found in the inbox is not handled again, and a failure to
    /// begin the transaction delivers it again, so what is kept must be safe to drop). Errors count as `handle`'s.
    /// Progress acks go on meanwhile.
    fn prepare<'a>(
        &'a self,
        _event: &'a Envelope<Self::Message>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a {
        async { Ok(()) }
    }

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

    fn prepare<'a>(
        &'a self,
        event: &'a Envelope<Self::Message>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a {
        H::prepare(self, event)
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
    database: Arc<database::Database>,
}

/// What a consumer slot works on: pulled messages, a parked message whose delay has passed, or the end of the pull.
enum Work<M> {
    Pulled(Vec<Result<jetstream::Message, jetstream::consumer::pull::MessagesError>>),
    Parked(Arc<HandedBack<M>>),
    PullEnded,
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
            database: database::Database::new(pool.clone(), durable),
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
        let parking = Parking::new(back);
        // A runner aborted (not stopped: its task dropped, as a lease release past its deadline does) still ends its
        // park tasks: otherwise a parked message would get progress acks forever and never be redelivered.
        let _end_parking = parking.stop.clone().drop_guard();
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
        // Nor while the database is down: what comes in could not be applied, and would only wait in memory.
        let gated = futures::stream::unfold(
            (
                pulled,
                parking.parked.clone(),
                parking.unparked.clone(),
                self.database.clone(),
            ),
            move |(mut pulled, parked, unparked, database)| async move {
                loop {
                    let taken = unparked.notified();
                    if parked.load(Ordering::Relaxed) < parking_limit {
                        break;
                    }
                    taken.await;
                }
                database.wait_up().await;
                let next = pulled.next().await?;
                Some((next, (pulled, parked, unparked, database)))
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
                    this.load_failures(&mut batch).await;
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
}
