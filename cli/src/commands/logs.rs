//! `shopbridge logs RUN [--level L]`: a run's log, oldest first: what happened to which item and what to do.

use serde::Serialize;
use shopbridge_proto::{common::PageRequest, runs::LogEntry, scheduler as pb};

use crate::{
    cli::LogsArgs,
    client::Ctx,
    commands::runs::RUNS_HINT,
    error::{CallExt, CliError, Exit},
    names::level_name,
    output::{self, or_dash},
};

/// A log entry as the CLI prints it; the JSON field names are stable.
#[derive(Debug, Serialize)]
pub struct LogEntryView {
    pub key: String,
    pub level: String,
    pub code: String,
    pub message: String,
    pub entity: Option<EntityView>,
    pub action: String,
    pub at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EntityView {
    pub kind: String,
    pub value: String,
    pub shopify_id: Option<String>,
}

impl From<LogEntry> for LogEntryView {
    fn from(e: LogEntry) -> Self {
        Self {
            level: level_name(e.level),
            at: output::rfc3339(e.at.as_ref()),
            entity: e.entity.map(|entity| EntityView {
                kind: entity.kind,
                value: entity.value,
                shopify_id: (!entity.shopify_id.is_empty()).then_some(entity.shopify_id),
            }),
            key: e.key,
            code: e.code,
            message: e.message,
            action: e.action,
        }
    }
}

impl EntityView {
    fn label(&self) -> String {
        match (&self.kind, &self.value) {
            (kind, value) if kind.is_empty() => value.clone(),
            (kind, value) => format!("{kind} {value}"),
        }
    }
}

pub async fn run(ctx: &Ctx, args: LogsArgs) -> Result<Exit, CliError> {
    if args.limit == 0 {
        return Err(CliError::usage("--limit must be at least 1"));
    }
    let limit = args.limit as usize;
    let mut client = ctx.scheduler().await?;
    let mut entries = Vec::new();
    let mut page_token = String::new();
    let more = loop {
        let response = client
            .list_run_log(pb::ListRunLogRequest {
                run_id: args.run.clone(),
                min_level: args.level.map_or(0, |l| l.proto() as i32),
                page: Some(PageRequest {
                    page_size: (limit - entries.len()).min(500) as u32,
                    page_token,
                }),
            })
            .await
            .or_fail(&ctx.scheduler)
            .map_err(|e| e.with_hint(Exit::NotFound, RUNS_HINT))?;
        let room = limit - entries.len();
        let got = response.entries.len();
        entries.extend(response.entries.into_iter().take(room));
        page_token = response.page.map(|p| p.next_page_token).unwrap_or_default();
        if page_token.is_empty() {
            break got > room;
        }
        if entries.len() >= limit {
            break true;
        }
    };
    let views: Vec<LogEntryView> = entries.into_iter().map(Into::into).collect();
    if ctx.json() {
        output::json(&views)?;
        return Ok(Exit::Ok);
    }
    if views.is_empty() {
        eprintln!("the log of run {} has no entries at that level", args.run);
        return Ok(Exit::Ok);
    }
    let rows = views
        .iter()
        .map(|e| {
            vec![
                e.level.clone(),
                e.code.clone(),
                or_dash(&e.entity.as_ref().map(EntityView::label).unwrap_or_default()),
                e.message.clone(),
                or_dash(&e.action),
            ]
        })
        .collect();
    output::table(&["level", "code", "entity", "message", "action"], rows)?;
    if more {
        eprintln!(
            "showing the first {limit} entries; see more with --limit, or fewer with --level warning"
        );
    }
    Ok(Exit::Ok)
}
