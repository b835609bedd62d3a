//! The staged upload of a bulk mutation's variables: `stagedUploadsCreate` names where (a storage URL and the form
//! fields it wants), then the JSONL goes there as a multipart form, the file last (storage services want it last).

use super::{Writer, start::StartError};
use crate::{
    operations::MUTATION_COST,
    shopify::{
        documents::Document,
        wire::{
            self,
            bulk::{BulkMutationStart, StagedUpload, StagedUploadInput},
        },
    },
};

/// Stages and uploads `lines` (one JSON object of variables each) for the bulk mutation of `stage`; returns the start
/// mutation's variables. `calls` counts the Shopify calls made here.
pub async fn stage_variables(
    w: &Writer<'_>,
    stage: &str,
    document: Document,
    lines: &[Vec<u8>],
    calls: &mut usize,
) -> Result<serde_json::Value, StartError> {
    let mut jsonl = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        jsonl.extend_from_slice(line);
        jsonl.push(b'\n');
    }
    let filename = format!("{}.jsonl", stage.replace(':', "-"));
    let staged = StagedUpload {
        input: vec![StagedUploadInput {
            resource: "BULK_MUTATION_VARIABLES",
            filename: filename.clone(),
            mime_type: "text/jsonl",
            http_method: "POST",
        }],
    };
    *calls += 1;
    let data = w
        .executor
        .send(w.shop, w.lane, &staged, MUTATION_COST)
        .await?;
    let (targets, errors) = data
        .staged_uploads_create
        .map(|p| (p.staged_targets, p.user_errors))
        .unwrap_or_default();
    let Some((url, parameters)) = targets
        .into_iter()
        .flatten()
        .next()
        .and_then(|t| Some((t.url?, t.parameters)))
    else {
        let errors = serde_json::to_string(&errors).unwrap_or_default();
        return Err(StartError::Prepare(format!(
            "Shopify staged no upload: {errors}"
        )));
    };
    let Some(path) = parameters
        .iter()
        .find(|p| p.name == "key")
        .map(|p| p.value.clone())
    else {
        return Err(StartError::Prepare(
            "Shopify's staged upload has no key".into(),
        ));
    };
    let mut form = reqwest::multipart::Form::new();
    for p in parameters {
        form = form.text(p.name, p.value);
    }
    let file = reqwest::multipart::Part::bytes(jsonl)
        .file_name(filename)
        .mime_str("text/jsonl")
        .map_err(|e| StartError::Prepare(format!("the upload's content type: {e}")))?;
    w.download
        .post(url)
        .multipart(form.part("file", file))
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
    Ok(wire::variables(&BulkMutationStart {
        mutation: document.text.to_string(),
        path,
    }))
}
