//! bulkOperationRunQuery/RunMutation (validation, per-shop concurrency), bulkOperationCancel and stagedUploadsCreate.

use super::super::{Ctx, K, R, V, rec, user_error, user_errors};
use super::s;
use crate::model::{BulkOp, Store, gid};
use serde_json::{Map, Value, json};

pub(super) fn bulk_run(
    cx: &Ctx<'_>,
    kind: &str,
    doc: &str,
    staged: Option<String>,
    group_objects: bool,
) -> R {
    let ty: &'static str = if kind == "QUERY" {
        "BulkOperationRunQueryPayload"
    } else {
        "BulkOperationRunMutationPayload"
    };
    let fail = |field: &str, msg: String, code: &str| {
        Ok(rec(
            ty,
            vec![
                ("bulkOperation", V::Null),
                (
                    "userErrors",
                    user_errors(vec![user_error(&[field], msg, Some(code))]),
                ),
            ],
        ))
    };
    let mut st = cx.store.borrow_mut();
    let st: &mut Store = &mut st;
    // From 2026-01, up to five bulk operations of any type run at once per app and shop [SD]
    // https://shopify.dev/changelog/faster-bulk-operations (before: one query and one mutation).
    let running: Vec<u64> = st
        .bulk_ops
        .values()
        .filter(|b| matches!(b.status.as_str(), "CREATED" | "RUNNING" | "CANCELING"))
        .map(|b| b.id)
        .collect();
    // BulkOperationUserErrorCode (query) and BulkMutationErrorCode (mutation) differ.
    let invalid_code = if kind == "QUERY" {
        "INVALID"
    } else {
        "INVALID_MUTATION"
    };
    let check = if kind == "QUERY" {
        crate::bulk::validate_bulk_query(doc)
    } else {
        crate::bulk::validate_bulk_mutation(doc)
    };
    if let Err(m) = check {
        return fail(
            if kind == "QUERY" { "query" } else { "mutation" },
            m,
            invalid_code,
        );
    }
    if running.len() >= cx.bulk_limit {
        let what = if kind == "QUERY" { "query" } else { "mutation" };
        return fail(
            if kind == "QUERY" { "query" } else { "mutation" },
            format!(
                "A bulk {what} operation cannot start: {} bulk operations for this app and shop are already in \
                 progress ({}).",
                running.len(),
                gid("BulkOperation", running[0])
            ),
            "OPERATION_IN_PROGRESS",
        );
    }
    if kind == "MUTATION"
        && staged
            .as_deref()
            .is_none_or(|p| !crate::bulk::staged_exists(&st.domain, p))
    {
        return fail(
            "stagedUploadPath",
            "The staged upload path does not exist.".into(),
            "NO_SUCH_FILE",
        );
    }
    let id = st.next_id();
    st.bulk_ops.insert(
        id,
        BulkOp {
            id,
            kind: kind.into(),
            status: "CREATED".into(),
            query: doc.into(),
            error_code: None,
            object_count: 0,
            root_object_count: 0,
            file_size: None,
            url: None,
            partial_url: None,
            created_at: cx.now,
            completed_at: None,
            staged_path: staged,
            group_objects,
        },
    );
    Ok(rec(
        ty,
        vec![
            ("bulkOperation", V::Obj(K::BulkOp(id))),
            ("userErrors", user_errors(vec![])),
        ],
    ))
}

/// bulkOperationCancel: an operation that has not ended is CANCELING until the runner ends it CANCELED (the
/// simulator runs an operation in one step, so only one that has not started yet can be canceled in practice).
pub(super) fn bulk_cancel(cx: &Ctx<'_>, id: &str) -> R {
    let ty = "BulkOperationCancelPayload";
    let mut st = cx.store.borrow_mut();
    let op = crate::model::parse_gid_of(id, "BulkOperation").and_then(|n| st.bulk_ops.get_mut(&n));
    let error = match op {
        None => Some("Bulk operation does not exist".to_string()),
        Some(op) if matches!(op.status.as_str(), "CREATED" | "RUNNING") => {
            op.status = "CANCELING".into();
            None
        }
        Some(op) => Some(format!(
            "A bulk operation cannot be canceled when it is {}",
            op.status.to_lowercase()
        )),
    };
    let operation = match &error {
        None => crate::model::parse_gid_of(id, "BulkOperation")
            .map_or(V::Null, |n| V::Obj(K::BulkOp(n))),
        Some(_) => V::Null,
    };
    Ok(rec(
        ty,
        vec![
            ("bulkOperation", operation),
            (
                "userErrors",
                user_errors(
                    error
                        .map(|m| user_error(&["id"], m, None))
                        .into_iter()
                        .collect(),
                ),
            ),
        ],
    ))
}

pub(super) fn staged_uploads_create(cx: &Ctx<'_>, args: &Map<String, Value>) -> R {
    let st = cx.store.borrow();
    let mut targets = Vec::new();
    let mut errs = Vec::new();
    for (i, inp) in args
        .get("input")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let resource = s(inp, "resource").unwrap_or("");
        if resource != "BULK_MUTATION_VARIABLES" {
            errs.push(user_error(
                &["input", &i.to_string(), "resource"],
                "The simulator stages BULK_MUTATION_VARIABLES uploads only",
                None,
            ));
            continue;
        }
        let key = format!(
            "tmp/{}/bulk/{}/{}",
            st.domain,
            uuid::Uuid::new_v4(),
            s(inp, "filename").unwrap_or("bulk.jsonl")
        );
        let url = format!("{}/_sim/uploads", cx.base_url);
        targets.push(json!({
            "url": url,
            "resourceUrl": null,
            "parameters": [
                {"name": "Content-Type", "value": s(inp, "mimeType").unwrap_or("text/jsonl")},
                {"name": "success_action_status", "value": "201"},
                {"name": "acl", "value": "private"},
                {"name": "key", "value": key},
            ],
        }));
    }
    Ok(rec(
        "StagedUploadsCreatePayload",
        vec![
            ("stagedTargets", V::Json(Value::Array(targets))),
            ("userErrors", user_errors(errs)),
        ],
    ))
}
