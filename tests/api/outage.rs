//! Redis outages: calls fail fast with UNAVAILABLE, health follows the store, and the service
//! recovers by itself when Redis returns.

use std::time::Duration;

use cart_service::domain::CartId;
use cart_service::pb;
use tonic::Code;

use crate::helpers::{
    Backend, NOT_SERVING, RedisServer, SERVING, TestApp, assert_error, eventually, health_of,
    http_get, spawn_app,
};

async fn wait_for_health(app: &TestApp, wanted: i32, what: &str) {
    eventually(Duration::from_secs(15), what, || async {
        health_of(app, "cart.v1.CartService").await.ok() == Some(wanted)
            && health_of(app, "").await.ok() == Some(wanted)
    })
    .await;
}

/// Stop Redis mid-run: UNAVAILABLE and NOT_SERVING; start it again: SERVING, no restart needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_unavailable_and_recovers_without_restart() {
    let mut redis = RedisServer::start();
    let app = spawn_app(Backend::Redis(redis.url())).await;
    wait_for_health(&app, SERVING, "SERVING while Redis is up").await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    assert_eq!(http_get(app.http_addr, "/readyz").await.0, 200);

    redis.stop();
    for _ in 0..3 {
        let status = app.get(&cart.id).await.expect_err("Redis is down");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(crate::helpers::reason(&status), "STORE_UNAVAILABLE");
    }
    let request = pb::ClearRequest {
        cart_id: cart.id.clone(),
        ..Default::default()
    };
    assert_error(
        app.client.clone().clear(request).await,
        Code::Unavailable,
        "STORE_UNAVAILABLE",
    );
    wait_for_health(&app, NOT_SERVING, "NOT_SERVING while Redis is down").await;
    assert_eq!(http_get(app.http_addr, "/readyz").await.0, 503);
    assert_eq!(
        http_get(app.http_addr, "/healthz").await.0,
        200,
        "the process itself is fine"
    );

    redis.restart();
    wait_for_health(&app, SERVING, "SERVING again once Redis is back").await;
    assert_eq!(http_get(app.http_addr, "/readyz").await.0, 200);
    // This Redis keeps nothing on disk, so the old cart is gone; new work succeeds.
    let fresh = app.create_cart(&[("B", 2, 100)]).await;
    assert_eq!(app.get(&fresh.id).await.unwrap().item_count, 2);
}

/// The service starts while Redis is down, and serves once it comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_starts_while_redis_is_down() {
    let mut redis = RedisServer::reserve();
    let app = spawn_app(Backend::Redis(redis.url())).await;
    wait_for_health(&app, NOT_SERVING, "NOT_SERVING before Redis exists").await;
    assert_error(
        app.get(CartId::generate().as_str()).await,
        Code::Unavailable,
        "STORE_UNAVAILABLE",
    );

    redis.restart();
    wait_for_health(&app, SERVING, "SERVING once Redis is up").await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    assert_eq!(app.get(&cart.id).await.unwrap().version, 1);
}

/// Redis answering `LOADING` (replaying its AOF) when the connection selects its database,
/// then ready: health alone, with no RPC traffic, brings the service back to SERVING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_recovers_without_traffic_after_redis_was_loading() {
    use std::io::{Read, Write};
    let mut redis = RedisServer::reserve();
    let loading = std::net::TcpListener::bind(("127.0.0.1", redis.port())).expect("port is free");
    let stand_in = std::thread::spawn(move || {
        // Answer every command as a Redis still loading its dataset, for two seconds.
        loading.set_nonblocking(true).unwrap();
        let mut clients = Vec::new();
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < until {
            if let Ok((socket, _)) = loading.accept() {
                socket.set_nonblocking(true).unwrap();
                clients.push(socket);
            }
            for client in &mut clients {
                let mut buf = [0u8; 4096];
                if matches!(client.read(&mut buf), Ok(n) if n > 0) {
                    let _ =
                        client.write_all(b"-LOADING Redis is loading the dataset in memory\r\n");
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let url = format!("redis://127.0.0.1:{}/1", redis.port());
    let mut settings = crate::helpers::test_settings(&Backend::Redis(url));
    settings.redis_timeouts.response = Duration::from_millis(300);
    settings.redis_timeouts.connect = Duration::from_millis(300);
    let app = crate::helpers::spawn_with(settings).await;
    wait_for_health(&app, NOT_SERVING, "NOT_SERVING while Redis is loading").await;
    stand_in.join().unwrap();

    redis.restart();
    wait_for_health(
        &app,
        SERVING,
        "SERVING once Redis has loaded, with no RPC sent",
    )
    .await;
}
