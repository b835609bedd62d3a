//! The scheduler's vocabulary: operations, run statuses, triggers and channel states, with their names in the
//! database (upper-case words) and their protobuf enums. Conversions from protobuf happen once, here.

use std::fmt;

use shopbridge_platform::error::ApiError;
use shopbridge_proto::{auth::ChannelState as PbChannelState, common, runs, scheduler as pb};

/// A channel operation of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    ImportListings,
    SyncListings,
    PublishListings,
    GetOrders,
    SyncOrders,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::ImportListings,
        Operation::SyncListings,
        Operation::PublishListings,
        Operation::GetOrders,
        Operation::SyncOrders,
    ];

    /// The name in the database, the configuration and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::ImportListings => "IMPORT_LISTINGS",
            Operation::SyncListings => "SYNC_LISTINGS",
            Operation::PublishListings => "PUBLISH_LISTINGS",
            Operation::GetOrders => "GET_ORDERS",
            Operation::SyncOrders => "SYNC_ORDERS",
        }
    }

    /// The spec's name, for messages a merchant reads.
    pub fn title(self) -> &'static str {
        match self {
            Operation::ImportListings => "Import Listings",
            Operation::SyncListings => "Sync & Link Listings",
            Operation::PublishListings => "Publish Listings",
            Operation::GetOrders => "Get Orders",
            Operation::SyncOrders => "Sync Orders",
        }
    }

    /// The service that runs it (architecture.md).
    pub fn owner(self) -> &'static str {
        match self {
            Operation::ImportListings | Operation::SyncListings | Operation::PublishListings => {
                "listings"
            }
            Operation::GetOrders | Operation::SyncOrders => "orders",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_uppercase();
        let name = name.strip_prefix("OPERATION_").unwrap_or(&name);
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    pub fn to_proto(self) -> common::Operation {
        match self {
            Operation::ImportListings => common::Operation::ImportListings,
            Operation::SyncListings => common::Operation::SyncListings,
            Operation::PublishListings => common::Operation::PublishListings,
            Operation::GetOrders => common::Operation::GetOrders,
            Operation::SyncOrders => common::Operation::SyncOrders,
        }
    }

    /// The operation of a request field; unspecified or unknown is INVALID_ARGUMENT.
    pub fn from_proto(value: i32) -> Result<Self, ApiError> {
        match common::Operation::try_from(value) {
            Ok(common::Operation::ImportListings) => Ok(Operation::ImportListings),
            Ok(common::Operation::SyncListings) => Ok(Operation::SyncListings),
            Ok(common::Operation::PublishListings) => Ok(Operation::PublishListings),
            Ok(common::Operation::GetOrders) => Ok(Operation::GetOrders),
            Ok(common::Operation::SyncOrders) => Ok(Operation::SyncOrders),
            Ok(common::Operation::Unspecified) | Err(_) => Err(ApiError::InvalidArgument(format!(
                "operation is required: one of {}",
                Self::names()
            ))),
        }
    }

    pub fn names() -> String {
        Self::ALL.map(Operation::as_str).join(", ")
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a run is in its life. REQUESTED, RUNNING and CANCELLING are "in progress"; the rest are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Requested,
    Running,
    Cancelling,
    Succeeded,
    Partial,
    Failed,
    Cancelled,
    Skipped,
}

impl RunStatus {
    pub const ALL: [RunStatus; 8] = [
        RunStatus::Requested,
        RunStatus::Running,
        RunStatus::Cancelling,
        RunStatus::Succeeded,
        RunStatus::Partial,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Requested => "REQUESTED",
            RunStatus::Running => "RUNNING",
            RunStatus::Cancelling => "CANCELLING",
            RunStatus::Succeeded => "SUCCEEDED",
            RunStatus::Partial => "PARTIAL",
            RunStatus::Failed => "FAILED",
            RunStatus::Cancelled => "CANCELLED",
            RunStatus::Skipped => "SKIPPED",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn is_final(self) -> bool {
        !matches!(
            self,
            RunStatus::Requested | RunStatus::Running | RunStatus::Cancelling
        )
    }

    pub fn to_proto(self) -> pb::RunStatus {
        match self {
            RunStatus::Requested => pb::RunStatus::Requested,
            RunStatus::Running => pb::RunStatus::Running,
            RunStatus::Cancelling => pb::RunStatus::Cancelling,
            RunStatus::Succeeded => pb::RunStatus::Succeeded,
            RunStatus::Partial => pb::RunStatus::Partial,
            RunStatus::Failed => pb::RunStatus::Failed,
            RunStatus::Cancelled => pb::RunStatus::Cancelled,
            RunStatus::Skipped => pb::RunStatus::Skipped,
        }
    }

    pub fn from_proto(value: i32) -> Result<Self, ApiError> {
        let status = pb::RunStatus::try_from(value).ok();
        Self::ALL
            .into_iter()
            .find(|s| Some(s.to_proto()) == status)
            .ok_or_else(|| {
                ApiError::InvalidArgument(format!("unknown run status {value} in `statuses`"))
            })
    }

    /// The final status an owner's outcome stands for.
    pub fn from_outcome(outcome: runs::Outcome) -> Option<Self> {
        match outcome {
            runs::Outcome::Succeeded => Some(RunStatus::Succeeded),
            runs::Outcome::Partial => Some(RunStatus::Partial),
            runs::Outcome::Failed => Some(RunStatus::Failed),
            runs::Outcome::Cancelled => Some(RunStatus::Cancelled),
            runs::Outcome::Unspecified => None,
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The statuses of a run in progress, as the database names them.
pub const IN_PROGRESS: [&str; 3] = ["REQUESTED", "RUNNING", "CANCELLING"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Manual,
    Scheduled,
    CatchUp,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "MANUAL",
            Trigger::Scheduled => "SCHEDULED",
            Trigger::CatchUp => "CATCH_UP",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Trigger::Manual, Trigger::Scheduled, Trigger::CatchUp]
            .into_iter()
            .find(|t| t.as_str() == name)
    }

    pub fn to_proto(self) -> runs::Trigger {
        match self {
            Trigger::Manual => runs::Trigger::Manual,
            Trigger::Scheduled => runs::Trigger::Scheduled,
            Trigger::CatchUp => runs::Trigger::CatchUp,
        }
    }
}

/// A channel's connection state, as auth reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    Unspecified,
    Connecting,
    Active,
    Disconnected,
    Error,
}

impl ChannelState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelState::Unspecified => "UNSPECIFIED",
            ChannelState::Connecting => "CONNECTING",
            ChannelState::Active => "ACTIVE",
            ChannelState::Disconnected => "DISCONNECTED",
            ChannelState::Error => "ERROR",
        }
    }

    pub fn parse(name: &str) -> Self {
        match name {
            "CONNECTING" => ChannelState::Connecting,
            "ACTIVE" => ChannelState::Active,
            "DISCONNECTED" => ChannelState::Disconnected,
            "ERROR" => ChannelState::Error,
            _ => ChannelState::Unspecified,
        }
    }

    pub fn from_proto(value: i32) -> Self {
        match PbChannelState::try_from(value) {
            Ok(PbChannelState::Connecting) => ChannelState::Connecting,
            Ok(PbChannelState::Active) => ChannelState::Active,
            Ok(PbChannelState::Disconnected) => ChannelState::Disconnected,
            Ok(PbChannelState::Error) => ChannelState::Error,
            Ok(PbChannelState::Unspecified) | Err(_) => ChannelState::Unspecified,
        }
    }

    /// Why operations cannot run on a channel in this state (`None` when they can).
    pub fn blocked_reason(self, last_error: &str) -> Option<String> {
        match self {
            ChannelState::Active => None,
            ChannelState::Disconnected => Some("the channel is disconnected".into()),
            ChannelState::Connecting | ChannelState::Unspecified => {
                Some("the channel is not connected yet".into())
            }
            ChannelState::Error if last_error.is_empty() => {
                Some("the channel is in error; reconnect it".into())
            }
            ChannelState::Error => Some(format!(
                "the channel is in error ({last_error}); reconnect it"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip_through_names_and_protobuf() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.as_str()), Some(op));
            assert_eq!(Operation::from_proto(op.to_proto() as i32).unwrap(), op);
        }
        assert_eq!(
            Operation::parse("operation_get_orders"),
            Some(Operation::GetOrders)
        );
        assert_eq!(Operation::parse("GET_ORDER"), None);
        assert!(Operation::from_proto(0).is_err());
    }

    #[test]
    fn statuses_round_trip_and_know_which_are_final() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                RunStatus::from_proto(status.to_proto() as i32).unwrap(),
                status
            );
            assert_eq!(
                status.is_final(),
                !IN_PROGRESS.contains(&status.as_str()),
                "{status}"
            );
        }
    }
}
