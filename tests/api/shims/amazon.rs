//! Amazon PA-API: `GET /onca/xml?...Operation=CartClear` → Clear.

use cart_service::auth::CartTokens;
use cart_service::domain::{CartId, TenantId};
use cart_service::http::amazon::{NAMESPACE, url_encode};
use cart_service::http::xml;
use cart_service::pb;

use crate::helpers::{ACME_KEY, Backend, HttpResponse, SHIM_SECRET, TestApp, http, spawn_shim_app};

on_both_stores!(
    cart_clear_answers_the_seed_response,
    every_refusal_in_the_errors_element,
    frozen_and_merged_carts_are_conflicts_in_the_errors_element
);

async fn cart_clear(
    app: &TestApp,
    access_key: &str,
    cart_id: &str,
    encoded_hmac: &str,
) -> HttpResponse {
    let target = format!(
        "/onca/xml?Service=AWSECommerceService&AWSAccessKeyId={access_key}&Operation=CartClear&CartId={cart_id}&HMAC={encoded_hmac}"
    );
    http(
        app.http_addr,
        "GET",
        &target,
        &[("User-Agent", "legacy-store/1.0")],
        b"",
    )
    .await
}

fn errors(response: &HttpResponse) -> (String, String) {
    let doc = xml::parse(&response.body).unwrap();
    assert_eq!(
        doc.get("CartClearResponse/Cart/Request/IsValid"),
        Some("False")
    );
    (
        doc.get("CartClearResponse/Cart/Request/Errors/Error/Code")
            .unwrap()
            .to_owned(),
        doc.get("CartClearResponse/Cart/Request/Errors/Error/Message")
            .unwrap()
            .to_owned(),
    )
}

/// A cart whose hmac contains a `+`, so the `%2B` rule of the seed is exercised.
async fn cart_with_plus_in_hmac(app: &TestApp) -> pb::Cart {
    for _ in 0..64 {
        let cart = app
            .create_cart_as(ACME_KEY, "", &[("A", 2, 100), ("B", 1, 50)])
            .await;
        if cart.hmac.contains('+') {
            return cart;
        }
    }
    panic!("no hmac with '+' in 64 carts");
}

/// The seed's CartClear (HMAC with `%2B`) empties the cart and answers the seed's response shape.
async fn cart_clear_answers_the_seed_response(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let cart = cart_with_plus_in_hmac(&app).await;
    let encoded = url_encode(&cart.hmac);
    assert!(encoded.contains("%2B"));

    let response = cart_clear(&app, "AKIAEXAMPLE", &cart.id, &encoded).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response
            .body
            .contains(&format!("<CartClearResponse xmlns=\"{NAMESPACE}\">"))
    );
    for argument in [
        "Service\" Value=\"AWSECommerceService",
        "Operation\" Value=\"CartClear",
        "AWSAccessKeyId\" Value=\"AKIAEXAMPLE",
    ] {
        assert!(
            response
                .body
                .contains(&format!("<Argument Name=\"{argument}\"")),
            "{argument}"
        );
    }
    assert!(
        response
            .body
            .contains("<Header Name=\"UserAgent\" Value=\"legacy-store/1.0\">")
    );
    let doc = xml::parse(&response.body).unwrap();
    assert_eq!(doc.root, "CartClearResponse");
    assert!(
        !doc.get("CartClearResponse/OperationRequest/RequestId")
            .unwrap()
            .is_empty()
    );
    assert!(
        doc.get("CartClearResponse/OperationRequest/RequestProcessingTime")
            .unwrap()
            .parse::<f64>()
            .is_ok()
    );
    assert_eq!(
        doc.get("CartClearResponse/Cart/Request/IsValid"),
        Some("True")
    );
    assert_eq!(
        doc.get("CartClearResponse/Cart/Request/CartClearRequest/CartId"),
        Some(cart.id.as_str())
    );
    assert_eq!(
        doc.get("CartClearResponse/Cart/Request/CartClearRequest/HMAC"),
        Some(cart.hmac.as_str())
    );
    assert_eq!(
        doc.get("CartClearResponse/Cart/CartId"),
        Some(cart.id.as_str())
    );
    assert_eq!(
        doc.get("CartClearResponse/Cart/HMAC"),
        Some(cart.hmac.as_str())
    );
    assert_eq!(
        doc.get("CartClearResponse/Cart/URLEncodedHMAC"),
        Some(encoded.as_str())
    );

    let read = app.get_as(ACME_KEY, &cart.id).await.unwrap();
    assert!(read.items.is_empty() && read.cleared_at.is_some());
    assert_eq!(
        read.hmac, cart.hmac,
        "CartClear does not invalidate the HMAC"
    );
    let again = cart_clear(&app, "AKIAEXAMPLE", &cart.id, &encoded).await;
    assert_eq!(
        xml::parse(&again.body)
            .unwrap()
            .get("CartClearResponse/Cart/Request/IsValid"),
        Some("True")
    );
}

/// Wrong HMAC, account, cart id, parameters, operation or method: an `Errors` element, nothing changed.
async fn every_refusal_in_the_errors_element(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let cart = cart_with_plus_in_hmac(&app).await;
    let id = cart.id.as_str();
    let encoded = url_encode(&cart.hmac);
    let tokens = CartTokens::new(SHIM_SECRET.as_bytes());
    let acme = TenantId::parse("acme").unwrap();

    let wrong = url_encode(&tokens.sign(&acme, &CartId::parse("someothercart").unwrap()));
    assert_eq!(
        errors(&cart_clear(&app, "AKIAEXAMPLE", id, &wrong).await).0,
        "AWS.ECommerceService.InvalidHMAC"
    );
    // A '+' sent raw decodes to a space: the HMAC no longer matches.
    let raw_plus = cart.hmac.replace('/', "%2F").replace('=', "%3D");
    assert_eq!(
        errors(&cart_clear(&app, "AKIAEXAMPLE", id, &raw_plus).await).0,
        "AWS.ECommerceService.InvalidHMAC"
    );
    // globex's key with acme's cart and hmac: the hmac is bound to the tenant.
    assert_eq!(
        errors(&cart_clear(&app, "AKIAGLOBEX", id, &encoded).await).0,
        "AWS.ECommerceService.InvalidHMAC"
    );
    assert_eq!(
        errors(&cart_clear(&app, "AKIAUNKNOWN", id, &encoded).await).0,
        "AWS.InvalidAccount"
    );
    let missing_id = CartId::generate();
    let valid_for_missing = url_encode(&tokens.sign(&acme, &missing_id));
    assert_eq!(
        errors(&cart_clear(&app, "AKIAEXAMPLE", missing_id.as_str(), &valid_for_missing).await).0,
        "AWS.ECommerceService.InvalidCartId"
    );
    assert_eq!(
        errors(&cart_clear(&app, "AKIAEXAMPLE", "bad%20id", &encoded).await).0,
        "AWS.ECommerceService.InvalidCartId"
    );
    let missing = http(
        app.http_addr,
        "GET",
        "/onca/xml?Service=AWSECommerceService&Operation=CartClear&AWSAccessKeyId=AKIAEXAMPLE",
        &[],
        b"",
    )
    .await;
    let (code, message) = errors(&missing);
    assert_eq!(code, "AWS.MissingParameters");
    assert!(message.contains("CartId, HMAC"), "{message}");
    let other_operation = http(
        app.http_addr,
        "GET",
        &format!("/onca/xml?Service=AWSECommerceService&Operation=CartAdd&AWSAccessKeyId=AKIAEXAMPLE&CartId={id}&HMAC={encoded}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(errors(&other_operation).0, "AWS.InvalidOperationParameter");
    let post = http(app.http_addr, "POST", "/onca/xml", &[], b"").await;
    assert_eq!(post.status, 405);
    assert_eq!(errors(&post).0, "AWS.InvalidHTTPMethod");

    let read = app.get_as(ACME_KEY, id).await.unwrap();
    assert_eq!((read.version, read.item_count), (1, 3), "nothing changed");
}

/// CartClear of a frozen cart (checkout) or a merged one: 409 and the service's
/// AWS.ECommerceService code, nothing cleared.
async fn frozen_and_merged_carts_are_conflicts_in_the_errors_element(backend: Backend) {
    let app = spawn_shim_app(backend).await;
    let (frozen, merged) = super::frozen_and_merged(&app).await;
    for (id, code) in [
        (&frozen, "AWS.ECommerceService.CartFrozen"),
        (&merged, "AWS.ECommerceService.CartMerged"),
    ] {
        let cart = app.get_as(ACME_KEY, id).await.unwrap();
        let response = cart_clear(&app, "AKIAEXAMPLE", id, &url_encode(&cart.hmac)).await;
        assert_eq!(response.status, 409, "{}", response.body);
        assert_eq!(errors(&response).0, code);
        assert_eq!(app.get_as(ACME_KEY, id).await.unwrap().item_count, 1);
    }
}
