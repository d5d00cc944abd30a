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

/// The header fields a snapshot carries, in the order the Lua `header()` joins them.
pub const META_FIELDS: [&str; 17] = [
    "customer_id",
    "session_id",
    "channel",
    "currency",
    "locale",
    "metadata",
    "status",
    "created_at",
    "updated_at",
    "last_activity_at",
    "cleared_at",
    "clear_reason",
    "deleted_at",
    "order_number",
    "version",
    "next_position",
    "generated",
];

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

pub fn parse_reply(value: Value, limits: &crate::domain::Limits) -> Result<Reply, CartError> {
    let Value::Array(mut parts) = value else {
        return Err(corrupt("expected an array"));
    };
    if parts.is_empty() {
        return Err(corrupt("empty reply"));
    }
    let tag = text(&parts[0])?;
    if tag == "OK" {
        parts.remove(0);
        return Ok(Reply::Ok(parts));
    }
    let reason = parts.get(1).map(text).transpose()?.unwrap_or_default();
    let detail = parts.get(2).map(text).transpose()?.unwrap_or_default();
    let error = match reason.as_str() {
        "CART_NOT_FOUND" => CartError::CartNotFound,
        "CART_ALREADY_EXISTS" => CartError::CartAlreadyExists,
        "CART_DELETED" => CartError::CartDeleted,
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
        "REQUEST_ID_REUSED" => CartError::RequestIdReused,
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

/// Decodes the `{meta, lines, coupons, extra}` of a snapshot reply into a cart and the extra.
pub fn decode_snapshot(parts: &[Value]) -> Result<(CartState, i64), CartError> {
    let [meta, lines, coupons, extra] = parts else {
        return Err(corrupt("snapshot of unexpected length"));
    };
    let meta = text(meta)?;
    let values: Vec<&str> = meta.split(FIELD_SEPARATOR).collect();
    // The order of META_FIELDS.
    let Ok(
        [
            customer_id,
            session_id,
            channel,
            currency,
            locale,
            metadata,
            status,
            created_at,
            updated_at,
            last_activity_at,
            cleared_at,
            clear_reason,
            deleted_at,
            order_number,
            version,
            next_position,
            generated,
        ],
    ) = <[&str; META_FIELDS.len()]>::try_from(values)
    else {
        return Err(corrupt("header of unexpected length"));
    };
    let number = |name: &str, value: &str| -> Result<Option<i64>, CartError> {
        match value {
            "" => Ok(None),
            v => v
                .parse()
                .map(Some)
                .map_err(|_| corrupt(format!("field {name}"))),
        }
    };
    let required = |name: &str, value: &str| {
        number(name, value)?.ok_or_else(|| corrupt(format!("missing {name}")))
    };

    let metadata = match metadata {
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
            customer_id: customer_id.to_owned(),
            session_id: session_id.to_owned(),
            channel: channel.to_owned(),
            currency: Currency::parse(currency).map_err(corrupt)?,
            locale: locale.to_owned(),
            metadata,
        },
        status: if status == "deleted" {
            CartStatus::Deleted
        } else {
            CartStatus::Active
        },
        lines: decoded_lines,
        coupons: decoded_coupons,
        created_at: required("created_at", created_at)?,
        updated_at: required("updated_at", updated_at)?,
        last_activity_at: required("last_activity_at", last_activity_at)?,
        cleared_at: number("cleared_at", cleared_at)?,
        clear_reason: clear_reason.to_owned(),
        deleted_at: number("deleted_at", deleted_at)?,
        order_number: order_number.to_owned(),
        version: required("version", version)?,
        next_position: number("next_position", next_position)?.unwrap_or(1),
        // Carts stored before the flag was kept read as client-chosen ids.
        id_generated: generated == "1",
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
