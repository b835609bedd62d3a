//! `shopbridge orders`: the orders service does not serve queries in this deployment yet; the command says so
//! (exit code 8) rather than being missing or faking results.

use crate::error::{CliError, Exit};

pub fn run() -> Result<Exit, CliError> {
    Err(CliError::not_available(
        "orders are not available in this deployment yet: the orders service does not serve queries; runs of \
         get-orders and sync-orders can still be started and followed with `shopbridge run` and `shopbridge runs`",
    ))
}
