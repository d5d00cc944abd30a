//! Zaui ZAPI (seed 000): `zapiRemoveCartSession` over `DELETE /zapi/` or `POST /zapi/`,
//! mapped to `Remove`.
//!
//! Every answer is Zaui's XML envelope with HTTP 200 (413 for an oversized body, 405 for
//! another method); `methodErrorCode` is 0 on success, 1 for validation and credentials,
//! 3 for XML that cannot be read, 99 for anything else.

use std::fmt::Write as _;

use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::any;

use super::pipeline::{self, BodyError, Context, Credentials, Dialect};
use super::xml::{self, escape};
use super::{HttpState, respond};
use crate::auth::Principal;
use crate::core::{Remove, RemoveOutcome};
use crate::error::CartError;
use crate::secret::Secret;
use crate::tenancy::Tenancy;

pub const DIALECT: &str = "zaui";
const METHOD: &str = "zapiRemoveCartSession";
const ZAPI_VERSION: &str = "2.1";

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/zapi/", any(pipeline::handle::<Zaui>))
        .route("/zapi", any(pipeline::handle::<Zaui>))
}

/// A refusal: the method error code and message of the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZapiError {
    pub code: u8,
    pub message: String,
}

impl ZapiError {
    fn validation(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }

    fn invalid_xml(message: impl Into<String>) -> Self {
        Self {
            code: 3,
            message: message.into(),
        }
    }

    fn general(message: impl Into<String>) -> Self {
        Self {
            code: 99,
            message: message.into(),
        }
    }
}

/// A decoded `zapiRemoveCartSession` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveCartSession {
    pub account_id: u64,
    /// The presented token: never shown, not even by `{:?}`.
    pub token: Secret<String>,
    pub user_id: String,
    pub cart_id: String,
}

/// Decodes a request document; `Err` carries the envelope's method name (when it was read).
pub fn decode(body: &[u8]) -> Result<RemoveCartSession, (String, ZapiError)> {
    let text = std::str::from_utf8(body).map_err(|_| {
        (
            String::new(),
            ZapiError::invalid_xml("Invalid XML: the body is not UTF-8"),
        )
    })?;
    let doc = xml::parse(text).map_err(|e| {
        (
            String::new(),
            ZapiError::invalid_xml(format!("Invalid XML: {e}")),
        )
    })?;
    if doc.root != "request" {
        return Err((
            String::new(),
            ZapiError::invalid_xml("Invalid XML: the root element must be <request>"),
        ));
    }
    let method = doc
        .get("request/zapiMethod/methodName")
        .unwrap_or("")
        .to_owned();
    let fail = |message: &str| Err((method.clone(), ZapiError::validation(message)));
    if method.is_empty() {
        return fail("methodName is required");
    }
    if method != METHOD {
        return fail("Unknown methodName");
    }
    let Some(account_id) = doc.get("request/zapiAccountId").filter(|v| !v.is_empty()) else {
        return fail("zapiAccountId is required");
    };
    let Ok(account_id) = account_id.parse::<u64>() else {
        return fail("zapiAccountId must be an integer");
    };
    let token = doc.get("request/zapiToken").unwrap_or("");
    if token.is_empty() {
        return fail("zapiToken is required");
    }
    let user_id = doc.get("request/zapiUserId").unwrap_or("");
    if user_id.is_empty() {
        return fail("zapiUserId is required");
    }
    if !user_id.bytes().all(|b| b.is_ascii_digit()) {
        return fail("zapiUserId must be an integer");
    }
    let cart_id = doc.get("request/zapiMethod/cartId").unwrap_or("");
    if cart_id.is_empty() {
        return fail("cartId is required");
    }
    Ok(RemoveCartSession {
        account_id,
        token: Secret::new(token.to_owned()),
        user_id: user_id.to_owned(),
        cart_id: cart_id.to_owned(),
    })
}

/// Zaui's response envelope, written straight into one buffer.
pub fn envelope(method: &str, outcome: &Result<(), ZapiError>) -> String {
    let (error, message, code, method_message) = match outcome {
        Ok(()) => ("0", "OK", 0, "Cart sessions cleared and removed"),
        Err(e) => ("1", "Error", e.code, e.message.as_str()),
    };
    let mut xml = String::with_capacity(360 + method.len() + method_message.len());
    xml.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<response>\n    <zapiVersion>");
    xml.push_str(ZAPI_VERSION);
    xml.push_str("</zapiVersion>\n    <error>");
    xml.push_str(error);
    xml.push_str("</error>\n    <message>");
    xml.push_str(message);
    xml.push_str("</message>\n    <methodResponse>\n        <methodName>");
    xml.push_str(&escape(method));
    xml.push_str("</methodName>\n        <methodErrorCode>");
    let _ = write!(xml, "{code}");
    xml.push_str("</methodErrorCode>\n        <methodErrorMessage>");
    xml.push_str(&escape(method_message));
    xml.push_str("</methodErrorMessage>\n    </methodResponse>\n</response>\n");
    xml
}

fn reply(status: StatusCode, method: &str, outcome: Result<(), ZapiError>) -> Response {
    respond(
        status,
        "application/xml; charset=utf-8",
        envelope(method, &outcome),
    )
}

/// A refused ZAPI call: the envelope's method name and error, and the HTTP status (200 but
/// for the refusals that happen before the envelope is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZauiRefusal {
    pub status: StatusCode,
    pub method: String,
    pub error: ZapiError,
}

impl ZauiRefusal {
    /// A refusal of a decoded `zapiRemoveCartSession`.
    fn of_method(error: ZapiError) -> Self {
        Self {
            status: StatusCode::OK,
            method: METHOD.to_owned(),
            error,
        }
    }
}

/// `zapiRemoveCartSession` → Remove.
pub struct Zaui;

impl Dialect for Zaui {
    const NAME: &'static str = DIALECT;
    type Command = Remove;
    type Request = RemoveCartSession;
    type Error = ZauiRefusal;

    fn check_method(method: &Method) -> Result<(), ZauiRefusal> {
        match *method {
            Method::DELETE | Method::POST => Ok(()),
            _ => Err(ZauiRefusal {
                status: StatusCode::METHOD_NOT_ALLOWED,
                method: String::new(),
                error: ZapiError::validation("ZAPI accepts DELETE or POST"),
            }),
        }
    }

    /// The account id and token are elements of the request document.
    fn authenticate(_: &Tenancy, _: &Context) -> Result<Credentials, ZauiRefusal> {
        Ok(Credentials::InBody)
    }

    fn authenticate_request(
        tenancy: &Tenancy,
        request: &RemoveCartSession,
    ) -> Result<Principal, ZauiRefusal> {
        tenancy
            .zaui(request.account_id, request.token.expose())
            .ok_or_else(|| {
                ZauiRefusal::of_method(ZapiError::validation("Invalid zapiAccountId or zapiToken"))
            })
    }

    fn forbidden() -> ZauiRefusal {
        ZauiRefusal::of_method(ZapiError::validation("Invalid zapiAccountId or zapiToken"))
    }

    fn body_refused(error: BodyError, _: &Context) -> ZauiRefusal {
        let (status, error) = match error {
            BodyError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ZapiError::validation("The request body is larger than 64 KiB"),
            ),
            BodyError::Unreadable => (
                StatusCode::OK,
                ZapiError::invalid_xml("Invalid XML: unreadable body"),
            ),
        };
        ZauiRefusal {
            status,
            method: String::new(),
            error,
        }
    }

    fn decode(cx: &Context, body: Bytes) -> Result<RemoveCartSession, ZauiRefusal> {
        let headers = &cx.head.headers;
        if headers.contains_key(axum::http::header::CONTENT_TYPE)
            && !super::content_type_is(headers, "xml")
        {
            return Err(ZauiRefusal {
                status: StatusCode::OK,
                method: String::new(),
                error: ZapiError::invalid_xml(
                    "Invalid XML: Content-Type must be application/xml or text/xml",
                ),
            });
        }
        decode(&body).map_err(|(method, error)| ZauiRefusal {
            status: StatusCode::OK,
            method,
            error,
        })
    }

    fn command(request: RemoveCartSession) -> Result<Remove, CartError> {
        Remove::parse(&request.cart_id)
    }

    fn encode(_: RemoveOutcome, _: &Context) -> Response {
        reply(StatusCode::OK, METHOD, Ok(()))
    }

    fn error(error: CartError, _: &Context) -> ZauiRefusal {
        ZauiRefusal::of_method(match error {
            CartError::CartNotFound => ZapiError::validation("Cart session not found"),
            CartError::InvalidArgument(_) => ZapiError::validation("cartId is not a valid cart id"),
            CartError::CartDeleted => ZapiError::validation("Cart session is already checked out"),
            // ZAPI's refusals of a cart session's state are validation errors (as a checked out
            // session): a frozen session is never refused by Remove, a merged one is.
            CartError::CartFrozen => ZapiError::validation("Cart session is held for checkout"),
            CartError::CartMerged => {
                ZapiError::validation("Cart session was merged into the customer's cart")
            }
            // The one refusal that is not 200: HTTP clients and proxies back off on a 503
            // with Retry-After, whatever the envelope says.
            CartError::Overloaded => {
                return ZauiRefusal {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    ..ZauiRefusal::of_method(ZapiError::general(
                        "Too many requests in flight, retry later",
                    ))
                };
            }
            CartError::Unavailable(_)
            | CartError::ReplicationTimeout { .. }
            | CartError::StoreFull => {
                ZapiError::general("Service temporarily unavailable, retry later")
            }
            // Not outcomes of a Remove, or faults of the service.
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
            | CartError::IdempotencyKeyReused
            | CartError::Unauthenticated
            | CartError::PermissionDenied(_)
            | CartError::DeadlineExceeded
            | CartError::Internal(_) => ZapiError::general("General error"),
        })
    }

    fn refuse(refusal: ZauiRefusal, _: &Context) -> Response {
        reply(refusal.status, &refusal.method, Err(refusal.error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "<request>\n\t<zapiToken>99</zapiToken>\n\t<zapiAccountId>1234</zapiAccountId>\n\t<zapiUserId>7</zapiUserId>\n\t<zapiMethod>\n\t\t<methodName>zapiRemoveCartSession</methodName>\n\t\t<cartId>c1</cartId>\n\t</zapiMethod>\n</request>";

    #[test]
    fn decodes_the_seed_request() {
        let request = decode(SAMPLE.as_bytes()).unwrap();
        assert_eq!(request.account_id, 1234);
        assert_eq!(
            (request.token.expose().as_str(), request.cart_id.as_str()),
            ("99", "c1")
        );
    }

    #[test]
    fn refusals_carry_their_method_error_code() {
        let unknown = SAMPLE.replace("zapiRemoveCartSession", "zapiGetCart");
        let (method, error) = decode(unknown.as_bytes()).unwrap_err();
        assert_eq!((method.as_str(), error.code), ("zapiGetCart", 1));
        let (_, error) = decode(b"<request><unclosed></request>").unwrap_err();
        assert_eq!(error.code, 3);
        let (_, error) = decode(SAMPLE.replace("<cartId>c1</cartId>", "").as_bytes()).unwrap_err();
        assert_eq!(
            (error.code, error.message.as_str()),
            (1, "cartId is required")
        );
    }

    #[test]
    fn the_envelope_matches_the_seed() {
        let ok = envelope(METHOD, &Ok(()));
        for part in [
            "<zapiVersion>2.1</zapiVersion>",
            "<error>0</error>",
            "<message>OK</message>",
            "<methodName>zapiRemoveCartSession</methodName>",
            "<methodErrorCode>0</methodErrorCode>",
            "<methodErrorMessage>Cart sessions cleared and removed</methodErrorMessage>",
        ] {
            assert!(ok.contains(part), "{part} missing from {ok}");
        }
        let err = envelope("<x>", &Err(ZapiError::invalid_xml("bad & worse")));
        assert!(err.contains("<methodName>&lt;x&gt;</methodName>"));
        assert!(err.contains("<methodErrorMessage>bad &amp; worse</methodErrorMessage>"));
    }

    /// The envelope as it was once written with `format!`: the direct writer must match it.
    fn envelope_formatted(method: &str, outcome: &Result<(), ZapiError>) -> String {
        let (error, message, code, method_message) = match outcome {
            Ok(()) => (0, "OK", 0, "Cart sessions cleared and removed"),
            Err(e) => (1, "Error", e.code, e.message.as_str()),
        };
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<response>\n    <zapiVersion>{ZAPI_VERSION}</zapiVersion>\n    <error>{error}</error>\n    <message>{message}</message>\n    <methodResponse>\n        <methodName>{}</methodName>\n        <methodErrorCode>{code}</methodErrorCode>\n        <methodErrorMessage>{}</methodErrorMessage>\n    </methodResponse>\n</response>\n",
            escape(method),
            escape(method_message)
        )
    }

    #[test]
    fn the_envelope_is_byte_for_byte_the_formatted_one() {
        for (method, outcome) in [
            (METHOD, Ok(())),
            (
                "",
                Err(ZapiError::invalid_xml("Invalid XML: <bad> & \"worse\"")),
            ),
            ("<x>", Err(ZapiError::general("é 🛒"))),
            (METHOD, Err(ZapiError::validation("cartId is required"))),
        ] {
            assert_eq!(
                envelope(method, &outcome),
                envelope_formatted(method, &outcome)
            );
        }
    }
}
