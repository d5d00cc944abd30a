//! Between Redis values and cart state: script arguments out, script replies in.
//!
//! Lua never does money arithmetic (its numbers are doubles): prices and descriptions travel
//! as an opaque JSON description per line, coupon amounts as their decimal text, and totals
//! are derived in Rust. A reply is one bulk string of msgpack, read in place by
//! [`msgpack::Reader`] (no intermediate value tree); replies in the shape of layout v1 are
//! read by `v1`.
//!
//! [`MetaField`] is the one list of the header's fields. Adding one (say `frozen_at`) is one
//! variant here, in `ALL` (at the end, so that values stored before read it as absent) and
//! in `name`; then its use: the scripts index it as `F_FROZEN_AT` (written in from this
//! list), [`decode_snapshot`] reads it with `field(MetaField::FrozenAt)`. Values stored
//! before it existed read as absent (`false` in Lua, see `load` in `lua/prelude.lua`).

mod v1;

use std::collections::BTreeMap;

use redis::Value;

use super::Arg;
use super::msgpack::{self, Item, Malformed, Reader};
use crate::domain::{
    CartHeader, CartPolicy, CartState, CartStatus, Coupon, CouponCode, Currency, Limits, Line,
    LineDescription, LineId, NewLine, Sku, UnixMillis,
};
use crate::error::CartError;

/// The fields of a cart's header, in the order of the header array of the stored value: the
/// one list of them (the Lua side gets `META_COUNT`, `META_FIELDS` and the `F_<FIELD>`
/// positions from it). The names are also the field names of a v1 header hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaField {
    CustomerId,
    SessionId,
    Channel,
    Currency,
    Locale,
    Metadata,
    Status,
    CreatedAt,
    UpdatedAt,
    LastActivityAt,
    ClearedAt,
    ClearReason,
    DeletedAt,
    OrderNumber,
    Version,
    NextPosition,
    /// "1" when the service generated the cart's id (see `NewCart::id_generated`).
    Generated,
    /// The units the lines hold, so that Clear and Remove need not read the lines.
    ItemCount,
    /// What the lines count against `max_cart_bytes` (each line's id and description).
    LineBytes,
    FrozenAt,
    FreezeReason,
    /// When a frozen cart thaws (absent: never; see `CartState::thaw`).
    FrozenUntil,
    /// The target of a merging or merged cart.
    MergedInto,
    /// The idempotency key of the Merge that sealed it.
    MergeKey,
}

impl MetaField {
    pub const ALL: [MetaField; 24] = [
        Self::CustomerId,
        Self::SessionId,
        Self::Channel,
        Self::Currency,
        Self::Locale,
        Self::Metadata,
        Self::Status,
        Self::CreatedAt,
        Self::UpdatedAt,
        Self::LastActivityAt,
        Self::ClearedAt,
        Self::ClearReason,
        Self::DeletedAt,
        Self::OrderNumber,
        Self::Version,
        Self::NextPosition,
        Self::Generated,
        Self::ItemCount,
        Self::LineBytes,
        Self::FrozenAt,
        Self::FreezeReason,
        Self::FrozenUntil,
        Self::MergedInto,
        Self::MergeKey,
    ];

    /// Its name: `F_<NAME>` in Lua, and the field of a v1 header hash.
    pub fn name(self) -> &'static str {
        match self {
            Self::CustomerId => "customer_id",
            Self::SessionId => "session_id",
            Self::Channel => "channel",
            Self::Currency => "currency",
            Self::Locale => "locale",
            Self::Metadata => "metadata",
            Self::Status => "status",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::LastActivityAt => "last_activity_at",
            Self::ClearedAt => "cleared_at",
            Self::ClearReason => "clear_reason",
            Self::DeletedAt => "deleted_at",
            Self::OrderNumber => "order_number",
            Self::Version => "version",
            Self::NextPosition => "next_position",
            Self::Generated => "generated",
            Self::ItemCount => "item_count",
            Self::LineBytes => "line_bytes",
            Self::FrozenAt => "frozen_at",
            Self::FreezeReason => "freeze_reason",
            Self::FrozenUntil => "frozen_until",
            Self::MergedInto => "merged_into",
            Self::MergeKey => "merge_key",
        }
    }

    /// Its position in the header array (1-based, as Lua indexes).
    pub fn position(self) -> usize {
        self as usize + 1
    }
}

/// Appends the item arguments of `plan_add`: count, then line_id, quantity, currency,
/// description (the JSON of [`LineDescription`], stored as it is).
pub fn push_items<'a>(args: &mut Vec<Arg<'a>>, items: &'a [NewLine], now: UnixMillis) {
    args.reserve(1 + 4 * items.len());
    args.push(int(items.len() as i64));
    for item in items {
        let description = LineDescription::of(item, now);
        args.push(Arg::Borrowed(item.line_id.as_str().as_bytes()));
        args.push(int(item.quantity.into()));
        args.push(Arg::Borrowed(
            item.currency
                .as_ref()
                .map_or(&b""[..], |c| c.as_str().as_bytes()),
        ));
        args.push(Arg::Owned(description.to_json()));
    }
}

/// A number argument, as its decimal digits.
pub fn int(value: i64) -> Arg<'static> {
    Arg::Owned(itoa::Buffer::new().format(value).as_bytes().to_vec())
}

pub fn encode_metadata(metadata: &BTreeMap<String, String>) -> Vec<u8> {
    serde_json::to_vec(metadata).expect("a string map always serializes")
}

/// A successful script reply.
pub enum Body {
    /// One bulk string of msgpack (see `lua/prelude.lua`).
    V2(Vec<u8>),
    /// A reply shaped by the v1 scripts, replayed from a record they left (see `v1`).
    V1(Vec<Value>),
    /// A cart's value as stored, read by `GET`, and its key's expiry (`PEXPIRETIME`): the
    /// reply of a Get served without its script.
    Stored { value: Vec<u8>, expires: i64 },
}

/// A script reply: a success, or the refusal it carried.
pub enum Reply {
    Ok(Body),
    Refused(CartError),
}

fn corrupt(what: impl Into<String>) -> CartError {
    let what: String = what.into();
    CartError::Internal(format!("unexpected reply from redis: {what}").into())
}

impl From<Malformed> for CartError {
    fn from(error: Malformed) -> Self {
        corrupt(error.0)
    }
}

/// The error a script's refusal `reason` names.
fn refusal(reason: &str, detail: String, limits: &Limits) -> Result<CartError, CartError> {
    Ok(match reason {
        "CART_NOT_FOUND" => CartError::CartNotFound,
        "CART_ALREADY_EXISTS" => CartError::CartAlreadyExists,
        "CART_DELETED" => CartError::CartDeleted,
        "CART_FROZEN" => CartError::CartFrozen,
        "CART_MERGED" => CartError::CartMerged,
        "ORDER_NUMBER_MISMATCH" => CartError::OrderNumberMismatch,
        "CURRENCY_MISMATCH" => CartError::CurrencyMismatch(detail),
        "LINE_LIMIT_EXCEEDED" => CartError::LineLimit(limits.max_lines),
        "QUANTITY_LIMIT_EXCEEDED" => CartError::QuantityLimit {
            line_id: detail,
            max: limits.max_quantity,
        },
        "COUPON_LIMIT_EXCEEDED" => CartError::CouponLimit(limits.max_coupons),
        "CART_TOO_LARGE" => CartError::CartTooLarge(limits.max_cart_bytes),
        "LINE_ITEM_NOT_FOUND" => CartError::LineNotFound(detail),
        "REQUEST_ID_REUSED" => CartError::IdempotencyKeyReused,
        "STORE_FULL" => CartError::StoreFull,
        "VERSION_MISMATCH" => CartError::VersionMismatch {
            expected: 0,
            actual: detail.parse().map_err(|_| corrupt("version"))?,
        },
        other => return Err(corrupt(format!("unknown refusal {other}"))),
    })
}

/// Whether a msgpack item starting with `tag` is a string: a refusal's reply starts with its
/// reason, every other reply with a number.
fn is_str(tag: u8) -> bool {
    matches!(tag, 0xa0..=0xbf | 0xd9..=0xdb)
}

pub fn parse_reply(value: Value, limits: &Limits) -> Result<Reply, CartError> {
    match value {
        Value::BulkString(bytes) => {
            let Some(tag) = bytes.first() else {
                return Err(corrupt("empty reply"));
            };
            if !is_str(*tag) {
                return Ok(Reply::Ok(Body::V2(bytes)));
            }
            let mut reader = Reader::new(&bytes);
            let reason = reader.str()?;
            let detail = reader.str()?.to_owned();
            refusal(reason, detail, limits).map(Reply::Refused)
        }
        Value::Array(parts) => v1::parse_reply(parts, limits),
        other => Err(corrupt(format!("expected a bulk string, got {other:?}"))),
    }
}

/// A header value as the scripts keep it: text, a number (v1 carts keep numbers as text),
/// or absent (`false`, nil, or an array shorter than [`MetaField::ALL`]).
#[derive(Clone, Copy)]
enum Field<'a> {
    Absent,
    Text(&'a str),
    Number(i64),
}

impl<'a> Field<'a> {
    /// The field an item holds. Fails with the small [`Malformed`] (made a `CartError` by
    /// the caller's `?`), so that the header's loop moves a few words per field.
    #[inline]
    fn of(item: Item<'a>) -> Result<Self, Malformed> {
        Ok(match item {
            Item::Nil | Item::Bool(false) => Self::Absent,
            Item::Str(bytes) => Self::Text(msgpack::utf8(bytes)?),
            Item::Int(i) => Self::Number(i),
            Item::Float(f) if f.fract() == 0.0 => Self::Number(f as i64),
            _ => return Err(Malformed("header field of unexpected type")),
        })
    }

    /// The field as an owned text (a number as its digits, an absent field empty).
    fn owned_text(self) -> String {
        match self {
            Self::Absent => String::new(),
            Self::Text(text) => text.to_owned(),
            Self::Number(i) => i.to_string(),
        }
    }

    fn text(self) -> std::borrow::Cow<'a, str> {
        match self {
            Self::Absent => "".into(),
            Self::Text(text) => text.into(),
            Self::Number(i) => i.to_string().into(),
        }
    }

    /// The field as a number; the error (rare: a corrupt value) names the field `name`.
    #[inline]
    fn number(self, name: &str) -> Result<Option<i64>, CartError> {
        match self {
            Self::Absent | Self::Text("") => Ok(None),
            Self::Number(i) => Ok(Some(i)),
            Self::Text(text) => text
                .parse()
                .map(Some)
                .map_err(|_| corrupt(format!("field {name}"))),
        }
    }
}

/// A successful reply that carries a cart, as the cart and the reply's extra number (Clear's
/// units cleared). A live cart's `last_activity_at` is its key's expiry less `cart_ttl` (see
/// [`crate::domain::CartPolicy::refresh_slack_ms`]); a tombstone's is the one it stored.
pub fn decode_snapshot(
    body: &Body,
    policy: &CartPolicy,
) -> Result<(Box<CartState>, i64), CartError> {
    let (mut r, expires, extra) = match body {
        Body::V2(bytes) => {
            let mut r = Reader::new(bytes);
            let expires = r.int()?;
            let extra = r.int()?;
            (r, expires, extra)
        }
        Body::Stored { value, expires } => (Reader::new(value), *expires, 0),
        Body::V1(parts) => return v1::decode_snapshot(parts),
    };
    let mut fields = [Field::Absent; MetaField::ALL.len()];
    let count = r.array()?;
    for slot in fields.iter_mut().take(count) {
        *slot = Field::of(r.item()?)?;
    }
    // The fields a later version added are ignored by this one.
    for _ in fields.len()..count {
        Field::of(r.item()?)?;
    }
    let field = |f: MetaField| fields[f as usize];
    let number = |f: MetaField| field(f).number(f.name());
    let required =
        |f: MetaField| number(f)?.ok_or_else(|| corrupt(format!("missing {}", f.name())));

    let coupon_items = r.array()?;
    if coupon_items % 3 != 0 {
        return Err(corrupt("coupons"));
    }
    let mut coupons = Vec::with_capacity(coupon_items / 3);
    for _ in 0..coupon_items / 3 {
        let code = Field::of(r.item()?)?.text();
        let amount = Field::of(r.item()?)?.number("coupon amount")?;
        let position = r.int()?;
        coupons.push(Coupon {
            code: CouponCode::parse(&code).map_err(corrupt)?,
            amount: amount.ok_or_else(|| corrupt("coupon amount"))?,
            position,
        });
    }
    let line_items = r.array()?;
    if line_items % 5 != 0 {
        return Err(corrupt("lines"));
    }
    let mut lines = Vec::with_capacity(line_items / 5);
    for _ in 0..line_items / 5 {
        let line_id = r.str()?;
        let quantity = r.int()?;
        let updated_at = r.int()?;
        let position = r.int()?;
        let json = r.str()?;
        let description: LineDescription =
            LineDescription::from_json(json).map_err(|_| corrupt("line description"))?;
        lines.push(Line {
            bytes: line_id.len() + json.len(),
            line_id: LineId::parse(line_id).map_err(corrupt)?,
            sku: Sku::parse(&description.sku, usize::MAX).map_err(corrupt)?,
            product_id: description.product_id.into_owned(),
            title: description.title.into_owned(),
            quantity: u32::try_from(quantity).map_err(|_| corrupt("quantity"))?,
            unit_price: description.unit_price,
            attributes: description.attributes.into_owned(),
            added_at: description.added_at,
            updated_at,
            position,
        });
    }
    if !r.is_done() {
        return Err(corrupt("trailing bytes"));
    }
    // Both are kept in insertion order; carts converted from v1 were sorted when converted.
    lines.sort_by_key(|l| l.position);
    coupons.sort_by_key(|c| c.position);

    let metadata = match field(MetaField::Metadata).text().as_ref() {
        // Most carts have none: stored as `{}`, which needs no JSON parser to read.
        "" | "{}" => BTreeMap::new(),
        json => serde_json::from_str(json).map_err(|_| corrupt("metadata json"))?,
    };
    let status = status(&field(MetaField::Status).text()).unwrap_or(CartStatus::Active);
    let last_activity_at = if lives_by_expiry(status) {
        expires - policy.cart_ttl_ms()
    } else {
        required(MetaField::LastActivityAt)?
    };
    let text = |f: MetaField| field(f).owned_text();
    let state = Box::new(CartState {
        header: CartHeader {
            customer_id: text(MetaField::CustomerId),
            session_id: text(MetaField::SessionId),
            channel: text(MetaField::Channel),
            currency: Currency::parse(&field(MetaField::Currency).text()).map_err(corrupt)?,
            locale: text(MetaField::Locale),
            metadata,
        },
        status,
        lines,
        coupons,
        created_at: required(MetaField::CreatedAt)?,
        updated_at: required(MetaField::UpdatedAt)?,
        last_activity_at,
        cleared_at: number(MetaField::ClearedAt)?,
        clear_reason: text(MetaField::ClearReason),
        deleted_at: number(MetaField::DeletedAt)?,
        order_number: text(MetaField::OrderNumber),
        version: required(MetaField::Version)?,
        next_position: number(MetaField::NextPosition)?.unwrap_or(1),
        // Carts stored before the flag was kept read as client-chosen ids.
        id_generated: field(MetaField::Generated).text() == "1",
        frozen_at: number(MetaField::FrozenAt)?,
        freeze_reason: text(MetaField::FreezeReason),
        frozen_until: number(MetaField::FrozenUntil)?,
        merged_into: text(MetaField::MergedInto),
        merge_key: text(MetaField::MergeKey),
    });
    Ok((state, extra))
}

/// Whether a stored value (layout v2) is a live cart's (active, frozen or being merged),
/// whose lifetime a Get restarts; a tombstone's is not. Reads the header up to its status.
pub fn stored_is_live(value: &[u8]) -> Result<bool, CartError> {
    let mut r = Reader::new(value);
    let fields = r.array()?;
    let position = MetaField::Status as usize;
    if fields <= position {
        return Err(corrupt("missing status"));
    }
    for _ in 0..position {
        r.item()?;
    }
    Ok(status(&Field::of(r.item()?)?.text()).is_some_and(lives_by_expiry))
}

/// The status a header stores as text; `None` for any other text (the reader of a whole cart
/// takes that for active).
fn status(text: &str) -> Option<CartStatus> {
    Some(match text {
        "active" => CartStatus::Active,
        "deleted" => CartStatus::Deleted,
        "frozen" => CartStatus::Frozen,
        "merging" => CartStatus::Merging,
        "merged" => CartStatus::Merged,
        _ => return None,
    })
}

/// Whether a cart of `status` lives `cart_ttl` from the last restart of its lifetime, so that
/// its key's expiry tells its last activity (active, frozen, being merged), or is a tombstone
/// that keeps the expiry and activity it stored.
fn lives_by_expiry(status: CartStatus) -> bool {
    match status {
        CartStatus::Active | CartStatus::Frozen | CartStatus::Merging => true,
        CartStatus::Deleted | CartStatus::Merged => false,
    }
}

/// Remove's reply: the units it removed.
pub fn decode_units(body: &Body) -> Result<i64, CartError> {
    match body {
        Body::V2(bytes) => {
            let mut r = Reader::new(bytes);
            let units = r.int()?;
            if !r.is_done() {
                return Err(corrupt("trailing bytes"));
            }
            Ok(units)
        }
        Body::V1(parts) => v1::decode_units(parts),
        Body::Stored { .. } => Err(corrupt("a cart where units were expected")),
    }
}
