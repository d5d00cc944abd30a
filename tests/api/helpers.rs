//! Test harness: real redis-servers on free loopback ports, and the service started on port 0
//! with a typed gRPC client.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cart_service::app::Application;
use cart_service::config::Settings;
use cart_service::domain::CartPolicy;
use cart_service::pb;
use cart_service::pb::cart_service_client::CartServiceClient;
use cart_service::store::SharedStore;
use tonic::transport::Channel;

/// A `redis-server` child on a free loopback port (persisting nothing unless its extra
/// arguments say so), in a directory of its own that goes with it: a stray `dump.rdb` in the
/// shared temp dir must not be loaded into a test's server.
///
/// It runs under a small `sh` guard that kills it when our end of the guard's stdin closes,
/// so no server outlives the test process, however the process ends. Writing a signal name
/// to the guard first (`kill`) crashes the server instead of stopping it.
pub struct RedisServer {
    port: u16,
    args: Vec<String>,
    guard: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with a user `carts` (password `carts-pw`) limited to cart keys and allowed
    /// every command but what the ACL rules `denied` take away (`-function`, ...), and the URL
    /// that logs in as that user.
    pub fn start_with_carts_user(denied: &[&str]) -> (Self, String) {
        let args: Vec<String> = ["--user", "carts", "on", ">carts-pw", "~cart:*", "+@all"]
            .iter()
            .chain(denied)
            .map(|arg| arg.to_string())
            .collect();
        let server = Self::start_with(&args);
        let url = format!("redis://carts:carts-pw@127.0.0.1:{}/", server.port());
        (server, url)
    }

    /// A server with extra `redis-server` arguments (AOF, passwords, TLS, cluster mode).
    pub fn start_with(args: &[String]) -> Self {
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut server = Self {
                port: free_port(),
                args: args.to_vec(),
                guard: None,
            };
            match server.spawn() {
                Ok(guard) => {
                    server.guard = Some(guard);
                    return server;
                }
                Err(error) => last_error = error,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    /// A free port with no server yet (`restart` starts one): for starting the service
    /// while Redis is down.
    pub fn reserve() -> Self {
        Self {
            port: free_port(),
            args: Vec::new(),
            guard: None,
        }
    }

    /// A server on a port whose cluster bus port (+10000) is free too.
    pub fn start_cluster_node(args: &[String]) -> Self {
        for _ in 0..20 {
            let port = free_port();
            if port > 55000 || TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10000)).is_err() {
                continue;
            }
            let mut server = Self {
                port,
                args: args.to_vec(),
                guard: None,
            };
            if let Ok(guard) = server.spawn() {
                server.guard = Some(guard);
                return server;
            }
        }
        panic!("could not start a cluster node");
    }

    fn spawn(&self) -> Result<Child, String> {
        let port = self.port;
        let quoted: Vec<String> = self
            .args
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect();
        let script = format!(
            "dir=\"$TMPDIR_REDIS/cart-test-redis-{port}-$$\"; mkdir -p \"$dir\"; \
             redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
             --dir \"$dir\" --logfile '' --loglevel warning {} >/dev/null 2>&1 & \
             pid=$!; read sig; kill -${{sig:-TERM}} $pid 2>/dev/null; wait $pid; rm -rf \"$dir\"",
            quoted.join(" ")
        );
        let mut guard = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("TMPDIR_REDIS", std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run sh: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if ping(port) {
                return Ok(guard);
            }
            if let Ok(Some(status)) = guard.try_wait() {
                return Err(format!("redis-server exited ({status}); is it installed?"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(guard.stdin.take());
        let _ = guard.wait();
        Err(format!("redis-server did not answer on port {port}"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server (SIGTERM; with `--save ''` its data is gone).
    pub fn stop(&mut self) {
        self.end(None);
    }

    /// Crashes the server (SIGKILL): only what it already wrote to disk survives.
    pub fn kill(&mut self) {
        self.end(Some("KILL"));
    }

    fn end(&mut self, signal: Option<&str>) {
        if let Some(mut guard) = self.guard.take() {
            if let (Some(signal), Some(stdin)) = (signal, guard.stdin.as_mut()) {
                let _ = writeln!(stdin, "{signal}");
            }
            drop(guard.stdin.take());
            let _ = guard.wait();
        }
        assert!(
            !ping(self.port),
            "redis-server still answers after it was ended"
        );
    }

    /// Starts the server again on the same port, with the same arguments (and so the same
    /// data directory, when it has one).
    pub fn restart(&mut self) {
        assert!(self.guard.is_none(), "restart of a running server");
        self.guard = Some(self.spawn().expect("redis-server restarts"));
    }

    /// Sends one command in RESP and returns the raw reply (for INFO and the like).
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).unwrap();
        read_reply(&mut stream)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            drop(guard.stdin.take());
            let _ = guard.wait();
        }
    }
}

/// A real Redis Cluster of `masters` masters with one replica each, on loopback.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    dirs: Vec<std::path::PathBuf>,
    /// `cluster-node-timeout` of every node, in milliseconds.
    node_timeout: u32,
    /// Ports of nodes taken out by [`RedisCluster::remove_master`] (still running).
    removed: Vec<u16>,
}

impl RedisCluster {
    /// Fails a silent master over after one second (fast failover tests).
    pub fn start(masters: usize) -> Self {
        Self::start_with_node_timeout(masters, 1000)
    }

    /// With `cluster-node-timeout` of `node_timeout` ms: longer keeps a busy machine's slow
    /// gossip from marking nodes failed while slots move.
    pub fn start_with_node_timeout(masters: usize, node_timeout: u32) -> Self {
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for _ in 0..masters * 2 {
            let (node, dir) = Self::start_node(node_timeout);
            nodes.push(node);
            dirs.push(dir);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self {
            nodes,
            dirs,
            node_timeout,
            removed: Vec::new(),
        };
        cluster.wait_until_ok(
            &cluster
                .nodes
                .iter()
                .map(RedisServer::port)
                .collect::<Vec<_>>(),
        );
        cluster
    }

    /// A cluster-enabled redis-server in a directory of its own, not yet part of a cluster.
    fn start_node(node_timeout: u32) -> (RedisServer, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("cart-cluster-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let args: Vec<String> = [
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            &node_timeout.to_string(),
            "--cluster-config-file",
            "nodes.conf",
            "--dir",
            dir.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        (RedisServer::start_cluster_node(&args), dir)
    }

    /// Starts one more node, joins it to the cluster as a master (`redis-cli --cluster
    /// add-node`) and moves slots onto it while the cluster serves: `slots` of them from all
    /// masters (`reshard`), or its fair share (`rebalance --cluster-use-empty-masters`).
    /// Returns its port.
    pub fn add_master(&mut self, slots: Option<u32>) -> u16 {
        let (node, dir) = Self::start_node(self.node_timeout);
        let port = node.port();
        let via = self.masters(self.nodes[0].port())[0];
        self.nodes.push(node);
        self.dirs.push(dir);
        redis_cli_cluster(&[
            "add-node",
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{via}"),
        ]);
        // A rebalance plans from the entry node's view: every node must know the newcomer.
        let id = self.node_id(port);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .nodes
            .iter()
            .filter(|n| !self.removed.contains(&n.port()))
            .all(|n| n.command(&["CLUSTER", "NODES"]).contains(&id))
        {
            assert!(
                Instant::now() < deadline,
                "the new node did not become known"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // A node that has not yet seen every slot served refuses MIGRATE (CLUSTERDOWN).
        self.wait_until_ok(&[port]);
        self.wait_until_agreed(via);
        match slots {
            Some(slots) => redis_cli_cluster(&[
                "reshard",
                &format!("127.0.0.1:{via}"),
                "--cluster-from",
                "all",
                "--cluster-to",
                &id,
                "--cluster-slots",
                &slots.to_string(),
                "--cluster-yes",
            ]),
            None => redis_cli_cluster(&[
                "rebalance",
                &format!("127.0.0.1:{via}"),
                "--cluster-use-empty-masters",
            ]),
        }
        self.wait_until_agreed(via);
        port
    }

    /// Takes master `port` out while the cluster serves: moves all its slots to the other
    /// masters (`rebalance` with its weight 0), then `del-node`, which leaves the node running
    /// with its cluster state wiped.
    pub fn remove_master(&mut self, port: u16) {
        let id = self.node_id(port);
        let via = self
            .masters(self.nodes[0].port())
            .into_iter()
            .find(|&p| p != port)
            .expect("another master");
        redis_cli_cluster(&[
            "rebalance",
            &format!("127.0.0.1:{via}"),
            "--cluster-weight",
            &format!("{id}=0"),
        ]);
        self.wait_until_agreed(via);
        redis_cli_cluster(&["del-node", &format!("127.0.0.1:{via}"), &id]);
        self.removed.push(port);
        self.wait_until_agreed(via);
    }

    /// The cluster node id of the node on `port`.
    pub fn node_id(&self, port: u16) -> String {
        let node = self.nodes.iter().find(|n| n.port() == port).unwrap();
        let reply = node.command(&["CLUSTER", "MYID"]);
        reply
            .lines()
            .nth(1)
            .expect("CLUSTER MYID answers a bulk string")
            .to_owned()
    }

    /// Waits until `redis-cli --cluster check` finds every node agreeing on the slots, every
    /// slot served and none open (a rebalance refuses to start otherwise).
    pub fn wait_until_agreed(&self, via: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = Command::new("redis-cli")
                .args(["--cluster", "check", &format!("127.0.0.1:{via}")])
                .output()
                .expect("redis-cli runs");
            let text = String::from_utf8_lossy(&output.stdout);
            if output.status.success()
                && text.contains("All nodes agree about slots configuration")
                && text.contains("All 16384 slots covered")
                && !text.contains("[WARNING]")
                && !text.contains("[ERR]")
            {
                return;
            }
            assert!(Instant::now() < deadline, "cluster does not agree:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every listed node reports a healthy cluster with all slots served, and
    /// every replica among them has finished syncing with its master (a replica that never
    /// synced refuses to take over).
    pub fn wait_until_ok(&self, ports: &[u16]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = ports.iter().all(|&port| {
                let node = self.nodes.iter().find(|n| n.port() == port).unwrap();
                let info = node.command(&["CLUSTER", "INFO"]);
                let replication = node.command(&["INFO", "replication"]);
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && (replication.contains("role:master")
                        || replication.contains("master_link_status:up"))
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "cluster did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Seed URL of the cluster (every master).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Error replies of every node so far, by their first word (`MOVED`, `ASK`, `TRYAGAIN`,
    /// `CLUSTERDOWN`, …), from `INFO errorstats`.
    pub fn error_replies(&self) -> std::collections::BTreeMap<String, u64> {
        let mut counts = std::collections::BTreeMap::new();
        for node in &self.nodes {
            for line in node.command(&["INFO", "errorstats"]).lines() {
                let Some((name, stats)) = line
                    .strip_prefix("errorstat_")
                    .and_then(|l| l.split_once(':'))
                else {
                    continue;
                };
                let count = stats
                    .split(',')
                    .find_map(|field| field.strip_prefix("count="))
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                *counts.entry(name.to_owned()).or_default() += count;
            }
        }
        counts
    }

    /// Ports of the nodes that are masters now, as `live` sees the cluster.
    pub fn masters(&self, live: u16) -> Vec<u16> {
        let node = self.nodes.iter().find(|n| n.port() == live).unwrap();
        node.command(&["CLUSTER", "NODES"])
            .lines()
            .filter(|line| {
                let flags = line.split(' ').nth(2).unwrap_or("");
                flags.contains("master") && !flags.contains("fail")
            })
            .filter_map(|line| {
                line.split(' ')
                    .nth(1)?
                    .split('@')
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    }

    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        self.nodes.iter_mut().find(|n| n.port() == port).unwrap()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs `redis-cli --cluster <args>`; panics with its output when it fails.
fn redis_cli_cluster(args: &[&str]) {
    let output = Command::new("redis-cli")
        .arg("--cluster")
        .args(args)
        .output()
        .expect("redis-cli runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && !text.contains("[ERR]"),
        "redis-cli --cluster {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A fresh directory under the system temp dir, for a server's files.
pub fn temp_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cart-{what}-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The cluster shared by the tests of this binary.
pub fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| RedisCluster::start(3))
}

/// Reads one RESP reply; bulk strings are read to their announced length.
fn read_reply(stream: &mut TcpStream) -> String {
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).expect("redis reply");
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply_complete(&reply) {
            break;
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

fn reply_complete(reply: &[u8]) -> bool {
    let Some(eol) = reply.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    match reply[0] {
        b'$' => {
            let len: i64 = std::str::from_utf8(&reply[1..eol])
                .unwrap()
                .parse()
                .unwrap();
            len < 0 || reply.len() >= eol + 2 + len as usize + 2
        }
        _ => true,
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    // A server that wants a password answers -NOAUTH: it is up all the same.
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && (&reply == b"+PONG\r\n" || &reply == b"-NOAUTH")
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The redis-server shared by the tests of this binary (each test uses its own cart ids).
pub fn shared_redis() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// Which store a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Memory,
    Redis(String),
}

impl Backend {
    /// The shared test redis-server.
    pub fn redis() -> Self {
        Self::Redis(shared_redis().url())
    }

    /// The shared test Redis Cluster.
    pub fn cluster() -> Self {
        Self::Redis(shared_cluster().url())
    }
}

/// A running cart-service with a connected client.
pub struct TestApp {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub client: CartServiceClient<Channel>,
    pub channel: Channel,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub fn test_settings(backend: &Backend) -> Settings {
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let redis_url = match backend {
        Backend::Memory => None,
        Backend::Redis(url) => Some(url.clone()),
    };
    let mut settings = Settings::dev(loopback, loopback, redis_url);
    settings.health_interval = Duration::from_millis(200);
    settings
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(test_settings(&backend)).await
}

/// Starts the app with a policy of its own (short TTLs, small limits).
pub async fn spawn_with_policy(backend: Backend, policy: CartPolicy) -> TestApp {
    let mut settings = test_settings(&backend);
    settings.policy = policy;
    spawn_with(settings).await
}

pub async fn spawn_with(settings: Settings) -> TestApp {
    start(Application::build(settings).await.expect("app builds")).await
}

pub async fn spawn_with_store(store: SharedStore) -> TestApp {
    let settings = test_settings(&Backend::Memory);
    start(
        Application::build_with_store(settings, store)
            .await
            .expect("app builds"),
    )
    .await
}

/// Serves an app built by the test (to keep a handle on its parts first).
pub async fn start(app: Application) -> TestApp {
    // RUST_LOG=… shows the service's logs while debugging a test.
    if std::env::var_os("RUST_LOG").is_some() {
        cart_service::telemetry::init();
    }
    let grpc_addr = app.grpc_addr();
    let http_addr = app.http_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    let channel = Channel::from_shared(format!("http://{grpc_addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("gRPC connects");
    TestApp {
        grpc_addr,
        http_addr,
        client: CartServiceClient::new(channel.clone()),
        channel,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    /// A fresh client on its own connection.
    pub async fn new_client(&self) -> CartServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.grpc_addr))
            .unwrap()
            .connect()
            .await
            .expect("gRPC connects");
        CartServiceClient::new(channel)
    }

    /// Creates a USD cart (with metadata) with the given (sku, quantity, unit_price) items.
    pub async fn create_cart(&self, items: &[(&str, i64, i64)]) -> pb::Cart {
        let mut request = create_request("", items);
        request.metadata = [("campaign".to_owned(), "spring".to_owned())].into();
        self.client
            .clone()
            .create(request)
            .await
            .expect("create succeeds")
            .into_inner()
    }

    pub async fn get(&self, cart_id: &str) -> Result<pb::Cart, tonic::Status> {
        self.client
            .clone()
            .get(pb::GetRequest {
                cart_id: cart_id.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("server drains in time")
                .expect("server task ends cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A USD cart's CreateRequest (`cart_id` "" lets the service pick one).
pub fn create_request(cart_id: &str, items: &[(&str, i64, i64)]) -> pb::CreateRequest {
    pb::CreateRequest {
        cart_id: cart_id.into(),
        customer_id: "cust_abc123".into(),
        session_id: "sess_xyz789".into(),
        channel: "web".into(),
        currency: "USD".into(),
        locale: "en-US".into(),
        items: items.iter().map(|&(sku, q, p)| item(sku, q, p)).collect(),
        ..Default::default()
    }
}

pub fn item(sku: &str, quantity: i64, unit_price: i64) -> pb::NewItem {
    pb::NewItem {
        sku: sku.into(),
        product_id: format!("prod-{sku}"),
        title: format!("Item {sku}"),
        quantity,
        unit_price,
        ..Default::default()
    }
}

/// The `ErrorInfo.reason` of a failed call.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|info| {
            assert_eq!(info.domain, "cart.v1");
            info.reason.clone()
        })
        .unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"))
}

/// Asserts a call failed with `code` and `reason`.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    expected_reason: &str,
) -> tonic::Status {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(&status), expected_reason, "{status:?}");
    status
}

/// Polls `check` every 50 ms until it holds, for at most `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A plain HTTP/1.1 GET on loopback: (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = http(addr, "GET", path, &[], b"").await;
    (response.status, response.body)
}

/// The grpc.health.v1 status of `service` ("" = the whole server).
pub async fn health_of(app: &TestApp, service: &str) -> Result<i32, tonic::Status> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status)
}

pub const SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
pub const NOT_SERVING: i32 =
    tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;

/// A response read off the wire.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`), raw bytes as the body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("HTTP connects");
    let mut request = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str("Host: localhost\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    // A server may answer (413) before reading a large body; a failed write is fine then.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let read = async {
        let mut buf = [0u8; 16 * 1024];
        // A server that refused a body without reading it may reset the connection right
        // after its answer: keep what arrived.
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("HTTP answers in time");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut decoded = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
                .unwrap();
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 2 + size + 2..];
        }
        body = decoded;
    }
    HttpResponse {
        status,
        headers,
        body: String::from_utf8(body).expect("UTF-8 body"),
    }
}

/// The config the shim tests run with: two tenants, every dialect block for `acme`.
/// The hmac secret of [`SHIM_CONFIG`].
pub const SHIM_SECRET: &str = "shim tests secret, long enough";

pub const SHIM_CONFIG: &str = r#"
hmac_secret = "shim tests secret, long enough"
[[tenants]]
id = "acme"
api_keys = [
  { key = "sk_acme_rw_123", scopes = ["carts:read", "carts:write"] },
  { key = "sk_acme_ro_123", scopes = ["carts:read"] },
]
zaui   = { account_id = 1234, token = "998877" }
xm     = { account = "5f493c9f30ec2a0007a94fc8" }
amazon = { access_key_id = "AKIAEXAMPLE" }
vtex   = { account = "cosmetics2" }
[[tenants]]
id = "globex"
api_keys = [ { key = "sk_globex_rw_1", scopes = ["carts:read", "carts:write"] } ]
zaui   = { account_id = 5678, token = "112233" }
xm     = { account = "aaaaaaaaaaaaaaaaaaaaaaaa" }
amazon = { access_key_id = "AKIAGLOBEX" }
vtex   = { account = "globexstore" }
"#;

pub const ACME_KEY: &str = "sk_acme_rw_123";
pub const ACME_READ_KEY: &str = "sk_acme_ro_123";
pub const GLOBEX_KEY: &str = "sk_globex_rw_1";

/// The app with [`SHIM_CONFIG`].
pub async fn spawn_shim_app(backend: Backend) -> TestApp {
    let mut settings = test_settings(&backend);
    settings
        .apply_file(SHIM_CONFIG, std::path::Path::new("shims.toml"))
        .expect("shim config parses");
    spawn_with(settings).await
}

impl TestApp {
    /// A gRPC request carrying `key` as its bearer token.
    pub fn authed<T>(message: T, key: &str) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
        request
    }

    /// Creates a cart over gRPC for the tenant of `key`, with (sku, quantity, unit_price) items.
    pub async fn create_cart_as(
        &self,
        key: &str,
        cart_id: &str,
        items: &[(&str, i64, i64)],
    ) -> pb::Cart {
        self.client
            .clone()
            .create(Self::authed(create_request(cart_id, items), key))
            .await
            .expect("create succeeds")
            .into_inner()
    }

    pub async fn get_as(&self, key: &str, cart_id: &str) -> Result<pb::Cart, tonic::Status> {
        let request = pb::GetRequest {
            cart_id: cart_id.into(),
        };
        self.client
            .clone()
            .get(Self::authed(request, key))
            .await
            .map(tonic::Response::into_inner)
    }
}

/// A cart client on a connection of its own to `addr`, whose calls time out after 10 s.
pub async fn cart_client(addr: SocketAddr) -> CartServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("gRPC connects");
    CartServiceClient::new(channel)
}

/// A `cart-service` process a test started: its stderr lines are collected, and the addresses
/// of its "listening" line read from them. Killed on drop, a panicking test included.
pub struct ServiceProcess {
    pub child: Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    addrs: Option<(SocketAddr, SocketAddr)>,
}

impl ServiceProcess {
    /// Spawns `command` with its stderr piped here, and waits up to 30 s for the line that
    /// names both listening addresses (none when the process ends or never listens).
    pub fn spawn(mut command: Command) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cart-service starts");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let (Some(grpc), Some(http)) = (
                    addr_after(&line, "grpc_addr"),
                    addr_after(&line, "http_addr"),
                ) {
                    let _ = tx.send((grpc, http));
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addrs = rx.recv_timeout(Duration::from_secs(30)).ok();
        Self { child, log, addrs }
    }

    /// The binary against `redis_url` (no config file: dev mode), logging at `info`.
    pub fn on_redis(redis_url: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cart-service"));
        command
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .env_clear()
            .env("CART_REDIS_URL", redis_url)
            .env("RUST_LOG", "info");
        Self::spawn(command)
    }

    /// A cart client of its gRPC address (see [`cart_client`]).
    pub async fn client(&self) -> CartServiceClient<Channel> {
        let (grpc, _) = self.addrs().expect("the service listens");
        cart_client(grpc).await
    }

    /// The gRPC and HTTP addresses it listens on.
    pub fn addrs(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.addrs
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits for the process to end by itself (`wait_for_exit`, up to 20 s) or kills it, then
    /// returns every line it logged.
    pub fn finish(mut self, wait_for_exit: bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while wait_for_exit && Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread sees EOF once the process is gone.
        std::thread::sleep(Duration::from_millis(100));
        self.log()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address after `key=` (text logs) or `"key":"` (JSON logs).
pub fn addr_after(line: &str, key: &str) -> Option<SocketAddr> {
    let at = line.find(key)? + key.len();
    let rest = line[at..].trim_start_matches(['=', '"', ':']);
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
