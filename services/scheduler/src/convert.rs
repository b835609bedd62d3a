//! Timestamps and page tokens at the protobuf boundary.

use chrono::{DateTime, Utc};
use shopbridge_platform::error::ApiError;

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

/// A request's optional timestamp field; a value out of range is INVALID_ARGUMENT naming the field.
pub fn optional_timestamp(
    t: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    t.map(|t| {
        from_timestamp(t)
            .ok_or_else(|| ApiError::InvalidArgument(format!("`{field}` is not a valid timestamp")))
    })
    .transpose()
}

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

/// The page size asked for (0 is the default), capped.
pub fn page_size(requested: u32) -> i64 {
    i64::from(match requested {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    })
}

/// A keyset position: a time and a tie-breaker, as `<unix micros>_<tie-breaker>`.
pub fn page_token(at: DateTime<Utc>, tie: impl std::fmt::Display) -> String {
    format!("{}_{tie}", at.timestamp_micros())
}

/// Reads a token made by [`page_token`]; `None` for an empty one (the first page).
pub fn parse_page_token<T: std::str::FromStr>(
    token: &str,
) -> Result<Option<(DateTime<Utc>, T)>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        ApiError::InvalidArgument(
            "page_token was not issued by this service: pass the next_page_token of the previous page, or none"
                .into(),
        )
    };
    let (micros, tie) = token.split_once('_').ok_or_else(invalid)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    let tie = tie.parse::<T>().map_err(|_| invalid())?;
    Ok(Some((at, tie)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        let token = page_token(at, 42);
        assert_eq!(parse_page_token::<i64>(&token).unwrap(), Some((at, 42)));
        assert_eq!(parse_page_token::<i64>("").unwrap(), None);
        assert!(parse_page_token::<i64>("abc").is_err());
        assert!(parse_page_token::<uuid::Uuid>("12_notauuid").is_err());
    }

    #[test]
    fn timestamps_round_trip() {
        let t = DateTime::from_timestamp(1_790_000_000, 5_000).unwrap();
        assert_eq!(from_timestamp(&timestamp(t)), Some(t));
    }
}
