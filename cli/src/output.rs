//! How results are printed: human tables by default, JSON (`-o json`) for scripts. JSON is always the serde encoding
//! of the CLI's own view structs, so its field names are a stable contract independent of the protobuf messages.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use crate::error::CliError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    Table,
    /// JSON, for scripts: one document on stdout.
    Json,
}

/// Prints `value` as pretty JSON with a trailing newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::other(format!("cannot encode the output as JSON: {e}")))?;
    print_line(&text)
}

/// Prints rows under upper-case headers, aligned, without borders (like `kubectl get`).
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> Result<(), CliError> {
    let mut table = new_table();
    table.set_header(headers.iter().map(|h| h.to_uppercase()));
    for row in rows {
        table.add_row(row);
    }
    print_line(&trimmed(&table))
}

/// Prints `name: value` pairs, aligned, for one object.
pub fn fields(pairs: &[(&str, String)]) -> Result<(), CliError> {
    let mut table = new_table();
    for (name, value) in pairs {
        table.add_row(vec![format!("{name}:"), value.clone()]);
    }
    print_line(&trimmed(&table))
}

pub fn print_line(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`shopbridge runs | head`) is not an error worth a message.
    match writeln!(out, "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::other(format!(
            "cannot write to standard output: {e}"
        ))),
        _ => Ok(()),
    }
}

fn new_table() -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    // Without a terminal library the width is unknown; a shell's COLUMNS (when exported) lets long columns wrap.
    if let Some(width) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<u16>().ok())
    {
        table
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(width);
    }
    table
}

/// The NOTHING preset pads every cell with a space on each side: drop the leading one and the trailing ones.
fn trimmed(table: &Table) -> String {
    table
        .lines()
        .map(|line| {
            let line = line.strip_prefix(' ').unwrap_or(&line);
            line.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A protobuf timestamp as a UTC time (None when absent).
pub fn time(ts: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let ts = ts?;
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).unwrap_or(0))
}

/// RFC 3339, seconds precision, for JSON.
pub fn rfc3339(ts: Option<&prost_types::Timestamp>) -> Option<String> {
    time(ts).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// For tables: `2026-11-05 14:03:07Z`, or `-`.
pub fn human_time(at: Option<&str>) -> String {
    match at.and_then(|a| DateTime::parse_from_rfc3339(a).ok()) {
        Some(t) => t
            .with_timezone(&Utc)
            .format("%Y-%m-%d %H:%M:%SZ")
            .to_string(),
        None => "-".into(),
    }
}

/// An empty string as `-`, so table cells are never blank.
pub fn or_dash(value: &str) -> String {
    if value.is_empty() {
        "-".into()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_and_humane() {
        let ts = prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 5,
        };
        let json = rfc3339(Some(&ts)).unwrap();
        assert_eq!(json, "2027-01-15T08:00:00Z");
        assert_eq!(human_time(Some(&json)), "2027-01-15 08:00:00Z");
        assert_eq!(human_time(None), "-");
    }
}
