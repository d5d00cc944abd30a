//! Validated cart types and the reference semantics of every mutation.

pub mod cart;
pub mod idempotency;
pub mod ids;
pub mod policy;

pub use cart::{
    CartHeader, CartState, CartStatus, Coupon, Line, LineDescription, LineUpdate, MergeMode,
    Mutation, MutationOutcome, NewCart, NewLine,
};
pub use idempotency::IdempotencyTag;
pub use ids::{CartId, CouponCode, Currency, IdempotencyKey, LineId, OrderNumber, Sku, TenantId};
pub use policy::{CartPolicy, Limits};

/// Milliseconds since the Unix epoch: the one clock unit of stores and snapshots.
pub type UnixMillis = i64;

/// The wall clock, in [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Which tenant's cart: every store key contains both parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CartKey {
    pub tenant: TenantId,
    pub cart_id: CartId,
}
