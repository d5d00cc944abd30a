//! An evicting Redis is refused: a `maxmemory-policy` other than `noeviction` makes the
//! service not ready (NOT_SERVING, `/readyz` 503 naming the policy, an ERROR log line) and
//! refuse calls, until the policy is fixed at run time; `[redis] allow_eviction = true` serves
//! anyway; a policy Redis does not report is a warning and a metric.

use std::time::Duration;

use tonic::Code;

use crate::helpers::{
    Backend, NOT_SERVING, RedisCluster, RedisServer, SERVING, TestApp, create_request, eventually,
    health_of, http_get, spawn_with, test_settings,
};
use crate::telemetry::Service;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Waits until `/readyz` answers 503 with a body naming `maxmemory-policy <policy>`, and
/// gRPC health says NOT_SERVING.
async fn refused_for(app: &TestApp, policy: &str) {
    let named = format!("maxmemory-policy {policy}");
    eventually(
        Duration::from_secs(10),
        &format!("/readyz names {named}"),
        || async {
            let (status, body) = http_get(app.http_addr, "/readyz").await;
            status == 503 && body.contains(&named)
        },
    )
    .await;
    assert_eq!(health_of(app, "").await.ok(), Some(NOT_SERVING));
    assert_eq!(
        health_of(app, "cart.v1.CartService").await.ok(),
        Some(NOT_SERVING)
    );
    // Not serving: a call does not reach the evicting Redis either.
    let status = app
        .client
        .clone()
        .create(create_request("", &[("A", 1, 100)]))
        .await
        .expect_err("an evicting redis is refused");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

/// Waits until the service serves again: health SERVING, `/readyz` 200, calls succeed.
async fn serving(app: &TestApp) {
    eventually(Duration::from_secs(10), "SERVING", || async {
        health_of(app, "").await.ok() == Some(SERVING)
            && http_get(app.http_addr, "/readyz").await.0 == 200
    })
    .await;
    let cart = app.create_cart(&[("A", 2, 100)]).await;
    assert_eq!(app.get(&cart.id).await.unwrap().item_count, 2);
}

/// Started against `allkeys-lru`: not ready; `CONFIG SET maxmemory-policy noeviction` makes
/// it ready without a restart, and another evicting policy set at run time is noticed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicting_redis_is_refused_until_its_policy_is_fixed_at_run_time() {
    let redis = RedisServer::start_with(&args(&["--maxmemory-policy", "allkeys-lru"]));
    let app = spawn_with(test_settings(&Backend::Redis(redis.url()))).await;
    refused_for(&app, "allkeys-lru").await;

    assert_eq!(
        redis.command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]),
        "+OK\r\n"
    );
    serving(&app).await;

    redis.command(&["CONFIG", "SET", "maxmemory-policy", "volatile-ttl"]);
    refused_for(&app, "volatile-ttl").await;
    redis.command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    serving(&app).await;
    app.stop().await;
}

/// `[redis] allow_eviction = true`: an evicting Redis is served (the operator accepted that
/// carts can be torn).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_eviction_serves_an_evicting_redis() {
    let redis = RedisServer::start_with(&args(&["--maxmemory-policy", "volatile-lru"]));
    let mut settings = test_settings(&Backend::Redis(redis.url()));
    // What `[redis] allow_eviction = true` sets (config::tests reads it from a file).
    settings.allow_eviction = true;
    let app = spawn_with(settings).await;
    serving(&app).await;
    app.stop().await;
}

/// The real binary logs an ERROR line naming the policy, and `/metrics` counts the evicting
/// server; a Redis that will not say its policy (here: INFO denied by ACL) is served, with a
/// WARN line and a metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_an_evicting_redis_and_warns_of_an_unknown_policy() {
    let redis = RedisServer::start_with(&args(&["--maxmemory-policy", "allkeys-random"]));
    let service = Service::start(&redis, &[]);
    let wanted = format!(
        "maxmemory-policy allkeys-random on 127.0.0.1:{}",
        redis.port()
    );
    eventually(
        Duration::from_secs(10),
        "an ERROR line naming the policy",
        || {
            let found = service
                .log()
                .iter()
                .any(|line| line.contains("ERROR") && line.contains(&wanted));
            async move { found }
        },
    )
    .await;
    let (status, body) = http_get(service.http_addr, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains(&wanted), "{body}");
    let (_, metrics) = http_get(service.http_addr, "/metrics").await;
    assert!(
        metrics.contains("cart_redis_evicting_servers 1"),
        "{metrics}"
    );
    drop(service);

    let acl = args(&[
        "--user",
        "carts",
        "on",
        ">carts-password",
        "~*",
        "&*",
        "+@all",
        "-info",
    ]);
    let redis = RedisServer::start_with(&acl);
    let url = format!("redis://carts:carts-password@127.0.0.1:{}/", redis.port());
    let service = Service::start(&redis, &[("CART_REDIS_URL", &url)]);
    eventually(Duration::from_secs(10), "ready", || async {
        http_get(service.http_addr, "/readyz").await.0 == 200
    })
    .await;
    let warned = service
        .log()
        .iter()
        .any(|line| line.contains("WARN") && line.contains("no maxmemory_policy"));
    assert!(warned, "{:#?}", service.log());
    let (_, metrics) = http_get(service.http_addr, "/metrics").await;
    assert!(
        metrics.contains("cart_redis_eviction_policy_unknown_servers 1"),
        "{metrics}"
    );
}

/// On a Cluster every master is checked: one evicting master makes the service not ready,
/// naming that master, until it is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_evicting_master_of_a_cluster_is_refused_until_fixed() {
    let cluster = RedisCluster::start(3);
    let masters = cluster.masters(cluster.nodes[0].port());
    let evicting = cluster
        .nodes
        .iter()
        .find(|node| node.port() == masters[1])
        .unwrap();
    evicting.command(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]);
    let app = spawn_with(test_settings(&Backend::Redis(cluster.url()))).await;
    refused_for(&app, &format!("allkeys-lfu on 127.0.0.1:{}", masters[1])).await;
    evicting.command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    serving(&app).await;
    evicting.command(&["CONFIG", "SET", "maxmemory-policy", "volatile-random"]);
    refused_for(&app, "volatile-random").await;
    app.stop().await;
}
