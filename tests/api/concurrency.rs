//! Concurrency: many clients mutating one cart must leave a history that is a single
//! sequence, with every successful mutation reported under its own version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cart_service::domain::{
    CartId, CartKey, CartPolicy, CartState, IdempotencyTag, Mutation, NewCart, UnixMillis,
};
use cart_service::error::CartError;
use cart_service::pb;
use cart_service::store::{CartStore, CustomerKey, Mutated};

use crate::helpers::{Backend, TestApp, item, spawn_app, spawn_with_store};
use crate::history::{Applied, End, Lcg, Op, SKUS, check, line_id, price, sku};

const CLIENTS: usize = 16;
const OPS_PER_CLIENT: usize = 160;

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
                client.add_items(request).await.map(|r| (r.into_inner(), 0)),
            )
        } else if roll < 85 {
            let n = rng.below(SKUS as u64) as usize;
            let quantity = rng.below(5) as i64;
            let request = pb::UpdateItemsRequest {
                cart_id: cart_id.clone(),
                updates: vec![pb::ItemUpdate {
                    line_id: line_id(n),
                    quantity,
                }],
                expected_version: 0,
                request_id: String::new(),
            };
            (
                Op::Update(vec![(n, quantity)]),
                client
                    .update_items(request)
                    .await
                    .map(|r| (r.into_inner(), 0)),
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
                .map(|r| r.into_inner())
                .map(|r| (*r.cart.expect("cart"), r.items_cleared));
            (Op::Clear, result)
        };
        match result {
            Ok((cart, cleared)) => applied.push(Applied::new(op, &cart, cleared)),
            // Updating a line a concurrent Clear removed is a legitimate refusal.
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(status) => panic!("unexpected failure: {status:?}"),
        }
    }
    applied
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
    check(applied, &End::Cart(Box::new(last))).map(|()| count)
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
        _request: Option<&IdempotencyTag>,
    ) -> Result<Box<CartState>, CartError> {
        let state = CartState::create(cart, now, &CartPolicy::default().limits)?;
        self.carts
            .lock()
            .unwrap()
            .insert(key.clone(), state.clone());
        Ok(Box::new(state))
    }

    async fn get(&self, key: &CartKey, _now: UnixMillis) -> Result<Box<CartState>, CartError> {
        self.read(key).map(Box::new)
    }

    async fn mutate(
        &self,
        key: &CartKey,
        mutation: Mutation,
        expected_version: i64,
        now: UnixMillis,
        _request: Option<&IdempotencyTag>,
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
        Ok(Mutated {
            state: Box::new(state),
            outcome,
        })
    }

    async fn remove(
        &self,
        key: &CartKey,
        _expected: i64,
        _now: UnixMillis,
        _request: Option<&IdempotencyTag>,
    ) -> Result<i64, CartError> {
        let state = self
            .carts
            .lock()
            .unwrap()
            .remove(key)
            .ok_or(CartError::CartNotFound)?;
        Ok(state.item_count())
    }

    async fn peek(&self, key: &CartKey, _now: UnixMillis) -> Result<Box<CartState>, CartError> {
        self.read(key).map(Box::new)
    }

    // No customer index: this store only serves the sequence check.
    async fn index_cart(
        &self,
        _: &CustomerKey,
        _: &CartId,
        _: UnixMillis,
    ) -> Result<(), CartError> {
        Ok(())
    }

    async fn indexed_carts(&self, _: &CustomerKey) -> Result<Vec<CartId>, CartError> {
        Ok(Vec::new())
    }

    async fn unindex_carts(&self, _: &CustomerKey, _: &[CartId]) -> Result<(), CartError> {
        Ok(())
    }

    async fn ping(&self) -> Result<(), CartError> {
        Ok(())
    }
}
