//! WatchRun: the run now, then again after every change, until a message with a final status. Changes come from
//! any replica (reports are consumed by whichever replica pulls them), so the watcher re-reads the run from the
//! database at a short interval and sends it when its `version` moved: one indexed row read per watcher and tick.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::{api::WatchStream, registry};
use shopbridge_proto::scheduler as pb;

pub fn stream(
    pool: PgPool,
    tenant_id: String,
    run: registry::Run,
    poll: Duration,
    shutdown: CancellationToken,
) -> WatchStream {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut version = run.version;
        let mut finished = run.is_final();
        if !send(&tx, &run).await || finished {
            return;
        }
        let run_id = run.run_id;
        while !finished {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = tx
                        .send(Err(Status::unavailable(
                            "the scheduler is shutting down; watch the run again",
                        )))
                        .await;
                    return;
                }
                // The client went away.
                _ = tx.closed() => return,
                _ = tokio::time::sleep(poll) => {}
            }
            match registry::get(&pool, &tenant_id, run_id).await {
                Ok(run) if run.version != version => {
                    version = run.version;
                    finished = run.is_final();
                    if !send(&tx, &run).await {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

async fn send(
    tx: &mpsc::Sender<Result<pb::WatchRunResponse, Status>>,
    run: &registry::Run,
) -> bool {
    tx.send(Ok(pb::WatchRunResponse {
        run: Some(run.to_proto()),
    }))
    .await
    .is_ok()
}
