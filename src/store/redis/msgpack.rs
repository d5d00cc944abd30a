//! A reader of the msgpack that Redis's Lua `cmsgpack` writes: the script replies are one
//! bulk string of msgpack values, read here in place (borrowed strings, no value tree).
//!
//! Only what a cart value holds is read: nil, booleans, integers (and floats that hold one),
//! strings and binaries, and array lengths (their elements follow as further items).

/// One msgpack item; an array is its length, its elements are the next items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a [u8]),
    Array(usize),
    Map(usize),
}

/// Why the bytes are not the msgpack expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Whether every byte was read.
    pub fn is_done(&self) -> bool {
        self.at == self.bytes.len()
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.at.checked_add(n).ok_or(Malformed("length"))?;
        let slice = self.bytes.get(self.at..end).ok_or(Malformed("truncated"))?;
        self.at = end;
        Ok(slice)
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len(&mut self, width: usize) -> Result<usize, Malformed> {
        Ok(match width {
            1 => usize::from(self.be::<1>()?[0]),
            2 => usize::from(u16::from_be_bytes(self.be()?)),
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }

    #[inline]
    pub fn item(&mut self) -> Result<Item<'a>, Malformed> {
        let tag = self.be::<1>()?[0];
        Ok(match tag {
            0x00..=0x7f => Item::Int(i64::from(tag)),
            0x80..=0x8f => Item::Map(usize::from(tag & 0x0f)),
            0x90..=0x9f => Item::Array(usize::from(tag & 0x0f)),
            0xa0..=0xbf => Item::Str(self.take(usize::from(tag & 0x1f))?),
            0xc0 => Item::Nil,
            0xc2 => Item::Bool(false),
            0xc3 => Item::Bool(true),
            0xc4 | 0xd9 => {
                let n = self.len(1)?;
                Item::Str(self.take(n)?)
            }
            0xc5 | 0xda => {
                let n = self.len(2)?;
                Item::Str(self.take(n)?)
            }
            0xc6 | 0xdb => {
                let n = self.len(4)?;
                Item::Str(self.take(n)?)
            }
            0xca => Item::Float(f64::from(f32::from_be_bytes(self.be()?))),
            0xcb => Item::Float(f64::from_be_bytes(self.be()?)),
            0xcc => Item::Int(i64::from(self.be::<1>()?[0])),
            0xcd => Item::Int(i64::from(u16::from_be_bytes(self.be()?))),
            0xce => Item::Int(i64::from(u32::from_be_bytes(self.be()?))),
            0xcf => Item::Int(
                i64::try_from(u64::from_be_bytes(self.be()?)).map_err(|_| Malformed("u64"))?,
            ),
            0xd0 => Item::Int(i64::from(i8::from_be_bytes(self.be()?))),
            0xd1 => Item::Int(i64::from(i16::from_be_bytes(self.be()?))),
            0xd2 => Item::Int(i64::from(i32::from_be_bytes(self.be()?))),
            0xd3 => Item::Int(i64::from_be_bytes(self.be()?)),
            0xdc => Item::Array(self.len(2)?),
            0xdd => Item::Array(self.len(4)?),
            0xde => Item::Map(self.len(2)?),
            0xdf => Item::Map(self.len(4)?),
            0xe0..=0xff => Item::Int(i64::from(tag as i8)),
            _ => return Err(Malformed("unsupported type")),
        })
    }

    /// An integer (or a float holding one, as Lua numbers are doubles).
    pub fn int(&mut self) -> Result<i64, Malformed> {
        match self.item()? {
            Item::Int(i) => Ok(i),
            Item::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
            _ => Err(Malformed("expected an integer")),
        }
    }

    pub fn str(&mut self) -> Result<&'a str, Malformed> {
        match self.item()? {
            Item::Str(bytes) => utf8(bytes),
            _ => Err(Malformed("expected a string")),
        }
    }

    /// The length of an array.
    pub fn array(&mut self) -> Result<usize, Malformed> {
        match self.item()? {
            Item::Array(n) => Ok(n),
            _ => Err(Malformed("expected an array")),
        }
    }
}

/// The text of a msgpack string. A stored cart's strings are mostly a few ASCII bytes (a
/// status, a currency, a line id), for which `str::from_utf8`'s set-up costs more than a
/// check of each byte; longer ones go to it.
#[inline]
pub fn utf8(bytes: &[u8]) -> Result<&str, Malformed> {
    if bytes.len() <= 32 && bytes.iter().all(u8::is_ascii) {
        // SAFETY: every byte is ASCII, and ASCII is UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).map_err(|_| Malformed("utf-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_width_that_cmsgpack_writes() {
        // [1, -1, 200, 70000, 1764590000123, "ab", false, nil, true, 2.0]
        let mut bytes = vec![0x9a, 0x01, 0xff, 0xcc, 200, 0xce, 0, 1, 0x11, 0x70];
        bytes.push(0xcf);
        bytes.extend_from_slice(&1_764_590_000_123u64.to_be_bytes());
        bytes.extend_from_slice(&[0xa2, b'a', b'b', 0xc2, 0xc0, 0xc3, 0xcb]);
        bytes.extend_from_slice(&2.0f64.to_be_bytes());
        let mut r = Reader::new(&bytes);
        assert_eq!(r.array(), Ok(10));
        for expected in [1, -1, 200, 70000, 1_764_590_000_123] {
            assert_eq!(r.int(), Ok(expected));
        }
        assert_eq!(r.str(), Ok("ab"));
        assert_eq!(r.item(), Ok(Item::Bool(false)));
        assert_eq!(r.item(), Ok(Item::Nil));
        assert_eq!(r.item(), Ok(Item::Bool(true)));
        assert_eq!(r.int(), Ok(2));
        assert!(r.is_done());
        assert_eq!(utf8("é".as_bytes()), Ok("é"));
        assert!(utf8(&[b'a', 0xff]).is_err());
        assert!(
            utf8(
                &[b'a'; 40]
                    .iter()
                    .chain(&[0xc3])
                    .copied()
                    .collect::<Vec<_>>()
            )
            .is_err()
        );
        let long = [&[0xd9, 40][..], &[b'x'; 40]].concat();
        assert_eq!(Reader::new(&long).str().map(str::len), Ok(40));
    }

    #[test]
    fn truncated_or_foreign_bytes_are_malformed() {
        assert!(Reader::new(&[0xa3, b'a']).str().is_err());
        assert!(
            Reader::new(&[0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0])
                .int()
                .is_err()
        );
        assert!(Reader::new(&[0xc1]).item().is_err());
        assert!(Reader::new(&[]).item().is_err());
    }
}
