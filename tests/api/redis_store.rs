//! Redis specifics: one command per RPC on the wire, the key layout, script reloads, and
//! internal errors that stay internal.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cart_service::pb;
use tonic::Code;

use crate::helpers::{Backend, RedisServer, assert_error, item, shared_redis, spawn_app};

/// Watches a redis-server with MONITOR, which tags commands run by scripts as `lua`: what is
/// left are the commands that crossed the wire.
struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
    markers: u32,
}

impl Monitor {
    fn start(redis: &RedisServer) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", redis.port())).expect("connect");
        let mut writer = stream.try_clone().unwrap();
        writer.write_all(b"MONITOR\r\n").unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        let mut monitor = Self { lines, markers: 0 };
        monitor.wire_commands(redis);
        monitor
    }

    /// The wire commands since the last call (health PINGs left out), fenced by an ECHO marker.
    fn wire_commands(&mut self, redis: &RedisServer) -> Vec<String> {
        self.markers += 1;
        let marker = format!("\"marker-{}\"", self.markers);
        redis.command(&["ECHO", &marker[1..marker.len() - 1]]);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut lines = self.lines.lock().unwrap();
            if let Some(at) = lines.iter().position(|l| l.ends_with(&marker)) {
                let seen: Vec<String> = lines.drain(..=at).collect();
                return seen
                    .into_iter()
                    .filter(|l| l.contains(" [") && !l.contains(" lua]"))
                    .filter_map(|l| l.split_once("] ").map(|(_, cmd)| cmd.to_owned()))
                    .filter(|cmd| {
                        let name = cmd.split(' ').next().unwrap_or("").to_ascii_uppercase();
                        name != "\"PING\"" && name != "\"ECHO\""
                    })
                    .collect();
            }
            drop(lines);
            assert!(Instant::now() < deadline, "MONITOR never showed the marker");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[track_caller]
    fn assert_one_fcall(&mut self, redis: &RedisServer, rpc: &str) {
        self.assert_sent(redis, rpc, &["FCALL"]);
    }

    /// A Get in the steady state: its pipelined read, no script.
    #[track_caller]
    fn assert_read(&mut self, redis: &RedisServer, rpc: &str) {
        self.assert_sent(redis, rpc, &["GET", "PEXPIRETIME"]);
    }

    #[track_caller]
    fn assert_sent(&mut self, redis: &RedisServer, rpc: &str, expected: &[&str]) {
        let commands = self.wire_commands(redis);
        let names: Vec<String> = commands
            .iter()
            .map(|c| {
                c.split(' ')
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_ascii_uppercase()
            })
            .collect();
        assert_eq!(names, expected, "{rpc} sent {commands:?}");
    }
}

/// Every RPC is one round trip: a mutation one command (an FCALL of its function) on the
/// wire, a Get its pipelined GET and PEXPIRETIME (no script); a Create that names a customer
/// is one transaction, written at once: MULTI, the customer's index (its own script, by EVAL),
/// the cart's FCALL, EXEC.
#[tokio::test]
async fn each_rpc_is_exactly_one_redis_command() {
    let redis = RedisServer::start();
    let app = spawn_app(Backend::Redis(redis.url())).await;
    let warm = app.create_cart(&[("WARM", 1, 1)]).await;
    app.get(&warm.id).await.unwrap();
    let mut monitor = Monitor::start(&redis);
    let mut client = app.client.clone();

    let cart = app.create_cart(&[("A", 2, 100), ("B", 1, 50)]).await;
    monitor.assert_sent(
        &redis,
        "Create of a customer's cart",
        &["MULTI", "EVAL", "FCALL", "EXEC"],
    );
    let id = cart.id.clone();
    let line = cart.items[0].line_id.clone();

    app.get(&id).await.unwrap();
    monitor.assert_read(&redis, "Get");

    let request = pb::AddItemsRequest {
        cart_id: id.clone(),
        items: vec![item("A", 1, 100), item("C", 3, 10)],
        expected_version: 0,
        request_id: String::new(),
    };
    client.add_items(request).await.unwrap();
    monitor.assert_one_fcall(&redis, "AddItems");

    let request = pb::UpdateItemsRequest {
        cart_id: id.clone(),
        updates: vec![pb::ItemUpdate {
            line_id: line,
            quantity: 5,
        }],
        expected_version: 0,
        request_id: String::new(),
    };
    client.update_items(request).await.unwrap();
    monitor.assert_one_fcall(&redis, "UpdateItems");

    let request = pb::ApplyCouponRequest {
        cart_id: id.clone(),
        code: "TEN".into(),
        amount: 10,
        expected_version: 0,
        request_id: String::new(),
    };
    client.apply_coupon(request).await.unwrap();
    monitor.assert_one_fcall(&redis, "ApplyCoupon");

    let request = pb::ClearRequest {
        cart_id: id.clone(),
        reason: "r".into(),
        ..Default::default()
    };
    client.clear(request).await.unwrap();
    monitor.assert_one_fcall(&redis, "Clear");

    let request = pb::DeleteRequest {
        cart_id: id.clone(),
        order_number: "O-1".into(),
        expected_version: 0,
        request_id: String::new(),
    };
    client.delete(request).await.unwrap();
    monitor.assert_one_fcall(&redis, "Delete");

    let guest = pb::CreateRequest {
        customer_id: String::new(),
        ..crate::helpers::create_request("", &[("A", 1, 1)])
    };
    let other = client.create(guest).await.unwrap().into_inner();
    monitor.assert_one_fcall(&redis, "Create of a guest cart");
    client
        .remove(pb::RemoveRequest {
            cart_id: other.id,
            expected_version: 0,
            request_id: String::new(),
        })
        .await
        .unwrap();
    monitor.assert_one_fcall(&redis, "Remove");

    // A refused mutation is one command too.
    let request = pb::ClearRequest {
        cart_id: id.clone(),
        ..Default::default()
    };
    assert_error(
        client.clear(request).await,
        Code::FailedPrecondition,
        "CART_DELETED",
    );
    monitor.assert_one_fcall(&redis, "refused Clear");
}

fn keys_of(redis: &RedisServer, cart_id: &str) -> Vec<String> {
    let reply = redis.command(&["KEYS", &format!("*{cart_id}*")]);
    let mut keys: Vec<String> = reply
        .lines()
        .filter(|l| !l.starts_with('*') && !l.starts_with('$'))
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys
}

fn pttl(redis: &RedisServer, key: &str) -> i64 {
    let reply = redis.command(&["PTTL", key]);
    reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .expect("PTTL integer")
}

/// A cart is one key, named by its `{tenant:cart_id}` hash tag, carrying the cart's TTL.
#[tokio::test]
async fn cart_keys_share_one_hash_tag_and_carry_the_ttl() {
    let redis = shared_redis();
    let app = spawn_app(Backend::redis()).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let request = pb::ApplyCouponRequest {
        cart_id: cart.id.clone(),
        code: "TEN".into(),
        amount: 10,
        expected_version: 0,
        request_id: String::new(),
    };
    app.client.clone().apply_coupon(request).await.unwrap();

    let tag = format!("{{default:{}}}", cart.id);
    let keys = keys_of(redis, &cart.id);
    assert_eq!(keys, [format!("cart:{tag}")]);
    let ninety_days = 90 * 24 * 3600 * 1000;
    for key in &keys {
        let ttl = pttl(redis, key);
        assert!(
            ttl > ninety_days - 60_000 && ttl <= ninety_days,
            "{key}: {ttl}"
        );
    }

    let request = pb::DeleteRequest {
        cart_id: cart.id.clone(),
        order_number: "O-1".into(),
        expected_version: 0,
        request_id: String::new(),
    };
    app.client.clone().delete(request).await.unwrap();
    let thirty_days = 30 * 24 * 3600 * 1000;
    for key in &keys {
        let ttl = pttl(redis, key);
        assert!(
            ttl > thirty_days - 60_000 && ttl <= thirty_days,
            "tombstone {key}: {ttl}"
        );
    }

    let other = app.create_cart(&[("A", 1, 100)]).await;
    app.client
        .clone()
        .remove(pb::RemoveRequest {
            cart_id: other.id.clone(),
            expected_version: 0,
            request_id: String::new(),
        })
        .await
        .unwrap();
    assert!(
        keys_of(redis, &other.id).is_empty(),
        "Remove leaves no key behind"
    );

    // Under a request id, Remove leaves exactly its remembered outcome: one key in the cart's
    // slot, living the request-id retention (24 h), so a resent Remove can answer as it did.
    let third = app.create_cart(&[("A", 1, 100)]).await;
    app.client
        .clone()
        .remove(pb::RemoveRequest {
            cart_id: third.id.clone(),
            expected_version: 0,
            request_id: "rm-layout".into(),
        })
        .await
        .unwrap();
    let record = format!("cart:{{default:{}}}:request:rm-layout", third.id);
    assert_eq!(keys_of(redis, &third.id), std::slice::from_ref(&record));
    let day = 24 * 3600 * 1000;
    let ttl = pttl(redis, &record);
    assert!(ttl > day - 60_000 && ttl <= day, "{record}: {ttl}");
}

/// A Redis that lost its scripts (restart, SCRIPT FLUSH) gets them again transparently.
#[tokio::test]
async fn flushed_scripts_are_reloaded() {
    let redis = RedisServer::start();
    let app = spawn_app(Backend::Redis(redis.url())).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    redis.command(&["SCRIPT", "FLUSH"]);
    assert_eq!(app.get(&cart.id).await.unwrap().item_count, 1);
    // The customer index's script too (a Create naming a customer runs it first).
    redis.command(&["SCRIPT", "FLUSH"]);
    let again = app.create_cart(&[("B", 1, 100)]).await;
    assert_eq!(app.get(&again.id).await.unwrap().item_count, 1);
}

/// Data Redis cannot make sense of is INTERNAL, and the client learns nothing more.
#[tokio::test]
async fn corrupt_data_is_internal_and_does_not_leak() {
    let redis = shared_redis();
    let app = spawn_app(Backend::redis()).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let key = format!("cart:{{default:{}}}", cart.id);
    redis.command(&["DEL", &key]);
    redis.command(&["SET", &key, "not a hash"]);
    let status = assert_error(app.get(&cart.id).await, Code::Internal, "INTERNAL");
    assert_eq!(status.message(), "internal error");
}

/// Creates a CA and a server certificate for 127.0.0.1/localhost with the openssl CLI.
fn certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=cart-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    ]);
}

/// `rediss://` with a private CA: the service speaks TLS and verifies the server's certificate.
#[tokio::test]
async fn tls_connections_verify_the_server() {
    let dir = crate::helpers::temp_dir("tls");
    certificates(&dir);
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let tls_port = crate::helpers::free_port();
    let args = [
        "--tls-port".to_owned(),
        tls_port.to_string(),
        "--tls-cert-file".to_owned(),
        file("server.crt"),
        "--tls-key-file".to_owned(),
        file("server.key"),
        "--tls-ca-cert-file".to_owned(),
        file("ca.crt"),
        "--tls-auth-clients".to_owned(),
        "no".to_owned(),
    ];
    let _redis = RedisServer::start_with(&args);
    let url = format!("rediss://localhost:{tls_port}/");

    let mut settings = crate::helpers::test_settings(&Backend::Redis(url.clone()));
    settings.redis_ca_cert = Some(dir.join("ca.crt"));
    let app = crate::helpers::spawn_with(settings).await;
    let cart = app.create_cart(&[("A", 2, 100)]).await;
    let request = pb::ClearRequest {
        cart_id: cart.id.clone(),
        ..Default::default()
    };
    assert_eq!(
        app.client
            .clone()
            .clear(request)
            .await
            .unwrap()
            .into_inner()
            .items_cleared,
        2
    );

    // Without the CA the certificate is not trusted: the store is unavailable, not bypassed.
    let untrusting = spawn_app(Backend::Redis(url)).await;
    assert_error(
        untrusting.get(&cart.id).await,
        Code::Unavailable,
        "STORE_UNAVAILABLE",
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// AUTH from the URL: the default user's password, or an ACL user limited to cart keys.
#[tokio::test]
async fn auth_comes_from_the_url() {
    let args: Vec<String> = [
        "--requirepass",
        "s3cret-pw",
        "--user",
        "carts",
        "on",
        ">carts-pw",
        "~cart:*",
        "+@all",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let redis = RedisServer::start_with(&args);
    for url in [
        format!("redis://:s3cret-pw@127.0.0.1:{}/", redis.port()),
        format!("redis://carts:carts-pw@127.0.0.1:{}/", redis.port()),
    ] {
        let app = spawn_app(Backend::Redis(url)).await;
        let cart = app.create_cart(&[("A", 1, 100)]).await;
        assert_eq!(app.get(&cart.id).await.unwrap().item_count, 1);
    }
    let wrong = spawn_app(Backend::Redis(format!(
        "redis://carts:wrong@127.0.0.1:{}/",
        redis.port()
    )))
    .await;
    assert_error(
        wrong.get("0123456789abcdef01234567").await,
        Code::Unavailable,
        "STORE_UNAVAILABLE",
    );
    crate::helpers::eventually(
        Duration::from_secs(10),
        "NOT_SERVING with a wrong password",
        || async {
            crate::helpers::health_of(&wrong, "").await.ok() == Some(crate::helpers::NOT_SERVING)
        },
    )
    .await;
}

/// A replica of `master`, once it acknowledges writes (see [`wait_for_replicas`]).
fn start_replica(master: &RedisServer) -> RedisServer {
    let replica_of = [
        "--replicaof".to_owned(),
        "127.0.0.1".to_owned(),
        master.port().to_string(),
    ];
    let replica = RedisServer::start_with(&replica_of);
    wait_for_replicas(master, 1);
    replica
}

/// Waits until `master` reports `replicas` online replicas and a `WAIT` for them returns at
/// once: a replica can be listed online before it acknowledges its first offset, and a
/// mutation sent then would time out waiting for it.
fn wait_for_replicas(master: &RedisServer, replicas: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = master.command(&["INFO", "replication"]);
        let online = info.matches("state=online").count();
        if info.contains(&format!("connected_slaves:{replicas}"))
            && online == replicas
            && master
                .command(&["WAIT", &replicas.to_string(), "100"])
                .trim()
                == format!(":{replicas}")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replicas never came online: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `[durability] min_replicas = 1`: a mutation is its FCALL and a `WAIT` written together on
/// one connection; while the replica is away a mutation answers REPLICATION_TIMEOUT (applied,
/// but not safe yet), and resending it with its request id once the replica is back applies
/// nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_wait_for_a_replica_and_are_safe_to_resend() {
    let master = RedisServer::start();
    let mut replica = start_replica(&master);
    let mut settings = crate::helpers::test_settings(&Backend::Redis(master.url()));
    settings.durability = cart_service::store::redis::Durability {
        min_replicas: 1,
        // Long enough for a replica on a loaded machine, and within the store's 2 s response
        // timeout, which the stopped-replica step would otherwise hit first.
        timeout: Duration::from_secs(1),
    };
    let app = crate::helpers::spawn_with(settings).await;
    let cart = app.create_cart(&[]).await;

    let mut monitor = Monitor::start(&master);
    let add = |sku: &str, request_id: &str| pb::AddItemsRequest {
        cart_id: cart.id.clone(),
        items: vec![item(sku, 1, 100)],
        expected_version: 0,
        request_id: request_id.into(),
    };
    app.client.clone().add_items(add("A", "")).await.unwrap();
    let wire = monitor.wire_commands(&master);
    let names: Vec<&str> = wire
        .iter()
        .map(|c| c.split(' ').next().unwrap_or("").trim_matches('"'))
        .collect();
    assert_eq!(names, ["FCALL", "WAIT"], "{wire:?}");
    // A Create naming a customer: one transaction of the customer's index and the cart, waited
    // for once.
    app.create_cart(&[]).await;
    let wire = monitor.wire_commands(&master);
    let names: Vec<&str> = wire
        .iter()
        .map(|c| c.split(' ').next().unwrap_or("").trim_matches('"'))
        .collect();
    assert_eq!(
        names,
        ["MULTI", "EVAL", "FCALL", "EXEC", "WAIT"],
        "{wire:?}"
    );
    app.get(&cart.id).await.unwrap();
    monitor.assert_read(&master, "Get (a read waits for nobody)");

    replica.stop();
    let status = assert_error(
        app.client.clone().add_items(add("B", "durable-1")).await,
        Code::Unavailable,
        "REPLICATION_TIMEOUT",
    );
    assert!(status.message().contains("safe"), "{}", status.message());
    let applied = app.get(&cart.id).await.unwrap();
    assert_eq!(applied.items.len(), 2, "the master applied it");

    replica.restart();
    wait_for_replicas(&master, 1);
    let resent = app
        .client
        .clone()
        .add_items(add("B", "durable-1"))
        .await
        .expect("acknowledged once a replica holds it")
        .into_inner();
    assert_eq!(
        resent.version, applied.version,
        "the first application, replayed"
    );
    let now = app.get(&cart.id).await.unwrap();
    let quantities: Vec<i64> = now.items.iter().map(|l| l.quantity).collect();
    assert_eq!(quantities, [1, 1]);
}

/// A WAIT that fails after its script ran (here an ACL refuses it; in a failover, a master
/// turned replica answers UNBLOCKED) leaves the change unconfirmed: REPLICATION_TIMEOUT, which
/// says it is safe to resend, never INTERNAL.
#[tokio::test]
async fn a_failed_wait_after_the_script_ran_is_a_replication_timeout() {
    let master = RedisServer::start();
    let _replica = start_replica(&master);
    master.command(&[
        "ACL", "SETUSER", "nowait", "on", ">pw", "~*", "&*", "+@all", "-wait",
    ]);
    let url = format!("redis://nowait:pw@127.0.0.1:{}/", master.port());
    let mut settings = crate::helpers::test_settings(&Backend::Redis(url));
    settings.durability = cart_service::store::redis::Durability {
        min_replicas: 1,
        timeout: Duration::from_secs(1),
    };
    let app = crate::helpers::spawn_with(settings).await;
    let created = app
        .client
        .clone()
        .create(crate::helpers::create_request("c-nowait", &[]))
        .await;
    assert_error(created, Code::Unavailable, "REPLICATION_TIMEOUT");
    let applied = app.get("c-nowait").await.expect("the master applied it");
    assert_eq!(applied.id, "c-nowait");
}

/// The in-memory store has no replicas: asking for them is a startup error, not a silent no-op.
#[tokio::test]
async fn min_replicas_without_redis_is_refused_at_startup() {
    let mut settings = crate::helpers::test_settings(&Backend::Memory);
    settings.durability.min_replicas = 1;
    let error = cart_service::app::Application::build(settings)
        .await
        .err()
        .expect("startup refused");
    assert!(error.to_string().contains("min_replicas"), "{error}");
}
