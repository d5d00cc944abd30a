//! The one error type of the service.
//!
//! Every layer (domain, stores, core) returns [`CartError`]. Each edge maps it once, with an
//! exhaustive `match` over the variants: gRPC into a `Status` (`grpc::status`), each HTTP
//! dialect into its own error body. [`CartError::reason`] is the stable name of a variant on
//! the wire (`ErrorInfo.reason`) and in metrics; no edge reads it back.

use std::fmt;

/// A boxed internal cause, logged but never sent to a client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Most field violations one `InvalidArgument` lists; the rest are counted in one last
/// [`FieldViolation::omitted`] entry. A hostile request (30,000 bad line ids) must not buy
/// megabytes of trailing metadata.
pub const MAX_FIELD_VIOLATIONS: usize = 20;
/// Longest field path of a violation (a map key is part of it), in bytes.
pub const MAX_VIOLATION_FIELD_BYTES: usize = 160;
/// Longest description of a violation, in bytes.
pub const MAX_VIOLATION_DESCRIPTION_BYTES: usize = 256;
/// Longest message of an `InvalidArgument` status, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// The field of the entry that counts the violations not listed.
pub const OMITTED_FIELD: &str = "(more)";

/// One bad field of a request, reported as a `google.rpc.BadRequest` field violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    /// Both texts are cut to their bounds (at a character boundary, marked with `…`).
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: truncated(field.into(), MAX_VIOLATION_FIELD_BYTES),
            description: truncated(description.into(), MAX_VIOLATION_DESCRIPTION_BYTES),
        }
    }

    /// The last entry of a list cut at [`MAX_FIELD_VIOLATIONS`]: how many were left out.
    pub fn omitted(count: usize) -> Self {
        Self::new(OMITTED_FIELD, format!("{count} more violations not listed"))
    }
}

/// `text` cut to at most `max` bytes, at a character boundary, ending in `…` when cut.
pub fn truncated(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

/// At most [`MAX_FIELD_VIOLATIONS`] violations of `total` found, plus the count of the rest.
pub fn bounded_violations(
    mut violations: Vec<FieldViolation>,
    total: usize,
) -> Vec<FieldViolation> {
    violations.truncate(MAX_FIELD_VIOLATIONS);
    if total > violations.len() {
        let omitted = total - violations.len();
        violations.push(FieldViolation::omitted(omitted));
    }
    violations
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
    /// The cart is held still for checkout (Freeze): its content does not change until
    /// Unfreeze, Delete or the freeze's end.
    #[error("cart is frozen for checkout; unfreeze it first")]
    CartFrozen,
    /// The cart was merged into another (Merge), or a Merge of it is under way.
    #[error("cart was merged into another cart")]
    CartMerged,
    #[error("the customer has no active cart")]
    NoActiveCart,
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
    #[error("a cart's lines hold at most {0} bytes")]
    CartTooLarge(usize),
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
    /// The store holds as much as it may (Redis at `maxmemory`, the in-memory store at its
    /// cap) and refused a call that could grow it before changing anything.
    #[error("cart store is full: retry later, or free space by removing carts")]
    StoreFull,
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

/// The violations as one bounded message.
fn join(violations: &[FieldViolation]) -> String {
    let mut text = String::new();
    for (i, violation) in violations.iter().enumerate() {
        if i > 0 {
            text.push_str("; ");
        }
        text.push_str(&violation.to_string());
        if text.len() > MAX_MESSAGE_BYTES {
            break;
        }
    }
    truncated(text, MAX_MESSAGE_BYTES)
}

impl CartError {
    /// A single-field `InvalidArgument`.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// An `InvalidArgument` of any number of violations, listing at most
    /// [`MAX_FIELD_VIOLATIONS`] of them.
    pub fn invalid_fields(violations: Vec<FieldViolation>) -> Self {
        let total = violations.len();
        Self::InvalidArgument(bounded_violations(violations, total))
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
            Self::CartFrozen => "CART_FROZEN",
            Self::CartMerged => "CART_MERGED",
            Self::NoActiveCart => "NO_ACTIVE_CART",
            Self::OrderNumberMismatch => "ORDER_NUMBER_MISMATCH",
            Self::CurrencyMismatch(_) => "CURRENCY_MISMATCH",
            Self::LineLimit(_) => "LINE_LIMIT_EXCEEDED",
            Self::QuantityLimit { .. } => "QUANTITY_LIMIT_EXCEEDED",
            Self::CouponLimit(_) => "COUPON_LIMIT_EXCEEDED",
            Self::CartTooLarge(_) => "CART_TOO_LARGE",
            Self::VersionMismatch { .. } => "VERSION_MISMATCH",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied(_) => "PERMISSION_DENIED",
            Self::IdempotencyKeyReused => "REQUEST_ID_REUSED",
            Self::Unavailable(_) => "STORE_UNAVAILABLE",
            Self::StoreFull => "STORE_FULL",
            Self::ReplicationTimeout { .. } => "REPLICATION_TIMEOUT",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::Overloaded => "OVERLOADED",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// Whether the store failed the call (unreachable, too slow, too few replicas, full, or a
    /// bug), as opposed to refusing the request: counted as a store error and marked on spans.
    pub fn is_store_failure(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_)
                | Self::StoreFull
                | Self::ReplicationTimeout { .. }
                | Self::Internal(_)
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
            Self::CartFrozen => Self::CartFrozen,
            Self::CartMerged => Self::CartMerged,
            Self::OrderNumberMismatch => Self::OrderNumberMismatch,
            Self::CurrencyMismatch(currency) => Self::CurrencyMismatch(currency.clone()),
            Self::LineLimit(max) => Self::LineLimit(*max),
            Self::QuantityLimit { line_id, max } => Self::QuantityLimit {
                line_id: line_id.clone(),
                max: *max,
            },
            Self::CouponLimit(max) => Self::CouponLimit(*max),
            Self::CartTooLarge(max) => Self::CartTooLarge(*max),
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
            Self::StoreFull => {
                tracing::warn!("cart store full: a call that could grow it was refused")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncated("short".into(), 10), "short");
        let cut = truncated("é".repeat(100), 11);
        assert!(cut.len() <= 11 && cut.ends_with('…'), "{cut}");
        assert_eq!(cut, format!("{}…", "é".repeat(4)));
    }
}
