//! The scripts as a Redis Functions library: loaded again when Redis lost it mid-run (FUNCTION
//! FLUSH, on one server and on every master of a Cluster), and the fallback to EVALSHA where
//! Redis refuses FUNCTION LOAD (an ACL without `function`, a full Redis).

use std::time::Duration;

use cart_service::pb;
use tonic::Code;

use crate::active_cart::active_cart;
use crate::helpers::{
    Backend, RedisServer, ServiceProcess, assert_error, item, shared_cluster, spawn_app,
};

/// How many times redis-server has run `command` (`INFO commandstats`; `function|load` for a
/// subcommand).
fn calls(redis: &RedisServer, command: &str) -> u64 {
    let stats = redis.command(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.trim().parse().unwrap())
}

fn add(cart_id: &str, sku: &str, request_id: &str) -> pb::AddItemsRequest {
    pb::AddItemsRequest {
        cart_id: cart_id.to_owned(),
        items: vec![item(sku, 1, 100)],
        expected_version: 0,
        request_id: request_id.to_owned(),
    }
}

/// Four clients add items while the library is flushed again and again: every call succeeds
/// (the store loads the library and resends within the call), none applies twice, and the
/// calls are FCALLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_library_is_loaded_again_mid_run() {
    let redis = RedisServer::start();
    let app = spawn_app(Backend::Redis(redis.url())).await;
    // A guest cart: a customer's Create runs the customer index's script too (an EVAL, in one
    // transaction with it).
    let create = pb::CreateRequest {
        currency: "USD".into(),
        ..Default::default()
    };
    let cart = app
        .client
        .clone()
        .create(create)
        .await
        .unwrap()
        .into_inner();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let mut client = app.client.clone();
            let id = cart.id.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    client
                        .add_items(add(&id, &format!("C{c}-{i}"), ""))
                        .await
                        .expect("an add while the library is flushed");
                }
            })
        })
        .collect();
    let mut flushes = 0;
    while !clients.iter().all(|c| c.is_finished()) {
        redis.command(&["FUNCTION", "FLUSH"]);
        flushes += 1;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    for client in clients {
        client.await.unwrap();
    }
    let read = app.get(&cart.id).await.unwrap();
    assert_eq!(read.unique_item_count, 100, "every add applied once");
    assert_eq!(read.version, 101);
    assert!(flushes > 1, "the library was flushed while the clients ran");
    assert!(calls(&redis, "function|load") >= 2, "loaded again");
    assert!(calls(&redis, "fcall") >= 100);
    assert_eq!(calls(&redis, "evalsha"), 0, "no fallback to EVALSHA");
}

/// The same on a Cluster: with the library flushed on every master, each cart's next call
/// loads it again (on every master) and succeeds.
#[tokio::test]
async fn a_cluster_that_lost_the_library_gets_it_again() {
    let cluster = shared_cluster();
    let app = spawn_app(Backend::cluster()).await;
    let carts: Vec<pb::Cart> = {
        let mut carts = Vec::new();
        for _ in 0..12 {
            carts.push(app.create_cart(&[]).await);
        }
        carts
    };
    for master in cluster.masters(cluster.nodes[0].port()) {
        let node = cluster.nodes.iter().find(|n| n.port() == master).unwrap();
        node.command(&["FUNCTION", "FLUSH"]);
    }
    for cart in &carts {
        app.client
            .clone()
            .add_items(add(&cart.id, "A", ""))
            .await
            .expect("an add after FUNCTION FLUSH");
        assert_eq!(app.get(&cart.id).await.unwrap().item_count, 1);
    }
}

fn refusal_warnings(log: &[String]) -> usize {
    log.iter()
        .filter(|line| line.contains("WARN") && line.contains("refused FUNCTION LOAD"))
        .count()
}

/// A Redis user whose ACL leaves out `function` cannot load the library: the service calls
/// the scripts by EVALSHA instead, says so in one WARN line, and serves every RPC.
#[tokio::test]
async fn without_the_function_command_calls_go_by_evalsha() {
    let (redis, url) = RedisServer::start_with_carts_user(&["-function"]);
    let process = ServiceProcess::on_redis(&url);
    let mut client = process.client().await;
    let create = pb::CreateRequest {
        currency: "USD".into(),
        ..Default::default()
    };
    let cart = client.create(create).await.expect("create").into_inner();
    for sku in ["A", "B", "C"] {
        client.add_items(add(&cart.id, sku, "")).await.expect("add");
    }
    // A script Redis lost is loaded again the same way (SCRIPT FLUSH: the default user).
    redis.command(&["SCRIPT", "FLUSH"]);
    let clear = pb::ClearRequest {
        cart_id: cart.id.clone(),
        ..Default::default()
    };
    let cleared = client.clear(clear).await.expect("clear").into_inner();
    assert_eq!(cleared.items_cleared, 3);
    assert_eq!(calls(&redis, "fcall"), 0);
    assert!(calls(&redis, "evalsha") >= 5, "the scripts ran by EVALSHA");
    let log = process.finish(false);
    assert_eq!(refusal_warnings(&log), 1, "one WARN line: {log:#?}");
}

/// A server without Functions (here FCALL and FUNCTION renamed away, as on a Redis before 7):
/// found so at start, or, when it was down then, at the first call, the service falls back to
/// EVALSHA and serves every RPC.
#[tokio::test]
async fn a_redis_without_functions_is_served_by_evalsha() {
    let args: Vec<String> = [
        "--rename-command",
        "FCALL",
        "",
        "--rename-command",
        "FUNCTION",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut redis = RedisServer::start_with(&args);
    let up = ServiceProcess::on_redis(&redis.url());
    redis.stop();
    let down = ServiceProcess::on_redis(&redis.url());
    redis.restart();
    for process in [up, down] {
        let mut client = process.client().await;
        let create = pb::CreateRequest {
            currency: "USD".into(),
            ..Default::default()
        };
        let cart = loop {
            // The service started while Redis was down reconnects by itself.
            match client.create(create.clone()).await {
                Ok(cart) => break cart.into_inner(),
                Err(status) if status.code() == Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => panic!("create: {status:?}"),
            }
        };
        client.add_items(add(&cart.id, "A", "")).await.expect("add");
        let clear = pb::ClearRequest {
            cart_id: cart.id.clone(),
            ..Default::default()
        };
        let cleared = client.clear(clear).await.expect("clear").into_inner();
        assert_eq!(cleared.items_cleared, 1);
        let log = process.finish(false);
        assert_eq!(refusal_warnings(&log), 1, "one WARN line: {log:#?}");
    }
    assert!(calls(&redis, "evalsha") >= 6, "the scripts ran by EVALSHA");
}

/// A Redis that is full when the service starts refuses FUNCTION LOAD (it is `denyoom`): the
/// service falls back to EVALSHA, and a full Redis answers as designed (Remove runs, a Clear
/// is STORE_FULL); with room again, Clear works, and the next health check has Redis take the
/// library: calls are FCALLs again.
#[tokio::test]
async fn a_full_redis_at_startup_is_served_by_evalsha() {
    let redis = RedisServer::start();
    let cart = {
        let app = spawn_app(Backend::Redis(redis.url())).await;
        let cart = app.create_cart(&[("A", 1, 100)]).await;
        let other = app.create_cart(&[("B", 1, 100)]).await;
        app.stop().await;
        (cart, other)
    };
    redis.command(&["FUNCTION", "FLUSH"]);
    redis.command(&["SCRIPT", "FLUSH"]);
    redis.command(&["CONFIG", "RESETSTAT"]);
    redis.command(&["CONFIG", "SET", "maxmemory", "1"]);
    let process = ServiceProcess::on_redis(&redis.url());
    let mut client = process.client().await;
    let (cart, other) = cart;
    let read = client
        .get(pb::GetRequest {
            cart_id: cart.id.clone(),
        })
        .await
        .expect("a full Redis answers Get")
        .into_inner();
    assert_eq!(read.item_count, 1);
    let clear = pb::ClearRequest {
        cart_id: cart.id.clone(),
        ..Default::default()
    };
    assert_error(
        client.clear(clear.clone()).await,
        Code::ResourceExhausted,
        "STORE_FULL",
    );
    let remove = pb::RemoveRequest {
        cart_id: other.id.clone(),
        ..Default::default()
    };
    client
        .remove(remove)
        .await
        .expect("a full Redis runs Remove");
    // While Redis is full, calls go by EVALSHA (the health checks offer the library in vain).
    assert!(calls(&redis, "evalsha") >= 1, "Remove ran by EVALSHA");
    assert_eq!(calls(&redis, "fcall"), 0);
    redis.command(&["CONFIG", "SET", "maxmemory", "0"]);
    let cleared = client.clear(clear).await.expect("clear").into_inner();
    assert_eq!(cleared.items_cleared, 1);
    // The health check runs every second: within a few, Redis holds the library.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !redis.command(&["FUNCTION", "LIST"]).contains("cart_") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the library was not offered again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let get = pb::GetRequest {
        cart_id: cart.id.clone(),
    };
    let before = calls(&redis, "fcall");
    let remove = pb::RemoveRequest {
        cart_id: cart.id.clone(),
        ..Default::default()
    };
    client.get(get).await.expect("get");
    client.remove(remove).await.expect("remove");
    assert_eq!(calls(&redis, "fcall") - before, 1, "Remove was an FCALL");
    let log = process.finish(false);
    assert_eq!(refusal_warnings(&log), 1, "one WARN line: {log:#?}");
    let taken = log
        .iter()
        .filter(|line| line.contains("calls are FCALLs again"))
        .count();
    assert_eq!(taken, 1, "one line when Redis took the library: {log:#?}");
}

/// On a single Redis a Create that names a customer is one round trip: one transaction of the
/// index's script and the Create (`MULTI`, `EVAL`, `FCALL`, `EXEC`), no call of the index's
/// own, and the customer's active cart is the new cart. With the library flushed, the
/// transaction's Create fails, the library is loaded again and the whole transaction resent
/// within the call: one cart, indexed.
#[tokio::test]
async fn a_create_naming_a_customer_is_one_transaction_on_a_single_redis() {
    let redis = RedisServer::start();
    let app = spawn_app(Backend::Redis(redis.url())).await;
    let create = |customer: &str| pb::CreateRequest {
        currency: "USD".into(),
        customer_id: customer.into(),
        ..Default::default()
    };
    let counts = || ["multi", "exec", "eval", "evalsha", "fcall"].map(|c| calls(&redis, c));
    let before = counts();
    let cart = app
        .client
        .clone()
        .create(create("first"))
        .await
        .unwrap()
        .into_inner();
    let after = counts();
    let ran: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(ran, [1, 1, 1, 0, 1], "multi, exec, eval, evalsha, fcall");
    assert_eq!(active_cart(&app, "first").await.unwrap().id, cart.id);

    redis.command(&["FUNCTION", "FLUSH"]);
    let second = app
        .client
        .clone()
        .create(create("second"))
        .await
        .unwrap()
        .into_inner();
    let exec = calls(&redis, "exec") - after[1];
    assert_eq!(
        exec, 2,
        "the transaction, then once more with the library loaded again"
    );
    assert_eq!(active_cart(&app, "second").await.unwrap().id, second.id);
    let keys = redis.command(&["KEYS", "cart:{default:*}"]);
    assert_eq!(keys.matches(&second.id).count(), 1, "one cart: {keys}");

    // A full Redis refuses the whole transaction: no cart, no index entry.
    let indexes = || {
        redis
            .command(&["KEYS", "cart:customer:*"])
            .matches(":carts")
            .count()
    };
    assert_eq!(indexes(), 2);
    redis.command(&["CONFIG", "SET", "maxmemory", "1"]);
    assert_error(
        app.client.clone().create(create("third")).await,
        Code::ResourceExhausted,
        "STORE_FULL",
    );
    redis.command(&["CONFIG", "SET", "maxmemory", "0"]);
    assert_eq!(indexes(), 2, "no index of the refused Create");
    assert_error(
        active_cart(&app, "third").await,
        Code::NotFound,
        "NO_ACTIVE_CART",
    );
}

/// A Redis user whose ACL leaves out `multi`, or `eval`, cannot send a Create and its
/// customer's index as one transaction. Without `multi`, in the first such Create Redis refuses
/// MULTI and runs the index's script and the Create on their own, in that order; without
/// `eval`, it refuses the index's EVAL as it is queued and runs nothing, and the Create is sent
/// again the other way. Either way: one cart, indexed, answered as created; every later Create
/// sends the index first, by EVALSHA in a round trip of its own; one WARN line.
#[tokio::test]
async fn without_transactions_a_customer_create_is_two_round_trips() {
    // (ACL rule, EVALs run, EVALSHAs run) for two Creates. Without `eval` the first EVALSHA
    // finds no script (nothing EVALed its source) and is sent again once loaded.
    for (rule, evals, evalshas) in [("-multi", 1, 1), ("-eval", 0, 3)] {
        let (redis, url) = RedisServer::start_with_carts_user(&[rule]);
        let process = ServiceProcess::on_redis(&url);
        let mut client = process.client().await;
        let mut carts = Vec::new();
        for customer in ["first", "second"] {
            let create = pb::CreateRequest {
                currency: "USD".into(),
                customer_id: customer.into(),
                ..Default::default()
            };
            carts.push(client.create(create).await.expect("create").into_inner());
        }
        assert_eq!(calls(&redis, "eval"), evals, "{rule}");
        assert_eq!(calls(&redis, "evalsha"), evalshas, "{rule}");
        for (customer, cart) in ["first", "second"].iter().zip(&carts) {
            let active = client
                .get_active_cart(pb::GetActiveCartRequest {
                    customer_id: (*customer).into(),
                })
                .await
                .expect("active cart")
                .into_inner();
            assert_eq!(active.id, cart.id, "{rule}");
        }
        let keys = redis.command(&["KEYS", "cart:{default:*}"]);
        assert_eq!(
            keys.matches("cart:{").count(),
            2,
            "{rule}: two carts: {keys}"
        );
        let log = process.finish(false);
        let warned = log
            .iter()
            .filter(|line| line.contains("WARN") && line.contains("refused the transaction"))
            .count();
        assert_eq!(warned, 1, "{rule}: one WARN line: {log:#?}");
    }
}
