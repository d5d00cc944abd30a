//! Stateset: `POST /v1/carts/{id}/clear` → Clear.

use cart_service::domain::CartId;
use serde_json::json;
use tonic::Code;

use crate::helpers::{
    ACME_KEY, ACME_READ_KEY, Backend, GLOBEX_KEY, HttpResponse, TestApp, assert_error, http,
    spawn_shim_app,
};

on_both_stores!(
    clear_answers_the_seed_cart_object,
    every_refusal_in_stateset_shape,
    an_idempotency_key_replays_the_first_clear,
    frozen_and_merged_carts_are_stateset_conflicts
);

const SEED_BODY: &str = "{\n\"preserve_coupons\": false,\n\"reason\": \"customer_requested\"\n}";

async fn clear(
    app: &TestApp,
    cart_id: &str,
    key: Option<&str>,
    content_type: &str,
    body: &str,
) -> HttpResponse {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", content_type)];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer.as_str()));
    }
    http(
        app.http_addr,
        "POST",
        &format!("/v1/carts/{cart_id}/clear"),
        &headers,
        body.as_bytes(),
    )
    .await
}

/// The seed's request clears the cart and answers Stateset's cart object.
async fn clear_answers_the_seed_cart_object(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let id = format!("cart_{}", CartId::generate());
    let cart = app
        .create_cart_as(ACME_KEY, &id, &[("A", 2, 1250), ("B", 1, 500)])
        .await;

    let response = clear(&app, &id, Some(ACME_KEY), "application/json", SEED_BODY).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let body = response.json();
    for (field, expected) in [
        ("id", json!(id)),
        ("object", json!("cart")),
        ("customer_id", json!("cust_abc123")),
        ("session_id", json!("sess_xyz789")),
        ("channel", json!("web")),
        ("currency", json!("USD")),
        ("locale", json!("en-US")),
        ("status", json!("active")),
        ("items", json!([])),
        ("item_count", json!(0)),
        ("unique_item_count", json!(0)),
        ("subtotal", json!(0)),
        ("tax_amount", json!(0)),
        ("shipping_amount", json!(0)),
        ("discount_amount", json!(0)),
        ("total", json!(0)),
        ("applied_coupons", json!([])),
        ("applied_promotions", json!([])),
        (
            "metadata",
            json!({ "clear_reason": "customer_requested", "items_cleared": 3 }),
        ),
        (
            "messages",
            json!([{ "type": "info", "message": "Cart has been cleared" }]),
        ),
    ] {
        assert_eq!(body[field], expected, "{field}");
    }
    for field in [
        "expires_at",
        "created_at",
        "updated_at",
        "last_activity",
        "cleared_at",
    ] {
        let text = body[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} missing"));
        assert!(text.len() == 20 && text.ends_with('Z'), "{field}: {text}");
    }

    let read = app.get_as(ACME_KEY, &id).await.unwrap();
    assert!(read.items.is_empty() && read.cleared_at.is_some());
    assert_eq!(
        (read.clear_reason.as_str(), read.hmac.as_str()),
        ("customer_requested", cart.hmac.as_str())
    );
}

/// 401, 403, 404, 400, 415, 413, 405 and 409 in Stateset's error shape, each changing nothing.
async fn every_refusal_in_stateset_shape(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let id = format!("cart_{}", CartId::generate());
    app.create_cart_as(ACME_KEY, &id, &[("A", 1, 100)]).await;
    let error = |response: HttpResponse| {
        let body = response.json();
        (
            response.status,
            body["error"]["type"].as_str().unwrap().to_owned(),
            body["error"]["code"].as_str().unwrap().to_owned(),
        )
    };
    let expect = |status: u16, kind: &str, code: &str| (status, kind.to_owned(), code.to_owned());

    assert_eq!(
        error(clear(&app, &id, None, "application/json", SEED_BODY).await),
        expect(401, "authentication_error", "unauthorized")
    );
    assert_eq!(
        error(
            clear(
                &app,
                &id,
                Some("sk_wrong_key"),
                "application/json",
                SEED_BODY
            )
            .await
        )
        .0,
        401
    );
    assert_eq!(
        error(
            clear(
                &app,
                &id,
                Some(ACME_READ_KEY),
                "application/json",
                SEED_BODY
            )
            .await
        ),
        expect(403, "permission_error", "forbidden")
    );
    assert_eq!(
        error(
            clear(
                &app,
                "cart_missing",
                Some(ACME_KEY),
                "application/json",
                SEED_BODY
            )
            .await
        ),
        expect(404, "invalid_request_error", "resource_missing")
    );
    assert_eq!(
        error(clear(&app, &id, Some(GLOBEX_KEY), "application/json", SEED_BODY).await).0,
        404,
        "cross-tenant"
    );
    assert_eq!(
        error(
            clear(
                &app,
                &id,
                Some(ACME_KEY),
                "application/json",
                "{\"reason\":"
            )
            .await
        )
        .0,
        400
    );
    assert_eq!(
        error(
            clear(
                &app,
                &id,
                Some(ACME_KEY),
                "application/json",
                r#"{"preserve_coupons":"no"}"#
            )
            .await
        )
        .0,
        400
    );
    assert_eq!(
        error(clear(&app, &id, Some(ACME_KEY), "text/plain", SEED_BODY).await).0,
        415
    );
    assert_eq!(
        error(
            clear(
                &app,
                "bad%20id",
                Some(ACME_KEY),
                "application/json",
                SEED_BODY
            )
            .await
        )
        .0,
        400
    );
    assert_eq!(
        error(
            clear(
                &app,
                "bad.id",
                Some(ACME_KEY),
                "application/json",
                SEED_BODY
            )
            .await
        )
        .0,
        400
    );
    let huge = format!(r#"{{"reason":"{}"}}"#, "x".repeat(70 * 1024));
    assert_eq!(
        error(clear(&app, &id, Some(ACME_KEY), "application/json", &huge).await).0,
        413
    );
    let wrong_method = http(
        app.http_addr,
        "GET",
        &format!("/v1/carts/{id}/clear"),
        &[],
        b"",
    )
    .await;
    assert_eq!(error(wrong_method).0, 405);

    let read = app.get_as(ACME_KEY, &id).await.unwrap();
    assert_eq!((read.version, read.item_count), (1, 1), "nothing changed");
    assert_error(
        app.get_as(GLOBEX_KEY, &id).await,
        Code::NotFound,
        "CART_NOT_FOUND",
    );

    // An empty body clears with the defaults; a deleted cart cannot be cleared.
    assert_eq!(
        clear(&app, &id, Some(ACME_KEY), "application/json", "")
            .await
            .status,
        200
    );
    let delete = cart_service::pb::DeleteRequest {
        cart_id: id.clone(),
        order_number: "O-1".into(),
        expected_version: 0,
        request_id: String::new(),
    };
    app.client
        .clone()
        .delete(TestApp::authed(delete, ACME_KEY))
        .await
        .unwrap();
    assert_eq!(
        error(clear(&app, &id, Some(ACME_KEY), "application/json", SEED_BODY).await).0,
        409
    );
}

/// A clear retried with its `Idempotency-Key` answers as the first one did, even after items
/// were added in between; another body under the key, or a malformed key, is a Stateset 400.
async fn an_idempotency_key_replays_the_first_clear(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let id = format!("cart_{}", CartId::generate());
    app.create_cart_as(ACME_KEY, &id, &[("A", 2, 1250)]).await;
    let keyed = |key: &'static str, body: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            http(
                app.http_addr,
                "POST",
                &format!("/v1/carts/{id}/clear"),
                &[
                    ("Content-Type", "application/json"),
                    ("Authorization", &format!("Bearer {ACME_KEY}")),
                    ("Idempotency-Key", key),
                ],
                body.as_bytes(),
            )
            .await
        }
    };
    let first = keyed("9d0c1f3e-clear", SEED_BODY).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let request = cart_service::pb::AddItemsRequest {
        cart_id: id.clone(),
        items: vec![crate::helpers::item("B", 1, 100)],
        ..Default::default()
    };
    app.client
        .clone()
        .add_items(TestApp::authed(request, ACME_KEY))
        .await
        .unwrap();
    let replay = keyed("9d0c1f3e-clear", SEED_BODY).await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(replay.json(), first.json());
    assert_eq!(first.json()["metadata"]["items_cleared"], json!(2));
    let cart = app.get_as(ACME_KEY, &id).await.unwrap();
    assert_eq!(cart.items.len(), 1, "the replay emptied the later item");

    let reused = keyed("9d0c1f3e-clear", r#"{"reason": "other"}"#).await;
    assert_eq!(reused.status, 400, "{}", reused.body);
    assert_eq!(reused.json()["error"]["type"], json!("idempotency_error"));
    let malformed = keyed("not a key!", SEED_BODY).await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert_eq!(
        malformed.json()["error"]["code"],
        json!("parameter_invalid")
    );
    assert_eq!(app.get_as(ACME_KEY, &id).await.unwrap().items.len(), 1);
}

/// A frozen cart (checkout) and a merged one are 409 cart_not_active, and stay as they were.
async fn frozen_and_merged_carts_are_stateset_conflicts(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let (frozen, merged) = super::frozen_and_merged(&app).await;
    for (id, message) in [
        (&frozen, "Cart is frozen for checkout and cannot be cleared"),
        (
            &merged,
            "Cart was merged into another cart and cannot be cleared",
        ),
    ] {
        let response = clear(&app, id, Some(ACME_KEY), "application/json", SEED_BODY).await;
        assert_eq!(response.status, 409, "{}", response.body);
        let body = response.json();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "cart_not_active");
        assert_eq!(body["error"]["message"], message);
        assert_eq!(app.get_as(ACME_KEY, id).await.unwrap().item_count, 1);
    }
}
