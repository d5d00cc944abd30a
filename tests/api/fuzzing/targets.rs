//! The fuzz targets: each takes arbitrary bytes, decodes them the way its interface does, and
//! panics when an invariant breaks (a panic in the decoder itself counts too).
//!
//! Invariants beyond "no panic": a refusal is the dialect's client error (never a 5xx); what
//! the service writes back (Zaui's envelope, Amazon's response) is XML its own reader reads
//! back to the same values; an INVALID_ARGUMENT is bounded in violations and bytes; a decoded
//! command holds only valid values.

use axum::http::{HeaderMap, HeaderValue, header};
use cart_service::domain::{CartId, Limits};
use cart_service::error::{
    CartError, MAX_FIELD_VIOLATIONS, MAX_VIOLATION_DESCRIPTION_BYTES, MAX_VIOLATION_FIELD_BYTES,
};
use cart_service::http::{amazon, fabric_xm, stateset, vtex, xml, zaui};
use cart_service::pb;
use prost::Message;

/// A named fuzz target; its corpus is `fuzz/corpus/<name>/`, its kept crashes
/// `fuzz/regressions/<name>/`.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

pub const TARGETS: [Target; 7] = [
    Target {
        name: "xml",
        run: xml_reader,
    },
    Target {
        name: "zaui",
        run: zaui_request,
    },
    Target {
        name: "fabric_xm",
        run: fabric_xm_request,
    },
    Target {
        name: "stateset",
        run: stateset_request,
    },
    Target {
        name: "amazon",
        run: amazon_request,
    },
    Target {
        name: "vtex",
        run: vtex_request,
    },
    Target {
        name: "grpc_convert",
        run: grpc_conversion,
    },
];

/// The input split at its first newline: (a header or path part, the body).
fn split_line(bytes: &[u8]) -> (String, &[u8]) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(at) => (
            String::from_utf8_lossy(&bytes[..at]).into_owned(),
            &bytes[at + 1..],
        ),
        None => (String::from_utf8_lossy(bytes).into_owned(), &[]),
    }
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers
}

/// Text XML allows (no control characters besides tab, newline and carriage return).
fn xml_text(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// The XML reader: never panics, bounds depth, and reads back what `escape` wrote.
fn xml_reader(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(doc) = xml::parse(&text) {
        for (path, _) in &doc.leaves {
            assert!(path.split('/').count() <= xml::MAX_DEPTH, "{path}");
        }
    }
    if xml_text(&text) && !text.trim().is_empty() && !text.contains('\r') {
        let written = format!("<a>{}</a>", xml::escape(&text));
        let doc = xml::parse(&written).unwrap_or_else(|e| panic!("{written:?}: {e}"));
        assert_eq!(doc.get("a"), Some(text.trim()), "{written:?}");
    }
}

/// Zaui: a decoded request has its credentials and cart; every answer is an envelope its own
/// reader reads back, naming the method.
fn zaui_request(bytes: &[u8]) {
    let (method, outcome) = match zaui::decode(bytes) {
        Ok(request) => {
            assert!(!request.cart_id.is_empty() && !request.token.expose().is_empty());
            assert!(!format!("{request:?}").contains(request.token.expose().as_str()));
            ("zapiRemoveCartSession".to_owned(), Ok(()))
        }
        Err((method, refusal)) => {
            assert!(matches!(refusal.code, 1 | 3), "{refusal:?}");
            (method, Err(refusal))
        }
    };
    if !xml_text(&method) || method.contains('\r') {
        return;
    }
    let envelope = zaui::envelope(&method, &outcome);
    let doc = xml::parse(&envelope).unwrap_or_else(|e| panic!("{envelope}: {e}"));
    assert_eq!(
        doc.get("response/methodResponse/methodName"),
        Some(method.trim())
    );
}

/// Fabric XM: first line the `x-site-context` header (and a path cart id), then the body.
fn fabric_xm_request(bytes: &[u8]) {
    let (line, body) = split_line(bytes);
    for result in [
        fabric_xm::site_account(Some(&line)).map(drop),
        fabric_xm::check_cart_id(&line),
        fabric_xm::order_number(&json_headers(), body).map(|number| {
            assert!(!number.is_empty());
        }),
    ] {
        if let Err(error) = result {
            assert!(error.status.is_client_error(), "{error:?}");
        }
    }
    if fabric_xm::check_cart_id(&line).is_ok() {
        assert!(CartId::parse(&line).is_ok(), "{line:?}");
    }
}

/// Stateset: the clear body; refusals are 4xx.
fn stateset_request(bytes: &[u8]) {
    if let Err(error) = stateset::decode(&json_headers(), bytes) {
        assert!(error.status.is_client_error(), "{error:?}");
    }
}

/// Amazon: the query string; the response (request echo and errors included) is XML its own
/// reader reads back, with the request's cart id and validity.
fn amazon_request(bytes: &[u8]) {
    let query = String::from_utf8_lossy(bytes);
    let Ok(arguments) = amazon::parse_query(Some(&query)) else {
        return;
    };
    let decoded = amazon::decode(&arguments);
    let (cart_id, hmac) = match &decoded {
        Ok(request) => (request.cart_id.clone(), request.hmac.clone()),
        Err(_) => (String::new(), String::new()),
    };
    let outcome = decoded.map(drop);
    let echoed = arguments
        .iter()
        .flat_map(|(k, v)| [k, v])
        .chain([&cart_id, &hmac]);
    if echoed.clone().any(|t| !xml_text(t) || t.contains('\r')) {
        return;
    }
    let xml = amazon::response_xml(&arguments, "ua", "rid", 0.0, (&cart_id, &hmac), &outcome);
    let doc = xml::parse(&xml).unwrap_or_else(|e| panic!("{xml}: {e}"));
    let valid = if outcome.is_ok() { "True" } else { "False" };
    assert_eq!(
        doc.get("CartClearResponse/Cart/Request/IsValid"),
        Some(valid)
    );
    assert_eq!(
        doc.get("CartClearResponse/Cart/Request/CartClearRequest/CartId")
            .unwrap_or(""),
        cart_id.trim()
    );
}

/// VTEX: first line the `Host` header, second the query string, then the body.
fn vtex_request(bytes: &[u8]) {
    let (host, rest) = split_line(bytes);
    let (query, body) = split_line(rest);
    let known = |label: &str| label == "cosmetics2";
    if let Some(account) = vtex::store_account(Some(&host), Some(&query), known) {
        assert!(!account.is_empty());
    }
    let _ = vtex::is_empty_object(body);
}

fn check_refusal(error: CartError) {
    let CartError::InvalidArgument(violations) = &error else {
        panic!("conversion failed with {error}, not INVALID_ARGUMENT");
    };
    assert!(!violations.is_empty());
    assert!(
        violations.len() <= MAX_FIELD_VIOLATIONS + 1,
        "{}",
        violations.len()
    );
    for v in violations {
        assert!(v.field.len() <= MAX_VIOLATION_FIELD_BYTES, "{}", v.field);
        assert!(v.description.len() <= MAX_VIOLATION_DESCRIPTION_BYTES);
    }
    let status = tonic::Status::from(error);
    assert!(status.message().len() <= 2048);
    assert!(status.details().len() <= 16 * 1024);
}

/// gRPC request conversion: the first byte picks the message, the rest is its protobuf
/// encoding. Every outcome is a valid command or a bounded INVALID_ARGUMENT.
fn grpc_conversion(bytes: &[u8]) {
    let Some((&kind, encoded)) = bytes.split_first() else {
        return;
    };
    let limits = Limits::default();
    fn checked<T>(result: Result<T, CartError>, valid: impl FnOnce(&T)) {
        match result {
            Ok(command) => valid(&command),
            Err(error) => check_refusal(error),
        }
    }
    let id_ok = |id: &CartId| assert!(CartId::parse(id.as_str()).is_ok());
    use cart_service::grpc::convert;
    match kind % 8 {
        0 => {
            if let Ok(req) = pb::CreateRequest::decode(encoded) {
                let id_given = !req.cart_id.is_empty();
                checked(convert::create(req, &limits), |c| {
                    // Without an id the core generates one (and marks it generated).
                    assert_eq!(c.command.cart_id.is_some(), id_given);
                    if let Some(id) = &c.command.cart_id {
                        id_ok(id);
                    }
                    assert!(c.command.cart.items.len() <= limits.max_lines as usize);
                });
            }
        }
        1 => {
            if let Ok(req) = pb::GetRequest::decode(encoded) {
                checked(convert::get(req, &limits), |c| id_ok(&c.command.cart_id));
            }
        }
        2 => {
            if let Ok(req) = pb::AddItemsRequest::decode(encoded) {
                checked(convert::add_items(req, &limits), |c| {
                    let items = &c.command.items;
                    assert!(!items.is_empty() && items.len() <= limits.max_lines as usize);
                });
            }
        }
        3 => {
            if let Ok(req) = pb::UpdateItemsRequest::decode(encoded) {
                checked(convert::update_items(req, &limits), |c| {
                    let updates = &c.command.updates;
                    let distinct: std::collections::HashSet<_> =
                        updates.iter().map(|u| &u.line_id).collect();
                    assert_eq!(distinct.len(), updates.len(), "line ids are distinct");
                    assert!(updates.iter().all(|u| u.quantity <= limits.max_quantity));
                });
            }
        }
        4 => {
            if let Ok(req) = pb::ApplyCouponRequest::decode(encoded) {
                checked(convert::apply_coupon(req, &limits), |c| {
                    assert!(c.command.amount >= 1)
                });
            }
        }
        5 => {
            if let Ok(req) = pb::ClearRequest::decode(encoded) {
                checked(convert::clear(req, &limits), |c| {
                    assert!(c.command.expected_version >= 0)
                });
            }
        }
        6 => {
            if let Ok(req) = pb::RemoveRequest::decode(encoded) {
                checked(convert::remove(req, &limits), |c| id_ok(&c.command.cart_id));
            }
        }
        _ => {
            if let Ok(req) = pb::DeleteRequest::decode(encoded) {
                checked(convert::delete(req, &limits), |c| {
                    assert!(!c.command.order_number.as_str().is_empty())
                });
            }
        }
    }
}
