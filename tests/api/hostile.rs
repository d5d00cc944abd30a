//! Hostile input over real gRPC: requests that fit in 1 MiB but name tens of thousands of
//! entries are refused at once with INVALID_ARGUMENT, a bounded list of field violations and
//! small trailers, and change nothing.

use std::time::{Duration, Instant};

use cart_service::error::{MAX_FIELD_VIOLATIONS, OMITTED_FIELD};
use cart_service::pb;
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Backend, TestApp, item, reason, spawn_app};

on_both_stores!(
    thirty_thousand_distinct_line_ids_are_refused_at_once,
    thirty_thousand_malformed_line_ids_get_small_trailers,
    bad_entries_below_the_limits_are_listed_up_to_the_bound,
    oversized_items_and_maps_are_refused_whole,
);

/// Largest trailer block (grpc-message, grpc-status-details-bin and the rest) an
/// INVALID_ARGUMENT may cost: 20 bounded violations and their count fit well within it.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

fn trailer_bytes(status: &tonic::Status) -> usize {
    let metadata: usize = status
        .metadata()
        .iter()
        .map(|entry| match entry {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => k.as_str().len() + v.len(),
            tonic::metadata::KeyAndValueRef::Binary(k, v) => {
                k.as_str().len() + v.as_encoded_bytes().len()
            }
        })
        .sum();
    // details travel base64-encoded.
    status.message().len() + status.details().len() * 4 / 3 + metadata
}

fn update_request(cart_id: &str, line_ids: impl Iterator<Item = String>) -> pb::UpdateItemsRequest {
    pb::UpdateItemsRequest {
        cart_id: cart_id.into(),
        updates: line_ids
            .map(|line_id| pb::ItemUpdate {
                line_id,
                quantity: 1,
            })
            .collect(),
        ..Default::default()
    }
}

/// Sends `request` and checks the refusal: INVALID_ARGUMENT, at most the bounded violations,
/// small trailers; returns the violations' fields and how long the call took.
async fn refused(
    app: &TestApp,
    request: pb::UpdateItemsRequest,
) -> (Vec<(String, String)>, Duration) {
    assert!(request.encoded_len() < 1024 * 1024, "fits in one message");
    let started = Instant::now();
    let status = app
        .client
        .clone()
        .update_items(request)
        .await
        .expect_err("refused");
    let took = started.elapsed();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "INVALID_ARGUMENT");
    let size = trailer_bytes(&status);
    println!(
        "refused: {} violations listed, {size} bytes of trailers",
        listed(&status)
    );
    assert!(size <= MAX_TRAILER_BYTES, "{size} bytes of trailers");
    let violations = status
        .get_error_details()
        .bad_request()
        .expect("field violations")
        .field_violations
        .iter()
        .map(|v| (v.field.clone(), v.description.clone()))
        .collect::<Vec<_>>();
    assert!(violations.len() <= MAX_FIELD_VIOLATIONS + 1);
    (violations, took)
}

/// How many field violations a refusal lists (a `(more)` count included).
fn listed(status: &tonic::Status) -> usize {
    let details = status.get_error_details();
    details
        .bad_request()
        .map_or(0, |b| b.field_violations.len())
}

async fn assert_unchanged(app: &TestApp, cart: &pb::Cart) {
    let read = app.get(&cart.id).await.unwrap();
    assert_eq!(
        (read.version, read.item_count, read.items.len()),
        (cart.version, cart.item_count, cart.items.len()),
        "the refused request changed nothing"
    );
}

/// UpdateItems naming 30,000 distinct well-formed line ids: one violation, nothing read.
async fn thirty_thousand_distinct_line_ids_are_refused_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let request = update_request(&cart.id, (0..30_000).map(|i| format!("li_{i:024x}")));
    let (violations, took) = refused(&app, request).await;
    assert_eq!(
        violations,
        [("updates".to_owned(), "at most 250 updates".to_owned())]
    );
    println!("30,000 distinct line ids refused in {took:?} (client-side, loopback)");
    assert_unchanged(&app, &cart).await;
}

/// UpdateItems naming 30,000 malformed line ids: one violation, trailers of a few hundred bytes.
async fn thirty_thousand_malformed_line_ids_get_small_trailers(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let request = update_request(&cart.id, (0..30_000).map(|i| format!("bad line {i}")));
    let (violations, took) = refused(&app, request).await;
    assert_eq!(violations.len(), 1, "{violations:?}");
    println!("30,000 malformed line ids refused in {took:?} (client-side, loopback)");
    assert_unchanged(&app, &cart).await;
}

/// 250 malformed ids (within the update limit): 20 violations listed, the other 230 counted.
async fn bad_entries_below_the_limits_are_listed_up_to_the_bound(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let bad = (0..250).map(|i| format!("{}{i}", "not a line id ".repeat(20)));
    let (violations, _) = refused(&app, update_request(&cart.id, bad)).await;
    assert_eq!(violations.len(), MAX_FIELD_VIOLATIONS + 1);
    assert_eq!(violations[0].0, "updates[0].line_id");
    assert_eq!(
        violations[MAX_FIELD_VIOLATIONS],
        (
            OMITTED_FIELD.to_owned(),
            "230 more violations not listed".to_owned()
        )
    );
    // Duplicates anywhere in the list are found.
    let mut ids: Vec<String> = (0..250).map(|i| format!("li_{i:024x}")).collect();
    ids[200] = ids[7].clone();
    let (violations, _) = refused(&app, update_request(&cart.id, ids.into_iter())).await;
    assert_eq!(
        violations,
        [(
            "updates[200].line_id".to_owned(),
            "line appears twice".to_owned()
        )]
    );
    assert_unchanged(&app, &cart).await;
}

/// AddItems with 30,000 items, Create with 30,000 metadata entries, an item with 30,000
/// attributes: each one violation, small trailers, nothing stored.
async fn oversized_items_and_maps_are_refused_whole(backend: Backend) {
    let app = spawn_app(backend).await;
    let cart = app.create_cart(&[("A", 1, 100)]).await;
    let check = |status: tonic::Status, field: &str| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(trailer_bytes(&status) <= MAX_TRAILER_BYTES);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(fields, [field]);
    };
    let items = pb::AddItemsRequest {
        cart_id: cart.id.clone(),
        items: (0..30_000)
            .map(|i| pb::NewItem {
                sku: format!("S{i}"),
                quantity: 1,
                unit_price: 1,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    assert!(items.encoded_len() < 1024 * 1024);
    check(
        app.client.clone().add_items(items).await.unwrap_err(),
        "items",
    );
    let mut fat = item("B", 1, 1);
    fat.attributes = (0..30_000)
        .map(|i| (format!("k{i}"), String::new()))
        .collect();
    let attributes = pb::AddItemsRequest {
        cart_id: cart.id.clone(),
        items: vec![fat],
        ..Default::default()
    };
    check(
        app.client.clone().add_items(attributes).await.unwrap_err(),
        "items[0].attributes",
    );
    let create = pb::CreateRequest {
        cart_id: "hostile-metadata".into(),
        currency: "USD".into(),
        metadata: (0..30_000)
            .map(|i| (format!("k{i}"), String::new()))
            .collect(),
        ..Default::default()
    };
    check(
        app.client.clone().create(create).await.unwrap_err(),
        "metadata",
    );
    assert_eq!(
        app.get("hostile-metadata").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_unchanged(&app, &cart).await;
}
