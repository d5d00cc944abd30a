//! Traces and logs of the real binary: an OTLP collector (a tonic `TraceService` on loopback)
//! receives what the service exports; the service runs against a real redis-server.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cart_service::pb;
use cart_service::pb::cart_service_client::CartServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as AnyValueMsg, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use tonic::transport::Channel;

use crate::helpers::{self, ACME_KEY, RedisServer, SHIM_CONFIG, TestApp};

/// A span as the collector received it, with its resource's `service.name`.
#[derive(Debug, Clone)]
struct Exported {
    service_name: String,
    span: Span,
}

/// An OTLP/gRPC trace collector on a free loopback port, keeping every span it receives.
struct Collector {
    endpoint: String,
    spans: Arc<Mutex<Vec<Exported>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<Exported>>>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service_name = resource_spans
                .resource
                .as_ref()
                .and_then(|r| string_attribute(&r.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Exported {
                        service_name: service_name.clone(),
                        span,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Sink(spans.clone())))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = rx.await;
                },
            );
        tokio::spawn(server);
        Self {
            endpoint,
            spans,
            shutdown: Some(tx),
        }
    }

    fn spans(&self) -> Vec<Exported> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The real `cart-service` binary with [`SHIM_CONFIG`], on free loopback ports. Killed on
/// drop (a panicking test included); [`Service::stop`] ends it with SIGTERM instead.
pub(crate) struct Service {
    process: helpers::ServiceProcess,
    pub(crate) grpc_addr: SocketAddr,
    pub(crate) http_addr: SocketAddr,
    dir: std::path::PathBuf,
}

impl Service {
    pub(crate) fn start(redis: &RedisServer, env: &[(&str, &str)]) -> Self {
        let dir = helpers::temp_dir("otel");
        let config = dir.join("cart.toml");
        std::fs::File::create(&config)
            .and_then(|mut f| f.write_all(SHIM_CONFIG.as_bytes()))
            .expect("config written");
        let mut command = Command::new(env!("CARGO_BIN_EXE_cart-service"));
        command
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .env_clear()
            .env("CART_REDIS_URL", redis.url())
            .env("CART_CONFIG", &config)
            .env("RUST_LOG", "info,cart_service=debug")
            .envs(env.iter().copied());
        let process = helpers::ServiceProcess::spawn(command);
        let (grpc_addr, http_addr) = process
            .addrs()
            .unwrap_or_else(|| panic!("no listening line: {:?}", process.log()));
        Self {
            process,
            grpc_addr,
            http_addr,
            dir,
        }
    }

    async fn client(&self) -> CartServiceClient<Channel> {
        helpers::cart_client(self.grpc_addr).await
    }

    pub(crate) fn log(&self) -> Vec<String> {
        self.process.log()
    }

    /// SIGTERM, then waits for a clean exit: the service flushes its spans on the way out.
    /// Async, so that this runtime's client connections answer the server's goodbye.
    async fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.process.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.process.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status}: {:?}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValueMsg| v.value.as_ref())
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key)? {
        AnyValue::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int_attribute(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attribute(attributes, key)? {
        AnyValue::IntValue(i) => Some(*i),
        _ => None,
    }
}

/// The one exported span of `trace_id` named `name`.
fn span_named<'a>(spans: &'a [Exported], trace_id: &str, name: &str) -> &'a Exported {
    let found: Vec<&Exported> = spans
        .iter()
        .filter(|e| hex(&e.span.trace_id) == trace_id && e.span.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name:?} span in trace {trace_id}; all spans: {:#?}",
        spans.iter().map(|e| &e.span.name).collect::<Vec<_>>()
    );
    found[0]
}

fn authed<T>(message: T, traceparent: Option<&str>) -> tonic::Request<T> {
    let mut request = TestApp::authed(message, ACME_KEY);
    if let Some(traceparent) = traceparent {
        request
            .metadata_mut()
            .insert("traceparent", traceparent.parse().unwrap());
        request
            .metadata_mut()
            .insert("tracestate", "caller=checkout".parse().unwrap());
    }
    request
}

async fn create_cart(client: &mut CartServiceClient<Channel>) -> String {
    client
        .create(authed(
            helpers::create_request("", &[("SKU-1", 2, 1250), ("SKU-2", 1, 500)]),
            None,
        ))
        .await
        .expect("create succeeds")
        .into_inner()
        .id
}

/// Clear over gRPC and over the Stateset shim, each with the caller's traceparent: the
/// exported server spans are children of the caller's spans with the semantic conventions'
/// attributes, each with its Redis call as its child; a refused call records its status; the
/// sampled traces are exemplars of the latency histogram.
/// The batch delay is long, so the spans arrive only because shutdown flushes them.
#[tokio::test]
async fn server_spans_continue_the_callers_trace() {
    let redis = RedisServer::start();
    let collector = Collector::start().await;
    let mut service = Service::start(
        &redis,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ],
    );
    let mut client = service.client().await;

    let grpc_cart = create_cart(&mut client).await;
    let (grpc_trace, grpc_parent) = (random_hex(16), random_hex(8));
    let cleared = client
        .clear(authed(
            pb::ClearRequest {
                cart_id: grpc_cart.clone(),
                reason: "traced".into(),
                ..Default::default()
            },
            Some(&format!("00-{grpc_trace}-{grpc_parent}-01")),
        ))
        .await
        .expect("clear succeeds")
        .into_inner();
    assert_eq!(cleared.items_cleared, 3);

    // A steady-state Get: a read without its script, and its span says so.
    let (get_trace, get_parent) = (random_hex(16), random_hex(8));
    client
        .get(authed(
            pb::GetRequest {
                cart_id: grpc_cart.clone(),
            },
            Some(&format!("00-{get_trace}-{get_parent}-01")),
        ))
        .await
        .expect("get succeeds");

    let (missing_trace, missing_parent) = (random_hex(16), random_hex(8));
    let missing = client
        .clear(authed(
            pb::ClearRequest {
                cart_id: "no-such-cart".into(),
                ..Default::default()
            },
            Some(&format!("00-{missing_trace}-{missing_parent}-01")),
        ))
        .await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);

    let http_cart = create_cart(&mut client).await;
    let (http_trace, http_parent) = (random_hex(16), random_hex(8));
    let traceparent = format!("00-{http_trace}-{http_parent}-01");
    let response = helpers::http(
        service.http_addr,
        "POST",
        &format!("/v1/carts/{http_cart}/clear"),
        &[
            ("Authorization", &format!("Bearer {ACME_KEY}")),
            ("Content-Type", "application/json"),
            ("traceparent", &traceparent),
        ],
        br#"{"preserve_coupons": false, "reason": "traced"}"#,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);

    // The sampled traces are the latency histogram's exemplars (a bucket keeps its latest).
    let metrics = helpers::http(service.http_addr, "GET", "/metrics", &[], b"").await;
    let exemplar_of = |interface: &str, traces: &[&String]| {
        metrics.body.lines().any(|l| {
            l.starts_with("cart_request_duration_seconds_bucket{")
                && l.contains(&format!("interface=\"{interface}\""))
                && l.contains("method=\"Clear\"")
                && traces
                    .iter()
                    .any(|t| l.contains(&format!("# {{trace_id=\"{t}\"}}")))
        })
    };
    assert!(
        exemplar_of("grpc", &[&grpc_trace, &missing_trace]),
        "{}",
        metrics.body
    );
    assert!(exemplar_of("http", &[&http_trace]), "{}", metrics.body);

    service.stop().await;
    let spans = collector.spans();

    // gRPC: the server span, child of the caller's span.
    let server = span_named(&spans, &grpc_trace, "cart.v1.CartService/Clear");
    assert_eq!(server.service_name, "cart-service");
    let s = &server.span;
    assert_eq!(hex(&s.parent_span_id), grpc_parent);
    assert_eq!(s.kind, SpanKind::Server as i32);
    assert_eq!(s.trace_state, "caller=checkout");
    let attrs = &s.attributes;
    assert_eq!(
        string_attribute(attrs, "rpc.system").as_deref(),
        Some("grpc")
    );
    assert_eq!(
        string_attribute(attrs, "rpc.service").as_deref(),
        Some("cart.v1.CartService")
    );
    assert_eq!(
        string_attribute(attrs, "rpc.method").as_deref(),
        Some("Clear")
    );
    assert_eq!(int_attribute(attrs, "rpc.grpc.status_code"), Some(0));
    assert_eq!(string_attribute(attrs, "tenant").as_deref(), Some("acme"));
    assert_eq!(string_attribute(attrs, "cart_id"), Some(grpc_cart.clone()));
    assert_ne!(
        s.status.as_ref().map(|st| st.code),
        Some(StatusCode::Error as i32)
    );

    // Its Redis call: a client span below it, in the same trace.
    let redis_call = span_named(&spans, &grpc_trace, "FCALL clear");
    let r = &redis_call.span;
    assert_eq!(r.kind, SpanKind::Client as i32);
    assert_eq!(
        r.parent_span_id, s.span_id,
        "redis span outside the server span"
    );
    assert_eq!(
        string_attribute(&r.attributes, "db.system.name").as_deref(),
        Some("redis")
    );
    assert_eq!(
        string_attribute(&r.attributes, "db.operation.name").as_deref(),
        Some("FCALL")
    );
    assert_eq!(
        string_attribute(&r.attributes, "db.stored_procedure.name").as_deref(),
        Some("clear")
    );
    assert_eq!(
        string_attribute(&r.attributes, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        int_attribute(&r.attributes, "server.port"),
        Some(i64::from(redis.port())),
        "{:?}",
        r.attributes
    );

    // The Get's Redis call is named by the command it sent, not by a script it did not run.
    let get_server = span_named(&spans, &get_trace, "cart.v1.CartService/Get");
    let read = &span_named(&spans, &get_trace, "GET").span;
    assert_eq!(read.parent_span_id, get_server.span.span_id);
    assert_eq!(
        string_attribute(&read.attributes, "db.operation.name").as_deref(),
        Some("GET")
    );
    assert_eq!(
        string_attribute(&read.attributes, "db.stored_procedure.name"),
        None
    );

    // A refused call: its status code and reason, and no failure of the server's own.
    let refused = &span_named(&spans, &missing_trace, "cart.v1.CartService/Clear").span;
    assert_eq!(hex(&refused.parent_span_id), missing_parent);
    assert_eq!(
        int_attribute(&refused.attributes, "rpc.grpc.status_code"),
        Some(5)
    );
    assert_eq!(
        string_attribute(&refused.attributes, "error.type").as_deref(),
        Some("CART_NOT_FOUND")
    );

    // The shim: an HTTP server span, child of the caller's; its Redis call below it.
    let shim = &span_named(&spans, &http_trace, "POST /v1/carts/{cart_id}/clear").span;
    assert_eq!(hex(&shim.parent_span_id), http_parent);
    assert_eq!(shim.kind, SpanKind::Server as i32);
    let attrs = &shim.attributes;
    assert_eq!(
        string_attribute(attrs, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        string_attribute(attrs, "http.route").as_deref(),
        Some("/v1/carts/{cart_id}/clear")
    );
    assert_eq!(int_attribute(attrs, "http.response.status_code"), Some(200));
    assert_eq!(string_attribute(attrs, "tenant").as_deref(), Some("acme"));
    assert_eq!(string_attribute(attrs, "cart_id"), Some(http_cart.clone()));
    let shim_redis = &span_named(&spans, &http_trace, "FCALL clear").span;
    assert_eq!(shim_redis.parent_span_id, shim.span_id);
    assert_eq!(
        spans
            .iter()
            .filter(|e| hex(&e.span.trace_id) == http_trace)
            .count(),
        2,
        "the shim's trace: its server span and its Redis call"
    );
}

/// Without `OTEL_EXPORTER_OTLP_ENDPOINT` no exporter exists: nothing reaches the collector,
/// although the traces endpoint names it and the call carries a sampled traceparent; the
/// caller's trace id still tags the request's log lines, and no span id of ours does.
#[tokio::test]
async fn nothing_is_exported_without_an_endpoint() {
    let redis = RedisServer::start();
    let collector = Collector::start().await;
    let mut service = Service::start(
        &redis,
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                collector.endpoint.as_str(),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "1"),
        ],
    );
    let mut client = service.client().await;
    let cart = create_cart(&mut client).await;
    let trace = random_hex(16);
    client
        .clear(authed(
            pb::ClearRequest {
                cart_id: cart,
                ..Default::default()
            },
            Some(&format!("00-{trace}-{}-01", random_hex(8))),
        ))
        .await
        .expect("clear succeeds");
    service.stop().await;
    assert!(collector.spans().is_empty(), "{:?}", collector.spans());
    let log = service.log();
    assert!(
        log.iter().any(|l| l.contains(&format!("trace_id={trace}"))),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("span_id=")), "{log:#?}");
}

/// `CART_LOG_FORMAT=json`: every log line is one JSON object, and a traced request's lines
/// name its trace and the server span's id, on gRPC and on a shim.
#[tokio::test]
async fn json_logs_carry_the_trace() {
    let redis = RedisServer::start();
    let collector = Collector::start().await;
    let mut service = Service::start(
        &redis,
        &[
            ("CART_LOG_FORMAT", "json"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
        ],
    );
    let mut client = service.client().await;
    let cart = create_cart(&mut client).await;
    let grpc_trace = random_hex(16);
    client
        .clear(authed(
            pb::ClearRequest {
                cart_id: cart.clone(),
                ..Default::default()
            },
            Some(&format!("00-{grpc_trace}-{}-01", random_hex(8))),
        ))
        .await
        .expect("clear succeeds");
    let http_trace = random_hex(16);
    let traceparent = format!("00-{http_trace}-{}-01", random_hex(8));
    let response = helpers::http(
        service.http_addr,
        "POST",
        &format!("/api/checkout/pub/orderForm/{cart}/items/removeAll?an=cosmetics2"),
        &[
            ("Content-Type", "application/json"),
            ("traceparent", &traceparent),
        ],
        b"{}",
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    service.stop().await;

    let lines: Vec<serde_json::Value> = service
        .log()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let spans = collector.spans();
    for trace in [&grpc_trace, &http_trace] {
        let server = spans
            .iter()
            .find(|e| hex(&e.span.trace_id) == *trace && e.span.kind == SpanKind::Server as i32)
            .unwrap_or_else(|| panic!("no server span of {trace}"));
        let span_id = hex(&server.span.span_id);
        let tagged = lines.iter().any(|line| {
            line["spans"].as_array().is_some_and(|scope| {
                scope.iter().any(|span| {
                    span["trace_id"].as_str() == Some(trace.as_str())
                        && span["span_id"].as_str() == Some(span_id.as_str())
                })
            })
        });
        assert!(tagged, "no log line of trace {trace} in {lines:#?}");
    }
}

/// The correlation id a client sends (`x-request-id`) names the operation in its log lines, on
/// gRPC and on a shim: here the warnings of calls made while Redis is down.
#[tokio::test]
async fn the_correlation_id_names_the_operation_in_its_log_lines() {
    let mut redis = RedisServer::start();
    let mut service = Service::start(&redis, &[]);
    let mut client = service.client().await;
    redis.stop();
    let mut request = authed(
        pb::GetRequest {
            cart_id: "c1".into(),
        },
        None,
    );
    request
        .metadata_mut()
        .insert("x-request-id", "corr-grpc-7".parse().unwrap());
    let error = client.get(request).await.expect_err("redis is down");
    assert_eq!(error.code(), tonic::Code::Unavailable);
    let response = helpers::http(
        service.http_addr,
        "POST",
        "/v1/carts/c1/clear",
        &[
            ("Authorization", &format!("Bearer {ACME_KEY}")),
            ("x-request-id", "corr-http-7"),
        ],
        b"",
    )
    .await;
    assert_eq!(response.status, 503, "{}", response.body);
    service.stop().await;
    let log = service.log();
    for (operation, id) in [("Get", "corr-grpc-7"), ("Clear", "corr-http-7")] {
        assert!(
            log.iter()
                .any(|line| line.contains("cart store unavailable")
                    && line.contains(&format!("{operation}{{"))
                    && line.contains(&format!("correlation_id=\"{id}\""))),
            "no warning of {operation} names {id}: {log:#?}"
        );
    }
}
