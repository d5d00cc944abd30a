//! Idempotency keys: a mutation's request id and the fingerprint of its payload.
//!
//! Both stores remember, atomically with a mutation, the outcome it had under its request id;
//! a retry with the same id and payload gets that outcome back and changes nothing, and the same
//! id with another payload is refused (AIP-155).

use sha2::{Digest, Sha256};

use super::RequestId;

/// Length of a [`RequestTag::fingerprint`] (128 bits in hex).
pub const FINGERPRINT_LEN: usize = 32;

/// The request id of a mutation and what it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTag {
    pub id: RequestId,
    /// Hex of the first 128 bits of SHA-256 over the RPC's name and its payload: equal
    /// fingerprints mean "the same request".
    pub fingerprint: String,
}

impl RequestTag {
    /// `rpc` names the operation (so one id cannot replay another RPC's outcome); `payload` is
    /// the request encoded without its request id.
    pub fn new(id: RequestId, rpc: &str, payload: &[u8]) -> Self {
        let mut digest = Sha256::new();
        digest.update(rpc.as_bytes());
        digest.update([0]);
        digest.update(payload);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut fingerprint = String::with_capacity(FINGERPRINT_LEN);
        for b in &digest.finalize()[..FINGERPRINT_LEN / 2] {
            fingerprint.push(char::from(HEX[usize::from(b >> 4)]));
            fingerprint.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        Self { id, fingerprint }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> RequestId {
        RequestId::parse("5b1f0c9e-3f4e-4c53-9d0e-2a0f6f1d7c11").unwrap()
    }

    #[test]
    fn fingerprints_tell_payloads_and_rpcs_apart() {
        let a = RequestTag::new(id(), "Clear", b"payload");
        assert_eq!(a.fingerprint.len(), FINGERPRINT_LEN);
        assert_eq!(a, RequestTag::new(id(), "Clear", b"payload"));
        assert_ne!(
            a.fingerprint,
            RequestTag::new(id(), "Clear", b"payloaD").fingerprint
        );
        assert_ne!(
            a.fingerprint,
            RequestTag::new(id(), "Remove", b"payload").fingerprint
        );
    }

    #[test]
    fn request_ids_are_tokens_of_at_most_64_characters() {
        assert!(RequestId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "has space", "a.b", &"a".repeat(65)] {
            assert!(RequestId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
