//! VTEX checkout (seed 004): `POST /api/checkout/pub/orderForm/{orderFormId}/items/removeAll`
//! with the body `{}`, mapped to `Clear`.
//!
//! Public: the unguessable orderFormId is the capability, so only a cart whose id the service
//! generated is found here ([`IdIsTheCapability`]); a client-chosen id answers ORD002 like an
//! unknown one and nothing changes. The store account (tenant) comes
//! from the `Host` header's first label, else the `an` query parameter. Answers the orderForm,
//! `400 {"error": {"code": "ORD002"}}` for an unknown orderFormId, `400 001` for any other
//! body, and VTEX's HTML 404 page for any other URL under `/api/checkout/`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Value, json};
use tower_http::request_id::RequestId;

use super::{BodyError, HttpState, cart_request, header_str, reason, respond};
use crate::auth::IdIsTheCapability;
use crate::pb;
use crate::pb::cart_service_server::CartService as _;

pub const DIALECT: &str = "vtex";

/// VTEX's page for an unknown URL.
pub const NOT_FOUND_PAGE: &str = "<body>\n    <h1>404 Not Found</h1>\n    <p>The requested URL was not found on this server.</p>\n</body>";

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route(
            "/api/checkout/pub/orderForm/{order_form_id}/items/removeAll",
            any(handle),
        )
        .route("/api/checkout", any(not_found))
        .route("/api/checkout/", any(not_found))
        .route("/api/checkout/{*rest}", any(not_found))
}

async fn not_found() -> Response {
    not_found_page()
}

fn not_found_page() -> Response {
    respond(
        StatusCode::NOT_FOUND,
        "text/html; charset=utf-8",
        NOT_FOUND_PAGE.to_owned(),
    )
}

/// A VTEX error: status, code and message, in VTEX's error document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VtexError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: &'static str,
}

impl VtexError {
    pub const INVALID_CART: Self = Self {
        status: StatusCode::BAD_REQUEST,
        code: "ORD002",
        message: "Carrinho inválido",
    };
    pub const BAD_REQUEST: Self = Self {
        status: StatusCode::BAD_REQUEST,
        code: "001",
        message: "Bad Request",
    };

    fn body(&self, operation_id: &str) -> String {
        json!({
            "fields": {},
            "error": { "code": self.code, "message": self.message, "exception": Value::Null },
            "operationId": operation_id,
        })
        .to_string()
    }
}

/// Whether a body is exactly the empty JSON object (surrounding whitespace aside).
pub fn is_empty_object(body: &[u8]) -> bool {
    body.trim_ascii() == b"{}"
}

/// The store account: the first label of `Host` when it names a known store, else `an=`.
pub fn account<'a>(
    host: Option<&'a str>,
    an: Option<&'a str>,
    known: impl Fn(&str) -> bool,
) -> Option<&'a str> {
    let label = host
        .and_then(|h| h.split(['.', ':']).next())
        .filter(|l| !l.is_empty());
    match label {
        Some(label) if known(label) => Some(label),
        _ => an.filter(|a| !a.is_empty()),
    }
}

/// The store account of a request: [`account`] over its `Host` header and the `an` argument
/// of its query string (a query that does not decode has none).
pub fn store_account(
    host: Option<&str>,
    query: Option<&str>,
    known: impl Fn(&str) -> bool,
) -> Option<String> {
    let arguments: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default();
    let an = arguments
        .iter()
        .find(|(k, _)| k == "an")
        .map(|(_, v)| v.as_str());
    account(host, an, known).map(str::to_owned)
}

/// The orderForm after removeAll.
pub fn order_form(cart: &pb::Cart) -> Value {
    let mut totalizers = Vec::new();
    if cart.subtotal > 0 {
        totalizers
            .push(json!({ "id": "Items", "name": "Total dos Itens", "value": cart.subtotal }));
    }
    if cart.discount_amount > 0 {
        totalizers.push(json!({ "id": "Discounts", "name": "Total dos Descontos", "value": -cart.discount_amount }));
    }
    let items: Vec<Value> = cart
        .items
        .iter()
        .map(|l| {
            json!({
                "uniqueId": l.line_id, "id": l.sku, "productId": l.product_id, "name": l.title,
                "quantity": l.quantity, "price": l.unit_price, "listPrice": l.unit_price,
                "sellingPrice": l.unit_price,
            })
        })
        .collect();
    json!({
        "orderFormId": cart.id,
        "salesChannel": if cart.channel.is_empty() { "1" } else { cart.channel.as_str() },
        "loggedIn": false,
        "isCheckedIn": false,
        "storeId": Value::Null,
        "checkedInPickupPointId": Value::Null,
        "allowManualPrice": false,
        "canEditData": true,
        "userProfileId": Value::Null,
        "userType": Value::Null,
        "ignoreProfileData": false,
        "value": cart.total,
        "messages": [],
        "items": items,
        "selectableGifts": [],
        "totalizers": totalizers,
        "shippingData": Value::Null,
        "clientProfileData": Value::Null,
        "ratesAndBenefitsData": { "rateAndBenefitsIdentifiers": [], "teaser": [] },
        "paymentData": { "installmentOptions": [], "paymentSystems": [], "payments": [], "giftCards": [], "availableAccounts": [] },
        "marketingData": Value::Null,
        "sellers": [],
        "clientPreferencesData": { "locale": cart.locale, "optinNewsLetter": Value::Null },
        "commercialConditionData": Value::Null,
        "storePreferencesData": { "currencyCode": cart.currency },
        "giftRegistryData": Value::Null,
        "openTextField": Value::Null,
        "invoiceData": Value::Null,
        "customData": Value::Null,
        "itemMetadata": { "items": [] },
        "hooksData": Value::Null,
        "subscriptionData": Value::Null,
        "itemsOrdering": Value::Null,
    })
}

async fn handle(
    State(state): State<HttpState>,
    method: axum::http::Method,
    Path(order_form_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    request_id: Option<axum::Extension<RequestId>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if method != axum::http::Method::POST {
        return not_found_page();
    }
    let operation_id = super::request_id(request_id.as_ref().map(|e| &e.0));
    let refuse = |error: VtexError| {
        respond(
            error.status,
            "application/json; charset=utf-8",
            error.body(&operation_id),
        )
    };
    let host = header_str(&headers, header::HOST);
    let principal = store_account(host, query.as_deref(), |label| {
        state.tenancy.vtex(label).is_some()
    })
    .and_then(|account| state.tenancy.vtex(&account));
    let Some(principal) = principal else {
        return not_found_page();
    };
    let body = match super::body(body) {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            let too_large = VtexError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "001",
                message: "Request body too large",
            };
            return refuse(too_large);
        }
        Err(BodyError::Unreadable) => return refuse(VtexError::BAD_REQUEST),
    };
    if !is_empty_object(&body) {
        return refuse(VtexError::BAD_REQUEST);
    }
    let request = pb::ClearRequest {
        cart_id: order_form_id,
        preserve_coupons: false,
        reason: "removeAll".to_owned(),
        expected_version: 0,
        request_id: String::new(),
    };
    let mut request = cart_request(request, principal, DIALECT);
    request.extensions_mut().insert(IdIsTheCapability);
    match state.service.clear(request).await {
        Ok(response) => match response.into_inner().cart {
            Some(cart) => respond(
                StatusCode::OK,
                "application/json; charset=utf-8",
                order_form(&cart).to_string(),
            ),
            None => refuse(VtexError::BAD_REQUEST),
        },
        Err(status) => refuse(match reason(&status).as_str() {
            "CART_NOT_FOUND" | "INVALID_ARGUMENT" | "CART_DELETED" => VtexError::INVALID_CART,
            "OVERLOADED" => VtexError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "CHK0503",
                message: "Too many requests, retry later",
            },
            "STORE_UNAVAILABLE" | "REPLICATION_TIMEOUT" | "STORE_FULL" => VtexError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "CHK0503",
                message: "Service unavailable",
            },
            _ => VtexError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "CHK0500",
                message: "Internal error",
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_empty_object_is_accepted() {
        assert!(is_empty_object(b"{}"));
        assert!(is_empty_object(b" {}\n"));
        for bad in [&b""[..], b"{ }", b"[]", b"{\"a\":1}", b"null"] {
            assert!(!is_empty_object(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_account_comes_from_the_host_or_an() {
        let known = |label: &str| label == "cosmetics2";
        assert_eq!(
            account(Some("cosmetics2.vtexcommercestable.com.br"), None, known),
            Some("cosmetics2")
        );
        assert_eq!(
            account(Some("localhost:8080"), Some("cosmetics2"), known),
            Some("cosmetics2")
        );
        assert_eq!(account(Some("other.example"), None, known), None);
    }
}
