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

pub async fn dead_letter(pool: &sqlx::PgPool, letter: DeadLetter<'_>) -> sqlx::Result<()> {
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
    .execute(pool)
    .await?;
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
