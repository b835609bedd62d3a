//! What a command's Shopify work achieved: calls made, per-item problems (Shopify's `userErrors` and those found
//! before sending, in one shape), calls that failed outright. Bulk work and single calls report the same way, so the
//! command's result is built in one place (`commands::results`).

use crate::shopify::{executor::CallError, wire::UserError};

/// What a multi-call operation achieved: per-item problems Shopify reported, and calls that failed outright.
#[derive(Debug, Default)]
pub struct Outcome {
    pub calls: usize,
    pub user_errors: Vec<UserError>,
    pub failed_calls: Vec<(usize, CallError)>,
    /// An all-or-nothing operation applied nothing (its problems say why), even if no call failed.
    pub failed: bool,
    /// Work Shopify accepted for the command (a bulk mutation) could not be followed to its end, for a reason that
    /// passes: the command gets no result now and is delivered again, resuming where it was (on its last delivery
    /// it is answered instead).
    pub unfinished: Option<String>,
}

impl Outcome {
    /// One call was made and failed.
    pub fn failed_call(error: CallError) -> Self {
        Self {
            calls: 1,
            failed_calls: vec![(0, error)],
            ..Default::default()
        }
    }

    /// The request was refused before any call: `field` is wrong.
    pub fn refused(field: &str, message: &str) -> Self {
        Self {
            user_errors: vec![UserError::new("INVALID_REQUEST", &[field], message)],
            failed: true,
            ..Default::default()
        }
    }

    /// Counts one call's result: its user errors, or its failure.
    pub fn absorb(&mut self, index: usize, result: Result<Vec<UserError>, CallError>) {
        self.calls += 1;
        match result {
            Ok(errors) => self.user_errors.extend(errors),
            Err(e) => self.failed_calls.push((index, e)),
        }
    }
}

/// A problem with input item `index` of `list`, found before sending it.
pub fn invalid(list: &str, index: usize, field: &[&str], code: &str, message: String) -> UserError {
    let mut path = vec![list.to_string(), index.to_string()];
    path.extend(field.iter().map(|f| f.to_string()));
    UserError {
        field: Some(path),
        message,
        code: Some(code.to_string()),
    }
}

/// Shopify's userError about input item `index` of `list`: its field is put under the item (`skip` leading parts of
/// Shopify's path, such as `input`, are dropped).
pub fn renamed(list: &str, index: usize, error: &UserError, skip: usize) -> UserError {
    let mut path = vec![list.to_string(), index.to_string()];
    path.extend(error.field.iter().flatten().skip(skip).cloned());
    UserError {
        field: Some(path),
        message: error.message.clone(),
        code: error.code.clone(),
    }
}
