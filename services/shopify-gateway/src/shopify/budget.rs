//! Each shop's cost budget: a model of Shopify's leaky bucket, learned from the `throttleStatus` of every response
//! (never hard-coded), that holds a request back until the bucket will hold it instead of sending it to be throttled.
//! Waiting requests are served by lane (orders before inventory and price sync, before publishing, before imports),
//! then first come first served, with a bounded number in flight per shop. Shops never wait on one another.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

/// Priority lanes, most urgent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// Orders and fulfillments: a shipment must not wait behind a catalog.
    Orders = 0,
    /// Inventory and price sync.
    Sync = 1,
    Publish = 2,
    Import = 3,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Orders => "orders",
            Lane::Sync => "sync",
            Lane::Publish => "publish",
            Lane::Import => "import",
        }
    }
}

/// What Shopify reports in `extensions.cost.throttleStatus`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

#[derive(Debug, Clone)]
pub struct BudgetSettings {
    pub max_in_flight_per_shop: usize,
    /// Assumed until a shop's first response: the smallest bucket Shopify has had (legacy standard, 1,000 / 50).
    pub start_maximum: f64,
    pub start_restore_rate: f64,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            max_in_flight_per_shop: 4,
            start_maximum: 1000.0,
            start_restore_rate: 50.0,
        }
    }
}

pub struct Budget {
    settings: BudgetSettings,
    shops: Mutex<HashMap<String, Arc<ShopBudget>>>,
    /// When idle shops were last forgotten.
    swept: Mutex<Instant>,
}

/// A shop's budget unused this long is forgotten (its partition has likely moved to another replica; what it knew is
/// learned again from the first answer, from the conservative starting estimate).
const FORGET_IDLE: Duration = Duration::from_secs(15 * 60);
/// How often idle shops are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

struct ShopBudget {
    domain: String,
    /// When a request last asked for this shop's budget.
    used: Mutex<Instant>,
    state: Mutex<ShopState>,
    changed: Notify,
}

impl ShopBudget {
    /// Requests waiting for budget, by shop and lane (the metric `gateway_queue_depth`).
    fn queue_depth(&self, lane: Lane) -> metrics::Gauge {
        metrics::gauge!("gateway_queue_depth", "shop" => self.domain.clone(), "lane" => lane.as_str())
    }
}

struct ShopState {
    maximum: f64,
    restore_rate: f64,
    /// Points available at `observed_at`, as the server last reported.
    available: f64,
    observed_at: Instant,
    /// Whether any response has told us the real bucket yet; until then one request at a time.
    learned: bool,
    /// Requested cost of the calls sent and not yet answered.
    reserved: f64,
    in_flight: usize,
    queue: BTreeSet<(Lane, u64)>,
    next_ticket: u64,
}

impl ShopState {
    /// What the bucket holds now by our model, before the calls in flight are counted.
    fn refilled(&self, now: Instant) -> f64 {
        let refilled = self.available
            + self.restore_rate
                * now
                    .saturating_duration_since(self.observed_at)
                    .as_secs_f64();
        refilled.min(self.maximum)
    }

    fn projected(&self, now: Instant) -> f64 {
        self.refilled(now) - self.reserved
    }
}

/// A grant to send one request of `cost`. Settle it with the response's throttle status; dropping it unsettled
/// (the call failed before any answer) just returns the reservation.
pub struct Permit {
    shop: Arc<ShopBudget>,
    cost: f64,
    /// How long the request waited for budget.
    pub waited: Duration,
    settled: bool,
}

impl Permit {
    pub fn cost(&self) -> f64 {
        self.cost
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled {
            release(&self.shop, self.cost, None);
        }
    }
}

/// Removes a waiter's ticket if its acquire is abandoned (cancelled future), so it cannot block the queue.
struct Ticket<'a> {
    shop: &'a ShopBudget,
    key: (Lane, u64),
    active: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.active {
            self.shop.state.lock().unwrap().queue.remove(&self.key);
            self.shop.queue_depth(self.key.0).decrement(1.0);
            self.shop.changed.notify_waiters();
        }
    }
}

fn release(shop: &ShopBudget, cost: f64, status: Option<ThrottleStatus>) {
    // A request ending is a use: a shop stays known while its requests run and for a while after.
    *shop.used.lock().unwrap() = Instant::now();
    {
        let mut st = shop.state.lock().unwrap();
        st.reserved = (st.reserved - cost).max(0.0);
        st.in_flight = st.in_flight.saturating_sub(1);
        if let Some(s) = status {
            let now = Instant::now();
            // Answers can arrive out of order: an older answer reports a bucket from before calls whose own answers
            // came first. Never let a report raise what we already know to be less.
            let available = if st.learned {
                s.currently_available.min(st.refilled(now))
            } else {
                s.currently_available
            };
            st.maximum = s.maximum_available;
            st.restore_rate = s.restore_rate.max(0.001);
            st.available = available;
            st.observed_at = now;
            st.learned = true;
            metrics::gauge!("gateway_points_available", "shop" => shop.domain.clone())
                .set(s.currently_available);
            metrics::gauge!("gateway_points_maximum", "shop" => shop.domain.clone())
                .set(s.maximum_available);
        }
    }
    shop.changed.notify_waiters();
}

impl Budget {
    pub fn new(settings: BudgetSettings) -> Self {
        Self {
            settings,
            shops: Mutex::new(HashMap::new()),
            swept: Mutex::new(Instant::now()),
        }
    }

    /// Shops whose budget this process keeps (the idle ones are forgotten after a while).
    pub fn shops_known(&self) -> usize {
        self.shops.lock().unwrap().len()
    }

    /// Forgets the shops unused for `idle`, unless a request holds them (only the map does then: nobody can be
    /// waiting on, or about to use, a budget that is dropped).
    pub fn forget_idle(&self, idle: Duration) {
        let mut shops = self.shops.lock().unwrap();
        shops.retain(|_, shop| {
            Arc::strong_count(shop) > 1 || shop.used.lock().unwrap().elapsed() < idle
        });
    }

    fn shop(&self, domain: &str) -> Arc<ShopBudget> {
        let sweep = {
            let mut swept = self.swept.lock().unwrap();
            let due = swept.elapsed() >= SWEEP_EVERY;
            if due {
                *swept = Instant::now();
            }
            due
        };
        if sweep {
            self.forget_idle(FORGET_IDLE);
        }
        let mut shops = self.shops.lock().unwrap();
        let shop = shops
            .entry(domain.to_string())
            .or_insert_with(|| {
                Arc::new(ShopBudget {
                    domain: domain.to_string(),
                    used: Mutex::new(Instant::now()),
                    state: Mutex::new(ShopState {
                        maximum: self.settings.start_maximum,
                        restore_rate: self.settings.start_restore_rate,
                        available: self.settings.start_maximum,
                        observed_at: Instant::now(),
                        learned: false,
                        reserved: 0.0,
                        in_flight: 0,
                        queue: BTreeSet::new(),
                        next_ticket: 0,
                    }),
                    changed: Notify::new(),
                })
            })
            .clone();
        *shop.used.lock().unwrap() = Instant::now();
        shop
    }

    /// Waits until `shop`'s bucket will hold a request of `cost` and it is this request's turn.
    pub async fn acquire(&self, domain: &str, lane: Lane, cost: f64) -> Permit {
        let shop = self.shop(domain);
        let key = {
            let mut st = shop.state.lock().unwrap();
            st.next_ticket += 1;
            let key = (lane, st.next_ticket);
            st.queue.insert(key);
            key
        };
        shop.queue_depth(lane).increment(1.0);
        let mut ticket = Ticket {
            shop: &shop,
            key,
            active: true,
        };
        let started = Instant::now();
        let limit = self.settings.max_in_flight_per_shop.max(1);
        loop {
            let notified = shop.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut st = shop.state.lock().unwrap();
                let cost = cost.min(st.maximum);
                let limit = if st.learned { limit } else { 1 };
                if st.queue.first() == Some(&key) && st.in_flight < limit {
                    let available = st.projected(Instant::now());
                    if available >= cost {
                        st.queue.remove(&key);
                        shop.queue_depth(lane).decrement(1.0);
                        st.reserved += cost;
                        st.in_flight += 1;
                        drop(st);
                        ticket.active = false;
                        shop.changed.notify_waiters();
                        return Permit {
                            shop: shop.clone(),
                            cost,
                            waited: started.elapsed(),
                            settled: false,
                        };
                    }
                    Some(Duration::from_secs_f64(
                        (cost - available) / st.restore_rate,
                    ))
                } else {
                    None
                }
            };
            match wait {
                Some(delay) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Records the answer to a permitted request: the server's view of the bucket replaces ours.
    pub fn settle(&self, mut permit: Permit, status: Option<ThrottleStatus>) {
        permit.settled = true;
        release(&permit.shop, permit.cost, status);
    }

    /// What the budget believes about a shop now: (maximum, restore rate, projected available, waiting by lane).
    pub fn snapshot(&self, domain: &str) -> BudgetSnapshot {
        let shop = self.shop(domain);
        let st = shop.state.lock().unwrap();
        let mut waiting = [0usize; 4];
        for (lane, _) in &st.queue {
            waiting[*lane as usize] += 1;
        }
        BudgetSnapshot {
            maximum: st.maximum,
            restore_rate: st.restore_rate,
            available: st.projected(Instant::now()),
            in_flight: st.in_flight,
            waiting,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BudgetSnapshot {
    pub maximum: f64,
    pub restore_rate: f64,
    pub available: f64,
    pub in_flight: usize,
    pub waiting: [usize; 4],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(max: f64, available: f64, rate: f64) -> ThrottleStatus {
        ThrottleStatus {
            maximum_available: max,
            currently_available: available,
            restore_rate: rate,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_shops_are_forgotten_but_not_one_a_request_holds() {
        let budget = Budget::new(BudgetSettings::default());
        let held = budget.acquire("busy", Lane::Sync, 10.0).await;
        let done = budget.acquire("idle", Lane::Sync, 10.0).await;
        budget.settle(done, None);
        tokio::time::advance(Duration::from_secs(3600)).await;
        budget.forget_idle(Duration::from_secs(60));
        assert_eq!(
            budget.shops_known(),
            1,
            "the idle shop is gone, the held one kept"
        );
        budget.settle(held, None);
        budget.forget_idle(Duration::from_secs(60));
        assert_eq!(budget.shops_known(), 1, "just used: kept");
        tokio::time::advance(Duration::from_secs(61)).await;
        budget.forget_idle(Duration::from_secs(60));
        assert_eq!(budget.shops_known(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_until_the_bucket_has_refilled_enough() {
        let budget = Budget::new(BudgetSettings::default());
        let first = budget.acquire("a", Lane::Sync, 10.0).await;
        budget.settle(first, Some(status(2000.0, 100.0, 100.0)));
        let started = Instant::now();
        let permit = budget.acquire("a", Lane::Sync, 600.0).await;
        // 100 available, 500 missing at 100 points/s.
        assert_eq!(started.elapsed().as_secs(), 5);
        assert_eq!(permit.waited.as_secs(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn urgent_lanes_overtake_waiting_bulk_work() {
        let budget = Arc::new(Budget::new(BudgetSettings::default()));
        let first = budget.acquire("a", Lane::Import, 1.0).await;
        budget.settle(first, Some(status(1000.0, 0.0, 50.0)));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, lane) in [Lane::Import, Lane::Import, Lane::Publish, Lane::Orders]
            .into_iter()
            .enumerate()
        {
            let (budget, order) = (budget.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i as u64)).await;
                let permit = budget.acquire("a", lane, 100.0).await;
                order.lock().unwrap().push(lane);
                budget.settle(permit, None);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            vec![Lane::Orders, Lane::Publish, Lane::Import, Lane::Import]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_shops_empty_bucket_does_not_hold_up_another_shop() {
        let budget = Budget::new(BudgetSettings::default());
        let a = budget.acquire("a", Lane::Import, 1.0).await;
        budget.settle(a, Some(status(1000.0, 0.0, 50.0)));
        let waiting_a = budget.acquire("a", Lane::Import, 1000.0);
        tokio::pin!(waiting_a);
        tokio::select! {
            _ = &mut waiting_a => panic!("shop a has no budget"),
            permit = budget.acquire("b", Lane::Import, 100.0) => assert_eq!(permit.cost(), 100.0),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn until_the_first_answer_only_one_request_is_in_flight_and_then_the_limit_applies() {
        let budget = Budget::new(BudgetSettings {
            max_in_flight_per_shop: 2,
            ..BudgetSettings::default()
        });
        let first = budget.acquire("a", Lane::Sync, 1.0).await;
        let second = budget.acquire("a", Lane::Sync, 1.0);
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), &mut second)
                .await
                .is_err(),
            "learning: one at a time"
        );
        budget.settle(first, Some(status(2000.0, 2000.0, 100.0)));
        let second = second.await;
        let third = budget.acquire("a", Lane::Sync, 1.0).await;
        assert!(
            tokio::time::timeout(Duration::from_secs(1), budget.acquire("a", Lane::Sync, 1.0))
                .await
                .is_err()
        );
        budget.settle(second, None);
        drop(third);
        assert_eq!(budget.snapshot("a").in_flight, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_older_answer_arriving_last_does_not_raise_the_bucket() {
        let budget = Budget::new(BudgetSettings::default());
        let first = budget.acquire("a", Lane::Sync, 10.0).await;
        budget.settle(first, Some(status(2000.0, 1000.0, 100.0)));
        let older = budget.acquire("a", Lane::Sync, 100.0).await;
        let newer = budget.acquire("a", Lane::Sync, 100.0).await;
        // Shopify ran `older` first (1000 -> 900) then `newer` (900 -> 800), but `newer`'s answer came first.
        budget.settle(newer, Some(status(2000.0, 800.0, 100.0)));
        budget.settle(older, Some(status(2000.0, 900.0, 100.0)));
        assert_eq!(budget.snapshot("a").available, 800.0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_wait_does_not_block_the_queue() {
        let budget = Budget::new(BudgetSettings::default());
        let first = budget.acquire("a", Lane::Sync, 1.0).await;
        budget.settle(first, Some(status(1000.0, 0.0, 50.0)));
        let abandoned = tokio::time::timeout(
            Duration::from_millis(10),
            budget.acquire("a", Lane::Orders, 1000.0),
        )
        .await;
        assert!(abandoned.is_err());
        let started = Instant::now();
        let _ = budget.acquire("a", Lane::Sync, 50.0).await;
        assert!(started.elapsed() <= Duration::from_secs(1));
    }
}
