//! Parking: where deferred messages wait out their delay without counting as deliveries, and how they come back to
//! the consumer's slots (see the consumer's module documentation).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_nats::jetstream::AckKind;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{ConsumerRunner, Handler, prepared::Prepared};

/// A parked message whose delay has passed, on its way back to a slot. Its park task keeps it progress-acked until a
/// slot takes it, and takes it back itself to NAK it if the consumer stops first: whichever claims it first has it,
/// so a message is never both handled and NAKed.
pub(super) struct HandedBack<M> {
    prepared: std::sync::Mutex<Option<Box<Prepared<M>>>>,
    /// Cancelled when it is claimed: the park task's progress acks are no longer needed.
    claimed: CancellationToken,
}

impl<M> HandedBack<M> {
    pub(super) fn new(prepared: Box<Prepared<M>>) -> Self {
        Self {
            prepared: std::sync::Mutex::new(Some(prepared)),
            claimed: CancellationToken::new(),
        }
    }

    /// The message, to the first caller only.
    pub(super) fn claim(&self) -> Option<Box<Prepared<M>>> {
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
pub(super) struct Parking<M> {
    pub(super) back: tokio::sync::mpsc::UnboundedSender<Arc<HandedBack<M>>>,
    /// Parked now, including those sent back and not yet taken by a slot.
    pub(super) parked: Arc<AtomicUsize>,
    /// Signalled when a parked message leaves (taken back by a slot, or given back to JetStream).
    pub(super) unparked: Arc<tokio::sync::Notify>,
    /// Cancelled when the consumer stops, once it has ended its pull: parked messages are then NAKed, to be
    /// redelivered at once.
    pub(super) stop: CancellationToken,
    /// The park tasks, awaited before `run` returns so their NAKs are sent (a detached task may not run again
    /// before the process exits).
    pub(super) tasks: TaskTracker,
}

impl<M> Parking<M> {
    pub(super) fn new(back: tokio::sync::mpsc::UnboundedSender<Arc<HandedBack<M>>>) -> Self {
        Self {
            back,
            parked: Arc::default(),
            unparked: Arc::default(),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }
}

impl<H: Handler> ConsumerRunner<H> {
    /// Keeps a deferred message until its delay has passed, then hands it back to the slots, keeping it
    /// progress-acked until a slot has taken it; see the module documentation.
    pub(super) fn park(
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
}
