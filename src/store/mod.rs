//! Cart storage: one trait, two implementations held to one contract suite.
//!
//! [`memory::MemoryStore`] is the embedded default; [`redis::RedisStore`] is production. Both
//! apply the semantics of [`crate::domain::cart`] atomically per call, and both remember a
//! mutation's outcome under its idempotency key in that same atomic step (see
//! [`crate::domain::idempotency`]): with the same [`IdempotencyTag`] again, a mutation returns the
//! remembered outcome and changes nothing; with the same key and another fingerprint it fails with
//! [`CartError::IdempotencyKeyReused`].

pub mod memory;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{
    CartKey, CartState, IdempotencyTag, Mutation, MutationOutcome, NewCart, UnixMillis,
};
use crate::error::CartError;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// The state after a successful mutation, and what the mutation reports.
#[derive(Debug, Clone)]
pub struct Mutated {
    pub state: CartState,
    pub outcome: MutationOutcome,
}

/// Atomic cart storage. Every method is one atomic step (one round trip on Redis).
#[async_trait]
pub trait CartStore: Send + Sync + 'static {
    /// Stores a new cart; `CartAlreadyExists` if the id is taken (a tombstone included).
    async fn create(
        &self,
        key: &CartKey,
        cart: NewCart,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<CartState, CartError>;

    /// Reads a cart and restarts a live cart's lifetime.
    async fn get(&self, key: &CartKey, now: UnixMillis) -> Result<CartState, CartError>;

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

    /// Whether the store answers (drives health and readiness).
    async fn ping(&self) -> Result<(), CartError>;
}

/// How the core holds the store.
pub type SharedStore = Arc<dyn CartStore>;
