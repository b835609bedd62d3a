//! The small set of errors a caller can act on, mapped to gRPC status codes in exactly one place. Services convert
//! their own error enums into [`ApiError`]; anything unexpected is `Internal`, logged once here and never shown.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        let (code, message) = match err {
            ApiError::InvalidArgument(m) => (Code::InvalidArgument, m),
            ApiError::NotFound(m) => (Code::NotFound, m),
            ApiError::AlreadyExists(m) => (Code::AlreadyExists, m),
            ApiError::FailedPrecondition(m) => (Code::FailedPrecondition, m),
            ApiError::Unauthenticated(m) => (Code::Unauthenticated, m),
            ApiError::PermissionDenied(m) => (Code::PermissionDenied, m),
            ApiError::Unavailable(m) => (Code::Unavailable, m),
            ApiError::Internal(e) => {
                let reference = uuid::Uuid::new_v4();
                tracing::error!(error = %format!("{e:#}"), %reference, "internal error");
                (
                    Code::Internal,
                    format!("internal error (reference {reference})"),
                )
            }
        };
        Status::new(code, message)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => ApiError::NotFound("not found".into()),
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => {
                ApiError::Unavailable("database unavailable".into())
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_detail() {
        let status: Status = ApiError::Internal(anyhow::anyhow!("password=hunter2")).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
        let status: Status = ApiError::NotFound("channel c1".into()).into();
        assert_eq!(
            (status.code(), status.message()),
            (Code::NotFound, "channel c1")
        );
    }
}
