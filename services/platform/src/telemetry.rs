//! Logs, traces and trace-context propagation.
//!
//! Every service installs one subscriber: an `EnvFilter`, human or JSON logs, and an OpenTelemetry layer. The layer is
//! always present so that spans carry W3C trace ids that cross NATS headers and gRPC metadata; spans are exported only
//! when an OTLP endpoint is configured.

use std::sync::OnceLock;

use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogFormat, TelemetrySettings};

/// Flushes and shuts the exporter down when dropped (at the end of `main`).
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let provider = self.provider.clone();
        // shutdown() blocks on the exporter; never do that on an async worker thread.
        let _ = std::thread::spawn(move || provider.shutdown()).join();
    }
}

fn propagator() -> &'static TraceContextPropagator {
    static PROPAGATOR: OnceLock<TraceContextPropagator> = OnceLock::new();
    PROPAGATOR.get_or_init(TraceContextPropagator::new)
}

fn tracer_provider(
    service: &str,
    settings: &TelemetrySettings,
) -> anyhow::Result<SdkTracerProvider> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if !settings.otlp_endpoint.is_empty() {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(settings.otlp_endpoint.clone())
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// Installs the global subscriber. Call once, at the start of `main`.
pub fn init(service: &str, settings: &TelemetrySettings) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_new(&settings.log_level)
        .map_err(|e| anyhow::anyhow!("configuration key `telemetry.log_level`: {e}"))?;
    let provider = tracer_provider(service, settings)?;
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service.to_string()));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    match settings.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init()?,
        LogFormat::Human => registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init()?,
    }
    Ok(TelemetryGuard { provider })
}

/// A subscriber for tests: spans get real trace ids, logs go to the test's captured output, and everything at debug
/// level and above is also kept in memory for [`captured_logs`] (tests scan it for secrets). Safe to call repeatedly.
pub fn init_for_tests() {
    use tracing_subscriber::Layer;
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let provider = SdkTracerProvider::builder().build();
        let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("tests"));
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let capture = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| CapturedWriter)
            .with_filter(EnvFilter::new(
                "debug,h2=info,hyper=info,hyper_util=info,tower=info,async_nats=info,rustls=info",
            ));
        let _ = tracing_subscriber::registry()
            .with(otel)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(filter),
            )
            .with(capture)
            .try_init();
        // The provider must outlive every span; tests run until the process exits.
        std::mem::forget(provider);
    });
}

static CAPTURED: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct CapturedWriter;

impl std::io::Write for CapturedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test process so far (debug and above), after [`init_for_tests`].
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&CAPTURED.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// The trace id of the current span as 32 hex digits, or `None` outside any sampled span.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let cx = tracing::Span::current().context();
    let span_context = cx.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Writes the current span's context as `traceparent`/`tracestate` through `set`.
pub fn inject_current(mut set: impl FnMut(&str, String)) {
    struct Setter<'a>(&'a mut dyn FnMut(&str, String));
    impl Injector for Setter<'_> {
        fn set(&mut self, key: &str, value: String) {
            (self.0)(key, value)
        }
    }
    let cx = tracing::Span::current().context();
    propagator().inject_context(&cx, &mut Setter(&mut set));
}

/// Makes `span` a child of the remote context read through `get` (NATS headers, gRPC metadata, stored headers).
pub fn set_remote_parent(span: &tracing::Span, get: impl Fn(&str) -> Option<String>) {
    struct Getter(Vec<String>);
    impl Extractor for Getter {
        fn get(&self, key: &str) -> Option<&str> {
            // The trait hands out borrowed strings; the two keys we read are resolved up front.
            match key {
                "traceparent" => self.0.first().map(String::as_str).filter(|s| !s.is_empty()),
                "tracestate" => self.0.get(1).map(String::as_str).filter(|s| !s.is_empty()),
                _ => None,
            }
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }
    let getter = Getter(vec![
        get("traceparent").unwrap_or_default(),
        get("tracestate").unwrap_or_default(),
    ]);
    let cx = propagator().extract(&getter);
    let _ = span.set_parent(cx);
}
