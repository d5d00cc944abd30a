//! Building blocks of the dialects' response bodies: typed `Serialize` values that borrow from
//! the cart, so a body is written in one pass into one buffer (no `serde_json::Value` tree, no
//! string per timestamp).
//!
//! The JSON dialects' bodies list every object's keys in byte order (what a
//! `serde_json::Value` object, a sorted map, prints): each body struct declares its fields in
//! that order, and each dialect's tests compare its bytes with the tree it replaced. The
//! bodies are written by [`super::json`] (serde_json's bytes, in fewer instructions) and
//! pinned, per dialect, to the bytes they had before it.

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::json::DIGITS;
use crate::domain::UnixMillis;

/// The last instant RFC 3339 writes with a four-digit year (9999-12-31T23:59:59.999Z).
const LAST_MILLIS: UnixMillis = 253_402_300_799_999;

/// A timestamp as RFC 3339 in UTC, with seconds (`2024-06-20T17:30:00Z`) or milliseconds
/// (`2021-04-21T18:51:24.975Z`), written from a fixed buffer (what `humantime` writes, tested
/// so). Times before the epoch are written as the epoch, and times past year 9999 as its last
/// millisecond (no cart lives that long; RFC 3339 has four-digit years).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339 {
    millis: UnixMillis,
    with_millis: bool,
}

impl Rfc3339 {
    pub fn seconds(millis: UnixMillis) -> Self {
        Self {
            millis: millis.clamp(0, LAST_MILLIS) / 1000 * 1000,
            with_millis: false,
        }
    }

    pub fn millis(millis: UnixMillis) -> Self {
        Self {
            millis: millis.clamp(0, LAST_MILLIS),
            with_millis: true,
        }
    }
}

impl Rfc3339 {
    /// The text, in a fixed buffer: `YYYY-MM-DDTHH:MM:SS.mmmZ` or `YYYY-MM-DDTHH:MM:SSZ`.
    fn write(self, buf: &mut [u8; 24]) -> &str {
        const DAY: u64 = 86_400_000;
        // Clamped to 0..=LAST_MILLIS on construction: unsigned arithmetic is exact and cheaper,
        // and a day number (below 3 million) and a time of day fit 32 bits.
        let millis = self.millis as u64;
        let (days, in_day) = ((millis / DAY) as u32, (millis % DAY) as u32);
        // Days since the epoch → civil date (proleptic Gregorian; C. Neri and L. Schneider,
        // "Euclidean affine functions and their application to calendar algorithms", 2022):
        // the day count is shifted by whole 400-year cycles so that all of it is unsigned.
        const SHIFT: u32 = 82;
        let n = days + 719_468 + 146_097 * SHIFT;
        let n1 = 4 * n + 3;
        let century = n1 / 146_097;
        let n2 = (n1 % 146_097) | 3;
        let p2 = 2_939_745 * u64::from(n2);
        let year_of_century = (p2 >> 32) as u32;
        let day_of_year = (p2 as u32) / 2_939_745 / 4;
        let n3 = 2_141 * day_of_year + 197_913;
        let after_february = day_of_year >= 306;
        let year = 100 * century + year_of_century - 400 * SHIFT + u32::from(after_february);
        let month = if after_february {
            (n3 >> 16) - 12
        } else {
            n3 >> 16
        };
        let day = (n3 & 0xffff) / 2_141 + 1;
        *buf = *b"0000-00-00T00:00:00.000Z";
        let mut two = |at: usize, value: u32| {
            let d = value as usize * 2;
            buf[at..at + 2].copy_from_slice(&DIGITS[d..d + 2]);
        };
        two(0, year / 100);
        two(2, year % 100);
        two(5, month);
        two(8, day);
        let seconds = in_day / 1_000;
        two(11, seconds / 3_600);
        two(14, seconds / 60 % 60);
        two(17, seconds % 60);
        let len = if self.with_millis {
            let millis = in_day % 1_000;
            two(21, millis % 100);
            buf[20] = b'0' + (millis / 100) as u8;
            24
        } else {
            buf[19] = b'Z';
            20
        };
        let text = &buf[..len];
        debug_assert!(text.is_ascii());
        // SAFETY: the template and every digit written over it are ASCII.
        unsafe { std::str::from_utf8_unchecked(text) }
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.write(&mut [0; 24]))
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.write(&mut [0; 24]))
    }
}

/// A list made from each element of a slice (with its index), serialized as it is made.
pub struct Each<'a, T, F>(&'a [T], F);

/// The list of `make(index, element)` for each element of `items`.
pub fn each<'a, T, S: Serialize, F: Fn(usize, &'a T) -> S>(
    items: &'a [T],
    make: F,
) -> Each<'a, T, F> {
    Each(items, make)
}

impl<'a, T, S, F> Serialize for Each<'a, T, F>
where
    S: Serialize,
    F: Fn(usize, &'a T) -> S,
{
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        serializer.collect_seq(self.0.iter().enumerate().map(|(i, t)| (self.1)(i, t)))
    }
}

/// A map as a list of `{"name", "value"}` objects, in key order.
pub struct NameValues<'a>(pub &'a BTreeMap<String, String>);

impl Serialize for NameValues<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct NameValue<'a>(&'a str, &'a str);
        impl Serialize for NameValue<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut object = serializer.serialize_struct("NameValue", 2)?;
                object.serialize_field("name", self.0)?;
                object.serialize_field("value", self.1)?;
                object.end()
            }
        }
        serializer.collect_seq(self.0.iter().map(|(k, v)| NameValue(k, v)))
    }
}

/// `[]`.
pub const EMPTY_LIST: [(); 0] = [];

/// `{}`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct EmptyObject {}

/// `null`.
pub const NULL: () = ();

/// The compact JSON of a small body (an error document).
pub fn json(body: &impl Serialize) -> String {
    json_sized(body, 128)
}

/// The compact JSON of a body of about `capacity` bytes (the buffer grows if it is more).
pub fn json_sized(body: &impl Serialize, capacity: usize) -> String {
    super::json::to_string(body, capacity).expect("a body of plain values always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_rfc3339() {
        let t = 1_618_771_884_975; // 2021-04-18T18:51:24.975Z
        assert_eq!(Rfc3339::millis(t).to_string(), "2021-04-18T18:51:24.975Z");
        assert_eq!(Rfc3339::seconds(t).to_string(), "2021-04-18T18:51:24Z");
        assert_eq!(Rfc3339::millis(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Rfc3339::seconds(-5).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Rfc3339::millis(i64::MAX).to_string(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(json(&Rfc3339::seconds(t)), "\"2021-04-18T18:51:24Z\"");
    }

    #[test]
    fn timestamps_are_what_humantime_writes() {
        use std::time::{Duration, UNIX_EPOCH};
        let day = 86_400_000;
        let mut samples: Vec<i64> = vec![
            0,
            999,
            day - 1,
            951_782_400_000,   // 2000-02-29
            4_107_542_399_999, // 2100-02-28T23:59:59.999
            4_107_542_400_000, // 2100-03-01
            LAST_MILLIS,
        ];
        // Every day of four centuries, at a time of day that moves.
        samples.extend((0..146_097 * 4).map(|d| d * day + (d * 7_919_993) % day));
        for t in samples {
            let time = UNIX_EPOCH + Duration::from_millis(t as u64);
            let millis = humantime::format_rfc3339_millis(time).to_string();
            let seconds = humantime::format_rfc3339_seconds(time).to_string();
            assert_eq!(Rfc3339::millis(t).to_string(), millis);
            assert_eq!(Rfc3339::seconds(t).to_string(), seconds);
            assert_eq!(json(&Rfc3339::millis(t)), format!("\"{millis}\""));
        }
    }

    #[test]
    fn helpers_write_what_a_json_tree_would() {
        let map: BTreeMap<String, String> =
            [("b".into(), "2".into()), ("a".into(), "\"1\"".into())].into();
        assert_eq!(
            json(&NameValues(&map)),
            serde_json::json!([{"name": "a", "value": "\"1\""}, {"name": "b", "value": "2"}])
                .to_string()
        );
        assert_eq!(json(&EMPTY_LIST), "[]");
        assert_eq!(json(&EmptyObject {}), "{}");
        assert_eq!(json(&NULL), "null");
        assert_eq!(json(&each(&[1, 2], |i, n| i as i32 * 10 + n)), "[1,12]");
    }
}

/// Carts for the dialects' encoder tests and benches.
#[doc(hidden)]
pub mod sample {
    use crate::auth::CartTokens;
    use crate::core::CartView;
    use crate::domain::{
        CartHeader, CartId, CartKey, CartPolicy, CartState, CartStatus, Coupon, CouponCode,
        Currency, Line, LineId, Sku, TenantId,
    };

    /// A cart of `lines` lines, a coupon and metadata; with `awkward`, texts that need escaping
    /// (quotes, backslashes, control characters, non-ASCII, markup) and a deleted status.
    pub fn cart(lines: usize, awkward: bool) -> CartView {
        let text = |plain: String| {
            if awkward {
                format!("{plain} \"q\" \\ \t\u{1}<&> é 🛒")
            } else {
                plain
            }
        };
        let t0 = 1_700_000_000_123;
        let lines = (0..lines)
            .map(|i| {
                let sku = Sku::parse(&format!("SKU-{i:04}"), 64).unwrap();
                Line {
                    line_id: LineId::for_sku(&sku),
                    sku,
                    // Numeric product ids become numbers in XM's itemId.
                    product_id: if i % 2 == 0 {
                        format!("{}", 1_538_910 + i)
                    } else {
                        text(format!("prod-{i}"))
                    },
                    title: text(format!("Product number {i}")),
                    quantity: 2 + i as u32,
                    unit_price: 1_250 + i as i64,
                    attributes: [
                        ("color".to_owned(), text("blue".into())),
                        ("size".to_owned(), "M".to_owned()),
                    ]
                    .into(),
                    added_at: t0 + i as i64,
                    updated_at: t0 + 1_000 * i as i64,
                    position: i as i64,
                    bytes: 0,
                }
            })
            .collect();
        let state = CartState {
            header: CartHeader {
                customer_id: text("cust_abc123".into()),
                session_id: text("sess_xyz789".into()),
                channel: if awkward { String::new() } else { "web".into() },
                currency: Currency::parse("USD").unwrap(),
                locale: text("en-US".into()),
                metadata: [
                    ("campaign".to_owned(), text("spring".into())),
                    // Keys a dialect also writes itself.
                    ("clear_reason".to_owned(), "user's".to_owned()),
                    ("zz".to_owned(), "last".to_owned()),
                ]
                .into(),
            },
            status: if awkward {
                CartStatus::Deleted
            } else {
                CartStatus::Active
            },
            lines,
            coupons: vec![Coupon {
                code: CouponCode::parse("SPRING10").unwrap(),
                amount: 500,
                position: 0,
            }],
            created_at: t0,
            updated_at: t0 + 5_000,
            last_activity_at: t0 + 6_000,
            cleared_at: awkward.then_some(t0 + 7_000),
            clear_reason: text("customer_requested".into()),
            deleted_at: awkward.then_some(t0 + 8_000),
            order_number: if awkward {
                "1234-1234-12345".into()
            } else {
                String::new()
            },
            version: 7,
            next_position: 11,
            id_generated: true,
            frozen_at: None,
            freeze_reason: String::new(),
            frozen_until: None,
            merged_into: String::new(),
            merge_key: String::new(),
        };
        let key = CartKey {
            tenant: TenantId::default_tenant(),
            cart_id: CartId::parse("0123456789abcdef01234567").unwrap(),
        };
        CartView::new(
            key,
            Box::new(state),
            &CartPolicy::default(),
            &CartTokens::new(b"sample secret"),
        )
    }
}

/// The bodies of the sample carts as each dialect wrote them when they were pinned: an encoder
/// may get faster, its bytes may not change.
#[cfg(test)]
mod pinned {
    use super::sample;
    use crate::core::CartView;
    use crate::http::{amazon, fabric_xm, stateset, vtex, zaui};

    /// The sample carts (lines, awkward) of each JSON dialect's pinned file, one body a line.
    const CARTS: [(usize, bool); 4] = [(0, false), (1, true), (10, false), (10, true)];

    fn stateset_body(cart: &CartView) -> String {
        stateset::cart_object(cart, 3)
    }

    /// A dialect's name, its pinned bodies and its encoder.
    type Pinned = (&'static str, &'static str, fn(&CartView) -> String);

    fn json_dialects() -> [Pinned; 3] {
        [
            (
                "fabric_xm",
                include_str!("pinned/fabric_xm.jsonl"),
                fabric_xm::deleted_cart,
            ),
            (
                "stateset",
                include_str!("pinned/stateset.jsonl"),
                stateset_body,
            ),
            ("vtex", include_str!("pinned/vtex.jsonl"), vtex::order_form),
        ]
    }

    fn amazon_body() -> String {
        let arguments = amazon::parse_query(Some(
            "Service=AWSECommerceService&AWSAccessKeyId=AKIA&Operation=CartClear&CartId=0123456789abcdef01234567&HMAC=ab%2Bcd%2F%3D",
        ))
        .unwrap();
        amazon::response_xml(
            &arguments,
            "Mozilla/5.0 <&>",
            "c0ffee-request",
            0.001,
            ("0123456789abcdef01234567", "ab+cd/="),
            &Ok(()),
        )
    }

    #[test]
    fn json_bodies_are_the_pinned_bytes() {
        for (dialect, pinned, encode) in json_dialects() {
            let pinned: Vec<&str> = pinned.lines().collect();
            assert_eq!(pinned.len(), CARTS.len(), "{dialect}");
            for (&(lines, awkward), pinned) in CARTS.iter().zip(pinned) {
                assert_eq!(
                    encode(&sample::cart(lines, awkward)),
                    pinned,
                    "{dialect}: {lines} lines, awkward: {awkward}"
                );
            }
        }
    }

    #[test]
    fn xml_bodies_are_the_pinned_bytes() {
        assert_eq!(
            zaui::envelope("zapiRemoveCartSession", &Ok(())),
            include_str!("pinned/zaui.xml")
        );
        assert_eq!(amazon_body(), include_str!("pinned/amazon.xml"));
    }
}
