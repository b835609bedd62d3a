//! Bulk mutations: the same mutation for many inputs as one Shopify job. The variables (one JSON line per input)
//! are staged (`stagedUploadsCreate`, resource BULK_MUTATION_VARIABLES) and uploaded, `bulkOperationRunMutation`
//! starts the job with the same `.graphql` document the single calls use. Starting goes through the same code as bulk
//! queries (`export::bulk_start`, stage `mutation:<what>`): the start is recorded before it is sent and the operation
//! as soon as Shopify accepts it, so a restarted gateway finds it (by id, or as the app's current bulk mutation when
//! it died before recording the id) and polls it: it never uploads or starts again. The result file has one line
//! per input line, which `__lineNumber` (0-based) ties to its input.

use std::{collections::HashMap, time::Duration};

use serde_json::Value;

use serde::de::DeserializeOwned;

use super::{
    Writer,
    start::{BulkKind, BulkStart, StartError},
    upload::stage_variables,
};
use crate::{
    outcome::{Outcome, invalid},
    shopify::{documents::Document, executor::CallError, wire},
};

/// A finished bulk mutation: its id (the first's, when it was split) and each input line's result (`{"data": ...,
/// "errors": ...}`) by line index.
pub struct BulkResults {
    pub id: String,
    pub lines: HashMap<usize, Value>,
    /// Why lines have no result, when the operation stopped before the end (FAILED or CANCELED, with the lines it
    /// ran from `partialDataUrl`).
    pub stopped: Option<String>,
}

/// How often a bulk mutation is polled.
const POLL_FIRST: Duration = Duration::from_millis(200);
const POLL_MAX: Duration = Duration::from_secs(3);

/// The answer (`data`) of input line `line` to `document`, or None with a problem about each item of `list` the line
/// carries (`indices`) when the line failed, has no result, or its answer does not have the document's shape.
pub fn line_data<D: DeserializeOwned>(
    results: &BulkResults,
    line: usize,
    document: Document,
    outcome: &mut Outcome,
    list: &str,
    indices: &[usize],
) -> Option<D> {
    let mut problem = |code: &str, message: String| {
        for &index in indices {
            outcome
                .user_errors
                .push(invalid(list, index, &[], code, message.clone()));
        }
    };
    let Some(result) = results.lines.get(&line) else {
        let message = match &results.stopped {
            Some(why) => format!("line {line} of the bulk mutation has no result: {why}"),
            None => format!("the bulk mutation's result has no line {line}"),
        };
        problem("BULK_LINE_MISSING", message);
        return None;
    };
    // A line that failed has null for its mutation's payload (or no data), and says why in `errors`.
    let answered = result["data"]
        .as_object()
        .is_some_and(|data| !data.is_empty() && data.values().all(|v| !v.is_null()));
    if !answered {
        let message = result["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["message"].as_str())
            .collect::<Vec<_>>()
            .join("; ");
        problem(
            "BULK_LINE_FAILED",
            format!("line {line} of the bulk mutation failed: {message}"),
        );
        return None;
    }
    match wire::decode(document, result["data"].clone()) {
        Ok(data) => Some(data),
        Err(e) => {
            problem(
                "BULK_LINE_UNEXPECTED",
                format!("line {line} of the bulk mutation: {e}"),
            );
            None
        }
    }
}

/// Runs `document` once per line of `lines` as one bulk mutation, or as several in turn when the lines' JSONL is
/// larger than Shopify takes in one upload (`Writer::bulk_upload_max_bytes`): for each, stages the JSONL of
/// variables, uploads it, starts bulkOperationRunMutation and records the operation in the gateway's database (a
/// restarted gateway finds it and polls it: it never uploads or starts again, see `export::bulk_start`), polls it to
/// the end and reads each line's result. `what` names the operation among the command's bulk mutations.
///
/// When one stops early (Shopify failed it, or a later one could not be started), the lines that ran are answered
/// and the rest are not run; [`line_payload`] names each of those inputs.
pub async fn run_bulk_mutation(
    w: &Writer<'_>,
    what: &str,
    document: Document,
    lines: Vec<Value>,
    outcome: &mut Outcome,
) -> Result<BulkResults, Stopped> {
    // Serializing a Value cannot fail.
    let encoded: Vec<Vec<u8>> = lines
        .iter()
        .map(|line| serde_json::to_vec(line).unwrap_or_default())
        .collect();
    drop(lines);
    let parts = parts_within(&encoded, w.bulk_upload_max_bytes);
    let mut results = BulkResults {
        id: String::new(),
        lines: HashMap::new(),
        stopped: None,
    };
    let split = parts.len() > 1;
    for (k, range) in parts.into_iter().enumerate() {
        // A part's stage names its lines, so a delivery that splits them otherwise (the limit was changed meanwhile)
        // never takes another part's recorded operation for its own.
        let stage = if split {
            format!("mutation:{what}:{}-{}", range.start, range.end)
        } else {
            format!("mutation:{what}")
        };
        let first_line = range.start;
        let part = run_part(w, &stage, document, &encoded[range], outcome).await;
        let stopped = match part {
            Ok(part) => {
                if results.id.is_empty() {
                    results.id = part.id;
                }
                results.lines.extend(
                    part.lines
                        .into_iter()
                        .map(|(line, result)| (first_line + line, result)),
                );
                part.stopped
            }
            Err(PartFailure::Unfinished) => return Err(Stopped),
            // Nothing ran: the command's problems say why.
            Err(PartFailure::NotRun(why)) if k == 0 => {
                return Err(why.map_or(Stopped, |why| bulk_problem(outcome, why)));
            }
            Err(PartFailure::NotRun(why)) => Some(format!(
                "part {} of the bulk mutation has no result: {}",
                k + 1,
                why.unwrap_or_else(|| "its start failed".into())
            )),
        };
        if let Some(why) = stopped {
            bulk_problem(
                outcome,
                format!(
                    "{why}; {} of {} lines ran",
                    results.lines.len(),
                    encoded.len()
                ),
            );
            results.stopped = Some(why);
            break;
        }
    }
    Ok(results)
}

/// Consecutive ranges of `lines` whose JSONL (a newline after each) fits in `max_bytes`; a line larger than that
/// goes alone (Shopify refuses its upload, and says so).
fn parts_within(lines: &[Vec<u8>], max_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut parts = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        let len = line.len() + 1;
        if i > start && size + len > max_bytes {
            parts.push(start..i);
            (start, size) = (i, 0);
        }
        size += len;
    }
    if start < lines.len() {
        parts.push(start..lines.len());
    }
    parts
}

/// One bulk mutation's results, its lines numbered from 0.
struct Part {
    id: String,
    lines: HashMap<usize, Value>,
    stopped: Option<String>,
}

enum PartFailure {
    /// Accepted by Shopify but not followed to its end (see [`unfinished`]).
    Unfinished,
    /// Nothing of it is known to have run: why (None when a failed call in the outcome says it).
    NotRun(Option<String>),
}

/// Starts (or finds) the bulk mutation of `stage` over `lines`, polls it to the end and reads its results.
async fn run_part(
    w: &Writer<'_>,
    stage: &str,
    document: Document,
    lines: &[Vec<u8>],
    outcome: &mut Outcome,
) -> Result<Part, PartFailure> {
    let start = BulkStart {
        executor: w.executor,
        pool: w.pool,
        shop: w.shop,
        lane: w.lane,
        command_id: w.command_id,
        stage,
        kind: BulkKind::Mutation,
        text: document.text,
        wait_first: POLL_FIRST,
        wait_max: POLL_MAX,
    };
    // The variables are staged and uploaded only when a new operation is started: never for one Shopify accepted.
    let mut staging_calls = 0;
    let mut start_calls = 0;
    let started = start
        .run(
            || stage_variables(w, stage, document, lines, &mut staging_calls),
            &mut start_calls,
        )
        .await;
    outcome.calls += staging_calls + start_calls;
    let bulk = match started {
        Ok(id) => id,
        // A start may have been sent and accepted, its answer lost (a call past its deadline, or the database
        // failing as the id came back): Shopify may be running the lines, so the command is not answered; the next
        // delivery finds the operation (by id, or adopts it) or starts it.
        Err(
            e @ (StartError::Call(CallError::DeadlineExceeded { .. }) | StartError::Database(_)),
        ) if start.may_have_started().await => {
            unfinished(
                outcome,
                format!(
                    "Shopify may have accepted the bulk mutation's start, whose answer is not known ({e})"
                ),
            );
            return Err(PartFailure::Unfinished);
        }
        Err(StartError::Call(e)) => {
            outcome.failed_calls.push((0, e));
            return Err(PartFailure::NotRun(None));
        }
        Err(StartError::Refused(errors)) => {
            return Err(PartFailure::NotRun(Some(format!(
                "Shopify refused the bulk mutation: {errors}"
            ))));
        }
        Err(e @ (StartError::Prepare(_) | StartError::Database(_))) => {
            return Err(PartFailure::NotRun(Some(e.to_string())));
        }
    };
    // From here on Shopify runs the lines whatever happens to this delivery: a failure that passes (a call past its
    // deadline, the database, the download) leaves the command unanswered, to be delivered again and resume polling
    // the same operation (it is recorded); answering FAILED would report as not applied what Shopify applies.
    let mut poll_calls = 0;
    let ended = start.poll_to_end(&bulk, &mut poll_calls).await;
    outcome.calls += poll_calls;
    let end = match ended {
        Ok(end) => end,
        Err(StartError::Call(e @ CallError::Fatal { .. })) => {
            // Nothing will let this gateway read it (the token was refused, the shop is gone).
            let why = format!(
                "bulk mutation {bulk} was accepted by Shopify and may still apply its lines, but its progress \
                 cannot be read: {e}"
            );
            outcome.failed_calls.push((0, e));
            return Err(PartFailure::NotRun(Some(why)));
        }
        Err(e) => {
            unfinished(
                outcome,
                format!("bulk mutation {bulk} could not be followed to its end ({e})"),
            );
            return Err(PartFailure::Unfinished);
        }
    };
    let stopped = (!end.completed()).then(|| {
        format!(
            "bulk mutation {bulk} ended {} ({})",
            end.status, end.error_code
        )
    });
    // A mutation that stopped early says which lines it ran in partialDataUrl; without it, which ran is not known.
    let file = if end.completed() {
        end.url
    } else {
        end.partial_url
    };
    if let (Some(why), None) = (&stopped, &file) {
        return Err(PartFailure::NotRun(Some(format!(
            "{why} without partial results: which of its lines were applied is not known"
        ))));
    }
    let mut part = Part {
        id: bulk.clone(),
        lines: HashMap::new(),
        stopped,
    };
    if let Some(url) = file {
        match download(w, &url).await {
            Ok(body) => part.lines = result_lines(&body),
            // Refused (expired, or the link is wrong): trying again cannot help.
            Err(e) if e.status().is_some_and(|s| s.is_client_error()) => {
                part.stopped = Some(format!(
                    "bulk mutation {bulk} ended {} but its result file could not be read ({e}): which of its \
                     lines were applied is not known",
                    end.status
                ));
            }
            Err(e) => {
                unfinished(
                    outcome,
                    format!("bulk mutation {bulk}'s result could not be downloaded ({e})"),
                );
                return Err(PartFailure::Unfinished);
            }
        }
    }
    Ok(part)
}

/// Each result line by the 0-based input line it answers (`__lineNumber`; lines come in any order). A line
/// without it cannot be tied to its input: it is left out, so its input is reported BULK_LINE_MISSING.
fn result_lines(body: &[u8]) -> HashMap<usize, Value> {
    let mut lines = HashMap::new();
    for line in body
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
    {
        match serde_json::from_slice::<Value>(line) {
            Ok(value) => match value["__lineNumber"].as_u64() {
                Some(at) => {
                    lines.insert(at as usize, value);
                }
                None => tracing::warn!("a bulk mutation result line without __lineNumber"),
            },
            Err(e) => tracing::warn!(error = %e, "a bulk mutation result line that is not JSON"),
        }
    }
    lines
}

async fn download(w: &Writer<'_>, url: &str) -> Result<bytes::Bytes, reqwest::Error> {
    let fetched = async {
        w.download
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await
    };
    // The URL is signed: it stays out of the error.
    fetched.await.map_err(reqwest::Error::without_url)
}

/// The command is left unanswered while its bulk mutation may run on in Shopify (see `run_part`).
fn unfinished(outcome: &mut Outcome, why: String) {
    outcome.unfinished = Some(format!(
        "{why}; the command goes on from there on its next delivery"
    ));
}

/// A bulk mutation that could not be run to the end; the problems are in the outcome.
pub struct Stopped;

/// Records a BULK_FAILED problem about the whole bulk mutation.
fn bulk_problem(outcome: &mut Outcome, message: String) -> Stopped {
    outcome
        .user_errors
        .push(crate::shopify::wire::UserError::new(
            "BULK_FAILED",
            &[],
            message,
        ));
    Stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_are_keyed_by_their_line_number_and_one_without_it_is_left_out() {
        let body = b"{\"data\":{\"x\":1},\"__lineNumber\":2}\n\n{\"data\":{\"x\":2}}\nnot json\n{\"data\":{\"x\":3},\"__lineNumber\":0}\n";
        let lines = result_lines(body);
        let mut keys: Vec<usize> = lines.keys().copied().collect();
        keys.sort_unstable();
        assert_eq!(keys, [0, 2]);
        assert_eq!(lines[&2]["data"]["x"], 1);
        assert_eq!(lines[&0]["data"]["x"], 3);
    }

    #[test]
    fn lines_are_split_into_parts_whose_jsonl_fits() {
        let lines =
            |sizes: &[usize]| -> Vec<Vec<u8>> { sizes.iter().map(|n| vec![b'x'; *n]).collect() };
        // Each line takes its length and a newline.
        assert_eq!(parts_within(&lines(&[4, 4, 4]), 10), [0..2, 2..3]);
        assert_eq!(parts_within(&lines(&[4, 4, 4]), 15), vec![0..3_usize]);
        // A line over the limit goes alone.
        assert_eq!(parts_within(&lines(&[2, 30, 2]), 10), [0..1, 1..2, 2..3]);
        assert!(parts_within(&[], 10).is_empty());
    }
}
