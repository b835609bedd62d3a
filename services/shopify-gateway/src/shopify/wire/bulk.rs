//! Bulk operations: start (query or mutation), poll, the app's current one, staged uploads.

use serde::{Deserialize, Serialize};

use super::{Request, UserError};
use crate::shopify::documents::{self, Document};

/// `bulk_export_start`: `bulkOperationRunQuery`.
#[derive(Debug, Clone, Serialize)]
pub struct BulkExportStart {
    pub query: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkExportStartData {
    pub bulk_operation_run_query: Option<BulkStartPayload>,
}

impl Request for BulkExportStart {
    const DOCUMENT: Document = documents::BULK_EXPORT_START;
    type Response = BulkExportStartData;
}

/// `bulk_mutation_start`: `bulkOperationRunMutation` of an uploaded JSONL of variables.
#[derive(Debug, Clone, Serialize)]
pub struct BulkMutationStart {
    pub mutation: String,
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkMutationStartData {
    pub bulk_operation_run_mutation: Option<BulkStartPayload>,
}

impl Request for BulkMutationStart {
    const DOCUMENT: Document = documents::BULK_MUTATION_START;
    type Response = BulkMutationStartData;
}

/// What either start answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkStartPayload {
    pub bulk_operation: Option<StartedBulkOperation>,
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StartedBulkOperation {
    pub id: String,
    pub status: String,
}

/// `bulk_operation_poll`.
#[derive(Debug, Clone, Serialize)]
pub struct BulkOperationPoll {
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BulkOperationPollData {
    pub node: Option<PolledBulkOperation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolledBulkOperation {
    pub id: String,
    pub status: String,
    pub error_code: Option<String>,
    pub url: Option<String>,
    pub partial_data_url: Option<String>,
    pub created_at: String,
}

impl Request for BulkOperationPoll {
    const DOCUMENT: Document = documents::BULK_OPERATION_POLL;
    type Response = BulkOperationPollData;
}

/// `current_bulk_operation`.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentBulkOperation {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentBulkOperationData {
    pub current_bulk_operation: Option<CurrentOperation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentOperation {
    pub id: String,
    pub status: String,
    pub query: String,
    pub created_at: String,
}

impl Request for CurrentBulkOperation {
    const DOCUMENT: Document = documents::CURRENT_BULK_OPERATION;
    type Response = CurrentBulkOperationData;
}

/// `staged_upload`: where to upload a bulk mutation's JSONL of variables.
#[derive(Debug, Clone, Serialize)]
pub struct StagedUpload {
    pub input: Vec<StagedUploadInput>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StagedUploadInput {
    pub resource: &'static str,
    pub filename: String,
    pub mime_type: &'static str,
    pub http_method: &'static str,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StagedUploadData {
    pub staged_uploads_create: Option<StagedUploadPayload>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StagedUploadPayload {
    pub staged_targets: Option<Vec<StagedTarget>>,
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StagedTarget {
    pub url: Option<String>,
    pub resource_url: Option<String>,
    pub parameters: Vec<StagedParameter>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StagedParameter {
    pub name: String,
    pub value: String,
}

impl Request for StagedUpload {
    const DOCUMENT: Document = documents::STAGED_UPLOAD;
    type Response = StagedUploadData;
}
