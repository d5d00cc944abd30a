//! Identifier and value newtypes: each `parse` is the only way in, so a value that exists is valid.

use std::fmt;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Bytes, not chars: every id character is ASCII, so no UTF-8 needs decoding to check one.
fn is_id_byte(b: u8) -> bool {
    ID_BYTES[usize::from(b)]
}

/// The id bytes (`[A-Za-z0-9_-]`) as a table: an id is checked on every request, one lookup
/// per byte.
static ID_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
        b += 1;
    }
    table
};

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        string_newtype!($(#[$doc])* $name(String));
    };
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        // No `Deserialize`: a value that bypassed `parse` could exist.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name($inner);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// A cart id: `^[A-Za-z0-9_-]{1,64}$`, safe inside a Redis hash tag and every dialect's URL.
    CartId
);
string_newtype!(
    /// A tenant id: `^[A-Za-z0-9_-]{1,64}$`; part of every store key. Shared, not copied: every
    /// request's principal, cart key and admission permit holds it.
    TenantId(std::sync::Arc<str>)
);
string_newtype!(
    /// A stock keeping unit: 1..=max bytes of printable text; the identity of a line.
    Sku
);
string_newtype!(
    /// A line id, derived from the sku so that the same sku always lands on the same line.
    LineId
);
string_newtype!(
    /// An ISO 4217 alphabetic code (three upper-case letters).
    Currency
);
string_newtype!(
    /// A coupon code: `^[A-Za-z0-9_-]{1,64}$`.
    CouponCode
);
string_newtype!(
    /// An idempotency key (the retry key of a mutation; `request_id` on gRPC, `Idempotency-Key`
    /// on the shims): `^[A-Za-z0-9_-]{1,64}$` (a UUID recommended); safe inside a Redis key.
    IdempotencyKey
);
string_newtype!(
    /// The order that closed a cart: 1..=64 printable ASCII characters without spaces.
    OrderNumber
);

/// The text of the `String`-backed newtypes, moved out (a message that takes it copies nothing).
macro_rules! into_string {
    ($($name:ident),*) => {
        $(
            impl $name {
                pub fn into_string(self) -> String {
                    self.0
                }
            }
        )*
    };
}

into_string!(CartId, Sku, LineId, Currency, CouponCode);

fn parse_token(value: &str, what: &str) -> Result<String, String> {
    check_token(value, what).map(|()| value.to_owned())
}

/// [`parse_token`] of a string the caller owns: kept as it is, not copied.
fn parse_owned_token(value: String, what: &str) -> Result<String, String> {
    check_token(&value, what).map(|()| value)
}

fn check_token(value: &str, what: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{what} is required"));
    }
    if value.len() > 64 {
        return Err(format!("{what} must be at most 64 characters"));
    }
    // `fold`, not `all`: no branch per byte.
    if !value.bytes().fold(true, |ok, b| ok & is_id_byte(b)) {
        return Err(format!(
            "{what} may contain only A-Z, a-z, 0-9, '_' and '-'"
        ));
    }
    Ok(())
}

impl CartId {
    pub fn parse(value: &str) -> Result<Self, String> {
        parse_token(value, "cart id").map(Self)
    }

    /// [`CartId::parse`] of a decoded message's string, which becomes the id uncopied.
    pub fn parse_owned(value: String) -> Result<Self, String> {
        parse_owned_token(value, "cart id").map(Self)
    }

    /// 24 lowercase hex characters from 96 random bits: addressable by every dialect
    /// (Fabric XM insists on exactly 24 characters) and unguessable (VTEX uses it as a capability).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 12];
        rand::rng().fill_bytes(&mut bytes);
        Self(hex(&bytes))
    }

    /// The same shape as [`CartId::generate`], from the first 96 bits of a keyed digest: a
    /// Create retried with its idempotency key must land on the same id.
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        Self(hex(&digest[..12]))
    }
}

impl TenantId {
    pub fn parse(value: &str) -> Result<Self, String> {
        parse_token(value, "tenant id").map(|id| Self(id.into()))
    }

    /// The tenant of dev mode (no config file).
    pub fn default_tenant() -> Self {
        static DEFAULT: std::sync::OnceLock<TenantId> = std::sync::OnceLock::new();
        DEFAULT.get_or_init(|| Self("default".into())).clone()
    }
}

impl IdempotencyKey {
    pub fn parse(value: &str) -> Result<Self, String> {
        parse_token(value, "request_id").map(Self)
    }
}

impl CouponCode {
    pub fn parse(value: &str) -> Result<Self, String> {
        parse_token(value, "coupon code").map(Self)
    }
}

impl Sku {
    pub fn parse(value: &str, max_bytes: usize) -> Result<Self, String> {
        if value.is_empty() {
            return Err("sku is required".to_owned());
        }
        if value.len() > max_bytes {
            return Err(format!("sku must be at most {max_bytes} bytes"));
        }
        if value.chars().any(char::is_control) {
            return Err("sku must not contain control characters".to_owned());
        }
        Ok(Self(value.to_owned()))
    }
}

impl LineId {
    /// `li_` + 96 bits of SHA-256(sku), hex: stable per sku, so adding a sku twice finds its line
    /// without an index, in both stores.
    pub fn for_sku(sku: &Sku) -> Self {
        let digest = Sha256::digest(sku.as_str().as_bytes());
        Self(format!("li_{}", hex(&digest[..12])))
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        let well_formed = value.len() == 27
            && value.starts_with("li_")
            && value[3..]
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if well_formed {
            Ok(Self(value.to_owned()))
        } else if value.is_empty() {
            Err("line_id is required".to_owned())
        } else {
            Err("line_id is not a line id of this service".to_owned())
        }
    }
}

impl Currency {
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("currency is required".to_owned());
        }
        if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(value.to_owned()))
        } else {
            Err("currency must be an ISO 4217 code such as USD".to_owned())
        }
    }
}

impl OrderNumber {
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("order_number is required".to_owned());
        }
        if value.len() > 64 {
            return Err("order_number must be at most 64 characters".to_owned());
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("order_number must be printable ASCII without spaces".to_owned());
        }
        Ok(Self(value.to_owned()))
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cart_ids_follow_the_spec_pattern() {
        assert!(CartId::parse("cart_0901f083-aa1c-43c5-af5c-0a9d2fc64e30").is_ok());
        assert!(CartId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "has space", "brace{", "dot.", &"a".repeat(65), "é"] {
            assert!(CartId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn generated_cart_ids_are_24_lowercase_hex_and_distinct() {
        let a = CartId::generate();
        let b = CartId::generate();
        assert_eq!(a.as_str().len(), 24);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
        assert!(CartId::parse(a.as_str()).is_ok());
    }

    #[test]
    fn line_ids_are_stable_per_sku_and_parse_back() {
        let sku = Sku::parse("SKU-1", 64).unwrap();
        let id = LineId::for_sku(&sku);
        assert_eq!(id, LineId::for_sku(&sku));
        assert_ne!(id, LineId::for_sku(&Sku::parse("SKU-2", 64).unwrap()));
        assert_eq!(LineId::parse(id.as_str()).unwrap(), id);
        assert!(LineId::parse("li_xyz").is_err());
        assert!(LineId::parse("").is_err());
    }

    #[test]
    fn skus_are_bounded_in_bytes_not_chars() {
        assert!(Sku::parse(&"é".repeat(32), 64).is_ok());
        assert!(Sku::parse(&"é".repeat(33), 64).is_err());
        assert!(Sku::parse("a\nb", 64).is_err());
    }

    #[test]
    fn currencies_are_three_upper_case_letters() {
        assert!(Currency::parse("USD").is_ok());
        for bad in ["", "usd", "US", "USDX", "U5D"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn order_numbers_are_printable_and_bounded() {
        assert!(OrderNumber::parse("ORD-2024/0001").is_ok());
        assert!(OrderNumber::parse("with space").is_err());
        assert!(OrderNumber::parse(&"1".repeat(65)).is_err());
    }
}
