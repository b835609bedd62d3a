//! The scheduler's metrics (Prometheus, on the HTTP port's /metrics).

use crate::domain::{Operation, RunStatus, Trigger};

/// A run was requested (published to its owner).
pub fn run_requested(operation: Operation, trigger: Trigger) {
    metrics::counter!(
        "scheduler_runs_requested_total",
        "operation" => operation.as_str(),
        "trigger" => trigger.as_str()
    )
    .increment(1);
}

/// A run reached a final status (reported by its owner, cancelled before it started, or failed unstarted).
pub fn run_finished(operation: Operation, status: RunStatus) {
    metrics::counter!(
        "scheduler_runs_finished_total",
        "operation" => operation.as_str(),
        "status" => status.as_str()
    )
    .increment(1);
}

/// A due time found a run of its (channel, operation) in progress and was recorded as skipped.
pub fn fire_skipped(operation: Operation) {
    metrics::counter!("scheduler_fires_skipped_total", "operation" => operation.as_str())
        .increment(1);
}

/// 1 while this replica holds the leader lease (and so fires schedules), else 0.
pub fn leader(is_leader: bool) {
    metrics::gauge!("scheduler_leader").set(if is_leader { 1.0 } else { 0.0 });
}
