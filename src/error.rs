//! The one error type of the service.
//!
//! Every layer (domain, stores, core) returns [`CartError`]. Each edge maps it once, with an
//! exhaustive `match` over the variants: gRPC into a `Status` (`grpc::status`), each HTTP
//! dialect into its own error body. [`CartError::reason`] is the stable name of a variant on
//! the wire (`ErrorInfo.reason`) and in metrics; no edge reads it back.

use std::fmt;

/// A boxed internal cause, logged but never sent to a client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One bad field of a request, reported as a `google.rpc.BadRequest` field violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Everything that can go wrong with a cart request.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    #[error("invalid request: {}", join(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("cart not found")]
    CartNotFound,
    #[error("line item {0} not found")]
    LineNotFound(String),
    #[error("a cart with this id already exists")]
    CartAlreadyExists,
    #[error("cart is deleted")]
    CartDeleted,
    #[error("cart was deleted with another order number")]
    OrderNumberMismatch,
    #[error("item currency {0} does not match the cart currency")]
    CurrencyMismatch(String),
    #[error("a cart holds at most {0} lines")]
    LineLimit(u32),
    #[error("line {line_id} would exceed {max} units")]
    QuantityLimit { line_id: String, max: u32 },
    #[error("a cart holds at most {0} coupons")]
    CouponLimit(u32),
    #[error("version mismatch: cart is at version {actual}, request expected {expected}")]
    VersionMismatch { expected: i64, actual: i64 },
    #[error("missing or invalid credentials")]
    Unauthenticated,
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("this request_id was used for another request (another payload or RPC)")]
    IdempotencyKeyReused,
    #[error("cart store unavailable")]
    Unavailable(#[source] BoxError),
    #[error(
        "only {acked} of {wanted} replicas acknowledged the change in time: it may have been applied; retrying with the same request_id is safe"
    )]
    ReplicationTimeout { acked: i64, wanted: u32 },
    #[error("deadline exceeded")]
    DeadlineExceeded,
    #[error("internal error")]
    Internal(#[source] BoxError),
}

fn join(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl CartError {
    /// A single-field `InvalidArgument`.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// Stable UPPER_SNAKE reason: the `ErrorInfo.reason` of gRPC, and the `outcome` label of
    /// metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::CartNotFound => "CART_NOT_FOUND",
            Self::LineNotFound(_) => "LINE_ITEM_NOT_FOUND",
            Self::CartAlreadyExists => "CART_ALREADY_EXISTS",
            Self::CartDeleted => "CART_DELETED",
            Self::OrderNumberMismatch => "ORDER_NUMBER_MISMATCH",
            Self::CurrencyMismatch(_) => "CURRENCY_MISMATCH",
            Self::LineLimit(_) => "LINE_LIMIT_EXCEEDED",
            Self::QuantityLimit { .. } => "QUANTITY_LIMIT_EXCEEDED",
            Self::CouponLimit(_) => "COUPON_LIMIT_EXCEEDED",
            Self::VersionMismatch { .. } => "VERSION_MISMATCH",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied(_) => "PERMISSION_DENIED",
            Self::IdempotencyKeyReused => "REQUEST_ID_REUSED",
            Self::Unavailable(_) => "STORE_UNAVAILABLE",
            Self::ReplicationTimeout { .. } => "REPLICATION_TIMEOUT",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// Whether the store failed the call (unreachable, too slow, too few replicas, or a bug),
    /// as opposed to refusing the request: counted as a store error and marked on spans.
    pub fn is_store_failure(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::ReplicationTimeout { .. } | Self::Internal(_)
        )
    }

    /// A copy of a refusal that is the outcome of a request (the cart's state refused it), which
    /// a store remembers under the request's id; `None` for anything else (bad input never
    /// reaches a store, and store trouble or a deadline is no outcome).
    pub fn remembered(&self) -> Option<CartError> {
        Some(match self {
            Self::CartNotFound => Self::CartNotFound,
            Self::LineNotFound(line) => Self::LineNotFound(line.clone()),
            Self::CartAlreadyExists => Self::CartAlreadyExists,
            Self::CartDeleted => Self::CartDeleted,
            Self::OrderNumberMismatch => Self::OrderNumberMismatch,
            Self::CurrencyMismatch(currency) => Self::CurrencyMismatch(currency.clone()),
            Self::LineLimit(max) => Self::LineLimit(*max),
            Self::QuantityLimit { line_id, max } => Self::QuantityLimit {
                line_id: line_id.clone(),
                max: *max,
            },
            Self::CouponLimit(max) => Self::CouponLimit(*max),
            Self::VersionMismatch { expected, actual } => Self::VersionMismatch {
                expected: *expected,
                actual: *actual,
            },
            _ => return None,
        })
    }

    /// The message a client may be shown (internal causes never are).
    pub fn client_message(&self) -> String {
        match self {
            Self::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// Logs causes that a client never sees, with their chain (once per request, by
    /// `core::observe`).
    pub fn log(&self) {
        match self {
            Self::Internal(cause) => {
                tracing::error!(error = %chain(cause.as_ref()), "internal error")
            }
            Self::Unavailable(cause) => {
                tracing::warn!(error = %chain(cause.as_ref()), "cart store unavailable")
            }
            Self::ReplicationTimeout { acked, wanted } => {
                tracing::warn!(
                    acked,
                    wanted,
                    "too few replicas acknowledged a change in time"
                )
            }
            _ => {}
        }
    }
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
