//! The operator's path for dead letters: list them with their reason, and replay one once its cause is fixed
//! (`shopbridge-<service> dead-letters list|replay`). A replay publishes the stored message again on its subject with
//! its stored headers; its first message id goes in `Shopbridge-Replay-Of`, which consumers dedupe on, and JetStream
//! gets a new `Nats-Msg-Id` (`<id>:replay:<dead letter>:<n>`) so it does not drop the replay as a duplicate. The
//! consumer that gave up on the message never recorded it in its inbox, so it applies it; every other consumer of the
//! subject finds the id in its inbox and does nothing (as long as the inbox keeps it, `retention.inbox_days`).

use async_nats::{HeaderMap, jetstream};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::{envelope::headers as header_names, names::Namespace};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadLetterRow {
    pub id: i64,
    pub consumer: String,
    pub subject: String,
    pub message_id: Option<String>,
    pub type_name: Option<String>,
    pub reason: String,
    pub deliveries: i64,
    pub recorded_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
}

/// The newest dead letters first, of one consumer or all.
pub async fn list(
    pool: &PgPool,
    consumer: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<DeadLetterRow>> {
    sqlx::query_as(
        "SELECT id, consumer, subject, message_id, type_name, reason, deliveries, recorded_at, replayed_at
         FROM dead_letters WHERE ($1::text IS NULL OR consumer = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(consumer)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// subject, headers, payload, replayed_at
type StoredLetter = (String, serde_json::Value, Vec<u8>, Option<DateTime<Utc>>);

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no dead letter {0}; list them with `dead-letters list`")]
    NotFound(i64),
    #[error("dead letter {id} was replayed at {at}; pass --again to replay it once more")]
    AlreadyReplayed { id: i64, at: DateTime<Utc> },
    #[error("publishing dead letter {id} on {subject} failed: {reason}")]
    Publish {
        id: i64,
        subject: String,
        reason: String,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Publishes a dead letter again on its subject and records when; returns the JetStream sequence it got (`None` if
/// JetStream still took it for a duplicate).
pub async fn replay(
    pool: &PgPool,
    js: &jetstream::Context,
    namespace: &Namespace,
    id: i64,
    again: bool,
) -> Result<Option<u64>, ReplayError> {
    let row: Option<StoredLetter> = sqlx::query_as(
        "SELECT subject, headers, payload, replayed_at FROM dead_letters WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let (subject, headers, payload, replayed_at) = row.ok_or(ReplayError::NotFound(id))?;
    if let (Some(at), false) = (replayed_at, again) {
        return Err(ReplayError::AlreadyReplayed { id, at });
    }
    let full = namespace.subject(&subject);
    let publish_error = |reason: String| ReplayError::Publish {
        id,
        subject: full.clone(),
        reason,
    };
    let mut headers = headers_from_json(&headers);
    if let Some(first) = headers
        .get(header_names::REPLAY_OF)
        .or_else(|| headers.get(header_names::MSG_ID))
        .map(|v| v.as_str().to_string())
    {
        let replays: i32 = sqlx::query_scalar(
            "UPDATE dead_letters SET replays = replays + 1 WHERE id = $1 RETURNING replays",
        )
        .bind(id)
        .fetch_one(pool)
        .await?;
        headers.insert(header_names::REPLAY_OF, first.as_str());
        headers.insert(
            header_names::MSG_ID,
            format!("{first}:replay:{id}:{replays}").as_str(),
        );
    }
    let ack = js
        .publish_with_headers(full.clone(), headers, payload.into())
        .await
        .map_err(|e| publish_error(e.to_string()))?
        .await
        .map_err(|e| publish_error(e.to_string()))?;
    sqlx::query("UPDATE dead_letters SET replayed_at = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    tracing::info!(id, subject = %subject, duplicate = ack.duplicate, "dead letter replayed");
    Ok((!ack.duplicate).then_some(ack.sequence))
}

/// The headers as the consumer stored them (`{"name": ["value", ...]}`).
fn headers_from_json(json: &serde_json::Value) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(map) = json.as_object() {
        for (name, values) in map {
            for value in values.as_array().into_iter().flatten() {
                if let Some(value) = value.as_str() {
                    headers.append(name.as_str(), value);
                }
            }
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_headers_come_back_as_they_were_sent() {
        let json = serde_json::json!({"Nats-Msg-Id": ["m-1"], "Shopbridge-Tenant": ["t"], "X": ["a", "b"]});
        let headers = headers_from_json(&json);
        assert_eq!(headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some("m-1"));
        assert_eq!(
            headers
                .get_all("X")
                .map(|v| v.as_str().to_string())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}
