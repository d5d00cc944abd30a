//! Fabric XM (seed 001): `PATCH /api-cart/cart/{cartId}/orderNumber` with `{"orderNumber"}`,
//! mapped to `Delete`. An `Idempotency-Key` header is the request id.
//!
//! The tenant comes from the `x-site-context` header's `account`; the caller also presents a
//! `Bearer` API key of that tenant. Answers the deleted cart in XM's shape, or
//! `{"code","message"}` errors: 400 REQUEST_VALIDATION, 401/403, 404 CART_NOT_FOUND, 409, 500
//! for an account no tenant has, 503 while the store is down.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Value, json};

use super::{BodyError, HttpState, cart_request, header_str, reason, respond, rfc3339_millis};
use crate::auth::Scope;
use crate::pb;
use crate::pb::cart_service_server::CartService as _;

pub const DIALECT: &str = "fabric_xm";
/// XM cart ids are exactly this long.
const CART_ID_LEN: usize = 24;

pub fn routes() -> Router<HttpState> {
    Router::new().route("/api-cart/cart/{cart_id}/orderNumber", any(handle))
}

/// An XM error: HTTP status, `code` and `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl XmError {
    fn validation(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "REQUEST_VALIDATION",
            message: message.into(),
        }
    }

    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn into_response(self) -> Response {
        let body = json!({ "code": self.code, "message": self.message });
        respond(self.status, "application/json", body.to_string())
    }
}

/// Checks the path's cart id the way XM's validator words it.
pub fn check_cart_id(cart_id: &str) -> Result<(), XmError> {
    let len = cart_id.chars().count();
    if len < CART_ID_LEN {
        return Err(XmError::validation(format!(
            "Invalid data in path: /cartId should NOT be shorter than {CART_ID_LEN} characters"
        )));
    }
    if len > CART_ID_LEN {
        return Err(XmError::validation(format!(
            "Invalid data in path: /cartId should NOT be longer than {CART_ID_LEN} characters"
        )));
    }
    if !cart_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(XmError::validation(
            "Invalid data in path: /cartId should match pattern \"^[A-Za-z0-9_-]+$\"",
        ));
    }
    Ok(())
}

/// The `account` of an `x-site-context` header.
///
/// The header is JSON. XM's own documentation shows it with the account's opening quote
/// missing (`"account": 5f49...c8"`); clients copied from it are accepted when the account
/// is a 24-hex-digit id, which is unambiguous.
pub fn site_account(header: Option<&str>) -> Result<String, XmError> {
    let header = header
        .ok_or_else(|| XmError::validation("Invalid data in header: x-site-context is required"))?;
    let malformed = || {
        XmError::validation(
            "Invalid data in header: x-site-context should be a JSON object with an account",
        )
    };
    match serde_json::from_str::<Value>(header) {
        Ok(Value::Object(context)) => match context.get("account") {
            Some(Value::String(account)) if !account.is_empty() => Ok(account.clone()),
            _ => Err(malformed()),
        },
        Ok(_) => Err(malformed()),
        Err(_) => documented_quirk_account(header).ok_or_else(malformed),
    }
}

fn documented_quirk_account(header: &str) -> Option<String> {
    let rest = header
        .split_once("\"account\"")?
        .1
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let account: String = rest.chars().take(CART_ID_LEN).collect();
    let after = &rest[account.len()..];
    (account.len() == CART_ID_LEN
        && account.bytes().all(|b| b.is_ascii_hexdigit())
        && after.starts_with('"'))
    .then_some(account)
}

/// The order number of the body.
pub fn order_number(headers: &HeaderMap, body: &[u8]) -> Result<String, XmError> {
    if !super::content_type_is(headers, "json") {
        return Err(XmError::validation(
            "Invalid data in header: content-type should be application/json",
        ));
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Err(XmError::validation(
            "Invalid data in body: body should be object",
        ));
    };
    match body.get("orderNumber") {
        None => Err(XmError::validation(
            "Invalid data in body: should have required property 'orderNumber'",
        )),
        Some(Value::String(n)) if !n.is_empty() => Ok(n.clone()),
        Some(Value::String(_)) => Err(XmError::validation(
            "Invalid data in body: /orderNumber should NOT be shorter than 1 characters",
        )),
        Some(_) => Err(XmError::validation(
            "Invalid data in body: /orderNumber should be string",
        )),
    }
}

fn amount(currency: &str, amount: i64) -> Value {
    json!({ "currency": currency, "amount": amount })
}

/// Name/value pairs in key order (the maps are sorted).
fn name_values(map: &std::collections::BTreeMap<String, String>) -> Vec<Value> {
    map.iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect()
}

/// The deleted cart in XM's shape.
pub fn deleted_cart(cart: &pb::Cart) -> Value {
    let currency = cart.currency.as_str();
    let items: Vec<Value> = cart
        .items
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let item_id = line
                .product_id
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(line.product_id.clone()));
            json!({
                "price": {
                    "discount": { "discountAmount": 0, "price": 0, "promosApplied": [] },
                    "sale": 0,
                    "base": line.unit_price,
                    "currency": currency,
                },
                "sample": false,
                "discountedQuantity": 0,
                "isPickup": false,
                "createdAt": rfc3339_millis(&line.added_at),
                "updatedAt": rfc3339_millis(&line.updated_at),
                "_id": line.line_id,
                "itemId": item_id,
                "quantity": line.quantity,
                "sku": line.sku,
                "title": line.title,
                "lineItemId": i + 1,
                "attributeTotalPrice": 0,
                "totalPrice": amount(currency, line.total_price),
                "attributes": name_values(&line.attributes),
                "id": line.line_id,
            })
        })
        .collect();
    let promos: Vec<Value> = cart
        .applied_coupons
        .iter()
        .map(|c| json!({ "code": c.code, "discountAmount": c.amount }))
        .collect();
    json!({
        "_id": cart.id,
        "deleted": cart.status() == pb::CartStatus::Deleted,
        "registeredUser": !cart.customer_id.is_empty(),
        "items": items,
        "allPromosApplied": promos,
        "attributes": name_values(&cart.metadata),
        "createdAt": rfc3339_millis(&cart.created_at),
        "updatedAt": rfc3339_millis(&cart.updated_at),
        "__v": cart.version,
        "orderNumber": cart.order_number,
        "totalAmount": amount(currency, cart.total),
        "quantity": cart.item_count,
    })
}

async fn handle(
    State(state): State<HttpState>,
    method: axum::http::Method,
    Path(cart_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match delete(&state, method, &cart_id, &headers, body).await {
        Ok(cart) => respond(
            StatusCode::OK,
            "application/json",
            deleted_cart(&cart).to_string(),
        ),
        Err(error) => error.into_response(),
    }
}

async fn delete(
    state: &HttpState,
    method: axum::http::Method,
    cart_id: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<pb::Cart, XmError> {
    if method != axum::http::Method::PATCH {
        return Err(XmError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "Use PATCH.",
        ));
    }
    let body = super::body(body).map_err(|e| match e {
        BodyError::TooLarge => XmError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "Request body is larger than 64 KiB.",
        ),
        BodyError::Unreadable => XmError::validation("Invalid data in body: unreadable"),
    })?;
    check_cart_id(cart_id)?;
    let account = site_account(header_str(headers, "x-site-context"))?;
    let tenant = state.tenancy.xm_account(&account).ok_or_else(|| {
        XmError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "Internal Server Error",
        )
    })?;
    let principal = state
        .tenancy
        .api_key(header_str(headers, header::AUTHORIZATION))
        .ok()
        .filter(|p| p.tenant == tenant)
        .ok_or_else(|| {
            XmError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "Invalid or missing API key for this account.",
            )
        })?;
    principal.require(Scope::Write).map_err(|_| {
        XmError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "This API key cannot modify carts.",
        )
    })?;
    let order_number = order_number(headers, &body)?;
    let request = pb::DeleteRequest {
        cart_id: cart_id.to_owned(),
        order_number,
        expected_version: 0,
        request_id: super::idempotency_key(headers),
    };
    match state
        .service
        .delete(cart_request(request, principal, DIALECT))
        .await
    {
        Ok(response) => response.into_inner().cart.ok_or_else(|| {
            XmError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "Internal Server Error",
            )
        }),
        Err(status) => Err(match reason(&status).as_str() {
            "CART_NOT_FOUND" => {
                XmError::new(StatusCode::NOT_FOUND, "CART_NOT_FOUND", "Cart not found.")
            }
            "INVALID_ARGUMENT" if super::violates(&status, "request_id") => XmError::validation(
                "Invalid data in header: Idempotency-Key should be 1 to 64 characters of A-Z, a-z, 0-9, _ and -",
            ),
            "INVALID_ARGUMENT" => XmError::validation(
                "Invalid data in body: /orderNumber should be printable text of at most 64 characters",
            ),
            "REQUEST_ID_REUSED" => XmError::new(
                StatusCode::CONFLICT,
                "IDEMPOTENCY_KEY_REUSED",
                "Idempotency-Key was already used for a different request.",
            ),
            "ORDER_NUMBER_MISMATCH" => XmError::new(
                StatusCode::CONFLICT,
                "CART_ALREADY_DELETED",
                "Cart was already deleted with another order number.",
            ),
            "OVERLOADED" => XmError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Too many requests in flight, retry later.",
            ),
            "STORE_UNAVAILABLE" | "REPLICATION_TIMEOUT" | "STORE_FULL" => XmError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Service unavailable, retry later.",
            ),
            _ => XmError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "Internal Server Error",
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cart_ids_are_checked_in_xm_words() {
        assert!(check_cart_id("60807478d14ffd000843db2c").is_ok());
        assert!(
            check_cart_id("short")
                .unwrap_err()
                .message
                .contains("shorter than 24")
        );
        assert!(
            check_cart_id(&"a".repeat(25))
                .unwrap_err()
                .message
                .contains("longer than 24")
        );
        assert!(check_cart_id("60807478d14ffd000843db2!").is_err());
    }

    #[test]
    fn site_context_accounts_are_read_strictly_or_as_documented() {
        let ok = r#"{ "date": "2020-08-28T02:35:27.787Z", "channel": 12, "account": "5f493c9f30ec2a0007a94fc8", "stage": "sandbox" }"#;
        assert_eq!(site_account(Some(ok)).unwrap(), "5f493c9f30ec2a0007a94fc8");
        let seed = r#"{ "date": "2020-08-28T02:35:27.787Z", "channel": 12, "account": 5f493c9f30ec2a0007a94fc8", "stage": "sandbox" }"#;
        assert_eq!(
            site_account(Some(seed)).unwrap(),
            "5f493c9f30ec2a0007a94fc8"
        );
        for bad in [
            None,
            Some("nope"),
            Some("[]"),
            Some(r#"{"account": 12}"#),
            Some(r#"{"account": abc"}"#),
        ] {
            assert_eq!(
                site_account(bad).unwrap_err().code,
                "REQUEST_VALIDATION",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn order_numbers_come_from_a_json_body() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert_eq!(
            order_number(&headers, br#"{"orderNumber": "1234-1234-12345"}"#).unwrap(),
            "1234-1234-12345"
        );
        assert!(
            order_number(&headers, b"{}")
                .unwrap_err()
                .message
                .contains("required property 'orderNumber'")
        );
        assert!(
            order_number(&headers, br#"{"orderNumber": 5}"#)
                .unwrap_err()
                .message
                .contains("should be string")
        );
        assert!(order_number(&headers, b"not json").is_err());
        assert!(order_number(&HeaderMap::new(), br#"{"orderNumber": "1"}"#).is_err());
    }
}
