use tracing::Instrument;

use crate::support::{Behaviour, Ctx, ProbeHandler, eventually};

#[tokio::test]
async fn the_consumers_span_has_the_publishers_trace_id() {
    let ctx = Ctx::new().await;
    let span = tracing::info_span!("publisher");
    let publisher_trace = async {
        ctx.enqueue(42, true).await;
        shopbridge_platform::telemetry::current_trace_id()
    }
    .instrument(span)
    .await
    .expect("the publisher's span has a trace id");

    ctx.relay().drain_once().await.unwrap();
    ctx.start_consumer(ProbeHandler::new(Behaviour::Apply), vec![50]);
    eventually("the effect", || async { ctx.effects().await == 1 }).await;
    let consumer_trace: Option<String> = sqlx::query_scalar("SELECT trace_id FROM probe_effects")
        .fetch_one(&ctx.db.pool)
        .await
        .unwrap();
    assert_eq!(consumer_trace.as_deref(), Some(publisher_trace.as_str()));
    ctx.finish().await;
}
