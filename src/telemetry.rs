//! Telemetry: logs and, when an OpenTelemetry collector is configured, traces.
//!
//! Logs go to stderr, filtered by `RUST_LOG` (default `info`), as text or, with
//! `CART_LOG_FORMAT=json`, one JSON object per line. Request spans carry `trace_id` and
//! `span_id`, so every log line of a traced request names its trace.
//!
//! Traces are exported only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: OTLP over gRPC, batched,
//! configured by the standard `OTEL_*` variables (`OTEL_SERVICE_NAME`, default `cart-service`;
//! `OTEL_TRACES_SAMPLER`/`_ARG`; `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_BSP_*`). Unset, no
//! OpenTelemetry layer is installed at all. Either way a request's W3C `traceparent` and
//! `tracestate` are read, so the server span is a child of the caller's span.
//!
//! What only a trace viewer reads is not built for the logs: without an exporter a gRPC call
//! has a server span only when it carries a `traceparent` (then just its `trace_id`), and the
//! server spans of both interfaces are not given `tenant`, `cart_id` or `error.type` (the
//! operation's span and its failure line carry them). The fmt layer formats a span's fields as
//! they are set, so every field set costs every request.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The service name reported to the collector unless `OTEL_SERVICE_NAME` (or
/// `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "cart-service";

/// Whether spans go to an OpenTelemetry exporter (set once, by [`init`]).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether the logs show request spans (`RUST_LOG` enables `info`), and so their trace ids.
static LOGS_SHOW_SPANS: AtomicBool = AtomicBool::new(true);

/// Owns the trace exporter: [`Telemetry::shutdown`] (or drop) flushes the spans still batched.
#[derive(Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether traces are exported.
    pub fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still batched and stops the exporter. Blocks: call it off the
    /// async workers (e.g. in `spawn_blocking`), while the runtime still runs.
    pub fn shutdown(mut self) {
        self.flush_and_stop();
    }

    fn flush_and_stop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "flushing traces failed");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.flush_and_stop();
    }
}

/// Installs the global subscriber; a second call (tests) installs nothing and exports
/// nothing. Call it inside the Tokio runtime: the OTLP exporter's gRPC channel lives there.
pub fn init() -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs_show_spans = filter
        .max_level_hint()
        .is_none_or(|level| level >= LevelFilter::INFO);
    let json = std::env::var("CART_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_filter(filter)
            .boxed()
    } else {
        fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed()
    };
    let endpoint_set =
        std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some_and(|v| !v.is_empty());
    let (provider, export_error) = if endpoint_set {
        match tracer_provider() {
            Ok(provider) => (Some(provider), None),
            Err(error) => (None, Some(error)),
        }
    } else {
        (None, None)
    };
    // The service's own spans go to the exporter whatever RUST_LOG says about logging: the
    // server and client spans (not the core's operation spans and other inner spans, which
    // would only repeat them at the cost of every request), and events (as span events).
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("cart-service"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            // Spans are found through `OpenTelemetrySpanExt`, never `Context::current()`:
            // no context switch on every poll.
            .with_context_activation(false)
            // The hint keeps other crates' debug and trace callsites off at the level check.
            .with_filter(filter_fn(exported).with_max_level_hint(LevelFilter::INFO))
    });
    let installed = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .is_ok();
    if !installed {
        return Telemetry::default();
    }
    if let Some(error) = export_error {
        tracing::warn!(%error, "not exporting traces");
    }
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    LOGS_SHOW_SPANS.store(logs_show_spans, Ordering::Relaxed);
    Telemetry { provider }
}

/// What the OpenTelemetry layer sees: the service's info-or-above events, and the spans that
/// name their OpenTelemetry kind (the server and client spans).
fn exported(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.target().starts_with("cart_service")
        && *metadata.level() <= tracing::Level::INFO
        && (metadata.is_event() || metadata.fields().field("otel.kind").is_some())
}

fn tracer_provider() -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithTonicConfig;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    // An https:// collector is verified against the system's roots (the container image's CA
    // bundle; SSL_CERT_FILE names another): without roots, tonic would trust no certificate.
    let endpoint = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()));
    if endpoint.is_some_and(|url| url.starts_with("https://")) {
        exporter =
            exporter.with_tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots());
    }
    let exporter = exporter.build()?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    let named_by_env = std::env::var_os("OTEL_SERVICE_NAME").is_some()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
    if !named_by_env {
        resource = resource.with_service_name(DEFAULT_SERVICE_NAME);
    }
    // The sampler comes from OTEL_TRACES_SAMPLER/_ARG (default: parent-based, always on).
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Reads W3C trace context from HTTP headers (gRPC metadata included).
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The W3C trace context header, as a name built once (a `&str` is parsed on every lookup).
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// The caller's span, from `traceparent` and `tracestate` (an empty context without them).
pub fn remote_parent(headers: &http::HeaderMap) -> opentelemetry::Context {
    if !headers.contains_key(&TRACEPARENT) {
        return opentelemetry::Context::new();
    }
    TraceContextPropagator::new().extract(&Headers(headers))
}

/// Makes a request's server `span` a child of the caller's, and records its `trace_id` and
/// `span_id` fields for the logs (unless the logs never show request spans). Without an
/// exporter there is no span of ours to name: the caller's trace id still tags the logs.
pub fn adopt(span: &Span, parent: opentelemetry::Context) {
    if span.is_disabled() {
        return;
    }
    let logged = LOGS_SHOW_SPANS.load(Ordering::Relaxed);
    if EXPORTING.load(Ordering::Relaxed) {
        let _ = span.set_parent(parent);
        if !logged {
            return;
        }
        let context = span.context();
        let ids = context.span().span_context().clone();
        if ids.is_valid() {
            span.record("trace_id", tracing::field::display(ids.trace_id()));
            span.record("span_id", tracing::field::display(ids.span_id()));
        }
    } else if logged {
        let ids = parent.span().span_context().clone();
        if ids.is_valid() {
            span.record("trace_id", tracing::field::display(ids.trace_id()));
        }
    }
}

/// The trace id of the current request's server span when its trace is sampled (exported),
/// for exemplars.
pub fn sampled_trace_id() -> Option<String> {
    if !EXPORTING.load(Ordering::Relaxed) {
        return None;
    }
    let context = REQUEST_SPAN.try_with(OpenTelemetrySpanExt::context).ok()?;
    let ids = context.span().span_context().clone();
    (ids.is_valid() && ids.is_sampled()).then(|| ids.trace_id().to_string())
}

tokio::task_local! {
    /// The server span of the request the current task serves (gRPC or HTTP).
    static REQUEST_SPAN: Span;
}

/// Runs a request's future in its server span, which [`record_on_request`] can reach from
/// the core below it.
pub fn in_request_span<F: Future>(span: Span, future: F) -> impl Future<Output = F::Output> {
    REQUEST_SPAN.scope(span.clone(), future.instrument(span))
}

/// Whether spans go to an OpenTelemetry exporter (a trace viewer reads them), or only to the
/// logs.
pub fn is_exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Records a field (`tenant`, `cart_id`, `error.type`) on the request's server span, so that
/// the span a trace viewer shows first names the cart. Without an exporter nothing is recorded:
/// in the logs the operation's span names the tenant and cart, and its failure line the error.
pub fn record_on_request(field: &'static str, value: &str) {
    if !is_exporting() {
        return;
    }
    let _ = REQUEST_SPAN.try_with(|span| {
        span.record(field, value);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_callers_trace_context() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        headers.insert("tracestate", "vendor=value".parse().unwrap());
        let context = remote_parent(&headers);
        let ids = context.span().span_context().clone();
        assert_eq!(
            ids.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(ids.span_id().to_string(), "00f067aa0ba902b7");
        assert!(ids.is_sampled() && ids.is_remote());
        assert_eq!(ids.trace_state().get("vendor"), Some("value"));
    }

    #[test]
    fn no_traceparent_no_parent() {
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", "garbage".parse().unwrap());
        assert!(!remote_parent(&headers).span().span_context().is_valid());
        assert!(
            !remote_parent(&http::HeaderMap::new())
                .span()
                .span_context()
                .is_valid()
        );
    }
}
