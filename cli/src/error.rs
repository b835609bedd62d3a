//! What went wrong, as one line that says what to do, and the exit code that tells scripts which kind of failure it
//! was. gRPC statuses are mapped to exit codes in exactly one place: [`CliError::from_status`].

use std::fmt;

use tonic::{Code, Status};

/// The exit codes of `shopbridge`; the numbers are a contract with scripts (documented in `--help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// Anything not covered below (an internal server error, a local I/O failure).
    Other = 1,
    /// Bad arguments or input (clap's own code for its errors, which we keep for ours).
    Usage = 2,
    NotFound = 3,
    /// A run finished FAILED or CANCELLED (or was SKIPPED).
    RunFailed = 4,
    /// A run finished PARTIAL: done, but some items failed (see `shopbridge logs RUN`).
    RunPartial = 5,
    /// A server could not be reached, or answered that it is unavailable.
    Unreachable = 6,
    /// No, wrong or insufficient credentials.
    Unauthenticated = 7,
    /// The feature is not available in this deployment (yet).
    NotAvailable = 8,
    /// Refused in this state: already exists, channel not connected, a run already in progress, Shopify refused the
    /// store's token (FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED).
    Conflict = 9,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The text appended to `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok
  1  any other error
  2  usage error: bad arguments, bad input file, invalid value refused by the server
  3  not found: no such channel, run, listing or schedule (of your tenant)
  4  the run finished FAILED or CANCELLED, or was SKIPPED
  5  the run finished PARTIAL: some items failed, see `shopbridge logs RUN`
  6  a server is unreachable or unavailable: check the endpoint (`shopbridge configure`) and that it runs
  7  not authenticated or not allowed: check the credentials (`shopbridge configure`) and the client's scopes
  8  not available in this deployment (yet): mappings, orders, settings of other operations
  9  refused in this state: already exists, channel not connected, a run of the same operation already in
     progress, Shopify refused the store's token
  130  interrupted (Ctrl-C) while following a run with --wait: the run goes on";

#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    /// One line: what happened, then what to do.
    pub message: String,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Exit::NotFound, message)
    }

    pub fn not_available(message: impl Into<String>) -> Self {
        Self::new(Exit::NotAvailable, message)
    }

    pub fn other(message: impl Into<String>) -> Self {
        Self::new(Exit::Other, message)
    }

    /// A failed call to `service` at `url`, with the server's own words and what to do about it.
    pub fn from_status(status: &Status, service: &str, url: &str) -> Self {
        let said = one_line(status.message());
        match status.code() {
            Code::Unavailable if is_transport_failure(status) => Self::new(
                Exit::Unreachable,
                format!(
                    "cannot reach the {service} service at {url}: check that it runs and that the URL is right \
                     (`shopbridge configure --{service}-url URL` or SHOPBRIDGE_CLI_{}_URL)",
                    service.to_uppercase()
                ),
            ),
            Code::Unavailable | Code::DeadlineExceeded => Self::new(
                Exit::Unreachable,
                format!("the {service} service at {url} is unavailable: {said}; try again later"),
            ),
            Code::Unauthenticated => Self::new(
                Exit::Unauthenticated,
                format!(
                    "{service} refused the credentials: {said}; set the right client id and secret with \
                     `shopbridge configure --client-id ID --client-secret-stdin`"
                ),
            ),
            Code::PermissionDenied => Self::new(
                Exit::Unauthenticated,
                format!(
                    "{service} does not allow this: {said}; use an API client with that scope \
                     (`shopbridge configure --client-id ID --client-secret-stdin`)"
                ),
            ),
            Code::NotFound => Self::new(Exit::NotFound, format!("not found: {said}")),
            Code::InvalidArgument | Code::OutOfRange => Self::new(
                Exit::Usage,
                format!("{service} refused the request: {said}"),
            ),
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => {
                Self::new(Exit::Conflict, said)
            }
            Code::Unimplemented => Self::new(
                Exit::NotAvailable,
                format!("not available in this deployment: {said}"),
            ),
            _ => Self::new(
                Exit::Other,
                format!(
                    "the {service} service failed ({:?}): {said}; try again, and report it with this message if it \
                     persists",
                    status.code()
                ),
            ),
        }
    }

    /// Appends what to do to a not-found error (the server's message names the object, not the next step).
    pub fn with_hint(mut self, exit: Exit, hint: &str) -> Self {
        if self.exit == exit {
            self.message = format!("{}; {hint}", self.message);
        }
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Whether the status stands for "never reached the server" (connection refused, DNS, TLS) rather than the server
/// answering UNAVAILABLE: tonic reports both with the same code, but only the former carries a transport error.
fn is_transport_failure(status: &Status) -> bool {
    use std::error::Error;
    let mut source: Option<&(dyn Error + 'static)> = status.source();
    while let Some(err) = source {
        if err.is::<tonic::transport::Error>() || err.is::<std::io::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Server messages are one sentence, but a multi-line one must not break the one-line error contract.
fn one_line(message: &str) -> String {
    let joined = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let trimmed = joined.trim_end_matches('.');
    if trimmed.is_empty() {
        "(no message)".into()
    } else {
        trimmed.to_string()
    }
}

/// Maps a failed call, naming the service and its URL; `CallExt::or_fail(&endpoint)`.
pub trait CallExt<T> {
    fn or_fail(self, endpoint: &crate::client::Endpoint) -> Result<T, CliError>;
}

impl<T> CallExt<T> for Result<tonic::Response<T>, Status> {
    fn or_fail(self, endpoint: &crate::client::Endpoint) -> Result<T, CliError> {
        self.map(tonic::Response::into_inner)
            .map_err(|status| CliError::from_status(&status, endpoint.service, &endpoint.url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_a_documented_exit() {
        let cases = [
            (Code::NotFound, Exit::NotFound),
            (Code::InvalidArgument, Exit::Usage),
            (Code::Unauthenticated, Exit::Unauthenticated),
            (Code::PermissionDenied, Exit::Unauthenticated),
            (Code::Unavailable, Exit::Unreachable),
            (Code::FailedPrecondition, Exit::Conflict),
            (Code::AlreadyExists, Exit::Conflict),
            (Code::Unimplemented, Exit::NotAvailable),
            (Code::Internal, Exit::Other),
        ];
        for (code, exit) in cases {
            let err = CliError::from_status(&Status::new(code, "x"), "auth", "http://a");
            assert_eq!(err.exit, exit, "{code:?}");
            assert!(!err.message.contains('\n'));
            assert!(EXIT_CODES_HELP.contains(&format!("  {}  ", exit.code())));
        }
    }

    #[test]
    fn messages_stay_on_one_line() {
        let err = CliError::from_status(
            &Status::not_found("no run\nwith that id."),
            "scheduler",
            "http://s",
        );
        assert_eq!(err.message, "not found: no run with that id");
    }
}
