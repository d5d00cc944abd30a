//! Who is calling (API keys → tenant and scopes) and each cart's access token (its hmac).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::domain::{CartId, IdempotencyKey, TenantId};
use crate::error::CartError;

/// The secret of dev mode (no config file): fixed, so dev hmacs survive restarts. Never used
/// when a config file is given.
pub const DEV_HMAC_SECRET: &str = "cart-service dev mode: not a secret";

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "carts:read",
            Self::Write => "carts:write",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "carts:read" => Some(Self::Read),
            "carts:write" => Some(Self::Write),
            _ => None,
        }
    }
}

/// An authenticated caller: its tenant scopes every cart id it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub read: bool,
    pub write: bool,
}

impl Principal {
    /// The caller of dev mode: tenant `default`, every scope.
    pub fn dev() -> Self {
        Self {
            tenant: TenantId::default_tenant(),
            read: true,
            write: true,
        }
    }

    pub fn require(&self, scope: Scope) -> Result<(), CartError> {
        let granted = match scope {
            Scope::Read => self.read,
            Scope::Write => self.write,
        };
        if granted {
            Ok(())
        } else {
            Err(CartError::PermissionDenied(format!(
                "this API key lacks the {} scope",
                scope.name()
            )))
        }
    }
}

/// Resolves bearer API keys. Keys are looked up by their SHA-256, so the lookup's timing
/// says nothing about how much of a guessed key was right.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// No config file: every request is the dev principal.
    Dev,
    Keys(HashMap<[u8; 32], Principal>),
}

impl Authenticator {
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = (&'a str, Principal)>) -> Self {
        Self::Keys(
            keys.into_iter()
                .map(|(key, principal)| (Sha256::digest(key.as_bytes()).into(), principal))
                .collect(),
        )
    }

    /// Authenticates an `authorization` header value (`Bearer <key>`).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, CartError> {
        match self {
            Self::Dev => Ok(Principal::dev()),
            Self::Keys(keys) => {
                let key = authorization
                    .and_then(bearer_token)
                    .ok_or(CartError::Unauthenticated)?;
                keys.get(&<[u8; 32]>::from(Sha256::digest(key.as_bytes())))
                    .cloned()
                    .ok_or(CartError::Unauthenticated)
            }
        }
    }
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Signs and checks cart hmacs: base64(HMAC-SHA256(secret, tenant ":" cart_id)). Never written
/// to the store; the process remembers those of the carts in use (`Signed`).
#[derive(Clone)]
pub struct CartTokens {
    mac: Hmac<Sha256>,
    signed: Arc<Signed>,
}

/// The hmacs signed lately, one per slot (a slot's cart is replaced by the next that hashes
/// to it): every reply carries its cart's hmac, and a pure function of (tenant, cart id) need
/// not be recomputed for the carts in use. Shared by the clones of one [`CartTokens`], so it
/// holds only hmacs of that secret.
struct Signed {
    /// The process's seed of the slot hash.
    seed: u64,
    slots: Box<[Mutex<Option<SignedCart>>]>,
}

struct SignedCart {
    tenant: TenantId,
    cart_id: String,
    hmac: String,
}

impl Signed {
    /// Slots kept (a few hundred KiB when all are used).
    const SLOTS: usize = 2048;

    fn new() -> Self {
        Self {
            seed: RandomState::new().hash_one(0u64),
            slots: (0..Self::SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// FNV-1a of tenant, a separator no id holds, and cart id, from a random seed: the slot
    /// is only a cache's, where two carts that meet in one merely take turns, so a hash a
    /// few times cheaper than SipHash serves (every reply signs its cart).
    fn slot(&self, tenant: &TenantId, cart_id: &CartId) -> &Mutex<Option<SignedCart>> {
        const PRIME: u64 = 0x0100_0000_01b3;
        let bytes = tenant
            .as_str()
            .bytes()
            .chain([b':'])
            .chain(cart_id.as_str().bytes());
        let hash = bytes.fold(self.seed, |hash, b| {
            (hash ^ u64::from(b)).wrapping_mul(PRIME)
        });
        // The high bits are the best mixed.
        &self.slots[(hash >> 32) as usize % self.slots.len()]
    }
}

impl std::fmt::Debug for CartTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CartTokens(..)")
    }
}

impl CartTokens {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: Hmac::new_from_slice(secret).expect("HMAC accepts keys of any length"),
            signed: Arc::new(Signed::new()),
        }
    }

    fn mac(&self, tenant: &TenantId, cart_id: &CartId) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(tenant.as_str().as_bytes());
        mac.update(b":");
        mac.update(cart_id.as_str().as_bytes());
        mac
    }

    /// The cart's hmac, from the slot that remembers it when it was signed lately. A slot in
    /// use by another thread is passed over, never waited for.
    pub fn sign(&self, tenant: &TenantId, cart_id: &CartId) -> String {
        let slot = self.signed.slot(tenant, cart_id);
        if let Ok(guard) = slot.try_lock()
            && let Some(signed) = guard.as_ref()
            && signed.cart_id == cart_id.as_str()
            && signed.tenant == *tenant
        {
            return signed.hmac.clone();
        }
        let hmac = self.compute(tenant, cart_id);
        if let Ok(mut guard) = slot.try_lock() {
            *guard = Some(SignedCart {
                tenant: tenant.clone(),
                cart_id: cart_id.as_str().to_owned(),
                hmac: hmac.clone(),
            });
        }
        hmac
    }

    fn compute(&self, tenant: &TenantId, cart_id: &CartId) -> String {
        BASE64.encode(self.mac(tenant, cart_id).finalize().into_bytes())
    }

    /// The id of a cart created without `cart_id` under an idempotency key: the same on every retry,
    /// and as unguessable as a generated id to whoever lacks the secret (VTEX treats the id as
    /// a capability). Domain-separated from [`CartTokens::sign`]: ids never contain ':'.
    pub fn derive_cart_id(&self, tenant: &TenantId, key: &IdempotencyKey) -> CartId {
        let mut mac = self.mac.clone();
        mac.update(b"request:");
        mac.update(tenant.as_str().as_bytes());
        mac.update(b":");
        mac.update(key.as_str().as_bytes());
        CartId::from_digest(&mac.finalize().into_bytes().into())
    }

    /// Constant-time check of a presented hmac.
    pub fn verify(&self, tenant: &TenantId, cart_id: &CartId, presented: &str) -> bool {
        match BASE64.decode(presented.trim()) {
            Ok(bytes) => self.mac(tenant, cart_id).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (TenantId, CartId) {
        (
            TenantId::parse("acme").unwrap(),
            CartId::parse("c1").unwrap(),
        )
    }

    #[test]
    fn hmac_is_base64_of_hmac_sha256_over_tenant_and_id() {
        let (tenant, cart) = ids();
        let tokens = CartTokens::new(b"secret");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(b"acme:c1");
        let expected = BASE64.encode(mac.finalize().into_bytes());
        assert_eq!(tokens.sign(&tenant, &cart), expected);
        assert!(tokens.verify(&tenant, &cart, &expected));
        assert!(!tokens.verify(&tenant, &CartId::parse("c2").unwrap(), &expected));
        assert!(!tokens.verify(&tenant, &cart, "not base64!"));
        assert!(!CartTokens::new(b"other").verify(&tenant, &cart, &expected));
    }

    #[test]
    fn remembered_hmacs_are_those_of_their_own_tenant_and_cart() {
        let tokens = CartTokens::new(b"secret");
        let tenants = [
            TenantId::parse("acme").unwrap(),
            TenantId::parse("globex").unwrap(),
        ];
        // More carts than slots: slots are overwritten, and each cart is signed twice (the
        // second time from its slot when no other cart took it meanwhile).
        let carts: Vec<CartId> = (0..3 * Signed::SLOTS)
            .map(|n| CartId::parse(&format!("c{n}")).unwrap())
            .collect();
        for _ in 0..2 {
            for tenant in &tenants {
                for cart in &carts {
                    let signed = tokens.sign(tenant, cart);
                    assert_eq!(signed, tokens.compute(tenant, cart), "{tenant}:{cart}");
                    assert_eq!(tokens.sign(tenant, cart), signed, "{tenant}:{cart}");
                }
            }
        }
        let cart = &carts[0];
        assert_ne!(
            tokens.sign(&tenants[0], cart),
            tokens.sign(&tenants[1], cart)
        );
        // Another secret remembers its own hmacs.
        let other = CartTokens::new(b"other");
        assert_ne!(
            other.sign(&tenants[0], cart),
            tokens.sign(&tenants[0], cart)
        );
        assert_eq!(
            other.sign(&tenants[0], cart),
            other.compute(&tenants[0], cart)
        );
    }

    #[test]
    fn api_keys_resolve_to_their_tenant_and_scopes() {
        let reader = Principal {
            tenant: TenantId::parse("acme").unwrap(),
            read: true,
            write: false,
        };
        let auth = Authenticator::from_keys([("sk_read", reader.clone())]);
        assert_eq!(auth.authenticate(Some("Bearer sk_read")).unwrap(), reader);
        assert_eq!(auth.authenticate(Some("bearer  sk_read ")).unwrap(), reader);
        for bad in [
            None,
            Some("sk_read"),
            Some("Bearer "),
            Some("Bearer sk_other"),
            Some("Basic sk_read"),
        ] {
            assert!(
                matches!(auth.authenticate(bad), Err(CartError::Unauthenticated)),
                "{bad:?}"
            );
        }
        assert!(matches!(
            reader.require(Scope::Write),
            Err(CartError::PermissionDenied(_))
        ));
        assert!(reader.require(Scope::Read).is_ok());
    }
}
