//! The store contract: every RPC's semantics and every domain error, over real gRPC, run
//! against the in-memory store, a real redis-server and a real 3-master Redis Cluster.

use std::time::Duration;

use cart_service::auth::{CartTokens, DEV_HMAC_SECRET};
use cart_service::domain::{CartId, CartPolicy, Limits, LineDescription, LineId, Sku, TenantId};
use cart_service::pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Backend, TestApp, assert_error, item, spawn_app, spawn_with_policy};

on_every_store!(
    create_returns_an_active_cart_with_derived_totals_and_hmac,
    create_with_a_taken_id_is_already_exists,
    create_with_bad_fields_reports_every_violation_and_stores_nothing,
    get_of_an_unknown_cart_is_not_found,
    add_items_adds_to_the_line_of_a_known_sku,
    update_items_sets_quantities_and_zero_removes_the_line,
    update_of_an_unknown_line_is_not_found_and_changes_nothing,
    apply_coupon_discounts_at_most_the_subtotal,
    clear_empties_the_cart_and_keeps_its_identity,
    clear_can_preserve_coupons,
    clear_of_an_empty_cart_succeeds_with_nothing_cleared,
    remove_forgets_every_trace_of_the_cart,
    delete_leaves_a_readable_tombstone_that_refuses_mutations,
    delete_is_idempotent_for_its_order_number_only,
    version_mismatch_is_aborted_and_changes_nothing,
    currency_mismatch_is_a_failed_precondition,
    limits_are_enforced_without_side_effects,
    a_cart_is_bounded_in_bytes_at_the_same_point_on_every_store,
    every_access_restarts_the_cart_lifetime,
    tombstones_expire_after_their_retention,
);

fn hmac_of(cart_id: &str) -> String {
    CartTokens::new(DEV_HMAC_SECRET.as_bytes()).sign(
        &TenantId::default_tenant(),
        &CartId::parse(cart_id).unwrap(),
    )
}

fn seconds(ts: &Option<prost_types::Timestamp>) -> i64 {
    ts.as_ref().expect("timestamp set").seconds
}

/// Sum of line totals, to check the derived totals against.
fn line_sum(cart: &pb::Cart) -> (i64, i64) {
    let units = cart.items.iter().map(|l| l.quantity).sum();
    let money = cart.items.iter().map(|l| l.quantity * l.unit_price).sum();
    (units, money)
}

async fn add(
    app: &TestApp,
    id: &str,
    items: &[(&str, i64, i64)],
) -> Result<pb::Cart, tonic::Status> {
    app.client
        .clone()
        .add_items(pb::AddItemsRequest {
            cart_id: id.into(),
            items: items.iter().map(|&(s, q, p)| item(s, q, p)).collect(),
            expected_version: 0,
            request_id: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn update(
    app: &TestApp,
    id: &str,
    updates: &[(&str, i64)],
) -> Result<pb::Cart, tonic::Status> {
    app.client
        .clone()
        .update_items(pb::UpdateItemsRequest {
            cart_id: id.into(),
            updates: updates
                .iter()
                .map(|&(line_id, quantity)| pb::ItemUpdate {
                    line_id: line_id.into(),
                    quantity,
                })
                .collect(),
            expected_version: 0,
            request_id: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn coupon(
    app: &TestApp,
    id: &str,
    code: &str,
    amount: i64,
) -> Result<pb::Cart, tonic::Status> {
    app.client
        .clone()
        .apply_coupon(pb::ApplyCouponRequest {
            cart_id: id.into(),
            code: code.into(),
            amount,
            expected_version: 0,
            request_id: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn clear(
    app: &TestApp,
    id: &str,
    preserve_coupons: bool,
) -> Result<pb::ClearResponse, tonic::Status> {
    app.client
        .clone()
        .clear(pb::ClearRequest {
            cart_id: id.into(),
            preserve_coupons,
            reason: "customer_requested".into(),
            expected_version: 0,
            request_id: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn remove(app: &TestApp, id: &str) -> Result<pb::RemoveResponse, tonic::Status> {
    app.client
        .clone()
        .remove(pb::RemoveRequest {
            cart_id: id.into(),
            expected_version: 0,
            request_id: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn delete(app: &TestApp, id: &str, order: &str) -> Result<pb::DeleteResponse, tonic::Status> {
    app.client
        .clone()
        .delete(pb::DeleteRequest {
            cart_id: id.into(),
            order_number: order.into(),
            expected_version: 0,
            request_id: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Every mutation RPC on `id`, each expected to fail with `code` and `reason`.
async fn assert_every_mutation_fails(
    app: &TestApp,
    id: &str,
    line_id: &str,
    code: Code,
    reason: &str,
) {
    assert_error(add(app, id, &[("NEW", 1, 1)]).await, code, reason);
    assert_error(update(app, id, &[(line_id, 1)]).await, code, reason);
    assert_error(coupon(app, id, "C", 1).await, code, reason);
    assert_error(clear(app, id, false).await, code, reason);
    assert_error(remove(app, id).await, code, reason);
}

async fn create_returns_an_active_cart_with_derived_totals_and_hmac(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 2, 1250), ("B", 1, 500)]).await;

    assert_eq!(cart.id.len(), 24);
    assert!(
        cart.id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(cart.status(), pb::CartStatus::Active);
    assert_eq!(cart.version, 1);
    assert_eq!((cart.item_count, cart.unique_item_count), (3, 2));
    assert_eq!(
        (cart.subtotal, cart.discount_amount, cart.total),
        (3000, 0, 3000)
    );
    assert_eq!(cart.items[0].sku, "A");
    assert_eq!(cart.items[0].total_price, 2500);
    assert_eq!(cart.items[1].sku, "B");
    assert_eq!(
        cart.metadata.get("campaign").map(String::as_str),
        Some("spring")
    );
    assert_eq!(cart.hmac, hmac_of(&cart.id));
    let ttl = seconds(&cart.expires_at) - seconds(&cart.last_activity_at);
    assert_eq!(ttl, 90 * 24 * 3600);
    assert!(cart.cleared_at.is_none() && cart.deleted_at.is_none());

    let read = app.get(&cart.id).await.unwrap();
    assert_eq!(read.items, cart.items);
    assert_eq!(read.version, 1);
}

async fn create_with_a_taken_id_is_already_exists(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = format!("cart_{}", CartId::generate());
    let request = pb::CreateRequest {
        cart_id: id.clone(),
        currency: "EUR".into(),
        ..Default::default()
    };
    let cart = app
        .client
        .clone()
        .create(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cart.id, id);
    assert_error(
        app.client.clone().create(request).await,
        Code::AlreadyExists,
        "CART_ALREADY_EXISTS",
    );
    assert_eq!(app.get(&id).await.unwrap().currency, "EUR");
}

async fn create_with_bad_fields_reports_every_violation_and_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = CartId::generate().to_string();
    let status = assert_error(
        app.client
            .clone()
            .create(pb::CreateRequest {
                cart_id: id.clone(),
                currency: "dollars".into(),
                items: vec![item("A", 0, 100), item("B", 1, -5)],
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let details = status.get_error_details();
    let fields: Vec<_> = details
        .bad_request()
        .expect("BadRequest details")
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(
        fields,
        ["currency", "items[0].quantity", "items[1].unit_price"]
    );
    assert_error(app.get(&id).await, Code::NotFound, "CART_NOT_FOUND");

    for bad_id in ["has space", "{tag}", &"x".repeat(65)] {
        let request = pb::CreateRequest {
            cart_id: bad_id.to_owned(),
            currency: "USD".into(),
            ..Default::default()
        };
        assert_error(
            app.client.clone().create(request).await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        );
    }
}

async fn get_of_an_unknown_cart_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_error(
        app.get(CartId::generate().as_str()).await,
        Code::NotFound,
        "CART_NOT_FOUND",
    );
    assert_error(app.get("").await, Code::InvalidArgument, "INVALID_ARGUMENT");
}

async fn add_items_adds_to_the_line_of_a_known_sku(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let after = add(&app, &cart.id, &[("A", 2, 100), ("C", 4, 25), ("C", 1, 25)])
        .await
        .unwrap();

    let lines: Vec<_> = after
        .items
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity))
        .collect();
    assert_eq!(lines, [("A", 3), ("C", 5)]);
    assert_eq!(after.items[0].line_id, cart.items[0].line_id);
    assert_eq!(after.version, 2);
    assert_eq!((after.item_count, after.unique_item_count), (8, 2));
    assert_eq!(line_sum(&after), (8, 425));
    assert_eq!(after.subtotal, 425);
    assert_eq!(after.total, 425);
}

async fn update_items_sets_quantities_and_zero_removes_the_line(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100), ("B", 2, 10)]).await;
    let (a, b) = (&cart.items[0].line_id, &cart.items[1].line_id);
    let after = update(&app, &cart.id, &[(a, 7), (b, 0)]).await.unwrap();
    let lines: Vec<_> = after
        .items
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity))
        .collect();
    assert_eq!(lines, [("A", 7)]);
    assert_eq!(
        (after.subtotal, after.item_count, after.version),
        (700, 7, 2)
    );
}

async fn update_of_an_unknown_line_is_not_found_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let a = cart.items[0].line_id.clone();
    let unknown = "li_000000000000000000000000";
    assert_error(
        update(&app, &cart.id, &[(&a, 5), (unknown, 1)]).await,
        Code::NotFound,
        "LINE_ITEM_NOT_FOUND",
    );
    assert_error(
        update(&app, &cart.id, &[("not-a-line", 1)]).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_error(
        update(&app, &cart.id, &[(&a, 1), (&a, 2)]).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let read = app.get(&cart.id).await.unwrap();
    assert_eq!((read.items[0].quantity, read.version), (1, 1));
}

async fn apply_coupon_discounts_at_most_the_subtotal(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 2, 1000)]).await;
    let after = coupon(&app, &cart.id, "SPRING10", 300).await.unwrap();
    assert_eq!(
        (after.subtotal, after.discount_amount, after.total),
        (2000, 300, 1700)
    );
    let again = coupon(&app, &cart.id, "SPRING10", 500).await.unwrap();
    assert_eq!(again.applied_coupons.len(), 1);
    assert_eq!(again.discount_amount, 500);
    let big = coupon(&app, &cart.id, "HUGE", 5000).await.unwrap();
    assert_eq!((big.discount_amount, big.total), (2000, 0));
    let codes: Vec<_> = big
        .applied_coupons
        .iter()
        .map(|c| c.code.as_str())
        .collect();
    assert_eq!(codes, ["SPRING10", "HUGE"]);
    assert_error(
        coupon(&app, &cart.id, "ZERO", 0).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_error(
        coupon(&app, &cart.id, "bad code!", 1).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
}

async fn clear_empties_the_cart_and_keeps_its_identity(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 2, 100), ("B", 1, 50)]).await;
    coupon(&app, &cart.id, "TEN", 10).await.unwrap();

    let response = clear(&app, &cart.id, false).await.unwrap();
    assert_eq!(response.items_cleared, 3);
    let cleared = response.cart.unwrap();
    assert_eq!(cleared.id, cart.id);
    assert_eq!(cleared.hmac, cart.hmac);
    assert_eq!(
        (
            &cleared.customer_id,
            &cleared.session_id,
            &cleared.channel,
            &cleared.currency,
            &cleared.locale
        ),
        (
            &cart.customer_id,
            &cart.session_id,
            &cart.channel,
            &cart.currency,
            &cart.locale
        )
    );
    assert_eq!(cleared.metadata, cart.metadata);
    assert_eq!(cleared.status(), pb::CartStatus::Active);
    assert!(cleared.items.is_empty() && cleared.applied_coupons.is_empty());
    assert_eq!((cleared.item_count, cleared.unique_item_count), (0, 0));
    assert_eq!(
        (cleared.subtotal, cleared.discount_amount, cleared.total),
        (0, 0, 0)
    );
    assert!(cleared.cleared_at.is_some());
    assert_eq!(cleared.clear_reason, "customer_requested");
    assert_eq!(cleared.version, 3);
    // A later read differs only in its access time.
    let mut read = app.get(&cart.id).await.unwrap();
    read.last_activity_at = cleared.last_activity_at;
    read.expires_at = cleared.expires_at;
    assert_eq!(read, *cleared);

    // The cart is still usable after a clear.
    let refilled = add(&app, &cart.id, &[("A", 1, 100)]).await.unwrap();
    assert_eq!((refilled.item_count, refilled.version), (1, 4));
}

async fn clear_can_preserve_coupons(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    coupon(&app, &cart.id, "KEEP", 10).await.unwrap();
    let cleared = clear(&app, &cart.id, true).await.unwrap().cart.unwrap();
    assert_eq!(cleared.applied_coupons.len(), 1);
    assert_eq!((cleared.discount_amount, cleared.total), (0, 0));
    let refilled = add(&app, &cart.id, &[("B", 1, 100)]).await.unwrap();
    assert_eq!((refilled.discount_amount, refilled.total), (10, 90));
}

async fn clear_of_an_empty_cart_succeeds_with_nothing_cleared(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[]).await;
    let response = clear(&app, &cart.id, false).await.unwrap();
    assert_eq!(response.items_cleared, 0);
    assert_eq!(response.cart.unwrap().version, 2);
}

async fn remove_forgets_every_trace_of_the_cart(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 2, 100), ("B", 3, 1)]).await;
    coupon(&app, &cart.id, "TEN", 10).await.unwrap();
    let line = cart.items[0].line_id.clone();

    let removed = remove(&app, &cart.id).await.unwrap();
    assert_eq!(
        (removed.cart_id.as_str(), removed.items_removed),
        (cart.id.as_str(), 5)
    );

    assert_error(app.get(&cart.id).await, Code::NotFound, "CART_NOT_FOUND");
    assert_error(
        delete(&app, &cart.id, "O-1").await,
        Code::NotFound,
        "CART_NOT_FOUND",
    );
    assert_every_mutation_fails(&app, &cart.id, &line, Code::NotFound, "CART_NOT_FOUND").await;

    // The id is free again, and nothing of the old cart comes back.
    let request = pb::CreateRequest {
        cart_id: cart.id.clone(),
        currency: "USD".into(),
        ..Default::default()
    };
    let fresh = app
        .client
        .clone()
        .create(request)
        .await
        .unwrap()
        .into_inner();
    assert!(fresh.items.is_empty() && fresh.applied_coupons.is_empty());
    assert_eq!(fresh.version, 1);
}

async fn delete_leaves_a_readable_tombstone_that_refuses_mutations(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 2, 100)]).await;
    let deleted = delete(&app, &cart.id, "ORD-1001")
        .await
        .unwrap()
        .cart
        .unwrap();
    assert_eq!(deleted.status(), pb::CartStatus::Deleted);
    assert_eq!(deleted.order_number, "ORD-1001");
    assert!(deleted.deleted_at.is_some());
    assert_eq!(
        (deleted.item_count, deleted.total, deleted.version),
        (2, 200, 2)
    );
    assert_eq!(deleted.hmac, cart.hmac);
    let tombstone_ttl = seconds(&deleted.expires_at) - seconds(&deleted.deleted_at);
    assert_eq!(tombstone_ttl, 30 * 24 * 3600);

    assert_eq!(
        app.get(&cart.id).await.unwrap(),
        *deleted,
        "Get returns the final snapshot unchanged"
    );
    let line = cart.items[0].line_id.clone();
    assert_every_mutation_fails(
        &app,
        &cart.id,
        &line,
        Code::FailedPrecondition,
        "CART_DELETED",
    )
    .await;
    let request = pb::CreateRequest {
        cart_id: cart.id.clone(),
        currency: "USD".into(),
        ..Default::default()
    };
    assert_error(
        app.client.clone().create(request).await,
        Code::AlreadyExists,
        "CART_ALREADY_EXISTS",
    );
    assert_eq!(app.get(&cart.id).await.unwrap(), *deleted);
}

async fn delete_is_idempotent_for_its_order_number_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let first = delete(&app, &cart.id, "ORD-1").await.unwrap().cart.unwrap();
    let mut retry = pb::DeleteRequest {
        cart_id: cart.id.clone(),
        order_number: "ORD-1".into(),
        expected_version: 1,
        request_id: String::new(),
    };
    // A retry whose first attempt succeeded still carries the old expected version.
    let again = app
        .client
        .clone()
        .delete(retry.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.cart.unwrap(), first);
    retry.order_number = "ORD-2".into();
    retry.expected_version = 0;
    assert_error(
        app.client.clone().delete(retry).await,
        Code::FailedPrecondition,
        "ORDER_NUMBER_MISMATCH",
    );
    assert_error(
        delete(&app, &cart.id, "").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(app.get(&cart.id).await.unwrap(), *first);
}

async fn version_mismatch_is_aborted_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let id = cart.id.clone();
    let line = cart.items[0].line_id.clone();
    let mut client = app.client.clone();
    let stale = 7;

    let status = assert_error(
        client
            .add_items(pb::AddItemsRequest {
                cart_id: id.clone(),
                items: vec![item("B", 1, 1)],
                expected_version: stale,
                request_id: String::new(),
            })
            .await,
        Code::Aborted,
        "VERSION_MISMATCH",
    );
    let info = status.get_error_details().error_info().unwrap().clone();
    assert_eq!(
        info.metadata.get("current_version").map(String::as_str),
        Some("1")
    );
    assert_error(
        client
            .update_items(pb::UpdateItemsRequest {
                cart_id: id.clone(),
                updates: vec![pb::ItemUpdate {
                    line_id: line.clone(),
                    quantity: 3,
                }],
                expected_version: stale,
                request_id: String::new(),
            })
            .await,
        Code::Aborted,
        "VERSION_MISMATCH",
    );
    assert_error(
        client
            .apply_coupon(pb::ApplyCouponRequest {
                cart_id: id.clone(),
                code: "C".into(),
                amount: 1,
                expected_version: stale,
                request_id: String::new(),
            })
            .await,
        Code::Aborted,
        "VERSION_MISMATCH",
    );
    assert_error(
        client
            .clear(pb::ClearRequest {
                cart_id: id.clone(),
                expected_version: stale,
                ..Default::default()
            })
            .await,
        Code::Aborted,
        "VERSION_MISMATCH",
    );
    assert_error(
        client
            .remove(pb::RemoveRequest {
                cart_id: id.clone(),
                expected_version: stale,
                request_id: String::new(),
            })
            .await,
        Code::Aborted,
        "VERSION_MISMATCH",
    );
    assert_error(
        client
            .delete(pb::DeleteRequest {
                cart_id: id.clone(),
                order_number: "O".into(),
                expected_version: stale,
                request_id: String::new(),
            })
            .await,
        Code::Aborted,
        "VERSION_MISMATCH",
    );
    assert_error(
        client
            .remove(pb::RemoveRequest {
                cart_id: id.clone(),
                expected_version: -1,
                request_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let read = app.get(&id).await.unwrap();
    assert_eq!(
        (read.version, read.item_count, read.applied_coupons.len()),
        (1, 1, 0)
    );

    // The matching version passes.
    let ok = client
        .add_items(pb::AddItemsRequest {
            cart_id: id.clone(),
            items: vec![item("B", 1, 1)],
            expected_version: 1,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.version, 2);
}

async fn currency_mismatch_is_a_failed_precondition(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let mut euro = item("B", 1, 100);
    euro.currency = "EUR".into();
    let request = pb::AddItemsRequest {
        cart_id: cart.id.clone(),
        items: vec![item("C", 1, 1), euro],
        expected_version: 0,
        request_id: String::new(),
    };
    assert_error(
        app.client.clone().add_items(request).await,
        Code::FailedPrecondition,
        "CURRENCY_MISMATCH",
    );
    let mut dollars = item("B", 1, 100);
    dollars.currency = "USD".into();
    let request = pb::AddItemsRequest {
        cart_id: cart.id.clone(),
        items: vec![dollars],
        expected_version: 0,
        request_id: String::new(),
    };
    assert_eq!(
        app.client
            .clone()
            .add_items(request)
            .await
            .unwrap()
            .into_inner()
            .version,
        2
    );
    let read = app.get(&cart.id).await.unwrap();
    assert_eq!(
        read.unique_item_count, 2,
        "the refused request added nothing"
    );
}

async fn limits_are_enforced_without_side_effects(backend: Backend) {
    let policy = CartPolicy {
        limits: Limits {
            max_lines: 3,
            max_coupons: 2,
            ..Limits::default()
        },
        ..CartPolicy::default()
    };
    let app = spawn_with_policy(backend, policy).await;
    let cart = app.create_cart(&[("A", 998, 1), ("B", 1, 1)]).await;
    let id = cart.id.as_str();

    assert_error(
        add(&app, id, &[("C", 1, 1), ("D", 1, 1)]).await,
        Code::FailedPrecondition,
        "LINE_LIMIT_EXCEEDED",
    );
    assert_error(
        add(&app, id, &[("C", 1, 1), ("A", 2, 1)]).await,
        Code::FailedPrecondition,
        "QUANTITY_LIMIT_EXCEEDED",
    );
    assert_error(
        add(&app, id, &[("E", 600, 1), ("E", 600, 1)]).await,
        Code::FailedPrecondition,
        "QUANTITY_LIMIT_EXCEEDED",
    );
    assert_error(
        add(&app, id, &[("C", 1000, 1)]).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_error(
        add(&app, id, &[(&"s".repeat(65), 1, 1)]).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let mut fat = item("C", 1, 1);
    fat.attributes.insert("engraving".into(), "x".repeat(1025));
    let request = pb::AddItemsRequest {
        cart_id: id.into(),
        items: vec![fat],
        expected_version: 0,
        request_id: String::new(),
    };
    assert_error(
        app.client.clone().add_items(request).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    let line_a = cart.items[0].line_id.clone();
    assert_error(
        update(&app, id, &[(&line_a, 1000)]).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    coupon(&app, id, "ONE", 1).await.unwrap();
    coupon(&app, id, "TWO", 1).await.unwrap();
    assert_error(
        coupon(&app, id, "THREE", 1).await,
        Code::FailedPrecondition,
        "COUPON_LIMIT_EXCEEDED",
    );

    let read = app.get(id).await.unwrap();
    let lines: Vec<_> = read
        .items
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity))
        .collect();
    assert_eq!(lines, [("A", 998), ("B", 1)]);
    assert_eq!(read.version, 3, "only the two coupons changed the cart");

    // Up to the limits is fine.
    let full = add(&app, id, &[("A", 1, 1), ("C", 1, 1)]).await.unwrap();
    assert_eq!((full.unique_item_count, full.items[0].quantity), (3, 999));
}

async fn every_access_restarts_the_cart_lifetime(backend: Backend) {
    let policy = CartPolicy {
        cart_ttl: Duration::from_millis(2000),
        ..CartPolicy::default()
    };
    let app = spawn_with_policy(backend, policy).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        let read = app
            .get(&cart.id)
            .await
            .expect("a cart read within its ttl stays alive");
        let lifetime = timestamp_ms(&read.expires_at) - timestamp_ms(&read.last_activity_at);
        assert_eq!(lifetime, 2000);
    }
    // At 2.7 s it was alive only because every Get pushed expires_at; now it has lapsed.
    tokio::time::sleep(Duration::from_millis(2400)).await;
    assert_error(app.get(&cart.id).await, Code::NotFound, "CART_NOT_FOUND");
}

async fn tombstones_expire_after_their_retention(backend: Backend) {
    let policy = CartPolicy {
        tombstone_ttl: Duration::from_millis(1500),
        ..CartPolicy::default()
    };
    let app = spawn_with_policy(backend, policy).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    delete(&app, &cart.id, "ORD-9").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Reading a tombstone does not extend its retention (it would keep it until 2 s).
    assert_eq!(app.get(&cart.id).await.unwrap().order_number, "ORD-9");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_error(app.get(&cart.id).await, Code::NotFound, "CART_NOT_FOUND");
}

/// An item of `helpers::item` carrying a `note` attribute of `note_bytes`.
fn fat_item(sku: &str, note_bytes: usize) -> pb::NewItem {
    let mut fat = item(sku, 1, 100);
    fat.attributes.insert("note".into(), "n".repeat(note_bytes));
    fat
}

/// What [`fat_item`] counts against `max_cart_bytes`: its line id and stored description
/// (added now: 13 digits of milliseconds, like any time until 2286).
fn fat_bytes(sku: &str, note_bytes: usize) -> usize {
    let fat = fat_item(sku, note_bytes);
    let description = LineDescription {
        sku: fat.sku.as_str().into(),
        product_id: fat.product_id.as_str().into(),
        title: fat.title.as_str().into(),
        unit_price: fat.unit_price,
        attributes: std::borrow::Cow::Owned(fat.attributes.clone().into_iter().collect()),
        added_at: 1_700_000_000_000,
    };
    let line_id = LineId::for_sku(&Sku::parse(sku, 64).unwrap());
    line_id.as_str().len() + description.json_len()
}

async fn add_with(
    app: &TestApp,
    id: &str,
    items: Vec<pb::NewItem>,
    request_id: &str,
) -> Result<pb::Cart, tonic::Status> {
    app.client
        .clone()
        .add_items(pb::AddItemsRequest {
            cart_id: id.into(),
            items,
            expected_version: 0,
            request_id: request_id.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// `max_cart_bytes` over the lines' ids and descriptions: a cart filled exactly to it is
/// fine, one byte more is CART_TOO_LARGE and changes nothing; more units of a held line cost
/// nothing, a removed line frees its bytes, Clear frees all; a refusal under a request id is
/// remembered like any other; Create is bounded too.
async fn a_cart_is_bounded_in_bytes_at_the_same_point_on_every_store(backend: Backend) {
    let (a, b, c) = (
        fat_bytes("A", 900),
        fat_bytes("B", 900),
        fat_bytes("C", 900),
    );
    let policy = CartPolicy {
        limits: Limits {
            max_cart_bytes: a + b,
            ..Limits::default()
        },
        ..CartPolicy::default()
    };
    let app = spawn_with_policy(backend, policy).await;
    let created = app
        .client
        .clone()
        .create(pb::CreateRequest {
            currency: "USD".into(),
            items: vec![fat_item("A", 900)],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let id = created.id.as_str();
    let full = add_with(&app, id, vec![fat_item("B", 900)], "")
        .await
        .expect("exactly at the bound");
    assert_eq!(full.version, 2);

    let status = assert_error(
        add_with(&app, id, vec![fat_item("C", 900)], "too-big-1").await,
        Code::FailedPrecondition,
        "CART_TOO_LARGE",
    );
    assert!(
        status.message().contains(&(a + b).to_string()),
        "{status:?}"
    );
    // Any new line, however small, does not fit in a full cart.
    assert_error(
        add_with(&app, id, vec![fat_item("D", 1)], "").await,
        Code::FailedPrecondition,
        "CART_TOO_LARGE",
    );
    let read = app.get(id).await.unwrap();
    assert_eq!(
        (read.version, read.unique_item_count),
        (2, 2),
        "nothing changed"
    );

    // More of a line already held adds no bytes.
    let more = add(&app, id, &[("A", 2, 100)]).await.unwrap();
    assert_eq!(more.items[0].quantity, 3);
    // Removing B frees its bytes: C (the same size as B) fits now.
    let line_b = more.items[1].line_id.clone();
    update(&app, id, &[(&line_b, 0)]).await.unwrap();
    assert_eq!(b, c);
    // The refusal remembered under its request id replays, though C would fit now.
    assert_error(
        add_with(&app, id, vec![fat_item("C", 900)], "too-big-1").await,
        Code::FailedPrecondition,
        "CART_TOO_LARGE",
    );
    let with_c = add_with(&app, id, vec![fat_item("C", 900)], "fits-now")
        .await
        .expect("C fits where B was");
    assert_eq!(with_c.unique_item_count, 2);
    // Clear frees every line's bytes.
    clear(&app, id, false).await.unwrap();
    add_with(&app, id, vec![fat_item("B", 900), fat_item("C", 900)], "")
        .await
        .expect("an emptied cart takes the bound again");

    let status = app
        .client
        .clone()
        .create(pb::CreateRequest {
            cart_id: "too-big-from-the-start".into(),
            currency: "USD".into(),
            items: vec![fat_item("A", 900), fat_item("B", 900), fat_item("C", 900)],
            ..Default::default()
        })
        .await;
    assert_error(status, Code::FailedPrecondition, "CART_TOO_LARGE");
    assert_error(
        app.get("too-big-from-the-start").await,
        Code::NotFound,
        "CART_NOT_FOUND",
    );
}

fn timestamp_ms(ts: &Option<prost_types::Timestamp>) -> i64 {
    let ts = ts.as_ref().expect("timestamp set");
    ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000
}
