//! When a schedule is due: every N seconds, or a cron expression (five fields, or six with seconds first) in an IANA
//! time zone; and what a due time found late becomes (a scheduled run, or one catch-up run for every missed one).
//!
//! Interval due times are anchored where the schedule was set (whole seconds) and advance by the interval from the
//! previous due time, not from when it fired, so they never drift. Cron due times are evaluated in the schedule's
//! zone (croner handles the daylight-saving gaps and overlaps) and stored in UTC.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};

use crate::domain::Trigger;

/// Why a timing is refused (the message is shown to the caller as INVALID_ARGUMENT).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimingError(pub String);

#[derive(Debug, Clone)]
pub enum Timing {
    Interval {
        seconds: u32,
    },
    Cron {
        expression: String,
        /// As given ('' is UTC).
        time_zone: String,
        cron: Box<Cron>,
        zone: Tz,
    },
}

impl Timing {
    pub fn interval(seconds: u32) -> Result<Self, TimingError> {
        if seconds == 0 {
            return Err(TimingError(
                "interval_seconds must be at least 1".to_string(),
            ));
        }
        Ok(Timing::Interval { seconds })
    }

    /// Parses and checks a cron expression and its time zone.
    pub fn cron(expression: &str, time_zone: &str) -> Result<Self, TimingError> {
        let expression = expression.trim();
        let time_zone = time_zone.trim();
        let zone = if time_zone.is_empty() {
            Tz::UTC
        } else {
            Tz::from_str(time_zone).map_err(|_| {
                TimingError(format!(
                    "time zone `{time_zone}` is not an IANA time zone name (e.g. Europe/Berlin, America/New_York; empty is UTC)"
                ))
            })?
        };
        if expression.is_empty() {
            return Err(TimingError(
                "cron expression is empty: give five fields (minute hour day-of-month month day-of-week), or six with seconds first".into(),
            ));
        }
        let fields = expression.split_whitespace().count();
        if !expression.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(TimingError(format!(
                "cron expression `{expression}` has {fields} fields: give five (minute hour day-of-month month day-of-week), or six with seconds first"
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| TimingError(format!("cron expression `{expression}` is invalid: {e}")))?;
        let timing = Timing::Cron {
            expression: expression.to_string(),
            time_zone: time_zone.to_string(),
            cron: Box::new(cron),
            zone,
        };
        // A pattern like "0 0 30 2 *" parses but never comes.
        if timing.first_due(Utc::now()).is_none() {
            return Err(TimingError(format!(
                "cron expression `{expression}` never fires"
            )));
        }
        Ok(timing)
    }

    /// The first due time of a schedule set (or resumed) at `now`.
    pub fn first_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Interval { seconds } => {
                Some(whole_seconds(now) + chrono::Duration::seconds(i64::from(*seconds)))
            }
            Timing::Cron { .. } => self.cron_after(now),
        }
    }

    /// The due time after `due`.
    pub fn following(&self, due: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Interval { seconds } => {
                Some(due + chrono::Duration::seconds(i64::from(*seconds)))
            }
            Timing::Cron { .. } => self.cron_after(due),
        }
    }

    /// The latest due time at or before `now`, counting from `due` (itself at or before `now`).
    pub fn latest_until(&self, due: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Timing::Interval { seconds } => {
                let step = i64::from(*seconds);
                let steps = (now - due).num_seconds().max(0) / step;
                due + chrono::Duration::seconds(steps * step)
            }
            Timing::Cron { cron, zone, .. } => cron
                .find_previous_occurrence(&now.with_timezone(zone), true)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .filter(|latest| *latest >= due)
                .unwrap_or(due),
        }
    }

    fn cron_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Timing::Cron { cron, zone, .. } = self else {
            return None;
        };
        cron.find_next_occurrence(&zone.from_utc_datetime(&t.naive_utc()), false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }
}

fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// What to do about a schedule whose next due time has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    /// The due time the run stands for (for a catch-up: the latest missed one).
    pub due_at: DateTime<Utc>,
    pub trigger: Trigger,
    /// The schedule's next due time after this one (`None`: a cron that never comes again).
    pub next_due: Option<DateTime<Utc>>,
}

/// The fire for a schedule due at `next_due`, at `now`. A due time no more than `catch_up_after` late fires as it is
/// (the next one may then be due already, and fires on its own); one later than that was missed, and every due time
/// up to `now` collapses into one catch-up run.
pub fn plan(
    timing: &Timing,
    next_due: DateTime<Utc>,
    now: DateTime<Utc>,
    catch_up_after: chrono::Duration,
) -> Option<Fire> {
    if next_due > now {
        return None;
    }
    if now - next_due <= catch_up_after {
        return Some(Fire {
            due_at: next_due,
            trigger: Trigger::Scheduled,
            next_due: timing.following(next_due),
        });
    }
    let latest = timing.latest_until(next_due, now);
    Some(Fire {
        due_at: latest,
        trigger: Trigger::CatchUp,
        next_due: timing.following(latest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn intervals_anchor_on_whole_seconds_and_never_drift() {
        let t = Timing::interval(5).unwrap();
        let first = t.first_due(at("2026-03-01T10:00:00.700Z")).unwrap();
        assert_eq!(first, at("2026-03-01T10:00:05Z"));
        assert_eq!(t.following(first).unwrap(), at("2026-03-01T10:00:10Z"));
        assert!(Timing::interval(0).is_err());
    }

    #[test]
    fn five_and_six_field_crons_follow_their_time_zone() {
        let daily = Timing::cron("0 9 * * *", "Europe/Berlin").unwrap();
        // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(
            daily.first_due(at("2026-01-10T12:00:00Z")).unwrap(),
            at("2026-01-11T08:00:00Z")
        );
        assert_eq!(
            daily.first_due(at("2026-07-10T12:00:00Z")).unwrap(),
            at("2026-07-11T07:00:00Z")
        );
        let every_ten_seconds = Timing::cron("*/10 * * * * *", "").unwrap();
        assert_eq!(
            every_ten_seconds
                .first_due(at("2026-01-10T12:00:03Z"))
                .unwrap(),
            at("2026-01-10T12:00:10Z")
        );
        // POSIX weekdays: 1 is Monday (2026-01-12 is a Monday).
        let mondays = Timing::cron("30 6 * * 1", "UTC").unwrap();
        assert_eq!(
            mondays.first_due(at("2026-01-10T00:00:00Z")).unwrap(),
            at("2026-01-12T06:30:00Z")
        );
    }

    #[test]
    fn bad_crons_and_zones_are_refused_naming_the_problem() {
        let err = Timing::cron("* * *", "").unwrap_err().0;
        assert!(err.contains("has 3 fields"), "{err}");
        let err = Timing::cron("0 0 * * * * 2030", "").unwrap_err().0;
        assert!(err.contains("has 7 fields"), "{err}");
        let err = Timing::cron("61 * * * *", "").unwrap_err().0;
        assert!(err.contains("`61 * * * *` is invalid"), "{err}");
        let err = Timing::cron("0 9 * * *", "Mars/Olympus").unwrap_err().0;
        assert!(
            err.contains("`Mars/Olympus` is not an IANA time zone"),
            "{err}"
        );
        let err = Timing::cron("0 0 30 2 *", "").unwrap_err().0;
        assert!(err.contains("never fires"), "{err}");
        assert!(Timing::cron("", "").is_err());
    }

    #[test]
    fn a_due_time_on_time_or_a_little_late_fires_as_scheduled() {
        let t = Timing::interval(1).unwrap();
        let grace = chrono::Duration::seconds(30);
        let due = at("2026-03-01T10:00:00Z");
        assert_eq!(plan(&t, due, at("2026-03-01T09:59:59Z"), grace), None);
        let fire = plan(&t, due, at("2026-03-01T10:00:03Z"), grace).unwrap();
        assert_eq!(fire.due_at, due);
        assert_eq!(fire.trigger, Trigger::Scheduled);
        assert_eq!(fire.next_due, Some(at("2026-03-01T10:00:01Z")));
    }

    #[test]
    fn missed_due_times_collapse_into_one_catch_up_run() {
        let grace = chrono::Duration::seconds(30);
        let t = Timing::interval(60).unwrap();
        let due = at("2026-03-01T10:00:00Z");
        // Down for five due times (10:00 .. 10:04), back at 10:04:40.
        let fire = plan(&t, due, at("2026-03-01T10:04:40Z"), grace).unwrap();
        assert_eq!(fire.trigger, Trigger::CatchUp);
        assert_eq!(fire.due_at, at("2026-03-01T10:04:00Z"));
        assert_eq!(fire.next_due, Some(at("2026-03-01T10:05:00Z")));

        let cron = Timing::cron("0 * * * *", "Asia/Kolkata").unwrap();
        let fire = plan(
            &cron,
            at("2026-03-01T10:30:00Z"),
            at("2026-03-01T15:45:00Z"),
            grace,
        )
        .unwrap();
        // Kolkata is UTC+5:30: its full hours are at :30 UTC.
        assert_eq!(fire.trigger, Trigger::CatchUp);
        assert_eq!(fire.due_at, at("2026-03-01T15:30:00Z"));
        assert_eq!(fire.next_due, Some(at("2026-03-01T16:30:00Z")));
    }
}
