//! What the core answers: a cart as a client sees it (the stored state plus what is derived
//! from it), and the outcomes of the operations that answer more than a cart.

use crate::auth::CartTokens;
use crate::domain::cart::Totals;
use crate::domain::{CartKey, CartPolicy, CartState, CartStatus, Line, UnixMillis};

/// A cart as every interface shows it: derived totals, expiry and the cart's hmac. Each
/// adapter encodes it into its own wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartView {
    pub key: CartKey,
    /// Boxed: a view is handed up through every layer of a call (core, observation, adapter),
    /// and each hand-over moves it; a box moves as a pointer where the state would be copied
    /// whole, several hundred bytes each time.
    pub state: Box<CartState>,
    pub totals: Totals,
    /// When the store forgets the cart (see [`CartState::expires_at`]).
    pub expires_at: UnixMillis,
    /// The cart's access token (see [`crate::auth::CartTokens::sign`]).
    pub hmac: String,
}

impl CartView {
    /// The view of `state` (boxed as the store hands it up) under `policy`, signed with
    /// `tokens`.
    pub fn new(
        key: CartKey,
        state: Box<CartState>,
        policy: &CartPolicy,
        tokens: &CartTokens,
    ) -> Self {
        Self {
            totals: state.totals(),
            expires_at: state.expires_at(policy),
            hmac: tokens.sign(&key.tenant, &key.cart_id),
            key,
            state,
        }
    }

    pub fn id(&self) -> &str {
        self.key.cart_id.as_str()
    }

    pub fn is_deleted(&self) -> bool {
        self.state.status == CartStatus::Deleted
    }
}

impl Line {
    /// Unit price times quantity (saturating, as the totals are).
    pub fn total_price(&self) -> i64 {
        self.unit_price.saturating_mul(i64::from(self.quantity))
    }
}

/// What Clear answers: the emptied cart and the units it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearOutcome {
    pub cart: CartView,
    pub items_cleared: i64,
}

/// What Merge answers: the customer's active cart, the guest cart merged into it, and how many
/// of the guest's lines the mode took into account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeOutcome {
    pub cart: CartView,
    pub source_cart_id: String,
    pub lines_merged: i64,
}

/// What Remove answers: the cart is gone, and it held this many units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveOutcome {
    pub cart_id: String,
    pub items_removed: i64,
}
