//! `shopbridge run OPERATION --channel C [--wait]`: the spec's "Run Sync". With `--wait` the CLI follows the
//! scheduler's WatchRun stream with a progress bar (on stderr, when it is a terminal) until the run has a final
//! status, prints the run, and exits by its outcome: 0 succeeded, 5 partial, 4 failed, cancelled or skipped.

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shopbridge_proto::scheduler::{self as pb, RunStatus};
use tonic::Code;

use crate::{
    cli::RunArgs,
    client::Ctx,
    commands::{
        channels,
        runs::{RunView, print_run},
    },
    error::{CallExt, CliError, Exit},
    names::{is_final, status_name},
};

/// How many times in a row the watch may break (a scheduler restart, a network blip) before the CLI gives up.
const MAX_RETRIES: u32 = 6;

/// The exit code of Ctrl-C while following a run (128 + SIGINT, as shells report it); the run goes on.
const INTERRUPTED: u8 = 130;

pub async fn run(ctx: &Ctx, args: RunArgs) -> Result<Exit, CliError> {
    let channel_id = channels::resolve_id(ctx, &args.channel).await?;
    let requested = ctx
        .scheduler()
        .await?
        .run_now(pb::RunNowRequest {
            channel_id,
            operation: args.operation.proto() as i32,
        })
        .await
        .or_fail(&ctx.scheduler)
        .map_err(|e| {
            e.with_hint(
                Exit::NotFound,
                "see your channels with `shopbridge channels list`",
            )
            .with_hint(
                Exit::Conflict,
                &format!(
                    "check the channel with `shopbridge channels show {}` and runs in progress with `shopbridge runs \
                     --channel {} --status requested,running,cancelling`",
                    args.channel, args.channel
                ),
            )
        })?
        .run
        .ok_or_else(|| CliError::other("the scheduler answered without the run"))?;
    let run_id = requested.run_id.clone();
    if !args.wait {
        if !ctx.json() {
            eprintln!(
                "run {run_id} requested; follow it with `shopbridge runs show {run_id}` and `shopbridge logs {run_id}`"
            );
        }
        print_run(ctx, &requested.into())?;
        return Ok(Exit::Ok);
    }

    let progress = Progress::new(!ctx.json());
    progress.update(&requested);
    let followed = tokio::select! {
        followed = follow(ctx, &run_id, &progress) => followed,
        _ = tokio::signal::ctrl_c() => {
            progress.bar.abandon();
            eprintln!(
                "stopped following run {run_id}; it goes on: `shopbridge runs show {run_id}`, or stop it with \
                 `shopbridge runs cancel {run_id}`"
            );
            std::process::exit(i32::from(INTERRUPTED));
        }
    };
    progress.bar.finish_and_clear();
    let finished = followed?;
    let view = RunView::from(finished.clone());
    print_run(ctx, &view)?;
    Ok(outcome(&view, finished.status))
}

/// The exit code for a finished run, with one line on stderr saying what to do when it did not succeed.
fn outcome(view: &RunView, status: i32) -> Exit {
    let id = &view.run_id;
    match RunStatus::try_from(status) {
        Ok(RunStatus::Succeeded) => Exit::Ok,
        Ok(RunStatus::Partial) => {
            eprintln!(
                "run {id} finished partially: {} items failed; see why with `shopbridge logs {id} --level warning`",
                view.counters.failed
            );
            Exit::RunPartial
        }
        _ => {
            let why = view.error.as_deref().unwrap_or("no reason given");
            eprintln!(
                "run {id} {}: {why}; see `shopbridge logs {id}` for what to do",
                status_name(status)
            );
            Exit::RunFailed
        }
    }
}

/// Follows the run until it has a final status, re-watching after a broken stream.
async fn follow(ctx: &Ctx, run_id: &str, progress: &Progress) -> Result<pb::Run, CliError> {
    let mut failures = 0;
    loop {
        let broken = match ctx
            .scheduler()
            .await?
            .watch_run(pb::WatchRunRequest {
                run_id: run_id.to_string(),
            })
            .await
        {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => {
                            let Some(run) = message.run else { continue };
                            failures = 0;
                            progress.update(&run);
                            if is_final(run.status) {
                                return Ok(run);
                            }
                        }
                        // The stream ends after the final status; an end without one is a break to repair.
                        Ok(None) => break None,
                        Err(status) => break Some(status),
                    }
                }
            }
            Err(status) => Some(status),
        };
        if let Some(status) = &broken
            && !matches!(
                status.code(),
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Aborted
                    | Code::Unknown
                    | Code::Internal
            )
        {
            return Err(CliError::from_status(
                status,
                ctx.scheduler.service,
                &ctx.scheduler.url,
            ));
        }
        failures += 1;
        if failures > MAX_RETRIES {
            let mut err = match &broken {
                Some(status) => {
                    CliError::from_status(status, ctx.scheduler.service, &ctx.scheduler.url)
                }
                None => CliError::other("the scheduler keeps closing the watch of the run"),
            };
            err.message = format!(
                "lost track of run {run_id} ({}); the run goes on: `shopbridge runs show {run_id}`",
                err.message
            );
            return Err(err);
        }
        tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(failures.min(4)))).await;
    }
}

/// The progress bar (a spinner while the total is unknown). When stderr is not a terminal, status and stage
/// changes are printed as lines instead (for CI logs), unless the output is JSON.
struct Progress {
    bar: ProgressBar,
    lines: bool,
    last_line: std::sync::Mutex<LastLine>,
}

/// What the last printed line said, so lines come on a change of status or stage, or every few seconds.
struct LastLine {
    key: String,
    processed: u64,
    at: Instant,
}

impl Progress {
    fn new(human: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(spinner_style());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self {
            bar,
            lines: human && !terminal,
            last_line: std::sync::Mutex::new(LastLine {
                key: String::new(),
                processed: 0,
                at: Instant::now(),
            }),
        }
    }

    fn update(&self, run: &pb::Run) {
        let view = RunView::from(run.clone());
        if run.total > 0 {
            if self.bar.length() != Some(run.total) {
                self.bar.set_style(bar_style());
                self.bar.set_length(run.total);
            }
        } else if self.bar.length().is_some() {
            self.bar.set_style(spinner_style());
            self.bar.unset_length();
        }
        self.bar.set_position(view.counters.processed);
        let stage = if view.stage.is_empty() {
            String::new()
        } else {
            format!(" · {}", view.stage)
        };
        let message = format!("{}{stage} · {}", view.status, view.counters.summary());
        self.bar.set_message(message.clone());
        if self.lines {
            let key = format!("{}{stage}", view.status);
            let processed = view.counters.processed;
            let mut last = self.last_line.lock().expect("progress lock");
            let due = last.at.elapsed() > Duration::from_secs(5) && last.processed != processed;
            if last.key != key || due {
                eprintln!("{} {} · {message}", view.operation, view.progress());
                *last = LastLine {
                    key,
                    processed,
                    at: Instant::now(),
                };
            }
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {pos} processed · {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {elapsed:>4} · {wide_msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}
