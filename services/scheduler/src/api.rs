//! `SchedulerService`: schedules, Run now, cancel, the run registry and each run's log. Every call sits behind the
//! platform's auth interceptor; reads need `runs:read`, changes `runs:write`, and every query is scoped to the
//! token's tenant (another tenant's channel or run is NOT_FOUND).

use std::{pin::Pin, sync::Arc};

use chrono::Utc;
use futures::Stream;
use shopbridge_platform::{error::ApiError, grpc::principal};
use shopbridge_proto::{
    runs::LogLevel,
    scheduler::{self as pb, scheduler_service_server::SchedulerService},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    channels,
    config::ServiceSettings,
    convert,
    domain::{Operation, RunStatus, Trigger},
    registry::{self, NewRun, RunFilter},
    runlog, schedules,
    timing::Timing,
    watch,
};

pub const RUNS_READ: &str = "runs:read";
pub const RUNS_WRITE: &str = "runs:write";

#[derive(Clone)]
pub struct Api {
    pub pool: PgPool,
    pub settings: Arc<ServiceSettings>,
    /// Cancelled when the service shuts down: open WatchRun streams end.
    pub shutdown: CancellationToken,
}

/// The caller's tenant, after checking it holds `scope`.
fn authorize<T>(request: &Request<T>, scope: &str) -> Result<String, Status> {
    let principal = principal(request)?;
    principal.require_scope(scope)?;
    if principal.tenant_id.trim().is_empty() {
        return Err(Status::unauthenticated("the token names no tenant"));
    }
    Ok(principal.tenant_id.clone())
}

impl Api {
    fn require_available(&self, operation: Operation) -> Result<(), ApiError> {
        if self.settings.is_available(operation) {
            Ok(())
        } else {
            Err(ApiError::FailedPrecondition(format!(
                "{} is not available in this deployment yet: its {} service is not deployed (available: {})",
                operation.title(),
                operation.owner(),
                self.available_titles()
            )))
        }
    }

    fn available_titles(&self) -> String {
        if self.settings.operations.is_empty() {
            return "none".into();
        }
        self.settings
            .operations
            .iter()
            .map(|op| op.title())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn timing_of(schedule: &pb::Schedule) -> Result<Timing, ApiError> {
    let invalid = |e: crate::timing::TimingError| ApiError::InvalidArgument(e.0);
    match &schedule.timing {
        None => Err(ApiError::InvalidArgument(
            "the schedule needs a timing: set interval_seconds or cron".into(),
        )),
        Some(pb::schedule::Timing::IntervalSeconds(seconds)) => {
            Timing::interval(*seconds).map_err(invalid)
        }
        Some(pb::schedule::Timing::Cron(cron)) => {
            Timing::cron(&cron.expression, &cron.time_zone).map_err(invalid)
        }
    }
}

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchRunResponse, Status>> + Send>>;

#[tonic::async_trait]
impl SchedulerService for Api {
    async fn set_schedule(
        &self,
        request: Request<pb::SetScheduleRequest>,
    ) -> Result<Response<pb::SetScheduleResponse>, Status> {
        let tenant = authorize(&request, RUNS_WRITE)?;
        let schedule = request
            .into_inner()
            .schedule
            .ok_or_else(|| ApiError::InvalidArgument("schedule is required".into()))?;
        let operation = Operation::from_proto(schedule.operation)?;
        let timing = timing_of(&schedule)?;
        let channel = channels::require(&self.pool, &tenant, &schedule.channel_id).await?;
        self.require_available(operation)?;
        let saved = schedules::set(
            &self.pool,
            &channel,
            operation,
            schedule.enabled,
            &timing,
            Utc::now(),
        )
        .await?;
        Ok(Response::new(pb::SetScheduleResponse {
            schedule: Some(saved.to_proto(&channel, true)),
        }))
    }

    async fn get_schedule(
        &self,
        request: Request<pb::GetScheduleRequest>,
    ) -> Result<Response<pb::GetScheduleResponse>, Status> {
        let tenant = authorize(&request, RUNS_READ)?;
        let request = request.into_inner();
        let operation = Operation::from_proto(request.operation)?;
        let channel = channels::require(&self.pool, &tenant, &request.channel_id).await?;
        let schedule = schedules::get(&self.pool, &tenant, &channel.channel_id, operation)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "channel {} has no schedule for {}; set one with SetSchedule (`shopbridge schedules set`)",
                    channel.channel_id,
                    operation.title()
                ))
            })?;
        Ok(Response::new(pb::GetScheduleResponse {
            schedule: Some(schedule.to_proto(&channel, self.settings.is_available(operation))),
        }))
    }

    async fn list_schedules(
        &self,
        request: Request<pb::ListSchedulesRequest>,
    ) -> Result<Response<pb::ListSchedulesResponse>, Status> {
        let tenant = authorize(&request, RUNS_READ)?;
        let channel_id = request.into_inner().channel_id;
        let channel_id = channel_id.trim();
        let filter = if channel_id.is_empty() {
            None
        } else {
            Some(
                channels::require(&self.pool, &tenant, channel_id)
                    .await?
                    .channel_id,
            )
        };
        let schedules = schedules::list(&self.pool, &tenant, filter.as_deref()).await?;
        Ok(Response::new(pb::ListSchedulesResponse {
            schedules: schedules
                .iter()
                .map(|(schedule, channel)| {
                    let available = schedule
                        .operation()
                        .is_some_and(|op| self.settings.is_available(op));
                    schedule.to_proto(channel, available)
                })
                .collect(),
        }))
    }

    async fn run_now(
        &self,
        request: Request<pb::RunNowRequest>,
    ) -> Result<Response<pb::RunNowResponse>, Status> {
        let tenant = authorize(&request, RUNS_WRITE)?;
        let request = request.into_inner();
        let operation = Operation::from_proto(request.operation)?;
        let channel = channels::require(&self.pool, &tenant, &request.channel_id).await?;
        self.require_available(operation)?;
        channel.require_active()?;
        let run = registry::run_now(
            &self.pool,
            &NewRun {
                run_id: Uuid::now_v7(),
                tenant_id: tenant,
                channel_id: channel.channel_id.clone(),
                shop_domain: channel.shop_domain.clone(),
                operation,
                trigger: Trigger::Manual,
                due_at: None,
                fired_by: None,
                requested_at: Utc::now(),
            },
        )
        .await?;
        Ok(Response::new(pb::RunNowResponse {
            run: Some(run.to_proto()),
        }))
    }

    async fn cancel_run(
        &self,
        request: Request<pb::CancelRunRequest>,
    ) -> Result<Response<pb::CancelRunResponse>, Status> {
        let tenant = authorize(&request, RUNS_WRITE)?;
        let run_id = registry::parse_run_id(&request.get_ref().run_id)?;
        let run = registry::cancel(&self.pool, &tenant, run_id).await?;
        Ok(Response::new(pb::CancelRunResponse {
            run: Some(run.to_proto()),
        }))
    }

    async fn list_runs(
        &self,
        request: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let tenant = authorize(&request, RUNS_READ)?;
        let request = request.into_inner();
        let channel_id = request.channel_id.trim();
        let channel_id = if channel_id.is_empty() {
            None
        } else {
            Some(
                channels::require(&self.pool, &tenant, channel_id)
                    .await?
                    .channel_id,
            )
        };
        let operation = if request.operation == 0 {
            None
        } else {
            Some(Operation::from_proto(request.operation)?)
        };
        let statuses = request
            .statuses
            .iter()
            .map(|s| RunStatus::from_proto(*s))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = RunFilter {
            channel_id,
            operation,
            statuses,
            since: convert::optional_timestamp(request.since.as_ref(), "since")?,
            until: convert::optional_timestamp(request.until.as_ref(), "until")?,
        };
        let page = request.page.unwrap_or_default();
        let after = convert::parse_page_token::<Uuid>(&page.page_token)?;
        let (runs, next) = registry::list(
            &self.pool,
            &tenant,
            &filter,
            after,
            convert::page_size(page.page_size),
        )
        .await?;
        Ok(Response::new(pb::ListRunsResponse {
            runs: runs.iter().map(registry::Run::to_proto).collect(),
            page: Some(shopbridge_proto::common::PageResponse {
                next_page_token: next.unwrap_or_default(),
            }),
        }))
    }

    async fn get_run(
        &self,
        request: Request<pb::GetRunRequest>,
    ) -> Result<Response<pb::GetRunResponse>, Status> {
        let tenant = authorize(&request, RUNS_READ)?;
        let run_id = registry::parse_run_id(&request.get_ref().run_id)?;
        let run = registry::get(&self.pool, &tenant, run_id).await?;
        Ok(Response::new(pb::GetRunResponse {
            run: Some(run.to_proto()),
        }))
    }

    async fn list_run_log(
        &self,
        request: Request<pb::ListRunLogRequest>,
    ) -> Result<Response<pb::ListRunLogResponse>, Status> {
        let tenant = authorize(&request, RUNS_READ)?;
        let request = request.into_inner();
        let run_id = registry::parse_run_id(&request.run_id)?;
        // The run must be the caller's: its log is scoped through it.
        registry::get(&self.pool, &tenant, run_id).await?;
        let min_level = LogLevel::try_from(request.min_level).map_err(|_| {
            ApiError::InvalidArgument(format!("unknown min_level {}", request.min_level))
        })?;
        let page = request.page.unwrap_or_default();
        let after = convert::parse_page_token::<i64>(&page.page_token)?;
        let (entries, next) = runlog::page(
            &self.pool,
            run_id,
            min_level,
            after,
            convert::page_size(page.page_size),
        )
        .await?;
        Ok(Response::new(pb::ListRunLogResponse {
            entries: entries.iter().map(runlog::Entry::to_proto).collect(),
            page: Some(shopbridge_proto::common::PageResponse {
                next_page_token: next.unwrap_or_default(),
            }),
        }))
    }

    type WatchRunStream = WatchStream;

    async fn watch_run(
        &self,
        request: Request<pb::WatchRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        let tenant = authorize(&request, RUNS_READ)?;
        let run_id = registry::parse_run_id(&request.get_ref().run_id)?;
        let run = registry::get(&self.pool, &tenant, run_id).await?;
        Ok(Response::new(watch::stream(
            self.pool.clone(),
            tenant,
            run,
            self.settings.watch_poll(),
            self.shutdown.clone(),
        )))
    }
}
