//! Merge (issue 17): a guest cart joins the customer's at login, on the in-memory store, a
//! real redis-server and a real 3-master Redis Cluster: every mode, every refusal (changing
//! nothing in either cart), a retry after a failure after each of its steps (each guest line
//! counted once), and AddItems on the guest cart racing the merge (never lost).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cart_service::domain::{
    CartId, CartKey, CartPolicy, CartState, IdempotencyTag, Mutation, NewCart, UnixMillis,
};
use cart_service::error::CartError;
use cart_service::pb;
use cart_service::store::redis::{Durability, RedisTimeouts};
use cart_service::store::{CartStore, CustomerKey, MemoryStore, Mutated, RedisStore, SharedStore};
use tonic::Code;

use crate::active_cart::{active_cart, cart_of, customer};
use crate::freeze::freeze;
use crate::helpers::{
    Backend, ServiceProcess, TestApp, assert_error, item, spawn_app, spawn_with_store,
};

on_every_store!(
    sum_adds_the_guest_lines_and_coupons_and_leaves_a_merged_tombstone,
    max_keep_source_and_keep_target_combine_lines_by_their_mode,
    without_a_customer_cart_the_guest_cart_becomes_it,
    every_refusal_changes_nothing_in_either_cart,
    a_retry_after_a_failure_after_any_step_counts_each_line_once,
    add_items_racing_a_merge_land_in_the_target_or_are_refused,
);

// A killed service only means something where the carts outlive it.
scenarios_on!(
    redis_process,
    crate::helpers::Backend::redis(),
    merges_killed_with_their_process_are_finished_by_the_retry
);
scenarios_on!(
    cluster_process,
    crate::helpers::Backend::cluster(),
    merges_killed_with_their_process_are_finished_by_the_retry
);

pub async fn merge(
    app: &TestApp,
    source: &str,
    customer_id: &str,
    mode: pb::MergeMode,
    request_id: &str,
) -> Result<pb::MergeResponse, tonic::Status> {
    app.client
        .clone()
        .merge(pb::MergeRequest {
            source_cart_id: source.into(),
            customer_id: customer_id.into(),
            mode: mode as i32,
            request_id: request_id.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn coupon(app: &TestApp, cart_id: &str, code: &str, amount: i64) {
    app.client
        .clone()
        .apply_coupon(pb::ApplyCouponRequest {
            cart_id: cart_id.into(),
            code: code.into(),
            amount,
            ..Default::default()
        })
        .await
        .expect("coupon applies");
}

async fn add(
    app: &TestApp,
    cart_id: &str,
    sku: &str,
    quantity: i64,
) -> Result<pb::Cart, tonic::Status> {
    app.client
        .clone()
        .add_items(pb::AddItemsRequest {
            cart_id: cart_id.into(),
            items: vec![item(sku, quantity, 100)],
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// sku → quantity.
fn quantities(cart: &pb::Cart) -> BTreeMap<String, i64> {
    cart.items
        .iter()
        .map(|l| (l.sku.clone(), l.quantity))
        .collect()
}

fn codes(cart: &pb::Cart) -> Vec<(String, i64)> {
    cart.applied_coupons
        .iter()
        .map(|c| (c.code.clone(), c.amount))
        .collect()
}

fn q(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
}

/// A customer's cart (A×1, C×1, coupon T) and a guest cart (A×2, B×1, coupons G and T).
async fn login_pair(app: &TestApp, me: &str) -> (pb::Cart, pb::Cart) {
    let mine = cart_of(app, me, &[("A", 1, 100), ("C", 1, 100)]).await;
    coupon(app, &mine.id, "T", 10).await;
    let guest = cart_of(app, "", &[("A", 2, 100), ("B", 1, 100)]).await;
    coupon(app, &guest.id, "G", 5).await;
    coupon(app, &guest.id, "T", 99).await;
    (
        app.get(&mine.id).await.unwrap(),
        app.get(&guest.id).await.unwrap(),
    )
}

async fn sum_adds_the_guest_lines_and_coupons_and_leaves_a_merged_tombstone(backend: Backend) {
    let app = spawn_app(backend).await;
    let me = customer();
    let (mine, guest) = login_pair(&app, &me).await;
    let merged = merge(&app, &guest.id, &me, pb::MergeMode::Unspecified, "login-1")
        .await
        .unwrap();
    let cart = merged.cart.clone().unwrap();
    assert_eq!(
        (cart.id.as_str(), merged.source_cart_id.as_str()),
        (mine.id.as_str(), guest.id.as_str())
    );
    assert_eq!(merged.lines_merged, 2);
    assert_eq!(quantities(&cart), q(&[("A", 3), ("B", 1), ("C", 1)]));
    // Deduplicated by code: the customer's T keeps its amount.
    assert_eq!(codes(&cart), [("T".to_owned(), 10), ("G".to_owned(), 5)]);
    assert_eq!(cart.version, mine.version + 1);

    let tombstone = app.get(&guest.id).await.unwrap();
    assert_eq!(tombstone.status(), pb::CartStatus::Merged);
    assert_eq!(tombstone.merged_into, mine.id);
    let retention = tombstone.expires_at.unwrap().seconds - tombstone.updated_at.unwrap().seconds;
    assert_eq!(
        retention,
        30 * 24 * 3600,
        "readable for the tombstone retention"
    );
    assert_eq!(
        quantities(&tombstone),
        quantities(&guest),
        "the tombstone keeps its lines"
    );
    assert_error(
        add(&app, &guest.id, "A", 1).await,
        Code::FailedPrecondition,
        "CART_MERGED",
    );
    assert_error(
        app.client
            .clone()
            .remove(pb::RemoveRequest {
                cart_id: guest.id.clone(),
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
        "CART_MERGED",
    );
    assert_eq!(active_cart(&app, &me).await.unwrap().id, mine.id);

    // The same request again answers the same merge and adds nothing.
    let again = merge(&app, &guest.id, &me, pb::MergeMode::Unspecified, "login-1")
        .await
        .unwrap();
    assert_eq!(quantities(again.cart.as_ref().unwrap()), quantities(&cart));
    assert_eq!(again.lines_merged, 2);
    // Another request on the tombstone is refused.
    assert_error(
        merge(&app, &guest.id, &me, pb::MergeMode::Sum, "login-2").await,
        Code::FailedPrecondition,
        "CART_MERGED",
    );
}

async fn max_keep_source_and_keep_target_combine_lines_by_their_mode(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (pb::MergeMode::Max, q(&[("A", 2), ("B", 1), ("C", 1)]), 2),
        (pb::MergeMode::KeepSource, q(&[("A", 2), ("B", 1)]), 2),
        (pb::MergeMode::KeepTarget, q(&[("A", 1), ("C", 1)]), 0),
    ];
    for (mode, expected, lines_merged) in cases {
        let me = customer();
        let (mine, guest) = login_pair(&app, &me).await;
        let merged = merge(&app, &guest.id, &me, mode, "login").await.unwrap();
        let cart = merged.cart.unwrap();
        assert_eq!(cart.id, mine.id, "{mode:?}");
        assert_eq!(quantities(&cart), expected, "{mode:?}");
        assert_eq!(merged.lines_merged, lines_merged, "{mode:?}");
        assert_eq!(
            codes(&cart),
            [("T".to_owned(), 10), ("G".to_owned(), 5)],
            "{mode:?}"
        );
        let (units, subtotal): (i64, i64) = expected
            .values()
            .fold((0, 0), |(u, s), n| (u + n, s + n * 100));
        assert_eq!(
            (cart.item_count, cart.subtotal),
            (units, subtotal),
            "{mode:?}"
        );
        assert_eq!(
            app.get(&guest.id).await.unwrap().status(),
            pb::CartStatus::Merged
        );
    }
}

async fn without_a_customer_cart_the_guest_cart_becomes_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let me = customer();
    let guest = cart_of(&app, "", &[("A", 2, 100)]).await;
    let merged = merge(&app, &guest.id, &me, pb::MergeMode::Sum, "login")
        .await
        .unwrap();
    let cart = merged.cart.unwrap();
    assert_eq!(
        (cart.id.as_str(), cart.customer_id.as_str()),
        (guest.id.as_str(), me.as_str())
    );
    assert_eq!(
        (cart.status(), merged.lines_merged),
        (pb::CartStatus::Active, 1)
    );
    assert_eq!(quantities(&cart), q(&[("A", 2)]));
    assert_eq!(active_cart(&app, &me).await.unwrap().id, guest.id);
    // Again: the same cart, still the customer's, unchanged.
    let again = merge(&app, &guest.id, &me, pb::MergeMode::Sum, "login")
        .await
        .unwrap();
    assert_eq!(again.cart.unwrap().version, cart.version);
}

async fn every_refusal_changes_nothing_in_either_cart(backend: Backend) {
    let app = spawn_app(backend).await;
    let me = customer();
    let (mine, guest) = login_pair(&app, &me).await;
    let unchanged = |before: &pb::Cart, after: &pb::Cart| {
        assert_eq!(
            (
                quantities(after),
                codes(after),
                after.version,
                after.status()
            ),
            (
                quantities(before),
                codes(before),
                before.version,
                before.status()
            )
        );
    };
    let check = |what: &'static str| {
        let app = &app;
        let (mine, guest) = (mine.clone(), guest.clone());
        async move {
            unchanged(&mine, &app.get(&mine.id).await.unwrap());
            unchanged(&guest, &app.get(&guest.id).await.unwrap());
            let _ = what;
        }
    };
    // Another currency.
    let euros = cart_of(&app, "", &[]).await;
    let euro_guest = app
        .client
        .clone()
        .create(pb::CreateRequest {
            currency: "EUR".into(),
            items: vec![item("E", 1, 100)],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let _ = euros;
    assert_error(
        merge(&app, &euro_guest.id, &me, pb::MergeMode::Sum, "m-1").await,
        Code::FailedPrecondition,
        "CURRENCY_MISMATCH",
    );
    assert_eq!(
        app.get(&euro_guest.id).await.unwrap().status(),
        pb::CartStatus::Active
    );
    check("currency").await;
    // A limit: 999 more units of A would pass 999.
    let big = cart_of(&app, "", &[("A", 999, 1)]).await;
    assert_error(
        merge(&app, &big.id, &me, pb::MergeMode::Sum, "m-2").await,
        Code::FailedPrecondition,
        "QUANTITY_LIMIT_EXCEEDED",
    );
    assert_eq!(
        app.get(&big.id).await.unwrap().status(),
        pb::CartStatus::Active
    );
    check("limit").await;
    // A frozen source, then a frozen target.
    let frozen_guest = cart_of(&app, "", &[("Z", 1, 1)]).await;
    freeze(&app, &frozen_guest.id, "checkout", 0).await.unwrap();
    assert_error(
        merge(&app, &frozen_guest.id, &me, pb::MergeMode::Sum, "m-3").await,
        Code::FailedPrecondition,
        "CART_FROZEN",
    );
    check("frozen source").await;
    let frozen_mine = freeze(&app, &mine.id, "checkout", 0).await.unwrap();
    assert_error(
        merge(&app, &guest.id, &me, pb::MergeMode::Sum, "m-4").await,
        Code::FailedPrecondition,
        "CART_FROZEN",
    );
    unchanged(&frozen_mine, &app.get(&mine.id).await.unwrap());
    unchanged(&guest, &app.get(&guest.id).await.unwrap());
    // Another customer's cart is not found; so is an unknown one.
    let theirs = cart_of(&app, &customer(), &[("Y", 1, 1)]).await;
    assert_error(
        merge(&app, &theirs.id, &me, pb::MergeMode::Sum, "m-5").await,
        Code::NotFound,
        "CART_NOT_FOUND",
    );
    assert_eq!(app.get(&theirs.id).await.unwrap().version, theirs.version);
    assert_error(
        merge(&app, "no-such-cart", &me, pb::MergeMode::Sum, "m-6").await,
        Code::NotFound,
        "CART_NOT_FOUND",
    );
    // A Merge needs its request id, and a customer.
    assert_error(
        merge(&app, &guest.id, &me, pb::MergeMode::Sum, "").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_error(
        merge(&app, &guest.id, "", pb::MergeMode::Sum, "m-7").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    unchanged(&guest, &app.get(&guest.id).await.unwrap());
}

/// Where the injected failure strikes: the store call of one merge step, before it is made
/// (the change never lands) or after (it lands, its answer is lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Seal,
    Absorb,
    Finish,
}

fn step_of(mutation: &Mutation) -> Option<Step> {
    match mutation {
        Mutation::Seal { .. } => Some(Step::Seal),
        Mutation::Absorb { .. } => Some(Step::Absorb),
        Mutation::FinishMerge { .. } => Some(Step::Finish),
        _ => None,
    }
}

/// A real store that fails the next call of one merge step, once (the store "goes away").
struct StepFaults {
    inner: SharedStore,
    armed: Mutex<Option<(Step, bool)>>,
    fired: AtomicUsize,
}

impl StepFaults {
    fn new(inner: SharedStore) -> Arc<Self> {
        Arc::new(Self {
            inner,
            armed: Mutex::new(None),
            fired: AtomicUsize::new(0),
        })
    }

    fn arm(&self, step: Step, after: bool) {
        *self.armed.lock().unwrap() = Some((step, after));
    }

    fn outage() -> CartError {
        CartError::Unavailable("injected: the store went away".into())
    }
}

#[async_trait]
impl CartStore for StepFaults {
    async fn create(
        &self,
        key: &CartKey,
        cart: NewCart,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<Box<CartState>, CartError> {
        self.inner.create(key, cart, now, request).await
    }

    async fn get(&self, key: &CartKey, now: UnixMillis) -> Result<Box<CartState>, CartError> {
        self.inner.get(key, now).await
    }

    async fn mutate(
        &self,
        key: &CartKey,
        mutation: Mutation,
        expected_version: i64,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<Mutated, CartError> {
        let strike = {
            let mut armed = self.armed.lock().unwrap();
            match (*armed, step_of(&mutation)) {
                (Some((step, after)), Some(this)) if step == this => {
                    *armed = None;
                    Some(after)
                }
                _ => None,
            }
        };
        match strike {
            None => {
                self.inner
                    .mutate(key, mutation, expected_version, now, request)
                    .await
            }
            Some(false) => {
                self.fired.fetch_add(1, Ordering::Relaxed);
                Err(Self::outage())
            }
            Some(true) => {
                self.fired.fetch_add(1, Ordering::Relaxed);
                self.inner
                    .mutate(key, mutation, expected_version, now, request)
                    .await?;
                Err(Self::outage())
            }
        }
    }

    async fn remove(
        &self,
        key: &CartKey,
        expected_version: i64,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<i64, CartError> {
        self.inner.remove(key, expected_version, now, request).await
    }

    async fn peek(&self, key: &CartKey, now: UnixMillis) -> Result<Box<CartState>, CartError> {
        self.inner.peek(key, now).await
    }

    async fn index_cart(
        &self,
        customer: &CustomerKey,
        cart_id: &CartId,
        now: UnixMillis,
    ) -> Result<(), CartError> {
        self.inner.index_cart(customer, cart_id, now).await
    }

    async fn indexed_carts(&self, customer: &CustomerKey) -> Result<Vec<CartId>, CartError> {
        self.inner.indexed_carts(customer).await
    }

    async fn unindex_carts(
        &self,
        customer: &CustomerKey,
        cart_ids: &[CartId],
    ) -> Result<(), CartError> {
        self.inner.unindex_carts(customer, cart_ids).await
    }

    async fn ping(&self) -> Result<(), CartError> {
        self.inner.ping().await
    }
}

/// The store's name in the figures the tests print.
fn store_name(backend: &Backend) -> &'static str {
    match backend {
        Backend::Memory => "memory",
        Backend::Redis(url) if url.starts_with("redis+cluster://") => "cluster",
        Backend::Redis(_) => "redis",
    }
}

/// The real store of `backend`, as the app would build it.
pub async fn real_store(backend: &Backend) -> SharedStore {
    match backend {
        Backend::Memory => MemoryStore::new(CartPolicy::default()),
        Backend::Redis(url) => {
            let store = RedisStore::new(
                url,
                CartPolicy::default(),
                RedisTimeouts::default(),
                Durability::default(),
                None,
            )
            .expect("store");
            store.load_scripts().await.expect("scripts load");
            Arc::new(store)
        }
    }
}

async fn a_retry_after_a_failure_after_any_step_counts_each_line_once(backend: Backend) {
    let store = store_name(&backend);
    let faults = StepFaults::new(real_store(&backend).await);
    let app = spawn_with_store(faults.clone()).await;
    let mut retried = 0;
    for step in [Step::Seal, Step::Absorb, Step::Finish] {
        for after in [false, true] {
            let me = customer();
            let (mine, guest) = login_pair(&app, &me).await;
            faults.arm(step, after);
            let request = format!("login-{step:?}-{after}");
            let failed = merge(&app, &guest.id, &me, pb::MergeMode::Sum, &request).await;
            assert_error(failed, Code::Unavailable, "STORE_UNAVAILABLE");
            // Until the retry, nothing is lost: the guest's lines are in the source, or
            // counted once in the target.
            let merged = merge(&app, &guest.id, &me, pb::MergeMode::Sum, &request)
                .await
                .unwrap_or_else(|e| panic!("retry after {step:?} (after: {after}): {e:?}"));
            retried += 1;
            let cart = merged.cart.unwrap();
            assert_eq!(cart.id, mine.id);
            assert_eq!(
                quantities(&cart),
                q(&[("A", 3), ("B", 1), ("C", 1)]),
                "{step:?} after: {after}"
            );
            assert_eq!(cart.version, mine.version + 1, "one change of the target");
            assert_eq!(codes(&cart), [("T".to_owned(), 10), ("G".to_owned(), 5)]);
            assert_eq!(
                app.get(&guest.id).await.unwrap().status(),
                pb::CartStatus::Merged
            );
            // A third call answers the same.
            let again = merge(&app, &guest.id, &me, pb::MergeMode::Sum, &request)
                .await
                .unwrap();
            assert_eq!(quantities(again.cart.as_ref().unwrap()), quantities(&cart));
            assert_eq!(app.get(&mine.id).await.unwrap().version, cart.version);
        }
    }
    assert_eq!((faults.fired.load(Ordering::Relaxed), retried), (6, 6));
    eprintln!(
        "merge faults ({store}): 6 injected (seal, absorb, finish × before, after), 6 retries, every guest line counted once"
    );
}

/// Clients adding to the guest cart in a loop, each until its first refusal.
const RACERS: usize = 4;
/// Adds of one racer at most (a merge that never comes fails the test).
const MAX_ADDS: usize = 500;

async fn add_items_racing_a_merge_land_in_the_target_or_are_refused(backend: Backend) {
    let store = store_name(&backend);
    let app = spawn_app(backend).await;
    let me = customer();
    let (mine, guest) = login_pair(&app, &me).await;
    let landed = Arc::new(AtomicUsize::new(0));
    let mut racers = Vec::new();
    for _ in 0..RACERS {
        let mut client = app.client.clone();
        let landed = landed.clone();
        let id = guest.id.clone();
        racers.push(tokio::spawn(async move {
            for _ in 0..MAX_ADDS {
                let result = client
                    .add_items(pb::AddItemsRequest {
                        cart_id: id.clone(),
                        items: vec![item("R", 1, 1)],
                        ..Default::default()
                    })
                    .await;
                match result {
                    Ok(_) => landed.fetch_add(1, Ordering::Relaxed),
                    Err(status) => {
                        assert_eq!(crate::helpers::reason(&status), "CART_MERGED", "{status:?}");
                        return 1;
                    }
                };
            }
            panic!("{MAX_ADDS} adds and the merge never sealed the cart");
        }));
    }
    // The merge starts while the adds run.
    while landed.load(Ordering::Relaxed) < 2 * RACERS {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let merged = merge(&app, &guest.id, &me, pb::MergeMode::Sum, "login")
        .await
        .unwrap();
    let mut refused = 0;
    for racer in racers {
        refused += racer.await.unwrap();
    }
    let landed = landed.load(Ordering::Relaxed);
    assert_eq!(refused, RACERS, "each racer stops at its first refusal");
    let target = app.get(&mine.id).await.unwrap();
    let mut expected = q(&[("A", 3), ("B", 1), ("C", 1)]);
    expected.insert("R".into(), landed as i64);
    assert_eq!(
        quantities(&target),
        expected,
        "every AddItems that succeeded ({landed}) is in the target, once"
    );
    assert_eq!(merged.cart.unwrap().version, target.version);
    eprintln!(
        "merge race ({store}): {} AddItems, {landed} landed (all in the target), {refused} refused CART_MERGED",
        landed + refused
    );
}

/// Merges in flight when the service process is killed.
const KILLED_MERGES: usize = 16;

async fn merges_killed_with_their_process_are_finished_by_the_retry(backend: Backend) {
    let store = store_name(&backend);
    let Backend::Redis(url) = backend else {
        panic!("a Redis backend");
    };
    let first = ServiceProcess::on_redis(&url);
    let client = first.client().await;
    // Carts made through an app of its own on the same Redis (the same default tenant).
    let app = crate::helpers::spawn_app(Backend::Redis(url.clone())).await;
    let mut pairs = Vec::new();
    for _ in 0..KILLED_MERGES {
        let me = customer();
        let (mine, guest) = login_pair(&app, &me).await;
        pairs.push((me, mine, guest));
    }
    let mut calls = Vec::new();
    for (i, (me, _, guest)) in pairs.iter().enumerate() {
        let mut client = client.clone();
        let request = pb::MergeRequest {
            source_cart_id: guest.id.clone(),
            customer_id: me.clone(),
            mode: pb::MergeMode::Sum as i32,
            request_id: format!("login-{i}"),
        };
        calls.push(tokio::spawn(
            async move { client.merge(request).await.is_ok() },
        ));
    }
    // Kill it once the first guest cart is sealed: the others are at their own steps.
    let started = std::time::Instant::now();
    'watch: while started.elapsed() < std::time::Duration::from_secs(10) {
        for (_, _, guest) in &pairs {
            if app.get(&guest.id).await.unwrap().status() == pb::CartStatus::Merged {
                break 'watch;
            }
        }
    }
    drop(first);
    let mut answered = 0;
    for call in calls {
        answered += usize::from(call.await.unwrap());
    }
    // Where each merge stopped: [not sealed, sealed, lines in the target, finished].
    let mut stopped = [0; 4];
    for (_, mine, guest) in &pairs {
        let source = app.get(&guest.id).await.unwrap();
        let target = app.get(&mine.id).await.unwrap();
        let step = match (
            source.status(),
            target.version > mine.version,
            source.version > guest.version,
        ) {
            (pb::CartStatus::Active, false, _) => 0,
            (pb::CartStatus::Merged, false, _) => 1,
            (pb::CartStatus::Merged, true, false) => 2,
            (pb::CartStatus::Merged, true, true) => 3,
            other => panic!("a merge stopped in an impossible state {other:?}"),
        };
        stopped[step] += 1;
    }

    let second = ServiceProcess::on_redis(&url);
    let mut client = second.client().await;
    for (i, (me, mine, guest)) in pairs.iter().enumerate() {
        let merged = client
            .merge(pb::MergeRequest {
                source_cart_id: guest.id.clone(),
                customer_id: me.clone(),
                mode: pb::MergeMode::Sum as i32,
                request_id: format!("login-{i}"),
            })
            .await
            .unwrap_or_else(|e| panic!("retry {i}: {e:?}"))
            .into_inner();
        let cart = merged.cart.unwrap();
        assert_eq!(cart.id, mine.id);
        assert_eq!(
            quantities(&cart),
            q(&[("A", 3), ("B", 1), ("C", 1)]),
            "merge {i}"
        );
        assert_eq!(
            app.get(&mine.id).await.unwrap().version,
            mine.version + 1,
            "merge {i}"
        );
        assert_eq!(
            app.get(&guest.id).await.unwrap().status(),
            pb::CartStatus::Merged
        );
    }
    drop(second);
    eprintln!(
        "merge kill ({store}): {KILLED_MERGES} merges, {answered} answered before the kill; stopped at: {} not sealed, {} sealed, {} lines in the target, {} finished; {KILLED_MERGES} retried: every guest line counted once",
        stopped[0], stopped[1], stopped[2], stopped[3]
    );
}
