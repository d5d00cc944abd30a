//! Idempotency: a mutation's [`IdempotencyKey`] (the retry key; `request_id` on gRPC,
//! `Idempotency-Key` on the shims) and the fingerprint of what it asks for.
//!
//! Both stores remember, atomically with a mutation, the outcome it had under its key; a retry
//! with the same key and payload gets that outcome back and changes nothing, and the same key
//! with another payload is refused (AIP-155). Not to be confused with the correlation id
//! (`x-request-id`), which only labels logs and traces.

use sha2::{Digest, Sha256};

use super::IdempotencyKey;

/// Length of a [`IdempotencyTag::fingerprint`] (128 bits in hex).
pub const FINGERPRINT_LEN: usize = 32;

/// The idempotency key of a mutation and what it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyTag {
    pub key: IdempotencyKey,
    /// Hex of the first 128 bits of SHA-256 over the RPC's name and its payload: equal
    /// fingerprints mean "the same request".
    pub fingerprint: String,
}

impl IdempotencyTag {
    /// `rpc` names the operation (so one key cannot replay another operation's outcome);
    /// `payload` is the command's canonical bytes (see [`crate::core::Fingerprint`]).
    pub fn new(key: IdempotencyKey, rpc: &str, payload: &[u8]) -> Self {
        let mut digest = Self::digest_of(rpc);
        digest.update(payload);
        Self::from_digest(key, digest)
    }

    /// The digest a fingerprint of `rpc` starts from; the payload's bytes are fed into it as
    /// they are made (no buffer), then [`IdempotencyTag::from_digest`] finishes it.
    pub fn digest_of(rpc: &str) -> Sha256 {
        let mut digest = Sha256::new();
        digest.update(rpc.as_bytes());
        digest.update([0]);
        digest
    }

    /// The tag of a digest begun by [`IdempotencyTag::digest_of`] and fed the payload.
    pub fn from_digest(key: IdempotencyKey, digest: Sha256) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; FINGERPRINT_LEN];
        for (i, b) in digest.finalize()[..FINGERPRINT_LEN / 2].iter().enumerate() {
            hex[2 * i] = HEX[usize::from(b >> 4)];
            hex[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        let fingerprint = std::str::from_utf8(&hex)
            .expect("hex digits are ASCII")
            .to_owned();
        Self { key, fingerprint }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> IdempotencyKey {
        IdempotencyKey::parse("5b1f0c9e-3f4e-4c53-9d0e-2a0f6f1d7c11").unwrap()
    }

    #[test]
    fn fingerprints_tell_payloads_and_rpcs_apart() {
        let a = IdempotencyTag::new(id(), "Clear", b"payload");
        assert_eq!(a.fingerprint.len(), FINGERPRINT_LEN);
        assert_eq!(a, IdempotencyTag::new(id(), "Clear", b"payload"));
        assert_ne!(
            a.fingerprint,
            IdempotencyTag::new(id(), "Clear", b"payloaD").fingerprint
        );
        assert_ne!(
            a.fingerprint,
            IdempotencyTag::new(id(), "Remove", b"payload").fingerprint
        );
    }

    #[test]
    fn a_digest_fed_in_pieces_is_the_digest_of_the_whole_payload() {
        let mut digest = IdempotencyTag::digest_of("Clear");
        digest.update(b"pay");
        digest.update(b"load");
        assert_eq!(
            IdempotencyTag::from_digest(id(), digest),
            IdempotencyTag::new(id(), "Clear", b"payload")
        );
        // The fingerprint of a known payload, as stores already remember it.
        assert_eq!(
            IdempotencyTag::new(id(), "Clear", b"payload").fingerprint,
            "0349784f6d3817edb72204c86c0d99c4"
        );
    }

    #[test]
    fn idempotency_keys_are_tokens_of_at_most_64_characters() {
        assert!(IdempotencyKey::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "has space", "a.b", &"a".repeat(65)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
