//! The embedded store: carts in process memory, lost on restart.
//!
//! Carts live in shards of `HashMap`s behind `std` mutexes; each call takes its shard's lock
//! once and runs the domain mutation inside it, so every call is atomic and linearizable.
//! Expiry matches Redis: an expired cart is invisible at once, and a janitor frees it later.
//! Outcomes remembered under idempotency keys sit in the cart's shard, beside the carts, so the
//! mutation and its record happen under one lock; they outlive the cart (a replayed Remove).
//!
//! Customers' indexes of carts (see [`super::CustomerKey`]) sit in one map behind their own
//! lock, apart from the carts, as on Redis: an entry is dropped by the core when it no longer
//! names a live cart of the customer, and by the janitor a cart lifetime after it was last
//! written. They are small (at most [`super::MAX_INDEXED_CARTS`] ids per customer) and are not
//! counted against `max_bytes`.
//!
//! The store holds at most `max_bytes` (config `[memory] max_bytes`) of carts and remembered
//! outcomes, by an estimate of each one's heap and table cost ([`cart_bytes`]). A call works
//! out its result on a copy first; if that would take the total past the cap it is refused
//! whole with STORE_FULL, so growth (Create, AddItems of a new line, a coupon, a longer
//! reason, a remembered outcome) stops at the cap while reads, Remove and anything that does
//! not grow (Clear of a cart with lines, UpdateItems, a quantity added to a line) still run.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::{CartStore, CustomerKey, MAX_INDEXED_CARTS, Mutated};
use crate::domain::{
    CartId, CartKey, CartPolicy, CartState, IdempotencyKey, IdempotencyTag, Mutation, NewCart,
    UnixMillis, now_millis,
};
use crate::error::CartError;

const SHARDS: usize = 32;
const JANITOR_PERIOD: Duration = Duration::from_secs(30);

/// The default cap on the bytes of carts (and remembered outcomes) the store holds: 200,000
/// to 300,000 one-line carts (see `examples/memory-footprint.rs`).
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;

struct Entry {
    state: CartState,
    expires_at: UnixMillis,
    /// What it costs the store ([`cart_bytes`]), as counted in [`Budget`].
    bytes: usize,
}

/// What a successful call of each kind returns.
#[derive(Clone)]
enum Reply {
    Created(Box<CartState>),
    Mutated(Mutated),
    Removed(i64),
}

/// The outcome of a mutation, kept under its idempotency key until `expires_at`.
struct Remembered {
    fingerprint: String,
    /// A success, or a refusal (see [`CartError::remembered`]).
    outcome: Result<Reply, CartError>,
    expires_at: UnixMillis,
    /// What it costs the store ([`record_bytes`]).
    bytes: usize,
}

impl Remembered {
    fn replay(&self) -> Result<Reply, CartError> {
        match &self.outcome {
            Ok(reply) => Ok(reply.clone()),
            Err(refusal) => Err(refusal.remembered().expect("only refusals are remembered")),
        }
    }
}

/// What a call would change, worked out before anything changes so that its growth can be
/// refused whole.
enum Change {
    Keep,
    Put(Box<Entry>),
    Remove,
}

struct Planned {
    change: Change,
    reply: Reply,
}

#[derive(Default)]
struct Shard {
    carts: HashMap<CartKey, Entry>,
    requests: HashMap<(CartKey, IdempotencyKey), Remembered>,
    /// The buckets of each map's table as last counted in [`Budget`]: the most ever seen (a
    /// `HashMap` never shrinks, and removed entries leave markers that hide part of its
    /// capacity, so `capacity()` alone may under-report it).
    cart_buckets: usize,
    request_buckets: usize,
}

impl Shard {
    /// The bytes of both maps' tables as counted.
    fn counted_tables(&self) -> usize {
        table_of::<(CartKey, Entry)>(self.cart_buckets)
            + table_of::<((CartKey, IdempotencyKey), Remembered)>(self.request_buckets)
    }

    /// The bytes of both maps' tables once `new_cart` and `new_record` (keys not in them yet)
    /// are inserted: a table with no room left doubles.
    fn tables_after(&self, new_cart: bool, new_record: bool) -> usize {
        fn after<K, V>(map: &HashMap<K, V>, buckets: usize, inserting: bool) -> usize {
            if inserting && map.len() == map.capacity() {
                (buckets * 2).max(4)
            } else {
                buckets
            }
        }
        table_of::<(CartKey, Entry)>(after(&self.carts, self.cart_buckets, new_cart))
            + table_of::<((CartKey, IdempotencyKey), Remembered)>(after(
                &self.requests,
                self.request_buckets,
                new_record,
            ))
    }

    /// Takes in the tables' sizes after a change; returns their bytes.
    fn observe_tables(&mut self) -> usize {
        self.cart_buckets = self.cart_buckets.max(buckets(self.carts.capacity()));
        self.request_buckets = self.request_buckets.max(buckets(self.requests.capacity()));
        self.counted_tables()
    }
}

/// The bytes held by every shard, against the cap: a call reserves its growth before it
/// changes anything, so the total never passes the cap; a call that does not grow always
/// runs.
struct Budget {
    held: AtomicUsize,
    cap: usize,
}

impl Budget {
    /// Counts what a change already made costs (a table that grew otherwise than foreseen).
    fn force(&self, before: usize, after: usize) {
        if after >= before {
            self.held.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.held.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// Moves the count from `before` to `after` bytes, or refuses the growth with STORE_FULL.
    fn settle(&self, before: usize, after: usize) -> Result<(), CartError> {
        if after <= before {
            self.held.fetch_sub(before - after, Ordering::Relaxed);
            return Ok(());
        }
        let grow = after - before;
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(grow).filter(|total| *total <= self.cap)
            })
            .map(drop)
            .map_err(|_| CartError::StoreFull)
    }

    fn release(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// A customer's index: cart ids, most recently indexed first, and when it was last written.
#[derive(Default)]
struct CustomerIndex {
    carts: Vec<CartId>,
    written_at: UnixMillis,
}

pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    customers: Mutex<HashMap<CustomerKey, CustomerIndex>>,
    hasher: RandomState,
    policy: CartPolicy,
    budget: Budget,
}

impl MemoryStore {
    /// A new store holding at most [`DEFAULT_MAX_BYTES`]; see [`MemoryStore::with_max_bytes`].
    pub fn new(policy: CartPolicy) -> Arc<Self> {
        Self::with_max_bytes(policy, DEFAULT_MAX_BYTES)
    }

    /// A new store that refuses, with STORE_FULL, any call that would take the bytes it
    /// holds ([`MemoryStore::held_bytes`]) past `max_bytes`. When called inside a Tokio
    /// runtime it also starts the janitor that frees expired carts (it stops when the store is
    /// dropped).
    pub fn with_max_bytes(policy: CartPolicy, max_bytes: usize) -> Arc<Self> {
        let store = Arc::new(Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            customers: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
            policy,
            budget: Budget {
                held: AtomicUsize::new(0),
                cap: max_bytes,
            },
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(janitor(Arc::downgrade(&store)));
        }
        store
    }

    /// The estimated bytes of the carts and remembered outcomes held (expired ones that the
    /// janitor has not freed yet included): what the cap bounds.
    pub fn held_bytes(&self) -> usize {
        self.budget.held.load(Ordering::Relaxed)
    }

    /// The cap on [`MemoryStore::held_bytes`].
    pub fn max_bytes(&self) -> usize {
        self.budget.cap
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
            let mut freed = 0;
            shard.carts.retain(|_, entry| {
                let keep = entry.expires_at > now;
                if !keep {
                    freed += entry.bytes;
                }
                keep
            });
            shard.requests.retain(|_, seen| {
                let keep = seen.expires_at > now;
                if !keep {
                    freed += seen.bytes;
                }
                keep
            });
            self.budget.release(freed);
        }
        let cart_ttl = self.policy.cart_ttl_ms();
        self.customers()
            .retain(|_, index| index.written_at + cart_ttl > now);
    }

    fn customers(&self) -> MutexGuard<'_, HashMap<CustomerKey, CustomerIndex>> {
        self.customers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Carts held, expired ones that the janitor has not freed yet included.
    pub fn cart_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).carts.len())
            .sum()
    }

    /// The live entry of `key`, freeing an expired one first.
    fn live_entry<'a>(
        &self,
        carts: &'a mut HashMap<CartKey, Entry>,
        key: &CartKey,
        now: UnixMillis,
    ) -> Option<&'a mut Entry> {
        if carts.get(key).is_some_and(|e| e.expires_at <= now)
            && let Some(expired) = carts.remove(key)
        {
            self.budget.release(expired.bytes);
        }
        carts.get_mut(key)
    }

    fn entry(&self, state: CartState, key: &CartKey) -> Entry {
        Entry {
            expires_at: state.expires_at(&self.policy),
            bytes: cart_bytes(key, &state),
            state,
        }
    }

    /// Runs `plan` at most once per idempotency key, under the caller's shard lock, then makes its
    /// change: a remembered outcome is replayed (changing nothing), another payload under the
    /// same id is refused, and a new outcome is remembered together with the change. A change
    /// and record that would take the store past its cap are refused whole (STORE_FULL, not
    /// remembered).
    fn once(
        &self,
        shard: &mut Shard,
        key: &CartKey,
        request: Option<&IdempotencyTag>,
        now: UnixMillis,
        plan: impl FnOnce(Option<&Entry>) -> Result<Planned, CartError>,
    ) -> Result<Reply, CartError> {
        let slot = request.map(|tag| (key.clone(), tag.key.clone()));
        if let (Some(tag), Some(slot)) = (request, &slot)
            && let Some(seen) = shard.requests.get(slot)
        {
            if seen.expires_at > now {
                if seen.fingerprint != tag.fingerprint {
                    return Err(CartError::IdempotencyKeyReused);
                }
                return seen.replay();
            }
            // Expired: the id is new again.
            let bytes = seen.bytes;
            shard.requests.remove(slot);
            self.budget.release(bytes);
        }
        let before = self
            .live_entry(&mut shard.carts, key, now)
            .map_or(0, |e| e.bytes);
        let (change, outcome) = match plan(shard.carts.get(key)) {
            Ok(Planned { change, reply }) => (change, Ok(reply)),
            Err(refusal) => (Change::Keep, Err(refusal)),
        };
        let after = match &change {
            Change::Keep => before,
            Change::Put(entry) => entry.bytes,
            Change::Remove => 0,
        };
        let record = match (request, slot) {
            (Some(tag), Some(slot)) => {
                let kept = match &outcome {
                    Ok(reply) => Some(Ok(reply.clone())),
                    Err(error) => error.remembered().map(Err),
                };
                kept.map(|outcome| {
                    let bytes = record_bytes(&slot, &tag.fingerprint, &outcome);
                    let remembered = Remembered {
                        fingerprint: tag.fingerprint.clone(),
                        outcome,
                        expires_at: now + self.policy.request_id_ttl_ms(),
                        bytes,
                    };
                    (slot, remembered)
                })
            }
            _ => None,
        };
        let recorded = record.as_ref().map_or(0, |(_, r)| r.bytes);
        let new_cart = matches!(change, Change::Put(_)) && !shard.carts.contains_key(key);
        let new_record = record
            .as_ref()
            .is_some_and(|(slot, _)| !shard.requests.contains_key(slot));
        let tables = shard.tables_after(new_cart, new_record);
        self.budget
            .settle(before + shard.counted_tables(), after + recorded + tables)?;
        match change {
            Change::Keep => {}
            // In place when the key is there: `insert` makes room for a new entry first, which
            // would double a full table for nothing.
            Change::Put(entry) => match shard.carts.get_mut(key) {
                Some(slot) => *slot = *entry,
                None => {
                    shard.carts.insert(key.clone(), *entry);
                }
            },
            Change::Remove => {
                shard.carts.remove(key);
            }
        }
        if let Some((slot, remembered)) = record {
            shard.requests.insert(slot, remembered);
        }
        // A table may double earlier than foreseen (removed entries' markers use up its room):
        // that is counted now, past the cap if need be, by at most one table of one shard.
        let actual = shard.observe_tables();
        self.budget.force(tables, actual);
        outcome
    }
}

/// Bytes of a heap block of `len` bytes as the allocator hands it out (mimalloc: 8-byte steps
/// up to 64, then eight size classes per doubling).
fn heap(len: usize) -> usize {
    match len {
        0 => 0,
        1..=64 => len.next_multiple_of(8),
        _ => len.next_multiple_of(len.next_power_of_two() / 8),
    }
}

fn text(s: &str) -> usize {
    heap(s.len())
}

/// The buckets of a `HashMap` table that holds `capacity` entries (hashbrown: a power of
/// two, at most 7/8 of it used; small tables one less than their size).
fn buckets(capacity: usize) -> usize {
    match capacity {
        0 => 0,
        1..7 => (capacity + 1).next_power_of_two(),
        _ => (capacity * 8).div_ceil(7).next_power_of_two(),
    }
}

/// The bytes of a `HashMap` table of `T` entries with `buckets`: a `T` and a control byte per
/// bucket. Counted by shard, as the table grows, not per entry: a table just doubled costs
/// twice what one about to double does per entry.
fn table_of<T>(buckets: usize) -> usize {
    heap(buckets * (size_of::<T>() + 1))
}

/// A `BTreeMap<String, String>`: its nodes (11 entries each, about 2/3 full) and the strings.
fn string_map(map: &BTreeMap<String, String>) -> usize {
    const NODE: usize = 11 * 2 * size_of::<String>() + 2 * size_of::<usize>();
    let nodes = map.len().div_ceil(7);
    nodes * heap(NODE) + map.iter().map(|(k, v)| text(k) + text(v)).sum::<usize>()
}

/// The estimated bytes one cart costs the store beyond its slot in the shard's table (counted
/// with the table, see [`table_bytes`]): every heap block of its key and state.
fn cart_bytes(key: &CartKey, state: &CartState) -> usize {
    let header = &state.header;
    let lines = heap(state.lines.capacity() * size_of::<crate::domain::Line>())
        + state
            .lines
            .iter()
            .map(|line| {
                text(line.line_id.as_str())
                    + text(line.sku.as_str())
                    + text(&line.product_id)
                    + text(&line.title)
                    + string_map(&line.attributes)
            })
            .sum::<usize>();
    let coupons = heap(state.coupons.capacity() * size_of::<crate::domain::Coupon>())
        + state
            .coupons
            .iter()
            .map(|c| text(c.code.as_str()))
            .sum::<usize>();
    text(key.tenant.as_str())
        + text(key.cart_id.as_str())
        + text(&state.clear_reason)
        + text(&state.order_number)
        + text(&state.freeze_reason)
        + text(&state.merged_into)
        + text(&state.merge_key)
        + lines
        + coupons
        + text(&header.customer_id)
        + text(&header.session_id)
        + text(&header.channel)
        + text(header.currency.as_str())
        + text(&header.locale)
        + string_map(&header.metadata)
}

/// The estimated bytes of one remembered outcome beyond its table slot: its key, fingerprint
/// and reply (a snapshot of the cart for Create and the mutations).
fn record_bytes(
    slot: &(CartKey, IdempotencyKey),
    fingerprint: &str,
    outcome: &Result<Reply, CartError>,
) -> usize {
    let (key, id) = slot;
    let snapshot = match outcome {
        Ok(Reply::Created(state)) | Ok(Reply::Mutated(Mutated { state, .. })) => {
            cart_bytes(key, state)
        }
        _ => text(key.tenant.as_str()) + text(key.cart_id.as_str()),
    };
    snapshot + text(id.as_str()) + text(fingerprint)
}

/// A replay under an idempotency key that another kind of call made (its fingerprint differed, so
/// this is only reachable by a corrupt record).
fn other_rpc<T>() -> Result<T, CartError> {
    Err(CartError::IdempotencyKeyReused)
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
        request: Option<&IdempotencyTag>,
    ) -> Result<Box<CartState>, CartError> {
        let mut shard = self.shard(key);
        let reply = self.once(&mut shard, key, request, now, |existing| {
            if existing.is_some() {
                return Err(CartError::CartAlreadyExists);
            }
            let state = CartState::create(cart, now, &self.policy.limits)?;
            Ok(Planned {
                change: Change::Put(Box::new(self.entry(state.clone(), key))),
                reply: Reply::Created(Box::new(state)),
            })
        })?;
        match reply {
            Reply::Created(state) => Ok(state),
            _ => other_rpc(),
        }
    }

    async fn get(&self, key: &CartKey, now: UnixMillis) -> Result<Box<CartState>, CartError> {
        let mut shard = self.shard(key);
        let entry = self
            .live_entry(&mut shard.carts, key, now)
            .ok_or(CartError::CartNotFound)?;
        // Only timestamps change: the cart's size does not, so a full store still reads.
        entry.state.thaw(now);
        if entry.state.touch(now, &self.policy) {
            entry.expires_at = entry.state.expires_at(&self.policy);
        }
        Ok(Box::new(entry.state.clone()))
    }

    async fn mutate(
        &self,
        key: &CartKey,
        mutation: Mutation,
        expected_version: i64,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<Mutated, CartError> {
        let mut shard = self.shard(key);
        let reply = self.once(&mut shard, key, request, now, |existing| {
            let entry = existing.ok_or(CartError::CartNotFound)?;
            // On a copy: the store takes the result only if its size fits.
            let mut state = entry.state.clone();
            state.thaw(now);
            let outcome = state.apply(&mutation, expected_version, now, &self.policy.limits)?;
            Ok(Planned {
                change: Change::Put(Box::new(self.entry(state.clone(), key))),
                reply: Reply::Mutated(Mutated {
                    state: Box::new(state),
                    outcome,
                }),
            })
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
        request: Option<&IdempotencyTag>,
    ) -> Result<i64, CartError> {
        let mut shard = self.shard(key);
        let reply = self.once(&mut shard, key, request, now, |existing| {
            let entry = existing.ok_or(CartError::CartNotFound)?;
            entry.state.check_open(expected_version)?;
            Ok(Planned {
                change: Change::Remove,
                reply: Reply::Removed(entry.state.item_count()),
            })
        })?;
        match reply {
            Reply::Removed(units) => Ok(units),
            _ => other_rpc(),
        }
    }

    async fn peek(&self, key: &CartKey, now: UnixMillis) -> Result<Box<CartState>, CartError> {
        let mut shard = self.shard(key);
        let entry = self
            .live_entry(&mut shard.carts, key, now)
            .ok_or(CartError::CartNotFound)?;
        let mut state = Box::new(entry.state.clone());
        state.thaw(now);
        Ok(state)
    }

    async fn index_cart(
        &self,
        customer: &CustomerKey,
        cart_id: &CartId,
        now: UnixMillis,
    ) -> Result<(), CartError> {
        let mut customers = self.customers();
        let index = customers.entry(customer.clone()).or_default();
        index.carts.retain(|id| id != cart_id);
        index.carts.insert(0, cart_id.clone());
        index.carts.truncate(MAX_INDEXED_CARTS);
        index.written_at = now;
        Ok(())
    }

    async fn indexed_carts(&self, customer: &CustomerKey) -> Result<Vec<CartId>, CartError> {
        Ok(self
            .customers()
            .get(customer)
            .map(|index| index.carts.clone())
            .unwrap_or_default())
    }

    async fn unindex_carts(
        &self,
        customer: &CustomerKey,
        cart_ids: &[CartId],
    ) -> Result<(), CartError> {
        let mut customers = self.customers();
        if let Some(index) = customers.get_mut(customer) {
            index.carts.retain(|id| !cart_ids.contains(id));
            if index.carts.is_empty() {
                customers.remove(customer);
            }
        }
        Ok(())
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

    fn cart(n: usize) -> CartKey {
        CartKey {
            cart_id: CartId::parse(&format!("c{n}")).unwrap(),
            ..key()
        }
    }

    fn empty_cart_bytes() -> usize {
        let state = CartState::create(new_cart(), 0, &CartPolicy::default().limits).unwrap();
        cart_bytes(&cart(0), &state)
    }

    #[test]
    fn every_byte_counted_in_is_counted_out() {
        let store = store();
        for n in 0..10 {
            block_on(store.create(&cart(n), new_cart(), 0, None)).unwrap();
        }
        let ten = store.held_bytes();
        assert!(ten >= 10 * empty_cart_bytes());
        block_on(store.remove(&cart(0), 0, 1, None)).unwrap();
        let delete = Mutation::Delete {
            order_number: OrderNumber::parse("O-1").unwrap(),
        };
        block_on(store.mutate(&cart(1), delete, 0, 1, Some(&tag("r1", b"d")))).unwrap();
        assert!(matches!(
            block_on(store.remove(&cart(0), 0, 2, Some(&tag("r2", b"x")))),
            Err(CartError::CartNotFound)
        ));
        // Two records and, in their shards, the tables that hold them.
        assert!(store.held_bytes() < ten + 16 * 1024);
        // The records expire after the request-id ttl (24 h), the carts after theirs.
        store.purge_expired(100 * 86_400_000);
        // What stays is the tables, which keep their size.
        let tables: usize = store
            .shards
            .iter()
            .map(|s| s.lock().unwrap().counted_tables())
            .sum();
        assert_eq!((store.cart_count(), store.held_bytes()), (0, tables));
    }

    #[test]
    fn a_full_store_refuses_growth_whole_and_keeps_reading_and_removing() {
        let store = MemoryStore::with_max_bytes(CartPolicy::default(), 1024 * 1024);
        let mut made = 0;
        while block_on(store.create(&cart(made), new_cart(), 0, None)).is_ok() {
            assert!(store.held_bytes() <= store.max_bytes());
            made += 1;
        }
        assert!(made > 3, "{made} carts in 1 MiB");
        let held = store.held_bytes();
        assert!(matches!(
            block_on(store.create(&cart(made), new_cart(), 0, None)),
            Err(CartError::StoreFull)
        ));
        // A refusal of the memory kind is not remembered: the same idempotency key runs later.
        assert!(matches!(
            block_on(store.create(&cart(made), new_cart(), 0, Some(&tag("r1", b"c")))),
            Err(CartError::StoreFull)
        ));
        assert_eq!(store.held_bytes(), held, "a refused call changes nothing");
        assert!(matches!(
            block_on(store.get(&cart(made), 1)),
            Err(CartError::CartNotFound)
        ));
        assert_eq!(block_on(store.get(&cart(0), 1)).unwrap().version, 1);
        assert_eq!(store.held_bytes(), held, "a read does not grow");
        block_on(store.remove(&cart(0), 0, 2, None)).unwrap();
        assert!(store.held_bytes() < held);
        // A Create under an idempotency key needs room for the cart, the remembered snapshot, and
        // maybe a first table for records in its shard: more Removes make it.
        let mut removed = 1;
        while block_on(store.create(&cart(made), new_cart(), 3, Some(&tag("r1", b"c")))).is_err() {
            assert!(removed < made, "room after removing every cart");
            block_on(store.remove(&cart(removed), 0, 2, None)).unwrap();
            removed += 1;
        }
        assert!(store.held_bytes() <= store.max_bytes());
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

    fn tag(id: &str, payload: &[u8]) -> IdempotencyTag {
        IdempotencyTag::new(IdempotencyKey::parse(id).unwrap(), "Clear", payload)
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
            Err(CartError::IdempotencyKeyReused)
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
