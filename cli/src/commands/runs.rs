//! `shopbridge runs [filters]`, `runs show RUN`, `runs cancel RUN`: the scheduler's run registry.

use std::collections::HashMap;

use serde::Serialize;
use shopbridge_proto::{common::PageRequest, runs::Counters, scheduler as pb};

use crate::{
    cli::{RunsArgs, RunsCommand, RunsListArgs},
    client::Ctx,
    commands::channels,
    error::{CallExt, CliError, Exit},
    names::{operation_name, status_name, trigger_name},
    output::{self, or_dash},
};

pub const RUNS_HINT: &str = "see recent runs with `shopbridge runs`";

/// A run as the CLI prints it; the JSON field names are stable.
#[derive(Debug, Serialize)]
pub struct RunView {
    pub run_id: String,
    pub channel_id: String,
    pub operation: String,
    pub trigger: String,
    pub status: String,
    pub counters: CountersView,
    /// Items expected; 0 while unknown.
    pub total: u64,
    pub stage: String,
    pub error: Option<String>,
    /// Log entries at error and warning level.
    pub errors: u64,
    pub warnings: u64,
    pub due_at: Option<String>,
    pub requested_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct CountersView {
    pub processed: u64,
    pub created: u64,
    pub linked: u64,
    pub updated: u64,
    pub skipped: u64,
    pub failed: u64,
}

impl From<Option<Counters>> for CountersView {
    fn from(c: Option<Counters>) -> Self {
        let c = c.unwrap_or_default();
        Self {
            processed: c.processed,
            created: c.created,
            linked: c.linked,
            updated: c.updated,
            skipped: c.skipped,
            failed: c.failed,
        }
    }
}

impl CountersView {
    pub fn summary(&self) -> String {
        format!(
            "created {}, linked {}, updated {}, skipped {}, failed {}",
            self.created, self.linked, self.updated, self.skipped, self.failed
        )
    }
}

impl From<pb::Run> for RunView {
    fn from(r: pb::Run) -> Self {
        Self {
            operation: operation_name(r.operation).to_string(),
            trigger: trigger_name(r.trigger),
            status: status_name(r.status),
            counters: r.counters.into(),
            due_at: output::rfc3339(r.due_at.as_ref()),
            requested_at: output::rfc3339(r.requested_at.as_ref()),
            started_at: output::rfc3339(r.started_at.as_ref()),
            finished_at: output::rfc3339(r.finished_at.as_ref()),
            error: (!r.error.is_empty()).then_some(r.error),
            run_id: r.run_id,
            channel_id: r.channel_id,
            total: r.total,
            stage: r.stage,
            errors: r.errors,
            warnings: r.warnings,
        }
    }
}

impl RunView {
    /// `12/40` or `12` while the total is unknown.
    pub fn progress(&self) -> String {
        if self.total > 0 {
            format!("{}/{}", self.counters.processed, self.total)
        } else {
            self.counters.processed.to_string()
        }
    }
}

pub async fn run(ctx: &Ctx, args: RunsArgs) -> Result<Exit, CliError> {
    match args.command {
        None => list(ctx, args.list).await,
        Some(RunsCommand::Show { run }) => {
            let run = get(ctx, &run).await?;
            print_run(ctx, &run.into())?;
            Ok(Exit::Ok)
        }
        Some(RunsCommand::Cancel { run }) => {
            let cancelled = ctx
                .scheduler()
                .await?
                .cancel_run(pb::CancelRunRequest { run_id: run })
                .await
                .or_fail(&ctx.scheduler)
                .map_err(|e| e.with_hint(Exit::NotFound, RUNS_HINT))?
                .run
                .ok_or_else(|| CliError::other("the scheduler answered without the run"))?;
            let view = RunView::from(cancelled);
            if !ctx.json() {
                eprintln!(
                    "cancel requested; the run stops at its next safe point: follow it with `shopbridge runs show {}`",
                    view.run_id
                );
            }
            print_run(ctx, &view)?;
            Ok(Exit::Ok)
        }
    }
}

pub async fn get(ctx: &Ctx, run_id: &str) -> Result<pb::Run, CliError> {
    ctx.scheduler()
        .await?
        .get_run(pb::GetRunRequest {
            run_id: run_id.to_string(),
        })
        .await
        .or_fail(&ctx.scheduler)
        .map_err(|e| e.with_hint(Exit::NotFound, RUNS_HINT))?
        .run
        .ok_or_else(|| CliError::other("the scheduler answered without the run"))
}

async fn list(ctx: &Ctx, args: RunsListArgs) -> Result<Exit, CliError> {
    if args.limit == 0 {
        return Err(CliError::usage("--limit must be at least 1"));
    }
    let channel_id = match &args.channel {
        Some(channel) => channels::resolve_id(ctx, channel).await?,
        None => String::new(),
    };
    let mut runs = Vec::new();
    let mut page_token = String::new();
    let mut client = ctx.scheduler().await?;
    loop {
        let remaining = args.limit as usize - runs.len();
        let response = client
            .list_runs(pb::ListRunsRequest {
                channel_id: channel_id.clone(),
                operation: args.operation.map_or(0, |o| o.proto() as i32),
                statuses: args.status.iter().map(|s| s.proto() as i32).collect(),
                since: None,
                until: None,
                page: Some(PageRequest {
                    page_size: remaining.min(100) as u32,
                    page_token,
                }),
            })
            .await
            .or_fail(&ctx.scheduler)
            .map_err(|e| {
                e.with_hint(
                    Exit::NotFound,
                    "see your channels with `shopbridge channels list`",
                )
            })?;
        runs.extend(response.runs.into_iter().take(remaining));
        page_token = response.page.map(|p| p.next_page_token).unwrap_or_default();
        if page_token.is_empty() || runs.len() >= args.limit as usize {
            break;
        }
    }
    let views: Vec<RunView> = runs.into_iter().map(Into::into).collect();
    if ctx.json() {
        output::json(&views)?;
        return Ok(Exit::Ok);
    }
    if views.is_empty() {
        eprintln!(
            "no runs match: start one with `shopbridge run OPERATION --channel C`, or loosen the filters"
        );
        return Ok(Exit::Ok);
    }
    let names = channels::names_by_id(ctx).await;
    let rows = views
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                channel_label(&names, &r.channel_id),
                r.operation.clone(),
                r.status.clone(),
                r.trigger.clone(),
                r.progress(),
                r.counters.failed.to_string(),
                format!("{}/{}", r.errors, r.warnings),
                output::human_time(r.requested_at.as_deref()),
                output::human_time(r.finished_at.as_deref()),
            ]
        })
        .collect();
    output::table(
        &[
            "run",
            "channel",
            "operation",
            "status",
            "trigger",
            "processed",
            "failed",
            "errors/warnings",
            "requested",
            "finished",
        ],
        rows,
    )?;
    Ok(Exit::Ok)
}

fn channel_label(names: &HashMap<String, String>, id: &str) -> String {
    names.get(id).cloned().unwrap_or_else(|| id.to_string())
}

/// One run, as fields or JSON.
pub fn print_run(ctx: &Ctx, view: &RunView) -> Result<(), CliError> {
    if ctx.json() {
        return output::json(view);
    }
    let c = &view.counters;
    output::fields(&[
        ("run", view.run_id.clone()),
        ("channel", view.channel_id.clone()),
        ("operation", view.operation.clone()),
        ("status", view.status.clone()),
        ("trigger", view.trigger.clone()),
        ("stage", or_dash(&view.stage)),
        ("processed", view.progress()),
        ("created", c.created.to_string()),
        ("linked", c.linked.to_string()),
        ("updated", c.updated.to_string()),
        ("skipped", c.skipped.to_string()),
        ("failed", c.failed.to_string()),
        ("log errors", view.errors.to_string()),
        ("log warnings", view.warnings.to_string()),
        ("error", or_dash(view.error.as_deref().unwrap_or_default())),
        ("due", output::human_time(view.due_at.as_deref())),
        (
            "requested",
            output::human_time(view.requested_at.as_deref()),
        ),
        ("started", output::human_time(view.started_at.as_deref())),
        ("finished", output::human_time(view.finished_at.as_deref())),
    ])
}
