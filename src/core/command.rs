//! The commands of the core: one validated value per operation, built by an adapter (gRPC's
//! `convert`, a shim's decoder) and executed by [`super::Core`].
//!
//! A command names its cart by id only; the caller's tenant completes the key. The checks an
//! adapter shares with the others (cart id, expected version, the texts of Clear and Delete)
//! live here, so a field is refused with the same words on every interface, and every bad field
//! of a request is reported at once as field violations (see [`Violations`]).

use std::future::Future;

use super::{Caller, ClearOutcome, Core, MergeOutcome, RemoveOutcome, view::CartView};
use crate::auth::Scope;
use sha2::{Digest, Sha256};

use crate::domain::{
    CartId, CouponCode, IdempotencyKey, IdempotencyTag, LineUpdate, MergeMode, Mutation, NewCart,
    NewLine, OrderNumber,
};
use crate::error::{CartError, FieldViolation, MAX_FIELD_VIOLATIONS, bounded_violations};

/// Largest accepted length of a short free text (reason, ids of the customer, ...).
pub const MAX_TEXT_BYTES: usize = 256;

/// The operations of the core: the `method` label of metrics and the name of the operation's
/// span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Get,
    AddItems,
    UpdateItems,
    ApplyCoupon,
    Clear,
    Remove,
    Delete,
    Freeze,
    Unfreeze,
    GetActiveCart,
    Merge,
}

impl Operation {
    /// Every operation, in the order of the enum.
    pub const ALL: [Operation; 12] = [
        Self::Create,
        Self::Get,
        Self::AddItems,
        Self::UpdateItems,
        Self::ApplyCoupon,
        Self::Clear,
        Self::Remove,
        Self::Delete,
        Self::Freeze,
        Self::Unfreeze,
        Self::GetActiveCart,
        Self::Merge,
    ];

    /// The operation whose [`Operation::name`] is `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The RPC name (`cart.v1.CartService/<name>`), also part of every fingerprint so that one
    /// idempotency key cannot replay another operation's outcome.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "Create",
            Self::Get => "Get",
            Self::AddItems => "AddItems",
            Self::UpdateItems => "UpdateItems",
            Self::ApplyCoupon => "ApplyCoupon",
            Self::Clear => "Clear",
            Self::Remove => "Remove",
            Self::Delete => "Delete",
            Self::Freeze => "Freeze",
            Self::Unfreeze => "Unfreeze",
            Self::GetActiveCart => "GetActiveCart",
            Self::Merge => "Merge",
        }
    }

    /// What a caller must be allowed to do to run it.
    pub fn scope(self) -> Scope {
        match self {
            Self::Get | Self::GetActiveCart => Scope::Read,
            _ => Scope::Write,
        }
    }
}

/// A validated request of one operation.
pub trait Command: Send + Sized + 'static {
    const OPERATION: Operation;
    /// What the operation answers.
    type Outcome: Send;

    /// Everything the command asks for, for the fingerprint of its idempotency key: equal
    /// bytes mean "the same request".
    fn fingerprint(&self, out: &mut Fingerprint);

    /// Runs the command in `core` (dispatches to the core's method of the operation).
    fn execute(
        self,
        core: &Core,
        caller: &Caller,
    ) -> impl Future<Output = Result<Self::Outcome, CartError>> + Send;
}

/// The canonical bytes of a command: each field length-prefixed, so no two commands share
/// them. They are hashed as they are made (the digest of [`IdempotencyTag::digest_of`]), never
/// buffered.
#[derive(Debug, Clone)]
pub struct Fingerprint(Sha256);

impl Fingerprint {
    /// The fingerprint of a command of `operation` (its name is part of it).
    pub fn of(operation: Operation) -> Self {
        Self(IdempotencyTag::digest_of(operation.name()))
    }

    pub fn text(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }

    pub fn number(&mut self, value: i64) -> &mut Self {
        self.0.update(value.to_le_bytes());
        self
    }

    pub fn map(&mut self, map: &std::collections::BTreeMap<String, String>) -> &mut Self {
        self.number(map.len() as i64);
        for (key, value) in map {
            self.text(key).text(value);
        }
        self
    }

    /// The tag of the command under `key`.
    pub fn tag(self, key: IdempotencyKey) -> IdempotencyTag {
        IdempotencyTag::from_digest(key, self.0)
    }
}

/// Collects field violations while a request is decoded: the first [`MAX_FIELD_VIOLATIONS`]
/// in full, the rest only counted (their field names are never built), so a hostile request
/// costs little and its refusal stays small.
#[derive(Debug, Default)]
pub struct Violations {
    listed: Vec<FieldViolation>,
    total: usize,
}

impl Violations {
    /// Records `result`'s error against `field`; the value when it is valid.
    pub fn check<T>(
        &mut self,
        field: impl FnOnce() -> String,
        result: Result<T, String>,
    ) -> Option<T> {
        result
            .map_err(|description| self.push(field, description))
            .ok()
    }

    /// Records a violation of `field` (named only if it is listed).
    pub fn push(&mut self, field: impl FnOnce() -> String, description: impl Into<String>) {
        self.total += 1;
        if self.listed.len() < MAX_FIELD_VIOLATIONS {
            self.listed.push(FieldViolation::new(field(), description));
        }
    }

    /// Records a violation of a field with a fixed name.
    pub fn refuse(&mut self, field: &str, description: impl Into<String>) {
        self.push(|| field.to_owned(), description);
    }

    /// The value, if it was built and nothing was violated.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, CartError> {
        match value {
            Some(value) if self.total == 0 => Ok(value),
            _ => Err(CartError::InvalidArgument(bounded_violations(
                self.listed,
                self.total,
            ))),
        }
    }
}

/// Free text of at most `max_bytes`, without control characters (tabs aside).
pub fn bounded_text(value: &str, max_bytes: usize) -> Result<String, String> {
    check_text(value, max_bytes).map(|()| value.to_owned())
}

/// [`bounded_text`] of a string the caller owns: kept as it is, not copied.
pub fn bounded_owned_text(value: String, max_bytes: usize) -> Result<String, String> {
    check_text(&value, max_bytes).map(|()| value)
}

fn check_text(value: &str, max_bytes: usize) -> Result<(), String> {
    if value.len() > max_bytes {
        Err(format!("must be at most {max_bytes} bytes"))
    } else if has_control(value) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(())
    }
}

/// Whether `value` holds a control character other than tab: byte by byte when it is ASCII
/// (most text is), by char otherwise (the C1 controls are two bytes in UTF-8).
fn has_control(value: &str) -> bool {
    if value.is_ascii() {
        value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
    } else {
        value.chars().any(|c| c.is_control() && c != '\t')
    }
}

pub fn cart_id(v: &mut Violations, value: &str) -> Option<CartId> {
    v.check(|| "cart_id".to_owned(), CartId::parse(value))
}

/// [`cart_id`] of a decoded message's string (see [`CartId::parse_owned`]).
pub fn owned_cart_id(v: &mut Violations, value: String) -> Option<CartId> {
    v.check(|| "cart_id".to_owned(), CartId::parse_owned(value))
}

pub fn expected_version(v: &mut Violations, value: i64) -> Option<i64> {
    v.check(
        || "expected_version".to_owned(),
        if value >= 0 {
            Ok(value)
        } else {
            Err("must be 0 (don't check) or a version".to_owned())
        },
    )
}

/// Create: a new cart, under a client-chosen id or one the core makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    /// `None`: the core generates one (derived from the idempotency key when there is one, so
    /// that a retried Create lands on the same cart).
    pub cart_id: Option<CartId>,
    pub cart: NewCart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Get {
    pub cart_id: CartId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddItems {
    pub cart_id: CartId,
    pub expected_version: i64,
    /// Merged by sku: each line appears once.
    pub items: Vec<NewLine>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateItems {
    pub cart_id: CartId,
    pub expected_version: i64,
    pub updates: Vec<LineUpdate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyCoupon {
    pub cart_id: CartId,
    pub expected_version: i64,
    pub code: CouponCode,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clear {
    pub cart_id: CartId,
    pub expected_version: i64,
    pub preserve_coupons: bool,
    pub reason: String,
    /// The caller's only credential for the cart is its id (VTEX's public route): act only on
    /// a cart whose id the service generated, else answer CART_NOT_FOUND (see
    /// [`crate::domain::NewCart::id_generated`]).
    pub only_generated_id: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remove {
    pub cart_id: CartId,
    pub expected_version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub cart_id: CartId,
    pub expected_version: i64,
    pub order_number: OrderNumber,
}

/// Freeze: hold the cart still for checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    pub cart_id: CartId,
    pub expected_version: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfreeze {
    pub cart_id: CartId,
    pub expected_version: i64,
}

/// The customer's most recently active live cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetActiveCart {
    pub customer_id: String,
}

/// Merge a guest cart into the customer's active cart (see `Core::merge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub source_cart_id: CartId,
    pub customer_id: String,
    pub mode: MergeMode,
}

/// A customer id: 1 to [`MAX_TEXT_BYTES`] of text.
pub fn customer_id(v: &mut Violations, value: &str) -> Option<String> {
    v.check(
        || "customer_id".to_owned(),
        match value {
            "" => Err("required".to_owned()),
            value => bounded_text(value, MAX_TEXT_BYTES),
        },
    )
}

impl Freeze {
    pub fn check(
        v: &mut Violations,
        cart_id_value: &str,
        expected_version_value: i64,
        reason: &str,
    ) -> Option<Self> {
        let cart_id = cart_id(v, cart_id_value);
        let expected_version = expected_version(v, expected_version_value);
        let reason = v.check(|| "reason".to_owned(), bounded_text(reason, MAX_TEXT_BYTES));
        Some(Self {
            cart_id: cart_id?,
            expected_version: expected_version?,
            reason: reason?,
        })
    }
}

impl Unfreeze {
    pub fn check(
        v: &mut Violations,
        cart_id_value: &str,
        expected_version_value: i64,
    ) -> Option<Self> {
        let cart_id = cart_id(v, cart_id_value);
        let expected_version = expected_version(v, expected_version_value);
        Some(Self {
            cart_id: cart_id?,
            expected_version: expected_version?,
        })
    }
}

impl Clear {
    /// Checks the fields of a Clear into `v`: a decoded message's strings, kept uncopied.
    pub fn check(
        v: &mut Violations,
        cart_id_value: String,
        expected_version_value: i64,
        preserve_coupons: bool,
        reason: String,
    ) -> Option<Self> {
        let cart_id = owned_cart_id(v, cart_id_value);
        let expected_version = expected_version(v, expected_version_value);
        let reason = v.check(
            || "reason".to_owned(),
            bounded_owned_text(reason, MAX_TEXT_BYTES),
        );
        Some(Self {
            cart_id: cart_id?,
            expected_version: expected_version?,
            preserve_coupons,
            reason: reason?,
            only_generated_id: false,
        })
    }

    /// A Clear of any version (the shims send none).
    pub fn parse(cart_id: &str, preserve_coupons: bool, reason: &str) -> Result<Self, CartError> {
        let mut v = Violations::default();
        let command = Self::check(
            &mut v,
            cart_id.to_owned(),
            0,
            preserve_coupons,
            reason.to_owned(),
        );
        v.finish(command)
    }
}

impl Remove {
    pub fn check(
        v: &mut Violations,
        cart_id_value: &str,
        expected_version_value: i64,
    ) -> Option<Self> {
        let cart_id = cart_id(v, cart_id_value);
        let expected_version = expected_version(v, expected_version_value);
        Some(Self {
            cart_id: cart_id?,
            expected_version: expected_version?,
        })
    }

    pub fn parse(cart_id: &str) -> Result<Self, CartError> {
        let mut v = Violations::default();
        let command = Self::check(&mut v, cart_id, 0);
        v.finish(command)
    }
}

impl Delete {
    pub fn check(
        v: &mut Violations,
        cart_id_value: &str,
        expected_version_value: i64,
        order_number: &str,
    ) -> Option<Self> {
        let cart_id = cart_id(v, cart_id_value);
        let expected_version = expected_version(v, expected_version_value);
        let order_number = v.check(
            || "order_number".to_owned(),
            OrderNumber::parse(order_number),
        );
        Some(Self {
            cart_id: cart_id?,
            expected_version: expected_version?,
            order_number: order_number?,
        })
    }

    pub fn parse(cart_id: &str, order_number: &str) -> Result<Self, CartError> {
        let mut v = Violations::default();
        let command = Self::check(&mut v, cart_id, 0, order_number);
        v.finish(command)
    }
}

fn lines(out: &mut Fingerprint, items: &[NewLine]) {
    out.number(items.len() as i64);
    for item in items {
        out.text(item.sku.as_str())
            .text(&item.product_id)
            .text(&item.title)
            .number(i64::from(item.quantity))
            .number(item.unit_price)
            .text(item.currency.as_ref().map_or("", |c| c.as_str()))
            .map(&item.attributes);
    }
}

/// Implements [`Command`] for each command: its operation (of the same name), its outcome, the
/// core method that runs it, and its fingerprint.
macro_rules! commands {
    ($($command:ident => $outcome:ty, $method:ident, |$c:ident, $out:ident| $fingerprint:block)*) => {
        $(
            impl Command for $command {
                const OPERATION: Operation = Operation::$command;
                type Outcome = $outcome;

                fn fingerprint(&self, $out: &mut Fingerprint) {
                    let $c = self;
                    $fingerprint
                }

                fn execute(
                    self,
                    core: &Core,
                    caller: &Caller,
                ) -> impl Future<Output = Result<$outcome, CartError>> + Send {
                    core.$method(caller, self)
                }
            }
        )*
    };
}

commands! {
    Create => CartView, create, |c, out| {
        let header = &c.cart.header;
        out.text(c.cart_id.as_ref().map_or("", |id| id.as_str()))
            .text(&header.customer_id)
            .text(&header.session_id)
            .text(&header.channel)
            .text(header.currency.as_str())
            .text(&header.locale)
            .map(&header.metadata);
        lines(out, &c.cart.items);
    }
    Get => CartView, get, |c, out| {
        out.text(c.cart_id.as_str());
    }
    AddItems => CartView, add_items, |c, out| {
        out.text(c.cart_id.as_str()).number(c.expected_version);
        lines(out, &c.items);
    }
    UpdateItems => CartView, update_items, |c, out| {
        out.text(c.cart_id.as_str())
            .number(c.expected_version)
            .number(c.updates.len() as i64);
        for update in &c.updates {
            out.text(update.line_id.as_str())
                .number(i64::from(update.quantity));
        }
    }
    ApplyCoupon => CartView, apply_coupon, |c, out| {
        out.text(c.cart_id.as_str())
            .number(c.expected_version)
            .text(c.code.as_str())
            .number(c.amount);
    }
    Clear => ClearOutcome, clear, |c, out| {
        out.text(c.cart_id.as_str())
            .number(c.expected_version)
            .number(i64::from(c.preserve_coupons))
            .text(&c.reason)
            .number(i64::from(c.only_generated_id));
    }
    Remove => RemoveOutcome, remove, |c, out| {
        out.text(c.cart_id.as_str()).number(c.expected_version);
    }
    Delete => CartView, delete, |c, out| {
        out.text(c.cart_id.as_str())
            .number(c.expected_version)
            .text(c.order_number.as_str());
    }
    Freeze => CartView, freeze, |c, out| {
        out.text(c.cart_id.as_str())
            .number(c.expected_version)
            .text(&c.reason);
    }
    Unfreeze => CartView, unfreeze, |c, out| {
        out.text(c.cart_id.as_str()).number(c.expected_version);
    }
    GetActiveCart => CartView, get_active_cart, |c, out| {
        out.text(&c.customer_id);
    }
    Merge => MergeOutcome, merge, |c, out| {
        out.text(c.source_cart_id.as_str())
            .text(&c.customer_id)
            .text(c.mode.name());
    }
}

/// A command that is one [`Mutation`] of a live cart.
pub(crate) trait IntoMutation {
    /// The cart, the version it must be at (0: any), and the change.
    fn into_mutation(self) -> (CartId, i64, Mutation);
}

impl IntoMutation for AddItems {
    fn into_mutation(self) -> (CartId, i64, Mutation) {
        let mutation = Mutation::AddItems(self.items);
        (self.cart_id, self.expected_version, mutation)
    }
}

impl IntoMutation for UpdateItems {
    fn into_mutation(self) -> (CartId, i64, Mutation) {
        let mutation = Mutation::UpdateItems(self.updates);
        (self.cart_id, self.expected_version, mutation)
    }
}

impl IntoMutation for ApplyCoupon {
    fn into_mutation(self) -> (CartId, i64, Mutation) {
        let mutation = Mutation::ApplyCoupon {
            code: self.code,
            amount: self.amount,
        };
        (self.cart_id, self.expected_version, mutation)
    }
}

impl IntoMutation for Clear {
    fn into_mutation(self) -> (CartId, i64, Mutation) {
        let mutation = Mutation::Clear {
            preserve_coupons: self.preserve_coupons,
            reason: self.reason,
            only_generated_id: self.only_generated_id,
        };
        (self.cart_id, self.expected_version, mutation)
    }
}

impl IntoMutation for Unfreeze {
    fn into_mutation(self) -> (CartId, i64, Mutation) {
        (self.cart_id, self.expected_version, Mutation::Unfreeze)
    }
}

impl IntoMutation for Delete {
    fn into_mutation(self) -> (CartId, i64, Mutation) {
        let mutation = Mutation::Delete {
            order_number: self.order_number,
        };
        (self.cart_id, self.expected_version, mutation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_checks_name_the_fields_of_the_proto() {
        let Err(CartError::InvalidArgument(violations)) = Clear::parse("bad id", false, "a\u{1}b")
        else {
            panic!("expected InvalidArgument");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["cart_id", "reason"]);
        assert!(Delete::parse("c1", "with space").is_err());
        assert_eq!(Remove::parse("c1").unwrap().expected_version, 0);
    }

    #[test]
    fn fingerprints_tell_fields_apart() {
        let bytes = |c: &Clear| {
            let mut f = Fingerprint::of(Operation::Clear);
            c.fingerprint(&mut f);
            f.tag(IdempotencyKey::parse("k").unwrap()).fingerprint
        };
        let a = Clear::parse("c1", false, "ab").unwrap();
        let mut b = a.clone();
        b.preserve_coupons = true;
        assert_ne!(bytes(&a), bytes(&b));
        // Length prefixes: ("c1", "ab") and ("c1a", "b") differ.
        assert_ne!(bytes(&a), bytes(&Clear::parse("c1a", false, "b").unwrap()));
        assert_eq!(bytes(&a), bytes(&a.clone()));
        // The bytes hashed are those stores already remember fingerprints of: SHA-256 over
        // "Clear", 0, then each field length-prefixed (u64 LE) or as an i64 LE.
        assert_eq!(bytes(&a), "a66358829a1f6397522bdf29c7e50568");
    }
}
