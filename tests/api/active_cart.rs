//! GetActiveCart (issue 17): the customer's most recently active live cart, right through
//! Create, Delete, Remove, Merge and expiry, and repaired on read when an index entry went
//! stale, on the in-memory store, a real redis-server and a real 3-master Redis Cluster.

use std::time::Duration;

use cart_service::domain::{CartId, CartPolicy};
use cart_service::pb;
use tonic::Code;

use crate::freeze::freeze;
use crate::helpers::{
    ACME_KEY, ACME_READ_KEY, Backend, GLOBEX_KEY, TestApp, assert_error, create_request, item,
    spawn_app, spawn_shim_app, spawn_with_policy,
};

on_every_store!(
    a_customer_without_carts_has_no_active_cart,
    the_most_recently_active_live_cart_is_the_active_one,
    deleted_removed_and_expired_carts_are_never_answered,
    a_stale_index_entry_is_dropped_on_read,
    another_tenant_sees_neither_the_customer_cart_nor_its_guest_cart,
);

/// A customer id no other test uses (the stores are shared).
pub fn customer() -> String {
    format!("cust-{}", CartId::generate())
}

pub async fn active_cart(app: &TestApp, customer_id: &str) -> Result<pb::Cart, tonic::Status> {
    app.client
        .clone()
        .get_active_cart(pb::GetActiveCartRequest {
            customer_id: customer_id.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// A USD cart of `customer_id` (an empty id: a guest's cart).
pub async fn cart_of(app: &TestApp, customer_id: &str, items: &[(&str, i64, i64)]) -> pb::Cart {
    let request = pb::CreateRequest {
        customer_id: customer_id.into(),
        ..create_request("", items)
    };
    app.client
        .clone()
        .create(request)
        .await
        .expect("create succeeds")
        .into_inner()
}

async fn a_customer_without_carts_has_no_active_cart(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_error(
        active_cart(&app, &customer()).await,
        Code::NotFound,
        "NO_ACTIVE_CART",
    );
    assert_error(
        active_cart(&app, "").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    // A guest cart belongs to no customer.
    cart_of(&app, "", &[("A", 1, 1)]).await;
    assert_error(
        active_cart(&app, &customer()).await,
        Code::NotFound,
        "NO_ACTIVE_CART",
    );
}

async fn the_most_recently_active_live_cart_is_the_active_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let me = customer();
    let first = cart_of(&app, &me, &[("A", 1, 100)]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = cart_of(&app, &me, &[("B", 1, 100)]).await;
    let someone_else = cart_of(&app, &customer(), &[("C", 1, 100)]).await;
    assert_eq!(active_cart(&app, &me).await.unwrap().id, second.id);

    tokio::time::sleep(Duration::from_millis(5)).await;
    app.client
        .clone()
        .add_items(pb::AddItemsRequest {
            cart_id: first.id.clone(),
            items: vec![item("A", 1, 100)],
            ..Default::default()
        })
        .await
        .unwrap();
    let active = active_cart(&app, &me).await.unwrap();
    assert_eq!(active.id, first.id, "the cart used last");
    assert_eq!(active.item_count, 2);
    assert_ne!(active.id, someone_else.id);
    // A frozen cart is live: a customer in checkout still has that cart.
    tokio::time::sleep(Duration::from_millis(5)).await;
    freeze(&app, &second.id, "checkout", 0).await.unwrap();
    let active = active_cart(&app, &me).await.unwrap();
    assert_eq!(
        (active.id.as_str(), active.status()),
        (second.id.as_str(), pb::CartStatus::Frozen)
    );
}

async fn deleted_removed_and_expired_carts_are_never_answered(backend: Backend) {
    let policy = CartPolicy {
        cart_ttl: Duration::from_secs(2),
        ..CartPolicy::default()
    };
    let app = spawn_with_policy(backend, policy).await;
    let me = customer();
    let kept = cart_of(&app, &me, &[("A", 1, 100)]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let checked_out = cart_of(&app, &me, &[("B", 1, 100)]).await;
    app.client
        .clone()
        .delete(pb::DeleteRequest {
            cart_id: checked_out.id.clone(),
            order_number: "ORD-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(active_cart(&app, &me).await.unwrap().id, kept.id);
    app.client
        .clone()
        .remove(pb::RemoveRequest {
            cart_id: kept.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_error(
        active_cart(&app, &me).await,
        Code::NotFound,
        "NO_ACTIVE_CART",
    );

    let expiring = cart_of(&app, &me, &[("C", 1, 100)]).await;
    assert_eq!(active_cart(&app, &me).await.unwrap().id, expiring.id);
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    assert_error(
        app.get(&expiring.id).await,
        Code::NotFound,
        "CART_NOT_FOUND",
    );
    assert_error(
        active_cart(&app, &me).await,
        Code::NotFound,
        "NO_ACTIVE_CART",
    );
}

/// The index is written before the cart: a Create that fails after it (here: the id is taken
/// by another customer's cart) leaves an entry naming a cart that is not the customer's,
/// which the read drops.
async fn a_stale_index_entry_is_dropped_on_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = customer();
    let owned = cart_of(&app, &owner, &[("A", 1, 100)]).await;
    let me = customer();
    let taken = pb::CreateRequest {
        customer_id: me.clone(),
        ..create_request(&owned.id, &[])
    };
    assert_error(
        app.client.clone().create(taken).await,
        Code::AlreadyExists,
        "CART_ALREADY_EXISTS",
    );
    assert_error(
        active_cart(&app, &me).await,
        Code::NotFound,
        "NO_ACTIVE_CART",
    );
    // Still right once the customer has a cart of their own, and the owner's is untouched.
    let mine = cart_of(&app, &me, &[("B", 1, 100)]).await;
    assert_eq!(active_cart(&app, &me).await.unwrap().id, mine.id);
    assert_eq!(active_cart(&app, &owner).await.unwrap().id, owned.id);
}

/// The same customer id in two tenants is two customers; a guest cart of one tenant is not
/// found by another's Merge. A read-only key reads the active cart but may not merge.
async fn another_tenant_sees_neither_the_customer_cart_nor_its_guest_cart(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let me = customer();
    let mine = pb::CreateRequest {
        customer_id: me.clone(),
        ..create_request("", &[("A", 1, 100)])
    };
    let mine = app
        .client
        .clone()
        .create(TestApp::authed(mine, ACME_KEY))
        .await
        .unwrap()
        .into_inner();
    let active_as = |key: &'static str| {
        let app = &app;
        let me = me.clone();
        async move {
            app.client
                .clone()
                .get_active_cart(TestApp::authed(
                    pb::GetActiveCartRequest { customer_id: me },
                    key,
                ))
                .await
                .map(tonic::Response::into_inner)
        }
    };
    assert_eq!(active_as(ACME_READ_KEY).await.unwrap().id, mine.id);
    assert_error(
        active_as(GLOBEX_KEY).await,
        Code::NotFound,
        "NO_ACTIVE_CART",
    );

    let guest = pb::CreateRequest {
        customer_id: String::new(),
        ..create_request("", &[("B", 1, 100)])
    };
    let guest = app
        .client
        .clone()
        .create(TestApp::authed(guest, ACME_KEY))
        .await
        .unwrap()
        .into_inner();
    let merge = |key: &'static str| {
        let request = pb::MergeRequest {
            source_cart_id: guest.id.clone(),
            customer_id: me.clone(),
            mode: pb::MergeMode::Sum as i32,
            request_id: "login".into(),
        };
        let mut client = app.client.clone();
        async move { client.merge(TestApp::authed(request, key)).await }
    };
    assert_error(merge(GLOBEX_KEY).await, Code::NotFound, "CART_NOT_FOUND");
    assert_error(
        merge(ACME_READ_KEY).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_eq!(
        app.get_as(ACME_KEY, &guest.id).await.unwrap().status(),
        pb::CartStatus::Active
    );
    let merged = merge(ACME_KEY).await.unwrap().into_inner();
    assert_eq!(merged.cart.unwrap().id, mine.id);
}
