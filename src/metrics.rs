//! Prometheus metrics, rendered in the text exposition format at `GET /metrics`.
//!
//! Recorded where every interface meets: the `CartService` handlers (requests and latency by
//! interface, method and outcome; store errors) and the HTTP edge (responses by dialect and
//! status, including requests refused before reaching a handler).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Where a request came in: gRPC, or the HTTP shim of one dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Interface {
    Grpc,
    Http(&'static str),
}

impl Interface {
    fn labels(self) -> (&'static str, &'static str) {
        match self {
            Self::Grpc => ("grpc", ""),
            Self::Http(dialect) => ("http", dialect),
        }
    }
}

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Default)]
struct Registry {
    requests: BTreeMap<(Interface, &'static str, &'static str), u64>,
    latency: BTreeMap<(Interface, &'static str), Histogram>,
    store_errors: BTreeMap<&'static str, u64>,
    http_responses: BTreeMap<(&'static str, u16), u64>,
}

/// The process-wide metrics.
#[derive(Default)]
pub struct Metrics(Mutex<Registry>);

pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One handled cart RPC; `outcome` is `OK` or the error reason.
    pub fn record_rpc(
        &self,
        interface: Interface,
        method: &'static str,
        outcome: &'static str,
        elapsed: Duration,
    ) {
        let mut registry = self.registry();
        *registry
            .requests
            .entry((interface, method, outcome))
            .or_default() += 1;
        registry
            .latency
            .entry((interface, method))
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// A store call that failed for a reason of the store's (unreachable, corrupt, ...).
    pub fn record_store_error(&self, reason: &'static str) {
        *self.registry().store_errors.entry(reason).or_default() += 1;
    }

    /// One HTTP response of a dialect route (or "other").
    pub fn record_http(&self, dialect: &'static str, status: u16) {
        *self
            .registry()
            .http_responses
            .entry((dialect, status))
            .or_default() += 1;
    }

    pub fn render(&self) -> String {
        let registry = self.registry();
        let mut out = String::new();
        out.push_str(
            "# HELP cart_requests_total Cart RPCs handled, by interface, method and outcome.\n",
        );
        out.push_str("# TYPE cart_requests_total counter\n");
        for ((interface, method, outcome), count) in &registry.requests {
            let (iface, dialect) = interface.labels();
            let _ = writeln!(
                out,
                "cart_requests_total{{interface=\"{iface}\",dialect=\"{dialect}\",method=\"{method}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP cart_request_duration_seconds Latency of cart RPCs, by interface and method.\n",
        );
        out.push_str("# TYPE cart_request_duration_seconds histogram\n");
        for ((interface, method), histogram) in &registry.latency {
            let (iface, dialect) = interface.labels();
            let labels = format!("interface=\"{iface}\",dialect=\"{dialect}\",method=\"{method}\"");
            for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
                let _ = writeln!(
                    out,
                    "cart_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "cart_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "cart_request_duration_seconds_sum{{{labels}}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "cart_request_duration_seconds_count{{{labels}}} {}",
                histogram.count
            );
        }
        out.push_str("# HELP cart_store_errors_total Store calls that failed, by reason.\n");
        out.push_str("# TYPE cart_store_errors_total counter\n");
        for (reason, count) in &registry.store_errors {
            let _ = writeln!(
                out,
                "cart_store_errors_total{{reason=\"{reason}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP cart_http_responses_total HTTP responses, by dialect and status code.\n",
        );
        out.push_str("# TYPE cart_http_responses_total counter\n");
        for ((dialect, status), count) in &registry.http_responses {
            let _ = writeln!(
                out,
                "cart_http_responses_total{{dialect=\"{dialect}\",status=\"{status}\"}} {count}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.record_rpc(Interface::Grpc, "Clear", "OK", Duration::from_millis(2));
        metrics.record_rpc(
            Interface::Http("vtex"),
            "Clear",
            "CART_NOT_FOUND",
            Duration::from_millis(30),
        );
        metrics.record_store_error("STORE_UNAVAILABLE");
        metrics.record_http("vtex", 400);
        let text = metrics.render();
        assert!(text.contains(
            "cart_requests_total{interface=\"grpc\",dialect=\"\",method=\"Clear\",outcome=\"OK\"} 1"
        ));
        assert!(text.contains(
            "cart_requests_total{interface=\"http\",dialect=\"vtex\",method=\"Clear\",outcome=\"CART_NOT_FOUND\"} 1"
        ));
        assert!(text.contains(
            "cart_request_duration_seconds_bucket{interface=\"grpc\",dialect=\"\",method=\"Clear\",le=\"0.0025\"} 1"
        ));
        assert!(text.contains(
            "cart_request_duration_seconds_bucket{interface=\"grpc\",dialect=\"\",method=\"Clear\",le=\"0.001\"} 0"
        ));
        assert!(text.contains("cart_store_errors_total{reason=\"STORE_UNAVAILABLE\"} 1"));
        assert!(text.contains("cart_http_responses_total{dialect=\"vtex\",status=\"400\"} 1"));
    }
}
