//! Property tests: arbitrary bytes and mutated valid requests at every shim, over real HTTP.
//! Each answer must be the dialect's own error (never a panic or a 5xx) and the store must not
//! change. The decoders alone (no HTTP) are fuzzed by `crate::fuzzing`.

use cart_service::domain::CartId;
use cart_service::http::xml;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::helpers::{ACME_KEY, Backend, HttpResponse, TestApp, http, spawn_shim_app};

/// Replaces, inserts or deletes bytes of a valid request.
fn mutated(seed: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let edits =
        proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..6);
    edits.prop_map(move |edits| {
        let mut bytes = seed.as_bytes().to_vec();
        for (at, kind, byte) in edits {
            let i = at.index(bytes.len().max(1));
            match kind {
                0 if !bytes.is_empty() => {
                    let last = bytes.len() - 1;
                    bytes[i.min(last)] = byte;
                }
                1 => bytes.insert(i.min(bytes.len()), byte),
                _ if !bytes.is_empty() => {
                    bytes.remove(i.min(bytes.len() - 1));
                }
                _ => {}
            }
        }
        bytes
    })
}

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..256)
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// The request bodies of each dialect aim at this id, which no tenant has: whatever the
/// mutation, nothing may change anywhere.
const ABSENT: &str = "0123456789abcdef01234567";

async fn send(app: &TestApp, dialect: &str, bytes: &[u8]) -> HttpResponse {
    let addr = app.http_addr;
    match dialect {
        "zaui" => {
            http(
                addr,
                "POST",
                "/zapi/",
                &[("Content-Type", "application/xml")],
                bytes,
            )
            .await
        }
        "fabric_xm" => {
            let headers = [
                ("Content-Type", "application/json"),
                (
                    "x-site-context",
                    r#"{"account":"5f493c9f30ec2a0007a94fc8"}"#,
                ),
                ("Authorization", "Bearer sk_acme_rw_123"),
            ];
            http(
                addr,
                "PATCH",
                &format!("/api-cart/cart/{ABSENT}/orderNumber"),
                &headers,
                bytes,
            )
            .await
        }
        "stateset" => {
            let headers = [
                ("Content-Type", "application/json"),
                ("Authorization", "Bearer sk_acme_rw_123"),
            ];
            http(
                addr,
                "POST",
                &format!("/v1/carts/{ABSENT}/clear"),
                &headers,
                bytes,
            )
            .await
        }
        "amazon" => {
            let target = format!(
                "/onca/xml?{}",
                percent_encode(bytes)
                    .replace("%26", "&")
                    .replace("%3D", "=")
            );
            http(addr, "GET", &target, &[], b"").await
        }
        "vtex" => {
            let headers = [
                ("Host", "cosmetics2.example"),
                ("Content-Type", "application/json"),
            ];
            http(
                addr,
                "POST",
                &format!("/api/checkout/pub/orderForm/{ABSENT}/items/removeAll"),
                &headers,
                bytes,
            )
            .await
        }
        other => unreachable!("{other}"),
    }
}

/// The answer is in the dialect's shape and is not a server error.
fn assert_dialect_error(dialect: &str, response: &HttpResponse) {
    assert!(
        response.status < 500,
        "{dialect}: {} {}",
        response.status,
        response.body
    );
    match dialect {
        "zaui" => {
            let doc = xml::parse(&response.body).expect("zaui envelope");
            assert_ne!(
                doc.get("response/methodResponse/methodErrorCode"),
                Some("0")
            );
        }
        "fabric_xm" => assert!(response.json()["code"].is_string(), "{}", response.body),
        "stateset" => assert!(
            response.json()["error"]["code"].is_string(),
            "{}",
            response.body
        ),
        "amazon" => {
            let doc = xml::parse(&response.body).expect("amazon xml");
            assert_eq!(
                doc.get("CartClearResponse/Cart/Request/IsValid"),
                Some("False")
            );
        }
        "vtex" => assert!(
            response.json()["error"]["code"].is_string(),
            "{}",
            response.body
        ),
        other => unreachable!("{other}"),
    }
}

const SEEDS: [(&str, &str); 5] = [
    (
        "zaui",
        "<request><zapiToken>998877</zapiToken><zapiAccountId>1234</zapiAccountId><zapiUserId>1</zapiUserId><zapiMethod><methodName>zapiRemoveCartSession</methodName><cartId>0123456789abcdef01234567</cartId></zapiMethod></request>",
    ),
    ("fabric_xm", r#"{"orderNumber":"1234-1234-12345"}"#),
    (
        "stateset",
        r#"{"preserve_coupons":false,"reason":"customer_requested"}"#,
    ),
    (
        "amazon",
        "Service=AWSECommerceService&AWSAccessKeyId=AKIAEXAMPLE&Operation=CartClear&CartId=0123456789abcdef01234567&HMAC=abc",
    ),
    ("vtex", "{}"),
];

/// 48 arbitrary and 48 mutated requests per dialect, against a running service.
#[test]
fn shims_answer_hostile_requests_in_their_dialect_and_change_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(spawn_shim_app(Backend::Memory));
    let sentinel_id = format!("sentinel_{}", CartId::generate());
    let sentinel = runtime.block_on(app.create_cart_as(ACME_KEY, &sentinel_id, &[("A", 2, 100)]));
    let config = Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    };

    for (dialect, seed) in SEEDS {
        for strategy in [garbage().boxed(), mutated(seed).boxed()] {
            let mut runner = TestRunner::new(config.clone());
            runner
                .run(&strategy, |bytes| {
                    let response = runtime.block_on(send(&app, dialect, &bytes));
                    assert_dialect_error(dialect, &response);
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{dialect}: {e}"));
        }
    }
    let read = runtime
        .block_on(app.get_as(ACME_KEY, &sentinel_id))
        .expect("sentinel survives");
    assert_eq!(
        (read.version, read.item_count, read.hmac),
        (1, 2, sentinel.hmac)
    );
}
