//! Concurrency: many clients mutating one cart must leave a history that is a single
//! sequence, with every successful mutation reported under its own version.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cart_service::domain::{
    CartHeader, CartKey, CartPolicy, CartState, Currency, LineId, LineUpdate, Mutation, NewCart,
    NewLine, RequestTag, Sku, UnixMillis,
};
use cart_service::error::CartError;
use cart_service::pb;
use cart_service::store::{CartStore, Mutated};

use crate::helpers::{Backend, TestApp, item, spawn_app, spawn_with_store};

const CLIENTS: usize = 16;
const OPS_PER_CLIENT: usize = 160;
const SKUS: usize = 8;

fn sku(n: usize) -> String {
    format!("SKU-{n}")
}

fn price(n: usize) -> i64 {
    100 * (n as i64 + 1)
}

/// A successful mutation as a client saw it.
#[derive(Debug, Clone)]
enum Op {
    Add(Vec<(usize, i64)>),
    Update(Vec<(usize, i64)>),
    Clear,
}

#[derive(Debug)]
struct Applied {
    op: Op,
    /// The cart the server answered with: its version and its lines (sku, quantity).
    version: i64,
    lines: Vec<(String, i64)>,
}

fn lines_of(cart: &pb::Cart) -> Vec<(String, i64)> {
    cart.items
        .iter()
        .map(|l| (l.sku.clone(), l.quantity))
        .collect()
}

/// Tiny deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

async fn client_loop(app: Arc<TestApp>, cart_id: String, seed: u64) -> Vec<Applied> {
    let mut client = app.new_client().await;
    let mut rng = Lcg(seed);
    let mut applied = Vec::new();
    for _ in 0..OPS_PER_CLIENT {
        let roll = rng.below(100);
        let (op, result) = if roll < 55 {
            let picks: Vec<(usize, i64)> = (0..1 + rng.below(2))
                .map(|_| (rng.below(SKUS as u64) as usize, 1 + rng.below(3) as i64))
                .collect();
            let mut merged: Vec<(usize, i64)> = Vec::new();
            for (n, q) in picks {
                match merged.iter_mut().find(|(m, _)| *m == n) {
                    Some(entry) => entry.1 += q,
                    None => merged.push((n, q)),
                }
            }
            let request = pb::AddItemsRequest {
                cart_id: cart_id.clone(),
                items: merged
                    .iter()
                    .map(|&(n, q)| item(&sku(n), q, price(n)))
                    .collect(),
                expected_version: 0,
                request_id: String::new(),
            };
            (
                Op::Add(merged),
                client.add_items(request).await.map(|r| r.into_inner()),
            )
        } else if roll < 85 {
            let n = rng.below(SKUS as u64) as usize;
            let quantity = rng.below(5) as i64;
            let line_id = LineId::for_sku(&Sku::parse(&sku(n), 64).unwrap()).to_string();
            let request = pb::UpdateItemsRequest {
                cart_id: cart_id.clone(),
                updates: vec![pb::ItemUpdate { line_id, quantity }],
                expected_version: 0,
                request_id: String::new(),
            };
            (
                Op::Update(vec![(n, quantity)]),
                client.update_items(request).await.map(|r| r.into_inner()),
            )
        } else {
            let request = pb::ClearRequest {
                cart_id: cart_id.clone(),
                reason: "concurrency".into(),
                ..Default::default()
            };
            let result = client
                .clear(request)
                .await
                .map(|r| r.into_inner().cart.expect("cart"));
            (Op::Clear, result)
        };
        match result {
            Ok(cart) => applied.push(Applied {
                op,
                version: cart.version,
                lines: lines_of(&cart),
            }),
            // Updating a line a concurrent Clear removed is a legitimate refusal.
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(status) => panic!("unexpected failure: {status:?}"),
        }
    }
    applied
}

fn new_line(n: usize, quantity: i64) -> NewLine {
    let sku = Sku::parse(&sku(n), 64).unwrap();
    NewLine {
        line_id: LineId::for_sku(&sku),
        sku,
        product_id: String::new(),
        title: String::new(),
        quantity: quantity as u32,
        unit_price: price(n),
        attributes: BTreeMap::new(),
        currency: None,
    }
}

/// Checks that the successful mutations form one sequence (versions 2, 3, ... without gap or
/// repeat), that replaying them in that order through the domain model reproduces every
/// reply, and that the final cart is the end of that sequence.
fn check_history(mut applied: Vec<Applied>, last: &pb::Cart) -> Result<(), String> {
    applied.sort_by_key(|a| a.version);
    for (i, a) in applied.iter().enumerate() {
        let expected = i as i64 + 2;
        if a.version != expected {
            return Err(format!(
                "{} successful mutations, but version {} reported where {expected} was due: updates were lost",
                applied.len(),
                a.version
            ));
        }
    }
    if last.version != applied.len() as i64 + 1 {
        return Err(format!(
            "final version {} after {} mutations",
            last.version,
            applied.len()
        ));
    }
    let limits = cart_service::domain::Limits::default();
    let header = CartHeader {
        customer_id: String::new(),
        session_id: String::new(),
        channel: String::new(),
        currency: Currency::parse("USD").unwrap(),
        locale: String::new(),
        metadata: BTreeMap::new(),
    };
    let mut model = CartState::create(
        NewCart {
            header,
            items: vec![],
        },
        0,
        &limits,
    )
    .unwrap();
    for a in &applied {
        let mutation = match &a.op {
            Op::Add(items) => {
                Mutation::AddItems(items.iter().map(|&(n, q)| new_line(n, q)).collect())
            }
            Op::Update(updates) => Mutation::UpdateItems(
                updates
                    .iter()
                    .map(|&(n, q)| LineUpdate {
                        line_id: new_line(n, 1).line_id,
                        quantity: q as u32,
                    })
                    .collect(),
            ),
            Op::Clear => Mutation::Clear {
                preserve_coupons: false,
                reason: String::new(),
            },
        };
        model.apply(&mutation, 0, 0, &limits).map_err(|e| {
            format!(
                "version {}: {:?} succeeded on the server but not in sequence: {e}",
                a.version, a.op
            )
        })?;
        let expected: Vec<_> = model
            .lines
            .iter()
            .map(|l| (l.sku.to_string(), i64::from(l.quantity)))
            .collect();
        if expected != a.lines {
            return Err(format!(
                "version {}: reply {:?}, sequence gives {expected:?}",
                a.version, a.lines
            ));
        }
    }
    let expected: Vec<_> = model
        .lines
        .iter()
        .map(|l| (l.sku.to_string(), i64::from(l.quantity)))
        .collect();
    if lines_of(last) != expected {
        return Err(format!(
            "final lines {:?}, sequence gives {expected:?}",
            lines_of(last)
        ));
    }
    let (units, money): (i64, i64) = last.items.iter().fold((0, 0), |(u, m), l| {
        (u + l.quantity, m + l.quantity * l.unit_price)
    });
    if (last.item_count, last.subtotal, last.total) != (units, money, money) {
        return Err("final totals differ from the sum of the lines".into());
    }
    Ok(())
}

async fn hammer(app: TestApp) -> Result<usize, String> {
    let app = Arc::new(app);
    let cart = app.create_cart(&[]).await;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client_loop(app.clone(), cart.id.clone(), 7 + i as u64)))
        .collect();
    let mut applied = Vec::new();
    for worker in workers {
        applied.extend(worker.await.expect("worker completes"));
    }
    let count = applied.len();
    let last = app.get(&cart.id).await.expect("final read");
    check_history(applied, &last).map(|()| count)
}

async fn concurrent_mutations_form_one_sequence(backend: Backend) {
    let app = spawn_app(backend).await;
    let successes = hammer(app).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        successes > CLIENTS * OPS_PER_CLIENT / 2,
        "only {successes} mutations succeeded"
    );
}

/// 16 clients × 160 mixed AddItems/UpdateItems/Clear on one in-memory cart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_concurrent_mutations_form_one_sequence() {
    concurrent_mutations_form_one_sequence(Backend::Memory).await;
}

/// 16 clients × 160 mixed AddItems/UpdateItems/Clear on one cart in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_concurrent_mutations_form_one_sequence() {
    concurrent_mutations_form_one_sequence(Backend::redis()).await;
}

/// The check above is not vacuous: a store that reads, then writes, loses updates and fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_modify_write_store_fails_the_sequence_check() {
    let store = Arc::new(ReadModifyWriteStore::default());
    let app = spawn_with_store(store).await;
    let verdict = hammer(app).await;
    assert!(verdict.is_err(), "lost updates went unnoticed");
}

/// Deliberately broken: reads the cart, awaits, then writes back what it computed.
#[derive(Default)]
struct ReadModifyWriteStore {
    carts: Mutex<HashMap<CartKey, CartState>>,
}

impl ReadModifyWriteStore {
    fn read(&self, key: &CartKey) -> Result<CartState, CartError> {
        self.carts
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .ok_or(CartError::CartNotFound)
    }
}

#[async_trait]
impl CartStore for ReadModifyWriteStore {
    async fn create(
        &self,
        key: &CartKey,
        cart: NewCart,
        now: UnixMillis,
        _request: Option<&RequestTag>,
    ) -> Result<CartState, CartError> {
        let state = CartState::create(cart, now, &CartPolicy::default().limits)?;
        self.carts
            .lock()
            .unwrap()
            .insert(key.clone(), state.clone());
        Ok(state)
    }

    async fn get(&self, key: &CartKey, _now: UnixMillis) -> Result<CartState, CartError> {
        self.read(key)
    }

    async fn mutate(
        &self,
        key: &CartKey,
        mutation: Mutation,
        expected_version: i64,
        now: UnixMillis,
        _request: Option<&RequestTag>,
    ) -> Result<Mutated, CartError> {
        let mut state = self.read(key)?;
        tokio::time::sleep(Duration::from_micros(200)).await;
        let outcome = state.apply(
            &mutation,
            expected_version,
            now,
            &CartPolicy::default().limits,
        )?;
        self.carts
            .lock()
            .unwrap()
            .insert(key.clone(), state.clone());
        Ok(Mutated { state, outcome })
    }

    async fn remove(
        &self,
        key: &CartKey,
        _expected: i64,
        _now: UnixMillis,
        _request: Option<&RequestTag>,
    ) -> Result<i64, CartError> {
        let state = self
            .carts
            .lock()
            .unwrap()
            .remove(key)
            .ok_or(CartError::CartNotFound)?;
        Ok(state.item_count())
    }

    async fn ping(&self) -> Result<(), CartError> {
        Ok(())
    }
}
