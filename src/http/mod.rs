//! The HTTP side (axum): the five compatibility shims, health probes and metrics.
//!
//! A shim is an adapter over the same [`Core`] that gRPC serves: [`pipeline`] runs every step
//! of a shim request in one order (method, authentication, scope, body limit, idempotency key,
//! correlation id, the core call, error mapping); each dialect module holds only its wire
//! format (decode, encode, and its error table over `CartError`). Cart logic lives only in
//! the core.

pub mod amazon;
pub mod encode;
pub mod fabric_xm;
pub mod json;
pub mod pipeline;
pub mod stateset;
pub mod vtex;
pub mod xml;
pub mod zaui;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::field::Empty;

use crate::core::Core;
use crate::health::Readiness;
use crate::metrics;
use crate::telemetry;
use crate::tenancy::Tenancy;

/// Largest accepted HTTP body (SPEC §6); larger ones get 413 in the dialect's shape.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The correlation id's header.
const CORRELATION_ID: &str = "x-request-id";

/// State shared by the HTTP routes.
#[derive(Clone)]
pub struct HttpState {
    pub readiness: Readiness,
    pub core: Core,
    pub tenancy: Arc<Tenancy>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .merge(zaui::routes())
        .merge(fabric_xm::routes())
        .merge(stateset::routes())
        .merge(amazon::routes())
        .merge(vtex::routes())
        .fallback(not_found)
        .with_state(state)
        // Bodies are read into memory only up to the limit; the pipeline answers 413 in the
        // dialect's shape.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(retry_after))
        .layer(middleware::from_fn(count_responses))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(middleware::from_fn(server_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Which dialect a path belongs to, for metrics.
fn dialect_of(path: &str) -> &'static str {
    if path.starts_with("/zapi") {
        zaui::DIALECT
    } else if path.starts_with("/api-cart/") {
        fabric_xm::DIALECT
    } else if path.starts_with("/v1/carts/") {
        stateset::DIALECT
    } else if path.starts_with("/onca/") {
        amazon::DIALECT
    } else if path.starts_with("/api/checkout/") {
        vtex::DIALECT
    } else {
        "other"
    }
}

/// Every 503 of a dialect (overload, the store unreachable) tells the client when to come
/// back, in the one header every HTTP client and proxy reads for it.
async fn retry_after(request: Request, next: Next) -> Response {
    let dialect = dialect_of(request.uri().path());
    let mut response = next.run(request).await;
    if dialect != "other" && response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
}

/// `Retry-After` of a refused shim request, in seconds.
const RETRY_AFTER_SECONDS: u64 = crate::admission::RETRY_AFTER.as_secs();

async fn count_responses(request: Request, next: Next) -> Response {
    let dialect = dialect_of(request.uri().path());
    let response = next.run(request).await;
    metrics::global().record_http(dialect, response.status().as_u16());
    response
}

/// Runs a request in its OpenTelemetry HTTP server span (semantic conventions: named
/// `METHOD route`, `http.*` attributes), a child of the caller's `traceparent`. The handler
/// span of a shim's cart call is its child.
async fn server_span(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let correlation_id = header_str(request.headers(), CORRELATION_ID).unwrap_or("-");
    let span = tracing::info_span!(
        "http",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = Empty,
        correlation_id,
        tenant = Empty,
        cart_id = Empty,
        "error.type" = Empty,
        trace_id = Empty,
        span_id = Empty,
    );
    telemetry::adopt(&span, telemetry::remote_parent(request.headers()));
    let started = std::time::Instant::now();
    let response = telemetry::in_request_span(span.clone(), next.run(request)).await;
    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    span.in_scope(|| {
        tracing::debug!(
            status = status.as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1e3,
            "finished processing request"
        );
    });
    response
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The store passed its last health check; else 503 saying why.
async fn readyz(State(state): State<HttpState>) -> (StatusCode, String) {
    match state.readiness.problem() {
        None => (StatusCode::OK, "ready\n".to_owned()),
        Some(problem) => (StatusCode::SERVICE_UNAVAILABLE, format!("{problem}\n")),
    }
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::global().render(),
    )
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}

pub(crate) fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the request declares a media type whose essence contains `needle` (e.g. "json").
pub(crate) fn content_type_is(headers: &HeaderMap, needle: &str) -> bool {
    header_str(headers, header::CONTENT_TYPE)
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|essence| essence.contains(needle))
}

/// A response with a body and content type.
pub(crate) fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
