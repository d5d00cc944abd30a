//! Fabric XM (seed 001): `PATCH /api-cart/cart/{cartId}/orderNumber` with `{"orderNumber"}`,
//! mapped to `Delete`. An `Idempotency-Key` header is the idempotency key.
//!
//! The tenant comes from the `x-site-context` header's `account`; the caller also presents a
//! `Bearer` API key of that tenant. Answers the deleted cart in XM's shape, or
//! `{"code","message"}` errors: 400 REQUEST_VALIDATION, 401/403, 404 CART_NOT_FOUND, 409, 500
//! for an account no tenant has, 503 while the store is down.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde::Serialize;
use serde_json::Value;

use super::encode::{EMPTY_LIST, NameValues, Rfc3339, each, json, json_sized};
use super::pipeline::{self, BodyError, Context, Credentials, Dialect};
use super::{HttpState, header_str, respond};
use crate::core::{CartView, Delete};
use crate::error::CartError;
use crate::tenancy::Tenancy;

pub const DIALECT: &str = "fabric_xm";
/// XM cart ids are exactly this long.
const CART_ID_LEN: usize = 24;

pub fn routes() -> Router<HttpState> {
    Router::new().route(
        "/api-cart/cart/{cart_id}/orderNumber",
        any(pipeline::handle::<FabricXm>),
    )
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

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "Internal Server Error",
        )
    }

    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            code: &'a str,
            message: &'a str,
        }
        let body = json(&Body {
            code: self.code,
            message: &self.message,
        });
        respond(self.status, "application/json", body)
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

/// `{"amount", "currency"}`.
#[derive(Serialize)]
struct Amount<'a> {
    amount: i64,
    currency: &'a str,
}

/// An item's `price`: XM's sale and discount fields are always zero here.
#[derive(Serialize)]
struct Price<'a> {
    base: i64,
    currency: &'a str,
    discount: Discount,
    sale: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Discount {
    discount_amount: i64,
    price: i64,
    promos_applied: [(); 0],
}

/// `itemId`: the product id, as a number when it is one.
#[derive(Serialize)]
#[serde(untagged)]
enum ItemId<'a> {
    Number(u64),
    Text(&'a str),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    #[serde(rename = "_id")]
    underscore_id: &'a str,
    attribute_total_price: i64,
    attributes: NameValues<'a>,
    created_at: Rfc3339,
    discounted_quantity: i64,
    id: &'a str,
    is_pickup: bool,
    item_id: ItemId<'a>,
    line_item_id: usize,
    price: Price<'a>,
    quantity: u32,
    sample: bool,
    sku: &'a str,
    title: &'a str,
    total_price: Amount<'a>,
    updated_at: Rfc3339,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Promo<'a> {
    code: &'a str,
    discount_amount: i64,
}

/// XM's deleted cart; fields in the byte order of their keys.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeletedCart<'a, I, P> {
    #[serde(rename = "__v")]
    version: i64,
    #[serde(rename = "_id")]
    id: &'a str,
    all_promos_applied: P,
    attributes: NameValues<'a>,
    created_at: Rfc3339,
    deleted: bool,
    items: I,
    order_number: &'a str,
    quantity: i64,
    registered_user: bool,
    total_amount: Amount<'a>,
    updated_at: Rfc3339,
}

/// The deleted cart in XM's shape (its JSON).
pub fn deleted_cart(cart: &CartView) -> String {
    let state = &cart.state;
    let currency = state.header.currency.as_str();
    let items = each(&state.lines, |i, line| Item {
        underscore_id: line.line_id.as_str(),
        attribute_total_price: 0,
        attributes: NameValues(&line.attributes),
        created_at: Rfc3339::millis(line.added_at),
        discounted_quantity: 0,
        id: line.line_id.as_str(),
        is_pickup: false,
        item_id: match line.product_id.parse::<u64>() {
            Ok(n) => ItemId::Number(n),
            Err(_) => ItemId::Text(&line.product_id),
        },
        line_item_id: i + 1,
        price: Price {
            base: line.unit_price,
            currency,
            discount: Discount {
                discount_amount: 0,
                price: 0,
                promos_applied: EMPTY_LIST,
            },
            sale: 0,
        },
        quantity: line.quantity,
        sample: false,
        sku: line.sku.as_str(),
        title: &line.title,
        total_price: Amount {
            amount: line.total_price(),
            currency,
        },
        updated_at: Rfc3339::millis(line.updated_at),
    });
    let promos = each(&state.coupons, |_, c| Promo {
        code: c.code.as_str(),
        discount_amount: c.amount,
    });
    // About 550 bytes a line, as the sample carts have.
    let capacity = 512 + 640 * state.lines.len();
    json_sized(
        &DeletedCart {
            version: state.version,
            id: cart.id(),
            all_promos_applied: promos,
            attributes: NameValues(&state.header.metadata),
            created_at: Rfc3339::millis(state.created_at),
            deleted: cart.is_deleted(),
            items,
            order_number: &state.order_number,
            quantity: cart.totals.item_count,
            registered_user: !state.header.customer_id.is_empty(),
            total_amount: Amount {
                amount: cart.totals.total,
                currency,
            },
            updated_at: Rfc3339::millis(state.updated_at),
        },
        capacity,
    )
}

/// `PATCH /api-cart/cart/{cartId}/orderNumber` → Delete.
pub struct FabricXm;

impl Dialect for FabricXm {
    const NAME: &'static str = DIALECT;
    const IDEMPOTENCY_KEY_HEADER: bool = true;
    type Command = Delete;
    /// The path's cart id and the body's order number.
    type Request = (String, String);
    type Error = XmError;

    fn check_method(method: &Method) -> Result<(), XmError> {
        match *method {
            Method::PATCH => Ok(()),
            _ => Err(XmError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "Use PATCH.",
            )),
        }
    }

    /// The `x-site-context` account names the tenant; the API key must be one of its keys.
    fn authenticate(tenancy: &Tenancy, cx: &Context) -> Result<Credentials, XmError> {
        let headers = &cx.head.headers;
        let account = site_account(header_str(headers, "x-site-context"))?;
        let tenant = tenancy.xm_account(&account).ok_or_else(XmError::internal)?;
        tenancy
            .api_key(header_str(headers, header::AUTHORIZATION))
            .ok()
            .filter(|p| p.tenant == tenant)
            .map(Credentials::Head)
            .ok_or_else(|| {
                XmError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "Invalid or missing API key for this account.",
                )
            })
    }

    fn forbidden() -> XmError {
        XmError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "This API key cannot modify carts.",
        )
    }

    fn body_refused(error: BodyError, _: &Context) -> XmError {
        match error {
            BodyError::TooLarge => XmError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "Request body is larger than 64 KiB.",
            ),
            BodyError::Unreadable => XmError::validation("Invalid data in body: unreadable"),
        }
    }

    fn decode(cx: &Context, body: Bytes) -> Result<Self::Request, XmError> {
        check_cart_id(&cx.head.path)?;
        let order_number = order_number(&cx.head.headers, &body)?;
        Ok((cx.head.path.clone(), order_number))
    }

    fn command((cart_id, order_number): Self::Request) -> Result<Delete, CartError> {
        Delete::parse(&cart_id, &order_number)
    }

    fn encode(cart: CartView, _: &Context) -> Response {
        respond(StatusCode::OK, "application/json", deleted_cart(&cart))
    }

    fn error(error: CartError, _: &Context) -> XmError {
        match error {
            CartError::CartNotFound => {
                XmError::new(StatusCode::NOT_FOUND, "CART_NOT_FOUND", "Cart not found.")
            }
            // The cart id was checked in XM's words: only the order number is left.
            CartError::InvalidArgument(_) => XmError::validation(
                "Invalid data in body: /orderNumber should be printable text of at most 64 characters",
            ),
            CartError::IdempotencyKeyReused => XmError::new(
                StatusCode::CONFLICT,
                "IDEMPOTENCY_KEY_REUSED",
                "Idempotency-Key was already used for a different request.",
            ),
            CartError::OrderNumberMismatch => XmError::new(
                StatusCode::CONFLICT,
                "CART_ALREADY_DELETED",
                "Cart was already deleted with another order number.",
            ),
            // XM's conflicts are 409 with an UPPER_SNAKE code, as CART_ALREADY_DELETED: a frozen
            // cart is deleted (checkout ends so), a merged one is not.
            CartError::CartFrozen => XmError::new(
                StatusCode::CONFLICT,
                "CART_FROZEN",
                "Cart is frozen for checkout.",
            ),
            CartError::CartMerged => XmError::new(
                StatusCode::CONFLICT,
                "CART_MERGED",
                "Cart was merged into another cart.",
            ),
            CartError::Overloaded => XmError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Too many requests in flight, retry later.",
            ),
            CartError::Unavailable(_)
            | CartError::ReplicationTimeout { .. }
            | CartError::StoreFull => XmError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Service unavailable, retry later.",
            ),
            // Not outcomes of a Delete, or faults of the service.
            CartError::LineNotFound(_)
            | CartError::NoActiveCart
            | CartError::CartAlreadyExists
            | CartError::CartDeleted
            | CartError::CurrencyMismatch(_)
            | CartError::LineLimit(_)
            | CartError::QuantityLimit { .. }
            | CartError::CouponLimit(_)
            | CartError::CartTooLarge(_)
            | CartError::VersionMismatch { .. }
            | CartError::Unauthenticated
            | CartError::PermissionDenied(_)
            | CartError::DeadlineExceeded
            | CartError::Internal(_) => XmError::internal(),
        }
    }

    fn bad_idempotency_key(_: CartError, _: &Context) -> XmError {
        XmError::validation(
            "Invalid data in header: Idempotency-Key should be 1 to 64 characters of A-Z, a-z, 0-9, _ and -",
        )
    }

    fn refuse(error: XmError, _: &Context) -> Response {
        error.into_response()
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

    /// The `serde_json::Value` tree this dialect's body was once built as: the typed encoder
    /// must write exactly its bytes.
    mod tree {
        use serde_json::{Value, json};

        use crate::core::CartView;

        fn millis(t: crate::domain::UnixMillis) -> String {
            let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(t.max(0) as u64);
            humantime::format_rfc3339_millis(time).to_string()
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

        pub fn deleted_cart_tree(cart: &CartView) -> Value {
            let state = &cart.state;
            let currency = state.header.currency.as_str();
            let items: Vec<Value> = state
                .lines
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
                        "createdAt": millis(line.added_at),
                        "updatedAt": millis(line.updated_at),
                        "_id": line.line_id.as_str(),
                        "itemId": item_id,
                        "quantity": line.quantity,
                        "sku": line.sku.as_str(),
                        "title": line.title,
                        "lineItemId": i + 1,
                        "attributeTotalPrice": 0,
                        "totalPrice": amount(currency, line.total_price()),
                        "attributes": name_values(&line.attributes),
                        "id": line.line_id.as_str(),
                    })
                })
                .collect();
            let promos: Vec<Value> = state
                .coupons
                .iter()
                .map(|c| json!({ "code": c.code.as_str(), "discountAmount": c.amount }))
                .collect();
            json!({
                "_id": cart.id(),
                "deleted": cart.is_deleted(),
                "registeredUser": !state.header.customer_id.is_empty(),
                "items": items,
                "allPromosApplied": promos,
                "attributes": name_values(&state.header.metadata),
                "createdAt": millis(state.created_at),
                "updatedAt": millis(state.updated_at),
                "__v": state.version,
                "orderNumber": state.order_number,
                "totalAmount": amount(currency, cart.totals.total),
                "quantity": cart.totals.item_count,
            })
        }
    }

    #[test]
    fn the_deleted_cart_is_byte_for_byte_the_json_tree() {
        use crate::http::encode::sample;
        for (lines, awkward) in [(0, false), (1, true), (10, false), (10, true)] {
            let cart = sample::cart(lines, awkward);
            assert_eq!(
                deleted_cart(&cart),
                tree::deleted_cart_tree(&cart).to_string(),
                "{lines} lines, awkward: {awkward}"
            );
        }
    }
}
