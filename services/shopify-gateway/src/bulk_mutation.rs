//! Bulk mutations: the same mutation for many inputs as one Shopify job. The variables (one JSON line per input)
//! are staged (`stagedUploadsCreate`, resource BULK_MUTATION_VARIABLES) and uploaded, `bulkOperationRunMutation`
//! starts the job with the same `.graphql` document the single calls use. Starting goes through the same code as bulk
//! queries (`export::bulk_start`, stage `mutation:<what>`): the start is recorded before it is sent and the operation
//! as soon as Shopify accepts it, so a restarted gateway finds it (by id, or as the app's current bulk mutation when
//! it died before recording the id) and polls it: it never uploads or starts again. The result file has one line
//! per input line, which `__lineNumber` (0-based) ties to its input.

use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};

use crate::{
    catalog_writes::{Writer, invalid},
    documents::{self, Document},
    executor::{CallError, Operation},
    export::bulk_start::{BulkKind, BulkStart, StartError},
    ops::Outcome,
};

/// Shopify's documented base cost of a mutation.
const MUTATION_COST: f64 = 10.0;

/// A finished bulk mutation: its id and each input line's result (`{"data": ..., "errors": ...}`) by line index.
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

/// The payload of input line `line` under `field`, or None with a problem about each item of `list` the line
/// carries (`indices`) when the line failed or has no result.
pub fn line_payload(
    results: &BulkResults,
    line: usize,
    field: &str,
    outcome: &mut Outcome,
    list: &str,
    indices: &[usize],
) -> Option<Value> {
    let Some(result) = results.lines.get(&line) else {
        let message = match &results.stopped {
            Some(why) => format!("line {line} of the bulk mutation was not run: {why}"),
            None => format!("the bulk mutation's result has no line {line}"),
        };
        for &index in indices {
            outcome.user_errors.push(invalid(
                list,
                index,
                &[],
                "BULK_LINE_MISSING",
                message.clone(),
            ));
        }
        return None;
    };
    let payload = &result["data"][field];
    if payload.is_object() {
        return Some(payload.clone());
    }
    let message = result["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["message"].as_str())
        .collect::<Vec<_>>()
        .join("; ");
    for &index in indices {
        outcome.user_errors.push(invalid(
            list,
            index,
            &[],
            "BULK_LINE_FAILED",
            format!("line {line} of the bulk mutation failed: {message}"),
        ));
    }
    None
}

/// Runs `document` once per line of `lines` as one bulk mutation: stages the JSONL of variables, uploads it, starts
/// bulkOperationRunMutation and records the operation in the gateway's database (a restarted gateway finds it and
/// polls it: it never uploads or starts again, see `export::bulk_start`), polls it to the end and reads each line's
/// result. `what` names the operation among the command's bulk mutations.
pub async fn run_bulk_mutation(
    w: &Writer<'_>,
    what: &str,
    document: Document,
    lines: Vec<Value>,
    outcome: &mut Outcome,
) -> Result<BulkResults, Stopped> {
    let stage = format!("mutation:{what}");
    let start = BulkStart {
        executor: w.executor,
        pool: w.pool,
        shop: w.shop,
        lane: w.lane,
        command_id: w.command_id,
        stage: &stage,
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
            || stage_variables(w, &stage, document, &lines, &mut staging_calls),
            &mut start_calls,
        )
        .await;
    outcome.calls += staging_calls + start_calls;
    let bulk = match started {
        Ok(id) => id,
        Err(StartError::Call(e)) => {
            outcome.failed_calls.push((0, e));
            return Err(Stopped);
        }
        Err(StartError::Refused(errors)) => {
            return Err(bulk_problem(
                outcome,
                format!("Shopify refused the bulk mutation: {errors}"),
            ));
        }
        Err(e @ (StartError::Prepare(_) | StartError::Database(_))) => {
            return Err(bulk_problem(outcome, e.to_string()));
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
            outcome.user_errors.push(json!({"code": "BULK_UNFOLLOWED", "field": [],
                "message": format!("bulk mutation {bulk} was accepted by Shopify and may still apply its lines, \
                    but its progress cannot be read: {e}")}));
            outcome.failed_calls.push((0, e));
            return Err(Stopped);
        }
        Err(e) => return Err(unfinished(outcome, &bulk, &e.to_string())),
    };
    let stopped = (!end.completed()).then(|| {
        format!(
            "bulk mutation {bulk} ended {} ({})",
            end.status, end.error_code
        )
    });
    // A mutation that stopped early says which lines it ran in partialDataUrl; without it nothing is known to
    // have run.
    let file = if end.completed() {
        end.url
    } else {
        end.partial_url
    };
    if let (Some(why), None) = (&stopped, &file) {
        return Err(bulk_problem(outcome, why.clone()));
    }
    let mut results = BulkResults {
        id: bulk.clone(),
        lines: HashMap::new(),
        stopped,
    };
    if let Some(url) = file {
        let body = match download(w, &url).await {
            Ok(body) => body,
            Err(e) => {
                return Err(unfinished(
                    outcome,
                    &bulk,
                    &format!("downloading its result failed: {e}"),
                ));
            }
        };
        results.lines = result_lines(&body);
    }
    if let Some(why) = &results.stopped {
        outcome
            .user_errors
            .push(json!({"code": "BULK_FAILED", "field": [],
            "message": format!("{why}; {} of {} lines ran", results.lines.len(), lines.len())}));
    }
    Ok(results)
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

/// The command is left unanswered while its accepted bulk mutation runs on (see `run_bulk_mutation`).
fn unfinished(outcome: &mut Outcome, bulk: &str, why: &str) -> Stopped {
    outcome.unfinished = Some(format!(
        "bulk mutation {bulk} could not be followed to its end ({why}); it is polled again on the next delivery"
    ));
    Stopped
}

/// A bulk mutation that could not be run to the end; the problems are in the outcome.
pub struct Stopped;

fn bulk_problem(outcome: &mut Outcome, message: String) -> Stopped {
    outcome
        .user_errors
        .push(json!({"code": "BULK_FAILED", "field": [], "message": message}));
    Stopped
}

/// Stages the JSONL of variables and uploads it; returns bulkOperationRunMutation's variables.
async fn stage_variables(
    w: &Writer<'_>,
    stage: &str,
    document: Document,
    lines: &[Value],
    calls: &mut usize,
) -> Result<Value, StartError> {
    let mut jsonl = Vec::new();
    for line in lines {
        // Serializing a Value cannot fail.
        jsonl.extend_from_slice(&serde_json::to_vec(line).unwrap_or_default());
        jsonl.push(b'\n');
    }
    let filename = format!("{}.jsonl", stage.replace(':', "-"));
    let staged = Operation {
        document: documents::STAGED_UPLOAD,
        variables: json!({"input": [{"resource": "BULK_MUTATION_VARIABLES", "filename": filename,
            "mimeType": "text/jsonl", "httpMethod": "POST"}]}),
        expected_cost: MUTATION_COST,
        idempotency_key: Some(format!("{}:staged:{stage}", w.command_id)),
    };
    *calls += 1;
    let data = w.executor.call(w.shop, w.lane, &staged).await?;
    let payload = &data["stagedUploadsCreate"];
    let target = &payload["stagedTargets"][0];
    let (Some(url), Some(parameters)) = (target["url"].as_str(), target["parameters"].as_array())
    else {
        return Err(StartError::Prepare(format!(
            "Shopify staged no upload: {}",
            payload["userErrors"]
        )));
    };
    let parameters: Vec<(String, String)> = parameters
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let Some(path) = parameters
        .iter()
        .find(|(n, _)| n == "key")
        .map(|(_, v)| v.clone())
    else {
        return Err(StartError::Prepare(
            "Shopify's staged upload has no key".into(),
        ));
    };
    let (content_type, body) = multipart(&parameters, &filename, &jsonl);
    w.download
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            StartError::Prepare(format!(
                "uploading the bulk mutation's variables failed: {}",
                e.without_url()
            ))
        })?;
    tracing::info!(
        stage,
        lines = lines.len(),
        "bulk mutation variables uploaded"
    );
    Ok(json!({"mutation": document.text, "path": path}))
}

/// A multipart/form-data body: the staged target's parameters as fields, then the file (storage services want the
/// file last).
fn multipart(parameters: &[(String, String)], filename: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("shopbridge-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::with_capacity(file.len() + 1024);
    for (name, value) in parameters {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: text/jsonl\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
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
    fn the_multipart_body_ends_with_the_file() {
        let (content_type, body) = multipart(&[("key".into(), "tmp/x".into())], "a.jsonl", b"{}\n");
        let boundary = content_type.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\ntmp/x\r\n"
        )));
        assert!(text.ends_with(&format!("{{}}\n\r\n--{boundary}--\r\n")));
    }
}
