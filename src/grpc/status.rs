//! `CartError` → `tonic::Status`, the one mapping of the gRPC edge: the code of SPEC §3, a
//! `google.rpc.ErrorInfo` with the variant's reason, and a `BadRequest` for bad fields.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::CartError;

/// Domain of every `google.rpc.ErrorInfo` the service emits.
pub const ERROR_DOMAIN: &str = "cart.v1";

/// The gRPC code of SPEC §3.
pub fn code(error: &CartError) -> Code {
    match error {
        CartError::InvalidArgument(_) | CartError::IdempotencyKeyReused => Code::InvalidArgument,
        CartError::CartNotFound | CartError::LineNotFound(_) => Code::NotFound,
        CartError::CartAlreadyExists => Code::AlreadyExists,
        CartError::CartDeleted
        | CartError::OrderNumberMismatch
        | CartError::CurrencyMismatch(_)
        | CartError::LineLimit(_)
        | CartError::QuantityLimit { .. }
        | CartError::CouponLimit(_) => Code::FailedPrecondition,
        CartError::VersionMismatch { .. } => Code::Aborted,
        CartError::Unauthenticated => Code::Unauthenticated,
        CartError::PermissionDenied(_) => Code::PermissionDenied,
        CartError::Unavailable(_) | CartError::ReplicationTimeout { .. } => Code::Unavailable,
        CartError::DeadlineExceeded => Code::DeadlineExceeded,
        CartError::Internal(_) => Code::Internal,
    }
}

impl From<CartError> for Status {
    fn from(error: CartError) -> Self {
        let metadata = match &error {
            CartError::VersionMismatch { actual, .. } => {
                HashMap::from([("current_version".to_owned(), actual.to_string())])
            }
            CartError::ReplicationTimeout { acked, wanted } => HashMap::from([
                ("acknowledged_replicas".to_owned(), acked.to_string()),
                ("min_replicas".to_owned(), wanted.to_string()),
            ]),
            _ => HashMap::new(),
        };
        let mut details = ErrorDetails::with_error_info(error.reason(), ERROR_DOMAIN, metadata);
        match &error {
            CartError::InvalidArgument(violations) => {
                for v in violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
            }
            CartError::IdempotencyKeyReused => {
                details.add_bad_request_violation(
                    "request_id",
                    "already used for a request with another payload or RPC",
                );
            }
            _ => {}
        }
        Status::with_error_details(code(&error), error.client_message(), details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldViolation;

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
