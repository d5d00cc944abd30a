//! Request ids (idempotency keys) in the store contract: a retry replays the first outcome and
//! changes nothing, another payload under the same id is refused, and duplicates sent at once
//! apply once. Run against memory, a real redis-server and a real 3-master Cluster.

use std::time::Duration;

use cart_service::domain::CartPolicy;
use cart_service::pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{
    Backend, TestApp, assert_error, create_request, item, spawn_app, spawn_with_policy,
};

on_every_store!(
    a_retried_add_returns_the_first_reply_and_adds_once,
    a_replayed_clear_does_not_empty_items_added_after_it,
    a_replayed_remove_answers_as_the_first_remove,
    a_retried_create_without_id_returns_the_same_cart,
    a_remembered_refusal_is_replayed_even_after_the_cart_changed,
    another_payload_or_rpc_under_the_same_request_id_is_refused,
    malformed_request_ids_are_invalid_and_change_nothing,
    concurrent_duplicates_apply_once_and_get_one_reply,
    request_ids_are_forgotten_after_their_retention,
);

fn add_request(cart_id: &str, request_id: &str, items: &[(&str, i64, i64)]) -> pb::AddItemsRequest {
    pb::AddItemsRequest {
        cart_id: cart_id.into(),
        items: items.iter().map(|&(s, q, p)| item(s, q, p)).collect(),
        expected_version: 0,
        request_id: request_id.into(),
    }
}

fn clear_request(cart_id: &str, request_id: &str) -> pb::ClearRequest {
    pb::ClearRequest {
        cart_id: cart_id.into(),
        reason: "customer_requested".into(),
        request_id: request_id.into(),
        ..Default::default()
    }
}

async fn add(app: &TestApp, request: pb::AddItemsRequest) -> Result<pb::Cart, tonic::Status> {
    app.client
        .clone()
        .add_items(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn clear(
    app: &TestApp,
    request: pb::ClearRequest,
) -> Result<pb::ClearResponse, tonic::Status> {
    app.client
        .clone()
        .clear(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn create(app: &TestApp, request: pb::CreateRequest) -> Result<pb::Cart, tonic::Status> {
    app.client
        .clone()
        .create(request)
        .await
        .map(tonic::Response::into_inner)
}

/// The lines of a cart as (sku, quantity).
fn lines(cart: &pb::Cart) -> Vec<(String, i64)> {
    cart.items
        .iter()
        .map(|l| (l.sku.clone(), l.quantity))
        .collect()
}

async fn a_retried_add_returns_the_first_reply_and_adds_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let request = add_request(&cart.id, "add-0001", &[("A", 2, 100), ("B", 1, 50)]);
    let first = add(&app, request.clone()).await.unwrap();
    let again = add(&app, request).await.unwrap();
    assert_eq!(first.version, 2);
    assert_eq!(again, first, "a retry must get the first reply");
    let now = app.get(&cart.id).await.unwrap();
    assert_eq!(now.version, 2);
    assert_eq!(lines(&now), [("A".into(), 3), ("B".into(), 1)]);
}

async fn a_replayed_clear_does_not_empty_items_added_after_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 2, 100), ("B", 1, 50)]).await;
    let first = clear(&app, clear_request(&cart.id, "clear-1"))
        .await
        .unwrap();
    assert_eq!(first.items_cleared, 3);
    add(&app, add_request(&cart.id, "", &[("C", 4, 10)]))
        .await
        .unwrap();
    let replay = clear(&app, clear_request(&cart.id, "clear-1"))
        .await
        .unwrap();
    assert_eq!(replay, first, "same version, totals and items_cleared");
    let now = app.get(&cart.id).await.unwrap();
    assert_eq!(lines(&now), [("C".into(), 4)], "the later item survived");
    assert_eq!(now.version, 3);
}

async fn a_replayed_remove_answers_as_the_first_remove(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 3, 100)]).await;
    let remove = |request_id: &str| pb::RemoveRequest {
        cart_id: cart.id.clone(),
        request_id: request_id.into(),
        ..Default::default()
    };
    let first = app.client.clone().remove(remove("rm-1")).await.unwrap();
    let replay = app.client.clone().remove(remove("rm-1")).await.unwrap();
    assert_eq!(replay.into_inner(), first.into_inner());
    assert_error(
        app.client.clone().remove(remove("rm-2")).await,
        Code::NotFound,
        "CART_NOT_FOUND",
    );
    assert_error(app.get(&cart.id).await, Code::NotFound, "CART_NOT_FOUND");
}

async fn a_retried_create_without_id_returns_the_same_cart(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut request = create_request("", &[("A", 1, 100)]);
    request.request_id = "create-3f9a".into();
    let first = create(&app, request.clone()).await.unwrap();
    let again = create(&app, request.clone()).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(first.id.len(), 24);
    // Once the cart has moved on, the retry still answers as the Create did.
    add(&app, add_request(&first.id, "", &[("B", 1, 1)]))
        .await
        .unwrap();
    let late = create(&app, request.clone()).await.unwrap();
    assert_eq!(late, first);
    assert_eq!(app.get(&first.id).await.unwrap().version, 2);
    // Another request id makes another cart; the same id with another payload is refused.
    let mut other = request.clone();
    other.request_id = "create-other".into();
    let second = create(&app, other).await.unwrap();
    assert_ne!(second.id, first.id);
    request.currency = "EUR".into();
    assert_error(
        create(&app, request).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );
}

async fn a_remembered_refusal_is_replayed_even_after_the_cart_changed(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let stale = pb::AddItemsRequest {
        expected_version: 7,
        ..add_request(&cart.id, "stale-1", &[("B", 1, 100)])
    };
    assert_error(
        add(&app, stale.clone()).await,
        Code::Aborted,
        "VERSION_MISMATCH",
    );
    // Bring the cart to version 7: a fresh request would now pass the guard.
    for _ in 0..6 {
        add(&app, add_request(&cart.id, "", &[("A", 1, 100)]))
            .await
            .unwrap();
    }
    assert_error(add(&app, stale).await, Code::Aborted, "VERSION_MISMATCH");
    let after = app.get(&cart.id).await.unwrap();
    assert_eq!(after.version, 7);
    assert_eq!(lines(&after), [("A".into(), 7)]);
}

async fn another_payload_or_rpc_under_the_same_request_id_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    add(&app, add_request(&cart.id, "shared-id", &[("B", 1, 100)]))
        .await
        .unwrap();
    let before = app.get(&cart.id).await.unwrap();
    let status = assert_error(
        add(&app, add_request(&cart.id, "shared-id", &[("B", 2, 100)])).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );
    let violations = status.get_error_details().bad_request().cloned().unwrap();
    assert_eq!(violations.field_violations[0].field, "request_id");
    assert_error(
        clear(&app, clear_request(&cart.id, "shared-id")).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );
    let after = app.get(&cart.id).await.unwrap();
    assert_eq!(
        (after.version, lines(&after)),
        (before.version, lines(&before))
    );
}

async fn malformed_request_ids_are_invalid_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    for bad in ["has space", "dot.ted", &"r".repeat(65), "ünïcode"] {
        let status = assert_error(
            clear(&app, clear_request(&cart.id, bad)).await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
        let fields: Vec<_> = status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(fields, ["request_id"], "{bad:?}");
    }
    let now = app.get(&cart.id).await.unwrap();
    assert_eq!((now.version, lines(&now)), (1, vec![("A".into(), 1)]));
}

async fn concurrent_duplicates_apply_once_and_get_one_reply(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[]).await;
    let request = add_request(&cart.id, "dup-7d2c", &[("A", 2, 100)]);
    let mut calls = Vec::new();
    for _ in 0..8 {
        let mut client = app.new_client().await;
        let request = request.clone();
        calls.push(tokio::spawn(async move {
            client.add_items(request).await.map(|r| r.into_inner())
        }));
    }
    let mut replies = Vec::new();
    for call in calls {
        replies.push(call.await.unwrap().expect("every duplicate is answered"));
    }
    assert!(replies.iter().all(|r| r == &replies[0]), "{replies:#?}");
    let now = app.get(&cart.id).await.unwrap();
    assert_eq!((now.version, lines(&now)), (2, vec![("A".into(), 2)]));
}

async fn request_ids_are_forgotten_after_their_retention(backend: Backend) {
    let policy = CartPolicy {
        request_id_ttl: Duration::from_millis(600),
        ..CartPolicy::default()
    };
    let app = spawn_with_policy(backend, policy).await;
    let cart = app.create_cart(&[]).await;
    let request = add_request(&cart.id, "short-lived", &[("A", 1, 100)]);
    add(&app, request.clone()).await.unwrap();
    add(&app, request.clone()).await.unwrap();
    assert_eq!(lines(&app.get(&cart.id).await.unwrap()), [("A".into(), 1)]);
    tokio::time::sleep(Duration::from_millis(900)).await;
    // Past the window the id is new again: the request applies a second time.
    let late = add(&app, request).await.unwrap();
    assert_eq!(lines(&late), [("A".into(), 2)]);
}
