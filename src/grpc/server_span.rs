//! A tower layer that gives every `cart.v1.CartService` call its OpenTelemetry server span
//! (`cart.v1.CartService/Clear`, `rpc.*` attributes per the semantic conventions), as a child
//! of the caller's span named by the `traceparent` metadata.
//!
//! Without an exporter the span is only seen by the logs, where the operation's span (see
//! `core::observe`) already names the tenant and the cart: a call then gets a server span only
//! when it carries a `traceparent` or debug lines are written, and that span holds only the
//! method and the caller's `trace_id`, so every log line of the call still names its trace. A
//! span's fields are formatted for the logs when they are set, whether or not a line is ever
//! written: the spans and fields nobody reads are not made at all.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};
use tracing::field::Empty;

use crate::telemetry;

const SERVICE: &str = "cart.v1.CartService";

/// Wraps the gRPC server's services in [`ServerSpan`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerSpanLayer;

impl<S> Layer<S> for ServerSpanLayer {
    type Service = ServerSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerSpan { inner }
    }
}

/// Runs each cart RPC in a server span; other services (health, reflection) pass through.
#[derive(Debug, Clone)]
pub struct ServerSpan<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The response of [`ServerSpan`]: the inner service's own future when the request has no
/// span (most requests, when nothing exports traces), boxed with its span otherwise.
pub enum SpanFuture<F: Future> {
    Unspanned(F),
    Spanned(BoxFuture<F::Output>),
}

impl<F: Future + Unpin> Future for SpanFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Unspanned(future) => Pin::new(future).poll(cx),
            Self::Spanned(future) => future.as_mut().poll(cx),
        }
    }
}

impl<S, B, ResBody> Service<http::Request<B>> for ServerSpan<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + Unpin + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = SpanFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let Some(method) = path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(SERVICE))
            .and_then(|p| p.strip_prefix('/'))
        else {
            return SpanFuture::Unspanned(self.inner.call(request));
        };
        let exporting = telemetry::is_exporting();
        if !exporting {
            // Only the logs see this span: it is worth its cost when it names the caller's
            // trace, or when debug lines (its "finished processing request") are written; the
            // operation's span names the RPC, tenant and cart.
            if !request.headers().contains_key(&telemetry::TRACEPARENT)
                && !tracing::enabled!(tracing::Level::DEBUG)
            {
                return SpanFuture::Unspanned(self.inner.call(request));
            }
            let span = tracing::info_span!("grpc", rpc.method = method, trace_id = Empty);
            if span.is_disabled() {
                return SpanFuture::Unspanned(self.inner.call(request));
            }
            telemetry::adopt(&span, telemetry::remote_parent(request.headers()));
            let response = telemetry::in_request_span(span.clone(), self.inner.call(request));
            return SpanFuture::Spanned(Box::pin(async move {
                let response = response.await;
                if let Ok(response) = &response {
                    span.in_scope(|| log_status(response.headers()));
                }
                response
            }));
        }
        let span = tracing::info_span!(
            "grpc",
            otel.name = &path[1..],
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = SERVICE,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            "error.type" = Empty,
            tenant = Empty,
            cart_id = Empty,
            trace_id = Empty,
            span_id = Empty,
        );
        if span.is_disabled() {
            return SpanFuture::Unspanned(self.inner.call(request));
        }
        telemetry::adopt(&span, telemetry::remote_parent(request.headers()));
        let response = telemetry::in_request_span(span.clone(), self.inner.call(request));
        SpanFuture::Spanned(Box::pin(async move {
            let response = response.await;
            if let Ok(response) = &response {
                record_status(&span, response.headers());
            }
            response
        }))
    }
}

/// A unary call that failed answers with `grpc-status` in its headers (trailers-only); one
/// that succeeded sends it in the trailers, after the body: no header means OK.
fn record_status(span: &tracing::Span, headers: &http::HeaderMap) {
    let code = grpc_status(headers);
    span.record("rpc.grpc.status_code", code);
    if is_server_error(code) {
        span.record("otel.status_code", "ERROR");
    }
    span.in_scope(|| log_status(headers));
}

fn grpc_status(headers: &http::HeaderMap) -> i64 {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0)
}

/// The debug line that ends a call (in its server span).
fn log_status(headers: &http::HeaderMap) {
    tracing::debug!(
        grpc_status = grpc_status(headers),
        "finished processing request"
    );
}

/// The codes that mark a gRPC server span as failed (OpenTelemetry semantic conventions):
/// UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS. The others
/// are the client's doing.
fn is_server_error(code: i64) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects the names of the spans made while it is the thread's subscriber.
    #[derive(Clone, Default)]
    struct SpanNames(std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanNames {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0.lock().unwrap().push(attrs.metadata().name());
        }
    }

    /// The spans `ServerSpan` makes for one call of `path` with `headers` (nothing is
    /// exported in unit tests).
    async fn spans_of(path: &str, headers: &[(&str, &str)]) -> Vec<&'static str> {
        use tracing_subscriber::layer::SubscriberExt;
        let names = SpanNames::default();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::registry()
                .with(names.clone())
                .with(tracing_subscriber::filter::LevelFilter::INFO),
        );
        // Boxed: the layer asks for an `Unpin` inner future, as the server's routes give.
        let inner = tower::service_fn(|_: http::Request<()>| {
            Box::pin(async { Ok::<_, std::convert::Infallible>(http::Response::new(())) })
        });
        let mut request = http::Request::builder().uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        ServerSpanLayer
            .layer(inner)
            .call(request.body(()).unwrap())
            .await
            .unwrap();
        names.0.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn without_an_exporter_a_call_has_a_server_span_only_to_name_its_trace() {
        assert!(!telemetry::is_exporting());
        let clear = "/cart.v1.CartService/Clear";
        assert_eq!(spans_of(clear, &[]).await, Vec::<&str>::new());
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            spans_of(clear, &[("traceparent", traceparent)]).await,
            ["grpc"]
        );
        // Other services never get one.
        let health = "/grpc.health.v1.Health/Check";
        assert!(
            spans_of(health, &[("traceparent", traceparent)])
                .await
                .is_empty()
        );
    }

    #[test]
    fn only_server_faults_fail_the_span() {
        assert!(!is_server_error(0));
        assert!(!is_server_error(5)); // NOT_FOUND
        assert!(!is_server_error(3)); // INVALID_ARGUMENT
        assert!(is_server_error(14)); // UNAVAILABLE
        assert!(is_server_error(13)); // INTERNAL
    }
}
