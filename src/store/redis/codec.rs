//! Between Redis values and cart state: script arguments out, script replies in.
//!
//! Lua never does money arithmetic (its numbers are doubles): prices and descriptions travel
//! as an opaque JSON description per line, and totals are derived in Rust.

use std::collections::BTreeMap;

use redis::Value;

use crate::domain::{
    CartHeader, CartState, CartStatus, Coupon, CouponCode, Currency, Line, LineDescription, LineId,
    NewLine, Sku, UnixMillis,
};
use crate::error::CartError;

/// The header fields a snapshot carries, in the order the Lua `header()` joins them: the one
/// list of them (the Lua side gets `META_FIELDS` and the `F_<FIELD>` positions from it).
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
    FrozenAt,
    FreezeReason,
    /// When a frozen cart thaws ('' = never; see `CartState::thaw`).
    FrozenUntil,
    /// The target of a merging or merged cart.
    MergedInto,
    /// The idempotency key of the Merge that sealed it.
    MergeKey,
}

impl MetaField {
    pub const ALL: [MetaField; 22] = [
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
        Self::FrozenAt,
        Self::FreezeReason,
        Self::FrozenUntil,
        Self::MergedInto,
        Self::MergeKey,
    ];

    /// The field of the header hash.
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
            Self::FrozenAt => "frozen_at",
            Self::FreezeReason => "freeze_reason",
            Self::FrozenUntil => "frozen_until",
            Self::MergedInto => "merged_into",
            Self::MergeKey => "merge_key",
        }
    }

    /// Its position in a Lua list of the fields (1-based, as Lua indexes).
    pub fn position(self) -> usize {
        self as usize + 1
    }
}

/// The values of a header, in [`MetaField::ALL`] order.
struct Header<'a>([&'a str; MetaField::ALL.len()]);

impl<'a> Header<'a> {
    fn get(&self, field: MetaField) -> &'a str {
        self.0[field as usize]
    }
}

/// Separates the header values (ASCII unit separator: validation keeps control characters
/// out of every stored text, and JSON escapes them).
const FIELD_SEPARATOR: char = '\u{1f}';

/// Appends the item arguments of `plan_add`: count, then line_id, quantity, currency,
/// description (the JSON of [`LineDescription`], stored as it is).
pub fn push_items(args: &mut Vec<Vec<u8>>, items: &[NewLine], now: UnixMillis) {
    args.push(items.len().to_string().into_bytes());
    for item in items {
        let description = LineDescription::of(item, now);
        args.push(item.line_id.as_str().as_bytes().to_vec());
        args.push(item.quantity.to_string().into_bytes());
        args.push(
            item.currency
                .as_ref()
                .map(|c| c.as_str().as_bytes().to_vec())
                .unwrap_or_default(),
        );
        args.push(description.to_json());
    }
}

pub fn encode_metadata(metadata: &BTreeMap<String, String>) -> Vec<u8> {
    serde_json::to_vec(metadata).expect("a string map always serializes")
}

/// A script reply: `{'OK', ...}` or `{'ERR', reason, detail}`.
pub enum Reply {
    Ok(Vec<Value>),
    Refused(CartError),
}

fn corrupt(what: impl Into<String>) -> CartError {
    let what: String = what.into();
    CartError::Internal(format!("unexpected reply from redis: {what}").into())
}

fn text(value: &Value) -> Result<String, CartError> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes.clone()).map_err(|_| corrupt("non-UTF-8 string"))
        }
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Okay => Ok("OK".to_owned()),
        other => Err(corrupt(format!("expected a string, got {other:?}"))),
    }
}

fn int(value: &Value) -> Result<i64, CartError> {
    match value {
        Value::Int(i) => Ok(*i),
        other => text(other)?
            .parse()
            .map_err(|_| corrupt("expected an integer")),
    }
}

/// The first element of every script reply (see `fail` and `cart_reply` in the prelude).
const OK: &str = "OK";

pub fn parse_reply(value: Value, limits: &crate::domain::Limits) -> Result<Reply, CartError> {
    let Value::Array(mut parts) = value else {
        return Err(corrupt("expected an array"));
    };
    let Some(tag) = parts.first() else {
        return Err(corrupt("empty reply"));
    };
    if text(tag)? == OK {
        parts.remove(0);
        return Ok(Reply::Ok(parts));
    }
    // `{'ERR', reason, detail}`.
    let (reason, detail) = match parts.as_slice() {
        [_, reason, detail] => (text(reason)?, text(detail)?),
        _ => return Err(corrupt("refusal of unexpected length")),
    };
    let error = match reason.as_str() {
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
    };
    Ok(Reply::Refused(error))
}

/// Decodes `HGETALL` output (a flat array, or a map under RESP3) into pairs.
fn pairs(value: &Value) -> Result<Vec<(String, String)>, CartError> {
    match value {
        Value::Array(items) => items
            .chunks(2)
            .map(|pair| match pair {
                [k, v] => Ok((text(k)?, text(v)?)),
                _ => Err(corrupt("odd HGETALL reply")),
            })
            .collect(),
        Value::Map(items) => items
            .iter()
            .map(|(k, v)| Ok((text(k)?, text(v)?)))
            .collect(),
        other => Err(corrupt(format!("expected a hash, got {other:?}"))),
    }
}

/// Decodes a cart reply (after its `OK`; built by the prelude's `cart_reply`) into a cart
/// and the reply's extra number.
pub fn decode_snapshot(parts: &[Value]) -> Result<(CartState, i64), CartError> {
    let [header, lines, coupons, extra] = parts else {
        return Err(corrupt("snapshot of unexpected length"));
    };
    let joined = text(header)?;
    let values: Vec<&str> = joined.split(FIELD_SEPARATOR).collect();
    let header = Header(
        <[&str; MetaField::ALL.len()]>::try_from(values)
            .map_err(|_| corrupt("header of unexpected length"))?,
    );
    let number = |(name, value): (&str, &str)| -> Result<Option<i64>, CartError> {
        match value {
            "" => Ok(None),
            v => v
                .parse()
                .map(Some)
                .map_err(|_| corrupt(format!("field {name}"))),
        }
    };
    let required = |(name, value): (&str, &str)| {
        number((name, value))?.ok_or_else(|| corrupt(format!("missing {name}")))
    };

    let field = |field: MetaField| (field.name(), header.get(field));
    let metadata = match header.get(MetaField::Metadata) {
        "" => BTreeMap::new(),
        json => serde_json::from_str(json).map_err(|_| corrupt("metadata json"))?,
    };
    let mut decoded_lines = pairs(lines)?
        .into_iter()
        .map(|(line_id, record)| decode_line(line_id, &record))
        .collect::<Result<Vec<_>, _>>()?;
    decoded_lines.sort_by_key(|l| l.position);
    let mut decoded_coupons = pairs(coupons)?
        .into_iter()
        .map(|(code, record)| {
            let (position, amount) = record.split_once('|').ok_or_else(|| corrupt("coupon"))?;
            Ok(Coupon {
                code: CouponCode::parse(&code).map_err(corrupt)?,
                amount: amount.parse().map_err(|_| corrupt("coupon amount"))?,
                position: position.parse().map_err(|_| corrupt("coupon position"))?,
            })
        })
        .collect::<Result<Vec<_>, CartError>>()?;
    decoded_coupons.sort_by_key(|c| c.position);

    let state = CartState {
        header: CartHeader {
            customer_id: header.get(MetaField::CustomerId).to_owned(),
            session_id: header.get(MetaField::SessionId).to_owned(),
            channel: header.get(MetaField::Channel).to_owned(),
            currency: Currency::parse(header.get(MetaField::Currency)).map_err(corrupt)?,
            locale: header.get(MetaField::Locale).to_owned(),
            metadata,
        },
        status: match header.get(MetaField::Status) {
            "deleted" => CartStatus::Deleted,
            "frozen" => CartStatus::Frozen,
            "merging" => CartStatus::Merging,
            "merged" => CartStatus::Merged,
            _ => CartStatus::Active,
        },
        lines: decoded_lines,
        coupons: decoded_coupons,
        created_at: required(field(MetaField::CreatedAt))?,
        updated_at: required(field(MetaField::UpdatedAt))?,
        last_activity_at: required(field(MetaField::LastActivityAt))?,
        cleared_at: number(field(MetaField::ClearedAt))?,
        clear_reason: header.get(MetaField::ClearReason).to_owned(),
        deleted_at: number(field(MetaField::DeletedAt))?,
        order_number: header.get(MetaField::OrderNumber).to_owned(),
        version: required(field(MetaField::Version))?,
        next_position: number(field(MetaField::NextPosition))?.unwrap_or(1),
        // Carts stored before the flag was kept read as client-chosen ids.
        id_generated: header.get(MetaField::Generated) == "1",
        frozen_at: number(field(MetaField::FrozenAt))?,
        freeze_reason: header.get(MetaField::FreezeReason).to_owned(),
        frozen_until: number(field(MetaField::FrozenUntil))?,
        merged_into: header.get(MetaField::MergedInto).to_owned(),
        merge_key: header.get(MetaField::MergeKey).to_owned(),
    };
    Ok((state, int(extra)?))
}

fn decode_line(line_id: String, record: &str) -> Result<Line, CartError> {
    let mut parts = record.splitn(4, '|');
    let mut next = |what: &str| parts.next().ok_or_else(|| corrupt(format!("line {what}")));
    let quantity = next("quantity")?.parse().map_err(|_| corrupt("quantity"))?;
    let updated_at = next("updated_at")?
        .parse()
        .map_err(|_| corrupt("updated_at"))?;
    let position = next("position")?.parse().map_err(|_| corrupt("position"))?;
    let json = next("description")?;
    let description: LineDescription =
        serde_json::from_str(json).map_err(|_| corrupt("line description"))?;
    Ok(Line {
        bytes: line_id.len() + json.len(),
        line_id: LineId::parse(&line_id).map_err(corrupt)?,
        sku: Sku::parse(&description.sku, usize::MAX).map_err(corrupt)?,
        product_id: description.product_id.into_owned(),
        title: description.title.into_owned(),
        quantity,
        unit_price: description.unit_price,
        attributes: description.attributes.into_owned(),
        added_at: description.added_at,
        updated_at,
        position,
    })
}

pub fn decode_units(parts: &[Value]) -> Result<i64, CartError> {
    parts
        .first()
        .map(int)
        .unwrap_or_else(|| Err(corrupt("missing count")))
}
