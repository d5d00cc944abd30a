//! What every shim shares: correlation ids, the pipeline's order, metrics, probes, dev mode.

use crate::helpers::{ACME_KEY, Backend, http, spawn_app, spawn_shim_app};

/// Every response carries a correlation id (`x-request-id`); a client's own id is kept.
#[tokio::test]
async fn responses_carry_correlation_ids() {
    let app = spawn_shim_app(Backend::Memory).await;
    let response = http(app.http_addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(response.header("x-request-id").map(str::len), Some(36));
    let response = http(
        app.http_addr,
        "GET",
        "/readyz",
        &[("x-request-id", "trace-me-42")],
        b"",
    )
    .await;
    assert_eq!(response.header("x-request-id"), Some("trace-me-42"));
}

/// `/metrics` counts cart RPCs by interface, dialect and outcome, and HTTP responses.
#[tokio::test]
async fn metrics_count_requests_by_interface_and_outcome() {
    let app = spawn_shim_app(Backend::Memory).await;
    let cart = app.create_cart_as(ACME_KEY, "", &[("A", 1, 1)]).await;
    let host = [
        ("Host", "cosmetics2.example"),
        ("Content-Type", "application/json"),
    ];
    let target = format!("/api/checkout/pub/orderForm/{}/items/removeAll", cart.id);
    assert_eq!(
        http(app.http_addr, "POST", &target, &host, b"{}")
            .await
            .status,
        200
    );
    let missing = "/api/checkout/pub/orderForm/ffffffffffffffffffffffff/items/removeAll";
    assert_eq!(
        http(app.http_addr, "POST", missing, &host, b"{}")
            .await
            .status,
        400
    );

    let metrics = http(app.http_addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = metrics.body;
    for needle in [
        "cart_requests_total{interface=\"grpc\",dialect=\"\",method=\"Create\",outcome=\"OK\"}",
        "cart_requests_total{interface=\"http\",dialect=\"vtex\",method=\"Clear\",outcome=\"OK\"}",
        "cart_requests_total{interface=\"http\",dialect=\"vtex\",method=\"Clear\",outcome=\"CART_NOT_FOUND\"}",
        "cart_request_duration_seconds_bucket{le=\"+Inf\",interface=\"http\",dialect=\"vtex\",method=\"Clear\"}",
        "cart_http_responses_total{dialect=\"vtex\",status=\"400\"}",
        "# TYPE cart_in_flight_requests gauge",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}

/// Without a config file every shim serves tenant `default` with no credentials.
#[tokio::test]
async fn dev_mode_shims_need_no_credentials() {
    let app = spawn_app(Backend::Memory).await;
    let cart = app.create_cart(&[("A", 3, 100)]).await;
    let response = http(
        app.http_addr,
        "POST",
        &format!("/v1/carts/{}/clear", cart.id),
        &[("Content-Type", "application/json")],
        br#"{"reason":"dev"}"#,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["metadata"]["items_cleared"], 3);
    assert_eq!(app.get(&cart.id).await.unwrap().clear_reason, "dev");
}

/// Unknown paths outside the dialects are a plain 404.
#[tokio::test]
async fn unknown_paths_are_not_found() {
    let app = spawn_app(Backend::Memory).await;
    assert_eq!(
        http(app.http_addr, "GET", "/nope", &[], b"").await.status,
        404
    );
}

/// Every dialect runs the same steps in the same order: a caller without credentials is
/// refused before its (oversized) body is looked at, in the dialect's own shape, and the
/// response echoes the correlation id. Zaui, whose credentials are inside the body, is the
/// one dialect that must read the body first.
#[tokio::test]
async fn every_dialect_authenticates_before_it_reads_the_body() {
    let app = spawn_shim_app(Backend::Memory).await;
    let oversized = vec![b' '; 70 * 1024];
    let site = r#"{"account": "5f493c9f30ec2a0007a94fc8"}"#;
    // (method, path, headers, the status of the refusal)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16);
    let cases: [Case; 5] = [
        (
            "POST",
            "/v1/carts/c1/clear",
            &[("Content-Type", "application/json")],
            401,
        ),
        (
            "PATCH",
            "/api-cart/cart/60807478d14ffd000843db2c/orderNumber",
            &[
                ("Content-Type", "application/json"),
                ("x-site-context", site),
            ],
            401,
        ),
        (
            "POST",
            "/api/checkout/pub/orderForm/c1/items/removeAll?an=nosuchstore",
            &[("Content-Type", "application/json")],
            404,
        ),
        (
            "GET",
            "/onca/xml?Service=AWSECommerceService&Operation=CartClear&AWSAccessKeyId=AKIANOBODY&CartId=c1&HMAC=x",
            &[],
            200,
        ),
        (
            "POST",
            "/zapi/",
            &[("Content-Type", "application/xml")],
            413,
        ),
    ];
    for (i, (method, path, headers, status)) in cases.into_iter().enumerate() {
        let correlation_id = format!("edge-order-{i}");
        let mut headers = headers.to_vec();
        headers.push(("x-request-id", &correlation_id));
        let response = http(app.http_addr, method, path, &headers, &oversized).await;
        assert_eq!(response.status, status, "{path}: {}", response.body);
        assert_eq!(
            response.header("x-request-id"),
            Some(correlation_id.as_str()),
            "{path}"
        );
        if path.starts_with("/onca/") {
            assert!(
                response.body.contains("AWS.InvalidAccount"),
                "{}",
                response.body
            );
            assert!(
                response
                    .body
                    .contains(&format!("<RequestId>{correlation_id}</RequestId>"))
            );
        }
    }
}
