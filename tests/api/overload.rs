//! A flood does not take the service down: requests past the admission limits are refused at
//! once (gRPC `RESOURCE_EXHAUSTED` `OVERLOADED`, 503 + `Retry-After` in every dialect) and
//! change nothing; a request past its deadline is never sent to Redis. The flood itself
//! (fairness between tenants, health during a flood) is `flood.rs`.

use std::time::Duration;

use cart_service::app::Application;
use cart_service::domain::{CartId, CartKey, CartPolicy, Mutation, TenantId, now_millis};
use cart_service::error::CartError;
use cart_service::http::amazon::url_encode;
use cart_service::pb;
use cart_service::store::redis::{Durability, RedisTimeouts};
use cart_service::store::{CartStore, RedisStore};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{
    ACME_KEY, Backend, GLOBEX_KEY, HttpResponse, RedisServer, SHIM_CONFIG, TestApp, assert_error,
    eventually, http, start, test_settings,
};

/// `FCALL`, `EVALSHA` and `GET` calls redis-server has run so far: each RPC here reaches
/// Redis as one of them (a function or script, or a Get's read: GET and PEXPIRETIME); a script's own GETs count too.
fn store_calls(redis: &RedisServer) -> u64 {
    let stats = redis.command(&["INFO", "commandstats"]);
    [
        "cmdstat_fcall:calls=",
        "cmdstat_evalsha:calls=",
        "cmdstat_get:calls=",
    ]
    .iter()
    .map(|name| {
        stats
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse::<u64>().unwrap())
    })
    .sum()
}

/// Zaui, XM, Stateset, Amazon and VTEX requests on `cart` of tenant acme, each a mutation.
async fn every_dialect(app: &TestApp, cart: &pb::Cart) -> Vec<(&'static str, HttpResponse)> {
    let addr = app.http_addr;
    let zapi = format!(
        "<request><zapiToken>998877</zapiToken><zapiAccountId>1234</zapiAccountId>\
         <zapiUserId>42</zapiUserId><zapiMethod><methodName>zapiRemoveCartSession</methodName>\
         <cartId>{}</cartId></zapiMethod></request>",
        cart.id
    );
    let xml = [("Content-Type", "application/xml")];
    let bearer = format!("Bearer {ACME_KEY}");
    let xm = [
        ("Content-Type", "application/json"),
        ("Authorization", bearer.as_str()),
        (
            "x-site-context",
            r#"{"account":"5f493c9f30ec2a0007a94fc8"}"#,
        ),
    ];
    let stateset = [
        ("Content-Type", "application/json"),
        ("Authorization", bearer.as_str()),
    ];
    let json = [("Content-Type", "application/json")];
    let amazon = format!(
        "/onca/xml?Service=AWSECommerceService&AWSAccessKeyId=AKIAEXAMPLE&Operation=CartClear&CartId={}&HMAC={}",
        cart.id,
        url_encode(&cart.hmac)
    );
    vec![
        (
            "zaui",
            http(addr, "POST", "/zapi/", &xml, zapi.as_bytes()).await,
        ),
        (
            "fabric_xm",
            http(
                addr,
                "PATCH",
                &format!("/api-cart/cart/{}/orderNumber", cart.id),
                &xm,
                br#"{"orderNumber":"ORD-1"}"#,
            )
            .await,
        ),
        (
            "stateset",
            http(
                addr,
                "POST",
                &format!("/v1/carts/{}/clear", cart.id),
                &stateset,
                br#"{"reason":"flood"}"#,
            )
            .await,
        ),
        ("amazon", http(addr, "GET", &amazon, &[], b"").await),
        (
            "vtex",
            http(
                addr,
                "POST",
                &format!(
                    "/api/checkout/pub/orderForm/{}/items/removeAll?an=cosmetics2",
                    cart.id
                ),
                &json,
                b"{}",
            )
            .await,
        ),
    ]
}

/// A tenant at its limit (`[[tenants]] max_in_flight = 1`) is refused on gRPC with
/// RESOURCE_EXHAUSTED `OVERLOADED` and a RetryInfo, and with 503 + `Retry-After` in each
/// dialect's own error shape; the cart is untouched, and another tenant is still admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_limit_a_tenant_is_refused_on_every_interface_and_nothing_changes() {
    let redis = RedisServer::start();
    let mut settings = test_settings(&Backend::Redis(redis.url()));
    let config = SHIM_CONFIG.replacen(
        "vtex   = { account = \"cosmetics2\" }",
        "vtex   = { account = \"cosmetics2\" }\nmax_in_flight = 1",
        1,
    );
    settings
        .apply_file(&config, std::path::Path::new("overload.toml"))
        .expect("config parses");
    let built = Application::build(settings).await.expect("app builds");
    let admission = built.core().admission().clone();
    let app = start(built).await;
    let acme = TenantId::parse("acme").unwrap();

    let cart = app
        .create_cart_as(ACME_KEY, "", &[("SKU-1", 2, 1250), ("SKU-2", 1, 300)])
        .await;
    let globex_cart = app.create_cart_as(GLOBEX_KEY, "", &[("G-1", 1, 10)]).await;
    let calls_before = store_calls(&redis);

    // Redis stops answering for a while: acme's one slot is taken by a Get that waits.
    redis.command(&["CLIENT", "PAUSE", "1500", "ALL"]);
    let holder = {
        let mut client = app.new_client().await;
        let id = cart.id.clone();
        tokio::spawn(async move {
            client
                .get(TestApp::authed(pb::GetRequest { cart_id: id }, ACME_KEY))
                .await
        })
    };
    eventually(Duration::from_secs(1), "acme's Get holds its slot", || {
        let admission = admission.clone();
        let acme = acme.clone();
        async move { admission.tenant_in_flight(&acme) == 1 }
    })
    .await;

    let clear = pb::ClearRequest {
        cart_id: cart.id.clone(),
        reason: "flood".into(),
        ..Default::default()
    };
    let status = assert_error(
        app.client
            .clone()
            .clear(TestApp::authed(clear, ACME_KEY))
            .await,
        Code::ResourceExhausted,
        "OVERLOADED",
    );
    assert_eq!(
        status.get_error_details().retry_info().unwrap().retry_delay,
        Some(Duration::from_secs(1))
    );

    for (dialect, response) in every_dialect(&app, &cart).await {
        assert_eq!(response.status, 503, "{dialect}: {response:?}");
        assert_eq!(response.header("retry-after"), Some("1"), "{dialect}");
        let body = &response.body;
        let shaped = match dialect {
            "zaui" => {
                body.contains("<methodErrorCode>99</methodErrorCode>")
                    && body.contains("<error>1</error>")
            }
            "fabric_xm" => response.json()["code"] == "SERVICE_UNAVAILABLE",
            "stateset" => response.json()["error"]["code"] == "service_unavailable",
            "amazon" => body.contains("<Code>AWS.ServiceUnavailable</Code>"),
            "vtex" => response.json()["error"]["code"] == "CHK0503",
            _ => unreachable!(),
        };
        assert!(shaped, "{dialect} answered outside its shape: {body}");
    }

    // Another tenant has slots of its own: admitted (it waits for Redis like acme's Get).
    let globex_get = {
        let mut client = app.new_client().await;
        let id = globex_cart.id.clone();
        tokio::spawn(async move {
            client
                .get(TestApp::authed(pb::GetRequest { cart_id: id }, GLOBEX_KEY))
                .await
        })
    };
    let held = holder.await.unwrap().expect("the waiting Get succeeds");
    assert_eq!(held.into_inner().version, cart.version);
    globex_get
        .await
        .unwrap()
        .expect("the other tenant is admitted");

    // Nothing refused reached Redis, and the cart is as it was.
    assert_eq!(store_calls(&redis), calls_before + 2);
    let after = app.get_as(ACME_KEY, &cart.id).await.expect("cart is there");
    assert_eq!(
        (after.version, after.item_count, after.items.len()),
        (cart.version, 3, 2)
    );
    assert!(after.cleared_at.is_none() && after.order_number.is_empty());
    assert_eq!(admission.in_flight(), 0, "every slot was given back");
}

/// Past the client's deadline the Redis store sends nothing (every RPC's script), and answers
/// DEADLINE_EXCEEDED; with time left it sends as usual.
#[tokio::test]
async fn the_redis_store_sends_nothing_past_the_deadline() {
    let redis = RedisServer::start();
    let store = RedisStore::new(
        &redis.url(),
        CartPolicy::default(),
        RedisTimeouts::default(),
        Durability::default(),
        None,
    )
    .expect("store");
    store.load_scripts().await.expect("scripts load");
    let key = CartKey {
        tenant: TenantId::parse("default").unwrap(),
        cart_id: CartId::parse("deadline-1").unwrap(),
    };
    let before = store_calls(&redis);
    let passed = Some(tokio::time::Instant::now());
    let now = now_millis();
    let outcomes = cart_service::deadline::within(passed, async {
        vec![
            store.get(&key, now).await.map(drop),
            store
                .mutate(
                    &key,
                    Mutation::Clear {
                        preserve_coupons: false,
                        reason: String::new(),
                        only_generated_id: false,
                    },
                    0,
                    now,
                    None,
                )
                .await
                .map(drop),
            store.remove(&key, 0, now, None).await.map(drop),
        ]
    })
    .await;
    for outcome in outcomes {
        assert!(
            matches!(outcome, Err(CartError::DeadlineExceeded)),
            "{outcome:?}"
        );
    }
    assert_eq!(store_calls(&redis), before, "nothing reached Redis");

    let ahead = Some(tokio::time::Instant::now() + Duration::from_secs(5));
    let found = cart_service::deadline::within(ahead, store.get(&key, now)).await;
    assert!(matches!(found, Err(CartError::CartNotFound)), "{found:?}");
    assert_eq!(store_calls(&redis), before + 1);
}

/// Over gRPC: a request whose `grpc-timeout` runs out before it reaches the store is refused
/// and never sent to Redis; one with time left is served.
#[tokio::test]
async fn a_grpc_request_past_its_deadline_never_reaches_redis() {
    let redis = RedisServer::start();
    let app = crate::helpers::spawn_app(Backend::Redis(redis.url())).await;
    let cart = app.create_cart(&[("SKU-1", 1, 100)]).await;
    let before = store_calls(&redis);
    for timeout in ["1n", "500n", "1u"] {
        let mut request = tonic::Request::new(pb::ClearRequest {
            cart_id: cart.id.clone(),
            ..Default::default()
        });
        // Sent as the header alone: no client-side timer races the server's answer.
        request
            .metadata_mut()
            .insert("grpc-timeout", timeout.parse().unwrap());
        let status = app.client.clone().clear(request).await.unwrap_err();
        // The handler's DEADLINE_EXCEEDED, or tonic's own timer (CANCELLED) when it fires
        // while the message is still being read: either way before any store work.
        assert!(
            matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{timeout}: {status:?}"
        );
    }
    assert_eq!(store_calls(&redis), before, "nothing reached Redis");
    let read = app.get(&cart.id).await.expect("served with time left");
    assert_eq!((read.version, read.item_count), (cart.version, 1));
    assert_eq!(store_calls(&redis), before + 1);
}
