//! One module per command. Each takes the parsed arguments and a [`crate::client::Ctx`], prints its result in the
//! chosen format and returns the exit code (non-zero only where the outcome itself is a failure, as a failed run).

pub mod channels;
pub mod configure;
pub mod listings;
pub mod logs;
pub mod mapping;
pub mod orders;
pub mod run;
pub mod runs;
pub mod schedule;
pub mod settings;

use std::io::Read;

use crate::error::CliError;

/// Reads all of standard input (a secret, a YAML file), for `--token-stdin`, `-f -` and the like.
pub fn read_stdin(what: &str) -> Result<String, CliError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| CliError::usage(format!("cannot read {what} from standard input: {e}")))?;
    Ok(text)
}
