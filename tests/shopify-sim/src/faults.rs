//! Faults injected on demand (`PUT /_sim/faults`): HTTP 5xx, 429 with `Retry-After`, latency,
//! dropped connections, THROTTLED storms, duplicate and out-of-order webhook deliveries.
//! Draws come from a seeded RNG so a test run is reproducible.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Share of GraphQL requests answered with `error_status` (default 500).
    pub error_rate: f64,
    pub error_status: Option<u16>,
    /// Share of GraphQL requests answered 429 with `Retry-After: retry_after_secs`.
    pub rate_429: f64,
    pub retry_after_secs: Option<f64>,
    /// Added latency (ms) on every GraphQL request.
    pub latency_ms: u64,
    /// Share of GraphQL requests whose connection is dropped mid-response.
    pub drop_rate: f64,
    /// Share of GraphQL requests that run but whose answer is lost (the connection drops after the work was done).
    pub lost_answer_rate: f64,
    /// Share of GraphQL requests answered THROTTLED (and the shop's bucket drained).
    pub throttle_rate: f64,
    /// Share of webhook deliveries sent twice.
    pub webhook_duplicate_rate: f64,
    /// Share of webhook deliveries held back (0–500 ms) so they arrive out of order.
    pub webhook_reorder_rate: f64,
    /// Delay (ms) before a bulk operation starts running (keeps it CREATED meanwhile).
    pub bulk_delay_ms: u64,
    /// A bulk mutation stops after running this many lines: it ends FAILED (INTERNAL_SERVER_ERROR), and what it ran
    /// is in `partialDataUrl`, as Shopify does for an operation that failed part way.
    pub bulk_mutation_stop_after: Option<u64>,
    /// A field name removed from every object of every answer's `data` (schema drift, as when Shopify changes a
    /// field's name or stops sending it): the client must fail naming it, not carry on with a default.
    pub drop_field: Option<String>,
    /// Only these shops (all shops when empty).
    pub shops: Vec<String>,
    /// RNG seed for the draws.
    pub seed: u64,
}

pub struct Faults {
    pub config: Mutex<FaultConfig>,
    rng: Mutex<StdRng>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            config: Mutex::new(FaultConfig::default()),
            rng: Mutex::new(StdRng::seed_from_u64(0)),
        }
    }
}

/// What to do to one GraphQL request.
#[derive(Debug, PartialEq)]
pub enum Injected {
    None,
    Error(u16),
    TooMany(f64),
    Drop,
    Throttle,
}

impl Faults {
    pub fn set(&self, cfg: FaultConfig) {
        *self.rng.lock().unwrap() = StdRng::seed_from_u64(cfg.seed);
        *self.config.lock().unwrap() = cfg;
    }

    pub fn get(&self) -> FaultConfig {
        self.config.lock().unwrap().clone()
    }

    fn applies(cfg: &FaultConfig, shop: &str) -> bool {
        cfg.shops.is_empty() || cfg.shops.iter().any(|s| s.eq_ignore_ascii_case(shop))
    }

    pub fn latency(&self, shop: &str) -> u64 {
        let c = self.config.lock().unwrap();
        if Self::applies(&c, shop) {
            c.latency_ms
        } else {
            0
        }
    }

    pub fn draw(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().unwrap().random_bool(p.min(1.0))
    }

    pub fn request(&self, shop: &str) -> Injected {
        let c = self.get();
        if !Self::applies(&c, shop) {
            return Injected::None;
        }
        if self.draw(c.drop_rate) {
            return Injected::Drop;
        }
        if self.draw(c.error_rate) {
            return Injected::Error(c.error_status.unwrap_or(500));
        }
        if self.draw(c.rate_429) {
            return Injected::TooMany(c.retry_after_secs.unwrap_or(2.0));
        }
        if self.draw(c.throttle_rate) {
            return Injected::Throttle;
        }
        Injected::None
    }

    /// Whether the answer to a request that ran is lost (`lost_answer_rate`).
    pub fn lose_answer(&self, shop: &str) -> bool {
        let c = self.get();
        Self::applies(&c, shop) && self.draw(c.lost_answer_rate)
    }

    /// The field removed from `shop`'s answers, if any (`drop_field`).
    pub fn drop_field(&self, shop: &str) -> Option<String> {
        let c = self.get();
        Self::applies(&c, shop).then_some(c.drop_field).flatten()
    }

    /// How many lines a bulk mutation on `shop` runs before it fails (None: all of them).
    pub fn bulk_mutation_stop_after(&self, shop: &str) -> Option<u64> {
        let c = self.get();
        Self::applies(&c, shop)
            .then_some(c.bulk_mutation_stop_after)
            .flatten()
    }

    pub fn webhook_duplicate(&self, shop: &str) -> bool {
        let c = self.get();
        Self::applies(&c, shop) && self.draw(c.webhook_duplicate_rate)
    }

    pub fn webhook_delay_ms(&self, shop: &str) -> u64 {
        let c = self.get();
        if Self::applies(&c, shop) && self.draw(c.webhook_reorder_rate) {
            self.rng.lock().unwrap().random_range(50..500)
        } else {
            0
        }
    }
}
