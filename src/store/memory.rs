//! The embedded store: carts in process memory, lost on restart.
//!
//! Carts live in shards of `HashMap`s behind `std` mutexes; each call takes its shard's lock
//! once and runs the domain mutation inside it, so every call is atomic and linearizable.
//! Expiry matches Redis: an expired cart is invisible at once, and a janitor frees it later.
//! Outcomes remembered under request ids sit in the cart's shard, beside the carts, so the
//! mutation and its record happen under one lock; they outlive the cart (a replayed Remove).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::{CartStore, Mutated};
use crate::domain::{
    CartKey, CartPolicy, CartState, Mutation, NewCart, RequestId, RequestTag, UnixMillis,
    now_millis,
};
use crate::error::CartError;

const SHARDS: usize = 32;
const JANITOR_PERIOD: Duration = Duration::from_secs(30);

struct Entry {
    state: CartState,
    expires_at: UnixMillis,
}

/// What a successful call of each kind returns.
#[derive(Clone)]
enum Reply {
    Created(CartState),
    Mutated(Mutated),
    Removed(i64),
}

/// The outcome of a mutation, kept under its request id until `expires_at`.
struct Remembered {
    fingerprint: String,
    /// A success, or a refusal (see [`CartError::remembered`]).
    outcome: Result<Reply, CartError>,
    expires_at: UnixMillis,
}

impl Remembered {
    fn replay(&self) -> Result<Reply, CartError> {
        match &self.outcome {
            Ok(reply) => Ok(reply.clone()),
            Err(refusal) => Err(refusal.remembered().expect("only refusals are remembered")),
        }
    }
}

#[derive(Default)]
struct Shard {
    carts: HashMap<CartKey, Entry>,
    requests: HashMap<(CartKey, RequestId), Remembered>,
}

pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    policy: CartPolicy,
}

impl MemoryStore {
    /// A new store; when called inside a Tokio runtime it also starts the janitor that frees
    /// expired carts (it stops when the store is dropped).
    pub fn new(policy: CartPolicy) -> Arc<Self> {
        let store = Arc::new(Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            policy,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(janitor(Arc::downgrade(&store)));
        }
        store
    }

    fn shard(&self, key: &CartKey) -> MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(key) as usize) % self.shards.len();
        // A panic while holding the lock cannot leave a half-applied mutation (the domain
        // validates before it writes), so a poisoned shard is still consistent.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops every expired cart and remembered outcome.
    pub fn purge_expired(&self, now: UnixMillis) {
        for shard in self.shards.iter() {
            let mut shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            shard.carts.retain(|_, entry| entry.expires_at > now);
            shard.requests.retain(|_, seen| seen.expires_at > now);
        }
    }

    /// Carts held, expired ones that the janitor has not freed yet included.
    pub fn cart_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).carts.len())
            .sum()
    }

    fn live_entry<'a>(
        carts: &'a mut HashMap<CartKey, Entry>,
        key: &CartKey,
        now: UnixMillis,
    ) -> Option<&'a mut Entry> {
        if carts.get(key).is_some_and(|e| e.expires_at <= now) {
            carts.remove(key);
        }
        carts.get_mut(key)
    }

    /// Runs `apply` at most once per request id, under the caller's shard lock: a remembered
    /// outcome is replayed (changing nothing), another payload under the same id is refused, and
    /// a new outcome is remembered together with the mutation.
    fn once(
        &self,
        shard: &mut Shard,
        key: &CartKey,
        request: Option<&RequestTag>,
        now: UnixMillis,
        apply: impl FnOnce(&mut HashMap<CartKey, Entry>) -> Result<Reply, CartError>,
    ) -> Result<Reply, CartError> {
        let Some(tag) = request else {
            return apply(&mut shard.carts);
        };
        let slot = (key.clone(), tag.id.clone());
        if let Some(seen) = shard.requests.get(&slot).filter(|s| s.expires_at > now) {
            if seen.fingerprint != tag.fingerprint {
                return Err(CartError::RequestIdReused);
            }
            return seen.replay();
        }
        let outcome = apply(&mut shard.carts);
        let kept = match &outcome {
            Ok(reply) => Some(Ok(reply.clone())),
            Err(error) => error.remembered().map(Err),
        };
        if let Some(kept) = kept {
            shard.requests.insert(
                slot,
                Remembered {
                    fingerprint: tag.fingerprint.clone(),
                    outcome: kept,
                    expires_at: now + self.policy.request_id_ttl_ms(),
                },
            );
        }
        outcome
    }
}

/// A replay under a request id that another kind of call made (its fingerprint differed, so
/// this is only reachable by a corrupt record).
fn other_rpc<T>() -> Result<T, CartError> {
    Err(CartError::RequestIdReused)
}

async fn janitor(store: Weak<MemoryStore>) {
    let mut tick = tokio::time::interval(JANITOR_PERIOD);
    tick.tick().await;
    loop {
        tick.tick().await;
        match store.upgrade() {
            Some(store) => store.purge_expired(now_millis()),
            None => return,
        }
    }
}

#[async_trait]
impl CartStore for MemoryStore {
    async fn create(
        &self,
        key: &CartKey,
        cart: NewCart,
        now: UnixMillis,
        request: Option<&RequestTag>,
    ) -> Result<CartState, CartError> {
        let mut shard = self.shard(key);
        let reply = self.once(&mut shard, key, request, now, |carts| {
            if Self::live_entry(carts, key, now).is_some() {
                return Err(CartError::CartAlreadyExists);
            }
            let state = CartState::create(cart, now, &self.policy.limits)?;
            let expires_at = state.expires_at(&self.policy);
            carts.insert(
                key.clone(),
                Entry {
                    state: state.clone(),
                    expires_at,
                },
            );
            Ok(Reply::Created(state))
        })?;
        match reply {
            Reply::Created(state) => Ok(state),
            _ => other_rpc(),
        }
    }

    async fn get(&self, key: &CartKey, now: UnixMillis) -> Result<CartState, CartError> {
        let mut shard = self.shard(key);
        let entry = Self::live_entry(&mut shard.carts, key, now).ok_or(CartError::CartNotFound)?;
        entry.state.touch(now);
        entry.expires_at = entry.state.expires_at(&self.policy);
        Ok(entry.state.clone())
    }

    async fn mutate(
        &self,
        key: &CartKey,
        mutation: Mutation,
        expected_version: i64,
        now: UnixMillis,
        request: Option<&RequestTag>,
    ) -> Result<Mutated, CartError> {
        let mut shard = self.shard(key);
        let reply = self.once(&mut shard, key, request, now, |carts| {
            let entry = Self::live_entry(carts, key, now).ok_or(CartError::CartNotFound)?;
            let outcome =
                entry
                    .state
                    .apply(&mutation, expected_version, now, &self.policy.limits)?;
            entry.expires_at = entry.state.expires_at(&self.policy);
            Ok(Reply::Mutated(Mutated {
                state: entry.state.clone(),
                outcome,
            }))
        })?;
        match reply {
            Reply::Mutated(mutated) => Ok(mutated),
            _ => other_rpc(),
        }
    }

    async fn remove(
        &self,
        key: &CartKey,
        expected_version: i64,
        now: UnixMillis,
        request: Option<&RequestTag>,
    ) -> Result<i64, CartError> {
        let mut shard = self.shard(key);
        let reply = self.once(&mut shard, key, request, now, |carts| {
            let entry = Self::live_entry(carts, key, now).ok_or(CartError::CartNotFound)?;
            entry.state.check_live(expected_version)?;
            let units = entry.state.item_count();
            carts.remove(key);
            Ok(Reply::Removed(units))
        })?;
        match reply {
            Reply::Removed(units) => Ok(units),
            _ => other_rpc(),
        }
    }

    async fn ping(&self) -> Result<(), CartError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tokio_test::block_on;

    use super::*;
    use crate::domain::{CartHeader, CartId, Currency, OrderNumber, TenantId};

    const TTL_MS: i64 = 1_000;
    const TOMBSTONE_MS: i64 = 500;

    fn store() -> Arc<MemoryStore> {
        MemoryStore::new(CartPolicy {
            cart_ttl: Duration::from_millis(TTL_MS as u64),
            tombstone_ttl: Duration::from_millis(TOMBSTONE_MS as u64),
            ..CartPolicy::default()
        })
    }

    fn key() -> CartKey {
        CartKey {
            tenant: TenantId::default_tenant(),
            cart_id: CartId::parse("c1").unwrap(),
        }
    }

    fn new_cart() -> NewCart {
        NewCart {
            header: CartHeader {
                customer_id: String::new(),
                session_id: String::new(),
                channel: String::new(),
                currency: Currency::parse("USD").unwrap(),
                locale: String::new(),
                metadata: BTreeMap::new(),
            },
            items: Vec::new(),
            id_generated: false,
        }
    }

    #[test]
    fn a_cart_lives_its_ttl_from_the_last_access() {
        let store = store();
        block_on(store.create(&key(), new_cart(), 0, None)).unwrap();
        block_on(store.get(&key(), TTL_MS - 1)).expect("alive just before its ttl");
        // That read pushed the expiry to 2 * TTL - 1.
        block_on(store.get(&key(), 2 * TTL_MS - 2)).expect("alive thanks to the read");
        assert!(matches!(
            block_on(store.get(&key(), 4 * TTL_MS)),
            Err(CartError::CartNotFound)
        ));
        // An expired id is free again.
        block_on(store.create(&key(), new_cart(), 4 * TTL_MS, None)).unwrap();
    }

    #[test]
    fn a_tombstone_keeps_its_retention_whatever_reads_it() {
        let store = store();
        block_on(store.create(&key(), new_cart(), 0, None)).unwrap();
        let delete = Mutation::Delete {
            order_number: OrderNumber::parse("O-1").unwrap(),
        };
        block_on(store.mutate(&key(), delete, 0, 100, None)).unwrap();
        block_on(store.get(&key(), 100 + TOMBSTONE_MS - 1)).expect("readable within retention");
        assert!(matches!(
            block_on(store.get(&key(), 100 + TOMBSTONE_MS)),
            Err(CartError::CartNotFound)
        ));
    }

    #[test]
    fn purge_frees_only_expired_carts() {
        let store = store();
        block_on(store.create(&key(), new_cart(), 0, None)).unwrap();
        let other = CartKey {
            cart_id: CartId::parse("c2").unwrap(),
            ..key()
        };
        block_on(store.create(&other, new_cart(), TTL_MS, None)).unwrap();
        store.purge_expired(TTL_MS + 1);
        assert_eq!(store.cart_count(), 1);
        block_on(store.get(&other, TTL_MS + 1)).expect("the younger cart stays");
    }

    fn tag(id: &str, payload: &[u8]) -> RequestTag {
        RequestTag::new(RequestId::parse(id).unwrap(), "Clear", payload)
    }

    fn clear() -> Mutation {
        Mutation::Clear {
            preserve_coupons: false,
            reason: String::new(),
            only_generated_id: false,
        }
    }

    #[test]
    fn remembered_outcomes_replay_until_their_retention_then_are_purged() {
        let store = MemoryStore::new(CartPolicy {
            request_id_ttl: Duration::from_millis(100),
            ..CartPolicy::default()
        });
        block_on(store.create(&key(), new_cart(), 0, None)).unwrap();
        let first = block_on(store.mutate(&key(), clear(), 0, 10, Some(&tag("r1", b"x")))).unwrap();
        let replay =
            block_on(store.mutate(&key(), clear(), 0, 50, Some(&tag("r1", b"x")))).unwrap();
        assert_eq!(
            (replay.state, replay.outcome),
            (first.state.clone(), first.outcome)
        );
        assert!(matches!(
            block_on(store.mutate(&key(), clear(), 0, 50, Some(&tag("r1", b"y")))),
            Err(CartError::RequestIdReused)
        ));
        // Past the retention the id is new again: the mutation applies (version 3).
        let later =
            block_on(store.mutate(&key(), clear(), 0, 200, Some(&tag("r1", b"y")))).unwrap();
        assert_eq!(later.state.version, 3);
        store.purge_expired(1_000);
        let held: usize = store
            .shards
            .iter()
            .map(|s| s.lock().unwrap().requests.len())
            .sum();
        assert_eq!(held, 0, "expired records are freed");
    }

    #[test]
    fn refusals_are_remembered_and_records_outlive_a_removed_cart() {
        let store = store();
        let stale = block_on(store.mutate(&key(), clear(), 0, 10, Some(&tag("r2", b"x"))));
        assert!(matches!(stale, Err(CartError::CartNotFound)));
        block_on(store.create(&key(), new_cart(), 20, None)).unwrap();
        // The cart exists now, but the request already had its outcome.
        let again = block_on(store.mutate(&key(), clear(), 0, 30, Some(&tag("r2", b"x"))));
        assert!(matches!(again, Err(CartError::CartNotFound)));
        let removed = block_on(store.remove(&key(), 0, 40, Some(&tag("r3", b"x")))).unwrap();
        assert_eq!(
            block_on(store.remove(&key(), 0, 50, Some(&tag("r3", b"x")))).unwrap(),
            removed
        );
    }
}
