//! The one error type of the service, mapped once to a gRPC status.
//!
//! Every layer (domain, stores, handlers) returns [`CartError`]. The gRPC mapping lives here;
//! each HTTP dialect maps the same `reason` strings into its own error body.

use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Domain of every `google.rpc.ErrorInfo` the service emits.
pub const ERROR_DOMAIN: &str = "cart.v1";

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
    RequestIdReused,
    #[error("cart store unavailable")]
    Unavailable(#[source] BoxError),
    #[error(
        "only {acked} of {wanted} replicas acknowledged the change in time: it may have been applied; retrying with the same request_id is safe"
    )]
    ReplicationTimeout { acked: i64, wanted: u32 },
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// Too many requests in flight, for the service or for the caller's tenant (see
    /// [`crate::admission`]): refused before any work, so retrying later is safe.
    #[error("too many requests in flight; retry later")]
    Overloaded,
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

    /// Stable UPPER_SNAKE reason, the `ErrorInfo.reason` and the key each dialect maps from.
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
            Self::RequestIdReused => "REQUEST_ID_REUSED",
            Self::Unavailable(_) => "STORE_UNAVAILABLE",
            Self::ReplicationTimeout { .. } => "REPLICATION_TIMEOUT",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::Overloaded => "OVERLOADED",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// The gRPC code of SPEC §3.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) | Self::RequestIdReused => Code::InvalidArgument,
            Self::CartNotFound | Self::LineNotFound(_) => Code::NotFound,
            Self::CartAlreadyExists => Code::AlreadyExists,
            Self::CartDeleted
            | Self::OrderNumberMismatch
            | Self::CurrencyMismatch(_)
            | Self::LineLimit(_)
            | Self::QuantityLimit { .. }
            | Self::CouponLimit(_) => Code::FailedPrecondition,
            Self::VersionMismatch { .. } => Code::Aborted,
            Self::Unauthenticated => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::Unavailable(_) | Self::ReplicationTimeout { .. } => Code::Unavailable,
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::Overloaded => Code::ResourceExhausted,
            Self::Internal(_) => Code::Internal,
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

    /// Whether the message may be shown to a client (internal causes never are).
    fn client_message(&self) -> String {
        match self {
            Self::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// Logs causes that a client never sees, with their chain.
    fn log(&self) {
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

impl From<CartError> for Status {
    fn from(error: CartError) -> Self {
        error.log();
        let mut details = ErrorDetails::with_error_info(
            error.reason(),
            ERROR_DOMAIN,
            std::collections::HashMap::<String, String>::new(),
        );
        match &error {
            CartError::InvalidArgument(violations) => {
                for v in violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
            }
            CartError::RequestIdReused => {
                details.add_bad_request_violation(
                    "request_id",
                    "already used for a request with another payload or RPC",
                );
            }
            CartError::VersionMismatch { actual, .. } => {
                details.set_error_info(
                    error.reason(),
                    ERROR_DOMAIN,
                    std::collections::HashMap::from([(
                        "current_version".to_owned(),
                        actual.to_string(),
                    )]),
                );
            }
            CartError::ReplicationTimeout { acked, wanted } => {
                details.set_error_info(
                    error.reason(),
                    ERROR_DOMAIN,
                    std::collections::HashMap::from([
                        ("acknowledged_replicas".to_owned(), acked.to_string()),
                        ("min_replicas".to_owned(), wanted.to_string()),
                    ]),
                );
            }
            CartError::Overloaded => {
                details.set_retry_info(Some(crate::admission::RETRY_AFTER));
            }
            _ => {}
        }
        Status::with_error_details(error.code(), error.client_message(), details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let status: Status = CartError::Internal("redis said: WRONGTYPE at key x".into()).into();
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
        assert_eq!(
            status.get_error_details().error_info().unwrap().reason,
            "INTERNAL"
        );
    }

    #[test]
    fn invalid_argument_carries_field_violations() {
        let status: Status = CartError::InvalidArgument(vec![
            FieldViolation::new("currency", "required"),
            FieldViolation::new("items[0].sku", "too long"),
        ])
        .into();
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(fields, ["currency", "items[0].sku"]);
        let info = details.error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("INVALID_ARGUMENT", ERROR_DOMAIN)
        );
    }

    #[test]
    fn overload_is_resource_exhausted_with_a_retry_delay() {
        let status: Status = CartError::Overloaded.into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "OVERLOADED");
        assert_eq!(
            details.retry_info().unwrap().retry_delay,
            Some(crate::admission::RETRY_AFTER)
        );
        assert!(!CartError::Overloaded.is_store_failure());
        assert!(CartError::Overloaded.remembered().is_none());
    }

    #[test]
    fn version_mismatch_tells_the_current_version() {
        let status: Status = CartError::VersionMismatch {
            expected: 3,
            actual: 5,
        }
        .into();
        assert_eq!(status.code(), Code::Aborted);
        let info = status.get_error_details().error_info().unwrap().clone();
        assert_eq!(
            info.metadata.get("current_version").map(String::as_str),
            Some("5")
        );
    }
}
