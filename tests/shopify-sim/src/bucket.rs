//! Per-shop leaky bucket of GraphQL cost points, refilled at the plan's restore rate.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Plan presets: (bucket size, restore rate per second). Shopify reports them in every
/// response's `throttleStatus`; the enterprise bucket is the documented 20× pattern (UNCONFIRMED).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    #[default]
    Standard,
    Advanced,
    Plus,
    Enterprise,
    /// The pre-2024 standard bucket: 1,000 points, 50/s.
    Legacy,
}

impl Plan {
    pub fn limits(self) -> (f64, f64) {
        match self {
            Plan::Standard => (2000.0, 100.0),
            Plan::Advanced => (4000.0, 200.0),
            Plan::Plus => (20000.0, 1000.0),
            Plan::Enterprise => (40000.0, 2000.0),
            Plan::Legacy => (1000.0, 50.0),
        }
    }

    /// `shop { plan { displayName } }` text.
    pub fn display_name(self) -> &'static str {
        match self {
            Plan::Standard => "Basic",
            Plan::Advanced => "Advanced",
            Plan::Plus => "Shopify Plus",
            Plan::Enterprise => "Commerce Components",
            Plan::Legacy => "Basic",
        }
    }

    pub fn parse(s: &str) -> Option<Plan> {
        serde_json::from_value(Value::String(s.to_ascii_lowercase())).ok()
    }
}

#[derive(Clone, Debug)]
pub struct Bucket {
    pub maximum: f64,
    pub restore_rate: f64,
    available: f64,
    last_refill: f64,
}

impl Bucket {
    pub fn new(plan: Plan, now: f64) -> Self {
        let (maximum, restore_rate) = plan.limits();
        Bucket {
            maximum,
            restore_rate,
            available: maximum,
            last_refill: now,
        }
    }

    fn refill(&mut self, now: f64) {
        let dt = (now - self.last_refill).max(0.0);
        self.available = (self.available + dt * self.restore_rate).min(self.maximum);
        self.last_refill = now;
    }

    /// Takes `cost` points if available; otherwise leaves the bucket as it is and returns false.
    pub fn try_take(&mut self, cost: f64, now: f64) -> bool {
        self.refill(now);
        if cost > self.available {
            return false;
        }
        self.available -= cost;
        true
    }

    /// Gives back unused points (requested − actual) after execution.
    pub fn refund(&mut self, points: f64, now: f64) {
        self.refill(now);
        self.available = (self.available + points).min(self.maximum);
    }

    /// Empties the bucket (fault injection: THROTTLED storms).
    pub fn drain(&mut self, now: f64) {
        self.refill(now);
        self.available = 0.0;
    }

    pub fn available(&mut self, now: f64) -> f64 {
        self.refill(now);
        self.available
    }

    /// `throttleStatus` as Shopify sends it: floats for the limits, an integer for what is left.
    pub fn status(&mut self, now: f64) -> Value {
        let avail = self.available(now).floor() as i64;
        json!({
            "maximumAvailable": self.maximum,
            "currentlyAvailable": avail,
            "restoreRate": self.restore_rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_refills_and_caps() {
        let mut b = Bucket::new(Plan::Standard, 0.0);
        assert!(b.try_take(1500.0, 0.0));
        assert!(!b.try_take(600.0, 0.0), "only 500 left");
        assert_eq!(b.available(0.0), 500.0);
        // 1 s at 100/s.
        assert_eq!(b.available(1.0), 600.0);
        assert!(b.try_take(600.0, 1.0));
        b.refund(50.0, 1.0);
        assert_eq!(b.available(1.0), 50.0);
        assert_eq!(b.available(1000.0), 2000.0, "never above the bucket size");
    }

    #[test]
    fn plan_presets() {
        assert_eq!(Plan::parse("plus").unwrap().limits(), (20000.0, 1000.0));
        assert_eq!(Plan::parse("legacy").unwrap().limits(), (1000.0, 50.0));
        assert_eq!(Plan::parse("advanced").unwrap().limits(), (4000.0, 200.0));
        assert_eq!(
            Plan::parse("enterprise").unwrap().limits(),
            (40000.0, 2000.0)
        );
        assert!(Plan::parse("gold").is_none());
    }
}
