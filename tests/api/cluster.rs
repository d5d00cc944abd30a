//! Redis Cluster specifics: carts land on every master, each cart's keys in one slot; a
//! Cluster that grows and shrinks while it serves strands no cart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cart_service::pb;
use tonic::Code;

use crate::faults::{Clients, load_through};
use crate::helpers::{Backend, RedisCluster, shared_cluster, spawn_app, spawn_with, test_settings};

/// Carts spread over the whole cluster, and each cart's keys live together on its master.
#[tokio::test]
async fn carts_spread_over_every_master_with_their_keys_together() {
    let cluster = shared_cluster();
    let app = spawn_app(Backend::cluster()).await;
    let masters = cluster.masters(cluster.nodes[0].port());
    assert_eq!(masters.len(), 3);
    let mut owners = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..48 {
        let cart = app.create_cart(&[("A", 1, 100)]).await;
        let request = cart_service::pb::ApplyCouponRequest {
            cart_id: cart.id.clone(),
            code: "TEN".into(),
            amount: 10,
            expected_version: 0,
            request_id: String::new(),
        };
        app.client.clone().apply_coupon(request).await.unwrap();
        let meta = format!("cart:{{default:{}}}", cart.id);
        let owner: Vec<u16> = masters
            .iter()
            .copied()
            .filter(|&port| {
                let node = cluster.nodes.iter().find(|n| n.port() == port).unwrap();
                // A node that does not own the slot answers -MOVED instead of a count.
                node.command(&["EXISTS", &meta]) == ":1\r\n"
            })
            .collect();
        assert_eq!(
            owner.len(),
            1,
            "cart {} should live whole on one master",
            cart.id
        );
        *owners.entry(owner[0]).or_default() += 1;
    }
    assert_eq!(owners.len(), 3, "48 carts all landed on {owners:?}");
}

/// Carts made before the cluster grows, read back after it shrank: they cover many slots, so
/// some sit on slots that moved to the fourth master and back.
const REFERENCE_CARTS: usize = 256;
/// How soon after `del-node` every cart must be readable.
const READABLE_WITHIN: Duration = Duration::from_secs(5);

/// What the resharding took.
#[derive(Debug, Default)]
struct Moves {
    grow: Duration,
    shrink: Duration,
    /// From the end of `del-node` until every reference cart answered.
    readable_after: Duration,
    /// Keys the fourth master held before it was emptied (proof the slots moved).
    keys_on_fourth: usize,
    /// Reference carts that failed a read after `del-node` before they answered.
    unreadable_reads: usize,
}

/// The heavy scenarios run when `CART_HEAVY_TESTS=1` (CI sets it; see the README).
fn heavy() -> bool {
    let on = std::env::var("CART_HEAVY_TESTS").is_ok_and(|v| v == "1");
    if !on {
        eprintln!("skipped: set CART_HEAVY_TESTS=1 to run it");
    }
    on
}

/// A 3+3 Cluster grows to 4+3 (`add-node`, `rebalance --cluster-use-empty-masters`) and
/// shrinks back (the fourth master emptied by `rebalance`, then `del-node`, which leaves it
/// running with its state wiped) while 16 clients add items with request ids: MOVED, ASK and
/// TRYAGAIN are followed within the deadline, no acknowledged add is lost or doubled, nothing
/// is INTERNAL, and the client's slot map heals by itself so every cart reads back within
/// seconds of the shrink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_grows_and_shrinks_under_load_without_stranding_carts() {
    if !heavy() {
        return;
    }
    let cluster = Arc::new(std::sync::Mutex::new(
        RedisCluster::start_with_node_timeout(3, 5000),
    ));
    let url = cluster.lock().unwrap().url();
    let app = spawn_with(test_settings(&Backend::Redis(url))).await;
    let mut reference = Vec::new();
    for _ in 0..REFERENCE_CARTS {
        reference.push(app.create_cart(&[("R", 1, 100)]).await.id);
    }
    let reader = app.new_client().await;
    let moves = Arc::new(std::sync::Mutex::new(Moves::default()));
    let (nodes, figures) = (cluster.clone(), moves.clone());
    let report = load_through(app, Clients::Retrying, || async move {
        let started = Instant::now();
        let grown = nodes.clone();
        let fourth = tokio::task::spawn_blocking(move || grown.lock().unwrap().add_master(None))
            .await
            .unwrap();
        let grow = started.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let keys_on_fourth = {
            let cluster = nodes.lock().unwrap();
            let node = cluster.nodes.iter().find(|n| n.port() == fourth).unwrap();
            let reply = node.command(&["DBSIZE"]);
            reply.trim_start_matches(':').trim().parse().unwrap_or(0)
        };
        let started = Instant::now();
        let shrunk = nodes.clone();
        tokio::task::spawn_blocking(move || shrunk.lock().unwrap().remove_master(fourth))
            .await
            .unwrap();
        let shrink = started.elapsed();
        let deleted = Instant::now();
        // Every reference cart read at once (a sequential read would wait behind the load),
        // each until it answers.
        let reads: Vec<_> = reference
            .iter()
            .map(|cart_id| {
                let (mut reader, cart_id) = (reader.clone(), cart_id.clone());
                tokio::spawn(async move {
                    let mut failed = 0;
                    while deleted.elapsed() < READABLE_WITHIN * 3 {
                        let mut request = tonic::Request::new(pb::GetRequest {
                            cart_id: cart_id.clone(),
                        });
                        request.set_timeout(Duration::from_secs(3));
                        match reader.get(request).await {
                            Ok(cart) => {
                                assert_eq!(cart.into_inner().item_count, 1, "{cart_id}");
                                return Ok((deleted.elapsed(), failed));
                            }
                            Err(status) => {
                                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                                failed += 1;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                    Err(cart_id)
                })
            })
            .collect();
        let (mut readable_after, mut unreadable_reads) = (Duration::ZERO, 0);
        let mut pending = Vec::new();
        for read in reads {
            match read.await.unwrap() {
                Ok((after, failed)) => {
                    readable_after = readable_after.max(after);
                    unreadable_reads += failed;
                }
                Err(cart_id) => pending.push(cart_id),
            }
        }
        assert!(
            pending.is_empty(),
            "{} carts unreadable: {pending:?}",
            pending.len()
        );
        *figures.lock().unwrap() = Moves {
            grow,
            shrink,
            readable_after,
            keys_on_fourth,
            unreadable_reads,
        };
    })
    .await;
    let moves = moves.lock().unwrap();
    let count = |code: &str| report.failures.get(code).copied().unwrap_or(0);
    // What the clients were told to follow (the service's clients are the only ones).
    let redirects = cluster.lock().unwrap().error_replies();
    let replies = |name: &str| redirects.get(name).copied().unwrap_or(0);
    println!(
        "error replies of the nodes during the run: MOVED {}, ASK {}, TRYAGAIN {}, CLUSTERDOWN {}",
        replies("MOVED"),
        replies("ASK"),
        replies("TRYAGAIN"),
        replies("CLUSTERDOWN"),
    );
    assert!(
        replies("MOVED") > 0,
        "no redirect during the moves: the test proves nothing ({redirects:?})"
    );
    println!(
        "cluster 3+3 -> 4+3 -> 3+3 under load: {} acknowledged adds on {} carts, lost {}, \
         doubled 0, INTERNAL {}, UNAVAILABLE {}, DEADLINE_EXCEEDED {}; grow (add-node + \
         rebalance) {:.1?}, shrink (rebalance to weight 0 + del-node) {:.1?}, {} keys had moved \
         to the fourth master; every one of {REFERENCE_CARTS} reference carts readable {:.2?} \
         after del-node ({} failed reads before)",
        report.acknowledged,
        report.carts,
        report.lost,
        count("Internal"),
        count("Unavailable"),
        count("DeadlineExceeded"),
        moves.grow,
        moves.shrink,
        moves.keys_on_fourth,
        moves.readable_after,
        moves.unreadable_reads,
    );
    assert_eq!(report.lost, 0, "acknowledged adds were lost");
    assert_eq!(count("Internal"), 0);
    assert!(
        moves.keys_on_fourth > 0,
        "no key moved to the fourth master: the test proves nothing"
    );
    assert!(
        moves.readable_after <= READABLE_WITHIN,
        "carts were readable only {:?} after del-node",
        moves.readable_after
    );
    drop(cluster);
}

/// The carts of a removed master read back within seconds even when nothing touched them while
/// their slots moved (so no MOVED told the client): once with the periodic probe of the health
/// check, once with only the failed call itself (a health interval too long to help) making
/// the client learn the slots anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_carts_of_a_removed_master_read_back_within_seconds() {
    let mut cluster = RedisCluster::start_with_node_timeout(3, 5000);
    for health_interval in [Duration::from_millis(200), Duration::from_secs(600)] {
        let fourth = cluster.add_master(Some(512));
        let mut settings = test_settings(&Backend::Redis(cluster.url()));
        settings.health_interval = health_interval;
        let app = spawn_with(settings).await;
        // Carts whose slot the fourth master serves: it answers 0 for their key, MOVED for others.
        let owner = cluster.nodes.iter().find(|n| n.port() == fourth).unwrap();
        let ids: Vec<String> = (0..)
            .map(|i| format!("strand-{}-{i}", health_interval.as_millis()))
            .filter(|id| owner.command(&["EXISTS", &format!("cart:{{default:{id}}}")]) == ":0\r\n")
            .take(12)
            .collect();
        for id in &ids {
            let request = crate::helpers::create_request(id, &[("S", 3, 100)]);
            app.client.clone().create(request).await.unwrap();
        }
        cluster.remove_master(fourth);
        let deleted = Instant::now();
        for id in &ids {
            loop {
                match app.get(id).await {
                    Ok(cart) => {
                        assert_eq!(cart.item_count, 3);
                        break;
                    }
                    Err(status) => {
                        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                        assert!(
                            deleted.elapsed() < READABLE_WITHIN,
                            "cart {id} unreadable {:?} after del-node (health every {health_interval:?})",
                            deleted.elapsed()
                        );
                    }
                }
            }
        }
        println!(
            "health every {health_interval:?}: the removed master's {} idle carts readable {:.2?} after del-node",
            ids.len(),
            deleted.elapsed()
        );
        app.stop().await;
    }
}

/// Redis Cluster's key slot (CRC16/XMODEM of the hash tag, mod 16384).
fn key_slot(tag: &str) -> u16 {
    let mut crc: u16 = 0;
    for &byte in tag.as_bytes() {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// The bulk strings of a raw RESP array reply.
fn bulk_strings(reply: &str) -> Vec<String> {
    reply
        .split("\r\n")
        .filter(|line| !line.is_empty() && !line.starts_with(['*', '$']))
        .map(str::to_owned)
        .collect()
}

/// A slot in mid-migration, moved by hand as `redis-cli --cluster reshard` does: a cart whose
/// keys are half moved gets TRYAGAIN, a new cart in that slot gets ASK (then TRYAGAIN from the
/// importing node); both calls are resent until the move completes and succeed within their
/// deadline, each applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_a_migrating_slot_follow_ask_and_tryagain() {
    let cluster = RedisCluster::start(3);
    let app = spawn_with(test_settings(&Backend::Redis(cluster.url()))).await;
    let half_moved = "migrating-cart";
    let slot = key_slot(&format!("default:{half_moved}"));
    let meta = format!("cart:{{default:{half_moved}}}");
    assert_eq!(
        cluster.nodes[0].command(&["CLUSTER", "KEYSLOT", &meta]),
        format!(":{slot}\r\n")
    );
    app.client
        .clone()
        .create(crate::helpers::create_request(half_moved, &[("A", 1, 100)]))
        .await
        .unwrap();
    let masters = cluster.masters(cluster.nodes[0].port());
    let node = |port: u16| cluster.nodes.iter().find(|n| n.port() == port).unwrap();
    let source = *masters
        .iter()
        .find(|&&port| node(port).command(&["EXISTS", &meta]) == ":1\r\n")
        .unwrap();
    let target = *masters.iter().find(|&&port| port != source).unwrap();
    let (source_id, target_id) = (cluster.node_id(source), cluster.node_id(target));
    let slot_arg = slot.to_string();
    node(target).command(&["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &source_id]);
    node(source).command(&["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &target_id]);
    let target_port = target.to_string();
    let migrate = |key: &str| {
        let reply = node(source).command(&["MIGRATE", "127.0.0.1", &target_port, key, "0", "5000"]);
        assert_eq!(reply, "+OK\r\n", "MIGRATE {key}");
    };
    // Half moved: the cart's value is on the target; the other keys its scripts name (its
    // layout v1 keys, absent) are on neither, so the target answers TRYAGAIN until the
    // migration ends.
    migrate(&meta);

    let new_cart = (0..)
        .map(|i| format!("ask-{i}"))
        .find(|id| key_slot(&format!("default:{id}")) == slot)
        .unwrap();
    let started = Instant::now();
    let mut add = tonic::Request::new(pb::AddItemsRequest {
        cart_id: half_moved.into(),
        items: vec![crate::helpers::item("B", 2, 100)],
        expected_version: 0,
        request_id: "add-while-migrating".into(),
    });
    add.set_timeout(Duration::from_secs(3));
    let mut create =
        tonic::Request::new(crate::helpers::create_request(&new_cart, &[("C", 1, 100)]));
    create.set_timeout(Duration::from_secs(3));
    let (mut adder, mut creator) = (app.client.clone(), app.client.clone());
    let added = tokio::spawn(async move { adder.add_items(add).await });
    let created = tokio::spawn(async move { creator.create(create).await });

    // The rest of the slot moves 500 ms later, and every master learns its new owner.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for key in bulk_strings(&node(source).command(&["CLUSTER", "GETKEYSINSLOT", &slot_arg, "100"]))
    {
        migrate(&key);
    }
    for &port in &masters {
        node(port).command(&["CLUSTER", "SETSLOT", &slot_arg, "NODE", &target_id]);
    }
    let added = added
        .await
        .unwrap()
        .expect("the add on a half-moved cart succeeds");
    let created = created
        .await
        .unwrap()
        .expect("the create in a migrating slot succeeds");
    let waited = started.elapsed();
    assert_eq!(added.into_inner().item_count, 3);
    assert_eq!(created.into_inner().item_count, 1);
    let cart = app.get(half_moved).await.unwrap();
    assert_eq!(
        cart.items.iter().map(|l| l.quantity).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(app.get(&new_cart).await.unwrap().item_count, 1);
    assert_eq!(node(target).command(&["EXISTS", &meta]), ":1\r\n");
    let replies = cluster.error_replies();
    println!("a migrating slot: both calls answered after {waited:.2?}; error replies {replies:?}");
    assert!(replies.get("ASK").copied().unwrap_or(0) > 0, "{replies:?}");
    assert!(
        replies.get("TRYAGAIN").copied().unwrap_or(0) > 0,
        "{replies:?}"
    );
    app.stop().await;
}
