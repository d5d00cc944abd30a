//! One tenant floods; another keeps its latency and health keeps answering (heavy: runs with
//! `CART_HEAVY_TESTS=1`, as CI does).
//!
//! Tenant `flood` runs 2,000 concurrent streams of Clear (16 connections × 125 streams, each
//! sending its next request as soon as the last is answered) while tenant `steady` sends 50
//! Gets a second, and probes call gRPC health Check and `/healthz` 50 times a second each.
//! The service and the flood (`cart-load`) are release builds in processes of their own, with
//! their own real redis-server; the steady tenant and the probes run here. Every figure is
//! printed, and written as JSON to `CART_FLOOD_REPORT` when set (`scripts/bench overload`).
//!
//! What it asserts is what does not depend on the machine's speed: the flood is admitted
//! within its share and refused past it, the steady tenant is never refused, and every health
//! probe answers. The latencies (the steady tenant's p99 against its p99 without the flood,
//! health's p99) are measured, not asserted: they are benchmark figures, recorded by
//! `scripts/bench overload` in BENCHMARKS.md beside their targets.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cart_service::pb;
use cart_service::pb::cart_service_client::CartServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{RedisServer, TestApp, create_request, http, temp_dir};

const FLOOD_KEY: &str = "sk_flood_rw_1";
const STEADY_KEY: &str = "sk_steady_rw_1";
const CONFIG: &str = r#"
hmac_secret = "flood tests secret, long enough"
[[tenants]]
id = "flood"
api_keys = [ { key = "sk_flood_rw_1", scopes = ["carts:read", "carts:write"] } ]
[[tenants]]
id = "steady"
api_keys = [ { key = "sk_steady_rw_1", scopes = ["carts:read", "carts:write"] } ]
"#;

const FLOOD_CONNECTIONS: usize = 16;
const FLOOD_STREAMS_PER_CONNECTION: usize = 125;
/// The steady tenant's (and each probe's) request interval: 50 a second.
const STEADY_INTERVAL: Duration = Duration::from_millis(20);
/// Each phase's length: 500 calls of each kind, so that a p99 is the 5th slowest of them, not
/// the 3rd of 250 (which one slow moment of the machine decides).
const MEASURE: Duration = Duration::from_secs(10);
const RAMP_UP: Duration = Duration::from_secs(1);

fn heavy() -> bool {
    std::env::var("CART_HEAVY_TESTS").as_deref() == Ok("1")
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("gRPC connects")
}

/// Latencies of requests sent on a fixed schedule, and how many failed (by reason).
#[derive(Debug, Default)]
struct Samples {
    latencies: Vec<Duration>,
    refused: u64,
    failed: Vec<String>,
}

impl Samples {
    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    fn p99_ms(&self) -> f64 {
        self.quantile(0.99).as_secs_f64() * 1e3
    }

    fn p50_ms(&self) -> f64 {
        self.quantile(0.5).as_secs_f64() * 1e3
    }
}

/// What one probe call ended in.
enum Outcome {
    Ok,
    Refused,
    Failed(String),
}

/// Calls `call` every [`STEADY_INTERVAL`] for `length`, each call in its own task (a slow one
/// does not delay the schedule), timing each.
async fn on_schedule<F, Fut>(length: Duration, call: F) -> Samples
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let mut ticks = tokio::time::interval(STEADY_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let until = Instant::now() + length;
    let mut calls = Vec::new();
    while Instant::now() < until {
        ticks.tick().await;
        let call = call();
        calls.push(tokio::spawn(async move {
            let started = Instant::now();
            let outcome = call.await;
            (started.elapsed(), outcome)
        }));
    }
    let mut samples = Samples::default();
    for call in calls {
        let (latency, outcome) = call.await.expect("probe task");
        match outcome {
            Outcome::Ok => samples.latencies.push(latency),
            Outcome::Refused => samples.refused += 1,
            Outcome::Failed(why) => samples.failed.push(why),
        }
    }
    samples
}

fn grpc_outcome<T>(result: Result<T, tonic::Status>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(status) if status.code() == tonic::Code::ResourceExhausted => Outcome::Refused,
        Err(status) => Outcome::Failed(format!("{:?}: {}", status.code(), status.message())),
    }
}

/// The steady tenant's Gets, gRPC health Checks and `/healthz`, side by side.
async fn measure(
    grpc: SocketAddr,
    http_addr: SocketAddr,
    cart_id: String,
    length: Duration,
) -> (Samples, Samples, Samples) {
    let client = CartServiceClient::new(channel(grpc).await);
    let health = HealthClient::new(channel(grpc).await);
    let gets = on_schedule(length, move || {
        let mut client = client.clone();
        let request = TestApp::authed(
            pb::GetRequest {
                cart_id: cart_id.clone(),
            },
            STEADY_KEY,
        );
        async move { grpc_outcome(client.get(request).await) }
    });
    let checks = on_schedule(length, move || {
        let mut health = health.clone();
        async move {
            let request = HealthCheckRequest {
                service: "cart.v1.CartService".into(),
            };
            grpc_outcome(health.check(request).await)
        }
    });
    let healthz = on_schedule(length, move || async move {
        match http(http_addr, "GET", "/healthz", &[], b"").await.status {
            200 => Outcome::Ok,
            other => Outcome::Failed(format!("/healthz answered {other}")),
        }
    });
    tokio::join!(gets, checks, healthz)
}

/// A release build of one of this package's binaries (a debug build spends so much CPU per
/// request that a flood measures the build, not the service): `scripts/test` builds them
/// before it runs the heavy scenarios, in `CART_RELEASE_DIR` when it sets it (the static build
/// the container image reuses), else in the target directory's `release/`.
fn release_binary(name: &str) -> PathBuf {
    let dir = match std::env::var_os("CART_RELEASE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_BIN_EXE_cart-service"))
            .parent()
            .and_then(Path::parent)
            .expect("target directory")
            .join("release"),
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release --bins` first (scripts/test does)",
        path.display()
    );
    path
}

/// The release binary serving on free loopback ports with [`CONFIG`]; killed on drop.
struct Service {
    child: Child,
    grpc: SocketAddr,
    http: SocketAddr,
    dir: PathBuf,
}

impl Service {
    fn start(redis: &RedisServer) -> Self {
        let dir = temp_dir("flood");
        let config = dir.join("cart.toml");
        std::fs::write(&config, CONFIG).expect("config written");
        let mut child = Command::new(release_binary("cart-service"))
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .env_clear()
            .env("CART_REDIS_URL", redis.url())
            .env("CART_CONFIG", &config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cart-service starts");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let addr = |name: &str| {
                    let rest = line.split(&format!("{name}=")).nth(1)?;
                    rest.split_whitespace().next()?.parse::<SocketAddr>().ok()
                };
                if let (Some(grpc), Some(http)) = (addr("grpc_addr"), addr("http_addr")) {
                    let _ = tx.send((grpc, http));
                }
            }
        });
        let (grpc, http) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("cart-service listens");
        Self {
            child,
            grpc,
            http,
            dir,
        }
    }

    /// CPU time the service has used so far (user and system).
    fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // After the command's closing parenthesis: state is field 3, utime and stime 14 and 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks: u64 = fields
            .get(11..13)
            .map_or(0, |t| t.iter().filter_map(|f| f.parse::<u64>().ok()).sum());
        // In clock ticks of USER_HZ, which Linux fixes at 100 a second for /proc.
        Duration::from_millis(ticks * 10)
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The flooding tenant: `cart-load` (release) running Clear on one cart over
/// [`FLOOD_CONNECTIONS`] × [`FLOOD_STREAMS_PER_CONNECTION`] streams for `length`, each stream
/// sending its next request as soon as the last is answered.
fn start_flood(service: &Service, cart_id: &str, length: Duration, report: &Path) -> Child {
    Command::new(release_binary("cart-load"))
        .arg("--addr")
        .arg(format!("http://{}", service.grpc))
        .args([
            "--scenario",
            "clear",
            "--cart-id",
            cart_id,
            "--api-key",
            FLOOD_KEY,
        ])
        .arg("--connections")
        .arg(FLOOD_CONNECTIONS.to_string())
        .arg("--streams")
        .arg(FLOOD_STREAMS_PER_CONNECTION.to_string())
        .arg("--duration")
        .arg(format!("{}ms", length.as_millis()))
        .arg("--json")
        .arg(report)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cart-load starts")
}

/// Tenant `flood` with 2,000 concurrent streams leaves tenant `steady` (50 req/s) without a
/// refusal and with a p99 at most 3× its p99 without the flood; gRPC health Check and
/// `/healthz` answer within 100 ms at p99 throughout.
#[test]
fn a_flooding_tenant_is_refused_past_its_share_while_another_and_health_are_always_answered() {
    if !heavy() {
        eprintln!("skipped: heavy scenario, set CART_HEAVY_TESTS=1 to run it");
        return;
    }
    let redis = RedisServer::start();
    let service = Service::start(&redis);
    let (grpc, http_addr) = (service.grpc, service.http);

    let clients = runtime(1);
    let (flood_cart, steady_cart) = clients.block_on(async {
        let mut client = CartServiceClient::new(channel(grpc).await);
        let mut ids = Vec::new();
        for key in [FLOOD_KEY, STEADY_KEY] {
            let request = TestApp::authed(create_request("", &[("SKU-1", 2, 1250)]), key);
            ids.push(
                client
                    .create(request)
                    .await
                    .expect("create")
                    .into_inner()
                    .id,
            );
        }
        (ids[0].clone(), ids[1].clone())
    });

    // Both phases are measured in a steady state: the quiet one after a warm-up as long as
    // the flood's ramp-up (first calls on new connections, a machine still settling from
    // what ran before), so that its p99 is the service's, not the start's.
    clients.block_on(measure(grpc, http_addr, steady_cart.clone(), RAMP_UP));
    let (baseline, baseline_checks, baseline_healthz) =
        clients.block_on(measure(grpc, http_addr, steady_cart.clone(), MEASURE));

    let report = service.dir.join("flood.json");
    let cpu_before = service.cpu_time();
    let mut flood = start_flood(&service, &flood_cart, RAMP_UP + MEASURE, &report);
    std::thread::sleep(RAMP_UP);
    let (during, checks, healthz) =
        clients.block_on(measure(grpc, http_addr, steady_cart, MEASURE));
    let finished = flood.wait().expect("cart-load ends");
    assert!(finished.success(), "cart-load failed: {finished}");
    let flood: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("cart-load report"))
            .expect("JSON report");
    let seconds = flood["seconds"].as_f64().unwrap();
    let flood_ok = flood["requests"].as_u64().unwrap();
    let flood_refused = flood["refused"].as_u64().unwrap();
    let flood_failed = flood["errors"].as_u64().unwrap();
    let peak_rss_kib = service.peak_rss_kib();
    // The service's CPU per request it answered during the flood (the steady tenant's and the
    // probes' are a few hundred of the flood's tens of thousands a second).
    let cpu_per_request_us = (service.cpu_time() - cpu_before).as_secs_f64() * 1e6
        / (flood_ok + flood_refused).max(1) as f64;

    let streams = FLOOD_CONNECTIONS * FLOOD_STREAMS_PER_CONNECTION;
    eprintln!(
        "flood (tenant A, {streams} streams): {:.0} admitted/s (p50 {:.2} ms, p99 {:.2} ms), {:.0} refused/s, {flood_failed} failed; service CPU {cpu_per_request_us:.1} µs per flood request, peak RSS {:.1} MiB",
        flood_ok as f64 / seconds,
        flood["latency_ms"]["p50"].as_f64().unwrap(),
        flood["latency_ms"]["p99"].as_f64().unwrap(),
        flood_refused as f64 / seconds,
        peak_rss_kib as f64 / 1024.0
    );
    let mut figures = serde_json::json!({
        "flood_streams": streams,
        "measure_seconds": MEASURE.as_secs(),
        "flood_admitted_per_second": flood_ok as f64 / seconds,
        "flood_refused_per_second": flood_refused as f64 / seconds,
        "flood_admitted_p50_ms": flood["latency_ms"]["p50"],
        "flood_admitted_p99_ms": flood["latency_ms"]["p99"],
        "flood_failed": flood_failed,
        "service_peak_rss_kib": peak_rss_kib,
        "service_cpu_per_flood_request_us": cpu_per_request_us,
    });
    for (name, what, quiet, loud) in [
        ("steady_get", "tenant B Get", &baseline, &during),
        (
            "grpc_health",
            "gRPC health Check",
            &baseline_checks,
            &checks,
        ),
        ("healthz", "/healthz", &baseline_healthz, &healthz),
    ] {
        eprintln!(
            "{what}: without flood p50 {:.2} ms p99 {:.2} ms ({} ok); during flood p50 {:.2} ms p99 {:.2} ms ({} ok, {} refused, {} failed)",
            quiet.p50_ms(),
            quiet.p99_ms(),
            quiet.latencies.len(),
            loud.p50_ms(),
            loud.p99_ms(),
            loud.latencies.len(),
            loud.refused,
            loud.failed.len()
        );
        figures[name] = serde_json::json!({
            "quiet": { "p50_ms": quiet.p50_ms(), "p99_ms": quiet.p99_ms(), "ok": quiet.latencies.len() },
            "flood": { "p50_ms": loud.p50_ms(), "p99_ms": loud.p99_ms(), "ok": loud.latencies.len(),
                       "refused": loud.refused, "failed": loud.failed.len() },
        });
    }
    // scripts/bench reads the figures from here.
    if let Ok(path) = std::env::var("CART_FLOOD_REPORT") {
        std::fs::write(path, figures.to_string()).expect("flood report written");
    }
    drop(service);

    assert!(
        flood_refused > 0 && flood_ok > 0,
        "the flood was admitted within its share and refused past it"
    );
    assert_eq!(
        flood_failed, 0,
        "the flooding tenant got only answers or refusals"
    );
    for samples in [&baseline, &during, &checks, &healthz] {
        assert_eq!(samples.refused, 0);
        assert!(samples.failed.is_empty(), "{:?}", samples.failed);
    }
}
