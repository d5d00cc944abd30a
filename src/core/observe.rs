//! The one place that observes an operation on every interface: its span (named after the
//! operation, with `tenant`, `cart_id` and `correlation_id`), the in-flight gauge, the
//! caller's deadline, the `cart_requests_total` / latency metrics, the log line of a failure
//! and the `error.type` of the request's server span.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use tracing::Instrument;
use tracing::field::Empty;

use super::Operation;
use crate::error::CartError;
use crate::metrics::{self, Interface};
use crate::telemetry;

/// The span of one operation; a child of the request's server span, seen in logs.
fn span(operation: Operation) -> tracing::Span {
    // A span's name is static: one macro call per operation.
    macro_rules! span {
        ($name:literal) => {
            tracing::info_span!(
                $name,
                tenant = Empty,
                cart_id = Empty,
                correlation_id = Empty
            )
        };
    }
    match operation {
        Operation::Create => span!("Create"),
        Operation::Get => span!("Get"),
        Operation::AddItems => span!("AddItems"),
        Operation::UpdateItems => span!("UpdateItems"),
        Operation::ApplyCoupon => span!("ApplyCoupon"),
        Operation::Clear => span!("Clear"),
        Operation::Remove => span!("Remove"),
        Operation::Delete => span!("Delete"),
        Operation::Freeze => span!("Freeze"),
        Operation::Unfreeze => span!("Unfreeze"),
        Operation::GetActiveCart => span!("GetActiveCart"),
        Operation::Merge => span!("Merge"),
    }
}

/// Runs `body` (an adapter's decoding of the command and the core's call) as `operation`
/// from `interface`, answering DEADLINE_EXCEEDED at `deadline`, and records its outcome.
///
/// Not an `async fn`: `body` is boxed as it is handed over, so the operation's whole state is
/// copied once, into the box, rather than into this future's state first; wrapping it in its
/// span and its deadline then moves a pointer. A caller whose own future is boxed already
/// pins `body` in it and calls [`observe_pinned`].
pub fn observe<T, F: Future<Output = Result<T, CartError>>>(
    operation: Operation,
    interface: Interface,
    deadline: Option<Instant>,
    body: F,
) -> impl Future<Output = Result<T, CartError>> {
    observe_pinned(operation, interface, deadline, Box::pin(body))
}

/// [`observe`] of a `body` pinned where it lives (`std::pin::pin!` in the caller's future):
/// neither boxed nor moved again.
pub async fn observe_pinned<T, F: Future<Output = Result<T, CartError>> + Unpin>(
    operation: Operation,
    interface: Interface,
    deadline: Option<Instant>,
    body: F,
) -> Result<T, CartError> {
    let metrics = metrics::global();
    let _in_flight = metrics.in_flight();
    let started = Instant::now();
    let span = span(operation);
    let body = body.instrument(span.clone());
    let result = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, body)
            .await
            .unwrap_or(Err(CartError::DeadlineExceeded)),
        None => body.await,
    };
    record(operation, interface, &span, metrics, started, &result);
    result
}

/// Counts and times the operation's `result`, and logs and names its failure.
fn record<T>(
    operation: Operation,
    interface: Interface,
    span: &tracing::Span,
    metrics: &metrics::Metrics,
    started: Instant,
    result: &Result<T, CartError>,
) {
    let outcome = match result {
        Ok(_) => "OK",
        Err(error) => {
            // In the operation's span: the line names the tenant, cart and correlation id.
            span.in_scope(|| error.log());
            if error.is_store_failure() {
                metrics.record_store_error(error.reason());
            }
            telemetry::record_on_request("error.type", error.reason());
            error.reason()
        }
    };
    metrics.record_rpc(
        interface,
        operation.name(),
        outcome,
        started.elapsed(),
        telemetry::sampled_trace_id(),
    );
}

/// The deadline of a client's budget (`grpc-timeout`), from `now`: a little before it, so
/// the client reads DEADLINE_EXCEEDED rather than its transport's own CANCELLED when both
/// timers fire.
pub fn deadline(now: Instant, budget: Duration) -> Instant {
    let margin = (budget / 10).min(Duration::from_millis(10));
    now + (budget - margin)
}
