//! Commands from the bus: each `Command` is run through the executor and answered with one `CommandResult` event,
//! written to the outbox in the transaction that records the command as done. A command id seen before (a re-sent
//! command, or one redelivered after a crash) publishes nothing new; its Shopify calls are safe to send again (inventory
//! writes carry `@idempotent` keys derived from the command id, see `idempotency`; the other writes set absolute values
//! or are read back first), so a crash between the calls and the commit never applies a call twice.

use std::{sync::Arc, time::Duration};

use shopbridge_platform::bus::{Envelope, Handler, HandlerError, OutboxMessage, outbox};
use shopbridge_proto::gateway::{self as pb, command_result::Status};
use sqlx::{Postgres, Transaction};

use self::{
    claims::Claims,
    pending::{Pending, Prepared},
    results::{Published, lane, problem},
};
use crate::{
    operations::catalog,
    partitions::in_flight::{InFlight, ReplicaLimit},
    shopify::executor::{Executor, Fence, ShopCredentials},
};

mod claims;
mod dispatch;
mod pending;
mod results;

pub mod credentials;

pub use self::credentials::{ChannelCredentials, CredentialError, CredentialSource};

pub struct CommandHandler {
    pub executor: Arc<Executor>,
    pub credentials: Arc<dyn CredentialSource>,
    /// The gateway's database, for bookkeeping that must commit on its own (bulk operations started).
    pub pool: sqlx::PgPool,
    /// Downloads bulk results (their URLs are Shopify's storage, not the shop's API).
    pub download: reqwest::Client,
    /// The partition leases of this replica: a command for a shop whose partition it no longer holds goes back to
    /// JetStream for the holder. None where one replica runs alone (tests).
    pub fence: Option<crate::partitions::leases::Leases>,
    /// Set with [`CommandHandler::with_settings`]; tests construct handlers with [`CommandHandler::new`] and the
    /// defaults, so a setting added here touches no test.
    settings: CommandSettings,
    /// Commands running per shop and lane (`settings.max_running_per_shop_lane`).
    in_flight: InFlight,
    /// Commands running in this replica (`settings.max_running`).
    replica: ReplicaLimit,
    /// Claims on the commands this replica runs (`command_claims`).
    claims: Claims,
    /// Results run outside the transaction, until it records them.
    pending: Pending,
}

/// The problem of a call that failed only transiently until its deadline (see `results::call_problem`).
const TRANSIENT: &str = "DEADLINE_EXCEEDED";

/// How long a command whose claim another live owner holds (a re-send while the first runs) waits before it looks
/// again.
const CLAIMED_ELSEWHERE: Duration = Duration::from_secs(1);

/// How the handler runs commands (from the `[service]` configuration; see [`CommandSettings::from_service`]).
#[derive(Debug, Clone)]
pub struct CommandSettings {
    /// Commands of one shop on one lane running at once; more are deferred, so a shop's backlog never fills the
    /// consumer's slots that other shops of its partition need (`service.budget.max_in_flight_per_shop`: more
    /// running commands would only queue in the shop's budget). 0 for no limit.
    pub max_running_per_shop_lane: usize,
    /// UpsertProducts and SetMetafields with more items than this go as one bulk mutation
    /// (`service.catalog.bulk_mutation_threshold`).
    pub bulk_mutation_threshold: usize,
    /// The largest JSONL of variables sent as one bulk mutation (`service.catalog.bulk_upload_max_bytes`).
    pub bulk_upload_max_bytes: usize,
    /// Commands running at once in this replica (`service.commands.max_running`); 0 for no bound.
    pub max_running: usize,
    /// A running command's claim whose heartbeat is older than this is taken over by its next delivery
    /// (`service.commands.claim_takeover_secs`); it beats four times as often.
    pub claim_takeover: Duration,
}

impl Default for CommandSettings {
    fn default() -> Self {
        Self {
            max_running_per_shop_lane: crate::shopify::budget::BudgetSettings::default()
                .max_in_flight_per_shop,
            bulk_mutation_threshold: catalog::DEFAULT_BULK_MUTATION_THRESHOLD,
            bulk_upload_max_bytes: catalog::DEFAULT_BULK_UPLOAD_MAX_BYTES,
            max_running: 16,
            claim_takeover: Duration::from_secs(60),
        }
    }
}

impl CommandSettings {
    pub fn from_service(settings: &crate::ServiceSettings) -> Self {
        Self {
            max_running_per_shop_lane: settings.budget.max_in_flight_per_shop,
            bulk_mutation_threshold: settings.catalog.bulk_mutation_threshold.max(1),
            bulk_upload_max_bytes: settings.catalog.bulk_upload_max_bytes.max(1),
            max_running: settings.commands.max_running,
            claim_takeover: Duration::from_secs(settings.commands.claim_takeover_secs.max(1)),
        }
    }
}

impl CommandHandler {
    /// A handler with the default [`CommandSettings`].
    pub fn new(
        executor: Arc<Executor>,
        credentials: Arc<dyn CredentialSource>,
        pool: sqlx::PgPool,
        download: reqwest::Client,
        fence: Option<crate::partitions::leases::Leases>,
    ) -> Self {
        let settings = CommandSettings::default();
        Self {
            executor,
            credentials,
            claims: Claims::new(pool.clone(), settings.claim_takeover),
            pending: Pending::default(),
            pool,
            download,
            fence,
            in_flight: InFlight::new(settings.max_running_per_shop_lane),
            replica: ReplicaLimit::new(settings.max_running),
            settings,
        }
    }

    pub fn with_settings(mut self, settings: CommandSettings) -> Self {
        self.in_flight = InFlight::new(settings.max_running_per_shop_lane);
        self.replica = ReplicaLimit::new(settings.max_running);
        self.claims = Claims::new(self.pool.clone(), settings.claim_takeover);
        self.settings = settings;
        self
    }

    pub fn settings(&self) -> &CommandSettings {
        &self.settings
    }
}

impl Handler for CommandHandler {
    type Message = pb::Command;

    /// Defers a command whose shop is at its limit on the command's lane, or while the replica runs as many commands
    /// as it may, before anything else is done for it.
    fn defer_hint(&self, event: &Envelope<pb::Command>) -> Option<Duration> {
        let command = &event.message;
        if let Some(delay) = self.replica.would_defer(lane(command.lane)) {
            return Some(delay);
        }
        self.in_flight.would_defer(
            &command.shop_domain,
            lane(command.lane),
            &command.command_id,
        )
    }

    /// Runs the command's Shopify calls with no transaction open: the command is claimed first (committed), and its
    /// result kept for `handle`, which records it.
    async fn prepare(&self, event: &Envelope<pb::Command>) -> Result<(), HandlerError> {
        let command = &event.message;
        if command.command_id.is_empty() || command.shop_domain.is_empty() {
            return Err(HandlerError::Reject(anyhow::anyhow!(
                "a command needs command_id and shop_domain"
            )));
        }
        self.check_fence(command)?;
        if self.pending.has(&event.message_id) {
            // Run before, its result not recorded (the transaction could not begin): recorded now.
            return Ok(());
        }
        // The replica's bound first, so a command deferred by it keeps its turn among its shop's commands.
        let _replica_place = self
            .replica
            .try_start(lane(command.lane))
            .map_err(HandlerError::Defer)?;
        // At its shop's limit on this lane, the command steps aside for other shops' commands and comes back in a
        // moment, keeping its turn among its shop's commands (see `in_flight`). The place is held while it runs.
        let _running = self
            .in_flight
            .try_start(
                &command.shop_domain,
                lane(command.lane),
                &command.command_id,
            )
            .map_err(HandlerError::Defer)?;
        let retry = |e: sqlx::Error| HandlerError::Retry(e.into());
        let seen: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT result FROM command_results WHERE command_id = $1")
                .bind(&command.command_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(retry)?;
        if let Some(stored) = seen {
            self.pending
                .put(&event.message_id, Prepared::AnswerAgain(stored));
            return Ok(());
        }
        // Two deliveries of one command (a re-send while the first still runs) take turns: the second waits until
        // the first has recorded its result, then finds it.
        let Some(claim) = self
            .claims
            .claim(&command.command_id)
            .await
            .map_err(retry)?
        else {
            return Err(HandlerError::Defer(CLAIMED_ELSEWHERE));
        };
        match self.answer(command, event.last_delivery).await {
            Ok((result, published)) => {
                let prepared = Prepared::Answer {
                    result: Box::new(result),
                    published,
                    claim,
                };
                self.pending.put(&event.message_id, prepared);
                Ok(())
            }
            // The claim is released as it drops.
            Err(e) => Err(e),
        }
    }

    /// Records the prepared result and publishes it, in the consumer's transaction, if this replica still holds the
    /// shop's partition (a deposed replica never publishes).
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<pb::Command>,
    ) -> Result<(), HandlerError> {
        let command = &event.message;
        let Some(prepared) = self.pending.take(&event.message_id) else {
            return Err(HandlerError::Retry(anyhow::anyhow!(
                "command {} was not prepared in this process",
                command.command_id
            )));
        };
        let (result, published, claim) = match prepared {
            Prepared::AnswerAgain(stored) => return answer_again(tx, event, stored).await,
            Prepared::Answer {
                result,
                published,
                claim,
            } => (*result, published, claim),
        };
        // Deposed meanwhile: the claim is released as it drops, and the holder runs the command.
        self.check_fence(command)?;
        let retry = |e: sqlx::Error| HandlerError::Retry(e.into());
        let status = Status::try_from(result.status).unwrap_or(Status::Unspecified);
        let recorded = sqlx::query(
            "INSERT INTO command_results (command_id, shop_domain, status, calls, result) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (command_id) DO NOTHING",
        )
        .bind(&command.command_id)
        .bind(&command.shop_domain)
        .bind(status.as_str_name())
        .bind(result.calls as i32)
        .bind(prost::Message::encode_to_vec(&result))
        .execute(&mut **tx)
        .await
        .map_err(retry)?;
        claim.finish(tx).await.map_err(retry)?;
        if recorded.rows_affected() == 0 {
            // Another owner (after a takeover) answered it first: its answer stands.
            tracing::info!(command_id = %command.command_id, "command answered by another owner meanwhile; nothing published");
            return Ok(());
        }
        // By value: each event is dropped once encoded, so the decoded and encoded forms of the whole export are
        // never held together.
        for message in published {
            let message = match message {
                Published::Catalog(batch) => OutboxMessage::event(event.meta.clone(), &batch),
                Published::Orders(page) => OutboxMessage::event(event.meta.clone(), &page),
            };
            outbox::enqueue(tx, message).await.map_err(retry)?;
        }
        outbox::enqueue(tx, OutboxMessage::event(event.meta.clone(), &result))
            .await
            .map_err(retry)?;
        tracing::info!(command_id = %command.command_id, status = status.as_str_name(), calls = result.calls, "command done");
        Ok(())
    }
}

impl CommandHandler {
    /// Whether this replica may work on the command: it holds the shop's partition. Not the command's failure when
    /// it does not: it goes back to whoever holds the partition now, uncounted.
    fn check_fence(&self, command: &pb::Command) -> Result<(), HandlerError> {
        match &self.fence {
            Some(fence) if !fence.holds_shop(&command.shop_domain) => {
                Err(HandlerError::Release(anyhow::anyhow!(
                    "this replica no longer holds the partition of {}",
                    command.shop_domain
                )))
            }
            _ => Ok(()),
        }
    }

    /// The command's result (and the events before it), from the channel's credentials and the command's calls.
    async fn answer(
        &self,
        command: &pb::Command,
        last_delivery: bool,
    ) -> Result<(pb::CommandResult, Vec<Published>), HandlerError> {
        let failed = |code: &str, message: String| pb::CommandResult {
            command_id: command.command_id.clone(),
            shop_domain: command.shop_domain.clone(),
            channel_id: command.channel_id.clone(),
            status: Status::Failed as i32,
            problems: vec![problem(code, message)],
            ..Default::default()
        };
        match self.credentials.credentials(&command.channel_id).await {
            // The bus is not trusted with where a token goes: the shop is the channel's, as auth says.
            Ok(channel) if channel.shop_domain != command.shop_domain => {
                tracing::warn!(
                    command_id = %command.command_id,
                    channel_id = %command.channel_id,
                    command_shop = %command.shop_domain,
                    channel_shop = %channel.shop_domain,
                    "a command names another shop than its channel's; refused, nothing sent"
                );
                let message = format!(
                    "channel {} belongs to shop {}, not {}: nothing was sent",
                    command.channel_id, channel.shop_domain, command.shop_domain
                );
                Ok((failed("SHOP_MISMATCH", message), Vec::new()))
            }
            Ok(channel) => {
                // Checked before each call: a replica deposed while the command runs stops calling the shop.
                let fence = self.fence.clone().map(|leases| {
                    let shop = channel.shop_domain.clone();
                    Arc::new(move || leases.holds_shop(&shop)) as Fence
                });
                let shop = ShopCredentials {
                    domain: channel.shop_domain,
                    token: channel.token,
                    fence,
                };
                let answer = self
                    .run(command, &shop, last_delivery)
                    .await
                    .map_err(|why| HandlerError::Retry(anyhow::anyhow!(why)))?;
                // Shopify unreachable (every problem a call that kept failing transiently until its deadline): not
                // an answer, just not now. The command comes back with the consumer's backoff and runs again (its
                // calls are safe to repeat); only on its last delivery is it answered FAILED.
                let problems = &answer.0.problems;
                let unreachable =
                    !problems.is_empty() && problems.iter().all(|p| p.code == TRANSIENT);
                if unreachable && !last_delivery {
                    return Err(HandlerError::Retry(anyhow::anyhow!(
                        "Shopify did not answer {} for command {}: {}",
                        command.shop_domain,
                        command.command_id,
                        problems[0].message
                    )));
                }
                // Deposed midway: the calls it made are safe to repeat, and the holder of the partition answers.
                if answer.0.problems.iter().any(|p| p.code == "DEPOSED") {
                    return Err(HandlerError::Release(anyhow::anyhow!(
                        "this replica lost the partition of {} while running command {}",
                        command.shop_domain,
                        command.command_id
                    )));
                }
                Ok(answer)
            }
            Err(CredentialError::Unavailable(e)) => Err(HandlerError::Retry(anyhow::anyhow!(e))),
            Err(e @ CredentialError::NotFound(_)) => {
                Ok((failed("NO_CREDENTIALS", e.to_string()), Vec::new()))
            }
        }
    }
}

/// A command answered before (re-sent by its sender, or redelivered after the answer committed): runs nothing and
/// publishes its stored result again, so a sender that lost the answer gets it.
async fn answer_again(
    tx: &mut Transaction<'static, Postgres>,
    event: &Envelope<pb::Command>,
    stored: Option<Vec<u8>>,
) -> Result<(), HandlerError> {
    let command_id = &event.message.command_id;
    let Some(stored) = stored else {
        tracing::info!(%command_id, "command answered before results were kept; not running it again");
        return Ok(());
    };
    let result = <pb::CommandResult as prost::Message>::decode(stored.as_slice())
        .map_err(|e| HandlerError::Reject(anyhow::anyhow!("stored result of {command_id}: {e}")))?;
    outbox::enqueue(tx, OutboxMessage::event(event.meta.clone(), &result))
        .await
        .map_err(|e| HandlerError::Retry(e.into()))?;
    tracing::info!(%command_id, "command already answered; its result sent again, nothing run");
    Ok(())
}
