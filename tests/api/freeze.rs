//! Freeze and Unfreeze (issue 17): a frozen cart holds still while payment runs, on the
//! in-memory store, a real redis-server and a real 3-master Redis Cluster.

use std::time::Duration;

use cart_service::domain::CartPolicy;
use cart_service::pb;
use tonic::Code;

use crate::helpers::{
    Backend, TestApp, assert_error, eventually, item, spawn_app, spawn_with_policy,
};

on_every_store!(
    a_frozen_cart_refuses_every_change_of_its_content_and_changes_nothing,
    freeze_and_unfreeze_are_no_ops_when_the_cart_is_already_there,
    a_frozen_cart_is_read_removed_and_deleted,
    freeze_checks_the_version_and_the_cart,
    a_freeze_ends_by_itself_after_the_freeze_ttl,
);

pub async fn freeze(
    app: &TestApp,
    cart_id: &str,
    reason: &str,
    expected_version: i64,
) -> Result<pb::Cart, tonic::Status> {
    app.client
        .clone()
        .freeze(pb::FreezeRequest {
            cart_id: cart_id.into(),
            reason: reason.into(),
            expected_version,
            request_id: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn unfreeze(app: &TestApp, cart_id: &str) -> Result<pb::Cart, tonic::Status> {
    app.client
        .clone()
        .unfreeze(pb::UnfreezeRequest {
            cart_id: cart_id.into(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Each change of a cart's content, on `cart_id`, answered `code`/`reason`.
pub async fn assert_content_is_held(app: &TestApp, cart: &pb::Cart, code: Code, reason: &str) {
    let mut client = app.client.clone();
    let id = cart.id.clone();
    assert_error(
        client
            .add_items(pb::AddItemsRequest {
                cart_id: id.clone(),
                items: vec![item("NEW", 1, 10)],
                ..Default::default()
            })
            .await,
        code,
        reason,
    );
    let line_id = cart
        .items
        .first()
        .map(|l| l.line_id.clone())
        .unwrap_or_default();
    assert_error(
        client
            .update_items(pb::UpdateItemsRequest {
                cart_id: id.clone(),
                updates: vec![pb::ItemUpdate {
                    line_id,
                    quantity: 5,
                }],
                ..Default::default()
            })
            .await,
        code,
        reason,
    );
    assert_error(
        client
            .apply_coupon(pb::ApplyCouponRequest {
                cart_id: id.clone(),
                code: "SAVE5".into(),
                amount: 5,
                ..Default::default()
            })
            .await,
        code,
        reason,
    );
    assert_error(
        client
            .clear(pb::ClearRequest {
                cart_id: id.clone(),
                reason: "r".into(),
                ..Default::default()
            })
            .await,
        code,
        reason,
    );
}

/// A Get's view of a cart without the fields a read moves.
fn content(cart: &pb::Cart) -> pb::Cart {
    pb::Cart {
        last_activity_at: None,
        expires_at: None,
        ..cart.clone()
    }
}

async fn a_frozen_cart_refuses_every_change_of_its_content_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 2, 100)]).await;
    let frozen = freeze(&app, &cart.id, "checkout", cart.version)
        .await
        .unwrap();
    assert_eq!(frozen.status(), pb::CartStatus::Frozen);
    assert_eq!(frozen.freeze_reason, "checkout");
    assert!(frozen.frozen_at.is_some());
    assert_eq!(frozen.version, cart.version + 1);
    assert_eq!((frozen.item_count, frozen.total), (2, 200));

    assert_content_is_held(&app, &frozen, Code::FailedPrecondition, "CART_FROZEN").await;
    let after = app.get(&cart.id).await.unwrap();
    assert_eq!(
        content(&after),
        content(&frozen),
        "the refusals changed nothing"
    );
}

async fn freeze_and_unfreeze_are_no_ops_when_the_cart_is_already_there(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let same = unfreeze(&app, &cart.id).await.unwrap();
    assert_eq!(
        (same.status(), same.version),
        (pb::CartStatus::Active, cart.version),
        "Unfreeze of an active cart"
    );
    let frozen = freeze(&app, &cart.id, "checkout", 0).await.unwrap();
    // Again, even with a version that is no longer current: the cart is as asked.
    let again = freeze(&app, &cart.id, "other reason", cart.version)
        .await
        .unwrap();
    assert_eq!(content(&again), content(&frozen), "Freeze of a frozen cart");
    assert_eq!(again.freeze_reason, "checkout");

    let open = unfreeze(&app, &cart.id).await.unwrap();
    assert_eq!(open.status(), pb::CartStatus::Active);
    assert_eq!(open.version, frozen.version + 1);
    assert!(open.frozen_at.is_none() && open.freeze_reason.is_empty());
    let added = app
        .client
        .clone()
        .add_items(pb::AddItemsRequest {
            cart_id: cart.id.clone(),
            items: vec![item("A", 1, 100)],
            ..Default::default()
        })
        .await
        .expect("an unfrozen cart takes items")
        .into_inner();
    assert_eq!(added.item_count, 2);
}

async fn a_frozen_cart_is_read_removed_and_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    // Checkout ends with Delete.
    let cart = app.create_cart(&[("A", 2, 100)]).await;
    freeze(&app, &cart.id, "checkout", 0).await.unwrap();
    assert_eq!(
        app.get(&cart.id).await.unwrap().status(),
        pb::CartStatus::Frozen
    );
    let deleted = app
        .client
        .clone()
        .delete(pb::DeleteRequest {
            cart_id: cart.id.clone(),
            order_number: "ORD-7".into(),
            ..Default::default()
        })
        .await
        .expect("Delete ends a checkout")
        .into_inner()
        .cart
        .unwrap();
    assert_eq!(deleted.status(), pb::CartStatus::Deleted);
    assert_eq!(deleted.item_count, 2);
    assert_error(
        freeze(&app, &cart.id, "again", 0).await,
        Code::FailedPrecondition,
        "CART_DELETED",
    );
    // Remove ends the session of a frozen cart too.
    let other = app.create_cart(&[("B", 3, 10)]).await;
    freeze(&app, &other.id, "checkout", 0).await.unwrap();
    let removed = app
        .client
        .clone()
        .remove(pb::RemoveRequest {
            cart_id: other.id.clone(),
            ..Default::default()
        })
        .await
        .expect("Remove works on a frozen cart")
        .into_inner();
    assert_eq!(removed.items_removed, 3);
    assert_error(app.get(&other.id).await, Code::NotFound, "CART_NOT_FOUND");
}

async fn freeze_checks_the_version_and_the_cart(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    assert_error(
        freeze(&app, &cart.id, "checkout", cart.version + 5).await,
        Code::Aborted,
        "VERSION_MISMATCH",
    );
    assert_eq!(
        app.get(&cart.id).await.unwrap().status(),
        pb::CartStatus::Active
    );
    assert_error(
        freeze(&app, "no-such-cart", "checkout", 0).await,
        Code::NotFound,
        "CART_NOT_FOUND",
    );
    assert_error(
        freeze(&app, &cart.id, "bad\u{1}reason", 0).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
}

async fn a_freeze_ends_by_itself_after_the_freeze_ttl(backend: Backend) {
    let policy = CartPolicy {
        freeze_ttl: Duration::from_millis(600),
        ..CartPolicy::default()
    };
    let app = spawn_with_policy(backend, policy).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let frozen = freeze(&app, &cart.id, "checkout", 0).await.unwrap();
    assert_content_is_held(&app, &frozen, Code::FailedPrecondition, "CART_FROZEN").await;
    eventually(Duration::from_secs(5), "the freeze ends", || async {
        app.get(&cart.id).await.unwrap().status() == pb::CartStatus::Active
    })
    .await;
    let thawed = app.get(&cart.id).await.unwrap();
    assert!(thawed.frozen_at.is_none() && thawed.freeze_reason.is_empty());
    let added = app
        .client
        .clone()
        .add_items(pb::AddItemsRequest {
            cart_id: cart.id.clone(),
            items: vec![item("A", 1, 100)],
            ..Default::default()
        })
        .await
        .expect("an abandoned checkout's cart takes items again")
        .into_inner();
    assert_eq!(
        (added.item_count, added.status()),
        (2, pb::CartStatus::Active)
    );
    // And freezes again, for a new checkout.
    let again = freeze(&app, &cart.id, "checkout 2", 0).await.unwrap();
    assert_eq!(again.status(), pb::CartStatus::Frozen);
    assert_eq!(again.version, added.version + 1);
}
