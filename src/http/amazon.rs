//! Amazon Product Advertising API (seed 003): `GET /onca/xml?Service=AWSECommerceService&
//! Operation=CartClear&CartId=..&HMAC=..&AWSAccessKeyId=..`, mapped to `Clear`.
//!
//! The access key id names the tenant; the HMAC (the cart's token, which survives Clear) is
//! checked in constant time before the store is touched. Answers `CartClearResponse` XML with
//! `OperationRequest` and `Cart`; refusals go in `Cart/Request/Errors` with `IsValid` False.

use std::fmt::Write as _;

use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;

use super::pipeline::{self, BodyError, Context, Credentials, Dialect};
use super::xml::escape;
use super::{HttpState, header_str, respond};
use crate::auth::{CartTokens, Principal};
use crate::core::{Clear, ClearOutcome};
use crate::domain::CartId;
use crate::error::CartError;
use crate::tenancy::Tenancy;

pub const DIALECT: &str = "amazon";
pub const NAMESPACE: &str = "http://webservices.amazon.com/AWSECommerceService/2011-08-01";

pub fn routes() -> Router<HttpState> {
    Router::new().route("/onca/xml", any(pipeline::handle::<Amazon>))
}

/// An error of the `Errors` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl AwsError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::OK,
            code,
            message: message.into(),
        }
    }

    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    fn internal() -> Self {
        Self::new(
            "AWS.InternalError",
            "We encountered an internal error. Please try again.",
        )
        .with_status(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The query, in order, as the client sent it.
pub type Arguments = Vec<(String, String)>;

/// A decoded CartClear request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartClear {
    pub access_key_id: String,
    pub cart_id: String,
    pub hmac: String,
}

fn argument<'a>(arguments: &'a Arguments, name: &str) -> Option<&'a str> {
    arguments
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

pub fn parse_query(query: Option<&str>) -> Result<Arguments, AwsError> {
    serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| {
        AwsError::new(
            "AWS.InvalidParameterValue",
            "The request query string could not be decoded.",
        )
    })
}

pub fn decode(arguments: &Arguments) -> Result<CartClear, AwsError> {
    let missing: Vec<&str> = ["Service", "Operation", "AWSAccessKeyId", "CartId", "HMAC"]
        .into_iter()
        .filter(|name| argument(arguments, name).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(AwsError::new(
            "AWS.MissingParameters",
            format!(
                "Your request is missing required parameters. Required parameters include {}.",
                missing.join(", ")
            ),
        ));
    }
    if argument(arguments, "Service") != Some("AWSECommerceService") {
        return Err(AwsError::new(
            "AWS.InvalidServiceParameter",
            "The Service parameter is invalid. Please modify the Service parameter and retry. Valid values for the Service parameter include AWSECommerceService.",
        ));
    }
    if argument(arguments, "Operation") != Some("CartClear") {
        return Err(AwsError::new(
            "AWS.InvalidOperationParameter",
            "The Operation parameter is invalid. Please modify the Operation parameter and retry. Valid values for the Operation parameter include CartClear.",
        ));
    }
    let field = |name| argument(arguments, name).unwrap_or_default().to_owned();
    Ok(CartClear {
        access_key_id: field("AWSAccessKeyId"),
        cart_id: field("CartId"),
        hmac: field("HMAC"),
    })
}

/// Percent-encodes an HMAC for `URLEncodedHMAC` (`+` → `%2B`, `/` → `%2F`, `=` → `%3D`).
pub fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    push_url_encoded(&mut out, value);
    out
}

/// Appends `value` percent-encoded (all but RFC 3986's unreserved characters): the result
/// needs no XML escaping.
fn push_url_encoded(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            other => {
                out.push('%');
                out.push(char::from(HEX[usize::from(other >> 4)]));
                out.push(char::from(HEX[usize::from(other & 0xf)]));
            }
        }
    }
}

/// `CartClearResponse`: the echo of the request, then the cart or the errors; written
/// straight into one buffer.
pub fn response_xml(
    arguments: &Arguments,
    user_agent: &str,
    request_id: &str,
    seconds: f64,
    request: (&str, &str),
    outcome: &Result<(), AwsError>,
) -> String {
    let (cart_id, hmac) = request;
    let echoed: usize = arguments.iter().map(|(k, v)| k.len() + v.len() + 48).sum();
    let mut xml = String::with_capacity(1024 + echoed);
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CartClearResponse xmlns=\"");
    xml.push_str(NAMESPACE);
    xml.push_str(
        "\">\n  <OperationRequest>\n    <HTTPHeaders>\n      <Header Name=\"UserAgent\" Value=\"",
    );
    xml.push_str(&escape(user_agent));
    xml.push_str("\"></Header>\n    </HTTPHeaders>\n    <RequestId>");
    xml.push_str(&escape(request_id));
    xml.push_str("</RequestId>\n    <Arguments>\n");
    for (name, value) in arguments {
        xml.push_str("      <Argument Name=\"");
        xml.push_str(&escape(name));
        xml.push_str("\" Value=\"");
        xml.push_str(&escape(value));
        xml.push_str("\"></Argument>\n");
    }
    let _ = write!(
        xml,
        "    </Arguments>\n    <RequestProcessingTime>{seconds:.7}</RequestProcessingTime>\n"
    );
    xml.push_str("  </OperationRequest>\n  <Cart>\n    <Request>\n      <IsValid>");
    xml.push_str(if outcome.is_ok() { "True" } else { "False" });
    xml.push_str("</IsValid>\n      <CartClearRequest>\n        <CartId>");
    xml.push_str(&escape(cart_id));
    xml.push_str("</CartId>\n        <HMAC>");
    xml.push_str(&escape(hmac));
    xml.push_str("</HMAC>\n      </CartClearRequest>\n");
    match outcome {
        Ok(()) => {
            xml.push_str("    </Request>\n    <CartId>");
            xml.push_str(&escape(cart_id));
            xml.push_str("</CartId>\n    <HMAC>");
            xml.push_str(&escape(hmac));
            xml.push_str("</HMAC>\n    <URLEncodedHMAC>");
            push_url_encoded(&mut xml, hmac);
            xml.push_str("</URLEncodedHMAC>\n  </Cart>\n</CartClearResponse>\n");
        }
        Err(error) => {
            xml.push_str("      <Errors>\n        <Error>\n          <Code>");
            xml.push_str(&escape(error.code));
            xml.push_str("</Code>\n          <Message>");
            xml.push_str(&escape(&error.message));
            xml.push_str("</Message>\n        </Error>\n      </Errors>\n    </Request>\n  </Cart>\n</CartClearResponse>\n");
        }
    }
    xml
}

fn invalid_cart_id(cart_id: &str) -> AwsError {
    AwsError::new(
        "AWS.ECommerceService.InvalidCartId",
        format!(
            "Your request contains an invalid value for CartId. Please check your CartId and retry your request. CartId: {cart_id}"
        ),
    )
}

/// The whole response, echoing the query the client sent.
fn respond_xml(cx: &Context, outcome: &Result<(), AwsError>) -> Response {
    let arguments = parse_query(cx.head.query.as_deref()).unwrap_or_default();
    let cart_id = argument(&arguments, "CartId").unwrap_or_default();
    let hmac = argument(&arguments, "HMAC").unwrap_or_default();
    let status = outcome.as_ref().err().map_or(StatusCode::OK, |e| e.status);
    let body = response_xml(
        &arguments,
        header_str(&cx.head.headers, header::USER_AGENT).unwrap_or(""),
        cx.correlation_id.as_str(),
        cx.started.elapsed().as_secs_f64(),
        (cart_id, hmac),
        outcome,
    );
    respond(status, "text/xml; charset=UTF-8", body)
}

/// `GET /onca/xml?Operation=CartClear` → Clear.
pub struct Amazon;

impl Dialect for Amazon {
    const NAME: &'static str = DIALECT;
    type Command = Clear;
    type Request = CartClear;
    type Error = AwsError;

    fn check_method(method: &Method) -> Result<(), AwsError> {
        match *method {
            Method::GET => Ok(()),
            _ => Err(
                AwsError::new("AWS.InvalidHTTPMethod", "CartClear is called with GET.")
                    .with_status(StatusCode::METHOD_NOT_ALLOWED),
            ),
        }
    }

    /// The access key id of a well-formed CartClear query names the tenant.
    fn authenticate(tenancy: &Tenancy, cx: &Context) -> Result<Credentials, AwsError> {
        let request = decode(&parse_query(cx.head.query.as_deref())?)?;
        tenancy
            .amazon(&request.access_key_id)
            .map(Credentials::Head)
            .ok_or_else(|| {
                AwsError::new(
                    "AWS.InvalidAccount",
                    "Your AccessKey Id is not registered for Product Advertising API.",
                )
            })
    }

    fn forbidden() -> AwsError {
        AwsError::new(
            "AWS.InvalidAccount",
            "Your AccessKey Id is not registered for Product Advertising API.",
        )
    }

    fn body_refused(_: BodyError, _: &Context) -> AwsError {
        AwsError::new(
            "AWS.InvalidParameterValue",
            "The request body could not be read.",
        )
    }

    /// CartClear is all query: the body is ignored.
    fn decode(cx: &Context, _: Bytes) -> Result<CartClear, AwsError> {
        decode(&parse_query(cx.head.query.as_deref())?)
    }

    /// The HMAC (the cart's token) is checked in constant time before the store is touched.
    fn authorize(
        request: &CartClear,
        principal: &Principal,
        tokens: &CartTokens,
    ) -> Result<(), AwsError> {
        let cart_id =
            CartId::parse(&request.cart_id).map_err(|_| invalid_cart_id(&request.cart_id))?;
        if tokens.verify(&principal.tenant, &cart_id, &request.hmac) {
            Ok(())
        } else {
            Err(AwsError::new(
                "AWS.ECommerceService.InvalidHMAC",
                format!(
                    "Your request contains an invalid value for HMAC. Please check your HMAC and retry your request. HMAC: {}",
                    request.hmac
                ),
            ))
        }
    }

    fn command(request: CartClear) -> Result<Clear, CartError> {
        Clear::parse(&request.cart_id, false, "CartClear")
    }

    fn encode(_: ClearOutcome, cx: &Context) -> Response {
        respond_xml(cx, &Ok(()))
    }

    fn error(error: CartError, cx: &Context) -> AwsError {
        match error {
            // A cart the caller cannot clear, in Amazon's words.
            CartError::CartNotFound | CartError::CartDeleted | CartError::InvalidArgument(_) => {
                let arguments = parse_query(cx.head.query.as_deref()).unwrap_or_default();
                invalid_cart_id(argument(&arguments, "CartId").unwrap_or_default())
            }
            // Amazon documents no conflict error for CartClear: the service answers 409 with an
            // AWS.ECommerceService code of the same form, so a client does not mistake a held
            // cart for an invalid one (and make a new one at checkout).
            CartError::CartFrozen => AwsError::new(
                "AWS.ECommerceService.CartFrozen",
                "The cart is held for checkout and cannot be cleared. Please retry after checkout.",
            )
            .with_status(StatusCode::CONFLICT),
            CartError::CartMerged => AwsError::new(
                "AWS.ECommerceService.CartMerged",
                "The cart was merged into another cart and cannot be cleared.",
            )
            .with_status(StatusCode::CONFLICT),
            CartError::Overloaded => AwsError::new(
                "AWS.ServiceUnavailable",
                "Too many requests are in flight. Please retry.",
            )
            .with_status(StatusCode::SERVICE_UNAVAILABLE),
            CartError::Unavailable(_)
            | CartError::ReplicationTimeout { .. }
            | CartError::StoreFull => AwsError::new(
                "AWS.ServiceUnavailable",
                "The service is temporarily unavailable. Please retry.",
            )
            .with_status(StatusCode::SERVICE_UNAVAILABLE),
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
            | CartError::IdempotencyKeyReused
            | CartError::Unauthenticated
            | CartError::PermissionDenied(_)
            | CartError::DeadlineExceeded
            | CartError::Internal(_) => AwsError::internal(),
        }
    }

    fn refuse(error: AwsError, cx: &Context) -> Response {
        respond_xml(cx, &Err(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(query: &str) -> Arguments {
        parse_query(Some(query)).unwrap()
    }

    #[test]
    fn decodes_the_seed_request_with_an_encoded_plus() {
        let request = decode(&args(
            "Service=AWSECommerceService&AWSAccessKeyId=AKIA&Operation=CartClear&CartId=c1&HMAC=ab%2Bcd%2F%3D",
        ))
        .unwrap();
        assert_eq!(request.hmac, "ab+cd/=");
        assert_eq!(url_encode(&request.hmac), "ab%2Bcd%2F%3D");
    }

    #[test]
    fn names_what_is_missing_or_wrong() {
        let error = decode(&args("Service=AWSECommerceService&Operation=CartClear")).unwrap_err();
        assert_eq!(error.code, "AWS.MissingParameters");
        assert!(error.message.contains("AWSAccessKeyId, CartId, HMAC"));
        let error = decode(&args(
            "Service=AWSECommerceService&Operation=CartAdd&AWSAccessKeyId=a&CartId=c&HMAC=h",
        ))
        .unwrap_err();
        assert_eq!(error.code, "AWS.InvalidOperationParameter");
    }

    #[test]
    fn the_response_echoes_arguments_and_escapes_them() {
        let arguments = args("Service=AWSECommerceService&CartId=%3Cc%3E");
        let xml = response_xml(&arguments, "ua", "rid", 0.01, ("<c>", "h+"), &Ok(()));
        assert!(xml.contains(&format!("<CartClearResponse xmlns=\"{NAMESPACE}\">")));
        assert!(xml.contains("<Argument Name=\"CartId\" Value=\"&lt;c&gt;\"></Argument>"));
        assert!(xml.contains("<IsValid>True</IsValid>"));
        assert!(xml.contains("<URLEncodedHMAC>h%2B</URLEncodedHMAC>"));
    }

    /// The response as it was once written with `format!`: the direct writer must match it.
    mod formatted {
        use super::super::{Arguments, AwsError, NAMESPACE};
        use crate::http::xml::escape;

        fn url_encode_formatted(value: &str) -> String {
            value
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    other => format!("%{other:02X}"),
                })
                .collect()
        }

        pub fn response_xml_formatted(
            arguments: &Arguments,
            user_agent: &str,
            request_id: &str,
            seconds: f64,
            request: (&str, &str),
            outcome: &Result<(), AwsError>,
        ) -> String {
            let (cart_id, hmac) = request;
            let mut xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CartClearResponse xmlns=\"{NAMESPACE}\">\n  <OperationRequest>\n    <HTTPHeaders>\n      <Header Name=\"UserAgent\" Value=\"{}\"></Header>\n    </HTTPHeaders>\n    <RequestId>{}</RequestId>\n    <Arguments>\n",
                escape(user_agent),
                escape(request_id)
            );
            for (name, value) in arguments {
                xml.push_str(&format!(
                    "      <Argument Name=\"{}\" Value=\"{}\"></Argument>\n",
                    escape(name),
                    escape(value)
                ));
            }
            xml.push_str(&format!(
                "    </Arguments>\n    <RequestProcessingTime>{seconds:.7}</RequestProcessingTime>\n  </OperationRequest>\n  <Cart>\n    <Request>\n      <IsValid>{}</IsValid>\n      <CartClearRequest>\n        <CartId>{}</CartId>\n        <HMAC>{}</HMAC>\n      </CartClearRequest>\n",
                if outcome.is_ok() { "True" } else { "False" },
                escape(cart_id),
                escape(hmac)
            ));
            match outcome {
                Ok(()) => xml.push_str(&format!(
                    "    </Request>\n    <CartId>{}</CartId>\n    <HMAC>{}</HMAC>\n    <URLEncodedHMAC>{}</URLEncodedHMAC>\n  </Cart>\n</CartClearResponse>\n",
                    escape(cart_id),
                    escape(hmac),
                    escape(&url_encode_formatted(hmac))
                )),
                Err(error) => xml.push_str(&format!(
                    "      <Errors>\n        <Error>\n          <Code>{}</Code>\n          <Message>{}</Message>\n        </Error>\n      </Errors>\n    </Request>\n  </Cart>\n</CartClearResponse>\n",
                    escape(error.code),
                    escape(&error.message)
                )),
            }
            xml
        }
    }

    #[test]
    fn the_response_is_byte_for_byte_the_formatted_one() {
        let arguments = args(
            "Service=AWSECommerceService&AWSAccessKeyId=AKIA&Operation=CartClear&CartId=%3Cc%3E&HMAC=ab%2Bcd%2F%3D&x=%22%26%C3%A9",
        );
        let outcomes = [
            Ok(()),
            Err(AwsError::new("AWS.InvalidParameterValue", "a <b> & \"c\"")),
        ];
        for outcome in &outcomes {
            for (seconds, request) in [(0.0012345678, ("<c>", "ab+cd/=")), (12.5, ("c1", "é &"))] {
                assert_eq!(
                    response_xml(&arguments, "ua \"x\"", "rid<1>", seconds, request, outcome),
                    formatted::response_xml_formatted(
                        &arguments, "ua \"x\"", "rid<1>", seconds, request, outcome
                    )
                );
            }
        }
    }
}
