//! The bus side of Import Listings: run requests and cancellations from the scheduler (`listings-runs`), and the
//! gateway's catalog batches and command results (`listings-gateway`). Each message is applied in the consumer's
//! transaction with its inbox row, so a redelivery has no second effect; anything not ours is acknowledged and
//! ignored (other operations, other services' commands).

use std::sync::Arc;

use prost::Name;
use shopbridge_platform::bus::{Decode, Envelope, Handler, HandlerError, envelope::DecodeError};
use shopbridge_proto::{common::Operation, gateway as gw, runs as pb};
use sqlx::{Postgres, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

use super::{
    reports::RunRef,
    runs::{self, Requested, State},
};

fn decode<M: prost::Message + Name + Default>(payload: &[u8]) -> Result<M, DecodeError> {
    M::decode(payload).map_err(|source| DecodeError::Payload {
        type_name: M::full_name(),
        source,
    })
}

fn retry(e: sqlx::Error) -> HandlerError {
    HandlerError::Retry(e.into())
}

fn reject(message: String) -> HandlerError {
    HandlerError::Reject(anyhow::anyhow!(message))
}

fn uuid(what: &str, text: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(text).map_err(|_| reject(format!("{what} `{text}` is not a UUID")))
}

fn run_ref(run_id: &str, tenant_id: &str, channel_id: &str) -> Result<RunRef, HandlerError> {
    Ok(RunRef {
        run_id: uuid("run_id", run_id)?,
        tenant_id: uuid("tenant_id", tenant_id)?,
        channel_id: uuid("channel_id", channel_id)?,
    })
}

/// What `listings-runs` delivers.
#[derive(Debug)]
pub enum RunMessage {
    Requested(pb::RunRequested),
    Cancel(pb::RunCancelRequested),
}

impl Decode for RunMessage {
    fn decode(type_name: &str, payload: &[u8]) -> Result<Self, DecodeError> {
        if type_name == pb::RunRequested::full_name() {
            decode(payload).map(Self::Requested)
        } else if type_name == pb::RunCancelRequested::full_name() {
            decode(payload).map(Self::Cancel)
        } else {
            Err(DecodeError::UnexpectedType(type_name.to_string()))
        }
    }
}

pub struct RunsHandler;

impl Handler for RunsHandler {
    type Message = RunMessage;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<RunMessage>,
    ) -> Result<(), HandlerError> {
        let ours = |operation: i32| operation == Operation::ImportListings as i32;
        match &event.message {
            RunMessage::Requested(request) if ours(request.operation) => {
                let run = run_ref(&request.run_id, &request.tenant_id, &request.channel_id)?;
                let shop_domain = request.shop_domain.trim().to_ascii_lowercase();
                if shop_domain.is_empty() {
                    return Err(reject(format!("run {} names no shop_domain", run.run_id)));
                }
                runs::request(tx, &Requested { run, shop_domain })
                    .await
                    .map_err(retry)
            }
            RunMessage::Cancel(cancel) if ours(cancel.operation) => {
                let run = run_ref(&cancel.run_id, &cancel.tenant_id, &cancel.channel_id)?;
                runs::cancel(tx, &run).await.map_err(retry)
            }
            // Orders' operations and the others listings does not own.
            _ => Ok(()),
        }
    }
}

/// What `listings-gateway` delivers.
#[derive(Debug)]
pub enum GatewayMessage {
    Batch(gw::CatalogBatch),
    Result(gw::CommandResult),
}

impl Decode for GatewayMessage {
    fn decode(type_name: &str, payload: &[u8]) -> Result<Self, DecodeError> {
        if type_name == gw::CatalogBatch::full_name() {
            decode(payload).map(Self::Batch)
        } else if type_name == gw::CommandResult::full_name() {
            decode(payload).map(Self::Result)
        } else {
            Err(DecodeError::UnexpectedType(type_name.to_string()))
        }
    }
}

pub struct GatewayHandler {
    /// Wakes the applier when an export may have become complete.
    pub wake: Arc<Notify>,
}

impl Handler for GatewayHandler {
    type Message = GatewayMessage;

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Envelope<GatewayMessage>,
    ) -> Result<(), HandlerError> {
        let command_id = match &event.message {
            GatewayMessage::Batch(batch) => &batch.command_id,
            GatewayMessage::Result(result) => &result.command_id,
        };
        // Results of other services' commands come through the same stream.
        if !command_id.starts_with(runs::COMMAND_PREFIX) {
            return Ok(());
        }
        let Some((run_id, state, field)) = runs::by_command(tx, command_id).await.map_err(retry)?
        else {
            tracing::warn!(%command_id, "catalog export of an unknown run; ignored");
            return Ok(());
        };
        if state == State::Finished {
            tracing::debug!(%run_id, "message for a finished run; ignored");
            return Ok(());
        }
        match &event.message {
            GatewayMessage::Batch(batch) => {
                if batch.seq == 0 || (batch.total_batches > 0 && batch.seq > batch.total_batches) {
                    return Err(reject(format!(
                        "catalog batch seq {} of {} is out of range",
                        batch.seq, batch.total_batches
                    )));
                }
                runs::stage_batch(tx, run_id, field, batch)
                    .await
                    .map_err(retry)?;
            }
            GatewayMessage::Result(result) => {
                runs::record_result(tx, run_id, result)
                    .await
                    .map_err(retry)?;
            }
        }
        // A permit is kept if the applier is busy; it looks again after this transaction commits or polls.
        self.wake.notify_one();
        Ok(())
    }
}
