//! Fabric XM: `PATCH /api-cart/cart/{cartId}/orderNumber` → Delete.

use tonic::Code;

use crate::helpers::{
    ACME_KEY, ACME_READ_KEY, Backend, GLOBEX_KEY, HttpResponse, TestApp, assert_error, http,
    spawn_shim_app,
};

on_both_stores!(
    delete_answers_the_seed_deleted_cart,
    every_documented_error_in_xm_shape,
    an_idempotency_key_replays_the_first_delete,
    a_frozen_cart_is_deleted_and_a_merged_one_is_a_conflict
);

/// The header exactly as XM's documentation prints it (its account lacks an opening quote).
const SEED_SITE_CONTEXT: &str = r#"{ "date": "2020-08-28T02:35:27.787Z", "channel": 12, "account": 5f493c9f30ec2a0007a94fc8", "stage": "sandbox" }"#;
const ACME_SITE_CONTEXT: &str = r#"{"date":"2020-08-28T02:35:27.787Z","channel":12,"account":"5f493c9f30ec2a0007a94fc8","stage":"sandbox"}"#;
const GLOBEX_SITE_CONTEXT: &str = r#"{"account":"aaaaaaaaaaaaaaaaaaaaaaaa"}"#;

async fn patch(
    app: &TestApp,
    cart_id: &str,
    site: Option<&str>,
    key: Option<&str>,
    body: &str,
) -> HttpResponse {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(site) = site {
        headers.push(("x-site-context", site));
    }
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer.as_str()));
    }
    http(
        app.http_addr,
        "PATCH",
        &format!("/api-cart/cart/{cart_id}/orderNumber"),
        &headers,
        body.as_bytes(),
    )
    .await
}

const SEED_BODY: &str = r#"{ "orderNumber": "1234-1234-12345" }"#;

/// The seed's request (its header verbatim) deletes the cart and answers XM's deleted cart.
async fn delete_answers_the_seed_deleted_cart(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let cart = app
        .create_cart_as(ACME_KEY, "", &[("1538910", 2, 900)])
        .await;
    assert_eq!(cart.id.len(), 24);

    let response = patch(
        &app,
        &cart.id,
        Some(SEED_SITE_CONTEXT),
        Some(ACME_KEY),
        SEED_BODY,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let body = response.json();
    assert_eq!(body["_id"], cart.id.as_str());
    assert_eq!(body["deleted"], true);
    assert_eq!(body["orderNumber"], "1234-1234-12345");
    assert_eq!(
        body["totalAmount"],
        serde_json::json!({ "currency": "USD", "amount": 1800 })
    );
    assert_eq!(body["quantity"], 2);
    let item = &body["items"][0];
    assert_eq!(item["price"]["base"], 900);
    assert_eq!(item["price"]["sale"], 0);
    assert_eq!(item["price"]["currency"], "USD");
    assert_eq!(
        item["price"]["discount"],
        serde_json::json!({ "discountAmount": 0, "price": 0, "promosApplied": [] })
    );
    assert_eq!(item["quantity"], 2);
    assert_eq!(item["sku"], "1538910");
    assert_eq!(item["title"], "Item 1538910");
    assert_eq!(item["lineItemId"], 1);
    assert_eq!(
        item["totalPrice"],
        serde_json::json!({ "currency": "USD", "amount": 1800 })
    );
    assert_eq!(item["_id"], item["id"]);
    assert!(item["createdAt"].as_str().unwrap().ends_with('Z'));

    let read = app.get_as(ACME_KEY, &cart.id).await.unwrap();
    assert_eq!(read.status(), cart_service::pb::CartStatus::Deleted);
    assert_eq!(read.order_number, "1234-1234-12345");

    // A retry of the same checkout gets the same answer.
    let again = patch(
        &app,
        &cart.id,
        Some(ACME_SITE_CONTEXT),
        Some(ACME_KEY),
        SEED_BODY,
    )
    .await;
    assert_eq!((again.status, again.json()), (200, body));
}

/// Every documented XM error, auth failures and cross-tenant attempts, each changing nothing.
async fn every_documented_error_in_xm_shape(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let cart = app.create_cart_as(ACME_KEY, "", &[("A", 1, 100)]).await;
    let id = cart.id.as_str();
    let error = |response: HttpResponse| (response.status, response.json());
    let validation =
        |message: &str| serde_json::json!({ "code": "REQUEST_VALIDATION", "message": message });

    assert_eq!(
        error(
            patch(
                &app,
                "60807478d14ffd000843db2",
                Some(ACME_SITE_CONTEXT),
                Some(ACME_KEY),
                SEED_BODY
            )
            .await
        ),
        (
            400,
            validation("Invalid data in path: /cartId should NOT be shorter than 24 characters")
        )
    );
    assert_eq!(
        error(
            patch(
                &app,
                "60807478d14ffd000843db2cc",
                Some(ACME_SITE_CONTEXT),
                Some(ACME_KEY),
                SEED_BODY
            )
            .await
        ),
        (
            400,
            validation("Invalid data in path: /cartId should NOT be longer than 24 characters")
        )
    );
    assert_eq!(
        error(patch(&app, id, Some(ACME_SITE_CONTEXT), Some(ACME_KEY), "{}").await),
        (
            400,
            validation("Invalid data in body: should have required property 'orderNumber'")
        )
    );
    assert_eq!(
        error(patch(&app, id, Some("{not json"), Some(ACME_KEY), SEED_BODY).await).0,
        400
    );
    assert_eq!(
        error(patch(&app, id, None, Some(ACME_KEY), SEED_BODY).await).0,
        400
    );
    let unknown_account = r#"{"account":"ffffffffffffffffffffffff"}"#;
    let (status, body) =
        error(patch(&app, id, Some(unknown_account), Some(ACME_KEY), SEED_BODY).await);
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("INTERNAL_SERVER_ERROR"))
    );
    assert_eq!(
        error(patch(&app, id, Some(ACME_SITE_CONTEXT), None, SEED_BODY).await).0,
        401
    );
    assert_eq!(
        error(
            patch(
                &app,
                id,
                Some(ACME_SITE_CONTEXT),
                Some(GLOBEX_KEY),
                SEED_BODY
            )
            .await
        )
        .0,
        401
    );
    assert_eq!(
        error(
            patch(
                &app,
                id,
                Some(ACME_SITE_CONTEXT),
                Some(ACME_READ_KEY),
                SEED_BODY
            )
            .await
        )
        .0,
        403
    );
    assert_eq!(
        error(
            patch(
                &app,
                "ffffffffffffffffffffffff",
                Some(ACME_SITE_CONTEXT),
                Some(ACME_KEY),
                SEED_BODY
            )
            .await
        ),
        (
            404,
            serde_json::json!({ "code": "CART_NOT_FOUND", "message": "Cart not found." })
        )
    );
    // globex, fully authenticated, cannot see acme's cart.
    assert_eq!(
        error(
            patch(
                &app,
                id,
                Some(GLOBEX_SITE_CONTEXT),
                Some(GLOBEX_KEY),
                SEED_BODY
            )
            .await
        )
        .0,
        404
    );
    let response = http(
        app.http_addr,
        "GET",
        &format!("/api-cart/cart/{id}/orderNumber"),
        &[],
        b"",
    )
    .await;
    assert_eq!(error(response).0, 405);

    let read = app.get_as(ACME_KEY, id).await.unwrap();
    assert_eq!(
        (read.status(), read.version),
        (cart_service::pb::CartStatus::Active, 1),
        "nothing changed"
    );

    assert_eq!(
        patch(&app, id, Some(ACME_SITE_CONTEXT), Some(ACME_KEY), SEED_BODY)
            .await
            .status,
        200
    );
    let (status, body) = error(
        patch(
            &app,
            id,
            Some(ACME_SITE_CONTEXT),
            Some(ACME_KEY),
            r#"{"orderNumber":"OTHER-1"}"#,
        )
        .await,
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("CART_ALREADY_DELETED"))
    );
    assert_error(
        app.get_as(GLOBEX_KEY, id).await,
        Code::NotFound,
        "CART_NOT_FOUND",
    );
}

/// A PATCH retried with its `Idempotency-Key` answers as the first did; the key on another
/// order number is a 409, and a malformed key an XM validation error, changing nothing.
async fn an_idempotency_key_replays_the_first_delete(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let cart = app.create_cart_as(ACME_KEY, "", &[("SKU-1", 1, 900)]).await;
    let keyed = |key: &'static str, body: &'static str| {
        let app = &app;
        let id = cart.id.clone();
        async move {
            http(
                app.http_addr,
                "PATCH",
                &format!("/api-cart/cart/{id}/orderNumber"),
                &[
                    ("Content-Type", "application/json"),
                    ("x-site-context", ACME_SITE_CONTEXT),
                    ("Authorization", &format!("Bearer {ACME_KEY}")),
                    ("Idempotency-Key", key),
                ],
                body.as_bytes(),
            )
            .await
        }
    };
    let malformed = keyed("bad key", SEED_BODY).await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert_eq!(malformed.json()["code"], "REQUEST_VALIDATION");
    assert!(
        malformed.body.contains("Idempotency-Key"),
        "{}",
        malformed.body
    );
    assert_eq!(app.get_as(ACME_KEY, &cart.id).await.unwrap().version, 1);

    let first = keyed("order-key-1", SEED_BODY).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let replay = keyed("order-key-1", SEED_BODY).await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(replay.json(), first.json());
    let reused = keyed("order-key-1", r#"{ "orderNumber": "9999" }"#).await;
    assert_eq!(reused.status, 409, "{}", reused.body);
    assert_eq!(reused.json()["code"], "IDEMPOTENCY_KEY_REUSED");
    let tombstone = app.get_as(ACME_KEY, &cart.id).await.unwrap();
    assert_eq!(tombstone.order_number, "1234-1234-12345");
}

/// Checkout ends with the delete of a frozen cart; a merged cart is 409 CART_MERGED.
async fn a_frozen_cart_is_deleted_and_a_merged_one_is_a_conflict(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let (frozen, merged) = super::frozen_and_merged(&app).await;
    let response = patch(
        &app,
        &frozen,
        Some(ACME_SITE_CONTEXT),
        Some(ACME_KEY),
        SEED_BODY,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let response = patch(
        &app,
        &merged,
        Some(ACME_SITE_CONTEXT),
        Some(ACME_KEY),
        SEED_BODY,
    )
    .await;
    assert_eq!(response.status, 409, "{}", response.body);
    let body = response.json();
    assert_eq!(body["code"], "CART_MERGED", "{body}");
    assert_eq!(
        app.get_as(ACME_KEY, &merged).await.unwrap().status(),
        cart_service::pb::CartStatus::Merged
    );
}
