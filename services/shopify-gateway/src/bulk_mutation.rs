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
    executor::Operation,
    export::bulk_start::{BulkKind, BulkStart, StartError},
    ops::Outcome,
};

/// Shopify's documented base cost of a mutation.
const MUTATION_COST: f64 = 10.0;

/// A finished bulk mutation: its id and each input line's result (`{"data": ..., "errors": ...}`) by line index.
pub struct BulkResults {
    pub id: String,
    pub lines: HashMap<usize, Value>,
}

/// How often a bulk mutation is polled.
const POLL_FIRST: Duration = Duration::from_millis(200);
const POLL_MAX: Duration = Duration::from_secs(3);

/// The payload of input line `line` under `field`, or None with a problem about item `index` of `list` when the line
/// failed or has no result.
pub fn line_payload(
    lines: &HashMap<usize, Value>,
    line: usize,
    field: &str,
    outcome: &mut Outcome,
    list: &str,
    index: usize,
) -> Option<Value> {
    let Some(result) = lines.get(&line) else {
        outcome.user_errors.push(invalid(
            list,
            index,
            &[],
            "BULK_LINE_MISSING",
            format!("the bulk mutation's result has no line {line}"),
        ));
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
    outcome.user_errors.push(invalid(
        list,
        index,
        &[],
        "BULK_LINE_FAILED",
        format!("line {line} of the bulk mutation failed: {message}"),
    ));
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
    let mut poll_calls = 0;
    let ended = start.poll_to_end(&bulk, &mut poll_calls).await;
    outcome.calls += poll_calls;
    let done = match ended {
        Ok(end) if end.completed() => end.url,
        Ok(end) => {
            return Err(bulk_problem(
                outcome,
                format!(
                    "bulk mutation {bulk} ended {} ({})",
                    end.status, end.error_code
                ),
            ));
        }
        Err(StartError::Call(e)) => {
            outcome.failed_calls.push((0, e));
            return Err(Stopped);
        }
        Err(e) => return Err(bulk_problem(outcome, e.to_string())),
    };
    let mut results = BulkResults {
        id: bulk,
        lines: HashMap::new(),
    };
    if let Some(url) = done {
        let body = w
            .download
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        let body = match body {
            Ok(response) => response.bytes().await,
            Err(e) => Err(e),
        }
        .map_err(|e| {
            bulk_problem(
                outcome,
                format!(
                    "downloading the bulk mutation's result failed: {}",
                    e.without_url()
                ),
            )
        })?;
        // One line per input line, each with `__lineNumber`: the 0-based line of the input it answers (lines may
        // come in any order).
        for (n, line) in body
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .enumerate()
        {
            match serde_json::from_slice::<Value>(line) {
                Ok(value) => {
                    let at = value["__lineNumber"].as_u64().map_or(n, |l| l as usize);
                    results.lines.insert(at, value);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a bulk mutation result line that is not JSON")
                }
            }
        }
    }
    Ok(results)
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
