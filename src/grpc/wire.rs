//! The protobuf encoding of the replies that carry a cart, written in one pass.
//!
//! prost writes a nested message (the reply's cart, each line, timestamp, coupon and map
//! entry) by first computing its length, which walks it once more, and writes each varint
//! through a generic buffer call. Here a nested message's length is written after its body
//! (one byte is kept for it, and the body moved along in the rare case it needs more), and
//! every field is written inline. The bytes are prost's, field for field (the tests compare
//! them); every other message is encoded by prost.

use std::collections::BTreeMap;

use prost_types::Timestamp;

use crate::pb;

/// How a message of `cart.v1` is written into a reply's buffer.
pub trait Encode {
    fn encode_into(&self, buf: &mut Vec<u8>);
}

macro_rules! by_prost {
    ($($message:ty),* $(,)?) => {
        $(
            impl Encode for $message {
                fn encode_into(&self, buf: &mut Vec<u8>) {
                    prost::Message::encode_raw(self, buf);
                }
            }
        )*
    };
}

by_prost!(
    pb::CreateRequest,
    pb::GetRequest,
    pb::AddItemsRequest,
    pb::UpdateItemsRequest,
    pb::ApplyCouponRequest,
    pb::ClearRequest,
    pb::RemoveRequest,
    pb::RemoveResponse,
    pb::DeleteRequest,
    pb::FreezeRequest,
    pb::UnfreezeRequest,
    pb::GetActiveCartRequest,
    pb::MergeRequest,
);

impl Encode for pb::Cart {
    fn encode_into(&self, buf: &mut Vec<u8>) {
        cart(buf, self);
    }
}

impl Encode for pb::ClearResponse {
    fn encode_into(&self, buf: &mut Vec<u8>) {
        let Self {
            cart: c,
            items_cleared,
        } = self;
        if let Some(c) = c {
            nested(buf, 1, |buf| cart(buf, c));
        }
        int64(buf, 2, *items_cleared);
    }
}

impl Encode for pb::DeleteResponse {
    fn encode_into(&self, buf: &mut Vec<u8>) {
        let Self { cart: c } = self;
        if let Some(c) = c {
            nested(buf, 1, |buf| cart(buf, c));
        }
    }
}

impl Encode for pb::MergeResponse {
    fn encode_into(&self, buf: &mut Vec<u8>) {
        let Self {
            cart: c,
            source_cart_id,
            lines_merged,
        } = self;
        if let Some(c) = c {
            nested(buf, 1, |buf| cart(buf, c));
        }
        string(buf, 2, source_cart_id);
        int64(buf, 3, *lines_merged);
    }
}

/// Wire types.
const VARINT: u32 = 0;
const LENGTH_DELIMITED: u32 = 2;

#[inline]
fn varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

#[inline]
fn key(buf: &mut Vec<u8>, field: u32, wire_type: u32) {
    varint(buf, u64::from(field << 3 | wire_type));
}

/// A proto3 `string` (absent when empty).
#[inline]
fn string(buf: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        key(buf, field, LENGTH_DELIMITED);
        varint(buf, value.len() as u64);
        buf.extend_from_slice(value.as_bytes());
    }
}

/// A proto3 `int64` (absent when 0); a negative one as its ten-byte two's complement.
#[inline]
fn int64(buf: &mut Vec<u8>, field: u32, value: i64) {
    if value != 0 {
        key(buf, field, VARINT);
        varint(buf, value as u64);
    }
}

/// A nested message of field `field`, written by `body`; its length goes before it.
#[inline]
fn nested(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, LENGTH_DELIMITED);
    let at = buf.len();
    buf.push(0);
    body(buf);
    let end = buf.len();
    let len = end - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
        return;
    }
    // The length's varint, then the body moved along to make room for it.
    let mut prefix = [0u8; 10];
    let mut n = 0;
    let mut rest = len;
    while rest >= 0x80 {
        prefix[n] = rest as u8 | 0x80;
        rest >>= 7;
        n += 1;
    }
    prefix[n] = rest as u8;
    n += 1;
    buf.resize(end + n - 1, 0);
    buf.copy_within(at + 1..end, at + n);
    buf[at..at + n].copy_from_slice(&prefix[..n]);
}

/// A timestamp, gathered on the stack (its key, its one-byte length and its body: 25 bytes at
/// most) and appended in one copy: a cart has six, and pushing theirs a byte at a time (each
/// push checking the buffer's capacity) cost more than the rest of the cart.
fn timestamp(buf: &mut Vec<u8>, field: u32, value: &Option<Timestamp>) {
    let Some(Timestamp { seconds, nanos }) = value else {
        return;
    };
    let mut out = [0u8; 32];
    let mut len = 0;
    put(&mut out, &mut len, u64::from(field << 3 | LENGTH_DELIMITED));
    let at = len;
    len += 1;
    if *seconds != 0 {
        put(&mut out, &mut len, u64::from(1 << 3 | VARINT));
        put(&mut out, &mut len, *seconds as u64);
    }
    if *nanos != 0 {
        put(&mut out, &mut len, u64::from(2 << 3 | VARINT));
        // int32: sign-extended, as prost writes it.
        put(&mut out, &mut len, i64::from(*nanos) as u64);
    }
    // The body is at most 22 bytes: its length is one byte.
    out[at] = (len - at - 1) as u8;
    buf.extend_from_slice(&out[..len]);
}

/// A varint into `out` at `len`.
#[inline]
fn put(out: &mut [u8; 32], len: &mut usize, mut value: u64) {
    while value >= 0x80 {
        out[*len] = value as u8 | 0x80;
        *len += 1;
        value >>= 7;
    }
    out[*len] = value as u8;
    *len += 1;
}

fn string_map(buf: &mut Vec<u8>, field: u32, map: &BTreeMap<String, String>) {
    for (k, v) in map {
        nested(buf, field, |buf| {
            string(buf, 1, k);
            string(buf, 2, v);
        });
    }
}

fn cart(buf: &mut Vec<u8>, cart: &pb::Cart) {
    // Every field named: one added to the proto does not compile until it is written here.
    let pb::Cart {
        id,
        customer_id,
        session_id,
        channel,
        currency,
        locale,
        status,
        items,
        item_count,
        unique_item_count,
        subtotal,
        discount_amount,
        total,
        applied_coupons,
        metadata,
        created_at,
        updated_at,
        last_activity_at,
        expires_at,
        cleared_at,
        deleted_at,
        clear_reason,
        order_number,
        version,
        hmac,
        frozen_at,
        freeze_reason,
        merged_into,
    } = cart;
    string(buf, 1, id);
    string(buf, 2, customer_id);
    string(buf, 3, session_id);
    string(buf, 4, channel);
    string(buf, 5, currency);
    string(buf, 6, locale);
    int64(buf, 7, i64::from(*status));
    for item in items {
        nested(buf, 8, |buf| line_item(buf, item));
    }
    int64(buf, 9, *item_count);
    int64(buf, 10, *unique_item_count);
    int64(buf, 11, *subtotal);
    int64(buf, 12, *discount_amount);
    int64(buf, 13, *total);
    for coupon in applied_coupons {
        let pb::Coupon { code, amount } = coupon;
        nested(buf, 14, |buf| {
            string(buf, 1, code);
            int64(buf, 2, *amount);
        });
    }
    string_map(buf, 15, metadata);
    timestamp(buf, 16, created_at);
    timestamp(buf, 17, updated_at);
    timestamp(buf, 18, last_activity_at);
    timestamp(buf, 19, expires_at);
    timestamp(buf, 20, cleared_at);
    timestamp(buf, 21, deleted_at);
    string(buf, 22, clear_reason);
    string(buf, 23, order_number);
    int64(buf, 24, *version);
    string(buf, 25, hmac);
    timestamp(buf, 26, frozen_at);
    string(buf, 27, freeze_reason);
    string(buf, 28, merged_into);
}

fn line_item(buf: &mut Vec<u8>, item: &pb::LineItem) {
    let pb::LineItem {
        line_id,
        sku,
        product_id,
        title,
        quantity,
        unit_price,
        total_price,
        attributes,
        added_at,
        updated_at,
    } = item;
    string(buf, 1, line_id);
    string(buf, 2, sku);
    string(buf, 3, product_id);
    string(buf, 4, title);
    int64(buf, 5, *quantity);
    int64(buf, 6, *unit_price);
    int64(buf, 7, *total_price);
    string_map(buf, 8, attributes);
    timestamp(buf, 9, added_at);
    timestamp(buf, 10, updated_at);
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos })
    }

    /// A cart with every field set, lines and texts of `size` bytes (past 127 and 16383, a
    /// length takes two and three bytes), and negative numbers.
    fn full(lines: usize, size: usize) -> pb::Cart {
        let text = |c: char| c.to_string().repeat(size);
        pb::Cart {
            id: "cart-1".into(),
            customer_id: text('c'),
            session_id: "s".into(),
            channel: "web".into(),
            currency: "USD".into(),
            locale: "fr-FR".into(),
            status: pb::CartStatus::Deleted as i32,
            items: (0..lines)
                .map(|n| pb::LineItem {
                    line_id: format!("line-{n}"),
                    sku: format!("sku-{n}"),
                    product_id: "p".into(),
                    title: text('t'),
                    quantity: n as i64 + 1,
                    unit_price: -5,
                    total_price: i64::MAX,
                    attributes: [("color".into(), "red".into()), (String::new(), "v".into())]
                        .into(),
                    added_at: ts(1_790_000_000, 1),
                    updated_at: ts(0, 0),
                })
                .collect(),
            item_count: 3,
            unique_item_count: 2,
            subtotal: 1_000,
            discount_amount: -1,
            total: i64::MIN,
            applied_coupons: vec![
                pb::Coupon {
                    code: "SAVE".into(),
                    amount: 100,
                },
                pb::Coupon::default(),
            ],
            metadata: [("k".into(), String::new()), ("x".into(), text('m'))].into(),
            created_at: ts(1_790_000_000, 123_000_000),
            updated_at: ts(-1, -1),
            last_activity_at: ts(i64::MAX, i32::MAX),
            expires_at: ts(1, 0),
            cleared_at: ts(0, 5),
            deleted_at: ts(2, 2),
            clear_reason: text('r'),
            order_number: "o-1".into(),
            version: 300,
            hmac: "h".repeat(44),
            frozen_at: ts(3, 3),
            freeze_reason: "f".into(),
            merged_into: "m".into(),
        }
    }

    fn ours(message: &impl Encode) -> Vec<u8> {
        let mut buf = Vec::new();
        message.encode_into(&mut buf);
        buf
    }

    #[test]
    fn carts_encode_to_prosts_bytes() {
        let mut carts = vec![pb::Cart::default()];
        for (lines, size) in [(0, 0), (1, 1), (3, 100), (2, 200), (1, 20_000)] {
            carts.push(full(lines, size));
        }
        for cart in carts {
            assert_eq!(ours(&cart), cart.encode_to_vec());
            let cleared = pb::ClearResponse {
                cart: Some(Box::new(cart.clone())),
                items_cleared: 7,
            };
            assert_eq!(ours(&cleared), cleared.encode_to_vec());
            let deleted = pb::DeleteResponse {
                cart: Some(Box::new(cart.clone())),
            };
            assert_eq!(ours(&deleted), deleted.encode_to_vec());
            let merged = pb::MergeResponse {
                cart: Some(Box::new(cart)),
                source_cart_id: "guest".into(),
                lines_merged: -2,
            };
            assert_eq!(ours(&merged), merged.encode_to_vec());
        }
        for empty in [
            pb::ClearResponse::default(),
            pb::ClearResponse {
                cart: Some(Box::default()),
                items_cleared: 0,
            },
        ] {
            assert_eq!(ours(&empty), empty.encode_to_vec());
        }
        assert!(ours(&pb::DeleteResponse::default()).is_empty());
        assert_eq!(ours(&pb::MergeResponse::default()), Vec::<u8>::new());
    }

    /// Timestamps whose seconds and nanos take every varint length (1 to 10 bytes), as prost
    /// writes them.
    #[test]
    fn timestamps_of_every_length_encode_to_prosts_bytes() {
        let mut values: Vec<i64> = vec![0, 1, -1, i64::MIN, i64::MAX];
        for bits in (7..63).step_by(7) {
            values.extend([(1i64 << bits) - 1, 1i64 << bits]);
        }
        for &seconds in &values {
            for nanos in [0, 1, 127, 128, 999_999_999, -1, i32::MIN] {
                let cart = pb::Cart {
                    created_at: ts(seconds, nanos),
                    expires_at: ts(nanos.into(), i32::try_from(seconds).unwrap_or(7)),
                    ..Default::default()
                };
                assert_eq!(ours(&cart), cart.encode_to_vec(), "{seconds} {nanos}");
            }
        }
    }
}
