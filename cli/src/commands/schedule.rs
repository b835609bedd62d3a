//! `shopbridge schedule set|show`: when each operation runs on each channel (the scheduler's schedules).

use std::collections::HashMap;

use serde::Serialize;
use shopbridge_proto::scheduler::{self as pb, schedule::Timing};
use tonic::Code;

use crate::{
    cli::{ScheduleCommand, ScheduleSetArgs},
    client::Ctx,
    commands::channels,
    error::{CallExt, CliError, Exit},
    names::operation_name,
    output::{self, or_dash},
};

/// A schedule as the CLI prints it; the JSON field names are stable. Exactly one of `every_seconds` and `cron` is
/// set.
#[derive(Debug, Serialize)]
pub struct ScheduleView {
    pub channel_id: String,
    pub operation: String,
    pub enabled: bool,
    pub every_seconds: Option<u32>,
    pub cron: Option<String>,
    /// The time zone of `cron`; UTC when absent.
    pub time_zone: Option<String>,
    pub next_due_at: Option<String>,
    pub last_fired_at: Option<String>,
    pub paused_reason: Option<String>,
}

impl From<pb::Schedule> for ScheduleView {
    fn from(s: pb::Schedule) -> Self {
        let (every_seconds, cron, time_zone) = match s.timing {
            Some(Timing::IntervalSeconds(seconds)) => (Some(seconds), None, None),
            Some(Timing::Cron(cron)) => (
                None,
                Some(cron.expression),
                (!cron.time_zone.is_empty()).then_some(cron.time_zone),
            ),
            None => (None, None, None),
        };
        Self {
            operation: operation_name(s.operation).to_string(),
            next_due_at: output::rfc3339(s.next_due_at.as_ref()),
            last_fired_at: output::rfc3339(s.last_fired_at.as_ref()),
            paused_reason: (!s.paused_reason.is_empty()).then_some(s.paused_reason),
            channel_id: s.channel_id,
            enabled: s.enabled,
            every_seconds,
            cron,
            time_zone,
        }
    }
}

impl ScheduleView {
    fn timing(&self) -> String {
        match (&self.every_seconds, &self.cron) {
            (Some(seconds), _) => format!("every {}", format_interval(*seconds)),
            (None, Some(cron)) => format!(
                "cron \"{cron}\" ({})",
                self.time_zone.as_deref().unwrap_or("UTC")
            ),
            (None, None) => "-".into(),
        }
    }
}

/// `90s`, `15m`, `2h`, `1d` or plain seconds.
pub fn parse_interval(text: &str) -> Result<u32, CliError> {
    let invalid = || {
        CliError::usage(format!(
            "--every `{text}` is not an interval: write a whole number with a unit, e.g. 90s, 15m, 2h or 1d"
        ))
    };
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let unit = match unit.trim() {
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    let seconds = number.checked_mul(unit).ok_or_else(invalid)?;
    if seconds == 0 {
        return Err(CliError::usage("--every must be at least 1s"));
    }
    u32::try_from(seconds).map_err(|_| CliError::usage(format!("--every `{text}` is too long")))
}

fn format_interval(seconds: u32) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

pub async fn run(ctx: &Ctx, cmd: ScheduleCommand) -> Result<Exit, CliError> {
    match cmd {
        ScheduleCommand::Set(args) => set(ctx, args).await,
        ScheduleCommand::Show { channel, operation } => {
            let channel_id = match &channel {
                Some(channel) => channels::resolve_id(ctx, channel).await?,
                None => String::new(),
            };
            let schedules = ctx
                .scheduler()
                .await?
                .list_schedules(pb::ListSchedulesRequest { channel_id })
                .await
                .or_fail(&ctx.scheduler)
                .map_err(|e| {
                    e.with_hint(
                        Exit::NotFound,
                        "see your channels with `shopbridge channels list`",
                    )
                })?
                .schedules;
            let views: Vec<ScheduleView> = schedules
                .into_iter()
                .filter(|s| operation.is_none_or(|o| s.operation == o.proto() as i32))
                .map(Into::into)
                .collect();
            if ctx.json() {
                output::json(&views)?;
            } else if views.is_empty() {
                eprintln!(
                    "no schedules: set one with `shopbridge schedule set --channel C --operation O --every 15m`"
                );
            } else {
                let names = channels::names_by_id(ctx).await;
                print_table(&views, &names)?;
            }
            Ok(Exit::Ok)
        }
    }
}

async fn set(ctx: &Ctx, args: ScheduleSetArgs) -> Result<Exit, CliError> {
    let timing = match (&args.every, &args.cron) {
        (Some(every), _) => Some(Timing::IntervalSeconds(parse_interval(every)?)),
        (None, Some(cron)) => Some(Timing::Cron(pb::Cron {
            expression: cron.trim().to_string(),
            time_zone: args.tz.clone().unwrap_or_default(),
        })),
        (None, None) => None,
    };
    let channel_id = channels::resolve_id(ctx, &args.channel).await?;
    let operation = args.operation.proto() as i32;
    let mut client = ctx.scheduler().await?;
    let timing = match timing {
        Some(timing) => timing,
        // Enabling or disabling keeps the timing the schedule has.
        None => {
            let existing = client
                .get_schedule(pb::GetScheduleRequest {
                    channel_id: channel_id.clone(),
                    operation,
                })
                .await;
            match existing {
                Ok(response) => response
                    .into_inner()
                    .schedule
                    .and_then(|s| s.timing)
                    .ok_or_else(|| no_schedule_yet(&args))?,
                Err(status) if status.code() == Code::NotFound => {
                    return Err(no_schedule_yet(&args));
                }
                Err(status) => {
                    return Err(CliError::from_status(
                        &status,
                        ctx.scheduler.service,
                        &ctx.scheduler.url,
                    ));
                }
            }
        }
    };
    let saved = client
        .set_schedule(pb::SetScheduleRequest {
            schedule: Some(pb::Schedule {
                channel_id,
                operation,
                enabled: !args.disable,
                timing: Some(timing),
                ..Default::default()
            }),
        })
        .await
        .or_fail(&ctx.scheduler)
        .map_err(|e| {
            e.with_hint(
                Exit::NotFound,
                "see your channels with `shopbridge channels list`",
            )
        })?
        .schedule
        .ok_or_else(|| CliError::other("the scheduler answered without the schedule"))?;
    let view = ScheduleView::from(saved);
    if ctx.json() {
        output::json(&view)?;
    } else {
        let names = channels::names_by_id(ctx).await;
        print_table(std::slice::from_ref(&view), &names)?;
    }
    Ok(Exit::Ok)
}

fn no_schedule_yet(args: &ScheduleSetArgs) -> CliError {
    CliError::usage(format!(
        "{} on channel {} has no schedule yet: give its timing with --every (e.g. 15m) or --cron",
        args.operation.name(),
        args.channel
    ))
}

fn print_table(views: &[ScheduleView], names: &HashMap<String, String>) -> Result<(), CliError> {
    let rows = views
        .iter()
        .map(|s| {
            vec![
                names
                    .get(&s.channel_id)
                    .cloned()
                    .unwrap_or_else(|| s.channel_id.clone()),
                s.operation.clone(),
                if s.enabled { "yes" } else { "no" }.to_string(),
                s.timing(),
                output::human_time(s.next_due_at.as_deref()),
                output::human_time(s.last_fired_at.as_deref()),
                or_dash(s.paused_reason.as_deref().unwrap_or_default()),
            ]
        })
        .collect();
    output::table(
        &[
            "channel",
            "operation",
            "enabled",
            "timing",
            "next due",
            "last fired",
            "paused because",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_units() {
        assert_eq!(parse_interval("90s").unwrap(), 90);
        assert_eq!(parse_interval("15m").unwrap(), 900);
        assert_eq!(parse_interval("2h").unwrap(), 7200);
        assert_eq!(parse_interval("1d").unwrap(), 86_400);
        assert_eq!(parse_interval("45").unwrap(), 45);
        for bad in ["", "m", "15x", "0s", "-5m", "1.5h", "99999999999d"] {
            assert_eq!(parse_interval(bad).unwrap_err().exit, Exit::Usage, "{bad}");
        }
        assert_eq!(format_interval(900), "15m");
        assert_eq!(format_interval(90), "90s");
    }
}
