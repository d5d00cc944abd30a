//! Prometheus metrics (the `prometheus-client` crate), served as OpenMetrics text at
//! `GET /metrics`.
//!
//! Recorded where every interface meets: the core's `observe` step (requests, latency and
//! in-flight requests; store errors), the HTTP edge (responses by dialect and status, including
//! requests refused before reaching a handler), the Redis store (latency of each script) and
//! the health watcher (whether Redis answers). Process metrics are read from `/proc` at scrape
//! time.
//!
//! The request path takes no process-wide lock: the series of a successful call are resolved
//! once into fixed slots (per interface and method) and then touched directly; only error
//! outcomes and HTTP responses look their series up in a label family (a read lock per family,
//! shared by readers).

mod process;

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The `cart.v1.CartService` methods, in the order of their hot-path slots.
const METHODS: [&str; 8] = [
    "Create",
    "Get",
    "AddItems",
    "UpdateItems",
    "ApplyCoupon",
    "Clear",
    "Remove",
    "Delete",
];

/// The HTTP dialects, in the order of their hot-path slots (after gRPC's).
const DIALECTS: [&str; 5] = ["zaui", "fabric_xm", "stateset", "amazon", "vtex"];

const INTERFACES: usize = 1 + DIALECTS.len();

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

    fn slot(self) -> Option<usize> {
        match self {
            Self::Grpc => Some(0),
            Self::Http(dialect) => DIALECTS.iter().position(|d| *d == dialect).map(|i| i + 1),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    interface: &'static str,
    dialect: &'static str,
    method: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    interface: &'static str,
    dialect: &'static str,
    method: &'static str,
}

/// The exemplar of a latency observation: the trace it belongs to.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceLabel {
    pub trace_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    dialect: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScriptLabel {
    script: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type LatencyHistogram = HistogramWithExemplars<TraceLabel>;

fn latency_histogram() -> LatencyHistogram {
    HistogramWithExemplars::new(BUCKETS.into_iter())
}

fn plain_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The series of one (interface, method): resolved on first use, then used without lookup.
#[derive(Default)]
struct HotSlot {
    ok: OnceLock<Counter>,
    latency: OnceLock<LatencyHistogram>,
}

/// The process-wide metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, LatencyHistogram, fn() -> LatencyHistogram>,
    hot: [[HotSlot; METHODS.len()]; INTERFACES],
    in_flight: Gauge,
    store_errors: Family<ReasonLabel, Counter>,
    http_responses: Family<HttpLabels, Counter>,
    store_calls: Family<ScriptLabel, Histogram, fn() -> Histogram>,
    redis_connected: Gauge,
    redis_evicting: Gauge,
    redis_policy_unknown: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // The OpenMetrics encoder appends `_total` to counters: these are exposed as
        // `cart_requests_total`, `cart_store_errors_total` and `cart_http_responses_total`.
        registry.register(
            "cart_requests",
            "Cart RPCs handled, by interface, method and outcome",
            requests.clone(),
        );
        let latency = Family::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "cart_request_duration_seconds",
            "Latency of cart RPCs, by interface and method",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "cart_in_flight_requests",
            "Cart RPCs being handled now",
            in_flight.clone(),
        );
        let store_errors = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "cart_store_errors",
            "Store calls that failed, by reason",
            store_errors.clone(),
        );
        let http_responses = Family::<HttpLabels, Counter>::default();
        registry.register(
            "cart_http_responses",
            "HTTP responses, by dialect and status code",
            http_responses.clone(),
        );
        let store_calls = Family::new_with_constructor(plain_histogram as fn() -> _);
        registry.register(
            "cart_store_call_duration_seconds",
            "Latency of Redis script calls (FCALL, or EVALSHA where Redis refuses the library; retries included), by script",
            store_calls.clone(),
        );
        let redis_connected = Gauge::default();
        registry.register(
            "cart_redis_connected",
            "1 while the cart store answers its health ping, else 0",
            redis_connected.clone(),
        );
        let redis_evicting = Gauge::default();
        registry.register(
            "cart_redis_evicting_servers",
            "Redis servers (Cluster masters) whose maxmemory-policy evicts keys, at the last check",
            redis_evicting.clone(),
        );
        let redis_policy_unknown = Gauge::default();
        registry.register(
            "cart_redis_eviction_policy_unknown_servers",
            "Redis servers (Cluster masters) that report no maxmemory_policy, at the last check",
            redis_policy_unknown.clone(),
        );
        // Registered as `cart_build`: the info type appends `_info`.
        registry.register(
            "cart_build",
            "Version of the running cart-service",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        process::register(&mut registry);
        Self {
            registry,
            requests,
            latency,
            hot: Default::default(),
            in_flight,
            store_errors,
            http_responses,
            store_calls,
            redis_connected,
            redis_evicting,
            redis_policy_unknown,
        }
    }
}

pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

/// Counts a request as in flight until dropped.
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Marks one cart RPC in flight for the life of the returned guard.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// One handled cart RPC; `outcome` is `OK` or the error reason. `trace_id` (of a sampled
    /// trace) becomes the latency observation's exemplar.
    pub fn record_rpc(
        &self,
        interface: Interface,
        method: &'static str,
        outcome: &'static str,
        elapsed: Duration,
        trace_id: Option<String>,
    ) {
        let (iface, dialect) = interface.labels();
        let exemplar = trace_id.map(|trace_id| TraceLabel { trace_id });
        let seconds = elapsed.as_secs_f64();
        let hot = interface
            .slot()
            .zip(METHODS.iter().position(|m| *m == method))
            .map(|(i, m)| &self.hot[i][m]);
        let latency_labels = || LatencyLabels {
            interface: iface,
            dialect,
            method,
        };
        match hot {
            Some(slot) => slot
                .latency
                .get_or_init(|| self.latency.get_or_create_owned(&latency_labels()))
                .observe(seconds, exemplar, None),
            None => self
                .latency
                .get_or_create(&latency_labels())
                .observe(seconds, exemplar, None),
        }
        let request_labels = || RequestLabels {
            interface: iface,
            dialect,
            method,
            outcome,
        };
        match hot {
            Some(slot) if outcome == "OK" => slot
                .ok
                .get_or_init(|| self.requests.get_or_create_owned(&request_labels()))
                .inc(),
            _ => self.requests.get_or_create(&request_labels()).inc(),
        };
    }

    /// A store call that failed for a reason of the store's (unreachable, corrupt, ...).
    pub fn record_store_error(&self, reason: &'static str) {
        self.store_errors
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// One HTTP response of a dialect route (or "other").
    pub fn record_http(&self, dialect: &'static str, status: u16) {
        self.http_responses
            .get_or_create(&HttpLabels { dialect, status })
            .inc();
    }

    /// The latency series of one store script, for the store to keep and observe directly.
    pub fn store_call_histogram(&self, script: &'static str) -> Histogram {
        self.store_calls
            .get_or_create_owned(&ScriptLabel { script })
    }

    /// Whether the store answered its last health ping.
    pub fn set_store_connected(&self, connected: bool) {
        self.redis_connected.set(i64::from(connected));
    }

    /// What the last eviction-policy check found: servers that evict, servers that did not say.
    pub fn set_eviction_survey(&self, evicting: usize, unknown: usize) {
        self.redis_evicting
            .set(i64::try_from(evicting).unwrap_or(i64::MAX));
        self.redis_policy_unknown
            .set(i64::try_from(unknown).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.record_rpc(
            Interface::Grpc,
            "Clear",
            "OK",
            Duration::from_millis(2),
            None,
        );
        metrics.record_rpc(
            Interface::Grpc,
            "Clear",
            "OK",
            Duration::from_millis(3),
            None,
        );
        metrics.record_rpc(
            Interface::Http("vtex"),
            "Clear",
            "CART_NOT_FOUND",
            Duration::from_millis(30),
            None,
        );
        metrics.record_store_error("STORE_UNAVAILABLE");
        metrics.record_http("vtex", 400);
        let text = metrics.render();
        for line in [
            "cart_requests_total{interface=\"grpc\",dialect=\"\",method=\"Clear\",outcome=\"OK\"} 2",
            "cart_requests_total{interface=\"http\",dialect=\"vtex\",method=\"Clear\",outcome=\"CART_NOT_FOUND\"} 1",
            "cart_request_duration_seconds_bucket{le=\"0.0025\",interface=\"grpc\",dialect=\"\",method=\"Clear\"} 1",
            "cart_request_duration_seconds_bucket{le=\"0.005\",interface=\"grpc\",dialect=\"\",method=\"Clear\"} 2",
            "cart_request_duration_seconds_bucket{le=\"0.001\",interface=\"grpc\",dialect=\"\",method=\"Clear\"} 0",
            "cart_request_duration_seconds_count{interface=\"grpc\",dialect=\"\",method=\"Clear\"} 2",
            "cart_store_errors_total{reason=\"STORE_UNAVAILABLE\"} 1",
            "cart_http_responses_total{dialect=\"vtex\",status=\"400\"} 1",
            "cart_build_info{version=\"0.1.0\"} 1",
            "cart_in_flight_requests 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn in_flight_counts_until_the_guard_drops() {
        let metrics = Metrics::default();
        let first = metrics.in_flight();
        let second = metrics.in_flight();
        assert!(metrics.render().contains("\ncart_in_flight_requests 2\n"));
        drop(first);
        drop(second);
        assert!(metrics.render().contains("\ncart_in_flight_requests 0\n"));
    }

    #[test]
    fn sampled_traces_become_exemplars() {
        let metrics = Metrics::default();
        let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736".to_owned();
        metrics.record_rpc(
            Interface::Grpc,
            "Get",
            "OK",
            Duration::from_millis(4),
            Some(trace_id.clone()),
        );
        let text = metrics.render();
        let bucket = text
            .lines()
            .find(|l| l.starts_with("cart_request_duration_seconds_bucket{le=\"0.005\""))
            .unwrap_or_else(|| panic!("no 5 ms bucket in\n{text}"));
        assert!(
            bucket.contains(&format!("# {{trace_id=\"{trace_id}\"}} 0.004")),
            "{bucket}"
        );
    }

    #[test]
    fn store_calls_and_connection_state_are_exposed() {
        let metrics = Metrics::default();
        metrics
            .store_call_histogram("clear")
            .observe(Duration::from_millis(1).as_secs_f64());
        metrics.set_store_connected(true);
        let text = metrics.render();
        assert!(
            text.contains("cart_store_call_duration_seconds_count{script=\"clear\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("\ncart_redis_connected 1\n"), "{text}");
    }
}
