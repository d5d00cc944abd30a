//! Replies in the shape of layout v1's scripts (an array: `OK`, the header joined by the unit
//! separator, the HGETALL of the lines and of the coupons, a number; or `ERR`, reason,
//! detail). Only the records that v1 scripts left under request ids still answer so, until
//! they expire (`request_id_ttl`): their replay must read as it did.

use std::collections::BTreeMap;

use redis::Value;

use super::{Reply, corrupt, refusal};
use crate::domain::{
    CartHeader, CartState, CartStatus, Coupon, CouponCode, Currency, Limits, Line, LineDescription,
    LineId, Sku,
};
use crate::error::CartError;

/// The header fields of a v1 reply, in the order its `header()` joined them (frozen: v1).
const FIELDS: [&str; 17] = [
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

/// Separates the header values (ASCII unit separator).
const FIELD_SEPARATOR: char = '\u{1f}';

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

/// A v1 reply array.
pub fn parse_reply(mut parts: Vec<Value>, limits: &Limits) -> Result<Reply, CartError> {
    let Some(tag) = parts.first() else {
        return Err(corrupt("empty reply"));
    };
    if text(tag)? == "OK" {
        parts.remove(0);
        return Ok(Reply::Ok(super::Body::V1(parts)));
    }
    match parts.as_slice() {
        [_, reason, detail] => refusal(&text(reason)?, text(detail)?, limits).map(Reply::Refused),
        _ => Err(corrupt("refusal of unexpected length")),
    }
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

/// A v1 cart reply (after its `OK`) as a cart and the reply's extra number.
pub fn decode_snapshot(parts: &[Value]) -> Result<(Box<CartState>, i64), CartError> {
    let [header, lines, coupons, extra] = parts else {
        return Err(corrupt("snapshot of unexpected length"));
    };
    let joined = text(header)?;
    let values: Vec<&str> = joined.split(FIELD_SEPARATOR).collect();
    if values.len() != FIELDS.len() {
        return Err(corrupt("header of unexpected length"));
    }
    let get = |name: &str| {
        FIELDS
            .iter()
            .position(|f| *f == name)
            .map_or("", |i| values[i])
    };
    let number = |name: &str| -> Result<Option<i64>, CartError> {
        match get(name) {
            "" => Ok(None),
            v => v
                .parse()
                .map(Some)
                .map_err(|_| corrupt(format!("field {name}"))),
        }
    };
    let required = |name: &str| number(name)?.ok_or_else(|| corrupt(format!("missing {name}")));
    let metadata = match get("metadata") {
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
            customer_id: get("customer_id").to_owned(),
            session_id: get("session_id").to_owned(),
            channel: get("channel").to_owned(),
            currency: Currency::parse(get("currency")).map_err(corrupt)?,
            locale: get("locale").to_owned(),
            metadata,
        },
        status: if get("status") == "deleted" {
            CartStatus::Deleted
        } else {
            CartStatus::Active
        },
        lines: decoded_lines,
        coupons: decoded_coupons,
        created_at: required("created_at")?,
        updated_at: required("updated_at")?,
        last_activity_at: required("last_activity_at")?,
        cleared_at: number("cleared_at")?,
        clear_reason: get("clear_reason").to_owned(),
        deleted_at: number("deleted_at")?,
        order_number: get("order_number").to_owned(),
        version: required("version")?,
        next_position: number("next_position")?.unwrap_or(1),
        id_generated: get("generated") == "1",
        // The v1 scripts knew no freeze and no merge.
        frozen_at: None,
        freeze_reason: String::new(),
        frozen_until: None,
        merged_into: String::new(),
        merge_key: String::new(),
    };
    Ok((Box::new(state), int(extra)?))
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
        LineDescription::from_json(json).map_err(|_| corrupt("line description"))?;
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

/// Remove's v1 reply: `OK` and the units.
pub fn decode_units(parts: &[Value]) -> Result<i64, CartError> {
    parts
        .first()
        .map(int)
        .unwrap_or_else(|| Err(corrupt("missing count")))
}
