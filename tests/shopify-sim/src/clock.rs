//! Time source for everything time-dependent in the simulator (bucket refill, token expiry,
//! bulk URL expiry, webhook backoff, `updatedAt`), so tests can drive time without sleeping.

use chrono::{DateTime, TimeZone, Utc};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A clock: the real wall clock, or a manual one that only moves when told to.
#[derive(Clone, Debug)]
pub enum Clock {
    Real,
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    /// A manual clock starting at 2025-11-01T00:00:00Z.
    pub fn manual() -> Self {
        let start = Utc
            .with_ymd_and_hms(2025, 11, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        Clock::Manual(Arc::new(Mutex::new(start)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::Real => Utc::now(),
            Clock::Manual(t) => *t.lock().unwrap(),
        }
    }

    /// Seconds since the Unix epoch as f64 (bucket arithmetic works in fractional seconds).
    pub fn now_secs(&self) -> f64 {
        let t = self.now();
        t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9
    }

    /// Moves a manual clock forward; a no-op on the real clock.
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(t) = self {
            let mut g = t.lock().unwrap();
            *g += chrono::Duration::from_std(by).unwrap_or_default();
        }
    }

    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = Clock::manual();
        let a = c.now_secs();
        assert_eq!(c.now_secs(), a);
        c.advance(Duration::from_millis(1500));
        assert!((c.now_secs() - a - 1.5).abs() < 1e-9);
    }
}
