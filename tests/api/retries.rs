//! Lost answers: clients behind a loopback proxy that cuts connections after the service
//! answered, retrying every mutation until they get an answer.
//!
//! With request ids every mutation applies exactly once (each cart's history checks out
//! against the domain model); without them the same run shows double-applies, which proves
//! the check can fail.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cart_service::pb;
use cart_service::pb::cart_service_client::CartServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::helpers::{Backend, create_request, item, spawn_app};
use crate::history::{Applied, End, Lcg, Op, SKUS, check, line_id, price, sku};

const CLIENTS: usize = 16;
const OPS_PER_CLIENT: usize = 150;
/// Carts every client mutates concurrently.
const SHARED_CARTS: usize = 4;
/// Percent of the service's writes after which the proxy cuts the connection instead.
const CUT_PERCENT: u64 = 8;
/// A client ends its own cart (Delete or Remove) and starts another after this many ops on it.
const OPS_PER_OWN_CART: usize = 12;

/// A loopback TCP proxy in front of the service that loses answers: past a connection's first
/// two writes from the service (the HTTP/2 handshake), each write is forwarded, or — with
/// probability `cut_percent` — dropped together with the connection. The request it answered
/// has been executed; its client only learns that the connection broke.
struct LossyProxy {
    addr: SocketAddr,
    cuts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl LossyProxy {
    async fn start(target: SocketAddr, cut_percent: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cuts = Arc::new(AtomicUsize::new(0));
        let counter = cuts.clone();
        let task = tokio::spawn(async move {
            let mut seed = 1;
            while let Ok((client, _)) = listener.accept().await {
                seed += 1;
                tokio::spawn(forward(client, target, cut_percent, seed, counter.clone()));
            }
        });
        Self { addr, cuts, task }
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    client: TcpStream,
    target: SocketAddr,
    cut_percent: u64,
    seed: u64,
    cuts: Arc<AtomicUsize>,
) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = tokio::io::copy(&mut client_read, &mut server_write);
    let answers = async {
        let mut rng = Lcg(seed);
        let mut buf = vec![0u8; 64 * 1024];
        let mut writes = 0;
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            writes += 1;
            if writes > 2 && rng.below(100) < cut_percent {
                cuts.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Whichever side ends first, both connections close when the halves drop.
    tokio::select! {
        _ = requests => {}
        _ = answers => {}
    }
}

/// Whether a failed call is an answer of the service (a domain refusal), not a lost one.
fn is_answer(status: &tonic::Status) -> bool {
    status.get_error_details().error_info().is_some_and(|info| {
        !matches!(
            info.reason.as_str(),
            "STORE_UNAVAILABLE" | "REPLICATION_TIMEOUT" | "DEADLINE_EXCEEDED"
        )
    })
}

/// Sends `call` until the service answers; counts the attempts whose answer was lost.
async fn until_answered<T, F, Fut>(lost: &mut usize, mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    for _ in 0..200 {
        match call().await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) if is_answer(&status) => return Err(status),
            Err(_) => {
                *lost += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    panic!("no answer after 200 attempts");
}

/// Sends `$request` with `$client.$method` until answered (see [`until_answered`]).
macro_rules! send {
    ($seen:ident, $client:ident, $method:ident, $request:ident) => {
        until_answered(&mut $seen.lost, || {
            let mut client = $client.clone();
            let request = timed($request.clone());
            async move { client.$method(request).await }
        })
    };
}

/// A request with a deadline, so a cut that goes unnoticed cannot hang the client.
fn timed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(5));
    request
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged mutations by cart id.
    applied: BTreeMap<String, Vec<Applied>>,
    /// How each of the client's own carts ended (removed carts only; the rest are read).
    removed: BTreeMap<String, i64>,
    lost: usize,
    calls: usize,
}

/// The request id of a client's n-th operation, or none.
fn request_id(with_ids: bool, client: usize, n: usize) -> String {
    if with_ids {
        format!("c{client}-op{n}")
    } else {
        String::new()
    }
}

async fn workload(
    client: CartServiceClient<Channel>,
    index: usize,
    shared: Vec<String>,
    with_ids: bool,
) -> Seen {
    let mut seen = Seen::default();
    let mut rng = Lcg(1000 + index as u64);
    let mut own: Option<(String, usize)> = None;
    for n in 0..OPS_PER_CLIENT {
        let id = request_id(with_ids, index, n);
        seen.calls += 1;
        // Start a cart of our own when we have none: Create without cart_id.
        let Some((own_id, own_ops)) = own.clone() else {
            let mut request = create_request("", &[]);
            request.request_id = id.clone();
            let cart = send!(seen, client, create, request)
                .await
                .expect("create succeeds");
            assert_eq!(cart.version, 1);
            seen.applied.entry(cart.id.clone()).or_default();
            own = Some((cart.id, 0));
            continue;
        };
        let on_own = rng.below(100) < 30;
        let cart_id = if on_own {
            own_id.clone()
        } else {
            shared[rng.below(SHARED_CARTS as u64) as usize].clone()
        };
        if on_own && own_ops >= OPS_PER_OWN_CART {
            own = None;
            if rng.below(2) == 0 {
                let order = format!("ORD-{index}-{n}");
                let request = pb::DeleteRequest {
                    cart_id: cart_id.clone(),
                    order_number: order.clone(),
                    expected_version: 0,
                    request_id: id,
                };
                let reply = send!(seen, client, delete, request)
                    .await
                    .expect("delete succeeds");
                let cart = reply.cart.unwrap();
                seen.applied.entry(cart_id).or_default().push(Applied::new(
                    Op::Delete(order),
                    &cart,
                    0,
                ));
            } else {
                let request = pb::RemoveRequest {
                    cart_id: cart_id.clone(),
                    expected_version: 0,
                    request_id: id,
                };
                let reply = send!(seen, client, remove, request);
                // Without a request id a resent Remove finds no cart: it does not know what
                // the first one removed, which the check reports.
                let units = reply.await.map_or(-1, |r| r.items_removed);
                seen.removed.insert(cart_id, units);
            }
            continue;
        }
        if on_own {
            own = Some((own_id, own_ops + 1));
        }
        let roll = rng.below(100);
        let (op, result) = if roll < 50 {
            let (s, q) = (rng.below(SKUS as u64) as usize, 1 + rng.below(3) as i64);
            let request = pb::AddItemsRequest {
                cart_id: cart_id.clone(),
                items: vec![item(&sku(s), q, price(s))],
                expected_version: 0,
                request_id: id,
            };
            let result = send!(seen, client, add_items, request);
            (Op::Add(vec![(s, q)]), result.await.map(|c| (c, 0)))
        } else if roll < 75 {
            let (s, q) = (rng.below(SKUS as u64) as usize, rng.below(4) as i64);
            let request = pb::UpdateItemsRequest {
                cart_id: cart_id.clone(),
                updates: vec![pb::ItemUpdate {
                    line_id: line_id(s),
                    quantity: q,
                }],
                expected_version: 0,
                request_id: id,
            };
            let result = send!(seen, client, update_items, request);
            (Op::Update(vec![(s, q)]), result.await.map(|c| (c, 0)))
        } else if roll < 90 {
            let code = format!("C{}", rng.below(3));
            let amount = 1 + rng.below(500) as i64;
            let request = pb::ApplyCouponRequest {
                cart_id: cart_id.clone(),
                code: code.clone(),
                amount,
                expected_version: 0,
                request_id: id,
            };
            let result = send!(seen, client, apply_coupon, request);
            (Op::Coupon(code, amount), result.await.map(|c| (c, 0)))
        } else {
            let request = pb::ClearRequest {
                cart_id: cart_id.clone(),
                request_id: id,
                ..Default::default()
            };
            let result = send!(seen, client, clear, request);
            let result = result
                .await
                .map(|r| (*r.cart.expect("a cart"), r.items_cleared));
            (Op::Clear, result)
        };
        match result {
            Ok((cart, cleared)) => seen
                .applied
                .entry(cart_id)
                .or_default()
                .push(Applied::new(op, &cart, cleared)),
            // Updating a line that is not (or no longer) there is a legitimate refusal.
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(status) => panic!("unexpected refusal: {status:?}"),
        }
    }
    seen
}

/// Runs the workload through a lossy proxy; returns each cart's verdict and prints the figures.
async fn lose_answers(backend: Backend, with_ids: bool) -> Vec<Result<(), String>> {
    let app = Arc::new(spawn_app(backend.clone()).await);
    let proxy = LossyProxy::start(app.grpc_addr, CUT_PERCENT).await;
    let mut shared = Vec::new();
    for _ in 0..SHARED_CARTS {
        shared.push(app.create_cart(&[]).await.id);
    }
    let mut workers = Vec::new();
    for index in 0..CLIENTS {
        let channel = Channel::from_shared(format!("http://{}", proxy.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy();
        let client = CartServiceClient::new(channel);
        workers.push(tokio::spawn(workload(
            client,
            index,
            shared.clone(),
            with_ids,
        )));
    }
    let mut applied: BTreeMap<String, Vec<Applied>> = BTreeMap::new();
    let mut removed = BTreeMap::new();
    let (mut lost, mut calls, mut acknowledged) = (0, 0, 0);
    for worker in workers {
        let seen = worker.await.expect("client completes");
        lost += seen.lost;
        calls += seen.calls;
        for (cart, mut history) in seen.applied {
            acknowledged += history.len();
            applied.entry(cart).or_default().append(&mut history);
        }
        removed.extend(seen.removed);
    }
    let mut verdicts = Vec::new();
    for (cart_id, history) in applied {
        let end = match removed.get(&cart_id) {
            Some(units) => {
                assert!(
                    app.get(&cart_id).await.is_err(),
                    "{cart_id} survived Remove"
                );
                End::Removed(*units)
            }
            None => End::Cart(Box::new(app.get(&cart_id).await.expect("cart readable"))),
        };
        verdicts.push(check(history, &end).map_err(|e| format!("cart {cart_id}: {e}")));
    }
    let failed = verdicts.iter().filter(|v| v.is_err()).count();
    println!(
        "lost answers ({backend:?}, request ids: {with_ids}): {calls} operations, {acknowledged} \
         acknowledged mutations on {} carts, {} connections cut, {lost} answers lost and resent; \
         {failed} carts with a mutation applied twice or lost",
        verdicts.len(),
        proxy.cuts.load(Ordering::Relaxed),
    );
    assert!(lost > 0, "no answer was lost: the run proves nothing");
    verdicts
}

async fn every_mutation_applies_exactly_once(backend: Backend) {
    for verdict in lose_answers(backend, true).await {
        verdict.unwrap_or_else(|e| panic!("{e}"));
    }
}

/// 16 clients, memory store: every resent mutation carries its request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_apply_exactly_once_on_memory() {
    every_mutation_applies_exactly_once(Backend::Memory).await;
}

/// 16 clients, a real redis-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_apply_exactly_once_on_redis() {
    every_mutation_applies_exactly_once(Backend::redis()).await;
}

/// 16 clients, a real 3-master Redis Cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_apply_exactly_once_on_a_cluster() {
    every_mutation_applies_exactly_once(Backend::cluster()).await;
}

/// The same run without request ids double-applies resent mutations, and the check sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_request_ids_lost_answers_apply_twice() {
    let verdicts = lose_answers(Backend::redis(), false).await;
    let doubled = verdicts.iter().filter(|v| v.is_err()).count();
    assert!(
        doubled > 0,
        "resent mutations without request ids went unnoticed"
    );
}
