//! The cart state machine: the reference semantics of every mutation.
//!
//! `MemoryStore` runs these functions under a lock; `RedisStore` runs Lua scripts that mirror
//! them check for check, in the same order, and the shared contract suite holds both to it.
//! Every mutation validates everything first and changes nothing when it fails.
//!
//! Statuses: ACTIVE carts take every mutation; FROZEN carts (Freeze, for checkout) refuse
//! changes of their content with `CartFrozen` but take Remove, Delete, Freeze and Unfreeze, and
//! thaw by themselves at `frozen_until` (the config's `freeze_ttl`); MERGING (a Merge sealed
//! the cart under its idempotency key: its content is what the merge takes) and MERGED (the
//! tombstone a Merge leaves) refuse every mutation with `CartMerged` except the steps of the
//! sealing Merge itself ([`Mutation::Unseal`], [`Mutation::FinishMerge`]).
//!
//! A cart's size is bounded by [`Limits::max_cart_bytes`] over its lines, counted as a Redis
//! store holds them: each line's id plus its description (the JSON of [`LineDescription`]),
//! so both stores count the same bytes and refuse at the same point.

use std::collections::BTreeMap;
use std::io::Write;

use super::{CartPolicy, CouponCode, Currency, Limits, LineId, OrderNumber, Sku, UnixMillis};
use crate::error::CartError;

/// The descriptive fields of a cart, set at creation and kept by Clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartHeader {
    pub customer_id: String,
    pub session_id: String,
    pub channel: String,
    pub currency: Currency,
    pub locale: String,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CartStatus {
    Active,
    /// Held still for checkout (see the module doc).
    Frozen,
    Deleted,
    /// Sealed by a Merge under way: its lines are being taken into `merged_into`.
    Merging,
    /// The tombstone of a merged cart.
    Merged,
}

/// How [`Mutation::Absorb`] combines a guest's lines with the target's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    /// Quantities add as AddItems would; the limits apply.
    Sum,
    /// The higher quantity per sku.
    Max,
    /// The target's lines are replaced by the guest's.
    KeepSource,
    /// The guest's lines are dropped.
    KeepTarget,
}

impl MergeMode {
    /// Its name in fingerprints and in the Redis script's arguments.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Max => "max",
            Self::KeepSource => "keep_source",
            Self::KeepTarget => "keep_target",
        }
    }
}

/// The immutable part of a line as stored (JSON): what [`Line::bytes`] counts.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct LineDescription<'a> {
    pub sku: std::borrow::Cow<'a, str>,
    #[serde(default)]
    pub product_id: std::borrow::Cow<'a, str>,
    #[serde(default)]
    pub title: std::borrow::Cow<'a, str>,
    pub unit_price: i64,
    #[serde(default)]
    pub attributes: std::borrow::Cow<'a, BTreeMap<String, String>>,
    pub added_at: UnixMillis,
}

impl<'a> LineDescription<'a> {
    /// The description of `item` added at `now`.
    pub fn of(item: &'a NewLine, now: UnixMillis) -> Self {
        Self {
            sku: item.sku.as_str().into(),
            product_id: item.product_id.as_str().into(),
            title: item.title.as_str().into(),
            unit_price: item.unit_price,
            attributes: std::borrow::Cow::Borrowed(&item.attributes),
            added_at: now,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a line description always serializes")
    }

    /// Reads a stored description. The JSON that [`LineDescription::to_json`] writes (its
    /// fields in order, strings without escapes) is read here directly, its strings borrowed;
    /// anything else (escapes, another field order, fields absent) is read by serde_json.
    pub fn from_json(json: &'a str) -> Result<Self, serde_json::Error> {
        match Self::read_as_written(json) {
            Some(description) => Ok(description),
            None => serde_json::from_str(json),
        }
    }

    /// `None` unless `json` is exactly in [`LineDescription::to_json`]'s shape.
    fn read_as_written(json: &'a str) -> Option<Self> {
        let mut r = FlatJson { json, at: 0 };
        r.token("{\"sku\":")?;
        let sku = r.string()?;
        r.token(",\"product_id\":")?;
        let product_id = r.string()?;
        r.token(",\"title\":")?;
        let title = r.string()?;
        r.token(",\"unit_price\":")?;
        let unit_price = r.integer()?;
        r.token(",\"attributes\":{")?;
        let mut attributes = BTreeMap::new();
        if r.token("}").is_none() {
            loop {
                let name = r.string()?;
                r.token(":")?;
                let value = r.string()?;
                // serde_json keeps the last of repeated names: so does this.
                attributes.insert(name.to_owned(), value.to_owned());
                if r.token(",").is_none() {
                    r.token("}")?;
                    break;
                }
            }
        }
        r.token(",\"added_at\":")?;
        let added_at = r.integer()?;
        r.token("}")?;
        (r.at == json.len()).then(|| Self {
            sku: sku.into(),
            product_id: product_id.into(),
            title: title.into(),
            unit_price,
            attributes: std::borrow::Cow::Owned(attributes),
            added_at,
        })
    }

    /// The length of [`LineDescription::to_json`], without building it.
    pub fn json_len(&self) -> usize {
        struct Count(usize);
        impl Write for Count {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        serde_json::to_writer(&mut count, self).expect("a line description always serializes");
        count.0
    }
}

/// A cursor over JSON without whitespace, for [`LineDescription::read_as_written`]: each
/// read is `None` where the text is not what it expects.
struct FlatJson<'a> {
    json: &'a str,
    at: usize,
}

impl<'a> FlatJson<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.json.as_bytes()[self.at..]
    }

    fn token(&mut self, token: &str) -> Option<()> {
        self.rest().starts_with(token.as_bytes()).then(|| {
            self.at += token.len();
        })
    }

    /// A string without escapes (a backslash or a control character: `None`).
    fn string(&mut self) -> Option<&'a str> {
        self.token("\"")?;
        let len = self.rest().iter().position(|&b| b == b'"')?;
        let text = &self.rest()[..len];
        if text.iter().any(|&b| b == b'\\' || b < 0x20) {
            return None;
        }
        let start = self.at;
        self.at += len + 1;
        // Whole characters: it lies between two ASCII quotes of valid UTF-8.
        self.json.get(start..start + len)
    }

    /// An integer as serde_json writes an `i64`: an optional minus, then digits.
    fn integer(&mut self) -> Option<i64> {
        let rest = self.rest();
        let sign = usize::from(rest.first() == Some(&b'-'));
        let digits = rest[sign..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || (digits > 1 && rest[sign] == b'0') {
            return None;
        }
        let end = self.at + sign + digits;
        // A fraction or an exponent: not an integer as written, left to serde_json.
        if matches!(self.json.as_bytes().get(end), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let value = self.json[self.at..end].parse().ok()?;
        self.at = end;
        Some(value)
    }
}

/// One line of a cart; its identity is its sku (see [`LineId::for_sku`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub line_id: LineId,
    pub sku: Sku,
    pub product_id: String,
    pub title: String,
    pub quantity: u32,
    pub unit_price: i64,
    pub attributes: BTreeMap<String, String>,
    pub added_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// Insertion order within the cart.
    pub position: i64,
    /// What the line counts against [`Limits::max_cart_bytes`]: its id and its description.
    pub bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub code: CouponCode,
    pub amount: i64,
    pub position: i64,
}

/// A validated item to add. Items of one request are merged by sku before they get here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLine {
    pub line_id: LineId,
    pub sku: Sku,
    pub product_id: String,
    pub title: String,
    pub quantity: u32,
    pub unit_price: i64,
    pub attributes: BTreeMap<String, String>,
    /// When given, must equal the cart's currency.
    pub currency: Option<Currency>,
}

/// A validated quantity change; 0 removes the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineUpdate {
    pub line_id: LineId,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCart {
    pub header: CartHeader,
    pub items: Vec<NewLine>,
    /// Whether the service chose the id (96 random bits, or derived from a request id with
    /// the hmac secret), as opposed to the client: only such an id is a capability.
    pub id_generated: bool,
}

/// Every mutation of a live cart except Remove (which ends it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    AddItems(Vec<NewLine>),
    UpdateItems(Vec<LineUpdate>),
    ApplyCoupon {
        code: CouponCode,
        amount: i64,
    },
    Clear {
        preserve_coupons: bool,
        reason: String,
        /// Clear only a cart whose id the service generated; any other is `CartNotFound`
        /// (for callers whose only credential is the id, like VTEX's public route).
        only_generated_id: bool,
    },
    Delete {
        order_number: OrderNumber,
    },
    /// Holds the cart still; a frozen cart stays as it is (no version bump).
    Freeze {
        reason: String,
        /// When it thaws by itself (`None`: only Unfreeze or Delete end it).
        until: Option<UnixMillis>,
    },
    /// Opens a frozen cart; an active cart stays as it is (no version bump).
    Unfreeze,
    /// Gives a guest cart to `customer_id` (Merge when the customer has no cart). A cart of
    /// another customer is `CartNotFound`; one already the customer's stays as it is.
    Claim {
        customer_id: String,
    },
    /// Merge step 2: seals the source for the Merge of `merge_key` into `target` (no version
    /// bump: an unsealed source is as it was). Sealing it again under the same key is a no-op.
    Seal {
        target: String,
        merge_key: String,
    },
    /// Undoes [`Mutation::Seal`] of `merge_key` after the target refused the merge.
    Unseal {
        merge_key: String,
    },
    /// Merge step 3, on the target: the source's lines by `mode`, and its coupons by code.
    Absorb {
        mode: MergeMode,
        /// The source's currency: a target of another is `CurrencyMismatch`.
        currency: Currency,
        items: Vec<NewLine>,
        coupons: Vec<(CouponCode, i64)>,
    },
    /// Merge step 4: the sealed source becomes the MERGED tombstone (again: a no-op).
    FinishMerge {
        merge_key: String,
    },
}

/// What a successful mutation reports beyond the new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MutationOutcome {
    /// Units removed by Clear (0 for other mutations).
    pub items_cleared: i64,
}

/// Everything a store keeps about one cart. Totals are derived, never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartState {
    pub header: CartHeader,
    pub status: CartStatus,
    pub lines: Vec<Line>,
    pub coupons: Vec<Coupon>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub last_activity_at: UnixMillis,
    pub cleared_at: Option<UnixMillis>,
    pub clear_reason: String,
    pub deleted_at: Option<UnixMillis>,
    pub order_number: String,
    pub version: i64,
    /// Next insertion position for a line or coupon.
    pub next_position: i64,
    /// See [`NewCart::id_generated`]; false for carts stored before it was recorded.
    pub id_generated: bool,
    /// Set while FROZEN.
    pub frozen_at: Option<UnixMillis>,
    pub freeze_reason: String,
    /// When a FROZEN cart thaws by itself (`None`: never).
    pub frozen_until: Option<UnixMillis>,
    /// The target of a MERGING or MERGED cart.
    pub merged_into: String,
    /// The idempotency key of the Merge that sealed a MERGING or MERGED cart.
    pub merge_key: String,
}

impl CartState {
    /// A new cart at version 1, with its initial items.
    pub fn create(new: NewCart, now: UnixMillis, limits: &Limits) -> Result<Self, CartError> {
        let mut cart = Self {
            header: new.header,
            status: CartStatus::Active,
            lines: Vec::new(),
            coupons: Vec::new(),
            created_at: now,
            updated_at: now,
            last_activity_at: now,
            cleared_at: None,
            clear_reason: String::new(),
            deleted_at: None,
            order_number: String::new(),
            version: 1,
            next_position: 1,
            id_generated: new.id_generated,
            frozen_at: None,
            freeze_reason: String::new(),
            frozen_until: None,
            merged_into: String::new(),
            merge_key: String::new(),
        };
        let sizes = cart.check_add(&new.items, now, limits)?;
        cart.add(new.items, sizes, now);
        Ok(cart)
    }

    /// What the lines count against [`Limits::max_cart_bytes`].
    pub fn line_bytes(&self) -> usize {
        self.lines.iter().map(|l| l.bytes).sum()
    }

    /// Sum of quantities.
    pub fn item_count(&self) -> i64 {
        self.lines.iter().map(|l| i64::from(l.quantity)).sum()
    }

    pub fn line(&self, line_id: &LineId) -> Option<&Line> {
        self.lines.iter().find(|l| &l.line_id == line_id)
    }

    /// When the store forgets this cart: a live cart lives `cart_ttl` from its last access,
    /// a tombstone `tombstone_ttl` from its deletion.
    pub fn expires_at(&self, policy: &CartPolicy) -> UnixMillis {
        match (self.status, self.deleted_at) {
            (CartStatus::Deleted, Some(deleted_at)) => deleted_at + policy.tombstone_ttl_ms(),
            // A merged tombstone never changes after the merge that made it.
            (CartStatus::Merged, _) => self.updated_at + policy.tombstone_ttl_ms(),
            _ => self.last_activity_at + policy.cart_ttl_ms(),
        }
    }

    /// Whether the cart is ACTIVE or FROZEN (what GetActiveCart may answer).
    pub fn is_live(&self) -> bool {
        matches!(self.status, CartStatus::Active | CartStatus::Frozen)
    }

    /// A frozen cart past its `frozen_until` reads as active: an abandoned checkout ends by
    /// itself. Both stores apply this to what they read, before any mutation.
    pub fn thaw(&mut self, now: UnixMillis) {
        if self.status == CartStatus::Frozen && self.frozen_until.is_some_and(|until| until <= now)
        {
            self.status = CartStatus::Active;
            self.frozen_at = None;
            self.freeze_reason.clear();
            self.frozen_until = None;
        }
    }

    /// Records a read: a live cart's (frozen or being merged too) lifetime restarts once it has
    /// run down by more than [`CartPolicy::refresh_slack_ms`] (so most reads change nothing);
    /// a tombstone's never. Returns whether it restarted.
    pub fn touch(&mut self, now: UnixMillis, policy: &CartPolicy) -> bool {
        let due = now - self.last_activity_at > policy.refresh_slack_ms();
        let live = matches!(
            self.status,
            CartStatus::Active | CartStatus::Frozen | CartStatus::Merging
        );
        if live && due {
            self.last_activity_at = now;
            return true;
        }
        false
    }

    /// The guard of Remove, Delete and Freeze/Unfreeze: the cart has not ended (deleted,
    /// merged or being merged) and is at `expected_version`. A frozen cart passes.
    pub fn check_open(&self, expected_version: i64) -> Result<(), CartError> {
        self.check_not_ended()?;
        if expected_version != 0 && expected_version != self.version {
            return Err(CartError::VersionMismatch {
                expected: expected_version,
                actual: self.version,
            });
        }
        Ok(())
    }

    fn check_not_ended(&self) -> Result<(), CartError> {
        match self.status {
            CartStatus::Deleted => Err(CartError::CartDeleted),
            CartStatus::Merging | CartStatus::Merged => Err(CartError::CartMerged),
            CartStatus::Active | CartStatus::Frozen => Ok(()),
        }
    }

    /// The guard of every change of a cart's content: [`CartState::check_open`], and not
    /// frozen.
    pub fn check_live(&self, expected_version: i64) -> Result<(), CartError> {
        self.check_open(expected_version)?;
        if self.status == CartStatus::Frozen {
            return Err(CartError::CartFrozen);
        }
        Ok(())
    }

    /// Applies `mutation` atomically: on error nothing has changed.
    pub fn apply(
        &mut self,
        mutation: &Mutation,
        expected_version: i64,
        now: UnixMillis,
        limits: &Limits,
    ) -> Result<MutationOutcome, CartError> {
        if let Mutation::Clear {
            only_generated_id: true,
            ..
        } = mutation
            && !self.id_generated
        {
            return Err(CartError::CartNotFound);
        }
        if let Mutation::Delete { order_number } = mutation
            && self.status == CartStatus::Deleted
        {
            // Idempotent retry of the checkout that closed the cart.
            return if self.order_number == order_number.as_str() {
                Ok(MutationOutcome::default())
            } else {
                Err(CartError::OrderNumberMismatch)
            };
        }
        match mutation {
            Mutation::Freeze { .. } | Mutation::Unfreeze => {
                self.check_not_ended()?;
                // Freezing a frozen cart (unfreezing an active one) changes nothing.
                if (self.status == CartStatus::Frozen)
                    == matches!(mutation, Mutation::Freeze { .. })
                {
                    return Ok(MutationOutcome::default());
                }
                self.check_open(expected_version)?;
            }
            Mutation::Seal { .. } | Mutation::Unseal { .. } | Mutation::FinishMerge { .. } => {
                return self.merge_step(mutation, now);
            }
            Mutation::Delete { .. } => self.check_open(expected_version)?,
            Mutation::Claim { customer_id } => {
                self.check_live(expected_version)?;
                if self.header.customer_id == *customer_id {
                    return Ok(MutationOutcome::default());
                }
                if !self.header.customer_id.is_empty() {
                    return Err(CartError::CartNotFound);
                }
            }
            _ => self.check_live(expected_version)?,
        }
        let mut outcome = MutationOutcome::default();
        match mutation {
            Mutation::AddItems(items) => {
                let sizes = self.check_add(items, now, limits)?;
                self.add(items.clone(), sizes, now);
            }
            Mutation::UpdateItems(updates) => {
                self.check_update(updates, limits)?;
                self.update(updates, now);
            }
            Mutation::ApplyCoupon { code, amount } => self.apply_coupon(code, *amount, limits)?,
            Mutation::Clear {
                preserve_coupons,
                reason,
                ..
            } => {
                outcome.items_cleared = self.item_count();
                self.lines.clear();
                if !preserve_coupons {
                    self.coupons.clear();
                }
                self.cleared_at = Some(now);
                self.clear_reason = reason.clone();
            }
            Mutation::Delete { order_number } => {
                self.status = CartStatus::Deleted;
                self.deleted_at = Some(now);
                self.order_number = order_number.to_string();
            }
            Mutation::Freeze { reason, until } => {
                self.status = CartStatus::Frozen;
                self.frozen_at = Some(now);
                self.freeze_reason = reason.clone();
                self.frozen_until = *until;
            }
            Mutation::Unfreeze => {
                self.status = CartStatus::Active;
                self.frozen_at = None;
                self.freeze_reason.clear();
                self.frozen_until = None;
            }
            Mutation::Claim { customer_id } => self.header.customer_id = customer_id.clone(),
            Mutation::Absorb {
                mode,
                currency,
                items,
                coupons,
            } => self.absorb(*mode, currency, items, coupons, now, limits)?,
            Mutation::Seal { .. } | Mutation::Unseal { .. } | Mutation::FinishMerge { .. } => {
                unreachable!("merge steps return above")
            }
        }
        self.version += 1;
        self.updated_at = now;
        self.last_activity_at = now;
        Ok(outcome)
    }

    /// The source's side of a Merge (`lua/seal.lua`, `unseal.lua`, `finish_merge.lua`).
    fn merge_step(
        &mut self,
        mutation: &Mutation,
        now: UnixMillis,
    ) -> Result<MutationOutcome, CartError> {
        let sealed_by = |key: &str| self.merge_key == key;
        match mutation {
            Mutation::Seal { target, merge_key } => match self.status {
                CartStatus::Deleted => Err(CartError::CartDeleted),
                CartStatus::Merging if sealed_by(merge_key) => Ok(MutationOutcome::default()),
                CartStatus::Merging | CartStatus::Merged => Err(CartError::CartMerged),
                CartStatus::Frozen => Err(CartError::CartFrozen),
                CartStatus::Active => {
                    self.status = CartStatus::Merging;
                    self.merged_into = target.clone();
                    self.merge_key = merge_key.clone();
                    self.last_activity_at = now;
                    Ok(MutationOutcome::default())
                }
            },
            Mutation::Unseal { merge_key } => {
                if self.status == CartStatus::Merging && sealed_by(merge_key) {
                    self.status = CartStatus::Active;
                    self.merged_into.clear();
                    self.merge_key.clear();
                    self.last_activity_at = now;
                }
                Ok(MutationOutcome::default())
            }
            Mutation::FinishMerge { merge_key } => match self.status {
                CartStatus::Merged if sealed_by(merge_key) => Ok(MutationOutcome::default()),
                CartStatus::Merging if sealed_by(merge_key) => {
                    self.status = CartStatus::Merged;
                    self.version += 1;
                    self.updated_at = now;
                    self.last_activity_at = now;
                    Ok(MutationOutcome::default())
                }
                CartStatus::Deleted => Err(CartError::CartDeleted),
                _ => Err(CartError::CartMerged),
            },
            _ => unreachable!("only merge steps"),
        }
    }

    /// Merge step 3 on the target (`lua/merge_in.lua` mirrors it): checks every line, then
    /// every coupon, then changes the lines and coupons; on error nothing has changed.
    fn absorb(
        &mut self,
        mode: MergeMode,
        currency: &Currency,
        items: &[NewLine],
        coupons: &[(CouponCode, i64)],
        now: UnixMillis,
        limits: &Limits,
    ) -> Result<(), CartError> {
        if currency != &self.header.currency {
            return Err(CartError::CurrencyMismatch(currency.to_string()));
        }
        // The lines the mode leaves, checked on a copy.
        let mut merged = self.clone();
        match mode {
            MergeMode::KeepTarget => {}
            MergeMode::Sum => {
                let sizes = merged.check_add(items, now, limits)?;
                merged.add(items.to_vec(), sizes, now);
            }
            MergeMode::KeepSource => {
                merged.lines.clear();
                let sizes = merged.check_add(items, now, limits)?;
                merged.add(items.to_vec(), sizes, now);
            }
            MergeMode::Max => {
                // Only what raises a line, or a new line, is added: the difference.
                let raises: Vec<NewLine> = items
                    .iter()
                    .filter_map(|item| {
                        let current = merged.line(&item.line_id).map_or(0, |l| l.quantity);
                        (item.quantity > current || current == 0).then(|| NewLine {
                            quantity: item.quantity - current.min(item.quantity),
                            ..item.clone()
                        })
                    })
                    .filter(|item| item.quantity > 0)
                    .collect();
                let sizes = merged.check_add(&raises, now, limits)?;
                merged.add(raises, sizes, now);
            }
        }
        let mut added = 0;
        for (code, _) in coupons {
            if merged.coupons.iter().all(|c| &c.code != code) {
                added += 1;
            }
        }
        if added > 0 && merged.coupons.len() + added > limits.max_coupons as usize {
            return Err(CartError::CouponLimit(limits.max_coupons));
        }
        for (code, amount) in coupons {
            if merged.coupons.iter().all(|c| &c.code != code) {
                merged.coupons.push(Coupon {
                    code: code.clone(),
                    amount: *amount,
                    position: merged.next_position,
                });
                merged.next_position += 1;
            }
        }
        self.lines = merged.lines;
        self.coupons = merged.coupons;
        self.next_position = merged.next_position;
        Ok(())
    }

    /// Checks items in order (the Lua `plan_add` mirrors it); returns the bytes each new line
    /// will count (0 for an item that adds to a line).
    fn check_add(
        &self,
        items: &[NewLine],
        now: UnixMillis,
        limits: &Limits,
    ) -> Result<Vec<usize>, CartError> {
        let mut lines = self.lines.len();
        let mut bytes = self.line_bytes();
        let mut sizes = Vec::with_capacity(items.len());
        for item in items {
            if let Some(currency) = &item.currency
                && currency != &self.header.currency
            {
                return Err(CartError::CurrencyMismatch(currency.to_string()));
            }
            let current = match self.line(&item.line_id) {
                Some(line) => line.quantity,
                None => {
                    lines += 1;
                    0
                }
            };
            if current + item.quantity > limits.max_quantity {
                return Err(CartError::QuantityLimit {
                    line_id: item.line_id.to_string(),
                    max: limits.max_quantity,
                });
            }
            if lines > limits.max_lines as usize {
                return Err(CartError::LineLimit(limits.max_lines));
            }
            let size = match self.line(&item.line_id) {
                Some(_) => 0,
                None => item.line_id.as_str().len() + LineDescription::of(item, now).json_len(),
            };
            bytes += size;
            if bytes > limits.max_cart_bytes {
                return Err(CartError::CartTooLarge(limits.max_cart_bytes));
            }
            sizes.push(size);
        }
        Ok(sizes)
    }

    fn add(&mut self, items: Vec<NewLine>, sizes: Vec<usize>, now: UnixMillis) {
        for (item, bytes) in items.into_iter().zip(sizes) {
            if let Some(line) = self.lines.iter_mut().find(|l| l.line_id == item.line_id) {
                line.quantity += item.quantity;
                line.updated_at = now;
                continue;
            }
            self.lines.push(Line {
                line_id: item.line_id,
                sku: item.sku,
                product_id: item.product_id,
                title: item.title,
                quantity: item.quantity,
                unit_price: item.unit_price,
                attributes: item.attributes,
                added_at: now,
                updated_at: now,
                position: self.next_position,
                bytes,
            });
            self.next_position += 1;
        }
    }

    fn check_update(&self, updates: &[LineUpdate], limits: &Limits) -> Result<(), CartError> {
        for update in updates {
            if self.line(&update.line_id).is_none() {
                return Err(CartError::LineNotFound(update.line_id.to_string()));
            }
            if update.quantity > limits.max_quantity {
                return Err(CartError::QuantityLimit {
                    line_id: update.line_id.to_string(),
                    max: limits.max_quantity,
                });
            }
        }
        Ok(())
    }

    fn update(&mut self, updates: &[LineUpdate], now: UnixMillis) {
        for update in updates {
            if update.quantity == 0 {
                self.lines.retain(|l| l.line_id != update.line_id);
            } else if let Some(line) = self.lines.iter_mut().find(|l| l.line_id == update.line_id) {
                line.quantity = update.quantity;
                line.updated_at = now;
            }
        }
    }

    fn apply_coupon(
        &mut self,
        code: &CouponCode,
        amount: i64,
        limits: &Limits,
    ) -> Result<(), CartError> {
        if let Some(coupon) = self.coupons.iter_mut().find(|c| &c.code == code) {
            coupon.amount = amount;
            return Ok(());
        }
        if self.coupons.len() >= limits.max_coupons as usize {
            return Err(CartError::CouponLimit(limits.max_coupons));
        }
        self.coupons.push(Coupon {
            code: code.clone(),
            amount,
            position: self.next_position,
        });
        self.next_position += 1;
        Ok(())
    }
}

/// Totals derived from the lines and coupons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub item_count: i64,
    pub unique_item_count: i64,
    pub subtotal: i64,
    /// Coupons never discount more than the subtotal.
    pub discount_amount: i64,
    pub total: i64,
}

impl CartState {
    /// Money arithmetic saturates: input bounds keep real carts far from i64 limits.
    pub fn totals(&self) -> Totals {
        let subtotal = self.lines.iter().fold(0i64, |sum, l| {
            sum.saturating_add(l.unit_price.saturating_mul(i64::from(l.quantity)))
        });
        let coupons = self
            .coupons
            .iter()
            .fold(0i64, |sum, c| sum.saturating_add(c.amount));
        let discount_amount = coupons.min(subtotal);
        Totals {
            item_count: self.item_count(),
            unique_item_count: self.lines.len() as i64,
            subtotal,
            discount_amount,
            total: subtotal - discount_amount,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A description's fields, for comparing two reads of one JSON text.
    type Read = (String, String, String, i64, BTreeMap<String, String>, i64);

    fn fields(description: LineDescription<'_>) -> Read {
        (
            description.sku.into_owned(),
            description.product_id.into_owned(),
            description.title.into_owned(),
            description.unit_price,
            description.attributes.into_owned(),
            description.added_at,
        )
    }

    fn by_serde(json: &str) -> Option<Read> {
        serde_json::from_str::<LineDescription>(json)
            .ok()
            .map(fields)
    }

    #[test]
    fn descriptions_as_written_are_read_directly_and_as_serde_json_reads_them() {
        let texts = [
            "SKU-1",
            "",
            "caf\u{e9} \u{1f6d2}",
            "a\"b\\c",
            "tab\there",
            "x/y",
        ];
        let prices = [0, 1999, -5, i64::MAX, i64::MIN];
        for (i, text) in texts.iter().enumerate() {
            let mut attributes = BTreeMap::new();
            for name in &texts[..i] {
                attributes.insert(format!("k{name}"), text.to_string());
            }
            let description = LineDescription {
                sku: (*text).into(),
                product_id: format!("p{text}").into(),
                title: texts[(i + 1) % texts.len()].into(),
                unit_price: prices[i % prices.len()],
                attributes: std::borrow::Cow::Owned(attributes),
                added_at: 1_764_590_000_123 + i as i64,
            };
            let json = String::from_utf8(description.to_json()).unwrap();
            let escaped = json.contains('\\');
            assert_eq!(
                LineDescription::read_as_written(&json).is_some(),
                !escaped,
                "{json}"
            );
            let read = LineDescription::from_json(&json).ok().map(fields);
            assert_eq!(read, by_serde(&json), "{json}");
            assert_eq!(read, Some(fields(description)), "{json}");
        }
    }

    #[test]
    fn descriptions_in_another_shape_are_read_by_serde_json() {
        for json in [
            // Fields absent (defaults), reordered, unknown, spaced, or repeated attributes.
            r#"{"sku":"S","unit_price":5,"added_at":7}"#,
            r#"{"unit_price":5,"sku":"S","product_id":"","title":"","attributes":{},"added_at":7}"#,
            r#"{"sku":"S","product_id":"","title":"","unit_price":5,"attributes":{},"added_at":7,"x":1}"#,
            r#"{ "sku":"S","product_id":"","title":"","unit_price":5,"attributes":{},"added_at":7}"#,
            r#"{"sku":"S","product_id":"","title":"","unit_price":5,"attributes":{"a":"1","a":"2"},"added_at":7}"#,
            r#"{"sku":"S","product_id":"","title":"","unit_price":5.0,"attributes":{},"added_at":7}"#,
            r#"{"sku":"S","product_id":"","title":"","unit_price":05,"attributes":{},"added_at":7}"#,
            r#"{"sku":"S","product_id":"","title":"","unit_price":5,"attributes":{},"added_at":7} "#,
            r#"{"sku":"S","product_id":"","title":"","unit_price":99999999999999999999,"attributes":{},"added_at":7}"#,
            r#"{"sku":"S\u0041","product_id":"","title":"","unit_price":5,"attributes":{},"added_at":7}"#,
            r#"{"sku":"S","product_id":"","title":"","unit_price":5,"attributes":{},"added_at":7"#,
        ] {
            let read = LineDescription::from_json(json).ok().map(fields);
            assert_eq!(read, by_serde(json), "{json}");
        }
        let repeated = r#"{"sku":"S","product_id":"","title":"","unit_price":5,"attributes":{"a":"1","a":"2"},"added_at":7}"#;
        let read = LineDescription::read_as_written(repeated)
            .map(fields)
            .unwrap();
        assert_eq!(read.4.get("a").map(String::as_str), Some("2"));
    }

    fn header() -> CartHeader {
        CartHeader {
            customer_id: "cust".into(),
            session_id: "sess".into(),
            channel: "web".into(),
            currency: Currency::parse("USD").unwrap(),
            locale: "en-US".into(),
            metadata: BTreeMap::new(),
        }
    }

    fn item(sku: &str, quantity: u32, unit_price: i64) -> NewLine {
        let sku = Sku::parse(sku, 64).unwrap();
        NewLine {
            line_id: LineId::for_sku(&sku),
            sku,
            product_id: String::new(),
            title: String::new(),
            quantity,
            unit_price,
            attributes: BTreeMap::new(),
            currency: None,
        }
    }

    fn cart(items: Vec<NewLine>) -> CartState {
        let new = NewCart {
            header: header(),
            items,
            id_generated: true,
        };
        CartState::create(new, 1_000, &Limits::default()).unwrap()
    }

    #[test]
    fn same_sku_adds_to_the_existing_line() {
        let mut c = cart(vec![item("A", 2, 100)]);
        c.apply(
            &Mutation::AddItems(vec![item("A", 3, 100)]),
            0,
            2_000,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(c.lines.len(), 1);
        assert_eq!(c.lines[0].quantity, 5);
        assert_eq!(c.totals().subtotal, 500);
        assert_eq!(c.version, 2);
    }

    #[test]
    fn failed_mutation_changes_nothing() {
        let limits = Limits {
            max_lines: 2,
            ..Limits::default()
        };
        let mut c = cart(vec![item("A", 1, 100)]);
        let before = c.clone();
        let err = c
            .apply(
                &Mutation::AddItems(vec![item("B", 1, 1), item("C", 1, 1)]),
                0,
                2_000,
                &limits,
            )
            .unwrap_err();
        assert!(matches!(err, CartError::LineLimit(2)));
        assert_eq!(c, before);
    }

    #[test]
    fn clear_keeps_coupons_only_when_asked_and_zeroes_totals() {
        let mut c = cart(vec![item("A", 2, 100)]);
        let coupon = Mutation::ApplyCoupon {
            code: CouponCode::parse("TEN").unwrap(),
            amount: 10,
        };
        c.apply(&coupon, 0, 1_500, &Limits::default()).unwrap();
        let clear = Mutation::Clear {
            preserve_coupons: true,
            reason: "r".into(),
            only_generated_id: false,
        };
        let out = c.apply(&clear, 0, 2_000, &Limits::default()).unwrap();
        assert_eq!(out.items_cleared, 2);
        assert_eq!(c.coupons.len(), 1);
        assert_eq!(c.totals().total, 0);
        assert_eq!(c.totals().discount_amount, 0);
        assert_eq!(c.cleared_at, Some(2_000));
    }

    #[test]
    fn delete_is_idempotent_for_the_same_order_only() {
        let mut c = cart(vec![]);
        let delete = |n: &str| Mutation::Delete {
            order_number: OrderNumber::parse(n).unwrap(),
        };
        c.apply(&delete("O-1"), 0, 2_000, &Limits::default())
            .unwrap();
        let snapshot = c.clone();
        c.apply(&delete("O-1"), 1, 3_000, &Limits::default())
            .unwrap();
        assert_eq!(c, snapshot);
        assert!(matches!(
            c.apply(&delete("O-2"), 0, 3_000, &Limits::default()),
            Err(CartError::OrderNumberMismatch)
        ));
        assert!(matches!(
            c.apply(
                &Mutation::AddItems(vec![item("A", 1, 1)]),
                0,
                3_000,
                &Limits::default()
            ),
            Err(CartError::CartDeleted)
        ));
    }

    fn fat_item(sku: &str, bytes: usize) -> NewLine {
        let mut item = item(sku, 1, 1);
        item.attributes.insert("note".into(), "x".repeat(bytes));
        item
    }

    #[test]
    fn line_bytes_are_the_stored_id_and_description() {
        let new = item("A", 1, 100);
        let c = cart(vec![new.clone()]);
        let json = LineDescription::of(&new, 1_000).to_json();
        assert_eq!(LineDescription::of(&new, 1_000).json_len(), json.len());
        assert_eq!(c.line_bytes(), new.line_id.as_str().len() + json.len());
    }

    #[test]
    fn a_cart_past_its_byte_bound_is_refused_and_unchanged() {
        let limits = Limits {
            max_cart_bytes: 4_000,
            ..Limits::default()
        };
        let mut c = CartState::create(
            NewCart {
                header: header(),
                items: vec![fat_item("A", 1_500)],
                id_generated: true,
            },
            1_000,
            &limits,
        )
        .unwrap();
        let before = c.clone();
        let add = |items| Mutation::AddItems(items);
        let err = c
            .apply(
                &add(vec![fat_item("B", 1_500), fat_item("C", 1_500)]),
                0,
                2_000,
                &limits,
            )
            .unwrap_err();
        assert!(matches!(err, CartError::CartTooLarge(4_000)));
        assert_eq!(c, before);
        // More of a line already held costs no bytes; removing a line frees its bytes.
        c.apply(&add(vec![fat_item("A", 1_500)]), 0, 2_000, &limits)
            .unwrap();
        c.apply(&add(vec![fat_item("B", 1_500)]), 0, 2_000, &limits)
            .unwrap();
        let line_a = c.lines[0].line_id.clone();
        let remove_a = Mutation::UpdateItems(vec![LineUpdate {
            line_id: line_a,
            quantity: 0,
        }]);
        c.apply(&remove_a, 0, 3_000, &limits).unwrap();
        c.apply(&add(vec![fat_item("C", 1_500)]), 0, 3_000, &limits)
            .unwrap();
        assert_eq!(c.lines.len(), 2);
        let create_too_big = CartState::create(
            NewCart {
                header: header(),
                items: vec![fat_item("A", 5_000)],
                id_generated: true,
            },
            1_000,
            &limits,
        );
        assert!(matches!(create_too_big, Err(CartError::CartTooLarge(_))));
    }

    #[test]
    fn a_clear_for_generated_ids_only_does_not_find_a_chosen_id() {
        let clear = Mutation::Clear {
            preserve_coupons: false,
            reason: String::new(),
            only_generated_id: true,
        };
        let mut chosen = CartState::create(
            NewCart {
                header: header(),
                items: vec![item("A", 1, 1)],
                id_generated: false,
            },
            1_000,
            &Limits::default(),
        )
        .unwrap();
        let before = chosen.clone();
        assert!(matches!(
            chosen.apply(&clear, 0, 2_000, &Limits::default()),
            Err(CartError::CartNotFound)
        ));
        assert_eq!(chosen, before);
        let mut generated = cart(vec![item("A", 1, 1)]);
        generated
            .apply(&clear, 0, 2_000, &Limits::default())
            .unwrap();
        assert!(generated.lines.is_empty());
    }

    #[test]
    fn discount_never_exceeds_subtotal() {
        let mut c = cart(vec![item("A", 1, 50)]);
        let coupon = Mutation::ApplyCoupon {
            code: CouponCode::parse("BIG").unwrap(),
            amount: 80,
        };
        c.apply(&coupon, 0, 2_000, &Limits::default()).unwrap();
        let totals = c.totals();
        assert_eq!((totals.discount_amount, totals.total), (50, 0));
    }

    fn coupon(code: &str, amount: i64) -> (CouponCode, i64) {
        (CouponCode::parse(code).unwrap(), amount)
    }

    fn absorb(mode: MergeMode, items: Vec<NewLine>) -> Mutation {
        Mutation::Absorb {
            mode,
            currency: Currency::parse("USD").unwrap(),
            items,
            coupons: vec![coupon("G", 5), coupon("T", 99)],
        }
    }

    fn quantities(c: &CartState) -> Vec<(String, u32)> {
        c.lines
            .iter()
            .map(|l| (l.sku.to_string(), l.quantity))
            .collect()
    }

    #[test]
    fn absorb_combines_lines_by_mode_and_coupons_by_code() {
        let limits = Limits::default();
        let guest = || vec![item("A", 2, 100), item("B", 1, 100)];
        let target = || {
            let mut c = cart(vec![item("A", 3, 100), item("C", 1, 100)]);
            let t = Mutation::ApplyCoupon {
                code: CouponCode::parse("T").unwrap(),
                amount: 10,
            };
            c.apply(&t, 0, 1_500, &limits).unwrap();
            c
        };
        let cases = [
            (MergeMode::Sum, vec![("A", 5), ("C", 1), ("B", 1)]),
            (MergeMode::Max, vec![("A", 3), ("C", 1), ("B", 1)]),
            (MergeMode::KeepSource, vec![("A", 2), ("B", 1)]),
            (MergeMode::KeepTarget, vec![("A", 3), ("C", 1)]),
        ];
        for (mode, expected) in cases {
            let mut c = target();
            c.apply(&absorb(mode, guest()), 0, 2_000, &limits).unwrap();
            let expected: Vec<_> = expected.iter().map(|(s, q)| (s.to_string(), *q)).collect();
            assert_eq!(quantities(&c), expected, "{mode:?}");
            let codes: Vec<_> = c
                .coupons
                .iter()
                .map(|k| (k.code.to_string(), k.amount))
                .collect();
            assert_eq!(
                codes,
                [("T".to_owned(), 10), ("G".to_owned(), 5)],
                "{mode:?}"
            );
            assert_eq!(c.version, 3, "{mode:?}");
            assert_eq!(
                c.line_bytes(),
                c.lines.iter().map(|l| l.bytes).sum::<usize>()
            );
        }
    }

    #[test]
    fn a_refused_absorb_changes_nothing() {
        let limits = Limits {
            max_coupons: 2,
            ..Limits::default()
        };
        let mut c = cart(vec![item("A", 998, 1)]);
        let before = c.clone();
        let err = c
            .apply(
                &absorb(MergeMode::Sum, vec![item("A", 2, 1)]),
                0,
                2_000,
                &limits,
            )
            .unwrap_err();
        assert!(matches!(err, CartError::QuantityLimit { .. }));
        // Two new coupons fit, a third does not.
        c.apply(
            &Mutation::ApplyCoupon {
                code: CouponCode::parse("X").unwrap(),
                amount: 1,
            },
            0,
            2_000,
            &limits,
        )
        .unwrap();
        let held = c.clone();
        let err = c
            .apply(&absorb(MergeMode::KeepTarget, vec![]), 0, 2_000, &limits)
            .unwrap_err();
        assert!(matches!(err, CartError::CouponLimit(2)));
        assert_eq!(c, held);
        let euros = Mutation::Absorb {
            mode: MergeMode::Sum,
            currency: Currency::parse("EUR").unwrap(),
            items: vec![],
            coupons: vec![],
        };
        assert!(matches!(
            c.apply(&euros, 0, 2_000, &limits),
            Err(CartError::CurrencyMismatch(_))
        ));
        assert_eq!(c, held);
        assert_ne!(before, held);
    }

    #[test]
    fn freeze_holds_the_content_and_repeats_change_nothing() {
        let limits = Limits::default();
        let mut c = cart(vec![item("A", 1, 1)]);
        let freeze = Mutation::Freeze {
            reason: "checkout".into(),
            until: Some(5_000),
        };
        c.apply(&freeze, 0, 2_000, &limits).unwrap();
        let frozen = c.clone();
        assert_eq!(
            (c.status, c.version, c.frozen_at),
            (CartStatus::Frozen, 2, Some(2_000))
        );
        // Again, even at a stale version: as it is.
        c.apply(&freeze, 1, 3_000, &limits).unwrap();
        assert_eq!(c, frozen);
        let add = Mutation::AddItems(vec![item("A", 1, 1)]);
        assert!(matches!(
            c.apply(&add, 0, 3_000, &limits),
            Err(CartError::CartFrozen)
        ));
        assert_eq!(c, frozen);
        // The freeze ends by itself at its `until`.
        c.thaw(4_999);
        assert_eq!(c.status, CartStatus::Frozen);
        c.thaw(5_000);
        assert_eq!((c.status, c.frozen_at), (CartStatus::Active, None));
        let open = c.clone();
        c.apply(&Mutation::Unfreeze, 0, 6_000, &limits).unwrap();
        assert_eq!(c, open, "Unfreeze of an active cart");
        c.apply(&add, 0, 6_000, &limits).unwrap();
    }

    #[test]
    fn the_merge_steps_of_the_source_repeat_safely_and_refuse_other_merges() {
        let limits = Limits::default();
        let mut c = cart(vec![item("A", 1, 1)]);
        let seal = |key: &str| Mutation::Seal {
            target: "t1".into(),
            merge_key: key.into(),
        };
        c.apply(&seal("k1"), 0, 2_000, &limits).unwrap();
        assert_eq!((c.status, c.version), (CartStatus::Merging, 1));
        let sealed = c.clone();
        c.apply(&seal("k1"), 0, 2_500, &limits).unwrap();
        assert_eq!(c, sealed);
        assert!(matches!(
            c.apply(&seal("k2"), 0, 2_500, &limits),
            Err(CartError::CartMerged)
        ));
        let add = Mutation::AddItems(vec![item("B", 1, 1)]);
        assert!(matches!(
            c.apply(&add, 0, 2_500, &limits),
            Err(CartError::CartMerged)
        ));
        // Another merge's unseal does nothing; its own opens the cart again.
        let unseal = |key: &str| Mutation::Unseal {
            merge_key: key.into(),
        };
        c.apply(&unseal("k2"), 0, 2_600, &limits).unwrap();
        assert_eq!(c.status, CartStatus::Merging);
        c.apply(&unseal("k1"), 0, 2_600, &limits).unwrap();
        assert_eq!((c.status, c.merged_into.as_str()), (CartStatus::Active, ""));
        c.apply(&seal("k3"), 0, 2_700, &limits).unwrap();
        let finish = |key: &str| Mutation::FinishMerge {
            merge_key: key.into(),
        };
        assert!(matches!(
            c.apply(&finish("k1"), 0, 2_800, &limits),
            Err(CartError::CartMerged)
        ));
        c.apply(&finish("k3"), 0, 2_800, &limits).unwrap();
        let merged = c.clone();
        assert_eq!((c.status, c.version), (CartStatus::Merged, 2));
        c.apply(&finish("k3"), 0, 2_900, &limits).unwrap();
        assert_eq!(c, merged);
        assert_eq!(
            c.expires_at(&CartPolicy::default()),
            2_800 + CartPolicy::default().tombstone_ttl_ms()
        );
    }
}
