//! A compact JSON writer for the dialects' typed bodies: the bytes `serde_json::to_string`
//! writes, in fewer instructions.
//!
//! serde_json runs every string through its escaper byte by byte (a struct's keys too), writes
//! each quote and comma through the `io::Write` machinery and grows its buffer from 128 bytes.
//! A body of ten lines is a few hundred short strings that need no escaping, so this writer
//! checks a string for the few bytes JSON escapes and copies it whole when there are none
//! (the rare string that needs escaping is written by serde_json itself, so the escapes are
//! its own), writes a struct's field names as they are (they are Rust names or `rename`s,
//! never text that needs escaping), writes integers from a digit table, and writes into a
//! buffer reserved for the whole body. Every step is inlined into the body's serializer, so a
//! field name is a copy of known length.

use serde::ser::{self, Impossible, Serialize};

/// The error of a body that cannot be JSON (a map key that is not text or a number).
pub type Error = serde_json::Error;

/// The compact JSON of `value`, written into a buffer of `capacity` bytes to begin with.
pub fn to_string<T: Serialize + ?Sized>(value: &T, capacity: usize) -> Result<String, Error> {
    let mut writer = Writer {
        out: Vec::with_capacity(capacity),
    };
    value.serialize(&mut writer)?;
    debug_assert!(std::str::from_utf8(&writer.out).is_ok());
    // SAFETY: every byte written is ASCII punctuation or digits, a `&str`'s bytes, or what
    // serde_json wrote for a `&str` or a number (UTF-8), so the buffer is UTF-8 (as
    // `serde_json::to_string` relies on for its own buffer).
    Ok(unsafe { String::from_utf8_unchecked(writer.out) })
}

/// The output of one body.
struct Writer {
    out: Vec<u8>,
}

/// Whether JSON must escape a byte of `bytes`: a quote, a backslash or a control character.
///
/// Eight bytes at a time, as one word: a word has a byte below `n` (`n` ≤ 128) exactly when
/// `(w - n·0x01…) & !w & 0x80…` is not zero, and a byte equal to `c` when `w ^ c·0x01…` has
/// a byte below 1. The words may overlap (a byte checked twice changes nothing), so a short
/// string is one or two loads and no copy.
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let escapes = |w: u64| {
        below(w, 0x20) | below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * 0x5c), 1)
    };
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| {
        u64::from(u32::from_le_bytes(
            bytes[at..at + 4].try_into().expect("4 bytes"),
        ))
    };
    let n = bytes.len();
    let found = match n {
        0 => 0,
        // Each byte, with spaces (which need no escaping) in the other places.
        1..4 => escapes(
            u64::from(bytes[0])
                | u64::from(bytes[n / 2]) << 8
                | u64::from(bytes[n - 1]) << 16
                | 0x2020_2020_2000_0000,
        ),
        4..8 => escapes(half(0) | half(n - 4) << 32),
        _ => {
            let mut found = escapes(word(n - 8));
            let mut at = 0;
            while at + 8 < n {
                found |= escapes(word(at));
                at += 8;
            }
            found
        }
    };
    found != 0
}

/// Two ASCII digits for each of 0..100.
pub(super) const DIGITS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

impl Writer {
    #[inline(always)]
    fn str(&mut self, s: &str) -> Result<(), Error> {
        if needs_escape(s.as_bytes()) {
            return serde_json::to_writer(&mut self.out, s);
        }
        self.out.reserve(s.len() + 2);
        self.out.push(b'"');
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(b'"');
        Ok(())
    }

    /// A struct's field name and its colon. Field names are Rust names or `rename`s, plain
    /// text, so they are written as they are (debug builds check that they need no escaping).
    #[inline(always)]
    fn field_name(&mut self, name: &'static str) {
        debug_assert!(!needs_escape(name.as_bytes()), "field name {name:?}");
        const ROOM: usize = 64;
        let n = name.len();
        if n + 3 > ROOM {
            self.out.reserve(n + 3);
            self.out.push(b'"');
            self.out.extend_from_slice(name.as_bytes());
            self.out.extend_from_slice(b"\":");
            return;
        }
        // `"name":` assembled on the stack: the name's length is a constant once inlined, so
        // this is one copy of known length into the output instead of three.
        let mut quoted = [0u8; ROOM];
        quoted[0] = b'"';
        quoted[1..1 + n].copy_from_slice(name.as_bytes());
        quoted[1 + n..3 + n].copy_from_slice(b"\":");
        self.out.extend_from_slice(&quoted[..n + 3]);
    }

    fn u128(&mut self, mut n: u128) {
        if let Ok(n) = u64::try_from(n) {
            return self.u64(n);
        }
        let mut buf = [0u8; 39];
        let mut at = buf.len();
        while n > 0 {
            at -= 1;
            buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.out.extend_from_slice(&buf[at..]);
    }

    #[inline(always)]
    fn u64(&mut self, mut n: u64) {
        // The bodies' counts, flags and zeros: one or two digits, without the buffer.
        if n < 10 {
            self.out.push(b'0' + n as u8);
            return;
        }
        if n < 100 {
            let d = n as usize * 2;
            self.out.extend_from_slice(&DIGITS[d..d + 2]);
            return;
        }
        let mut buf = [0u8; 20];
        let mut at = buf.len();
        while n >= 100 {
            let d = (n % 100) as usize * 2;
            n /= 100;
            at -= 2;
            buf[at..at + 2].copy_from_slice(&DIGITS[d..d + 2]);
        }
        if n >= 10 {
            let d = n as usize * 2;
            at -= 2;
            buf[at..at + 2].copy_from_slice(&DIGITS[d..d + 2]);
        } else {
            at -= 1;
            buf[at] = b'0' + n as u8;
        }
        self.out.extend_from_slice(&buf[at..]);
    }

    #[inline(always)]
    fn i64(&mut self, n: i64) {
        if n < 0 {
            self.out.push(b'-');
        }
        self.u64(n.unsigned_abs());
    }

    fn i128(&mut self, n: i128) {
        if n < 0 {
            self.out.push(b'-');
        }
        self.u128(n.unsigned_abs());
    }

    /// A value that only serde_json knows how to write (a float), written by it.
    fn delegate<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        serde_json::to_writer(&mut self.out, value)
    }

    /// Opens `{"variant":` of an externally tagged enum's variant.
    fn open_variant(&mut self, variant: &str) -> Result<(), Error> {
        self.out.push(b'{');
        self.str(variant)?;
        self.out.push(b':');
        Ok(())
    }
}

/// An array or object being written: whether an element was written yet, and what closes the
/// variant object around it, if any.
pub struct Compound<'a> {
    writer: &'a mut Writer,
    first: bool,
    in_variant: bool,
}

impl<'a> Compound<'a> {
    fn open(writer: &'a mut Writer, open: u8, in_variant: bool) -> Self {
        writer.out.push(open);
        Self {
            writer,
            first: true,
            in_variant,
        }
    }

    #[inline(always)]
    fn separate(&mut self) {
        if !self.first {
            self.writer.out.push(b',');
        }
        self.first = false;
    }

    fn close(self, close: u8) -> Result<(), Error> {
        self.writer.out.push(close);
        if self.in_variant {
            self.writer.out.push(b'}');
        }
        Ok(())
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.separate();
        value.serialize(&mut *self.writer)
    }

    #[inline(always)]
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        self.separate();
        self.writer.field_name(key);
        value.serialize(&mut *self.writer)
    }
}

impl<'a> ser::Serializer for &'a mut Writer {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    #[inline(always)]
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    #[inline(always)]
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.i64(v.into());
        Ok(())
    }

    #[inline(always)]
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.i64(v.into());
        Ok(())
    }

    #[inline(always)]
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.i64(v.into());
        Ok(())
    }

    #[inline(always)]
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.i64(v);
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.i128(v);
        Ok(())
    }

    #[inline(always)]
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.u64(v.into());
        Ok(())
    }

    #[inline(always)]
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.u64(v.into());
        Ok(())
    }

    #[inline(always)]
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.u64(v.into());
        Ok(())
    }

    #[inline(always)]
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.u64(v);
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.u128(v);
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.delegate(&v)
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.delegate(&v)
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.str(v.encode_utf8(&mut [0; 4]))
    }

    #[inline(always)]
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.str(v)
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        use ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for byte in v {
            seq.serialize_element(byte)?;
        }
        seq.end()
    }

    #[inline(always)]
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }

    #[inline(always)]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    #[inline(always)]
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    #[inline(always)]
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }

    #[inline(always)]
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.str(variant)
    }

    #[inline(always)]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.open_variant(variant)?;
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(Compound::open(self, b'[', false))
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Error> {
        self.open_variant(variant)?;
        Ok(Compound::open(self, b'[', true))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(Compound::open(self, b'{', false))
    }

    #[inline(always)]
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Error> {
        Ok(Compound::open(self, b'{', false))
    }

    #[inline(always)]
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Error> {
        self.open_variant(variant)?;
        Ok(Compound::open(self, b'{', true))
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Error;

    #[inline(always)]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.close(b']')
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Error;

    #[inline(always)]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.close(b']')
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;

    #[inline(always)]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.close(b']')
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;

    #[inline(always)]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.close(b']')
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.separate();
        key.serialize(MapKey(&mut *self.writer))?;
        self.writer.out.push(b':');
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.writer)
    }

    fn end(self) -> Result<(), Error> {
        self.close(b'}')
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;

    #[inline(always)]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }

    fn end(self) -> Result<(), Error> {
        self.close(b'}')
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;

    #[inline(always)]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }

    fn end(self) -> Result<(), Error> {
        self.close(b'}')
    }
}

/// A map key: JSON keys are strings, so text is written as itself and an integer or a bool
/// in quotes (as serde_json does); any other key is an error.
struct MapKey<'a>(&'a mut Writer);

fn key_must_be_text() -> Error {
    ser::Error::custom("a map key must be text, a number or a bool")
}

impl MapKey<'_> {
    fn quoted(self, write: impl FnOnce(&mut Writer)) -> Result<(), Error> {
        self.0.out.push(b'"');
        write(self.0);
        self.0.out.push(b'"');
        Ok(())
    }
}

impl ser::Serializer for MapKey<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.0.str(v)
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.0.str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.0.str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.quoted(|w| w.out.extend_from_slice(if v { b"true" } else { b"false" }))
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.quoted(|w| w.i64(v.into()))
    }

    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.quoted(|w| w.i64(v.into()))
    }

    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.quoted(|w| w.i64(v.into()))
    }

    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.quoted(|w| w.i64(v))
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.quoted(|w| w.i128(v))
    }

    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.quoted(|w| w.u64(v.into()))
    }

    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.quoted(|w| w.u64(v.into()))
    }

    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.quoted(|w| w.u64(v.into()))
    }

    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.quoted(|w| w.u64(v))
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.quoted(|w| w.u128(v))
    }

    fn serialize_f32(self, _: f32) -> Result<(), Error> {
        Err(key_must_be_text())
    }

    fn serialize_f64(self, _: f64) -> Result<(), Error> {
        Err(key_must_be_text())
    }

    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        Err(key_must_be_text())
    }

    fn serialize_none(self) -> Result<(), Error> {
        Err(key_must_be_text())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Error> {
        Err(key_must_be_text())
    }

    fn serialize_unit(self) -> Result<(), Error> {
        Err(key_must_be_text())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        Err(key_must_be_text())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(key_must_be_text())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_must_be_text())
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_must_be_text())
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_must_be_text())
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_must_be_text())
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_must_be_text())
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(key_must_be_text())
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_must_be_text())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;
    use serde_json::json;

    use super::to_string;

    /// What serde_json writes.
    fn same_as_serde_json<T: Serialize + ?Sized>(value: &T) {
        assert_eq!(
            to_string(value, 0).unwrap(),
            serde_json::to_string(value).unwrap()
        );
    }

    #[derive(Serialize)]
    enum Shape {
        Unit,
        Newtype(i32),
        Tuple(u8, &'static str),
        Struct { a: Option<bool>, b: () },
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Empty {}

    #[derive(Serialize)]
    struct Wrapper(&'static str);

    #[derive(Serialize)]
    struct Pair(i8, char);

    #[test]
    fn writes_what_serde_json_writes() {
        same_as_serde_json(&json!({
            "plain": "text",
            "escapes": "\"q\" \\ \t\n\r\u{1}\u{1f} é 🛒 </script> \u{7f}",
            "long": "a".repeat(15) + "\"" + &"b".repeat(40) + "\\",
            "ints": [0, 9, 10, 99, 100, 12345, -1, -100, i64::MIN, i64::MAX, u64::MAX],
            "floats": [0.5, -1.25e300, 1.0],
            "nested": { "": [], "b": {}, "c": [null, true, false] },
        }));
        for n in [
            0u64,
            5,
            10,
            42,
            99,
            100,
            101,
            999,
            1_000,
            65_535,
            1 << 53,
            u64::MAX,
        ] {
            same_as_serde_json(&n);
            same_as_serde_json(&(n as i64));
            same_as_serde_json(&-(n as i64));
        }
        same_as_serde_json(&[u128::MAX, 0, u128::from(u64::MAX) + 1]);
        same_as_serde_json(&[i128::MIN, -1, i128::MAX]);
        same_as_serde_json(&(1u8, 2u16, 3u32, -4i8, -5i16, -6i32, 7.5f32, 'x', '"'));
        same_as_serde_json(&[f64::NAN, f64::INFINITY]);
        same_as_serde_json(&[
            Shape::Unit,
            Shape::Newtype(-3),
            Shape::Tuple(1, "x"),
            Shape::Struct { a: None, b: () },
            Shape::Struct {
                a: Some(true),
                b: (),
            },
        ]);
        same_as_serde_json(&(Unit, Empty {}, Wrapper("w"), Pair(1, 'é'), [(); 0]));
        same_as_serde_json(&Some(Some(3)));
        same_as_serde_json(&serde_bytes_like());
        let numbered: BTreeMap<i32, &str> = [(-1, "a"), (2, "b")].into();
        same_as_serde_json(&numbered);
        let flags: BTreeMap<bool, u8> = [(false, 0), (true, 1)].into();
        same_as_serde_json(&flags);
        let chars: BTreeMap<char, u8> = [('"', 0), ('k', 1)].into();
        same_as_serde_json(&chars);
    }

    /// Bytes, as serde writes a `&[u8]` through `serialize_bytes`.
    fn serde_bytes_like() -> impl Serialize {
        struct Bytes;
        impl Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&[0, 1, 255])
            }
        }
        Bytes
    }

    /// A field name that needs escaping is a programming error, caught by debug builds.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "field name")]
    fn field_names_that_need_escaping_are_refused_in_debug_builds() {
        #[derive(Serialize)]
        struct Quoted {
            #[serde(rename = "a\"b")]
            a: u8,
        }
        let _ = to_string(&Quoted { a: 1 }, 0);
    }

    #[test]
    fn keys_that_are_not_text_are_refused() {
        let keys: BTreeMap<Vec<u8>, u8> = [(vec![1], 0)].into();
        assert!(to_string(&keys, 0).is_err());
        assert!(serde_json::to_string(&keys).is_err());
    }

    #[test]
    fn every_byte_that_needs_escaping_is_found_in_any_position() {
        for special in (0u8..0x20).chain([b'"', b'\\']) {
            for len in [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 64] {
                for at in 0..len {
                    let mut text = vec![b'a'; len];
                    text[at] = special;
                    let text = String::from_utf8(text).unwrap();
                    same_as_serde_json(&text);
                }
            }
        }
    }
}
