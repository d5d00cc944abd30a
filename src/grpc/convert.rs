//! `cart.v1` messages ↔ validated domain values, at the edge and nowhere else.
//!
//! Every request is checked whole: its bad fields are reported at once as field violations,
//! at most [`MAX_FIELD_VIOLATIONS`] of them (then how many more). Hostile input costs little:
//! a repeated field longer than its limit is refused before any entry is looked at, and
//! duplicates are found with a set.

use std::collections::{BTreeMap, HashMap, HashSet};

use prost::Message;
use prost_types::Timestamp;

use crate::auth::CartTokens;
use crate::domain::{
    CartHeader, CartId, CartKey, CartPolicy, CartState, CartStatus, CouponCode, Currency, Limits,
    LineId, LineUpdate, NewCart, NewLine, OrderNumber, RequestId, RequestTag, Sku, TenantId,
    UnixMillis,
};
use crate::error::{CartError, FieldViolation, MAX_FIELD_VIOLATIONS, bounded_violations};
use crate::pb;

/// Largest accepted unit price or coupon amount (minor units): keeps every total far from
/// i64 overflow (1e12 × 999 × 250 < 2^63).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;
const MAX_TEXT_BYTES: usize = 256;
const MAX_TITLE_BYTES: usize = 1024;
const MAX_MAP_ENTRIES: usize = 64;
const MAX_MAP_KEY_BYTES: usize = 128;
const MAX_METADATA_VALUE_BYTES: usize = 1024;

/// Collects field violations while a request is decoded: the first
/// [`MAX_FIELD_VIOLATIONS`] in full, the rest only counted (their field names are never built).
#[derive(Default)]
struct Violations {
    listed: Vec<FieldViolation>,
    total: usize,
}

impl Violations {
    fn check<T>(&mut self, field: impl FnOnce() -> String, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|description| self.push(field, description))
            .ok()
    }

    fn push(&mut self, field: impl FnOnce() -> String, description: String) {
        self.total += 1;
        if self.listed.len() < MAX_FIELD_VIOLATIONS {
            self.listed.push(FieldViolation::new(field(), description));
        }
    }

    fn refuse(&mut self, field: &str, description: String) {
        self.push(|| field.to_owned(), description);
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, CartError> {
        match value {
            Some(value) if self.total == 0 => Ok(value),
            _ => Err(CartError::InvalidArgument(bounded_violations(
                self.listed,
                self.total,
            ))),
        }
    }
}

fn bounded_text(value: &str, max_bytes: usize) -> Result<String, String> {
    if value.len() > max_bytes {
        Err(format!("must be at most {max_bytes} bytes"))
    } else if value.chars().any(|c| c.is_control() && c != '\t') {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

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

/// A mutation request, which may carry an idempotency key (`request_id`).
pub trait Idempotent: Message + Clone {
    /// Part of the fingerprint, so that one request id cannot replay another RPC's outcome.
    const RPC: &'static str;
    fn request_id(&self) -> &str;
    fn clear_request_id(&mut self);
}

macro_rules! idempotent {
    ($($message:ident => $rpc:literal),* $(,)?) => {
        $(
            impl Idempotent for pb::$message {
                const RPC: &'static str = $rpc;
                fn request_id(&self) -> &str {
                    &self.request_id
                }
                fn clear_request_id(&mut self) {
                    self.request_id.clear();
                }
            }
        )*
    };
}

idempotent!(
    CreateRequest => "Create",
    AddItemsRequest => "AddItems",
    UpdateItemsRequest => "UpdateItems",
    ApplyCouponRequest => "ApplyCoupon",
    ClearRequest => "Clear",
    RemoveRequest => "Remove",
    DeleteRequest => "Delete",
);

/// The request's id (none when empty) and the fingerprint of everything else it asks for: the
/// message encoded without its id (maps are sorted, so equal payloads encode equally).
fn request_tag<M: Idempotent>(v: &mut Violations, req: &M) -> Option<RequestTag> {
    if req.request_id().is_empty() {
        return None;
    }
    let id = v.check(
        || "request_id".to_owned(),
        RequestId::parse(req.request_id()),
    )?;
    let mut payload = req.clone();
    payload.clear_request_id();
    Some(RequestTag::new(id, M::RPC, &payload.encode_to_vec()))
}

fn cart_id(v: &mut Violations, value: &str) -> Option<CartId> {
    v.check(|| "cart_id".to_owned(), CartId::parse(value))
}

fn expected_version(v: &mut Violations, value: i64) -> Option<i64> {
    v.check(
        || "expected_version".to_owned(),
        if value >= 0 {
            Ok(value)
        } else {
            Err("must be 0 (don't check) or a version".to_owned())
        },
    )
}

fn key(tenant: &TenantId, cart_id: CartId) -> CartKey {
    CartKey {
        tenant: tenant.clone(),
        cart_id,
    }
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

pub struct CreateCommand {
    pub key: CartKey,
    pub cart: NewCart,
    pub request: Option<RequestTag>,
}

/// `tokens` derive the id of a cart created without `cart_id` but with a request id.
pub fn create(
    tenant: &TenantId,
    req: pb::CreateRequest,
    limits: &Limits,
    tokens: &CartTokens,
) -> Result<CreateCommand, CartError> {
    let mut v = Violations::default();
    let request = request_tag(&mut v, &req);
    // Both ids the service chooses are capabilities (VTEX takes them as one): 96 random bits,
    // or 96 bits of HMAC-SHA256 under the hmac secret, unguessable without it even when the
    // request id is guessable.
    let id_generated = req.cart_id.is_empty();
    let id = match (req.cart_id.as_str(), &request) {
        ("", Some(tag)) => Some(tokens.derive_cart_id(tenant, &tag.id)),
        ("", None) => Some(CartId::generate()),
        (id, _) => cart_id(&mut v, id),
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
        Some(CreateCommand {
            request,
            key: key(tenant, id?),
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
                id_generated,
            },
        })
    })();
    v.finish(command)
}

pub fn get(tenant: &TenantId, req: &pb::GetRequest) -> Result<CartKey, CartError> {
    let mut v = Violations::default();
    let id = cart_id(&mut v, &req.cart_id);
    v.finish(id.map(|id| key(tenant, id)))
}

/// A decoded mutation request: which cart, what change, at which version, under which
/// request id.
pub struct MutationCommand<M> {
    pub key: CartKey,
    pub change: M,
    pub expected_version: i64,
    pub request: Option<RequestTag>,
}

/// The parts every mutation request has; `expected_version` is checked here.
struct Common {
    id: Option<CartId>,
    expected: Option<i64>,
    request: Option<RequestTag>,
}

fn common<M: Idempotent>(
    v: &mut Violations,
    req: &M,
    cart_id_value: &str,
    expected_value: i64,
) -> Common {
    Common {
        id: cart_id(v, cart_id_value),
        expected: expected_version(v, expected_value),
        request: request_tag(v, req),
    }
}

fn command<M>(
    v: Violations,
    tenant: &TenantId,
    common: Common,
    change: Option<M>,
) -> Result<MutationCommand<M>, CartError> {
    let command = match (common.id, change, common.expected) {
        (Some(id), Some(change), Some(expected_version)) => Some(MutationCommand {
            key: key(tenant, id),
            change,
            expected_version,
            request: common.request,
        }),
        _ => None,
    };
    v.finish(command)
}

pub fn add_items(
    tenant: &TenantId,
    req: pb::AddItemsRequest,
    limits: &Limits,
) -> Result<MutationCommand<Vec<NewLine>>, CartError> {
    let mut v = Violations::default();
    let common = common(&mut v, &req, &req.cart_id, req.expected_version);
    if req.items.is_empty() {
        v.refuse("items", "at least one item is required".to_owned());
    }
    let items = new_items(&mut v, req.items, limits);
    command(v, tenant, common, Some(items))
}

pub fn update_items(
    tenant: &TenantId,
    req: pb::UpdateItemsRequest,
    limits: &Limits,
) -> Result<MutationCommand<Vec<LineUpdate>>, CartError> {
    let mut v = Violations::default();
    let common = common(&mut v, &req, &req.cart_id, req.expected_version);
    if req.updates.is_empty() {
        v.refuse("updates", "at least one update is required".to_owned());
    }
    if req.updates.len() > limits.max_lines as usize {
        // A cart has no more lines than this, so neither has a valid request: refused before
        // any entry is looked at.
        v.refuse("updates", format!("at most {} updates", limits.max_lines));
        return command(v, tenant, common, None);
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
                v.push(
                    || format!("updates[{i}].line_id"),
                    "line appears twice".to_owned(),
                );
            }
            updates.push(LineUpdate { line_id, quantity });
        }
    }
    command(v, tenant, common, Some(updates))
}

pub fn apply_coupon(
    tenant: &TenantId,
    req: &pb::ApplyCouponRequest,
) -> Result<MutationCommand<(CouponCode, i64)>, CartError> {
    let mut v = Violations::default();
    let common = common(&mut v, req, &req.cart_id, req.expected_version);
    let code = v.check(|| "code".to_owned(), CouponCode::parse(&req.code));
    let amount = v.check(
        || "amount".to_owned(),
        match req.amount {
            a if (1..=MAX_AMOUNT).contains(&a) => Ok(a),
            _ => Err(format!("must be between 1 and {MAX_AMOUNT} minor units")),
        },
    );
    let change = code.zip(amount);
    command(v, tenant, common, change)
}

pub fn clear(
    tenant: &TenantId,
    req: &pb::ClearRequest,
) -> Result<MutationCommand<(bool, String)>, CartError> {
    let mut v = Violations::default();
    let common = common(&mut v, req, &req.cart_id, req.expected_version);
    let reason = v.check(
        || "reason".to_owned(),
        bounded_text(&req.reason, MAX_TEXT_BYTES),
    );
    let change = reason.map(|reason| (req.preserve_coupons, reason));
    command(v, tenant, common, change)
}

pub fn remove(
    tenant: &TenantId,
    req: &pb::RemoveRequest,
) -> Result<MutationCommand<()>, CartError> {
    let mut v = Violations::default();
    let common = common(&mut v, req, &req.cart_id, req.expected_version);
    command(v, tenant, common, Some(()))
}

pub fn delete(
    tenant: &TenantId,
    req: &pb::DeleteRequest,
) -> Result<MutationCommand<OrderNumber>, CartError> {
    let mut v = Violations::default();
    let common = common(&mut v, req, &req.cart_id, req.expected_version);
    let order_number = v.check(
        || "order_number".to_owned(),
        OrderNumber::parse(&req.order_number),
    );
    command(v, tenant, common, order_number)
}

pub fn timestamp(millis: UnixMillis) -> Timestamp {
    Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// The `cart.v1.Cart` a client sees: derived totals, expiry and the cart's hmac.
pub fn cart_view(
    key: &CartKey,
    state: &CartState,
    tokens: &CartTokens,
    policy: &CartPolicy,
) -> pb::Cart {
    let totals = state.totals();
    pb::Cart {
        id: key.cart_id.to_string(),
        customer_id: state.header.customer_id.clone(),
        session_id: state.header.session_id.clone(),
        channel: state.header.channel.clone(),
        currency: state.header.currency.to_string(),
        locale: state.header.locale.clone(),
        status: match state.status {
            CartStatus::Active => pb::CartStatus::Active,
            CartStatus::Deleted => pb::CartStatus::Deleted,
        } as i32,
        items: state
            .lines
            .iter()
            .map(|line| pb::LineItem {
                line_id: line.line_id.to_string(),
                sku: line.sku.to_string(),
                product_id: line.product_id.clone(),
                title: line.title.clone(),
                quantity: i64::from(line.quantity),
                unit_price: line.unit_price,
                total_price: line.unit_price.saturating_mul(i64::from(line.quantity)),
                attributes: line.attributes.clone().into_iter().collect(),
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
            .iter()
            .map(|c| pb::Coupon {
                code: c.code.to_string(),
                amount: c.amount,
            })
            .collect(),
        metadata: state.header.metadata.clone().into_iter().collect(),
        created_at: Some(timestamp(state.created_at)),
        updated_at: Some(timestamp(state.updated_at)),
        last_activity_at: Some(timestamp(state.last_activity_at)),
        expires_at: Some(timestamp(state.expires_at(policy))),
        cleared_at: state.cleared_at.map(timestamp),
        deleted_at: state.deleted_at.map(timestamp),
        clear_reason: state.clear_reason.clone(),
        order_number: state.order_number.clone(),
        version: state.version,
        hmac: tokens.sign(&key.tenant, &key.cart_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::default_tenant()
    }

    fn item(sku: &str, quantity: i64) -> pb::NewItem {
        pb::NewItem {
            sku: sku.into(),
            quantity,
            unit_price: 100,
            ..Default::default()
        }
    }

    fn tokens() -> CartTokens {
        CartTokens::new(b"convert tests secret")
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
        let Err(CartError::InvalidArgument(violations)) =
            create(&tenant(), req, &Limits::default(), &tokens())
        else {
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
        let command = add_items(&tenant(), req, &Limits::default()).unwrap();
        let quantities: Vec<_> = command
            .change
            .iter()
            .map(|l| (l.sku.to_string(), l.quantity))
            .collect();
        assert_eq!(quantities, [("A".to_owned(), 5), ("B".to_owned(), 1)]);
    }

    #[test]
    fn create_without_id_generates_one() {
        let req = pb::CreateRequest {
            currency: "EUR".into(),
            ..Default::default()
        };
        let command = create(&tenant(), req, &Limits::default(), &tokens()).unwrap();
        assert_eq!(command.key.cart_id.as_str().len(), 24);
        assert!(command.request.is_none());
    }

    #[test]
    fn create_with_a_request_id_derives_the_same_id_every_time() {
        let req = || pb::CreateRequest {
            currency: "EUR".into(),
            request_id: "7c0d6a4e-retry".into(),
            ..Default::default()
        };
        let first = create(&tenant(), req(), &Limits::default(), &tokens()).unwrap();
        let again = create(&tenant(), req(), &Limits::default(), &tokens()).unwrap();
        assert_eq!(first.key, again.key);
        assert_eq!(first.request, again.request);
        assert!(CartId::parse(first.key.cart_id.as_str()).is_ok());
        assert_eq!(first.key.cart_id.as_str().len(), 24);
        let other_tenant = TenantId::parse("other").unwrap();
        let elsewhere = create(&other_tenant, req(), &Limits::default(), &tokens()).unwrap();
        assert_ne!(first.key.cart_id, elsewhere.key.cart_id);
    }

    #[test]
    fn fingerprints_ignore_the_request_id_but_not_the_payload() {
        let clear = |request_id: &str, reason: &str| pb::ClearRequest {
            cart_id: "c1".into(),
            reason: reason.into(),
            request_id: request_id.into(),
            ..Default::default()
        };
        let tag = |req: &pb::ClearRequest| super::clear(&tenant(), req).unwrap().request.unwrap();
        let a = tag(&clear("r-1", "x"));
        assert_eq!(a.fingerprint, tag(&clear("r-2", "x")).fingerprint);
        assert_ne!(a.fingerprint, tag(&clear("r-1", "y")).fingerprint);
        assert!(
            super::clear(&tenant(), &clear("", "x"))
                .unwrap()
                .request
                .is_none()
        );
        let Err(CartError::InvalidArgument(violations)) =
            super::clear(&tenant(), &clear(&"r".repeat(65), "x"))
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
        let found = violations(update_items(
            &tenant(),
            updates(distinct),
            &Limits::default(),
        ));
        assert_eq!(
            found,
            [FieldViolation::new("updates", "at most 250 updates")]
        );
        let malformed = (0..30_000).map(|i| format!("bad id {i}"));
        let found = violations(update_items(
            &tenant(),
            updates(malformed),
            &Limits::default(),
        ));
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn violations_are_listed_up_to_the_bound_then_counted() {
        let found = violations(update_items(
            &tenant(),
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
        let found = violations(update_items(
            &tenant(),
            updates(ids.into_iter()),
            &Limits::default(),
        ));
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
        let found = violations(create(&tenant(), req, &Limits::default(), &tokens()));
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
        let found = violations(add_items(&tenant(), req, &Limits::default()));
        assert_eq!(found.len(), 1);
        assert!(found[0].field.starts_with("items[0].attributes[kkk"));
        assert!(found[0].field.len() <= crate::error::MAX_VIOLATION_FIELD_BYTES);
    }

    #[test]
    fn only_ids_the_service_chooses_are_marked_generated() {
        let create_with = |cart_id: &str, request_id: &str| {
            let req = pb::CreateRequest {
                cart_id: cart_id.into(),
                currency: "EUR".into(),
                request_id: request_id.into(),
                ..Default::default()
            };
            create(&tenant(), req, &Limits::default(), &tokens())
                .unwrap()
                .cart
                .id_generated
        };
        assert!(create_with("", ""));
        assert!(create_with("", "retry-1"), "derived with the hmac secret");
        assert!(!create_with("cart-42", ""));
        assert!(!create_with("cart-42", "retry-1"));
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
