//! The errors of the orders service a caller can act on, mapped to gRPC statuses in one place (through the
//! platform's [`ApiError`]); anything unexpected is internal and never shown.

use shopbridge_platform::error::ApiError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input; nothing was changed.
    #[error("{0}")]
    InvalidArgument(String),
    /// Not in the caller's tenant (another tenant's order is reported exactly like a missing one).
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match err {
            Error::InvalidArgument(m) => ApiError::InvalidArgument(m),
            Error::NotFound(m) => ApiError::NotFound(m),
            Error::Database(e) => ApiError::from(e),
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        ApiError::from(err).into()
    }
}

pub type Result<T> = std::result::Result<T, Error>;
