//! `cart-load`: a gRPC load generator for cart-service.
//!
//! N connections × M concurrent streams each run one scenario; every timed RPC's latency goes
//! into an HDR histogram. Setup work (creating and filling carts) is never timed. Requests
//! refused by admission control (RESOURCE_EXHAUSTED) are counted apart and not timed. Prints a
//! table and, with `--json`, writes the same figures as JSON.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use cart_service::pb;
use cart_service::pb::cart_service_client::CartServiceClient;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Get of carts holding `--items` lines.
    Get,
    /// AddItems of one unit, rotating over `--items` skus per cart.
    Add,
    /// Clear of carts freshly filled with `--items` lines: every Clear empties real items.
    Clear,
    /// A storefront: add 2, get 3, update 1, then clear or delete 1 (and create anew).
    Mixed,
    /// grpc.health.v1 Check: the same server and transport, no store work.
    Health,
    /// Creates `--requests` carts of `--items` lines and prints their ids (for measuring).
    Create,
    /// `probe.Probe/Touch` of the calibration probe (one EVALSHA per RPC and nothing else):
    /// the floor the other scenarios are compared with.
    Touch,
}

/// The probe's messages (`probe.proto`: one string field in, a string and an int out).
#[derive(Clone, PartialEq, prost::Message)]
struct TouchRequest {
    #[prost(string, tag = "1")]
    cart_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TouchReply {
    #[prost(string, tag = "1")]
    cart_id: String,
    #[prost(int64, tag = "2")]
    version: i64,
}

#[derive(Debug, Parser)]
#[command(name = "cart-load", about = "Load generator for cart.v1.CartService")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    #[arg(long, value_enum, required_unless_present_any = ["print_clear_script", "print_library", "print_clear_function"])]
    scenario: Option<Scenario>,
    /// gRPC connections (HTTP/2 channels).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Concurrent streams (in-flight RPCs) per connection.
    #[arg(long, default_value_t = 8)]
    streams: usize,
    /// Total timed requests; when unset the run lasts `--duration`.
    #[arg(long)]
    requests: Option<u64>,
    /// Length of a run without `--requests`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Lines per cart (get, add, clear, create).
    #[arg(long, default_value_t = 3)]
    items: usize,
    /// Carts filled up front for `clear` without `--requests`.
    #[arg(long, default_value_t = 20_000)]
    pool: u64,
    /// Give every timed mutation (add, clear, mixed) a request id of its own, to measure what
    /// remembering outcomes costs.
    #[arg(long)]
    request_ids: bool,
    /// Work on this existing cart (get, add, clear: Clear then empties the same cart again and
    /// again) instead of making carts in setup: a flood whose setup must not be refused.
    #[arg(long)]
    cart_id: Option<String>,
    /// Clear these carts (a file of ids, one a line, as `--scenario create` prints them),
    /// shared out among the streams, instead of making a pool in setup: whatever runs between
    /// making the carts and clearing them (a reset of Redis's statistics) stays out of both.
    #[arg(long, conflicts_with = "cart_id")]
    carts: Option<PathBuf>,
    /// Bearer API key, when the server has a config file.
    #[arg(long)]
    api_key: Option<String>,
    /// Also write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print the Lua source of the Clear script (for redis-benchmark) and exit.
    #[arg(long, conflicts_with = "scenario")]
    print_clear_script: bool,
    /// Print the Functions library the store loads (for FUNCTION LOAD) and exit.
    #[arg(long, conflicts_with = "scenario")]
    print_library: bool,
    /// Print the name of the library's Clear function (for FCALL) and exit.
    #[arg(long, conflicts_with = "scenario")]
    print_clear_function: bool,
}

type Client = CartServiceClient<Channel>;

/// Adds the bearer key, when there is one.
#[derive(Clone)]
struct Auth(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Auth {
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }
}

fn new_item(n: usize) -> pb::NewItem {
    pb::NewItem {
        sku: format!("SKU-{n:04}"),
        product_id: format!("prod-{n}"),
        title: format!("Product number {n}"),
        quantity: 1,
        unit_price: 1_000 + n as i64,
        attributes: [("color".to_owned(), "blue".to_owned())].into(),
        ..Default::default()
    }
}

async fn create(client: &mut Client, auth: &Auth, items: usize) -> Result<pb::Cart, tonic::Status> {
    let request = pb::CreateRequest {
        currency: "USD".into(),
        customer_id: "load".into(),
        channel: "web".into(),
        items: (0..items).map(new_item).collect(),
        ..Default::default()
    };
    client
        .create(auth.request(request))
        .await
        .map(tonic::Response::into_inner)
}

/// What one stream measured.
struct Measured {
    histogram: Histogram<u64>,
    errors: u64,
    /// Refused by admission control (RESOURCE_EXHAUSTED): not timed, not errors.
    refused: u64,
    /// RPCs made but not timed (setup, and the carts a storefront starts after a checkout).
    untimed: u64,
}

impl Measured {
    fn new() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            errors: 0,
            refused: 0,
            untimed: 0,
        }
    }

    /// Times one RPC (microseconds).
    async fn time<T>(
        &mut self,
        call: impl std::future::Future<Output = Result<T, tonic::Status>>,
    ) -> Option<T> {
        let started = Instant::now();
        let result = call.await;
        let micros = started.elapsed().as_micros().max(1) as u64;
        match result {
            Ok(value) => {
                let _ = self.histogram.record(micros);
                Some(value)
            }
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                self.refused += 1;
                None
            }
            Err(status) => {
                self.errors += 1;
                // The first few, so that a run with failures says what they were.
                if self.errors <= 3 {
                    eprintln!("cart-load: {:?}: {}", status.code(), status.message());
                }
                None
            }
        }
    }
}

/// Hands out request slots: a shared count, or a deadline.
struct Budget {
    remaining: Option<AtomicU64>,
    until: Instant,
}

impl Budget {
    fn take(&self) -> bool {
        match &self.remaining {
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
            None => Instant::now() < self.until,
        }
    }
}

struct Stream {
    client: Client,
    channel: Channel,
    health: HealthClient<Channel>,
    auth: Auth,
    scenario: Scenario,
    items: usize,
    /// Prefix of this stream's request ids, when mutations carry them.
    request_ids: Option<String>,
    /// The one cart of `--cart-id`.
    fixed_cart: Option<String>,
    /// This stream's share of `--carts`, until its setup takes it.
    given: Option<Vec<String>>,
    /// How many carts this stream's setup created (untimed RPCs; none for given carts).
    made: u64,
}

impl Stream {
    /// One `probe.Probe/Touch`.
    async fn touch(&self, request: TouchRequest) -> Result<TouchReply, tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static("/probe.Probe/Touch");
        let codec = tonic_prost::ProstCodec::<TouchRequest, TouchReply>::default();
        grpc.unary(tonic::Request::new(request), path, codec)
            .await
            .map(tonic::Response::into_inner)
    }

    /// The request id of the stream's n-th call ("" without `--request-ids`).
    fn request_id(&self, n: usize) -> String {
        match &self.request_ids {
            Some(prefix) => format!("{prefix}-{n}"),
            None => String::new(),
        }
    }

    /// Untimed setup: the ids of the carts this stream works on (only ids: dropping full
    /// 250-line carts inside the timed loop would charge the load generator's work to Clear).
    async fn setup(&mut self, pool: u64) -> Result<Vec<String>, tonic::Status> {
        if let Some(id) = &self.fixed_cart {
            return Ok(vec![id.clone()]);
        }
        if let Some(carts) = self.given.take() {
            return Ok(carts);
        }
        let carts = match self.scenario {
            Scenario::Health | Scenario::Touch => 0,
            Scenario::Clear | Scenario::Create => pool,
            _ => 1,
        };
        let items = match self.scenario {
            Scenario::Get | Scenario::Clear | Scenario::Create => self.items,
            _ => 0,
        };
        let mut made = Vec::with_capacity(carts as usize);
        for _ in 0..carts {
            made.push(create(&mut self.client, &self.auth, items).await?.id);
            self.made += 1;
        }
        Ok(made)
    }

    async fn run(mut self, carts: Vec<String>, budget: Arc<Budget>) -> Measured {
        let mut measured = Measured::new();
        measured.untimed = self.made;
        let mut carts = carts.into_iter().peekable();
        let mut cart = match self.scenario {
            Scenario::Health | Scenario::Clear | Scenario::Create | Scenario::Touch => None,
            _ => carts.next(),
        };
        let mut n = 0usize;
        loop {
            // A clear (or create) stream stops when its own pool is spent, before taking a
            // slot: a slot it took would go to waste, not to another stream's cart.
            if matches!(self.scenario, Scenario::Clear | Scenario::Create)
                && self.fixed_cart.is_none()
                && carts.peek().is_none()
            {
                break;
            }
            if !budget.take() {
                break;
            }
            n += 1;
            match self.scenario {
                Scenario::Health => {
                    let request = HealthCheckRequest {
                        service: "cart.v1.CartService".into(),
                    };
                    measured.time(self.health.check(request)).await;
                }
                Scenario::Get => {
                    let id = cart.clone().expect("cart");
                    measured
                        .time(
                            self.client
                                .get(self.auth.request(pb::GetRequest { cart_id: id })),
                        )
                        .await;
                }
                Scenario::Add => {
                    let id = cart.clone().expect("cart");
                    let request = pb::AddItemsRequest {
                        cart_id: id,
                        items: vec![new_item(n % self.items.max(1))],
                        expected_version: 0,
                        request_id: self.request_id(n),
                    };
                    measured
                        .time(self.client.add_items(self.auth.request(request)))
                        .await;
                }
                Scenario::Clear => {
                    let Some(id) = self.fixed_cart.clone().or_else(|| carts.next()) else {
                        break;
                    };
                    let request = pb::ClearRequest {
                        cart_id: id,
                        reason: "load".into(),
                        request_id: self.request_id(n),
                        ..Default::default()
                    };
                    measured
                        .time(self.client.clear(self.auth.request(request)))
                        .await;
                }
                Scenario::Mixed => {
                    cart = self
                        .storefront_visit(&mut measured, cart.take().expect("cart"), n)
                        .await;
                }
                Scenario::Create => {
                    if let Some(id) = carts.next() {
                        println!("{id}");
                    }
                }
                Scenario::Touch => {
                    // The same cart again and again, as the probe's own README measures it.
                    let request = TouchRequest {
                        cart_id: "c0ffee".into(),
                    };
                    measured.time(self.touch(request)).await;
                }
            }
        }
        measured
    }

    /// One visit: add 2, get 3, update 1, clear (or, every other visit, delete and start a
    /// new cart, untimed).
    async fn storefront_visit(
        &mut self,
        measured: &mut Measured,
        cart: String,
        n: usize,
    ) -> Option<String> {
        let id = cart.clone();
        for k in 0..2 {
            let request = pb::AddItemsRequest {
                cart_id: id.clone(),
                items: vec![new_item(2 * n + k)],
                expected_version: 0,
                request_id: self.request_id(10 * n + k),
            };
            measured
                .time(self.client.add_items(self.auth.request(request)))
                .await;
        }
        let mut last = None;
        for _ in 0..3 {
            let request = pb::GetRequest {
                cart_id: id.clone(),
            };
            last = measured
                .time(self.client.get(self.auth.request(request)))
                .await
                .map(|r| r.into_inner());
        }
        if let Some(line) = last.as_ref().and_then(|c| c.items.first()) {
            let request = pb::UpdateItemsRequest {
                cart_id: id.clone(),
                updates: vec![pb::ItemUpdate {
                    line_id: line.line_id.clone(),
                    quantity: 2,
                }],
                expected_version: 0,
                request_id: self.request_id(10 * n + 2),
            };
            measured
                .time(self.client.update_items(self.auth.request(request)))
                .await;
        }
        if n.is_multiple_of(2) {
            let request = pb::ClearRequest {
                cart_id: id,
                reason: "visit".into(),
                request_id: self.request_id(10 * n + 3),
                ..Default::default()
            };
            measured
                .time(self.client.clear(self.auth.request(request)))
                .await;
            Some(cart)
        } else {
            let request = pb::DeleteRequest {
                cart_id: id,
                order_number: format!("ORD-{n}"),
                expected_version: 0,
                request_id: self.request_id(10 * n + 4),
            };
            measured
                .time(self.client.delete(self.auth.request(request)))
                .await;
            measured.untimed += 1;
            create(&mut self.client, &self.auth, 0)
                .await
                .ok()
                .map(|c| c.id)
        }
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let Some(scenario) = args.scenario else {
        let (library, clear) = cart_service::store::redis::library_source();
        if args.print_library {
            print!("{library}");
        } else if args.print_clear_function {
            println!("{clear}");
        } else {
            print!("{}", cart_service::store::redis::clear_script_source());
        }
        return Ok(());
    };
    let auth = Auth(match &args.api_key {
        Some(key) => Some(format!("Bearer {key}").parse()?),
        None => None,
    });
    let total_streams = (args.connections * args.streams).max(1);
    let per_stream_pool = match (scenario, args.requests) {
        (Scenario::Clear | Scenario::Create, Some(requests)) => {
            requests.div_ceil(total_streams as u64)
        }
        (Scenario::Clear | Scenario::Create, None) => args.pool.div_ceil(total_streams as u64),
        _ => 0,
    };

    // Request ids unique across runs against the same store.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // `--carts`, dealt out to the streams in turn.
    let mut shares = vec![Vec::new(); total_streams];
    if let Some(path) = &args.carts {
        let ids = std::fs::read_to_string(path)?;
        for (n, id) in ids
            .lines()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .enumerate()
        {
            shares[n % total_streams].push(id.to_owned());
        }
    }
    let mut shares = shares.into_iter();
    let mut streams = Vec::new();
    for connection in 0..args.connections.max(1) {
        let channel = Channel::from_shared(args.addr.clone())?.connect().await?;
        for stream in 0..args.streams.max(1) {
            streams.push(Stream {
                client: CartServiceClient::new(channel.clone()).max_decoding_message_size(8 << 20),
                channel: channel.clone(),
                health: HealthClient::new(channel.clone()),
                auth: auth.clone(),
                scenario,
                items: args.items,
                request_ids: args
                    .request_ids
                    .then(|| format!("{run:x}-{connection}-{stream}")),
                fixed_cart: args.cart_id.clone(),
                given: args.carts.as_ref().and(shares.next()),
                made: 0,
            });
        }
    }
    let setups: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let carts = stream.setup(per_stream_pool).await?;
                Ok::<_, tonic::Status>((stream, carts))
            })
        })
        .collect();
    let mut ready = Vec::new();
    for setup in setups {
        ready.push(setup.await??);
    }

    let budget = Arc::new(Budget {
        remaining: args.requests.map(AtomicU64::new),
        until: Instant::now() + args.duration,
    });
    let started = Instant::now();
    let runs: Vec<_> = ready
        .into_iter()
        .map(|(stream, carts)| tokio::spawn(stream.run(carts, budget.clone())))
        .collect();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut errors, mut refused, mut untimed) = (0, 0, 0);
    for run in runs {
        let measured = run.await?;
        histogram.add(&measured.histogram)?;
        errors += measured.errors;
        refused += measured.refused;
        untimed += measured.untimed;
    }
    let seconds = started.elapsed().as_secs_f64();
    if scenario == Scenario::Create {
        return Ok(());
    }

    let requests = histogram.len();
    let throughput = requests as f64 / seconds;
    let q = |quantile: f64| ms(histogram.value_at_quantile(quantile));
    let name = format!("{:?}", scenario).to_lowercase();
    println!(
        "{:<8} {:>6} {:>7} {:>8} {:>7} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "scenario",
        "conns",
        "streams",
        "requests",
        "errors",
        "refused",
        "rps",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms"
    );
    println!(
        "{:<8} {:>6} {:>7} {:>8} {:>7} {:>8} {:>10.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
        name,
        args.connections,
        args.streams,
        requests,
        errors,
        refused,
        throughput,
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        ms(histogram.max())
    );
    if let Some(path) = &args.json {
        let report = serde_json::json!({
            "scenario": name,
            "connections": args.connections,
            "streams_per_connection": args.streams,
            "items": args.items,
            "requests": requests,
            "errors": errors,
            "refused": refused,
            "untimed_requests": untimed,
            "seconds": seconds,
            "throughput_rps": throughput,
            "latency_ms": {
                "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": ms(histogram.max()),
            },
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
