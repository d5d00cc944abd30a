//! The five compatibility shims over real HTTP, each checked against its seed and then over
//! gRPC, plus the HTTP edge they share.

mod amazon;
mod edge;
mod fabric_xm;
mod fuzz;
mod stateset;
mod vtex;
mod zaui;

/// Carts of tenant acme for the CART_FROZEN and CART_MERGED rows of the dialects' error
/// tables: a frozen cart, and a guest cart merged into a customer's (its tombstone).
pub async fn frozen_and_merged(app: &crate::helpers::TestApp) -> (String, String) {
    use crate::helpers::{ACME_KEY, TestApp};
    use cart_service::pb;
    let frozen = app.create_cart_as(ACME_KEY, "", &[("A", 1, 100)]).await;
    let freeze = pb::FreezeRequest {
        cart_id: frozen.id.clone(),
        reason: "checkout".into(),
        ..Default::default()
    };
    app.client
        .clone()
        .freeze(TestApp::authed(freeze, ACME_KEY))
        .await
        .expect("freeze");
    let customer = format!("cust-{}", cart_service::domain::CartId::generate());
    let mine = pb::CreateRequest {
        customer_id: customer.clone(),
        ..crate::helpers::create_request("", &[("B", 1, 100)])
    };
    app.client
        .clone()
        .create(TestApp::authed(mine, ACME_KEY))
        .await
        .expect("create");
    let guest = pb::CreateRequest {
        customer_id: String::new(),
        ..crate::helpers::create_request("", &[("A", 1, 100)])
    };
    let guest = app
        .client
        .clone()
        .create(TestApp::authed(guest, ACME_KEY))
        .await
        .expect("create")
        .into_inner();
    let merge = pb::MergeRequest {
        source_cart_id: guest.id.clone(),
        customer_id: customer,
        mode: pb::MergeMode::Sum as i32,
        request_id: "login".into(),
    };
    app.client
        .clone()
        .merge(TestApp::authed(merge, ACME_KEY))
        .await
        .expect("merge");
    (frozen.id, guest.id)
}
