//! The server as operators and clients meet it: reflection, health, auth and tenancy, message
//! limits, gRPC-Web and its CORS, and the binary's startup and graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cart_service::auth::CartTokens;
use cart_service::domain::{CartId, TenantId};
use cart_service::pb;
use tonic::{Code, Request};

use crate::helpers::{
    ACME_KEY, ACME_READ_KEY, Backend, GLOBEX_KEY, SERVING, SHIM_SECRET, assert_error, health_of,
    http, http_get, spawn_app, spawn_shim_app, spawn_with, test_settings,
};

on_both_stores!(tenants_are_isolated_and_keys_scoped);

/// Reflection v1 and v1alpha both list the services, so grpcurl and buf curl need no protos.
#[tokio::test]
async fn reflection_lists_the_services_over_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let app = spawn_app(Backend::Memory).await;

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().expect("a reply");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        reply.message_response
    else {
        panic!("unexpected reply {reply:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for wanted in ["cart.v1.CartService", "grpc.health.v1.Health"] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "cart.v1.CartService".into(),
            ),
        ),
    };
    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().expect("a reply");
    let Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        reply.message_response
    else {
        panic!("unexpected reply {reply:?}");
    };
    assert!(
        !files.file_descriptor_proto.is_empty(),
        "cart.proto is served"
    );
}

/// The error detail types (`google.rpc.ErrorInfo`, `BadRequest`) resolve through reflection
/// v1 and v1alpha, with every file they import, so grpcurl prints a status's details decoded.
#[tokio::test]
async fn reflection_serves_the_error_detail_types_over_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let app = spawn_app(Backend::Memory).await;
    for (symbol, file_name) in [
        ("google.rpc.ErrorInfo", "google/rpc/error_details.proto"),
        ("google.rpc.BadRequest", "google/rpc/error_details.proto"),
        ("google.rpc.Status", "google/rpc/status.proto"),
    ] {
        let files = reflect_v1(
            &app.channel,
            v1::server_reflection_request::MessageRequest::FileContainingSymbol(symbol.into()),
        )
        .await;
        let file = files.first().unwrap_or_else(|| panic!("{symbol}: no file"));
        assert_eq!(file.name(), file_name, "{symbol}");
        let package = symbol.rsplit_once('.').unwrap().0;
        let name = symbol.rsplit_once('.').unwrap().1;
        assert_eq!(file.package(), package, "{symbol}");
        assert!(
            file.message_type.iter().any(|m| m.name() == name),
            "{symbol} not in {}",
            file.name()
        );
        for import in &file.dependency {
            let served = reflect_v1(
                &app.channel,
                v1::server_reflection_request::MessageRequest::FileByFilename(import.clone()),
            )
            .await;
            assert_eq!(served.first().map(|f| f.name()), Some(import.as_str()));
        }

        let request = v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                    symbol.into(),
                ),
            ),
        };
        let mut client =
            v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
        let reply = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner()
            .message()
            .await
            .unwrap()
            .expect("a reply");
        let Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(
            files,
        )) = reply.message_response
        else {
            panic!("v1alpha {symbol}: unexpected reply {reply:?}");
        };
        let file = decode_file(&files.file_descriptor_proto[0]);
        assert!(
            file.message_type.iter().any(|m| m.name() == name),
            "v1alpha {symbol}"
        );
    }
}

/// One reflection v1 request; the file descriptors it answers with.
async fn reflect_v1(
    channel: &tonic::transport::Channel,
    request: tonic_reflection::pb::v1::server_reflection_request::MessageRequest,
) -> Vec<prost_types::FileDescriptorProto> {
    use tonic_reflection::pb::v1;
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let reply = v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .expect("a reply");
    match reply.message_response {
        Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) => {
            files
                .file_descriptor_proto
                .iter()
                .map(|raw| decode_file(raw))
                .collect()
        }
        other => panic!("unexpected reply {other:?}"),
    }
}

fn decode_file(raw: &[u8]) -> prost_types::FileDescriptorProto {
    prost::Message::decode(raw).expect("a FileDescriptorProto")
}

const SHOP_ORIGIN: &str = "https://shop.example";

/// A browser's CORS preflight for a gRPC-Web call to `Get`, from `origin`.
async fn preflight(addr: std::net::SocketAddr, origin: &str) -> crate::helpers::HttpResponse {
    http(
        addr,
        "OPTIONS",
        "/cart.v1.CartService/Get",
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "content-type,x-grpc-web,x-user-agent",
            ),
        ],
        b"",
    )
    .await
}

/// A gRPC-Web `Get` as a browser sends it in text mode: HTTP/1.1, one length-prefixed
/// protobuf frame in base64. Returns the response and its decoded frames' bytes.
async fn grpc_web_get(
    addr: std::net::SocketAddr,
    origin: &str,
    cart_id: &str,
) -> (crate::helpers::HttpResponse, Vec<u8>) {
    use base64::Engine;
    let base64 = base64::engine::general_purpose::STANDARD;
    let message = prost::Message::encode_to_vec(&pb::GetRequest {
        cart_id: cart_id.into(),
    });
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let response = http(
        addr,
        "POST",
        "/cart.v1.CartService/Get",
        &[
            ("Origin", origin),
            ("Content-Type", "application/grpc-web-text"),
            ("Accept", "application/grpc-web-text"),
            ("X-Grpc-Web", "1"),
        ],
        base64.encode(frame).as_bytes(),
    )
    .await;
    // Each chunk is base64 on its own (padded), so decode them one by one.
    let mut decoded = Vec::new();
    let mut rest = response.body.trim();
    while !rest.is_empty() {
        let end = rest
            .find('=')
            .map(|i| i + rest[i..].len() - rest[i..].trim_start_matches('=').len())
            .unwrap_or(rest.len());
        decoded.extend(base64.decode(&rest[..end]).expect("base64 frames"));
        rest = &rest[end..];
    }
    (response, decoded)
}

/// The trailer frame (flag 0x80) of a gRPC-Web response says `grpc-status:0`.
fn succeeded(frames: &[u8]) -> bool {
    frames.windows(13).any(|w| w == b"grpc-status:0")
}

/// With `cors_allowed_origins` configured, an allowed origin's preflight and call get the CORS
/// headers a browser needs (status and error details readable); another origin gets none.
#[tokio::test]
async fn grpc_web_cors_answers_allowed_origins_only() {
    let mut settings = test_settings(&Backend::Memory);
    settings.grpc_web.cors_allowed_origins = vec![SHOP_ORIGIN.into()];
    let app = spawn_with(settings).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;

    let allowed = preflight(app.grpc_addr, SHOP_ORIGIN).await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some(SHOP_ORIGIN)
    );
    assert!(
        allowed
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST")),
        "{allowed:?}"
    );
    let headers = allowed
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for wanted in [
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "authorization",
    ] {
        assert!(headers.contains(wanted), "{wanted} not allowed: {headers}");
    }

    let (call, frames) = grpc_web_get(app.grpc_addr, SHOP_ORIGIN, &cart.id).await;
    assert_eq!(call.status, 200, "{call:?}");
    assert!(succeeded(&frames), "{call:?}");
    assert_eq!(
        call.header("access-control-allow-origin"),
        Some(SHOP_ORIGIN)
    );
    let exposed = call
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("grpc-status-details-bin"), "{call:?}");

    let other = preflight(app.grpc_addr, "https://evil.example").await;
    assert_eq!(
        other.header("access-control-allow-origin"),
        None,
        "{other:?}"
    );
}

/// Without gRPC-Web config a browser-style call still works (same origin, or buf curl), and
/// no response carries any CORS header.
#[tokio::test]
async fn grpc_web_without_cors_config_sends_no_cors_headers() {
    let app = spawn_app(Backend::Memory).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;

    let (call, frames) = grpc_web_get(app.grpc_addr, SHOP_ORIGIN, &cart.id).await;
    assert_eq!(call.status, 200, "{call:?}");
    assert_eq!(
        call.header("content-type"),
        Some("application/grpc-web-text+proto")
    );
    assert!(succeeded(&frames), "{call:?}");
    let cart_bytes = frames
        .windows(cart.id.len())
        .any(|w| w == cart.id.as_bytes());
    assert!(cart_bytes, "the response frame carries the cart");
    let answer = preflight(app.grpc_addr, SHOP_ORIGIN).await;
    for response in [&call, &answer] {
        let cors: Vec<_> = response
            .headers
            .iter()
            .filter(|(name, _)| name.to_ascii_lowercase().starts_with("access-control-"))
            .collect();
        assert!(cors.is_empty(), "CORS headers without config: {cors:?}");
    }
}

/// The health service and the HTTP probes report a store that answers.
#[tokio::test]
async fn health_and_probes_report_serving() {
    let app = spawn_app(Backend::Memory).await;
    crate::helpers::eventually(Duration::from_secs(5), "SERVING", || async {
        health_of(&app, "cart.v1.CartService").await.ok() == Some(SERVING)
    })
    .await;
    assert_eq!(http_get(app.http_addr, "/healthz").await.0, 200);
    assert_eq!(http_get(app.http_addr, "/readyz").await.0, 200);
}

/// A request over 1 MiB is refused with RESOURCE_EXHAUSTED before any handler runs.
#[tokio::test]
async fn oversized_messages_are_resource_exhausted() {
    let app = spawn_app(Backend::Memory).await;
    let request = pb::CreateRequest {
        currency: "USD".into(),
        metadata: [("blob".to_owned(), "x".repeat(1_100_000))].into(),
        ..Default::default()
    };
    let status = app
        .client
        .clone()
        .create(request)
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

fn with_key<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

/// With a config file: bearer keys, scopes, and tenants that never see each other's carts.
async fn tenants_are_isolated_and_keys_scoped(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let mut client = app.client.clone();
    let id = format!("shared_{}", CartId::generate());
    let create = |cart_id: &str| pb::CreateRequest {
        cart_id: cart_id.into(),
        currency: "USD".into(),
        items: vec![crate::helpers::item("A", 1, 100)],
        ..Default::default()
    };
    let get = |cart_id: &str| pb::GetRequest {
        cart_id: cart_id.into(),
    };

    assert_error(
        client.get(Request::new(get(&id))).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    assert_error(
        client.get(with_key(get(&id), "sk_unknown_1")).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    assert_error(
        client.create(with_key(create(&id), ACME_READ_KEY)).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );

    let acme = client
        .create(with_key(create(&id), ACME_KEY))
        .await
        .unwrap()
        .into_inner();
    let expected_hmac = CartTokens::new(SHIM_SECRET.as_bytes()).sign(
        &TenantId::parse("acme").unwrap(),
        &CartId::parse(&id).unwrap(),
    );
    assert_eq!(acme.hmac, expected_hmac);
    assert_eq!(
        client
            .get(with_key(get(&id), ACME_READ_KEY))
            .await
            .unwrap()
            .into_inner()
            .id,
        id
    );

    // The same id does not exist for another tenant, and is free to take there.
    assert_error(
        client.get(with_key(get(&id), GLOBEX_KEY)).await,
        Code::NotFound,
        "CART_NOT_FOUND",
    );
    let clear = pb::ClearRequest {
        cart_id: id.clone(),
        ..Default::default()
    };
    assert_error(
        client.clear(with_key(clear, GLOBEX_KEY)).await,
        Code::NotFound,
        "CART_NOT_FOUND",
    );
    let globex = client
        .create(with_key(create(&id), GLOBEX_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(globex.hmac, acme.hmac);
    let remove = pb::RemoveRequest {
        cart_id: id.clone(),
        expected_version: 0,
        request_id: String::new(),
    };
    client.remove(with_key(remove, GLOBEX_KEY)).await.unwrap();
    let still = client
        .get(with_key(get(&id), ACME_KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (still.item_count, still.version),
        (1, 1),
        "acme's cart is untouched"
    );
}

/// Stopping the app lets it drain and return.
#[tokio::test]
async fn stop_drains_and_returns() {
    let app = spawn_app(Backend::Memory).await;
    let cart = app.create_cart(&[("A", 1, 1)]).await;
    app.get(&cart.id).await.unwrap();
    let addr = app.grpc_addr;
    app.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

/// A client's health Watch never ends by itself: the drain cuts it once in-flight calls have
/// had their redis_timeout (2 s by default) and a second more, instead of waiting for it (and,
/// in a pod, for the kubelet's SIGKILL).
#[tokio::test]
async fn stop_cuts_a_stream_that_never_ends() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let app = spawn_app(Backend::Memory).await;
    let mut watch = HealthClient::new(app.channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().expect("the current status");
    let started = Instant::now();
    app.stop().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(8),
        "the drain held the Watch for {took:?}, not redis_timeout + 1 s"
    );
}

/// The real binary: serves with no Redis and no config, and exits 0 on SIGTERM.
#[test]
fn binary_serves_in_memory_and_exits_cleanly_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cart-service"))
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .env_remove("CART_REDIS_URL")
        .env_remove("CART_CONFIG")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut saw_memory_notice = false;
    let mut lines = stderr.lines();
    loop {
        assert!(Instant::now() < deadline, "no listening line");
        let line = lines.next().expect("log line").unwrap();
        saw_memory_notice |= line.contains("not persisted");
        if line.contains("listening") {
            break;
        }
    }
    assert!(
        saw_memory_notice,
        "the in-memory store says it does not persist"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Dev mode (no config) refuses to listen beyond loopback.
#[test]
fn binary_refuses_a_public_bind_without_config() {
    let output = Command::new(env!("CARGO_BIN_EXE_cart-service"))
        .args(["--grpc-addr", "0.0.0.0:0", "--http-addr", "127.0.0.1:0"])
        .env_remove("CART_CONFIG")
        .output()
        .expect("binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("refusing to bind"));
}
