//! The run reports orders publishes (RunStarted, RunProgress, RunLogged, RunFinished), always through the outbox in
//! the transaction of the change they report, so a report is never lost nor sent for a change that did not commit.

use shopbridge_platform::bus::{EventMeta, OutboxMessage, outbox};
use shopbridge_proto::{common::Operation, runs as pb};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::runs::Counters;

/// Log entries per RunLogged event: a batch with many problems is reported in several events, each well under
/// NATS's 1 MB message limit.
pub const ENTRIES_PER_EVENT: usize = 200;

/// Which run a report is about.
#[derive(Debug, Clone)]
pub struct RunRef {
    pub run_id: Uuid,
    pub tenant_id: Uuid,
    pub channel_id: Uuid,
}

impl RunRef {
    fn meta(&self) -> EventMeta {
        EventMeta::tenant(self.tenant_id.to_string())
            .with_channel(self.channel_id.to_string())
            .with_correlation(self.run_id.to_string())
    }
}

pub fn now() -> prost_types::Timestamp {
    let now = chrono::Utc::now();
    prost_types::Timestamp {
        seconds: now.timestamp(),
        nanos: now.timestamp_subsec_nanos() as i32,
    }
}

pub fn counters(c: &Counters) -> pb::Counters {
    pb::Counters {
        processed: c.processed,
        created: c.created,
        linked: c.linked,
        updated: c.updated,
        skipped: c.skipped,
        failed: c.failed,
    }
}

const OPERATION: Operation = Operation::GetOrders;

pub async fn started(tx: &mut Transaction<'_, Postgres>, run: &RunRef) -> sqlx::Result<()> {
    let event = pb::RunStarted {
        run_id: run.run_id.to_string(),
        tenant_id: run.tenant_id.to_string(),
        channel_id: run.channel_id.to_string(),
        operation: OPERATION as i32,
        started_at: Some(now()),
    };
    outbox::enqueue(tx, OutboxMessage::event(run.meta(), &event)).await?;
    Ok(())
}

pub async fn progress(
    tx: &mut Transaction<'_, Postgres>,
    run: &RunRef,
    seq: u64,
    counters_so_far: &Counters,
    total: u64,
    stage: String,
) -> sqlx::Result<()> {
    let event = pb::RunProgress {
        run_id: run.run_id.to_string(),
        tenant_id: run.tenant_id.to_string(),
        channel_id: run.channel_id.to_string(),
        operation: OPERATION as i32,
        seq,
        counters: Some(counters(counters_so_far)),
        total,
        stage,
        at: Some(now()),
    };
    outbox::enqueue(tx, OutboxMessage::event(run.meta(), &event)).await?;
    Ok(())
}

pub async fn logged(
    tx: &mut Transaction<'_, Postgres>,
    run: &RunRef,
    mut entries: Vec<pb::LogEntry>,
) -> sqlx::Result<()> {
    while !entries.is_empty() {
        let rest = entries.split_off(entries.len().min(ENTRIES_PER_EVENT));
        let event = pb::RunLogged {
            run_id: run.run_id.to_string(),
            tenant_id: run.tenant_id.to_string(),
            channel_id: run.channel_id.to_string(),
            operation: OPERATION as i32,
            entries,
        };
        outbox::enqueue(tx, OutboxMessage::event(run.meta(), &event)).await?;
        entries = rest;
    }
    Ok(())
}

pub async fn finished(
    tx: &mut Transaction<'_, Postgres>,
    run: &RunRef,
    outcome: pb::Outcome,
    counters_at_end: &Counters,
    error: &str,
) -> sqlx::Result<()> {
    let event = pb::RunFinished {
        run_id: run.run_id.to_string(),
        tenant_id: run.tenant_id.to_string(),
        channel_id: run.channel_id.to_string(),
        operation: OPERATION as i32,
        outcome: outcome as i32,
        counters: Some(counters(counters_at_end)),
        error: error.to_string(),
        finished_at: Some(now()),
    };
    outbox::enqueue(tx, OutboxMessage::event(run.meta(), &event)).await?;
    Ok(())
}
