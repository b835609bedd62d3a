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
/// level and above is also kept in memory for [`captured_logs`] (tests scan it for secrets) and checked line by line
/// for anything shaped like a secret (see [`leaked_lines`]). Safe to call repeatedly; `TestDb` and `TestNats` call it,
/// so every test that touches our infrastructure is covered.
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
        // The simulator plays Shopify: its own logs may name the tokens it issues, as Shopify's would. Everything else
        // is ours and must never.
        let leak_check = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| LeakCheckWriter)
            .with_filter(EnvFilter::new(
                "debug,shopify_sim=off,h2=info,hyper=info,hyper_util=info,tower=info,async_nats=info,rustls=info",
            ));
        let _ = tracing_subscriber::registry()
            .with(otel)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(filter),
            )
            .with(capture)
            .with(leak_check)
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

/// Where each test process appends the log lines that look like they hold a secret, one file per process. `make test`
/// sets it and fails the run when any file is there at the end: that is the scan of the whole suite's logs.
pub const LEAKS_DIR_ENV: &str = "SHOPBRIDGE_TEST_LEAKS_DIR";

static LEAKED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Checks each formatted log line (the fmt layer writes one event per call) for secrets.
struct LeakCheckWriter;

impl std::io::Write for LeakCheckWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        for line in text.lines().filter(|line| secret_in(line).is_some()) {
            record_leak(line);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn leak_file() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os(LEAKS_DIR_ENV)?;
    let exe = std::env::current_exe().ok();
    let name = exe
        .as_deref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "test".into());
    Some(std::path::Path::new(&dir).join(format!("{name}-{}.log", std::process::id())))
}

fn record_leak(line: &str) {
    use std::io::Write as _;
    LEAKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(line.to_string());
    if let Some(path) = leak_file() {
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(std::path::Path::new(".")));
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let test = std::thread::current().name().unwrap_or("?").to_string();
            let _ = writeln!(file, "[{test}] {line}");
        }
    }
}

/// The log lines of this process that looked like they held a secret, taken out of the record (and out of the
/// suite's leak file). For the test that proves the check works; every other test leaves them for `make test`.
pub fn take_leaked_lines() -> Vec<String> {
    let taken = std::mem::take(&mut *LEAKED.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(path) = leak_file() {
        let _ = std::fs::remove_file(path);
    }
    taken
}

/// The secret-shaped piece of `line`, if any: a Shopify access, refresh or custom-app token (`shpat_`, `shprt_`,
/// `shpca_`, `shpua_`, `shppa_`, `shpss_`), one of our client secrets (`sbs_`) or a signed JWT (`eyJ...` `.` `eyJ...`).
/// The shapes are what our code handles; a real value logged by mistake always has one of them.
pub fn secret_in(line: &str) -> Option<&str> {
    const PREFIXES: [&str; 7] = [
        "shpat_", "shprt_", "shpca_", "shpua_", "shppa_", "shpss_", "sbs_",
    ];
    let token_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let starts_word = |at: usize| {
        line[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric())
    };
    let token_at = |at: usize| {
        let len = line[at..]
            .find(|c: char| !token_char(c) && c != '.')
            .unwrap_or(line.len() - at);
        &line[at..at + len]
    };
    for prefix in PREFIXES {
        for (at, _) in line.match_indices(prefix) {
            let token = token_at(at);
            if starts_word(at) && token.len() >= prefix.len() + 4 {
                return Some(token);
            }
        }
    }
    for (at, _) in line.match_indices("eyJ") {
        let token = token_at(at);
        let mut parts = token.split('.');
        let is_jwt = matches!(
            (parts.next(), parts.next(), parts.next()),
            (Some(header), Some(claims), Some(_)) if header.len() > 10 && claims.starts_with("eyJ")
        );
        if starts_word(at) && is_jwt {
            return Some(token);
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_shapes_are_found_and_ordinary_text_is_not() {
        for (line, secret) in [
            (
                "token=shpat_0123456789abcdef rejected",
                "shpat_0123456789abcdef",
            ),
            ("refresh \"shprt_abcd1234\"", "shprt_abcd1234"),
            (
                "client secret sbs_Zm9vYmFyYmF6cXV4 issued",
                "sbs_Zm9vYmFyYmF6cXV4",
            ),
            (
                "authorization: Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
                "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
            ),
        ] {
            assert_eq!(secret_in(line), Some(secret), "{line}");
        }
        for line in [
            "channel connected shop=demo-store.myshopify.com plan=Basic",
            "token prefix shpat_ expected",
            "jobs_count=3 thumbs_up=1",
            "eyJhbGciOiJFZERTQSJ9 is only a header",
            "client_id=sbc_0123456789abcdef",
        ] {
            assert_eq!(secret_in(line), None, "{line}");
        }
    }

    #[test]
    fn a_logged_token_is_caught_and_ordinary_logs_are_not() {
        init_for_tests();
        tracing::info!(shop = "leak-check.myshopify.com", "a harmless line");
        assert!(take_leaked_lines().is_empty());
        let token = "shpat_deadbeefdeadbeefdeadbeefdeadbeef";
        tracing::debug!("oops, the token is {token}");
        let leaked = take_leaked_lines();
        assert_eq!(leaked.len(), 1, "{leaked:?}");
        assert!(leaked[0].contains(token));
        assert!(take_leaked_lines().is_empty());
    }
}
