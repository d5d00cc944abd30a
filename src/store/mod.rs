//! Cart storage: one trait, two implementations held to one contract suite.
//!
//! [`memory::MemoryStore`] is the embedded default; [`redis::RedisStore`] is production. Both
//! apply the semantics of [`crate::domain::cart`] atomically per call, and both remember a
//! mutation's outcome under its idempotency key in that same atomic step (see
//! [`crate::domain::idempotency`]): with the same [`IdempotencyTag`] again, a mutation returns the
//! remembered outcome and changes nothing; with the same key and another fingerprint it fails with
//! [`CartError::IdempotencyKeyReused`].
//!
//! Besides carts, a store keeps each customer's index of carts (GetActiveCart, Merge): a
//! short list of the cart ids that were given the customer, most recent first. It lives apart
//! from the carts (on a Cluster, in another slot), so it is only a list of candidates: it is
//! written before the cart names the customer, and the core checks every entry when it reads
//! it and drops the ones that are no longer the customer's live carts (see
//! `Core::get_active_cart`).

pub mod memory;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{
    CartId, CartKey, CartState, IdempotencyTag, Mutation, MutationOutcome, NewCart, TenantId,
    UnixMillis,
};
use crate::error::CartError;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// Most carts a customer's index holds: the oldest entry goes when another comes.
pub const MAX_INDEXED_CARTS: usize = 32;

/// A customer of a tenant: the key of the customer's index of carts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomerKey {
    pub tenant: TenantId,
    /// Opaque to the service, at most 256 bytes.
    pub customer_id: String,
}

/// The state after a successful mutation, and what the mutation reports.
#[derive(Debug, Clone)]
pub struct Mutated {
    pub state: Box<CartState>,
    pub outcome: MutationOutcome,
}

/// Atomic cart storage. Every method is one atomic step (one round trip on Redis).
///
/// A cart's state comes back boxed: it leaves through the boxed future of the method, then
/// through the core into the view, and a box moves as a pointer where the state (over 400
/// bytes) would be copied at each step.
#[async_trait]
pub trait CartStore: Send + Sync + 'static {
    /// Stores a new cart; `CartAlreadyExists` if the id is taken (a tombstone included).
    async fn create(
        &self,
        key: &CartKey,
        cart: NewCart,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<Box<CartState>, CartError>;

    /// Reads a cart and restarts a live cart's lifetime.
    async fn get(&self, key: &CartKey, now: UnixMillis) -> Result<Box<CartState>, CartError>;

    /// Applies one mutation if the cart is live and at `expected_version` (0 = any).
    async fn mutate(
        &self,
        key: &CartKey,
        mutation: Mutation,
        expected_version: i64,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<Mutated, CartError>;

    /// Forgets a live cart entirely; returns the units it held.
    async fn remove(
        &self,
        key: &CartKey,
        expected_version: i64,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<i64, CartError>;

    /// Reads a cart without restarting its lifetime.
    async fn peek(&self, key: &CartKey, now: UnixMillis) -> Result<Box<CartState>, CartError>;

    /// [`CartStore::create`] of a cart that names a customer, indexed under `customer` first
    /// ([`CartStore::index_cart`]): a failure between the two leaves an index entry that the
    /// customer's next read drops, never a cart the index misses. A store that can do both in
    /// one step (a single Redis: one transaction, one round trip) does.
    async fn create_indexed(
        &self,
        customer: &CustomerKey,
        key: &CartKey,
        cart: NewCart,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<Box<CartState>, CartError> {
        self.index_cart(customer, &key.cart_id, now).await?;
        self.create(key, cart, now, request).await
    }

    /// Puts `cart_id` first in the customer's index (again: moves it first), dropping the
    /// oldest entry past [`MAX_INDEXED_CARTS`]. Idempotent.
    async fn index_cart(
        &self,
        customer: &CustomerKey,
        cart_id: &CartId,
        now: UnixMillis,
    ) -> Result<(), CartError>;

    /// The customer's index, most recently indexed first.
    async fn indexed_carts(&self, customer: &CustomerKey) -> Result<Vec<CartId>, CartError>;

    /// Drops entries from the customer's index. Idempotent.
    async fn unindex_carts(
        &self,
        customer: &CustomerKey,
        cart_ids: &[CartId],
    ) -> Result<(), CartError>;

    /// Whether the store answers (drives health and readiness).
    async fn ping(&self) -> Result<(), CartError>;
}

/// How the core holds the store.
pub type SharedStore = Arc<dyn CartStore>;
