//! The names the CLI uses for protobuf enums, on the command line and in its output (kebab-case operations as the
//! issue spells them, lower-case statuses and levels). Unknown values from a newer server print as `unknown(N)`
//! rather than failing.

use shopbridge_proto::{common::Operation, runs, scheduler::RunStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OperationArg {
    ImportListings,
    SyncListings,
    PublishListings,
    GetOrders,
    SyncOrders,
}

impl OperationArg {
    pub fn proto(self) -> Operation {
        match self {
            Self::ImportListings => Operation::ImportListings,
            Self::SyncListings => Operation::SyncListings,
            Self::PublishListings => Operation::PublishListings,
            Self::GetOrders => Operation::GetOrders,
            Self::SyncOrders => Operation::SyncOrders,
        }
    }

    pub fn name(self) -> &'static str {
        operation_name(self.proto() as i32)
    }
}

pub fn operation_name(value: i32) -> &'static str {
    match Operation::try_from(value) {
        Ok(Operation::ImportListings) => "import-listings",
        Ok(Operation::SyncListings) => "sync-listings",
        Ok(Operation::PublishListings) => "publish-listings",
        Ok(Operation::GetOrders) => "get-orders",
        Ok(Operation::SyncOrders) => "sync-orders",
        _ => "unknown",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusArg {
    Requested,
    Running,
    Cancelling,
    Succeeded,
    Partial,
    Failed,
    Cancelled,
    Skipped,
}

impl StatusArg {
    pub fn proto(self) -> RunStatus {
        match self {
            Self::Requested => RunStatus::Requested,
            Self::Running => RunStatus::Running,
            Self::Cancelling => RunStatus::Cancelling,
            Self::Succeeded => RunStatus::Succeeded,
            Self::Partial => RunStatus::Partial,
            Self::Failed => RunStatus::Failed,
            Self::Cancelled => RunStatus::Cancelled,
            Self::Skipped => RunStatus::Skipped,
        }
    }
}

pub fn status_name(value: i32) -> String {
    let name = match RunStatus::try_from(value) {
        Ok(RunStatus::Requested) => "requested",
        Ok(RunStatus::Running) => "running",
        Ok(RunStatus::Cancelling) => "cancelling",
        Ok(RunStatus::Succeeded) => "succeeded",
        Ok(RunStatus::Partial) => "partial",
        Ok(RunStatus::Failed) => "failed",
        Ok(RunStatus::Cancelled) => "cancelled",
        Ok(RunStatus::Skipped) => "skipped",
        _ => return format!("unknown({value})"),
    };
    name.into()
}

/// Whether a run in this status will not change any more.
pub fn is_final(value: i32) -> bool {
    matches!(
        RunStatus::try_from(value),
        Ok(RunStatus::Succeeded
            | RunStatus::Partial
            | RunStatus::Failed
            | RunStatus::Cancelled
            | RunStatus::Skipped)
    )
}

pub fn trigger_name(value: i32) -> String {
    let name = match runs::Trigger::try_from(value) {
        Ok(runs::Trigger::Manual) => "manual",
        Ok(runs::Trigger::Scheduled) => "scheduled",
        Ok(runs::Trigger::CatchUp) => "catch-up",
        _ => return format!("unknown({value})"),
    };
    name.into()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LevelArg {
    Info,
    Warning,
    Error,
}

impl LevelArg {
    pub fn proto(self) -> runs::LogLevel {
        match self {
            Self::Info => runs::LogLevel::Info,
            Self::Warning => runs::LogLevel::Warning,
            Self::Error => runs::LogLevel::Error,
        }
    }
}

pub fn level_name(value: i32) -> String {
    let name = match runs::LogLevel::try_from(value) {
        Ok(runs::LogLevel::Info) => "info",
        Ok(runs::LogLevel::Warning) => "warning",
        Ok(runs::LogLevel::Error) => "error",
        _ => return format!("unknown({value})"),
    };
    name.into()
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn operation_names_round_trip_with_the_command_line() {
        for op in OperationArg::value_variants() {
            let arg = op.to_possible_value().unwrap();
            assert_eq!(arg.get_name(), op.name());
        }
    }

    #[test]
    fn status_names_match_the_command_line() {
        for status in StatusArg::value_variants() {
            let arg = status.to_possible_value().unwrap();
            assert_eq!(arg.get_name(), status_name(status.proto() as i32));
        }
    }
}
