//! VTEX: `POST /api/checkout/pub/orderForm/{orderFormId}/items/removeAll` → Clear.

use cart_service::http::vtex::NOT_FOUND_PAGE;
use serde_json::json;

use crate::helpers::{ACME_KEY, Backend, HttpResponse, TestApp, http, spawn_shim_app};

on_both_stores!(
    remove_all_answers_the_emptied_order_form,
    every_refusal_in_vtex_shape,
    a_client_chosen_id_is_no_capability,
    frozen_and_merged_carts_are_vtex_conflicts,
);

const ACME_HOST: &str = "cosmetics2.vtexcommercestable.com.br";

async fn remove_all(app: &TestApp, host: &str, target: &str, body: &str) -> HttpResponse {
    http(
        app.http_addr,
        "POST",
        target,
        &[("Host", host), ("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
}

fn path(order_form_id: &str) -> String {
    format!("/api/checkout/pub/orderForm/{order_form_id}/items/removeAll")
}

/// removeAll with `{}` empties the cart and answers the orderForm, by Host or by `an=`.
async fn remove_all_answers_the_emptied_order_form(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let cart = app
        .create_cart_as(ACME_KEY, "", &[("5", 1, 4490), ("6", 2, 100)])
        .await;
    let response = remove_all(&app, ACME_HOST, &path(&cart.id), "{}").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let form = response.json();
    assert_eq!(form["orderFormId"], cart.id.as_str());
    assert_eq!(form["items"], json!([]));
    assert_eq!(form["value"], 0);
    assert_eq!(form["totalizers"], json!([]));
    assert_eq!(form["messages"], json!([]));
    assert_eq!(form["storePreferencesData"]["currencyCode"], "USD");
    let read = app.get_as(ACME_KEY, &cart.id).await.unwrap();
    assert!(read.items.is_empty() && read.cleared_at.is_some());

    // The account may also come from `an=` when the Host names no store.
    let other = app.create_cart_as(ACME_KEY, "", &[("5", 1, 4490)]).await;
    let response = remove_all(
        &app,
        "localhost",
        &format!("{}?an=cosmetics2", path(&other.id)),
        "{}",
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
}

/// Bodies other than `{}`, unknown or foreign orderFormIds, unknown URLs: VTEX's errors, nothing changed.
async fn every_refusal_in_vtex_shape(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let cart = app.create_cart_as(ACME_KEY, "", &[("5", 1, 4490)]).await;
    let error = |response: HttpResponse| {
        let body = response.json();
        assert_eq!(body["fields"], json!({}));
        assert!(!body["operationId"].as_str().unwrap().is_empty());
        (
            response.status,
            body["error"]["code"].as_str().unwrap().to_owned(),
            body["error"]["message"].as_str().unwrap().to_owned(),
        )
    };
    let bad_request = (400, "001".to_owned(), "Bad Request".to_owned());
    let invalid_cart = (400, "ORD002".to_owned(), "Carrinho inválido".to_owned());

    for body in ["", "{\"a\":1}", "[]", "{ }x"] {
        assert_eq!(
            error(remove_all(&app, ACME_HOST, &path(&cart.id), body).await),
            bad_request,
            "{body:?}"
        );
    }
    assert_eq!(
        error(remove_all(&app, ACME_HOST, &path("ffffffffffffffffffffffff"), "{}").await),
        invalid_cart
    );
    assert_eq!(
        error(remove_all(&app, ACME_HOST, &path("not%20an%20id"), "{}").await),
        invalid_cart
    );
    // Another store, same orderFormId: the cart does not exist there.
    assert_eq!(
        error(
            remove_all(
                &app,
                "globexstore.vtexcommercestable.com.br",
                &path(&cart.id),
                "{}"
            )
            .await
        ),
        invalid_cart
    );

    for (method, target) in [
        (
            "POST",
            "/api/checkout/pub/orderForm/x/items/removeEverything".to_owned(),
        ),
        ("GET", path(&cart.id)),
        ("GET", "/api/checkout/unknown".to_owned()),
    ] {
        let response = http(app.http_addr, method, &target, &[("Host", ACME_HOST)], b"").await;
        assert_eq!(response.status, 404, "{method} {target}");
        assert!(
            response
                .header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(response.body, NOT_FOUND_PAGE);
    }
    let huge = format!("{{{}}}", " ".repeat(70 * 1024));
    assert_eq!(
        remove_all(&app, ACME_HOST, &path(&cart.id), &huge)
            .await
            .status,
        413
    );

    let read = app.get_as(ACME_KEY, &cart.id).await.unwrap();
    assert_eq!((read.version, read.item_count), (1, 1), "nothing changed");
}

/// A cart created with a client-chosen id (`c1`, `cart-42`) cannot be cleared through the
/// public route, whoever guesses the id: ORD002 and nothing changes. Ids the service chose
/// (random, or derived from a request id with the hmac secret) are capabilities.
async fn a_client_chosen_id_is_no_capability(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let invalid_cart = |response: HttpResponse| {
        assert_eq!(response.status, 400, "{}", response.body);
        assert_eq!(response.json()["error"]["code"], "ORD002");
    };
    for chosen in ["c1", "cart-42"] {
        let cart = app
            .create_cart_as(ACME_KEY, chosen, &[("5", 1, 4490)])
            .await;
        invalid_cart(remove_all(&app, ACME_HOST, &path(chosen), "{}").await);
        let read = app.get_as(ACME_KEY, chosen).await.unwrap();
        assert_eq!(
            (read.version, read.item_count, read.cleared_at),
            (cart.version, 1, None),
            "{chosen}: nothing changed"
        );
    }

    let derived = app
        .client
        .clone()
        .create(TestApp::authed(
            cart_service::pb::CreateRequest {
                currency: "USD".into(),
                request_id: "checkout-1".into(),
                items: vec![crate::helpers::item("5", 1, 4490)],
                ..Default::default()
            },
            ACME_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    let response = remove_all(&app, ACME_HOST, &path(&derived.id), "{}").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["items"], json!([]));
}

/// removeAll of a frozen cart (checkout) or a merged one: 409 CHK0409, nothing removed.
async fn frozen_and_merged_carts_are_vtex_conflicts(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let (frozen, merged) = super::frozen_and_merged(&app).await;
    for (id, message) in [
        (&frozen, "Carrinho em checkout"),
        (&merged, "Carrinho unido ao carrinho do cliente"),
    ] {
        let response = remove_all(&app, ACME_HOST, &path(id), "{}").await;
        assert_eq!(response.status, 409, "{}", response.body);
        let body = response.json();
        assert_eq!(body["error"]["code"], "CHK0409");
        assert_eq!(body["error"]["message"], message);
        assert_eq!(app.get_as(ACME_KEY, id).await.unwrap().item_count, 1);
    }
}
