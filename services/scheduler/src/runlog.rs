//! Each run's log: entries written for a merchant (level, code, message, entity, action), stored once per
//! (run, key) however often they are reported, and read oldest first a page at a time.

use chrono::{DateTime, Utc};
use shopbridge_platform::error::ApiError;
use shopbridge_proto::runs::{self, LogLevel};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::convert;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    pub id: i64,
    pub key: String,
    pub level: i16,
    pub code: String,
    pub message: String,
    pub entity_kind: String,
    pub entity_value: String,
    pub entity_shopify_id: String,
    pub action: String,
    pub at: DateTime<Utc>,
}

impl Entry {
    pub fn to_proto(&self) -> runs::LogEntry {
        let entity = (!self.entity_kind.is_empty()
            || !self.entity_value.is_empty()
            || !self.entity_shopify_id.is_empty())
        .then(|| runs::Entity {
            kind: self.entity_kind.clone(),
            value: self.entity_value.clone(),
            shopify_id: self.entity_shopify_id.clone(),
        });
        runs::LogEntry {
            key: self.key.clone(),
            level: i32::from(self.level),
            code: self.code.clone(),
            message: self.message.clone(),
            entity,
            action: self.action.clone(),
            at: Some(convert::timestamp(self.at)),
        }
    }
}

/// The stored level of a reported one (unspecified is informational).
fn level(entry: &runs::LogEntry) -> i16 {
    match LogLevel::try_from(entry.level) {
        Ok(LogLevel::Warning) => 2,
        Ok(LogLevel::Error) => 3,
        _ => 1,
    }
}

/// An entry's key. The contract requires one; an owner that sends none still gets each entry stored once, keyed by
/// its content, which is the same on every redelivery.
fn key(entry: &runs::LogEntry) -> String {
    if !entry.key.trim().is_empty() {
        return entry.key.clone();
    }
    let entity = entry.entity.clone().unwrap_or_default();
    format!(
        "{}:{}:{}:{}",
        entry.code, entity.kind, entity.value, entry.message
    )
}

/// Stores the entries not stored yet; returns how many new ones there are at (warning, error) level.
pub async fn append(
    tx: &mut Transaction<'static, Postgres>,
    run_id: Uuid,
    entries: &[runs::LogEntry],
    received_at: DateTime<Utc>,
) -> sqlx::Result<(i64, i64)> {
    if entries.is_empty() {
        return Ok((0, 0));
    }
    let mut keys = Vec::new();
    let mut levels = Vec::new();
    let mut codes = Vec::new();
    let mut messages = Vec::new();
    let mut kinds = Vec::new();
    let mut values = Vec::new();
    let mut shopify_ids = Vec::new();
    let mut actions = Vec::new();
    let mut ats = Vec::new();
    for entry in entries {
        let entity = entry.entity.clone().unwrap_or_default();
        keys.push(key(entry));
        levels.push(level(entry));
        codes.push(entry.code.clone());
        messages.push(entry.message.clone());
        kinds.push(entity.kind);
        values.push(entity.value);
        shopify_ids.push(entity.shopify_id);
        actions.push(entry.action.clone());
        ats.push(
            entry
                .at
                .as_ref()
                .and_then(convert::from_timestamp)
                .unwrap_or(received_at),
        );
    }
    let inserted: Vec<i16> = sqlx::query_scalar(
        "INSERT INTO run_log (run_id, key, level, code, message, entity_kind, entity_value, entity_shopify_id,
                              action, at)
         SELECT $1, * FROM UNNEST($2::text[], $3::int2[], $4::text[], $5::text[], $6::text[], $7::text[],
                                  $8::text[], $9::text[], $10::timestamptz[])
         ON CONFLICT (run_id, key) DO NOTHING
         RETURNING level",
    )
    .bind(run_id)
    .bind(&keys)
    .bind(&levels)
    .bind(&codes)
    .bind(&messages)
    .bind(&kinds)
    .bind(&values)
    .bind(&shopify_ids)
    .bind(&actions)
    .bind(&ats)
    .fetch_all(&mut **tx)
    .await?;
    let warnings = inserted.iter().filter(|l| **l == 2).count() as i64;
    let errors = inserted.iter().filter(|l| **l == 3).count() as i64;
    Ok((warnings, errors))
}

/// One page of a run's log at or above `min_level`, oldest first, and the token of the next page.
pub async fn page(
    pool: &PgPool,
    run_id: Uuid,
    min_level: LogLevel,
    after: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> Result<(Vec<Entry>, Option<String>), ApiError> {
    let min_level: i16 = match min_level {
        LogLevel::Unspecified | LogLevel::Info => 1,
        LogLevel::Warning => 2,
        LogLevel::Error => 3,
    };
    let mut entries = sqlx::query_as::<_, Entry>(
        "SELECT id, key, level, code, message, entity_kind, entity_value, entity_shopify_id, action, at
         FROM run_log
         WHERE run_id = $1 AND level >= $2
           AND ($3::timestamptz IS NULL OR (at, id) > ($3, $4))
         ORDER BY at, id
         LIMIT $5",
    )
    .bind(run_id)
    .bind(min_level)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let next = if entries.len() as i64 > limit {
        entries.truncate(usize::try_from(limit).unwrap_or(0));
        entries.last().map(|e| convert::page_token(e.at, e.id))
    } else {
        None
    };
    Ok((entries, next))
}
