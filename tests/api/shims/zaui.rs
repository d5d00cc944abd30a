//! Zaui ZAPI: `zapiRemoveCartSession` → Remove.

use cart_service::http::xml;
use tonic::Code;

use crate::helpers::{ACME_KEY, Backend, GLOBEX_KEY, TestApp, assert_error, http, spawn_shim_app};

on_both_stores!(
    remove_session_answers_the_seed_envelope,
    every_refusal_is_an_envelope_and_changes_nothing,
    a_frozen_session_is_removed_and_a_merged_one_refused
);

fn request(token: &str, account: &str, method: &str, cart_id: &str) -> String {
    format!(
        "<request>\n\t<zapiToken>{token}</zapiToken>\n\t<zapiAccountId>{account}</zapiAccountId>\n\t<zapiUserId>42</zapiUserId>\n\t<zapiMethod>\n\t\t<methodName>{method}</methodName>\n\t\t<cartId>{cart_id}</cartId>\n\t</zapiMethod>\n</request>"
    )
}

/// Sends a ZAPI document; returns the HTTP status and the envelope's leaves.
async fn zapi(app: &TestApp, method: &str, body: &str) -> (u16, xml::Leaves) {
    let response = http(
        app.http_addr,
        method,
        "/zapi/",
        &[("Content-Type", "application/xml")],
        body.as_bytes(),
    )
    .await;
    assert!(response.header("content-type").unwrap().contains("xml"));
    let leaves = xml::parse(&response.body).unwrap_or_else(|e| panic!("{e}: {}", response.body));
    assert_eq!(leaves.root, "response");
    (response.status, leaves)
}

fn method_error(leaves: &xml::Leaves) -> (&str, &str) {
    (
        leaves
            .get("response/methodResponse/methodErrorCode")
            .unwrap(),
        leaves
            .get("response/methodResponse/methodErrorMessage")
            .unwrap(),
    )
}

/// The seed's request, by DELETE and by POST, removes the cart and answers the seed's envelope.
async fn remove_session_answers_the_seed_envelope(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    for verb in ["DELETE", "POST"] {
        let cart = app.create_cart_as(ACME_KEY, "", &[("A", 2, 100)]).await;
        let (status, reply) = zapi(
            &app,
            verb,
            &request("998877", "1234", "zapiRemoveCartSession", &cart.id),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(reply.get("response/zapiVersion"), Some("2.1"));
        assert_eq!(reply.get("response/error"), Some("0"));
        assert_eq!(reply.get("response/message"), Some("OK"));
        assert_eq!(
            reply.get("response/methodResponse/methodName"),
            Some("zapiRemoveCartSession")
        );
        assert_eq!(
            method_error(&reply),
            ("0", "Cart sessions cleared and removed")
        );
        assert_error(
            app.get_as(ACME_KEY, &cart.id).await,
            Code::NotFound,
            "CART_NOT_FOUND",
        );
    }
}

/// Bad credentials, XML, methods, ids and cross-tenant attempts: an envelope with the right code, nothing changed.
async fn every_refusal_is_an_envelope_and_changes_nothing(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let cart = app.create_cart_as(ACME_KEY, "", &[("A", 2, 100)]).await;
    let id = cart.id.as_str();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            request("000000", "1234", "zapiRemoveCartSession", id),
            "1",
            "Invalid zapiAccountId or zapiToken",
        ),
        (
            request("998877", "9999", "zapiRemoveCartSession", id),
            "1",
            "Invalid zapiAccountId or zapiToken",
        ),
        // globex's own credentials: acme's cart does not exist for globex.
        (
            request("112233", "5678", "zapiRemoveCartSession", id),
            "1",
            "Cart session not found",
        ),
        (
            request("998877", "1234", "zapiRemoveCartSession", "0000nosuchcart"),
            "1",
            "Cart session not found",
        ),
        (
            request("998877", "1234", "zapiRemoveCartSession", "bad id!"),
            "1",
            "cartId is not a valid cart id",
        ),
        (
            request("998877", "1234", "zapiRemoveCartSession", ""),
            "1",
            "cartId is required",
        ),
        (
            request("998877", "abc", "zapiRemoveCartSession", id),
            "1",
            "zapiAccountId must be an integer",
        ),
        (
            request("998877", "1234", "zapiGetCart", id),
            "1",
            "Unknown methodName",
        ),
        ("<request><zapiToken>1</zapiToken>".to_owned(), "3", ""),
        ("not xml at all".to_owned(), "3", ""),
        (
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE request [<!ENTITY x \"{id}\">]>{}",
                request("998877", "1234", "zapiRemoveCartSession", "&x;")
            ),
            "3",
            "Invalid XML: a DOCTYPE is not allowed",
        ),
        (
            request("998877", "1234", "zapiRemoveCartSession", "&ext;"),
            "3",
            "Invalid XML: entity &ext; is not allowed",
        ),
        (
            "<other/>".to_owned(),
            "3",
            "Invalid XML: the root element must be <request>",
        ),
    ];
    for (body, code, message) in cases {
        let (status, reply) = zapi(&app, "POST", &body).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(reply.get("response/error"), Some("1"), "{body}");
        let (got_code, got_message) = method_error(&reply);
        assert_eq!(got_code, code, "{body}");
        if !message.is_empty() {
            assert_eq!(got_message, message, "{body}");
        }
    }
    let (_, reply) = zapi(&app, "POST", &request("998877", "1234", "zapiGetCart", id)).await;
    assert_eq!(
        reply.get("response/methodResponse/methodName"),
        Some("zapiGetCart"),
        "the method is echoed"
    );

    let (status, reply) = zapi(&app, "GET", "").await;
    assert_eq!((status, method_error(&reply).0), (405, "1"));
    let huge = request(
        "998877",
        "1234",
        "zapiRemoveCartSession",
        &"x".repeat(70 * 1024),
    );
    let (status, _) = zapi(&app, "POST", &huge).await;
    assert_eq!(status, 413);
    let response = http(
        app.http_addr,
        "POST",
        "/zapi/",
        &[("Content-Type", "application/json")],
        b"{}",
    )
    .await;
    assert_eq!(
        xml::parse(&response.body)
            .unwrap()
            .get("response/methodResponse/methodErrorCode"),
        Some("3")
    );

    let read = app
        .get_as(ACME_KEY, id)
        .await
        .expect("the cart survived every refusal");
    assert_eq!((read.version, read.item_count), (1, 2));
    assert_error(
        app.get_as(GLOBEX_KEY, id).await,
        Code::NotFound,
        "CART_NOT_FOUND",
    );
}

/// Remove works on a frozen cart; a merged one is a validation envelope and stays.
async fn a_frozen_session_is_removed_and_a_merged_one_refused(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let (frozen, merged) = super::frozen_and_merged(&app).await;
    let remove = |id: &str| request("998877", "1234", "zapiRemoveCartSession", id);
    let (status, reply) = zapi(&app, "POST", &remove(&frozen)).await;
    assert_eq!((status, reply.get("response/error")), (200, Some("0")));
    let (status, reply) = zapi(&app, "POST", &remove(&merged)).await;
    assert_eq!(status, 200);
    assert_eq!(
        method_error(&reply).1,
        "Cart session was merged into the customer's cart"
    );
    assert_eq!(
        app.get_as(ACME_KEY, &merged).await.unwrap().status(),
        cart_service::pb::CartStatus::Merged
    );
}
