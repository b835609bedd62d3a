//! The channels the scheduler knows, from auth's `ChannelStateChanged` events (consumer `scheduler-channels`): their
//! tenant (every API call is checked against it), their shop (run requests carry it) and their state (schedules of a
//! channel that is not active pause; reconnecting resumes them from the next due time, without a catch-up burst).

use chrono::{DateTime, Utc};
use shopbridge_platform::{
    bus::{Envelope, Handler, HandlerError},
    error::ApiError,
};
use shopbridge_proto::auth::ChannelStateChanged;
use sqlx::{PgExecutor, Postgres, Transaction};

use crate::{convert, domain::ChannelState, schedules};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Channel {
    pub channel_id: String,
    pub tenant_id: String,
    pub shop_domain: String,
    pub state: String,
    pub last_error: String,
}

impl Channel {
    pub fn state(&self) -> ChannelState {
        ChannelState::parse(&self.state)
    }

    /// Why operations cannot run on it now (`None` when they can).
    pub fn blocked_reason(&self) -> Option<String> {
        self.state().blocked_reason(&self.last_error)
    }

    /// FAILED_PRECONDITION unless operations may run on it.
    pub fn require_active(&self) -> Result<(), ApiError> {
        match self.blocked_reason() {
            None => Ok(()),
            Some(reason) => Err(ApiError::FailedPrecondition(format!(
                "channel {} cannot run operations: {reason}; connect the channel first (`shopbridge channels connect`)",
                self.channel_id
            ))),
        }
    }
}

/// The caller's channel, or NOT_FOUND (also for another tenant's channel: its existence is not revealed).
pub async fn require(
    db: impl PgExecutor<'_>,
    tenant_id: &str,
    channel_id: &str,
) -> Result<Channel, ApiError> {
    let channel_id = channel_id.trim();
    if channel_id.is_empty() {
        return Err(ApiError::InvalidArgument("channel_id is required".into()));
    }
    sqlx::query_as::<_, Channel>(
        "SELECT channel_id, tenant_id, shop_domain, state, last_error FROM channels
         WHERE channel_id = $1 AND tenant_id = $2",
    )
    .bind(channel_id)
    .bind(tenant_id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| not_found(channel_id))
}

pub fn not_found(channel_id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "channel {channel_id} not found; list channels with `shopbridge channels list`"
    ))
}

/// Applies auth's channel state changes.
pub struct ChannelHandler;

impl Handler for ChannelHandler {
    type Message = ChannelStateChanged;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<ChannelStateChanged>,
    ) -> Result<(), HandlerError> {
        apply(tx, &event.message, Utc::now()).await
    }
}

/// Records one state change; a change older than the one stored is ignored (events may arrive out of order).
pub async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    change: &ChannelStateChanged,
    now: DateTime<Utc>,
) -> Result<(), HandlerError> {
    let reject = |m: String| HandlerError::Reject(anyhow::anyhow!(m));
    let retry = |e: sqlx::Error| HandlerError::Retry(e.into());
    if change.tenant_id.trim().is_empty() || change.channel_id.trim().is_empty() {
        return Err(reject(
            "ChannelStateChanged without tenant_id or channel_id".into(),
        ));
    }
    let state = ChannelState::from_proto(change.state);
    let changed_at = change
        .changed_at
        .as_ref()
        .and_then(convert::from_timestamp)
        .unwrap_or(now);
    let previous: Option<(String, String)> =
        sqlx::query_as("SELECT tenant_id, state FROM channels WHERE channel_id = $1 FOR UPDATE")
            .bind(&change.channel_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(retry)?;
    if let Some((tenant, _)) = &previous
        && tenant != &change.tenant_id
    {
        return Err(reject(format!(
            "channel {} belongs to another tenant than the event names",
            change.channel_id
        )));
    }
    let applied = sqlx::query(
        "INSERT INTO channels (channel_id, tenant_id, shop_domain, state, last_error, changed_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (channel_id) DO UPDATE SET
             shop_domain = CASE WHEN EXCLUDED.shop_domain = '' THEN channels.shop_domain
                                ELSE EXCLUDED.shop_domain END,
             state = EXCLUDED.state,
             last_error = EXCLUDED.last_error,
             changed_at = EXCLUDED.changed_at
         WHERE channels.changed_at <= EXCLUDED.changed_at",
    )
    .bind(&change.channel_id)
    .bind(&change.tenant_id)
    .bind(change.shop_domain.trim())
    .bind(state.as_str())
    .bind(&change.last_error)
    .bind(changed_at)
    .execute(&mut **tx)
    .await
    .map_err(retry)?
    .rows_affected();
    if applied == 0 {
        tracing::debug!(channel_id = %change.channel_id, "older channel state ignored");
        return Ok(());
    }
    let was_active = previous.is_some_and(|(_, s)| ChannelState::parse(&s) == ChannelState::Active);
    if state == ChannelState::Active && !was_active {
        // Due times that passed while the channel was paused are not owed: resume from the next one.
        let resumed = schedules::resume_channel(tx, &change.channel_id, now)
            .await
            .map_err(retry)?;
        tracing::info!(channel_id = %change.channel_id, schedules = resumed, "channel active; schedules resume");
    } else if state != ChannelState::Active && was_active {
        tracing::info!(channel_id = %change.channel_id, state = state.as_str(), "channel not active; its schedules pause");
    }
    Ok(())
}
