//! Schedules per (channel, operation): their timing, whether they are enabled, and the next due time the fire loop
//! moves forward.

use chrono::{DateTime, Utc};
use shopbridge_platform::error::ApiError;
use shopbridge_proto::scheduler as pb;
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};

use crate::{
    channels::Channel,
    convert,
    domain::Operation,
    timing::{Timing, TimingError},
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Schedule {
    pub tenant_id: String,
    pub channel_id: String,
    pub operation: String,
    pub enabled: bool,
    pub interval_seconds: Option<i32>,
    pub cron_expression: Option<String>,
    pub time_zone: String,
    pub next_due_at: Option<DateTime<Utc>>,
    pub last_fired_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "s.tenant_id, s.channel_id, s.operation, s.enabled, s.interval_seconds, s.cron_expression, \
                       s.time_zone, s.next_due_at, s.last_fired_at";

impl Schedule {
    pub fn operation(&self) -> Option<Operation> {
        Operation::parse(&self.operation)
    }

    /// The stored timing (checked when it was set).
    pub fn timing(&self) -> Result<Timing, TimingError> {
        match (self.interval_seconds, &self.cron_expression) {
            (Some(seconds), _) => Timing::interval(u32::try_from(seconds).unwrap_or(0)),
            (None, Some(expression)) => Timing::cron(expression, &self.time_zone),
            (None, None) => Err(TimingError("the schedule has no timing".into())),
        }
    }

    fn same_timing(&self, timing: &Timing) -> bool {
        match timing {
            Timing::Interval { seconds } => {
                self.interval_seconds == i32::try_from(*seconds).ok()
                    && self.cron_expression.is_none()
            }
            Timing::Cron {
                expression,
                time_zone,
                ..
            } => {
                self.interval_seconds.is_none()
                    && self.cron_expression.as_deref() == Some(expression.as_str())
                    && &self.time_zone == time_zone
            }
        }
    }

    /// The API's view: `paused_reason` says why an enabled schedule does not fire, and then `next_due_at` is absent.
    pub fn to_proto(&self, channel: &Channel, available: bool) -> pb::Schedule {
        let operation = self.operation();
        let paused_reason = if !self.enabled {
            None
        } else if !available {
            Some(format!(
                "{} is not available in this deployment",
                operation.map_or_else(|| self.operation.clone(), |op| op.title().to_string())
            ))
        } else {
            channel.blocked_reason()
        };
        let timing = match (self.interval_seconds, &self.cron_expression) {
            (Some(seconds), _) => Some(pb::schedule::Timing::IntervalSeconds(
                u32::try_from(seconds).unwrap_or(0),
            )),
            (None, Some(expression)) => Some(pb::schedule::Timing::Cron(pb::Cron {
                expression: expression.clone(),
                time_zone: self.time_zone.clone(),
            })),
            (None, None) => None,
        };
        pb::Schedule {
            channel_id: self.channel_id.clone(),
            operation: operation.map_or(0, |op| op.to_proto() as i32),
            enabled: self.enabled,
            timing,
            next_due_at: if self.enabled && paused_reason.is_none() {
                self.next_due_at.map(convert::timestamp)
            } else {
                None
            },
            last_fired_at: self.last_fired_at.map(convert::timestamp),
            paused_reason: paused_reason.unwrap_or_default(),
        }
    }
}

/// Creates or replaces the schedule of (channel, operation). An unchanged timing keeps its next due time; a new
/// timing, or enabling, starts from the first due time after `now`.
pub async fn set(
    pool: &PgPool,
    channel: &Channel,
    operation: Operation,
    enabled: bool,
    timing: &Timing,
    now: DateTime<Utc>,
) -> Result<Schedule, ApiError> {
    let mut tx = pool.begin().await?;
    let existing = get_in(
        &mut *tx,
        &channel.tenant_id,
        &channel.channel_id,
        operation,
        true,
    )
    .await?;
    let next_due_at = match &existing {
        _ if !enabled => None,
        Some(old) if old.enabled && old.same_timing(timing) && old.next_due_at.is_some() => {
            old.next_due_at
        }
        _ => timing.first_due(now),
    };
    let (interval, cron, zone) = match timing {
        Timing::Interval { seconds } => (i32::try_from(*seconds).ok(), None, String::new()),
        Timing::Cron {
            expression,
            time_zone,
            ..
        } => (None, Some(expression.clone()), time_zone.clone()),
    };
    sqlx::query(
        "INSERT INTO schedules (tenant_id, channel_id, operation, enabled, interval_seconds, cron_expression,
                                time_zone, next_due_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
         ON CONFLICT (channel_id, operation) DO UPDATE SET
             enabled = EXCLUDED.enabled, interval_seconds = EXCLUDED.interval_seconds,
             cron_expression = EXCLUDED.cron_expression, time_zone = EXCLUDED.time_zone,
             next_due_at = EXCLUDED.next_due_at, updated_at = now()",
    )
    .bind(&channel.tenant_id)
    .bind(&channel.channel_id)
    .bind(operation.as_str())
    .bind(enabled)
    .bind(interval)
    .bind(cron)
    .bind(zone)
    .bind(next_due_at)
    .execute(&mut *tx)
    .await?;
    let saved = get_in(
        &mut *tx,
        &channel.tenant_id,
        &channel.channel_id,
        operation,
        false,
    )
    .await?
    .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("schedule vanished after upsert")))?;
    tx.commit().await?;
    tracing::info!(
        channel_id = %channel.channel_id,
        operation = %operation,
        enabled,
        next_due_at = ?saved.next_due_at,
        "schedule set"
    );
    Ok(saved)
}

pub async fn get(
    pool: &PgPool,
    tenant_id: &str,
    channel_id: &str,
    operation: Operation,
) -> Result<Option<Schedule>, ApiError> {
    Ok(get_in(pool, tenant_id, channel_id, operation, false).await?)
}

async fn get_in(
    db: impl PgExecutor<'_>,
    tenant_id: &str,
    channel_id: &str,
    operation: Operation,
    for_update: bool,
) -> sqlx::Result<Option<Schedule>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    sqlx::query_as::<_, Schedule>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM schedules s
         WHERE s.tenant_id = $1 AND s.channel_id = $2 AND s.operation = $3{lock}"
    )))
    .bind(tenant_id)
    .bind(channel_id)
    .bind(operation.as_str())
    .fetch_optional(db)
    .await
}

/// The tenant's schedules (of one channel, or all), with their channels.
pub async fn list(
    pool: &PgPool,
    tenant_id: &str,
    channel_id: Option<&str>,
) -> Result<Vec<(Schedule, Channel)>, ApiError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        schedule: Schedule,
        shop_domain: String,
        state: String,
        last_error: String,
    }
    let rows = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, c.shop_domain, c.state, c.last_error
         FROM schedules s JOIN channels c ON c.channel_id = s.channel_id AND c.tenant_id = s.tenant_id
         WHERE s.tenant_id = $1 AND ($2::text IS NULL OR s.channel_id = $2)
         ORDER BY s.channel_id, s.operation"
    )))
    .bind(tenant_id)
    .bind(channel_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let channel = Channel {
                channel_id: r.schedule.channel_id.clone(),
                tenant_id: r.schedule.tenant_id.clone(),
                shop_domain: r.shop_domain,
                state: r.state,
                last_error: r.last_error,
            };
            (r.schedule, channel)
        })
        .collect())
}

/// A channel became active again: its enabled schedules continue from their first due time after `now`.
pub async fn resume_channel(
    tx: &mut Transaction<'static, Postgres>,
    channel_id: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<usize> {
    let schedules = sqlx::query_as::<_, Schedule>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM schedules s WHERE s.channel_id = $1 AND s.enabled FOR UPDATE"
    )))
    .bind(channel_id)
    .fetch_all(&mut **tx)
    .await?;
    for schedule in &schedules {
        let Ok(timing) = schedule.timing() else {
            continue;
        };
        sqlx::query(
            "UPDATE schedules SET next_due_at = $3 WHERE channel_id = $1 AND operation = $2",
        )
        .bind(channel_id)
        .bind(&schedule.operation)
        .bind(timing.first_due(now))
        .execute(&mut **tx)
        .await?;
    }
    Ok(schedules.len())
}

/// A schedule due now, with what a run request needs of its channel.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    #[sqlx(flatten)]
    pub schedule: Schedule,
    pub shop_domain: String,
}

/// Enabled schedules of active channels, of the available operations, due at `now`, oldest first.
pub async fn due(
    pool: &PgPool,
    now: DateTime<Utc>,
    operations: &[Operation],
    limit: i64,
) -> sqlx::Result<Vec<Due>> {
    let operations: Vec<&str> = operations.iter().map(|op| op.as_str()).collect();
    sqlx::query_as::<_, Due>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, c.shop_domain
         FROM schedules s JOIN channels c ON c.channel_id = s.channel_id AND c.tenant_id = s.tenant_id
         WHERE s.enabled AND s.next_due_at <= $1 AND c.state = 'ACTIVE' AND s.operation = ANY($2)
         ORDER BY s.next_due_at
         LIMIT $3"
    )))
    .bind(now)
    .bind(&operations)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Moves a schedule past a due time, if it is still at `expected` (compare-and-set: a schedule changed or fired
/// meanwhile is left alone). `false` when it was not.
pub async fn advance(
    tx: &mut Transaction<'static, Postgres>,
    schedule: &Schedule,
    expected: DateTime<Utc>,
    fired_due: DateTime<Utc>,
    next_due: Option<DateTime<Utc>>,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE schedules SET next_due_at = $4, last_fired_at = $5
         WHERE channel_id = $1 AND operation = $2 AND enabled AND next_due_at = $3",
    )
    .bind(&schedule.channel_id)
    .bind(&schedule.operation)
    .bind(expected)
    .bind(next_due)
    .bind(fired_due)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
