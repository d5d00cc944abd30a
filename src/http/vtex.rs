//! VTEX checkout (seed 004): `POST /api/checkout/pub/orderForm/{orderFormId}/items/removeAll`
//! with the body `{}`, mapped to `Clear`.
//!
//! Public: the unguessable orderFormId is the capability, so only a cart whose id the service
//! generated is found here ([`crate::core::Clear::only_generated_id`]); a client-chosen id
//! answers ORD002 like an unknown one and nothing changes. The store account (tenant) comes
//! from the `Host` header's first label, else the `an` query parameter. Answers the orderForm,
//! `400 {"error": {"code": "ORD002"}}` for an unknown orderFormId, `400 001` for any other
//! body, and VTEX's HTML 404 page for any other URL under `/api/checkout/`.

use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde::Serialize;
use serde_json::{Value, json};

use super::encode::{EMPTY_LIST, NULL, each, json_sized};
use super::pipeline::{self, BodyError, Context, Credentials, Dialect};
use super::{HttpState, header_str, respond};
use crate::core::{CartView, Clear, ClearOutcome};
use crate::error::CartError;
use crate::tenancy::Tenancy;

pub const DIALECT: &str = "vtex";

/// VTEX's page for an unknown URL.
pub const NOT_FOUND_PAGE: &str = "<body>\n    <h1>404 Not Found</h1>\n    <p>The requested URL was not found on this server.</p>\n</body>";

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route(
            "/api/checkout/pub/orderForm/{order_form_id}/items/removeAll",
            any(pipeline::handle::<Vtex>),
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
    /// A cart held for checkout (Freeze): 409 with the service's own CHK code (the seed
    /// documents none for this state).
    pub const FROZEN: Self = Self {
        status: StatusCode::CONFLICT,
        code: "CHK0409",
        message: "Carrinho em checkout",
    };
    /// A cart merged into the customer's at login.
    pub const MERGED: Self = Self {
        status: StatusCode::CONFLICT,
        code: "CHK0409",
        message: "Carrinho unido ao carrinho do cliente",
    };
    pub const BAD_REQUEST: Self = Self {
        status: StatusCode::BAD_REQUEST,
        code: "001",
        message: "Bad Request",
    };
    pub const TOO_LARGE: Self = Self {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "001",
        message: "Request body too large",
    };
    pub const UNAVAILABLE: Self = Self {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "CHK0503",
        message: "Service unavailable",
    };
    pub const OVERLOADED: Self = Self {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "CHK0503",
        message: "Too many requests, retry later",
    };
    pub const INTERNAL: Self = Self {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "CHK0500",
        message: "Internal error",
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

/// A refusal: VTEX's error document, or its HTML 404 page (an unknown store or method).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VtexRefusal {
    Document(VtexError),
    NotFoundPage,
}

#[derive(Serialize)]
struct Totalizer {
    id: &'static str,
    name: &'static str,
    value: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    id: &'a str,
    list_price: i64,
    name: &'a str,
    price: i64,
    product_id: &'a str,
    quantity: u32,
    selling_price: i64,
    unique_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClientPreferences<'a> {
    locale: &'a str,
    optin_news_letter: (),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemMetadata {
    items: [(); 0],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentData {
    available_accounts: [(); 0],
    gift_cards: [(); 0],
    installment_options: [(); 0],
    payment_systems: [(); 0],
    payments: [(); 0],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RatesAndBenefits {
    rate_and_benefits_identifiers: [(); 0],
    teaser: [(); 0],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StorePreferences<'a> {
    currency_code: &'a str,
}

/// The orderForm; fields in the byte order of their keys.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderForm<'a, I> {
    allow_manual_price: bool,
    can_edit_data: bool,
    checked_in_pickup_point_id: (),
    client_preferences_data: ClientPreferences<'a>,
    client_profile_data: (),
    commercial_condition_data: (),
    custom_data: (),
    gift_registry_data: (),
    hooks_data: (),
    ignore_profile_data: bool,
    invoice_data: (),
    is_checked_in: bool,
    item_metadata: ItemMetadata,
    items: I,
    items_ordering: (),
    logged_in: bool,
    marketing_data: (),
    messages: [(); 0],
    open_text_field: (),
    order_form_id: &'a str,
    payment_data: PaymentData,
    rates_and_benefits_data: RatesAndBenefits,
    sales_channel: &'a str,
    selectable_gifts: [(); 0],
    sellers: [(); 0],
    shipping_data: (),
    store_id: (),
    store_preferences_data: StorePreferences<'a>,
    subscription_data: (),
    totalizers: &'a [Totalizer],
    user_profile_id: (),
    user_type: (),
    value: i64,
}

/// The orderForm after removeAll (its JSON).
pub fn order_form(cart: &CartView) -> String {
    let totals = &cart.totals;
    let header = &cart.state.header;
    let items_total = Totalizer {
        id: "Items",
        name: "Total dos Itens",
        value: totals.subtotal,
    };
    let discounts_total = Totalizer {
        id: "Discounts",
        name: "Total dos Descontos",
        value: -totals.discount_amount,
    };
    // The totals that are not zero, as a slice of both (no list allocated per body).
    let both = [items_total, discounts_total];
    let totalizers = match (totals.subtotal > 0, totals.discount_amount > 0) {
        (true, true) => &both[..],
        (true, false) => &both[..1],
        (false, true) => &both[1..],
        (false, false) => &both[..0],
    };
    let items = each(&cart.state.lines, |_, l| Item {
        id: l.sku.as_str(),
        list_price: l.unit_price,
        name: &l.title,
        price: l.unit_price,
        product_id: &l.product_id,
        quantity: l.quantity,
        selling_price: l.unit_price,
        unique_id: l.line_id.as_str(),
    });
    // About 180 bytes a line, as the sample carts have.
    let capacity = 1024 + 224 * cart.state.lines.len();
    json_sized(
        &OrderForm {
            allow_manual_price: false,
            can_edit_data: true,
            checked_in_pickup_point_id: NULL,
            client_preferences_data: ClientPreferences {
                locale: &header.locale,
                optin_news_letter: NULL,
            },
            client_profile_data: NULL,
            commercial_condition_data: NULL,
            custom_data: NULL,
            gift_registry_data: NULL,
            hooks_data: NULL,
            ignore_profile_data: false,
            invoice_data: NULL,
            is_checked_in: false,
            item_metadata: ItemMetadata { items: EMPTY_LIST },
            items,
            items_ordering: NULL,
            logged_in: false,
            marketing_data: NULL,
            messages: EMPTY_LIST,
            open_text_field: NULL,
            order_form_id: cart.id(),
            payment_data: PaymentData {
                available_accounts: EMPTY_LIST,
                gift_cards: EMPTY_LIST,
                installment_options: EMPTY_LIST,
                payment_systems: EMPTY_LIST,
                payments: EMPTY_LIST,
            },
            rates_and_benefits_data: RatesAndBenefits {
                rate_and_benefits_identifiers: EMPTY_LIST,
                teaser: EMPTY_LIST,
            },
            sales_channel: if header.channel.is_empty() {
                "1"
            } else {
                header.channel.as_str()
            },
            selectable_gifts: EMPTY_LIST,
            sellers: EMPTY_LIST,
            shipping_data: NULL,
            store_id: NULL,
            store_preferences_data: StorePreferences {
                currency_code: header.currency.as_str(),
            },
            subscription_data: NULL,
            totalizers,
            user_profile_id: NULL,
            user_type: NULL,
            value: totals.total,
        },
        capacity,
    )
}

/// `POST /api/checkout/pub/orderForm/{orderFormId}/items/removeAll` → Clear.
pub struct Vtex;

impl Dialect for Vtex {
    const NAME: &'static str = DIALECT;
    type Command = Clear;
    /// The orderFormId.
    type Request = String;
    type Error = VtexRefusal;

    fn check_method(method: &Method) -> Result<(), VtexRefusal> {
        match *method {
            Method::POST => Ok(()),
            _ => Err(VtexRefusal::NotFoundPage),
        }
    }

    /// The store account of the Host or `an=`; an unknown store is VTEX's 404 page.
    fn authenticate(tenancy: &Tenancy, cx: &Context) -> Result<Credentials, VtexRefusal> {
        let host = header_str(&cx.head.headers, header::HOST);
        store_account(host, cx.head.query.as_deref(), |label| {
            tenancy.vtex(label).is_some()
        })
        .and_then(|account| tenancy.vtex(&account))
        .map(Credentials::Head)
        .ok_or(VtexRefusal::NotFoundPage)
    }

    fn forbidden() -> VtexRefusal {
        VtexRefusal::NotFoundPage
    }

    fn body_refused(error: BodyError, _: &Context) -> VtexRefusal {
        VtexRefusal::Document(match error {
            BodyError::TooLarge => VtexError::TOO_LARGE,
            BodyError::Unreadable => VtexError::BAD_REQUEST,
        })
    }

    fn decode(cx: &Context, body: Bytes) -> Result<String, VtexRefusal> {
        if is_empty_object(&body) {
            Ok(cx.head.path.clone())
        } else {
            Err(VtexRefusal::Document(VtexError::BAD_REQUEST))
        }
    }

    /// The orderFormId is the capability: only a cart whose id the service generated is
    /// found.
    fn command(order_form_id: String) -> Result<Clear, CartError> {
        Ok(Clear {
            only_generated_id: true,
            ..Clear::parse(&order_form_id, false, "removeAll")?
        })
    }

    fn encode(outcome: ClearOutcome, _: &Context) -> Response {
        respond(
            StatusCode::OK,
            "application/json; charset=utf-8",
            order_form(&outcome.cart),
        )
    }

    fn error(error: CartError, _: &Context) -> VtexRefusal {
        VtexRefusal::Document(match error {
            CartError::CartNotFound | CartError::InvalidArgument(_) | CartError::CartDeleted => {
                VtexError::INVALID_CART
            }
            CartError::CartFrozen => VtexError::FROZEN,
            CartError::CartMerged => VtexError::MERGED,
            CartError::Overloaded => VtexError::OVERLOADED,
            CartError::Unavailable(_)
            | CartError::ReplicationTimeout { .. }
            | CartError::StoreFull => VtexError::UNAVAILABLE,
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
            | CartError::Internal(_) => VtexError::INTERNAL,
        })
    }

    fn refuse(refusal: VtexRefusal, cx: &Context) -> Response {
        match refusal {
            VtexRefusal::NotFoundPage => not_found_page(),
            VtexRefusal::Document(error) => respond(
                error.status,
                "application/json; charset=utf-8",
                error.body(cx.correlation_id.as_str()),
            ),
        }
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

    /// The `serde_json::Value` tree this dialect's body was once built as: the typed encoder
    /// must write exactly its bytes.
    mod tree {
        use serde_json::{Value, json};

        use crate::core::CartView;

        pub fn order_form_tree(cart: &CartView) -> Value {
            let totals = &cart.totals;
            let header = &cart.state.header;
            let mut totalizers = Vec::new();
            if totals.subtotal > 0 {
                totalizers.push(
                    json!({ "id": "Items", "name": "Total dos Itens", "value": totals.subtotal }),
                );
            }
            if totals.discount_amount > 0 {
                totalizers.push(json!({ "id": "Discounts", "name": "Total dos Descontos", "value": -totals.discount_amount }));
            }
            let items: Vec<Value> = cart
                .state
                .lines
                .iter()
                .map(|l| {
                    json!({
                        "uniqueId": l.line_id.as_str(), "id": l.sku.as_str(), "productId": l.product_id,
                        "name": l.title, "quantity": l.quantity, "price": l.unit_price,
                        "listPrice": l.unit_price, "sellingPrice": l.unit_price,
                    })
                })
                .collect();
            json!({
                "orderFormId": cart.id(),
                "salesChannel": if header.channel.is_empty() { "1" } else { header.channel.as_str() },
                "loggedIn": false,
                "isCheckedIn": false,
                "storeId": Value::Null,
                "checkedInPickupPointId": Value::Null,
                "allowManualPrice": false,
                "canEditData": true,
                "userProfileId": Value::Null,
                "userType": Value::Null,
                "ignoreProfileData": false,
                "value": totals.total,
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
                "clientPreferencesData": { "locale": header.locale, "optinNewsLetter": Value::Null },
                "commercialConditionData": Value::Null,
                "storePreferencesData": { "currencyCode": header.currency.as_str() },
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
    }

    #[test]
    fn the_order_form_is_byte_for_byte_the_json_tree() {
        use crate::http::encode::sample;
        for (lines, awkward) in [(0, false), (1, true), (10, false), (10, true)] {
            let mut cart = sample::cart(lines, awkward);
            assert_eq!(
                order_form(&cart),
                tree::order_form_tree(&cart).to_string(),
                "{lines} lines, awkward: {awkward}"
            );
            // Every combination of the two totalizers.
            cart.totals.discount_amount = 0;
            assert_eq!(order_form(&cart), tree::order_form_tree(&cart).to_string());
            cart.totals.subtotal = 0;
            cart.totals.discount_amount = 3;
            assert_eq!(order_form(&cart), tree::order_form_tree(&cart).to_string());
        }
    }
}
