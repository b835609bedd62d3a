//! The inbox: a consumer records each message id in the same transaction as the message's effect, so a redelivered
//! message (JetStream redelivers until acked) finds its id and has no second effect.

use sqlx::{Postgres, Transaction};

/// Records `message_id` for `consumer`; `false` means it was already applied and the caller must skip the effect.
pub async fn record(
    tx: &mut Transaction<'_, Postgres>,
    consumer: &str,
    message_id: &str,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(message_id)
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// A message given up on: undecodable, rejected by its handler, or still failing after the last allowed delivery.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub consumer: &'a str,
    pub subject: &'a str,
    pub message_id: Option<&'a str>,
    pub type_name: Option<&'a str>,
    pub headers: serde_json::Value,
    pub payload: &'a [u8],
    pub reason: String,
    pub deliveries: i64,
}

/// Records a dead letter and forgets the message's failures, in one transaction.
pub async fn dead_letter(pool: &sqlx::PgPool, letter: DeadLetter<'_>) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO dead_letters (consumer, subject, message_id, type_name, headers, payload, reason, deliveries)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(letter.consumer)
    .bind(letter.subject)
    .bind(letter.message_id)
    .bind(letter.type_name)
    .bind(letter.headers)
    .bind(letter.payload)
    .bind(&letter.reason)
    .bind(letter.deliveries)
    .execute(&mut *tx)
    .await?;
    if let Some(message_id) = letter.message_id {
        clear_failures(&mut *tx, letter.consumer, message_id).await?;
    }
    tx.commit().await?;
    metrics::counter!("bus_dead_letters_total", "consumer" => letter.consumer.to_string())
        .increment(1);
    tracing::error!(
        consumer = letter.consumer,
        subject = letter.subject,
        message_id = letter.message_id.unwrap_or("-"),
        deliveries = letter.deliveries,
        reason = %letter.reason,
        "message dead-lettered"
    );
    Ok(())
}

/// Real failures recorded so far for these messages of `consumer` (absent: none).
pub async fn failures(
    pool: &sqlx::PgPool,
    consumer: &str,
    message_ids: &[String],
) -> sqlx::Result<std::collections::HashMap<String, u32>> {
    let rows: Vec<(String, i32)> = sqlx::query_as(
        "SELECT message_id, failures FROM consumer_failures WHERE consumer = $1 AND message_id = ANY($2)",
    )
    .bind(consumer)
    .bind(message_ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, n)| (id, u32::try_from(n).unwrap_or(0)))
        .collect())
}

/// Counts one more real failure of a message; returns how many it has had.
pub async fn record_failure(
    pool: &sqlx::PgPool,
    consumer: &str,
    message_id: &str,
    error: &str,
) -> sqlx::Result<u32> {
    let failures: i32 = sqlx::query_scalar(
        "INSERT INTO consumer_failures (consumer, message_id, failures, last_error) VALUES ($1, $2, 1, $3)
         ON CONFLICT (consumer, message_id) DO UPDATE
             SET failures = consumer_failures.failures + 1, last_error = EXCLUDED.last_error, updated_at = now()
         RETURNING failures",
    )
    .bind(consumer)
    .bind(message_id)
    .bind(error)
    .fetch_one(pool)
    .await?;
    Ok(u32::try_from(failures).unwrap_or(0))
}

/// Forgets a message's failures (it was applied or dead-lettered).
pub async fn clear_failures(
    db: impl sqlx::PgExecutor<'_>,
    consumer: &str,
    message_id: &str,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM consumer_failures WHERE consumer = $1 AND message_id = $2")
        .bind(consumer)
        .bind(message_id)
        .execute(db)
        .await?;
    Ok(())
}
