//! Stateset (seed 002): `POST /v1/carts/{id}/clear` with `{preserve_coupons, reason}`, mapped
//! to `Clear`. Needs a `Bearer` API key with `carts:write`. An `Idempotency-Key` header is the
//! idempotency key: a retry with the same key replays the first clear.
//!
//! Answers Stateset's cart object (amounts in minor units, `metadata.clear_reason`,
//! `metadata.items_cleared`, an info message), or `{"error": {type, code, message}}`.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Value, json};

use super::encode::{EMPTY_LIST, NULL, Rfc3339, each, json_sized};
use super::pipeline::{self, BodyError, Context, Credentials, Dialect};
use super::{HttpState, header_str, respond};
use crate::core::{CartView, Clear, ClearOutcome};
use crate::domain::CartStatus;
use crate::error::CartError;
use crate::tenancy::Tenancy;

pub const DIALECT: &str = "stateset";

pub fn routes() -> Router<HttpState> {
    Router::new().route(
        "/v1/carts/{cart_id}/clear",
        any(pipeline::handle::<Stateset>),
    )
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

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "internal_error",
            "Internal error",
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

/// A line of the cart object.
#[derive(Serialize)]
struct Item<'a> {
    id: &'a str,
    name: &'a str,
    product_id: &'a str,
    quantity: u32,
    sku: &'a str,
    total: i64,
    unit_price: i64,
}

#[derive(Serialize)]
struct AppliedCoupon<'a> {
    amount: i64,
    code: &'a str,
}

#[derive(Serialize)]
struct Message {
    message: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// A metadata value: the cart's own are text, `items_cleared` a number.
#[derive(Clone, Copy, Serialize)]
#[serde(untagged)]
enum MetaValue<'a> {
    Text(&'a str),
    Number(i64),
}

/// The cart's metadata with `clear_reason` and `items_cleared` merged in (they win over the
/// cart's own keys of those names), in key order.
struct Metadata<'a> {
    cart: &'a std::collections::BTreeMap<String, String>,
    clear_reason: &'a str,
    items_cleared: i64,
}

impl Serialize for Metadata<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ours = [
            ("clear_reason", MetaValue::Text(self.clear_reason)),
            ("items_cleared", MetaValue::Number(self.items_cleared)),
        ];
        let mut ours = ours.into_iter().peekable();
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.cart {
            let mut shadowed = false;
            while let Some((name, ours_value)) = ours.next_if(|(name, _)| *name <= key.as_str()) {
                map.serialize_entry(name, &ours_value)?;
                shadowed |= name == key;
            }
            if !shadowed {
                map.serialize_entry(key, value)?;
            }
        }
        for (name, value) in ours {
            map.serialize_entry(name, &value)?;
        }
        map.end()
    }
}

/// The cart object; fields in the byte order of their keys.
#[derive(Serialize)]
struct CartObject<'a, I, C> {
    applied_coupons: C,
    applied_promotions: [(); 0],
    channel: &'a str,
    cleared_at: Option<Rfc3339>,
    created_at: Rfc3339,
    currency: &'a str,
    customer_id: &'a str,
    discount_amount: i64,
    expires_at: Rfc3339,
    id: &'a str,
    item_count: i64,
    items: I,
    last_activity: Rfc3339,
    locale: &'a str,
    messages: [Message; 1],
    metadata: Metadata<'a>,
    object: &'static str,
    session_id: &'a str,
    shipping_address: (),
    shipping_amount: i64,
    status: &'static str,
    subtotal: i64,
    tax_amount: i64,
    total: i64,
    unique_item_count: i64,
    updated_at: Rfc3339,
}

/// The cleared cart as Stateset's cart object (its JSON).
pub fn cart_object(cart: &CartView, items_cleared: i64) -> String {
    let state = &cart.state;
    let header = &state.header;
    let totals = &cart.totals;
    let items = each(&state.lines, |_, l| Item {
        id: l.line_id.as_str(),
        name: &l.title,
        product_id: &l.product_id,
        quantity: l.quantity,
        sku: l.sku.as_str(),
        total: l.total_price(),
        unit_price: l.unit_price,
    });
    let coupons = each(&state.coupons, |_, c| AppliedCoupon {
        amount: c.amount,
        code: c.code.as_str(),
    });
    // About 150 bytes a line, as the sample carts have.
    let capacity = 768 + 192 * state.lines.len();
    json_sized(
        &CartObject {
            applied_coupons: coupons,
            applied_promotions: EMPTY_LIST,
            channel: &header.channel,
            cleared_at: state.cleared_at.map(Rfc3339::seconds),
            created_at: Rfc3339::seconds(state.created_at),
            currency: header.currency.as_str(),
            customer_id: &header.customer_id,
            discount_amount: totals.discount_amount,
            expires_at: Rfc3339::seconds(cart.expires_at),
            id: cart.id(),
            item_count: totals.item_count,
            items,
            last_activity: Rfc3339::seconds(state.last_activity_at),
            locale: &header.locale,
            messages: [Message {
                message: "Cart has been cleared",
                kind: "info",
            }],
            metadata: Metadata {
                cart: &header.metadata,
                clear_reason: &state.clear_reason,
                items_cleared,
            },
            object: "cart",
            session_id: &header.session_id,
            shipping_address: NULL,
            shipping_amount: 0,
            status: match state.status {
                CartStatus::Deleted => "deleted",
                CartStatus::Active => "active",
                // A Clear of these is refused, so no cleared cart has them.
                CartStatus::Frozen => "frozen",
                CartStatus::Merging | CartStatus::Merged => "merged",
            },
            subtotal: totals.subtotal,
            tax_amount: 0,
            total: totals.total,
            unique_item_count: totals.unique_item_count,
            updated_at: Rfc3339::seconds(state.updated_at),
        },
        capacity,
    )
}

/// `POST /v1/carts/{id}/clear` → Clear.
pub struct Stateset;

impl Dialect for Stateset {
    const NAME: &'static str = DIALECT;
    const IDEMPOTENCY_KEY_HEADER: bool = true;
    type Command = Clear;
    /// The path's cart id and the body's options.
    type Request = (String, ClearOptions);
    type Error = StatesetError;

    fn check_method(method: &Method) -> Result<(), StatesetError> {
        match *method {
            Method::POST => Ok(()),
            _ => Err(StatesetError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
                "Use POST to clear a cart",
            )),
        }
    }

    fn authenticate(tenancy: &Tenancy, cx: &Context) -> Result<Credentials, StatesetError> {
        tenancy
            .api_key(header_str(&cx.head.headers, header::AUTHORIZATION))
            .map(Credentials::Head)
            .map_err(|_| {
                StatesetError::new(
                    StatusCode::UNAUTHORIZED,
                    "authentication_error",
                    "unauthorized",
                    "Invalid or missing API key",
                )
            })
    }

    fn forbidden() -> StatesetError {
        StatesetError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "forbidden",
            "This API key lacks the carts:write permission",
        )
    }

    fn body_refused(error: BodyError, _: &Context) -> StatesetError {
        match error {
            BodyError::TooLarge => StatesetError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "payload_too_large",
                "The request body is larger than 64 KiB",
            ),
            BodyError::Unreadable => {
                StatesetError::invalid("invalid_body", "The request body could not be read")
            }
        }
    }

    fn decode(cx: &Context, body: Bytes) -> Result<Self::Request, StatesetError> {
        Ok((cx.head.path.clone(), decode(&cx.head.headers, &body)?))
    }

    fn command((cart_id, options): Self::Request) -> Result<Clear, CartError> {
        Clear::parse(&cart_id, options.preserve_coupons, &options.reason)
    }

    fn encode(outcome: ClearOutcome, _: &Context) -> Response {
        respond(
            StatusCode::OK,
            "application/json",
            cart_object(&outcome.cart, outcome.items_cleared),
        )
    }

    fn error(error: CartError, _: &Context) -> StatesetError {
        match error {
            CartError::CartNotFound => StatesetError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "resource_missing",
                "Cart not found",
            ),
            CartError::InvalidArgument(_) => {
                StatesetError::invalid("parameter_invalid", error.client_message())
            }
            CartError::CartDeleted => StatesetError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "cart_not_active",
                "Cart is checked out and cannot be cleared",
            ),
            // Stateset's conflict for a cart in a state that refuses the call (409
            // cart_not_active, as a checked out cart), with the state named in the message.
            CartError::CartFrozen => StatesetError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "cart_not_active",
                "Cart is frozen for checkout and cannot be cleared",
            ),
            CartError::CartMerged => StatesetError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "cart_not_active",
                "Cart was merged into another cart and cannot be cleared",
            ),
            CartError::IdempotencyKeyReused => StatesetError::new(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                "idempotency_key_reused",
                "Keys for idempotent requests can only be used with the same parameters they were first used with",
            ),
            CartError::Overloaded => StatesetError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "service_unavailable",
                "Too many requests in flight, retry later",
            ),
            CartError::Unavailable(_)
            | CartError::ReplicationTimeout { .. }
            | CartError::StoreFull => StatesetError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "service_unavailable",
                "Service unavailable, retry later",
            ),
            // Not outcomes of a Clear this shim sends, or faults of the service.
            CartError::LineNotFound(_)
            | CartError::NoActiveCart
            | CartError::CartAlreadyExists
            | CartError::OrderNumberMismatch
            | CartError::CurrencyMismatch(_)
            | CartError::LineLimit(_)
            | CartError::QuantityLimit { .. }
            | CartError::CouponLimit(_)
            | CartError::CartTooLarge(_)
            | CartError::VersionMismatch { .. }
            | CartError::Unauthenticated
            | CartError::PermissionDenied(_)
            | CartError::DeadlineExceeded
            | CartError::Internal(_) => StatesetError::internal(),
        }
    }

    fn refuse(error: StatesetError, _: &Context) -> Response {
        error.into_response()
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

    /// The `serde_json::Value` tree this dialect's body was once built as: the typed encoder
    /// must write exactly its bytes.
    mod tree {
        use serde_json::{Map, Value, json};

        use crate::core::CartView;
        use crate::domain::CartStatus;

        fn seconds(t: crate::domain::UnixMillis) -> String {
            let t = t.max(0) / 1000 * 1000;
            let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(t as u64);
            humantime::format_rfc3339_seconds(time).to_string()
        }

        pub fn cart_object_tree(cart: &CartView, items_cleared: i64) -> Value {
            let state = &cart.state;
            let status = match state.status {
                CartStatus::Deleted => "deleted",
                CartStatus::Active => "active",
                CartStatus::Frozen => "frozen",
                CartStatus::Merging | CartStatus::Merged => "merged",
            };
            let mut metadata: Map<String, Value> = state
                .header
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect();
            metadata.insert(
                "clear_reason".into(),
                Value::from(state.clear_reason.clone()),
            );
            metadata.insert("items_cleared".into(), Value::from(items_cleared));
            let items: Vec<Value> = state
                .lines
                .iter()
                .map(|l| {
                    json!({
                        "id": l.line_id.as_str(), "sku": l.sku.as_str(), "product_id": l.product_id,
                        "name": l.title, "quantity": l.quantity, "unit_price": l.unit_price,
                        "total": l.total_price(),
                    })
                })
                .collect();
            let coupons: Vec<Value> = state
                .coupons
                .iter()
                .map(|c| json!({ "code": c.code.as_str(), "amount": c.amount }))
                .collect();
            let header = &state.header;
            json!({
                "id": cart.id(),
                "object": "cart",
                "customer_id": header.customer_id,
                "session_id": header.session_id,
                "channel": header.channel,
                "currency": header.currency.as_str(),
                "locale": header.locale,
                "status": status,
                "items": items,
                "item_count": cart.totals.item_count,
                "unique_item_count": cart.totals.unique_item_count,
                "subtotal": cart.totals.subtotal,
                "tax_amount": 0,
                "shipping_amount": 0,
                "discount_amount": cart.totals.discount_amount,
                "total": cart.totals.total,
                "shipping_address": Value::Null,
                "applied_coupons": coupons,
                "applied_promotions": [],
                "expires_at": seconds(cart.expires_at),
                "created_at": seconds(state.created_at),
                "updated_at": seconds(state.updated_at),
                "last_activity": seconds(state.last_activity_at),
                "cleared_at": state.cleared_at.map(seconds),
                "metadata": metadata,
                "messages": [ { "type": "info", "message": "Cart has been cleared" } ],
            })
        }
    }

    #[test]
    fn the_cart_object_is_byte_for_byte_the_json_tree() {
        use crate::http::encode::sample;
        for (lines, awkward) in [(0, false), (1, true), (10, false), (10, true)] {
            let cart = sample::cart(lines, awkward);
            assert_eq!(
                cart_object(&cart, 42),
                tree::cart_object_tree(&cart, 42).to_string(),
                "{lines} lines, awkward: {awkward}"
            );
        }
        // The cart's own metadata keys before, between and after the two merged ones.
        let mut cart = sample::cart(1, false);
        cart.state.header.metadata = [
            ("a", "1"),
            ("clear_reason", "theirs"),
            ("d", "2"),
            ("items_cleared", "theirs"),
            ("j", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for metadata in [cart.state.header.metadata.clone(), Default::default()] {
            cart.state.header.metadata = metadata;
            assert_eq!(
                cart_object(&cart, 3),
                tree::cart_object_tree(&cart, 3).to_string()
            );
        }
    }
}
