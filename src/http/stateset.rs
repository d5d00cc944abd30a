//! Stateset (seed 002): `POST /v1/carts/{id}/clear` with `{preserve_coupons, reason}`, mapped
//! to `Clear`. Needs a `Bearer` API key with `carts:write`. An `Idempotency-Key` header is the
//! request id: a retry with the same key replays the first clear.
//!
//! Answers Stateset's cart object (amounts in minor units, `metadata.clear_reason`,
//! `metadata.items_cleared`, an info message), or `{"error": {type, code, message}}`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Map, Value, json};

use super::{BodyError, HttpState, cart_request, header_str, reason, respond, rfc3339_seconds};
use crate::auth::Scope;
use crate::pb;
use crate::pb::cart_service_server::CartService as _;

pub const DIALECT: &str = "stateset";

pub fn routes() -> Router<HttpState> {
    Router::new().route("/v1/carts/{cart_id}/clear", any(handle))
}

/// A Stateset error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatesetError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl StatesetError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
        }
    }

    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    fn into_response(self) -> Response {
        let body =
            json!({ "error": { "type": self.kind, "code": self.code, "message": self.message } });
        respond(self.status, "application/json", body.to_string())
    }
}

/// The clear options of a request body (an empty body means the defaults).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClearOptions {
    pub preserve_coupons: bool,
    pub reason: String,
}

pub fn decode(headers: &HeaderMap, body: &[u8]) -> Result<ClearOptions, StatesetError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ClearOptions::default());
    }
    if !super::content_type_is(headers, "json") {
        return Err(StatesetError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "unsupported_media_type",
            "Content-Type must be application/json",
        ));
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(StatesetError::invalid(
            "invalid_json",
            "The request body must be a JSON object",
        ));
    };
    let mut options = ClearOptions::default();
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("preserve_coupons", Value::Bool(b)) => options.preserve_coupons = b,
            ("preserve_coupons", Value::Null) => {}
            ("preserve_coupons", _) => {
                return Err(StatesetError::invalid(
                    "parameter_invalid",
                    "preserve_coupons must be a boolean",
                ));
            }
            ("reason", Value::String(r)) => options.reason = r,
            ("reason", Value::Null) => {}
            ("reason", _) => {
                return Err(StatesetError::invalid(
                    "parameter_invalid",
                    "reason must be a string",
                ));
            }
            (other, _) => {
                return Err(StatesetError::invalid(
                    "parameter_unknown",
                    format!("Unknown parameter: {other}"),
                ));
            }
        }
    }
    Ok(options)
}

/// The cleared cart as Stateset's cart object.
pub fn cart_object(cart: &pb::Cart, items_cleared: i64) -> Value {
    let status = match cart.status() {
        pb::CartStatus::Deleted => "deleted",
        _ => "active",
    };
    let mut metadata: Map<String, Value> = cart
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    metadata.insert(
        "clear_reason".into(),
        Value::from(cart.clear_reason.clone()),
    );
    metadata.insert("items_cleared".into(), Value::from(items_cleared));
    let items: Vec<Value> = cart
        .items
        .iter()
        .map(|l| {
            json!({
                "id": l.line_id, "sku": l.sku, "product_id": l.product_id, "name": l.title,
                "quantity": l.quantity, "unit_price": l.unit_price, "total": l.total_price,
            })
        })
        .collect();
    let coupons: Vec<Value> = cart
        .applied_coupons
        .iter()
        .map(|c| json!({ "code": c.code, "amount": c.amount }))
        .collect();
    json!({
        "id": cart.id,
        "object": "cart",
        "customer_id": cart.customer_id,
        "session_id": cart.session_id,
        "channel": cart.channel,
        "currency": cart.currency,
        "locale": cart.locale,
        "status": status,
        "items": items,
        "item_count": cart.item_count,
        "unique_item_count": cart.unique_item_count,
        "subtotal": cart.subtotal,
        "tax_amount": 0,
        "shipping_amount": 0,
        "discount_amount": cart.discount_amount,
        "total": cart.total,
        "shipping_address": Value::Null,
        "applied_coupons": coupons,
        "applied_promotions": [],
        "expires_at": rfc3339_seconds(&cart.expires_at),
        "created_at": rfc3339_seconds(&cart.created_at),
        "updated_at": rfc3339_seconds(&cart.updated_at),
        "last_activity": rfc3339_seconds(&cart.last_activity_at),
        "cleared_at": rfc3339_seconds(&cart.cleared_at),
        "metadata": metadata,
        "messages": [ { "type": "info", "message": "Cart has been cleared" } ],
    })
}

async fn handle(
    State(state): State<HttpState>,
    method: axum::http::Method,
    Path(cart_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match clear(&state, method, cart_id, &headers, body).await {
        Ok((cart, items_cleared)) => respond(
            StatusCode::OK,
            "application/json",
            cart_object(&cart, items_cleared).to_string(),
        ),
        Err(error) => error.into_response(),
    }
}

async fn clear(
    state: &HttpState,
    method: axum::http::Method,
    cart_id: String,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(pb::Cart, i64), StatesetError> {
    if method != axum::http::Method::POST {
        return Err(StatesetError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            "Use POST to clear a cart",
        ));
    }
    let principal = state
        .tenancy
        .api_key(header_str(headers, header::AUTHORIZATION))
        .map_err(|_| {
            StatesetError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "unauthorized",
                "Invalid or missing API key",
            )
        })?;
    principal.require(Scope::Write).map_err(|_| {
        StatesetError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "forbidden",
            "This API key lacks the carts:write permission",
        )
    })?;
    let body = super::body(body).map_err(|e| match e {
        BodyError::TooLarge => StatesetError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "payload_too_large",
            "The request body is larger than 64 KiB",
        ),
        BodyError::Unreadable => {
            StatesetError::invalid("invalid_body", "The request body could not be read")
        }
    })?;
    let options = decode(headers, &body)?;
    let request = pb::ClearRequest {
        cart_id,
        preserve_coupons: options.preserve_coupons,
        reason: options.reason,
        expected_version: 0,
        request_id: super::idempotency_key(headers),
    };
    match state
        .service
        .clear(cart_request(request, principal, DIALECT))
        .await
    {
        Ok(response) => {
            let response = response.into_inner();
            let cart = response.cart.ok_or_else(|| {
                StatesetError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "api_error",
                    "internal_error",
                    "Internal error",
                )
            })?;
            Ok((cart, response.items_cleared))
        }
        Err(status) => Err(match reason(&status).as_str() {
            "CART_NOT_FOUND" => StatesetError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "resource_missing",
                "Cart not found",
            ),
            "INVALID_ARGUMENT" => {
                StatesetError::invalid("parameter_invalid", status.message().to_owned())
            }
            "CART_DELETED" => StatesetError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "cart_not_active",
                "Cart is checked out and cannot be cleared",
            ),
            "REQUEST_ID_REUSED" => StatesetError::new(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                "idempotency_key_reused",
                "Keys for idempotent requests can only be used with the same parameters they were first used with",
            ),
            "OVERLOADED" => StatesetError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "service_unavailable",
                "Too many requests in flight, retry later",
            ),
            "STORE_UNAVAILABLE" | "REPLICATION_TIMEOUT" | "STORE_FULL" => StatesetError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "service_unavailable",
                "Service unavailable, retry later",
            ),
            _ => StatesetError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal_error",
                "Internal error",
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        headers
    }

    #[test]
    fn decodes_the_seed_body_and_empty_bodies() {
        let options = decode(
            &json_headers(),
            br#"{"preserve_coupons": false, "reason": "customer_requested"}"#,
        )
        .unwrap();
        assert_eq!(options.reason, "customer_requested");
        assert!(!options.preserve_coupons);
        assert_eq!(
            decode(&HeaderMap::new(), b"").unwrap(),
            ClearOptions::default()
        );
    }

    #[test]
    fn refuses_wrong_types_unknown_fields_and_non_json() {
        for bad in [
            &br#"{"preserve_coupons": "yes"}"#[..],
            br#"{"reason": 1}"#,
            br#"{"x": 1}"#,
            b"[]",
            b"{",
        ] {
            assert_eq!(
                decode(&json_headers(), bad).unwrap_err().status,
                StatusCode::BAD_REQUEST
            );
        }
        assert_eq!(
            decode(&HeaderMap::new(), b"{}").unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
