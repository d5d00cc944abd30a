//! `CartError` → `tonic::Status`, the one mapping of the gRPC edge: the code of SPEC §3, a
//! `google.rpc.ErrorInfo` with the variant's reason, and a `BadRequest` for bad fields.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{CartError, MAX_FIELD_VIOLATIONS, bounded_violations};

/// Domain of every `google.rpc.ErrorInfo` the service emits.
pub const ERROR_DOMAIN: &str = "cart.v1";

/// The `google.rpc.RetryInfo` delay of a STORE_FULL refusal: memory is freed by Removes and
/// expiring carts, which a resend within milliseconds would not see.
pub const STORE_FULL_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// The gRPC code of SPEC §3.
pub fn code(error: &CartError) -> Code {
    match error {
        CartError::InvalidArgument(_) | CartError::IdempotencyKeyReused => Code::InvalidArgument,
        CartError::CartNotFound | CartError::LineNotFound(_) | CartError::NoActiveCart => {
            Code::NotFound
        }
        CartError::CartAlreadyExists => Code::AlreadyExists,
        CartError::CartDeleted
        | CartError::CartFrozen
        | CartError::CartMerged
        | CartError::OrderNumberMismatch
        | CartError::CurrencyMismatch(_)
        | CartError::LineLimit(_)
        | CartError::QuantityLimit { .. }
        | CartError::CouponLimit(_)
        | CartError::CartTooLarge(_) => Code::FailedPrecondition,
        CartError::VersionMismatch { .. } => Code::Aborted,
        CartError::Unauthenticated => Code::Unauthenticated,
        CartError::PermissionDenied(_) => Code::PermissionDenied,
        CartError::Unavailable(_) | CartError::ReplicationTimeout { .. } => Code::Unavailable,
        CartError::StoreFull => Code::ResourceExhausted,
        CartError::DeadlineExceeded => Code::DeadlineExceeded,
        CartError::Overloaded => Code::ResourceExhausted,
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
                // Violations built elsewhere than `invalid_fields` are bounded here too (one
                // slot more: a list already bounded ends with its count of the rest).
                let listed = if violations.len() > MAX_FIELD_VIOLATIONS + 1 {
                    bounded_violations(violations.clone(), violations.len())
                } else {
                    violations.clone()
                };
                for v in listed {
                    details.add_bad_request_violation(v.field, v.description);
                }
            }
            CartError::IdempotencyKeyReused => {
                details.add_bad_request_violation(
                    "request_id",
                    "already used for a request with another payload or RPC",
                );
            }
            CartError::StoreFull => {
                details.set_retry_info(Some(STORE_FULL_RETRY_DELAY));
            }
            CartError::Overloaded => {
                details.set_retry_info(Some(crate::admission::RETRY_AFTER));
            }
            _ => {}
        }
        Status::with_error_details(code(&error), error.client_message(), details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{
        FieldViolation, MAX_MESSAGE_BYTES, MAX_VIOLATION_DESCRIPTION_BYTES, OMITTED_FIELD,
    };

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
    fn every_invalid_argument_is_bounded_in_count_and_size() {
        let many: Vec<_> = (0..30_000)
            .map(|i| FieldViolation::new(format!("updates[{i}].line_id"), "x".repeat(10_000)))
            .collect();
        for error in [
            CartError::InvalidArgument(many.clone()),
            CartError::invalid_fields(many),
        ] {
            assert!(error.to_string().len() <= MAX_MESSAGE_BYTES + "invalid request: ".len());
            let status: Status = error.into();
            let violations = status
                .get_error_details()
                .bad_request()
                .unwrap()
                .field_violations
                .clone();
            assert_eq!(violations.len(), MAX_FIELD_VIOLATIONS + 1);
            assert_eq!(violations[MAX_FIELD_VIOLATIONS].field, OMITTED_FIELD);
            assert_eq!(
                violations[MAX_FIELD_VIOLATIONS].description,
                "29980 more violations not listed"
            );
            assert!(
                violations
                    .iter()
                    .all(|v| v.description.len() <= MAX_VIOLATION_DESCRIPTION_BYTES)
            );
            assert!(
                status.details().len() < 16 * 1024,
                "{}",
                status.details().len()
            );
        }
    }

    #[test]
    fn a_full_store_is_resource_exhausted_with_a_retry_delay() {
        let status: Status = CartError::StoreFull.into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("STORE_FULL", ERROR_DOMAIN)
        );
        assert_eq!(
            details.retry_info().unwrap().retry_delay,
            Some(STORE_FULL_RETRY_DELAY)
        );
        assert!(CartError::StoreFull.is_store_failure());
        assert!(CartError::StoreFull.remembered().is_none());
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
