//! The one request pipeline of the HTTP shims: every dialect runs the same steps, in the same
//! order, and supplies only its wire format through [`Dialect`].
//!
//! 1. method check;
//! 2. authentication (the dialect reads its credentials from the path, query or headers);
//! 3. scope (the operation's, see [`crate::core::Operation::scope`]);
//! 4. body limit ([`super::MAX_BODY_BYTES`]), then the dialect's decoding;
//! 5. the dialect's own authorization of the decoded request (Amazon's cart HMAC);
//! 6. idempotency key (`Idempotency-Key`, for dialects that take one) and the correlation id
//!    (`x-request-id`, which every response carries and the dialect may echo in its body);
//! 7. the call: [`crate::core::observe`] times and counts it, the core runs the command;
//! 8. encoding of the outcome, or the dialect's error table ([`Dialect::error`], an exhaustive
//!    `match` over [`CartError`]).
//!
//! One exception is forced by a wire format: Zaui carries its credentials inside the XML body,
//! so for it (the only dialect whose [`Dialect::authenticate`] answers
//! [`Credentials::InBody`]) steps 2 and 3 run after step 4.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use tower_http::request_id::RequestId;

use super::HttpState;
use crate::auth::{CartTokens, Principal};
use crate::core::{self, Caller, Command, CorrelationId};
use crate::domain::IdempotencyKey;
use crate::error::CartError;
use crate::metrics::Interface;
use crate::tenancy::Tenancy;

/// What a request brings besides its body.
#[derive(Debug)]
pub struct Head {
    pub method: Method,
    /// The route's one path parameter ("" for routes without one).
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
}

/// What every step of a request may read.
#[derive(Debug)]
pub struct Context {
    pub head: Head,
    /// `x-request-id`, as the client sent it or as the service made it.
    pub correlation_id: CorrelationId,
    /// When the request arrived (Amazon reports its processing time).
    pub started: Instant,
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    Unreadable,
}

/// Where a dialect's credentials travel.
#[derive(Debug)]
pub enum Credentials {
    /// In the head: the caller is known before the body is read.
    Head(Principal),
    /// Inside the body: [`Dialect::authenticate_request`] finds the caller after decoding.
    InBody,
}

/// The wire format of one shim. A dialect module implements this and nothing else: its
/// decoding, its encoding and its error table.
pub trait Dialect: Send + Sync + 'static {
    /// The `dialect` label of metrics.
    const NAME: &'static str;
    /// Whether the `Idempotency-Key` header names the command's idempotency key.
    const IDEMPOTENCY_KEY_HEADER: bool = false;
    /// The core command a request becomes.
    type Command: Command;
    /// A decoded request, before the core's validation.
    type Request: Send;
    /// A refusal in the dialect's own terms.
    type Error: Send;

    fn check_method(method: &Method) -> Result<(), Self::Error>;

    fn authenticate(tenancy: &Tenancy, cx: &Context) -> Result<Credentials, Self::Error>;

    /// The caller of a dialect whose credentials are in the body.
    fn authenticate_request(
        _tenancy: &Tenancy,
        _request: &Self::Request,
    ) -> Result<Principal, Self::Error> {
        unreachable!("a dialect that authenticates in the head")
    }

    /// The caller lacks the operation's scope.
    fn forbidden() -> Self::Error;

    fn body_refused(error: BodyError, cx: &Context) -> Self::Error;

    fn decode(cx: &Context, body: Bytes) -> Result<Self::Request, Self::Error>;

    /// A dialect's own check of a decoded request against its caller (a cart capability).
    fn authorize(
        _request: &Self::Request,
        _principal: &Principal,
        _tokens: &CartTokens,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    /// The core command (validated by the core's shared checks).
    fn command(request: Self::Request) -> Result<Self::Command, CartError>;

    fn encode(outcome: <Self::Command as Command>::Outcome, cx: &Context) -> Response;

    /// The error table: what each [`CartError`] means in this dialect.
    fn error(error: CartError, cx: &Context) -> Self::Error;

    /// A malformed `Idempotency-Key` (by default, as the core's InvalidArgument).
    fn bad_idempotency_key(error: CartError, cx: &Context) -> Self::Error {
        Self::error(error, cx)
    }

    fn refuse(error: Self::Error, cx: &Context) -> Response;
}

/// The axum handler of every shim route.
pub async fn handle<D: Dialect>(
    State(state): State<HttpState>,
    method: Method,
    path: Option<Path<String>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    correlation_id: Option<axum::Extension<RequestId>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let cx = Context {
        correlation_id: CorrelationId::new(
            correlation_id
                .as_ref()
                .and_then(|id| id.0.header_value().to_str().ok())
                .unwrap_or(""),
        ),
        head: Head {
            method,
            path: path.map(|Path(p)| p).unwrap_or_default(),
            query,
            headers,
        },
        started: Instant::now(),
    };
    match run::<D>(&state, &cx, body).await {
        Ok(response) => response,
        Err(error) => D::refuse(error, &cx),
    }
}

async fn run<D: Dialect>(
    state: &HttpState,
    cx: &Context,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, D::Error> {
    let operation = D::Command::OPERATION;
    D::check_method(&cx.head.method)?;
    let credentials = D::authenticate(&state.tenancy, cx)?;
    if let Credentials::Head(principal) = &credentials {
        principal
            .require(operation.scope())
            .map_err(|_| D::forbidden())?;
    }
    let body = body.map_err(|rejection| {
        D::body_refused(
            match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => BodyError::TooLarge,
                _ => BodyError::Unreadable,
            },
            cx,
        )
    })?;
    let request = D::decode(cx, body)?;
    let principal = match credentials {
        Credentials::Head(principal) => principal,
        Credentials::InBody => {
            let principal = D::authenticate_request(&state.tenancy, &request)?;
            principal
                .require(operation.scope())
                .map_err(|_| D::forbidden())?;
            principal
        }
    };
    D::authorize(&request, &principal, state.core.tokens())?;
    let idempotency_key = match D::IDEMPOTENCY_KEY_HEADER {
        true => idempotency_key(&cx.head.headers),
        false => Ok(None),
    };
    let mut key_refused = false;
    let interface = Interface::Http(D::NAME);
    let outcome = core::observe(operation, interface, None, async {
        core::admit(&principal, operation)?;
        let idempotency_key = idempotency_key.inspect_err(|_| key_refused = true)?;
        let command = D::command(request)?;
        let caller = Caller {
            idempotency_key,
            correlation_id: Some(cx.correlation_id.clone()),
            ..Caller::new(principal.clone(), interface)
        };
        state.core.run(&caller, command).await
    })
    .await;
    match outcome {
        Ok(outcome) => Ok(D::encode(outcome, cx)),
        Err(error) if key_refused => Err(D::bad_idempotency_key(error, cx)),
        Err(error) => Err(D::error(error, cx)),
    }
}

/// The `Idempotency-Key` header as a key (none when absent).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, CartError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    if text.is_empty() {
        return Ok(None);
    }
    IdempotencyKey::parse(&text)
        .map(Some)
        .map_err(|description| CartError::invalid("request_id", description))
}
