//! A full store: a real redis-server with a small `maxmemory` (and `noeviction`), and the
//! in-memory store with a small cap. Growth is refused whole with RESOURCE_EXHAUSTED
//! `STORE_FULL` and a RetryInfo; reads and Remove keep working; freeing space lets Creates in
//! again; every cart stays consistent; the HTTP dialects answer as for STORE_UNAVAILABLE.

use std::time::Duration;

use cart_service::domain::CartPolicy;
use cart_service::http::amazon::url_encode;
use cart_service::http::xml;
use cart_service::pb;
use cart_service::store::MemoryStore;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{
    ACME_KEY, Backend, HttpResponse, RedisServer, SHIM_CONFIG, TestApp, create_request, http, item,
    spawn_with, test_settings,
};

const MAXMEMORY: u64 = 2 * 1024 * 1024;

/// The attribute bytes of lines bigger than the room a full 1 MiB memory store has left.
const BIG_LINE_BYTES: usize = 100_000;

/// A redis-server holding at most [`MAXMEMORY`], refusing writes rather than evicting, in a
/// directory of its own (an RDB file left in the shared temp dir would be loaded at start,
/// and with it a replication backlog that counts against maxmemory). The directory goes
/// with the guard.
struct FullRedis {
    server: RedisServer,
    dir: std::path::PathBuf,
}

impl FullRedis {
    fn start() -> Self {
        let dir = crate::helpers::temp_dir("store-full");
        let server = RedisServer::start_with(&[
            "--dir".into(),
            dir.display().to_string(),
            "--maxmemory".into(),
            MAXMEMORY.to_string(),
            "--maxmemory-policy".into(),
            "noeviction".into(),
        ]);
        Self { server, dir }
    }
}

impl std::ops::Deref for FullRedis {
    type Target = RedisServer;

    fn deref(&self) -> &RedisServer {
        &self.server
    }
}

impl Drop for FullRedis {
    fn drop(&mut self) {
        self.server.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The service with the shim config (tenant `acme`, every dialect) on `backend`.
async fn shim_app_on(backend: Backend) -> TestApp {
    let mut settings = test_settings(&backend);
    settings
        .apply_file(SHIM_CONFIG, std::path::Path::new("shims.toml"))
        .unwrap();
    spawn_with(settings).await
}

/// [`shim_app_on`] with carts living `cart_ttl`.
async fn shim_app_with(backend: Backend, cart_ttl: Duration) -> TestApp {
    let mut settings = test_settings(&backend);
    settings
        .apply_file(SHIM_CONFIG, std::path::Path::new("shims.toml"))
        .unwrap();
    settings.policy.cart_ttl = cart_ttl;
    spawn_with(settings).await
}

fn authed<T>(message: T) -> tonic::Request<T> {
    TestApp::authed(message, ACME_KEY)
}

fn info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} in INFO"))
        .trim()
        .parse()
        .unwrap()
}

/// One connection for INFO, opened before measuring and kept busy: a new (or, after 2 s idle,
/// trimmed) connection allocates a query buffer of 16 KB or more for the INFO it sends, which
/// would count in the figure it reads.
struct Probe(redis::Connection);

impl Probe {
    fn open(redis: &RedisServer) -> Self {
        Self(
            redis::Client::open(redis.url())
                .unwrap()
                .get_connection()
                .expect("a probe connection"),
        )
    }

    fn used_memory(&mut self) -> u64 {
        let info: String = redis::cmd("INFO").arg("memory").query(&mut self.0).unwrap();
        info_field(&info, "used_memory")
    }
}

/// Asserts the designed refusal of a full store: RESOURCE_EXHAUSTED, STORE_FULL, a RetryInfo.
#[track_caller]
fn assert_full<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::ResourceExhausted, "{what}: {status:?}");
    let details = status.get_error_details();
    assert_eq!(
        details.error_info().map(|i| i.reason.as_str()),
        Some("STORE_FULL"),
        "{what}"
    );
    let delay = details.retry_info().and_then(|r| r.retry_delay);
    assert_eq!(delay, Some(Duration::from_secs(1)), "{what}: RetryInfo");
}

/// A one-line cart of the fill, numbered `n` (so its expected contents are known).
fn fill_request(n: usize) -> pb::CreateRequest {
    let quantity = (n % 5 + 1) as i64;
    create_request("", &[("FILL", quantity, 100 + n as i64)])
}

/// Creates carts until the store refuses one with STORE_FULL (at most `bound`); returns them.
async fn fill(app: &TestApp, bound: usize) -> Vec<pb::Cart> {
    fill_watching(app, bound, |_| {}).await
}

/// [`fill`], calling `each` with the count after every Create.
async fn fill_watching(app: &TestApp, bound: usize, mut each: impl FnMut(usize)) -> Vec<pb::Cart> {
    let mut client = app.client.clone();
    let mut carts = Vec::new();
    for n in 0..bound {
        match client.create(authed(fill_request(n))).await {
            Ok(cart) => {
                carts.push(cart.into_inner());
                each(carts.len());
            }
            Err(status) => {
                assert_full::<()>(Err(status), "the Create that finds the store full");
                return carts;
            }
        }
    }
    panic!("{bound} Creates and the store never refused one");
}

/// Every cart of `carts` reads back as given (no refused call changed it), except the
/// `removed` ones, which are gone: totals are the sum of the lines, item_count the sum of
/// quantities, unique_item_count the lines, version as given.
async fn assert_consistent(app: &TestApp, carts: &[pb::Cart], removed: &[String]) {
    let mut client = app.client.clone();
    for cart in carts {
        let read = client
            .get(authed(pb::GetRequest {
                cart_id: cart.id.clone(),
            }))
            .await;
        if removed.contains(&cart.id) {
            assert_eq!(read.unwrap_err().code(), Code::NotFound, "{}", cart.id);
            continue;
        }
        let read = read.unwrap().into_inner();
        let lines: i64 = read.items.iter().map(|l| l.quantity * l.unit_price).sum();
        let units: i64 = read.items.iter().map(|l| l.quantity).sum();
        assert_eq!(read.subtotal, lines, "{}", cart.id);
        assert_eq!(
            read.total,
            read.subtotal - read.discount_amount,
            "{}",
            cart.id
        );
        assert_eq!(read.item_count, units, "{}", cart.id);
        assert_eq!(
            read.unique_item_count,
            read.items.len() as i64,
            "{}",
            cart.id
        );
        assert_eq!(
            (read.version, &read.items, read.item_count),
            (cart.version, &cart.items, cart.item_count),
            "{} is as it was: no refused call changed it",
            cart.id
        );
    }
}

/// Every mutation that may grow a full Redis is refused whole; Get (with its lifetime
/// refresh) and Remove run; a refusal under a request id is not remembered; freeing a few
/// carts lets Creates in again; every cart stays consistent.
#[tokio::test]
async fn a_full_redis_refuses_growth_whole_and_keeps_reading_and_removing() {
    let redis = FullRedis::start();
    // A cart lifetime of a minute: a Get restarts it once it has run down by 1 % (600 ms).
    let app = shim_app_with(Backend::Redis(redis.url()), Duration::from_secs(60)).await;
    let mut client = app.client.clone();
    // One cart first, so the service's connection and scripts are in place before measuring.
    let probe = client
        .create(authed(create_request("", &[("P", 1, 100)])))
        .await
        .unwrap()
        .into_inner();
    let mut probe_connection = Probe::open(&redis);
    let before = probe_connection.used_memory();
    // used_memory after each admitted Create.
    let mut used = Vec::new();
    let mut carts =
        fill_watching(&app, 20_000, |_| used.push(probe_connection.used_memory())).await;
    let at_refusal = probe_connection.used_memory();
    let per_cart = (at_refusal - before) / carts.len() as u64;
    let [.., under, last] = used[..] else {
        panic!("the fill made {} carts", carts.len())
    };
    let last_cart = last - under;
    eprintln!(
        "full redis: {} carts fit; used_memory {at_refusal} at the refusal, maxmemory {MAXMEMORY}; {per_cart} B per cart on average, the last admitted Create took {under} to {last}",
        carts.len()
    );
    assert!(
        under <= MAXMEMORY,
        "the last Create was admitted under the limit"
    );
    assert!(
        last_cart <= 2 * per_cart,
        "one cart, not a burst: {last_cart} B"
    );
    assert!(
        at_refusal <= MAXMEMORY + last_cart,
        "used_memory {at_refusal} exceeds maxmemory {MAXMEMORY} by more than one cart ({last_cart} B)"
    );
    carts.insert(0, probe);

    let cart = carts[1].clone();
    let id = || cart.id.clone();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let read = client
        .get(authed(pb::GetRequest { cart_id: id() }))
        .await
        .expect("Get answers when full")
        .into_inner();
    assert_eq!(read.version, cart.version);
    // The reply is read back from Redis after the script wrote the new activity time.
    let millis = |t: Option<prost_types::Timestamp>| {
        let t = t.unwrap();
        t.seconds * 1000 + i64::from(t.nanos / 1_000_000)
    };
    assert!(
        millis(read.last_activity_at) > millis(cart.last_activity_at)
            && millis(read.expires_at) > millis(cart.expires_at),
        "Get refreshed the lifetime while Redis is full"
    );

    assert_full(
        client
            .create(authed(create_request("", &[("X", 1, 1)])))
            .await,
        "Create",
    );
    assert_full(
        client
            .add_items(authed(pb::AddItemsRequest {
                cart_id: id(),
                items: vec![item("NEW", 1, 100)],
                ..Default::default()
            }))
            .await,
        "AddItems of a new line",
    );
    assert_full(
        client
            .add_items(authed(pb::AddItemsRequest {
                cart_id: id(),
                items: vec![item("FILL", 1, 101)],
                ..Default::default()
            }))
            .await,
        "AddItems to an existing line",
    );
    assert_full(
        client
            .update_items(authed(pb::UpdateItemsRequest {
                cart_id: id(),
                updates: vec![pb::ItemUpdate {
                    line_id: cart.items[0].line_id.clone(),
                    quantity: 7,
                }],
                ..Default::default()
            }))
            .await,
        "UpdateItems",
    );
    assert_full(
        client
            .apply_coupon(authed(pb::ApplyCouponRequest {
                cart_id: id(),
                code: "SPRING10".into(),
                amount: 10,
                ..Default::default()
            }))
            .await,
        "ApplyCoupon",
    );
    let clear = pb::ClearRequest {
        cart_id: id(),
        reason: "customer_requested".into(),
        request_id: "clear-when-full-1".into(),
        ..Default::default()
    };
    assert_full(client.clear(authed(clear.clone())).await, "Clear");
    assert_full(
        client
            .delete(authed(pb::DeleteRequest {
                cart_id: id(),
                order_number: "ORD-1".into(),
                ..Default::default()
            }))
            .await,
        "Delete",
    );
    // Remembering a refusal would only grow a full Redis: it is answered STORE_FULL instead.
    let remove_missing = pb::RemoveRequest {
        cart_id: "never-created".into(),
        request_id: "remove-missing-1".into(),
        ..Default::default()
    };
    assert_full(
        client.remove(authed(remove_missing.clone())).await,
        "Remove of a missing cart under a request id",
    );
    // Without a request id nothing is written: the plain refusal.
    let missing = client
        .remove(authed(pb::RemoveRequest {
            cart_id: "never-created".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let metrics = crate::helpers::http_get(app.http_addr, "/metrics").await.1;
    let counted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cart_store_errors_total{reason=\"STORE_FULL\"} "))
        .expect("STORE_FULL is counted")
        .parse::<f64>()
        .unwrap();
    assert!(counted >= 9.0, "{counted}");

    // Remove runs when full, with and without a request id.
    let mut removed = Vec::new();
    for (n, request_id) in [(2, ""), (3, "remove-when-full-3")] {
        let reply = client
            .remove(authed(pb::RemoveRequest {
                cart_id: carts[n].id.clone(),
                request_id: request_id.into(),
                ..Default::default()
            }))
            .await
            .expect("Remove works when full")
            .into_inner();
        assert_eq!(reply.items_removed, carts[n].item_count);
        removed.push(carts[n].id.clone());
    }

    // Removes make room for Creates again. Redis's own overhead grew meanwhile (by about 24 KB
    // steps while it ran scripts over its limit), so it can take more than a few.
    eprintln!(
        "full redis: used_memory {} before the Removes",
        probe_connection.used_memory()
    );
    let mut freed = 2;
    let created = loop {
        match client.create(authed(fill_request(0))).await {
            Ok(cart) => break cart.into_inner(),
            Err(status) => assert_full::<()>(Err(status), "Create before enough was freed"),
        }
        assert!(
            freed < 300,
            "{freed} Removes and still no room for a Create"
        );
        let victim = carts[2 + freed].id.clone();
        client
            .remove(authed(pb::RemoveRequest {
                cart_id: victim.clone(),
                ..Default::default()
            }))
            .await
            .unwrap();
        removed.push(victim);
        freed += 1;
    };
    eprintln!(
        "full redis: {freed} Removes made room for a Create (used_memory {})",
        probe_connection.used_memory()
    );
    carts.push(created);
    // That Create may have taken Redis over its limit again: room for what follows, with a
    // margin for Redis's own buffers (a script's reply buffer can grow by one 24 KB step).
    for victim in &carts[2 + freed..80 + freed] {
        client
            .remove(authed(pb::RemoveRequest {
                cart_id: victim.id.clone(),
                ..Default::default()
            }))
            .await
            .unwrap();
        removed.push(victim.id.clone());
    }
    // The refused Clear was not remembered: its request id applies now.
    let cleared = client.clear(authed(clear)).await.unwrap().into_inner();
    assert_eq!(cleared.items_cleared, cart.item_count);
    assert_eq!(cleared.cart.unwrap().version, cart.version + 1);
    let position = carts.iter().position(|c| c.id == cart.id).unwrap();
    carts.remove(position);
    // So was the refused Remove: its request id now gets the refusal of a missing cart.
    let missing = client.remove(authed(remove_missing)).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    assert_consistent(&app, &carts, &removed).await;
    app.stop().await;
}

/// A Stateset, Amazon or VTEX Clear, or an XM Delete, of `cart`; the Zaui Remove of it.
async fn shim_calls(app: &TestApp, cart: &pb::Cart) -> Vec<(&'static str, HttpResponse)> {
    let json = ("Content-Type", "application/json");
    let bearer = format!("Bearer {ACME_KEY}");
    let id = &cart.id;
    let stateset = http(
        app.http_addr,
        "POST",
        &format!("/v1/carts/{id}/clear"),
        &[json, ("Authorization", &bearer)],
        br#"{"preserve_coupons": false, "reason": "customer_requested"}"#,
    )
    .await;
    let amazon = http(
        app.http_addr,
        "GET",
        &format!(
            "/onca/xml?Service=AWSECommerceService&AWSAccessKeyId=AKIAEXAMPLE&Operation=CartClear&CartId={id}&HMAC={}",
            url_encode(&cart.hmac)
        ),
        &[],
        b"",
    )
    .await;
    let vtex = http(
        app.http_addr,
        "POST",
        &format!("/api/checkout/pub/orderForm/{id}/items/removeAll"),
        &[json, ("Host", "cosmetics2.vtexcommercestable.com.br")],
        b"{}",
    )
    .await;
    let xm = http(
        app.http_addr,
        "PATCH",
        &format!("/api-cart/cart/{id}/orderNumber"),
        &[
            json,
            ("Authorization", &bearer),
            (
                "x-site-context",
                r#"{"channel":12,"account":"5f493c9f30ec2a0007a94fc8","stage":"sandbox"}"#,
            ),
        ],
        br#"{"orderNumber": "1234-1234-12345"}"#,
    )
    .await;
    vec![
        ("stateset", stateset),
        ("amazon", amazon),
        ("vtex", vtex),
        ("fabric_xm", xm),
    ]
}

/// A response without what differs from one request to the next (Amazon's request id and
/// processing time, VTEX's operationId): status, content type and the dialect's error.
fn refusal(dialect: &str, response: &HttpResponse) -> (u16, String, String) {
    let body = match dialect {
        "amazon" => {
            let doc = xml::parse(&response.body).unwrap();
            let error = |leaf| {
                doc.get(&format!(
                    "CartClearResponse/Cart/Request/Errors/Error/{leaf}"
                ))
                .unwrap_or_default()
                .to_owned()
            };
            format!("{} {}", error("Code"), error("Message"))
        }
        "vtex" => {
            let mut body = response.json();
            body.as_object_mut().unwrap().remove("operationId");
            body.to_string()
        }
        _ => response.body.clone(),
    };
    (
        response.status,
        response
            .header("content-type")
            .unwrap_or_default()
            .to_owned(),
        body,
    )
}

fn zapi_remove(cart_id: &str) -> String {
    format!(
        "<request><zapiToken>998877</zapiToken><zapiAccountId>1234</zapiAccountId><zapiUserId>42</zapiUserId><zapiMethod><methodName>zapiRemoveCartSession</methodName><cartId>{cart_id}</cartId></zapiMethod></request>"
    )
}

/// Over real HTTP against a full Redis, each dialect whose call Redis refuses answers exactly
/// as it does when Redis is unreachable (STORE_UNAVAILABLE); the Zaui Remove still works.
#[tokio::test]
async fn over_http_a_full_redis_is_answered_like_an_unavailable_one() {
    let redis = FullRedis::start();
    let app = shim_app_on(Backend::Redis(redis.url())).await;
    let carts = fill(&app, 20_000).await;
    let at_refusal = Probe::open(&redis).used_memory();
    redis.command(&[
        "CONFIG",
        "SET",
        "maxmemory",
        &(at_refusal - 256 * 1024).to_string(),
    ]);
    let full = shim_calls(&app, &carts[0]).await;

    let down = RedisServer::reserve();
    let unreachable = shim_app_on(Backend::Redis(down.url())).await;
    let unavailable = shim_calls(&unreachable, &carts[0]).await;
    for ((dialect, full), (_, unavailable)) in full.iter().zip(&unavailable) {
        assert!(full.status >= 500, "{dialect}: {full:?}");
        assert_eq!(
            refusal(dialect, full),
            refusal(dialect, unavailable),
            "{dialect} answers STORE_FULL as STORE_UNAVAILABLE"
        );
    }
    unreachable.stop().await;

    let zaui = http(
        app.http_addr,
        "DELETE",
        "/zapi/",
        &[("Content-Type", "application/xml")],
        zapi_remove(&carts[0].id).as_bytes(),
    )
    .await;
    let doc = xml::parse(&zaui.body).unwrap();
    assert_eq!(
        doc.get("response/methodResponse/methodErrorCode"),
        Some("0"),
        "Zaui's Remove frees a full Redis: {}",
        zaui.body
    );
    assert_eq!(
        app.get_as(ACME_KEY, &carts[0].id).await.unwrap_err().code(),
        Code::NotFound
    );
    app.stop().await;
}

/// The in-memory store with a small cap: growth past it is refused whole (STORE_FULL with
/// RetryInfo) while what does not grow runs, the bytes held never pass the cap, Removes make
/// room again, and every cart stays consistent.
#[tokio::test]
async fn a_full_memory_store_refuses_growth_and_keeps_serving() {
    let store = MemoryStore::with_max_bytes(CartPolicy::default(), 1024 * 1024);
    let app = crate::helpers::spawn_with_store(store.clone()).await;
    let mut client = app.client.clone();
    let mut carts = fill(&app, 20_000).await;
    let held = store.held_bytes();
    eprintln!(
        "full memory store: {} carts fit in {} B, {} B per cart by its estimate",
        carts.len(),
        store.max_bytes(),
        held / carts.len()
    );
    assert!(held <= store.max_bytes());
    // The refused Create needed a cart and perhaps the doubling of its shard's table (about
    // 25 KB here): less than the big line below.
    let room = store.max_bytes() - held;
    assert!(room < BIG_LINE_BYTES, "{room} B of room left");

    let cart = carts[0].clone();
    let id = || cart.id.clone();
    let read = app.get(&cart.id).await.expect("Get answers when full");
    assert_eq!(read.version, cart.version);
    assert_eq!(store.held_bytes(), held, "a read does not grow");
    // Two lines of 50 attributes of 1000 bytes (an item holds at most 64).
    let big = |sku: &str| pb::NewItem {
        attributes: (0..BIG_LINE_BYTES / 2000)
            .map(|i| (format!("a{i}"), "x".repeat(1000)))
            .collect(),
        ..item(sku, 1, 100)
    };
    assert_full(
        client
            .add_items(pb::AddItemsRequest {
                cart_id: id(),
                items: vec![big("BIG1"), big("BIG2")],
                ..Default::default()
            })
            .await,
        "AddItems of lines bigger than the room left",
    );
    // (A small cart may still fit: the fill's last Create may have needed its shard's table
    // to double, and another shard's table may have room.)
    let mut too_big = create_request("", &[]);
    too_big.items = vec![big("BIG1"), big("BIG2")];
    assert_full(
        client.create(too_big).await,
        "Create bigger than the room left",
    );
    assert_eq!(store.held_bytes(), held, "refusals change nothing");
    // What does not grow still runs.
    let added = client
        .add_items(pb::AddItemsRequest {
            cart_id: id(),
            items: vec![item("FILL", 1, cart.items[0].unit_price)],
            ..Default::default()
        })
        .await
        .expect("a quantity added to an existing line does not grow")
        .into_inner();
    assert_eq!(added.item_count, cart.item_count + 1);
    let updated = client
        .update_items(pb::UpdateItemsRequest {
            cart_id: id(),
            updates: vec![pb::ItemUpdate {
                line_id: cart.items[0].line_id.clone(),
                quantity: 9,
            }],
            ..Default::default()
        })
        .await
        .expect("UpdateItems does not grow")
        .into_inner();
    assert_eq!((updated.item_count, updated.version), (9, cart.version + 2));
    let cleared = client
        .clear(pb::ClearRequest {
            cart_id: carts[1].id.clone(),
            reason: "r".into(),
            ..Default::default()
        })
        .await
        .expect("Clear of a cart with lines frees")
        .into_inner();
    assert_eq!(cleared.items_cleared, carts[1].item_count);
    assert!(store.held_bytes() <= store.max_bytes());
    let deleted = client
        .delete(pb::DeleteRequest {
            cart_id: carts[1].id.clone(),
            order_number: "O-1".into(),
            ..Default::default()
        })
        .await
        .expect("Delete fits in what the Clear freed")
        .into_inner();
    carts[1] = *deleted.cart.unwrap();
    let mut removed = Vec::new();
    let created = loop {
        match client.create(fill_request(3)).await {
            Ok(cart) => break cart.into_inner(),
            Err(status) => assert_full::<()>(Err(status), "Create before enough was freed"),
        }
        let victim = &carts[2 + removed.len()];
        client
            .remove(pb::RemoveRequest {
                cart_id: victim.id.clone(),
                ..Default::default()
            })
            .await
            .expect("Remove works when full");
        removed.push(victim.id.clone());
        assert!(removed.len() < 100, "room again after Removes");
    };
    eprintln!(
        "full memory store: {} Removes made room for a Create",
        removed.len()
    );
    assert!(store.held_bytes() <= store.max_bytes());
    carts[0] = app.get(&cart.id).await.unwrap();
    carts.push(created);
    assert_consistent(&app, &carts, &removed).await;
    app.stop().await;
}
