//! Zaui ZAPI (seed 000): `zapiRemoveCartSession` over `DELETE /zapi/` or `POST /zapi/`,
//! mapped to `Remove`.
//!
//! Every answer is Zaui's XML envelope with HTTP 200 (413 for an oversized body, 405 for
//! another method); `methodErrorCode` is 0 on success, 1 for validation and credentials,
//! 3 for XML that cannot be read, 99 for anything else.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::any;

use super::xml::{self, escape};
use super::{BodyError, HttpState, cart_request, reason, respond};
use crate::pb;
use crate::pb::cart_service_server::CartService as _;
use crate::secret::Secret;

pub const DIALECT: &str = "zaui";
const METHOD: &str = "zapiRemoveCartSession";
const ZAPI_VERSION: &str = "2.1";

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/zapi/", any(handle))
        .route("/zapi", any(handle))
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

/// Zaui's response envelope.
pub fn envelope(method: &str, outcome: &Result<(), ZapiError>) -> String {
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

fn reply(status: StatusCode, method: &str, outcome: Result<(), ZapiError>) -> Response {
    respond(
        status,
        "application/xml; charset=utf-8",
        envelope(method, &outcome),
    )
}

async fn handle(
    State(state): State<HttpState>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if method != axum::http::Method::DELETE && method != axum::http::Method::POST {
        let refusal = ZapiError::validation("ZAPI accepts DELETE or POST");
        return reply(StatusCode::METHOD_NOT_ALLOWED, "", Err(refusal));
    }
    let body = match super::body(body) {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            let refusal = ZapiError::validation("The request body is larger than 64 KiB");
            return reply(StatusCode::PAYLOAD_TOO_LARGE, "", Err(refusal));
        }
        Err(BodyError::Unreadable) => {
            return reply(
                StatusCode::OK,
                "",
                Err(ZapiError::invalid_xml("Invalid XML: unreadable body")),
            );
        }
    };
    if headers.contains_key(axum::http::header::CONTENT_TYPE)
        && !super::content_type_is(&headers, "xml")
    {
        let refusal =
            ZapiError::invalid_xml("Invalid XML: Content-Type must be application/xml or text/xml");
        return reply(StatusCode::OK, "", Err(refusal));
    }
    let request = match decode(&body) {
        Ok(request) => request,
        Err((method, refusal)) => return reply(StatusCode::OK, &method, Err(refusal)),
    };
    let Some(principal) = state
        .tenancy
        .zaui(request.account_id, request.token.expose())
    else {
        return reply(
            StatusCode::OK,
            METHOD,
            Err(ZapiError::validation("Invalid zapiAccountId or zapiToken")),
        );
    };
    let remove = pb::RemoveRequest {
        cart_id: request.cart_id,
        expected_version: 0,
        request_id: String::new(),
    };
    let mut status_code = StatusCode::OK;
    let outcome = match state
        .service
        .remove(cart_request(remove, principal, DIALECT))
        .await
    {
        Ok(_) => Ok(()),
        Err(status) => Err(match reason(&status).as_str() {
            // The one refusal that is not 200: HTTP clients and proxies back off on a 503
            // with Retry-After, whatever the envelope says.
            "OVERLOADED" => {
                status_code = StatusCode::SERVICE_UNAVAILABLE;
                ZapiError::general("Too many requests in flight, retry later")
            }
            "CART_NOT_FOUND" => ZapiError::validation("Cart session not found"),
            "INVALID_ARGUMENT" => ZapiError::validation("cartId is not a valid cart id"),
            "CART_DELETED" => ZapiError::validation("Cart session is already checked out"),
            "STORE_UNAVAILABLE" | "REPLICATION_TIMEOUT" | "STORE_FULL" => {
                ZapiError::general("Service temporarily unavailable, retry later")
            }
            _ => ZapiError::general("General error"),
        }),
    };
    reply(status_code, METHOD, outcome)
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
}
