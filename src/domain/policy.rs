//! How long carts live and how big they may grow; shared by both stores and the core.

use std::time::Duration;

/// Bounds on a cart's content (SPEC §2 defaults), configurable in the config file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_lines: u32,
    pub max_quantity: u32,
    pub max_sku_bytes: usize,
    pub max_attribute_value_bytes: usize,
    pub max_coupons: u32,
    /// Bytes of one cart's stored lines (each line's id and description, see
    /// [`crate::domain::cart::LineDescription`]): bounds what one cart, its replies and the
    /// replies remembered under its request ids hold.
    pub max_cart_bytes: usize,
}

/// Default of [`Limits::max_cart_bytes`]: 256 KiB, some 250 lines of 1 KiB each.
pub const DEFAULT_MAX_CART_BYTES: usize = 256 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_lines: 250,
            max_quantity: 999,
            max_sku_bytes: 64,
            max_attribute_value_bytes: 1024,
            max_coupons: 20,
            max_cart_bytes: DEFAULT_MAX_CART_BYTES,
        }
    }
}

/// Lifetimes and limits every store enforces identically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartPolicy {
    /// Lifespan from last access of a live cart.
    pub cart_ttl: Duration,
    /// How long a deleted cart's snapshot stays readable.
    pub tombstone_ttl: Duration,
    /// How long a mutation's outcome is remembered under its idempotency key (the retry window).
    pub request_id_ttl: Duration,
    /// How long a cart stays frozen (Freeze) before it opens again by itself: a checkout that
    /// was abandoned (the payment service died between Freeze and Delete/Unfreeze) does not
    /// hold the customer's cart forever. Zero: only Unfreeze or Delete end a freeze.
    pub freeze_ttl: Duration,
    pub limits: Limits,
}

pub const DEFAULT_CART_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
pub const DEFAULT_REQUEST_ID_TTL: Duration = Duration::from_secs(24 * 3600);
/// Long enough for a payment with a 3-D Secure challenge; short enough that a shopper who
/// comes back after an abandoned checkout finds an open cart.
pub const DEFAULT_FREEZE_TTL: Duration = Duration::from_secs(3600);

impl Default for CartPolicy {
    fn default() -> Self {
        Self {
            cart_ttl: DEFAULT_CART_TTL,
            tombstone_ttl: DEFAULT_TOMBSTONE_TTL,
            request_id_ttl: DEFAULT_REQUEST_ID_TTL,
            freeze_ttl: DEFAULT_FREEZE_TTL,
            limits: Limits::default(),
        }
    }
}

impl CartPolicy {
    pub fn cart_ttl_ms(&self) -> i64 {
        duration_ms(self.cart_ttl)
    }

    /// How far a live cart's lifetime may run down before a read restarts it: 1 % of
    /// `cart_ttl` (0.9 days of the default 90). A read within that of the last restart
    /// changes nothing, so reads do not write; `last_activity_at` is the last restart, and
    /// `expires_at` (that plus `cart_ttl`) is exact. Mutations always restart it.
    pub fn refresh_slack_ms(&self) -> i64 {
        self.cart_ttl_ms() / 100
    }

    pub fn tombstone_ttl_ms(&self) -> i64 {
        duration_ms(self.tombstone_ttl)
    }

    pub fn request_id_ttl_ms(&self) -> i64 {
        duration_ms(self.request_id_ttl)
    }

    /// When a cart frozen at `now` thaws by itself (`None` with a zero `freeze_ttl`).
    pub fn frozen_until(&self, now: i64) -> Option<i64> {
        (!self.freeze_ttl.is_zero()).then(|| now.saturating_add(duration_ms(self.freeze_ttl)))
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}
