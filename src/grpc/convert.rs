//! `cart.v1` messages ↔ the core: each request into its validated [`crate::core::Command`] (and the
//! idempotency key of its `request_id`), each outcome into its reply. At the edge and nowhere
//! else.
//!
//! Every request is checked whole: its bad fields are reported at once as field violations,
//! at most [`crate::error::MAX_FIELD_VIOLATIONS`] of them (then how many more). Hostile input
//! costs little: a repeated field longer than its limit is refused before any entry is looked
//! at, and duplicates are found with a set or a map.

use std::collections::{BTreeMap, HashMap, HashSet};

use prost_types::Timestamp;

use crate::core::command::{self, MAX_TEXT_BYTES, Violations, bounded_text};
use crate::core::{
    AddItems, ApplyCoupon, CartView, Clear, ClearOutcome, Create, Delete, Freeze, Get,
    GetActiveCart, Merge, MergeOutcome, Remove, RemoveOutcome, Unfreeze, UpdateItems,
};
use crate::domain::{
    CartHeader, CartId, CartStatus, CouponCode, Currency, IdempotencyKey, Limits, LineId,
    LineUpdate, MergeMode, NewCart, NewLine, Sku, UnixMillis,
};
use crate::error::CartError;
use crate::pb;

/// Largest accepted unit price or coupon amount (minor units): keeps every total far from
/// i64 overflow (1e12 × 999 × 250 < 2^63).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;
const MAX_TITLE_BYTES: usize = 1024;
const MAX_MAP_ENTRIES: usize = 64;
const MAX_MAP_KEY_BYTES: usize = 128;
const MAX_METADATA_VALUE_BYTES: usize = 1024;

/// A decoded request: the command and the idempotency key its `request_id` names.
#[derive(Debug)]
pub struct Decoded<C> {
    pub idempotency_key: Option<IdempotencyKey>,
    pub command: C,
}

/// A message's decoding into its command (the one signature the gRPC handler is generic over).
pub type Decode<M, C> = fn(M, &Limits) -> Result<Decoded<C>, CartError>;

fn string_map(
    v: &mut Violations,
    field: &str,
    map: BTreeMap<String, String>,
    max_value_bytes: usize,
) -> BTreeMap<String, String> {
    if map.len() > MAX_MAP_ENTRIES {
        // Past the limit the entries are not worth a look.
        v.refuse(field, format!("at most {MAX_MAP_ENTRIES} entries"));
        return BTreeMap::new();
    }
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let k = v.check(
            || format!("{field}[{key}]"),
            match key.is_empty() {
                true => Err("keys must not be empty".to_owned()),
                false => bounded_text(&key, MAX_MAP_KEY_BYTES),
            },
        );
        let val = v.check(
            || format!("{field}[{key}]"),
            bounded_text(&value, max_value_bytes),
        );
        if let (Some(k), Some(val)) = (k, val) {
            out.insert(k, val);
        }
    }
    out
}

/// The idempotency key of a `request_id` (none when empty).
fn idempotency_key(v: &mut Violations, request_id: &str) -> Option<IdempotencyKey> {
    if request_id.is_empty() {
        return None;
    }
    v.check(
        || "request_id".to_owned(),
        IdempotencyKey::parse(request_id),
    )
}

/// The fields every mutation request has, in the order they are reported.
fn common(
    v: &mut Violations,
    cart_id: &str,
    expected_version: i64,
    request_id: &str,
) -> (Option<CartId>, Option<i64>, Option<IdempotencyKey>) {
    (
        command::cart_id(v, cart_id),
        command::expected_version(v, expected_version),
        idempotency_key(v, request_id),
    )
}

fn decoded<C>(
    v: Violations,
    idempotency_key: Option<IdempotencyKey>,
    command: Option<C>,
) -> Result<Decoded<C>, CartError> {
    v.finish(command).map(|command| Decoded {
        idempotency_key,
        command,
    })
}

/// Decodes items, merging repeated skus so each line appears once.
fn new_items(v: &mut Violations, items: Vec<pb::NewItem>, limits: &Limits) -> Vec<NewLine> {
    if items.len() > limits.max_lines as usize {
        v.refuse(
            "items",
            format!("at most {} items per request", limits.max_lines),
        );
        return Vec::new();
    }
    let mut lines: Vec<NewLine> = Vec::with_capacity(items.len());
    // Where each line id sits in `lines`: repeated skus are found with a map, not a scan.
    let mut index: HashMap<LineId, usize> = HashMap::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let field = |name: &'static str| move || format!("items[{i}].{name}");
        let sku = v.check(field("sku"), Sku::parse(&item.sku, limits.max_sku_bytes));
        let quantity = v.check(
            field("quantity"),
            match u32::try_from(item.quantity) {
                Ok(q) if (1..=limits.max_quantity).contains(&q) => Ok(q),
                _ => Err(format!("must be between 1 and {}", limits.max_quantity)),
            },
        );
        let unit_price = v.check(
            field("unit_price"),
            match item.unit_price {
                p if (0..=MAX_AMOUNT).contains(&p) => Ok(p),
                _ => Err(format!("must be between 0 and {MAX_AMOUNT} minor units")),
            },
        );
        let product_id = v.check(
            field("product_id"),
            bounded_text(&item.product_id, MAX_TEXT_BYTES),
        );
        let title = v.check(field("title"), bounded_text(&item.title, MAX_TITLE_BYTES));
        let currency = match item.currency.as_str() {
            "" => Some(None),
            code => v.check(field("currency"), Currency::parse(code).map(Some)),
        };
        let attributes = string_map(
            v,
            &format!("items[{i}].attributes"),
            item.attributes,
            limits.max_attribute_value_bytes,
        );
        let (
            Some(sku),
            Some(quantity),
            Some(unit_price),
            Some(product_id),
            Some(title),
            Some(currency),
        ) = (sku, quantity, unit_price, product_id, title, currency)
        else {
            continue;
        };
        let line_id = LineId::for_sku(&sku);
        match index.get(&line_id) {
            // The store enforces the quantity limit on the merged line.
            Some(&at) => lines[at].quantity = lines[at].quantity.saturating_add(quantity),
            None => {
                index.insert(line_id.clone(), lines.len());
                lines.push(NewLine {
                    line_id,
                    sku,
                    product_id,
                    title,
                    quantity,
                    unit_price,
                    attributes,
                    currency,
                });
            }
        }
    }
    lines
}

/// `Create`; without `cart_id` the core makes the id.
pub fn create(req: pb::CreateRequest, limits: &Limits) -> Result<Decoded<Create>, CartError> {
    let mut v = Violations::default();
    let key = idempotency_key(&mut v, &req.request_id);
    let cart_id = match req.cart_id.as_str() {
        "" => Some(None),
        id => command::cart_id(&mut v, id).map(Some),
    };
    let currency = v.check(|| "currency".to_owned(), Currency::parse(&req.currency));
    let mut text = |name: &'static str, value: &str| {
        v.check(|| name.to_owned(), bounded_text(value, MAX_TEXT_BYTES))
    };
    let customer_id = text("customer_id", &req.customer_id);
    let session_id = text("session_id", &req.session_id);
    let channel = text("channel", &req.channel);
    let locale = text("locale", &req.locale);
    let metadata = string_map(&mut v, "metadata", req.metadata, MAX_METADATA_VALUE_BYTES);
    let items = new_items(&mut v, req.items, limits);
    let command = (|| {
        let currency = currency?;
        if let Some(item) = items
            .iter()
            .find(|i| i.currency.as_ref().is_some_and(|c| c != &currency))
        {
            let mismatch = item.currency.clone()?;
            v.refuse(
                "items",
                format!("currency {mismatch} differs from the cart's"),
            );
        }
        Some(Create {
            cart_id: cart_id?,
            cart: NewCart {
                header: CartHeader {
                    customer_id: customer_id?,
                    session_id: session_id?,
                    channel: channel?,
                    currency,
                    locale: locale?,
                    metadata,
                },
                items,
                // The core decides the id, and so whether it generated it.
                id_generated: false,
            },
        })
    })();
    decoded(v, key, command)
}

pub fn get(req: pb::GetRequest, _: &Limits) -> Result<Decoded<Get>, CartError> {
    let mut v = Violations::default();
    let cart_id = command::owned_cart_id(&mut v, req.cart_id);
    decoded(v, None, cart_id.map(|cart_id| Get { cart_id }))
}

pub fn add_items(
    req: pb::AddItemsRequest,
    limits: &Limits,
) -> Result<Decoded<AddItems>, CartError> {
    let mut v = Violations::default();
    let (cart_id, expected_version, key) =
        common(&mut v, &req.cart_id, req.expected_version, &req.request_id);
    if req.items.is_empty() {
        v.refuse("items", "at least one item is required");
    }
    let items = new_items(&mut v, req.items, limits);
    let command = (|| {
        Some(AddItems {
            cart_id: cart_id?,
            expected_version: expected_version?,
            items,
        })
    })();
    decoded(v, key, command)
}

pub fn update_items(
    req: pb::UpdateItemsRequest,
    limits: &Limits,
) -> Result<Decoded<UpdateItems>, CartError> {
    let mut v = Violations::default();
    let (cart_id, expected_version, key) =
        common(&mut v, &req.cart_id, req.expected_version, &req.request_id);
    if req.updates.is_empty() {
        v.refuse("updates", "at least one update is required");
    }
    if req.updates.len() > limits.max_lines as usize {
        // A cart has no more lines than this, so neither has a valid request: refused before
        // any entry is looked at.
        v.refuse("updates", format!("at most {} updates", limits.max_lines));
        return decoded(v, key, None);
    }
    let mut updates: Vec<LineUpdate> = Vec::with_capacity(req.updates.len());
    let mut seen = HashSet::with_capacity(req.updates.len());
    for (i, update) in req.updates.iter().enumerate() {
        let line_id = v.check(
            || format!("updates[{i}].line_id"),
            LineId::parse(&update.line_id),
        );
        let quantity = v.check(
            || format!("updates[{i}].quantity"),
            match u32::try_from(update.quantity) {
                Ok(q) if q <= limits.max_quantity => Ok(q),
                _ => Err(format!("must be between 0 and {}", limits.max_quantity)),
            },
        );
        if let (Some(line_id), Some(quantity)) = (line_id, quantity) {
            if !seen.insert(line_id.clone()) {
                v.push(|| format!("updates[{i}].line_id"), "line appears twice");
            }
            updates.push(LineUpdate { line_id, quantity });
        }
    }
    let command = (|| {
        Some(UpdateItems {
            cart_id: cart_id?,
            expected_version: expected_version?,
            updates,
        })
    })();
    decoded(v, key, command)
}

pub fn apply_coupon(
    req: pb::ApplyCouponRequest,
    _: &Limits,
) -> Result<Decoded<ApplyCoupon>, CartError> {
    let mut v = Violations::default();
    let (cart_id, expected_version, key) =
        common(&mut v, &req.cart_id, req.expected_version, &req.request_id);
    let code = v.check(|| "code".to_owned(), CouponCode::parse(&req.code));
    let amount = v.check(
        || "amount".to_owned(),
        match req.amount {
            a if (1..=MAX_AMOUNT).contains(&a) => Ok(a),
            _ => Err(format!("must be between 1 and {MAX_AMOUNT} minor units")),
        },
    );
    let command = (|| {
        Some(ApplyCoupon {
            cart_id: cart_id?,
            expected_version: expected_version?,
            code: code?,
            amount: amount?,
        })
    })();
    decoded(v, key, command)
}

pub fn clear(req: pb::ClearRequest, _: &Limits) -> Result<Decoded<Clear>, CartError> {
    let mut v = Violations::default();
    let key = idempotency_key(&mut v, &req.request_id);
    let command = Clear::check(
        &mut v,
        req.cart_id,
        req.expected_version,
        req.preserve_coupons,
        req.reason,
    );
    decoded(v, key, command)
}

pub fn remove(req: pb::RemoveRequest, _: &Limits) -> Result<Decoded<Remove>, CartError> {
    let mut v = Violations::default();
    let key = idempotency_key(&mut v, &req.request_id);
    let command = Remove::check(&mut v, &req.cart_id, req.expected_version);
    decoded(v, key, command)
}

pub fn delete(req: pb::DeleteRequest, _: &Limits) -> Result<Decoded<Delete>, CartError> {
    let mut v = Violations::default();
    let key = idempotency_key(&mut v, &req.request_id);
    let command = Delete::check(
        &mut v,
        &req.cart_id,
        req.expected_version,
        &req.order_number,
    );
    decoded(v, key, command)
}

pub fn freeze(req: pb::FreezeRequest, _: &Limits) -> Result<Decoded<Freeze>, CartError> {
    let mut v = Violations::default();
    let key = idempotency_key(&mut v, &req.request_id);
    let command = Freeze::check(&mut v, &req.cart_id, req.expected_version, &req.reason);
    decoded(v, key, command)
}

pub fn unfreeze(req: pb::UnfreezeRequest, _: &Limits) -> Result<Decoded<Unfreeze>, CartError> {
    let mut v = Violations::default();
    let key = idempotency_key(&mut v, &req.request_id);
    let command = Unfreeze::check(&mut v, &req.cart_id, req.expected_version);
    decoded(v, key, command)
}

pub fn get_active_cart(
    req: pb::GetActiveCartRequest,
    _: &Limits,
) -> Result<Decoded<GetActiveCart>, CartError> {
    let mut v = Violations::default();
    let customer_id = command::customer_id(&mut v, &req.customer_id);
    decoded(
        v,
        None,
        customer_id.map(|customer_id| GetActiveCart { customer_id }),
    )
}

/// `Merge`; its `request_id` is required (the merge's steps are resumed under it).
pub fn merge(req: pb::MergeRequest, _: &Limits) -> Result<Decoded<Merge>, CartError> {
    let mut v = Violations::default();
    let source_cart_id = v.check(
        || "source_cart_id".to_owned(),
        CartId::parse(&req.source_cart_id),
    );
    let customer_id = command::customer_id(&mut v, &req.customer_id);
    let mode = v.check(
        || "mode".to_owned(),
        match pb::MergeMode::try_from(req.mode) {
            Ok(pb::MergeMode::Unspecified | pb::MergeMode::Sum) => Ok(MergeMode::Sum),
            Ok(pb::MergeMode::Max) => Ok(MergeMode::Max),
            Ok(pb::MergeMode::KeepSource) => Ok(MergeMode::KeepSource),
            Ok(pb::MergeMode::KeepTarget) => Ok(MergeMode::KeepTarget),
            Err(_) => Err(format!("unknown mode {}", req.mode)),
        },
    );
    let key = match req.request_id.as_str() {
        "" => {
            v.refuse(
                "request_id",
                "required: a Merge is retried under its request_id",
            );
            None
        }
        id => v.check(|| "request_id".to_owned(), IdempotencyKey::parse(id)),
    };
    let command = (|| {
        Some(Merge {
            source_cart_id: source_cart_id?,
            customer_id: customer_id?,
            mode: mode?,
        })
    })();
    decoded(v, key, command)
}

pub fn timestamp(millis: UnixMillis) -> Timestamp {
    Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// The `cart.v1.Cart` of a view.
pub fn cart(view: &CartView) -> pb::Cart {
    into_cart(view.clone())
}

/// The `cart.v1.Cart` of a view it consumes: its texts and maps move into the message, none
/// is copied.
pub fn into_cart(view: CartView) -> pb::Cart {
    let CartView {
        key,
        state,
        totals,
        expires_at,
        hmac,
    } = view;
    let header = state.header;
    pb::Cart {
        id: key.cart_id.into_string(),
        customer_id: header.customer_id,
        session_id: header.session_id,
        channel: header.channel,
        currency: header.currency.into_string(),
        locale: header.locale,
        status: match state.status {
            CartStatus::Active => pb::CartStatus::Active,
            CartStatus::Frozen => pb::CartStatus::Frozen,
            CartStatus::Deleted => pb::CartStatus::Deleted,
            CartStatus::Merging | CartStatus::Merged => pb::CartStatus::Merged,
        } as i32,
        items: state
            .lines
            .into_iter()
            .map(|line| pb::LineItem {
                total_price: line.total_price(),
                line_id: line.line_id.into_string(),
                sku: line.sku.into_string(),
                product_id: line.product_id,
                title: line.title,
                quantity: i64::from(line.quantity),
                unit_price: line.unit_price,
                attributes: line.attributes,
                added_at: Some(timestamp(line.added_at)),
                updated_at: Some(timestamp(line.updated_at)),
            })
            .collect(),
        item_count: totals.item_count,
        unique_item_count: totals.unique_item_count,
        subtotal: totals.subtotal,
        discount_amount: totals.discount_amount,
        total: totals.total,
        applied_coupons: state
            .coupons
            .into_iter()
            .map(|c| pb::Coupon {
                code: c.code.into_string(),
                amount: c.amount,
            })
            .collect(),
        metadata: header.metadata,
        created_at: Some(timestamp(state.created_at)),
        updated_at: Some(timestamp(state.updated_at)),
        last_activity_at: Some(timestamp(state.last_activity_at)),
        expires_at: Some(timestamp(expires_at)),
        cleared_at: state.cleared_at.map(timestamp),
        deleted_at: state.deleted_at.map(timestamp),
        clear_reason: state.clear_reason,
        order_number: state.order_number,
        version: state.version,
        hmac,
        frozen_at: state.frozen_at.map(timestamp),
        freeze_reason: state.freeze_reason,
        merged_into: state.merged_into,
    }
}

pub fn cleared(outcome: ClearOutcome) -> pb::ClearResponse {
    pb::ClearResponse {
        cart: Some(Box::new(into_cart(outcome.cart))),
        items_cleared: outcome.items_cleared,
    }
}

pub fn removed(outcome: RemoveOutcome) -> pb::RemoveResponse {
    pb::RemoveResponse {
        cart_id: outcome.cart_id,
        items_removed: outcome.items_removed,
    }
}

pub fn deleted(view: CartView) -> pb::DeleteResponse {
    pb::DeleteResponse {
        cart: Some(Box::new(into_cart(view))),
    }
}

pub fn merged(outcome: MergeOutcome) -> pb::MergeResponse {
    pb::MergeResponse {
        cart: Some(Box::new(into_cart(outcome.cart))),
        source_cart_id: outcome.source_cart_id,
        lines_merged: outcome.lines_merged,
    }
}

/// The reply of the operations that answer the cart.
pub fn cart_reply(view: CartView) -> pb::Cart {
    into_cart(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{FieldViolation, MAX_FIELD_VIOLATIONS};

    fn item(sku: &str, quantity: i64) -> pb::NewItem {
        pb::NewItem {
            sku: sku.into(),
            quantity,
            unit_price: 100,
            ..Default::default()
        }
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let req = pb::CreateRequest {
            cart_id: "bad id".into(),
            currency: "usd".into(),
            items: vec![item("", 0), item(&"x".repeat(65), 1000)],
            request_id: "not a token".into(),
            ..Default::default()
        };
        let Err(CartError::InvalidArgument(violations)) = create(req, &Limits::default()) else {
            panic!("expected InvalidArgument");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "request_id",
                "cart_id",
                "currency",
                "items[0].sku",
                "items[0].quantity",
                "items[1].sku",
                "items[1].quantity"
            ]
        );
    }

    #[test]
    fn repeated_skus_are_merged_into_one_line() {
        let req = pb::AddItemsRequest {
            cart_id: "c1".into(),
            items: vec![item("A", 2), item("B", 1), item("A", 3)],
            expected_version: 0,
            request_id: String::new(),
        };
        let decoded = add_items(req, &Limits::default()).unwrap();
        let quantities: Vec<_> = decoded
            .command
            .items
            .iter()
            .map(|l| (l.sku.to_string(), l.quantity))
            .collect();
        assert_eq!(quantities, [("A".to_owned(), 5), ("B".to_owned(), 1)]);
    }

    #[test]
    fn create_without_id_leaves_it_to_the_core() {
        let req = pb::CreateRequest {
            currency: "EUR".into(),
            ..Default::default()
        };
        let decoded = create(req, &Limits::default()).unwrap();
        assert!(decoded.command.cart_id.is_none());
        assert!(decoded.idempotency_key.is_none());
    }

    #[test]
    fn request_ids_become_idempotency_keys() {
        let clear = |request_id: &str| pb::ClearRequest {
            cart_id: "c1".into(),
            reason: "x".into(),
            request_id: request_id.into(),
            ..Default::default()
        };
        let decoded = super::clear(clear("r-1"), &Limits::default()).unwrap();
        assert_eq!(decoded.idempotency_key.unwrap().as_str(), "r-1");
        assert!(
            super::clear(clear(""), &Limits::default())
                .unwrap()
                .idempotency_key
                .is_none()
        );
        let Err(CartError::InvalidArgument(violations)) =
            super::clear(clear(&"r".repeat(65)), &Limits::default())
        else {
            panic!("a 65-character request id was accepted");
        };
        assert_eq!(violations[0].field, "request_id");
    }

    fn updates(line_ids: impl Iterator<Item = String>) -> pb::UpdateItemsRequest {
        pb::UpdateItemsRequest {
            cart_id: "c1".into(),
            updates: line_ids
                .map(|line_id| pb::ItemUpdate {
                    line_id,
                    quantity: 1,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn violations(result: Result<impl Sized, CartError>) -> Vec<FieldViolation> {
        match result {
            Err(CartError::InvalidArgument(violations)) => violations,
            Err(other) => panic!("expected InvalidArgument, got {other}"),
            Ok(_) => panic!("expected InvalidArgument, got a command"),
        }
    }

    #[test]
    fn more_updates_than_a_cart_has_lines_are_refused_before_any_is_read() {
        let distinct = (0..30_000).map(|i| format!("li_{i:024x}"));
        let found = violations(update_items(updates(distinct), &Limits::default()));
        assert_eq!(
            found,
            [FieldViolation::new("updates", "at most 250 updates")]
        );
        let malformed = (0..30_000).map(|i| format!("bad id {i}"));
        let found = violations(update_items(updates(malformed), &Limits::default()));
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn violations_are_listed_up_to_the_bound_then_counted() {
        let found = violations(update_items(
            updates((0..250).map(|i| format!("bad id {i}"))),
            &Limits::default(),
        ));
        assert_eq!(found.len(), MAX_FIELD_VIOLATIONS + 1);
        assert_eq!(found[0].field, "updates[0].line_id");
        assert_eq!(found[MAX_FIELD_VIOLATIONS - 1].field, "updates[19].line_id");
        assert_eq!(
            found[MAX_FIELD_VIOLATIONS],
            FieldViolation::omitted(250 - MAX_FIELD_VIOLATIONS)
        );
    }

    #[test]
    fn duplicate_line_ids_are_found_wherever_they_are() {
        let mut ids: Vec<String> = (0..250).map(|i| format!("li_{i:024x}")).collect();
        ids[249] = ids[3].clone();
        let found = violations(update_items(updates(ids.into_iter()), &Limits::default()));
        assert_eq!(
            found,
            [FieldViolation::new(
                "updates[249].line_id",
                "line appears twice"
            )]
        );
    }

    #[test]
    fn oversized_maps_are_refused_without_reading_their_entries() {
        let metadata = (0..5_000)
            .map(|i| (format!("{i}\n{}", "k".repeat(1000)), String::new()))
            .collect();
        let req = pb::CreateRequest {
            currency: "USD".into(),
            metadata,
            ..Default::default()
        };
        let found = violations(create(req, &Limits::default()));
        assert_eq!(
            found,
            [FieldViolation::new("metadata", "at most 64 entries")]
        );
    }

    #[test]
    fn a_huge_map_key_does_not_make_a_huge_field_name() {
        let mut item = item("A", 1);
        item.attributes.insert("k".repeat(100_000), "v".into());
        let req = pb::AddItemsRequest {
            cart_id: "c1".into(),
            items: vec![item],
            ..Default::default()
        };
        let found = violations(add_items(req, &Limits::default()));
        assert_eq!(found.len(), 1);
        assert!(found[0].field.starts_with("items[0].attributes[kkk"));
        assert!(found[0].field.len() <= crate::error::MAX_VIOLATION_FIELD_BYTES);
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        assert_eq!(
            timestamp(1_500),
            Timestamp {
                seconds: 1,
                nanos: 500_000_000
            }
        );
    }
}
