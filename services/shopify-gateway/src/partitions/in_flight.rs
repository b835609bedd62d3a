//! Commands running at once per shop and lane. A consumer serves every shop of its partition; without a bound, one
//! shop's backlog fills all of the consumer's slots (each command waiting on that shop's budget) and the other shops'
//! commands wait behind the whole backlog. With it, a command whose shop and lane are at the limit is deferred (handed
//! back to the consumer for a moment, see `shopbridge_platform::bus::HandlerError::Defer`) and the slots go to other
//! shops. The limit is per lane as well as per shop, so a shop's sync backlog never defers its order commands: the
//! budget still caps the shop's calls in flight across lanes and serves the urgent lane first.
//!
//! Deferred commands keep their turn: they queue per shop and lane in the order they were first deferred, and a free
//! place goes to the first of them (which comes back sooner than the others), not to whichever comes back first, so a
//! shop's commands start in about the order they arrived, as without deferral. The turn is a preference, never a
//! wait for someone absent: a place left free for [`GRACE`] goes to any command of the shop (the first ones may be
//! stuck behind a busy consumer, or handled by another replica), so a shop never idles with commands at hand. A
//! deferred command not seen again for [`FORGET_AFTER`] loses its turn.

use std::{
    collections::{BTreeMap, HashMap},
    ops::RangeInclusive,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::shopify::budget::Lane;

/// How long a deferred command keeps its turn without coming back (several times the longest deferral).
pub const FORGET_AFTER: Duration = Duration::from_secs(3);
/// How long a free place is kept for the commands whose turn it is (longer than their deferral).
pub const GRACE: Duration = Duration::from_millis(100);
/// Deferral of a command whose turn is next (a place may free at any moment), in ms.
const NEXT_DELAY_MS: RangeInclusive<u64> = 20..=80;
/// Deferral of a command further back, in ms: short enough that a shop's next command starts soon after a place
/// frees, jittered so a shop's deferred commands do not come back in lockstep.
const LATER_DELAY_MS: RangeInclusive<u64> = 200..=500;

pub struct InFlight {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<(String, Lane), Queue>,
    next_turn: u64,
}

/// One shop and lane: its running commands and its deferred ones in turn order.
#[derive(Default)]
struct Queue {
    running: usize,
    /// Since when a place has been free (None while all are taken).
    free_since: Option<Instant>,
    /// Turn → (command id, when last seen).
    waiting: BTreeMap<u64, (String, Instant)>,
    turns: HashMap<String, u64>,
}

impl Queue {
    fn forget_stale(&mut self, now: Instant) {
        let turns = &mut self.turns;
        self.waiting.retain(|_, (id, seen)| {
            let keep = now.saturating_duration_since(*seen) < FORGET_AFTER;
            if !keep {
                turns.remove(id);
            }
            keep
        });
    }
}

impl InFlight {
    /// At most `limit` commands per shop and lane; 0 for no limit.
    pub fn new(limit: usize) -> Self {
        Self {
            limit: if limit == 0 { usize::MAX } else { limit },
            state: Mutex::default(),
        }
    }

    /// A place for command `command_id` of `shop` on `lane`, held until the returned guard drops; or how long to
    /// defer the command (its shop and lane are at the limit, or deferred commands are ahead of it).
    pub fn try_start(
        &self,
        shop: &str,
        lane: Lane,
        command_id: &str,
    ) -> Result<Running<'_>, Duration> {
        let key = (shop.to_string(), lane);
        self.decide(&key, command_id, true, Instant::now())?;
        Ok(Running {
            in_flight: self,
            key,
        })
    }

    /// Whether [`InFlight::try_start`] would defer the command now (and for how long), without taking a place.
    pub fn would_defer(&self, shop: &str, lane: Lane, command_id: &str) -> Option<Duration> {
        self.decide(&(shop.to_string(), lane), command_id, false, Instant::now())
            .err()
    }

    /// Commands running for `shop` on `lane`.
    pub fn running(&self, shop: &str, lane: Lane) -> usize {
        let state = self.state.lock().unwrap();
        state
            .keys
            .get(&(shop.to_string(), lane))
            .map_or(0, |q| q.running)
    }

    fn decide(
        &self,
        key: &(String, Lane),
        command_id: &str,
        take: bool,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap();
        let state = &mut *state;
        let queue = state.keys.entry(key.clone()).or_default();
        queue.forget_stale(now);
        let free = self.limit.saturating_sub(queue.running);
        if free > 0 && queue.free_since.is_none() {
            queue.free_since = Some(now);
        }
        let turn = queue.turns.get(command_id).copied();
        let ahead = match turn {
            Some(turn) => queue.waiting.range(..turn).count(),
            None => queue.waiting.len(),
        };
        let unclaimed = queue
            .free_since
            .is_some_and(|since| now.saturating_duration_since(since) >= GRACE);
        if ahead < free || (free > 0 && unclaimed) {
            if take {
                if let Some(turn) = turn {
                    queue.waiting.remove(&turn);
                    queue.turns.remove(command_id);
                }
                queue.running += 1;
                if queue.running >= self.limit {
                    queue.free_since = None;
                }
            } else if queue.running == 0 && queue.waiting.is_empty() {
                state.keys.remove(key);
            }
            return Ok(());
        }
        match turn {
            Some(turn) => {
                if let Some((_, seen)) = queue.waiting.get_mut(&turn) {
                    *seen = now;
                }
            }
            None => {
                let turn = state.next_turn;
                state.next_turn += 1;
                queue.waiting.insert(turn, (command_id.to_string(), now));
                queue.turns.insert(command_id.to_string(), turn);
            }
        }
        let range = if ahead < self.limit {
            NEXT_DELAY_MS
        } else {
            LATER_DELAY_MS
        };
        Err(Duration::from_millis(rand::random_range(range)))
    }
}

/// One running command; its place is freed on drop (also when the handler's future is dropped).
pub struct Running<'a> {
    in_flight: &'a InFlight,
    key: (String, Lane),
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut state = self.in_flight.state.lock().unwrap();
        if let Some(queue) = state.keys.get_mut(&self.key) {
            queue.running = queue.running.saturating_sub(1);
            queue.free_since.get_or_insert_with(Instant::now);
            // Idle shops leave no entry behind: the map holds only shops with commands running or deferred.
            if queue.running == 0 && queue.waiting.is_empty() {
                state.keys.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shop_and_lane_at_the_limit_defers_while_other_shops_and_lanes_do_not() {
        let in_flight = InFlight::new(2);
        let a1 = in_flight.try_start("a", Lane::Sync, "a1").unwrap();
        let _a2 = in_flight.try_start("a", Lane::Sync, "a2").unwrap();
        let delay = in_flight.try_start("a", Lane::Sync, "a3").err().unwrap();
        assert!(delay <= Duration::from_millis(80), "{delay:?}");
        assert!(in_flight.would_defer("a", Lane::Sync, "a3").is_some());
        assert!(in_flight.try_start("a", Lane::Orders, "o1").is_ok());
        assert!(in_flight.try_start("b", Lane::Sync, "b1").is_ok());
        drop(a1);
        assert_eq!(in_flight.running("a", Lane::Sync), 1);
        assert!(in_flight.would_defer("a", Lane::Sync, "a3").is_none());
        assert!(in_flight.try_start("a", Lane::Sync, "a3").is_ok());
    }

    #[test]
    fn a_free_place_goes_to_the_command_deferred_first() {
        let in_flight = InFlight::new(1);
        let running = in_flight.try_start("a", Lane::Sync, "c1").unwrap();
        for id in ["c2", "c3", "c4"] {
            assert!(in_flight.try_start("a", Lane::Sync, id).is_err());
        }
        // Further back, longer deferrals.
        let later = in_flight.try_start("a", Lane::Sync, "c4").err().unwrap();
        assert!(later >= Duration::from_millis(200), "{later:?}");
        drop(running);
        assert!(in_flight.try_start("a", Lane::Sync, "c3").is_err());
        assert!(in_flight.try_start("c-new", Lane::Sync, "x").is_ok());
        assert!(in_flight.try_start("a", Lane::Sync, "c5").is_err());
        let second = in_flight.try_start("a", Lane::Sync, "c2").unwrap();
        drop(second);
        assert!(in_flight.try_start("a", Lane::Sync, "c4").is_err());
        assert!(in_flight.try_start("a", Lane::Sync, "c3").is_ok());
    }

    #[test]
    fn a_deferred_command_that_does_not_come_back_loses_its_turn() {
        let in_flight = InFlight::new(1);
        let key = ("a".to_string(), Lane::Sync);
        let start = Instant::now();
        in_flight.decide(&key, "c1", true, start).unwrap();
        assert!(in_flight.decide(&key, "gone", true, start).is_err());
        assert!(in_flight.decide(&key, "c3", true, start).is_err());
        in_flight
            .state
            .lock()
            .unwrap()
            .keys
            .get_mut(&key)
            .unwrap()
            .running = 0;
        // "gone" is first; "c3" keeps coming back, "gone" does not.
        let later = start + FORGET_AFTER - Duration::from_millis(100);
        assert!(in_flight.decide(&key, "c3", true, later).is_err());
        let after = start + FORGET_AFTER + Duration::from_millis(100);
        assert!(in_flight.decide(&key, "c3", true, after).is_ok());
    }

    #[test]
    fn a_place_its_first_commands_do_not_claim_goes_to_whoever_comes() {
        let in_flight = InFlight::new(1);
        let key = ("a".to_string(), Lane::Sync);
        let start = Instant::now();
        in_flight.decide(&key, "c1", true, start).unwrap();
        assert!(in_flight.decide(&key, "first", true, start).is_err());
        {
            let mut state = in_flight.state.lock().unwrap();
            let queue = state.keys.get_mut(&key).unwrap();
            queue.running = 0;
            queue.free_since = Some(start);
        }
        // Kept for "first" a moment, then taken by a later command: the shop does not idle.
        let soon = start + GRACE / 2;
        assert!(in_flight.decide(&key, "later", true, soon).is_err());
        assert!(in_flight.decide(&key, "later", true, start + GRACE).is_ok());
        assert!(
            in_flight
                .decide(&key, "first", true, start + GRACE)
                .is_err()
        );
    }

    #[test]
    fn idle_shops_leave_no_entry_and_zero_means_no_limit() {
        let in_flight = InFlight::new(1);
        drop(in_flight.try_start("a", Lane::Sync, "c1").unwrap());
        assert!(in_flight.would_defer("b", Lane::Sync, "c2").is_none());
        assert!(in_flight.state.lock().unwrap().keys.is_empty());
        let unlimited = InFlight::new(0);
        let held: Vec<_> = (0..100)
            .map(|i| {
                unlimited
                    .try_start("a", Lane::Sync, &i.to_string())
                    .unwrap()
            })
            .collect();
        assert_eq!(held.len(), 100);
    }
}

/// Commands running at once in this replica, across every consumer: the 64 consumers' slots (16 partitions x 4 lanes x
/// `consumer.concurrency`) would otherwise run more commands than the replica's database pool and memory take. At the
/// bound a command is deferred like one whose shop is at its limit.
///
/// Lanes have priority here too: each lane below orders leaves room for the lanes above it (`reserve` places per lane
/// above), so long imports can never take every place and hold back a fulfillment on the same replica. With the
/// default 16: orders may use all 16, sync 14, publish 12, import 10.
pub struct ReplicaLimit {
    limit: usize,
    reserve: usize,
    running: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// A running command's place in [`ReplicaLimit`], given back on drop (panics and early returns included).
pub struct ReplicaPlace(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for ReplicaPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Deferral of a command while the replica is at its bound, in ms (jittered so deferred commands spread out).
const REPLICA_DELAY_MS: RangeInclusive<u64> = 50..=250;

impl ReplicaLimit {
    /// At most `limit` commands at once; 0 for no limit.
    pub fn new(limit: usize) -> Self {
        Self {
            limit: if limit == 0 { usize::MAX } else { limit },
            // An eighth of the places per lane above, at least one: 16 -> 2.
            reserve: if limit == 0 { 0 } else { (limit / 8).max(1) },
            running: Default::default(),
        }
    }

    /// The places a command of `lane` may find taken and still start: the bound, less the room kept for the lanes
    /// above it (at least one place, so no lane is shut out).
    fn capacity(&self, lane: Lane) -> usize {
        self.limit
            .saturating_sub(self.reserve * lane as usize)
            .max(1)
    }

    /// Whether a command of `lane` would be deferred now (checked before anything is done for it).
    pub fn would_defer(&self, lane: Lane) -> Option<Duration> {
        (self.running.load(std::sync::atomic::Ordering::Acquire) >= self.capacity(lane))
            .then(replica_delay)
    }

    /// A place for a command of `lane`, or how long to defer it.
    pub fn try_start(&self, lane: Lane) -> Result<ReplicaPlace, Duration> {
        use std::sync::atomic::Ordering;
        let capacity = self.capacity(lane);
        let taken = self
            .running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < capacity).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(ReplicaPlace(self.running.clone())),
            Err(_) => Err(replica_delay()),
        }
    }
}

fn replica_delay() -> Duration {
    Duration::from_millis(rand::random_range(REPLICA_DELAY_MS))
}

#[cfg(test)]
mod replica_tests {
    use super::*;

    #[test]
    fn the_replica_bound_defers_the_next_command_until_a_place_is_given_back() {
        let limit = ReplicaLimit::new(2);
        let a = limit.try_start(Lane::Orders).expect("first");
        let _b = limit.try_start(Lane::Orders).expect("second");
        assert!(limit.would_defer(Lane::Orders).is_some());
        let delay = limit.try_start(Lane::Orders).err().expect("third deferred");
        assert!(REPLICA_DELAY_MS.contains(&(delay.as_millis() as u64)));
        drop(a);
        assert!(limit.would_defer(Lane::Orders).is_none());
        assert!(limit.try_start(Lane::Orders).is_ok());
    }

    #[test]
    fn long_imports_leave_room_for_every_lane_above_them() {
        let limit = ReplicaLimit::new(16);
        let imports: Vec<_> = std::iter::from_fn(|| limit.try_start(Lane::Import).ok()).collect();
        assert_eq!(imports.len(), 10, "imports stop at 16 - 3 x 2");
        assert!(limit.would_defer(Lane::Import).is_some());
        let publishes: Vec<_> =
            std::iter::from_fn(|| limit.try_start(Lane::Publish).ok()).collect();
        assert_eq!(publishes.len(), 2);
        let syncs: Vec<_> = std::iter::from_fn(|| limit.try_start(Lane::Sync).ok()).collect();
        assert_eq!(syncs.len(), 2);
        // A fulfillment still starts at once, and the last places are the orders lane's alone.
        let orders: Vec<_> = std::iter::from_fn(|| limit.try_start(Lane::Orders).ok()).collect();
        assert_eq!(orders.len(), 2);
        assert!(limit.would_defer(Lane::Orders).is_some());
        drop(orders);
        assert!(
            limit.would_defer(Lane::Sync).is_some(),
            "freed places go to the lanes above first"
        );
        assert!(limit.would_defer(Lane::Orders).is_none());
    }

    #[test]
    fn a_small_bound_still_lets_every_lane_run() {
        let limit = ReplicaLimit::new(1);
        assert!(limit.try_start(Lane::Import).is_ok());
    }

    #[test]
    fn zero_means_no_bound() {
        let limit = ReplicaLimit::new(0);
        let places: Vec<_> = (0..1000)
            .map(|_| limit.try_start(Lane::Import).unwrap())
            .collect();
        assert_eq!(places.len(), 1000);
    }
}
