//! Layout v2 against carts written in layout v1: the v1 scripts (kept as a test fixture in
//! `tests/fixtures/v1`, never loaded by the product) write carts and request records on a
//! real redis-server and a real Cluster, and the store reads them, rewrites them in v2 on
//! their first mutation, and replays their records. And: a steady-state Get writes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use cart_service::domain::{
    CartId, CartKey, CartPolicy, CartState, CartStatus, Currency, IdempotencyKey, IdempotencyTag,
    LineDescription, LineId, Mutation, NewCart, NewLine, OrderNumber, Sku, TenantId, now_millis,
};
use cart_service::error::CartError;
use cart_service::store::redis::{Durability, RedisTimeouts};
use cart_service::store::{CartStore, RedisStore};

use crate::helpers::{Backend, RedisServer};

/// The header fields of layout v1, in its order (what its scripts' `META_FIELDS` was).
const V1_FIELDS: [&str; 17] = [
    "customer_id",
    "session_id",
    "channel",
    "currency",
    "locale",
    "metadata",
    "status",
    "created_at",
    "updated_at",
    "last_activity_at",
    "cleared_at",
    "clear_reason",
    "deleted_at",
    "order_number",
    "version",
    "next_position",
    "generated",
];

/// A v1 script as the v1 store built it for the default policy: field list, positions, the
/// whole prelude (its unused helpers are harmless), the body run by `once`.
fn v1_script(name: &str) -> ::redis::Script {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1/");
    let read = |file: &str| std::fs::read_to_string(format!("{dir}{file}.lua")).expect("fixture");
    let policy = CartPolicy::default();
    let fields: Vec<String> = V1_FIELDS.iter().map(|f| format!("'{f}'")).collect();
    let names: Vec<String> = V1_FIELDS
        .iter()
        .map(|f| format!("F_{}", f.to_ascii_uppercase()))
        .collect();
    let positions: Vec<String> = (1..=V1_FIELDS.len()).map(|i| i.to_string()).collect();
    let limits = &policy.limits;
    let mut prelude = read("prelude");
    for (name, value) in [
        ("@CART_TTL_MS@", policy.cart_ttl_ms()),
        ("@TOMBSTONE_TTL_MS@", policy.tombstone_ttl_ms()),
        ("@REQUEST_ID_TTL_MS@", policy.request_id_ttl_ms()),
        ("@MAX_LINES@", i64::from(limits.max_lines)),
        ("@MAX_QUANTITY@", i64::from(limits.max_quantity)),
        ("@MAX_COUPONS@", i64::from(limits.max_coupons)),
        ("@MAX_CART_BYTES@", limits.max_cart_bytes as i64),
    ] {
        prelude = prelude.replace(name, &value.to_string());
    }
    ::redis::Script::new(&format!(
        "#!lua\nlocal META_FIELDS = {{{}}}\nlocal {} = {}\n{prelude}return once(function()\n{}\nend)\n",
        fields.join(", "),
        names.join(", "),
        positions.join(", "),
        read(name)
    ))
}

/// A connection to `url` (a redis-server or a Cluster), for the v1 scripts.
enum Raw {
    Server(::redis::aio::MultiplexedConnection),
    Cluster(::redis::cluster_async::ClusterConnection),
}

impl Raw {
    async fn open(url: &str) -> Self {
        if let Some(seeds) = url.strip_prefix("redis+cluster://") {
            let nodes: Vec<String> = seeds.split(',').map(|s| format!("redis://{s}/")).collect();
            let client = ::redis::cluster::ClusterClient::new(nodes).unwrap();
            Self::Cluster(client.get_async_connection().await.unwrap())
        } else {
            let client = ::redis::Client::open(url).unwrap();
            Self::Server(client.get_multiplexed_async_connection().await.unwrap())
        }
    }

    async fn query<T: ::redis::FromRedisValue>(&mut self, cmd: &::redis::Cmd) -> T {
        match self {
            Self::Server(c) => cmd.query_async(c).await.unwrap(),
            Self::Cluster(c) => cmd.query_async(c).await.unwrap(),
        }
    }

    /// Runs the v1 script `name` on `cart` with ARGV now, expected version 0, `fingerprint`,
    /// then `args`; returns its reply.
    async fn v1(
        &mut self,
        name: &str,
        cart: &str,
        request: Option<(&str, &str)>,
        args: &[String],
    ) -> ::redis::Value {
        let script = v1_script(name);
        let tag = format!("cart:{{default:{cart}}}");
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&tag)
            .key(format!("{tag}:lines"))
            .key(format!("{tag}:coupons"));
        if let Some((id, _)) = request {
            invocation.key(format!("{tag}:request:{id}"));
        }
        invocation
            .arg(now_millis())
            .arg(0)
            .arg(request.map_or("", |(_, fingerprint)| fingerprint));
        for arg in args {
            invocation.arg(arg);
        }
        let reply: ::redis::Value = match self {
            Self::Server(c) => invocation.invoke_async(c).await.unwrap(),
            Self::Cluster(c) => invocation.invoke_async(c).await.unwrap(),
        };
        if let ::redis::Value::Array(parts) = &reply {
            assert_ne!(
                parts.first(),
                Some(&::redis::Value::BulkString(b"ERR".to_vec())),
                "{name}: {reply:?}"
            );
        }
        reply
    }

    /// Creates cart `id` with v1's Create: `(sku, quantity, unit price)` lines.
    async fn v1_create(&mut self, id: &str, items: &[(&str, u32, i64)]) {
        let mut args: Vec<String> = [
            "cust-1",
            "sess-1",
            "web",
            "USD",
            "en-US",
            "{\"k\":\"v\"}",
            "1",
        ]
        .map(String::from)
        .to_vec();
        args.extend(v1_items(items));
        self.v1("create", id, None, &args).await;
    }

    async fn key_type(&mut self, key: &str) -> String {
        self.query(::redis::cmd("TYPE").arg(key)).await
    }

    async fn exists(&mut self, key: &str) -> i64 {
        self.query(::redis::cmd("EXISTS").arg(key)).await
    }
}

fn new_line(sku: &str, quantity: u32, unit_price: i64) -> NewLine {
    let product_id = format!("p-{sku}");
    let sku = Sku::parse(sku, 64).unwrap();
    NewLine {
        line_id: LineId::for_sku(&sku),
        sku,
        product_id,
        title: "A title".into(),
        quantity,
        unit_price,
        attributes: BTreeMap::from([("size".to_owned(), "M".to_owned())]),
        currency: None,
    }
}

/// A new cart of customer `c` in EUR, with the service's own id, `metadata` and `items`.
fn new_cart(metadata: BTreeMap<String, String>, items: Vec<NewLine>) -> NewCart {
    NewCart {
        header: cart_service::domain::CartHeader {
            customer_id: "c".into(),
            session_id: String::new(),
            channel: String::new(),
            currency: Currency::parse("EUR").unwrap(),
            locale: String::new(),
            metadata,
        },
        items,
        id_generated: true,
    }
}

/// The item arguments of v1's `plan_add`.
fn v1_items(items: &[(&str, u32, i64)]) -> Vec<String> {
    let mut args = vec![items.len().to_string()];
    for &(sku, quantity, price) in items {
        let line = new_line(sku, quantity, price);
        let json = LineDescription::of(&line, now_millis()).to_json();
        args.push(line.line_id.as_str().to_owned());
        args.push(quantity.to_string());
        args.push(String::new());
        args.push(String::from_utf8(json).unwrap());
    }
    args
}

fn store(backend: &Backend, policy: CartPolicy) -> RedisStore {
    let Backend::Redis(url) = backend else {
        unreachable!("a Redis backend")
    };
    RedisStore::new(
        url,
        policy,
        RedisTimeouts::default(),
        Durability::default(),
        None,
    )
    .unwrap()
}

fn url(backend: &Backend) -> &str {
    match backend {
        Backend::Redis(url) => url,
        Backend::Memory => unreachable!("a Redis backend"),
    }
}

fn key(id: &str) -> CartKey {
    CartKey {
        tenant: TenantId::parse("default").unwrap(),
        cart_id: CartId::parse(id).unwrap(),
    }
}

fn fresh_id(name: &str) -> String {
    format!("{name}_{}", CartId::generate())
}

fn lines(state: &CartState) -> Vec<(&str, u32, i64)> {
    state
        .lines
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity, l.unit_price))
        .collect()
}

/// A v1 cart reads as it was (and stays in v1 until written); its first mutation rewrites
/// it in v2 (one string key; its v1 lines and coupons keys gone) and keeps all it held.
async fn v1_carts_are_read_then_rewritten_in_v2(backend: Backend) {
    let mut raw = Raw::open(url(&backend)).await;
    let store = store(&backend, CartPolicy::default());
    let id = fresh_id("v1");
    raw.v1_create(&id, &[("A", 2, 100), ("B", 1, 50)]).await;
    raw.v1("apply_coupon", &id, None, &["TEN".into(), "10".into()])
        .await;
    let meta = format!("cart:{{default:{id}}}");

    let read = store.get(&key(&id), now_millis()).await.unwrap();
    assert_eq!(lines(&read), [("A", 2, 100), ("B", 1, 50)]);
    assert_eq!(read.lines[0].product_id, "p-A");
    assert_eq!(read.lines[0].attributes["size"], "M");
    assert_eq!(read.coupons[0].code.as_str(), "TEN");
    assert_eq!(read.coupons[0].amount, 10);
    assert_eq!((read.version, read.status), (2, CartStatus::Active));
    assert_eq!(read.header.metadata["k"], "v");
    assert_eq!(read.header.currency, Currency::parse("USD").unwrap());
    assert!(read.id_generated);
    assert_eq!(raw.key_type(&meta).await, "hash", "a read rewrites nothing");

    let added = store
        .mutate(
            &key(&id),
            Mutation::AddItems(vec![new_line("C", 3, 7), new_line("A", 1, 100)]),
            2,
            now_millis(),
            None,
        )
        .await
        .unwrap()
        .state;
    assert_eq!(lines(&added), [("A", 3, 100), ("B", 1, 50), ("C", 3, 7)]);
    assert_eq!((added.version, added.coupons.len()), (3, 1));
    assert_eq!(added.line_bytes(), read.line_bytes() + added.lines[2].bytes);
    assert_eq!(raw.key_type(&meta).await, "string", "written in v2");
    assert_eq!(raw.exists(&format!("{meta}:lines")).await, 0);
    assert_eq!(raw.exists(&format!("{meta}:coupons")).await, 0);
    let again = store.get(&key(&id), now_millis()).await.unwrap();
    assert_eq!(again, added);
}

/// A v1 cart written before `line_bytes` and `generated` were kept: its size is summed from
/// its lines (equal to what a v2 cart with the same lines keeps), and its id counts as
/// client-chosen, so a Clear for generated ids only does not find it.
async fn v1_carts_without_size_or_origin(backend: Backend) {
    let mut raw = Raw::open(url(&backend)).await;
    let store = store(&backend, CartPolicy::default());
    let id = fresh_id("old");
    raw.v1_create(&id, &[("B", 2, 100), ("C", 1, 5)]).await;
    let meta = format!("cart:{{default:{id}}}");
    let _: i64 = raw
        .query(
            ::redis::cmd("HDEL")
                .arg(&meta)
                .arg("line_bytes")
                .arg("generated"),
        )
        .await;
    let clear = |only_generated_id| Mutation::Clear {
        preserve_coupons: false,
        reason: String::new(),
        only_generated_id,
    };
    let refused = store
        .mutate(&key(&id), clear(true), 0, now_millis(), None)
        .await;
    assert!(
        matches!(refused, Err(CartError::CartNotFound)),
        "{refused:?}"
    );

    let twin = fresh_id("twin");
    let new = NewCart {
        header: store.get(&key(&id), now_millis()).await.unwrap().header,
        items: vec![new_line("B", 2, 100), new_line("C", 1, 5)],
        id_generated: false,
    };
    store
        .create(&key(&twin), new, now_millis(), None)
        .await
        .unwrap();
    let old = store.get(&key(&id), now_millis()).await.unwrap();
    let v2 = store.get(&key(&twin), now_millis()).await.unwrap();
    assert_eq!(old.line_bytes(), v2.line_bytes());
    assert!(!old.id_generated);
    let cleared = store
        .mutate(&key(&id), clear(false), 0, now_millis(), None)
        .await
        .unwrap();
    assert_eq!(cleared.outcome.items_cleared, 3);
    assert!(cleared.state.lines.is_empty());
    assert_eq!(raw.key_type(&meta).await, "string");
}

/// A v1 tombstone reads as one, keeps its order number's idempotency, and refuses mutations;
/// Remove of a v1 cart leaves none of its keys.
async fn v1_tombstones_and_removal(backend: Backend) {
    let mut raw = Raw::open(url(&backend)).await;
    let store = store(&backend, CartPolicy::default());
    let id = fresh_id("tomb");
    raw.v1_create(&id, &[("A", 1, 100)]).await;
    raw.v1("delete", &id, None, &["O-1".into()]).await;
    let read = store.get(&key(&id), now_millis()).await.unwrap();
    assert_eq!(read.status, CartStatus::Deleted);
    assert_eq!((read.order_number.as_str(), read.version), ("O-1", 2));
    let delete = |n: &str| Mutation::Delete {
        order_number: OrderNumber::parse(n).unwrap(),
    };
    let repeated = store
        .mutate(&key(&id), delete("O-1"), 0, now_millis(), None)
        .await
        .unwrap();
    assert_eq!(repeated.state, read);
    let other = store
        .mutate(&key(&id), delete("O-2"), 0, now_millis(), None)
        .await;
    assert!(matches!(other, Err(CartError::OrderNumberMismatch)));
    let add = Mutation::AddItems(vec![new_line("B", 1, 1)]);
    let refused = store.mutate(&key(&id), add, 0, now_millis(), None).await;
    assert!(matches!(refused, Err(CartError::CartDeleted)));

    let gone = fresh_id("gone");
    raw.v1_create(&gone, &[("A", 4, 100)]).await;
    raw.v1("apply_coupon", &gone, None, &["TEN".into(), "10".into()])
        .await;
    assert_eq!(
        store
            .remove(&key(&gone), 0, now_millis(), None)
            .await
            .unwrap(),
        4
    );
    let meta = format!("cart:{{default:{gone}}}");
    for suffix in ["", ":lines", ":coupons"] {
        assert_eq!(raw.exists(&format!("{meta}{suffix}")).await, 0, "{suffix}");
    }
}

/// A request record a v1 script left replays as that outcome (the mutation is not applied
/// again), and the same request id with another payload is still refused.
async fn v1_request_records_replay(backend: Backend) {
    let mut raw = Raw::open(url(&backend)).await;
    let store = store(&backend, CartPolicy::default());
    let id = fresh_id("rid");
    raw.v1_create(&id, &[("A", 2, 100)]).await;
    let fingerprint = "0123456789abcdef0123456789abcdef";
    let request = Some(("rid-v1", fingerprint));
    let clear_args = ["0".to_owned(), "why".to_owned(), "0".to_owned()];
    raw.v1("clear", &id, request, &clear_args).await;
    // The cart gets a line again, so a second Clear would show.
    store
        .mutate(
            &key(&id),
            Mutation::AddItems(vec![new_line("B", 1, 1)]),
            0,
            now_millis(),
            None,
        )
        .await
        .unwrap();
    let tag = |fingerprint: &str| IdempotencyTag {
        key: IdempotencyKey::parse("rid-v1").unwrap(),
        fingerprint: fingerprint.to_owned(),
    };
    let clear = Mutation::Clear {
        preserve_coupons: false,
        reason: "why".into(),
        only_generated_id: false,
    };
    let replayed = store
        .mutate(
            &key(&id),
            clear.clone(),
            0,
            now_millis(),
            Some(&tag(fingerprint)),
        )
        .await
        .unwrap();
    assert_eq!(replayed.outcome.items_cleared, 2);
    assert_eq!(
        (replayed.state.version, replayed.state.clear_reason.as_str()),
        (2, "why")
    );
    let now = store.get(&key(&id), now_millis()).await.unwrap();
    assert_eq!((now.version, now.lines.len()), (3, 1), "not cleared again");
    let reused = store
        .mutate(
            &key(&id),
            clear,
            0,
            now_millis(),
            Some(&tag(&"f".repeat(32))),
        )
        .await;
    assert!(matches!(reused, Err(CartError::IdempotencyKeyReused)));
}

/// Clear splices the header of the value it reads (see `lua/clear.lua`): on a v2 cart, on ones
/// whose header and coupons outrun the 512-byte prefix Clear reads first and the 4 KiB one it
/// reads next, on a value packed whole as
/// the store wrote it before it left out trailing absent fields, and on a v1 cart. Each time
/// the coupons are kept when asked, the lines go, and the cart reads back as Clear replied it.
async fn clear_splices_every_form_of_header(backend: Backend) {
    let mut raw = Raw::open(url(&backend)).await;
    let store = store(&backend, CartPolicy::default());
    let clear = |reason: &str| Mutation::Clear {
        preserve_coupons: true,
        reason: reason.into(),
        only_generated_id: false,
    };
    let coupon = Mutation::ApplyCoupon {
        code: cart_service::domain::CouponCode::parse("TEN").unwrap(),
        amount: 10,
    };
    let long = BTreeMap::from([("note".to_owned(), "x".repeat(5000))]);
    let medium = BTreeMap::from([("note".to_owned(), "x".repeat(1000))]);
    let plain = fresh_id("splice");
    let mid = fresh_id("splice-mid");
    let wide = fresh_id("splice-wide");
    let padded = fresh_id("splice-padded");
    for (id, metadata) in [
        (&plain, BTreeMap::new()),
        (&mid, medium),
        (&wide, long),
        (&padded, BTreeMap::new()),
    ] {
        store
            .create(
                &key(id),
                new_cart(metadata, vec![new_line("A", 2, 100), new_line("B", 1, 5)]),
                now_millis(),
                None,
            )
            .await
            .unwrap();
        store
            .mutate(&key(id), coupon.clone(), 0, now_millis(), None)
            .await
            .unwrap();
    }
    // Each header (and its coupons) is as long as its case says.
    let header_bytes = "local v = redis.call('GET', KEYS[1]) \
        local at = cmsgpack.unpack_one(v) \
        return cmsgpack.unpack_one(v, at)";
    for (id, bytes) in [(&plain, 1..=512), (&mid, 513..=4096), (&wide, 4097..=8192)] {
        let key = format!("cart:{{default:{id}}}");
        let end: i64 = raw
            .query(::redis::cmd("EVAL").arg(header_bytes).arg(1).arg(&key))
            .await;
        assert!(
            bytes.contains(&end),
            "{id}: header and coupons end at {end}"
        );
    }
    // The header as the store packed it before: all META_COUNT fields, `false` for none.
    let meta = format!("cart:{{default:{padded}}}");
    let repack = "local v = redis.call('GET', KEYS[1]) \
        local at, h = cmsgpack.unpack_one(v) \
        for i = #h + 1, tonumber(ARGV[1]) do h[i] = false end \
        redis.call('SET', KEYS[1], cmsgpack.pack(h) .. string.sub(v, at + 1), 'KEEPTTL') \
        return #h";
    let fields: i64 = raw
        .query(
            ::redis::cmd("EVAL")
                .arg(repack)
                .arg(1)
                .arg(&meta)
                .arg(V1_FIELDS.len() + 7),
        )
        .await;
    assert_eq!(fields, V1_FIELDS.len() as i64 + 7);
    let old = fresh_id("splice-v1");
    raw.v1_create(&old, &[("A", 2, 100), ("B", 1, 5)]).await;
    raw.v1("apply_coupon", &old, None, &["TEN".into(), "10".into()])
        .await;

    for id in [&plain, &mid, &wide, &padded, &old] {
        let before = store.get(&key(id), now_millis()).await.unwrap();
        let cleared = store
            .mutate(&key(id), clear("moved"), before.version, now_millis(), None)
            .await
            .unwrap();
        assert_eq!(cleared.outcome.items_cleared, 3, "{id}");
        let state = &cleared.state;
        assert!(state.lines.is_empty(), "{id}");
        assert_eq!(state.coupons, before.coupons, "{id}");
        assert_eq!(state.version, before.version + 1, "{id}");
        assert_eq!(state.clear_reason, "moved", "{id}");
        assert_eq!(
            (state.cleared_at, state.updated_at),
            (Some(state.last_activity_at), state.last_activity_at)
        );
        assert_eq!(state.header, before.header, "{id}");
        assert_eq!(
            (state.created_at, state.next_position),
            (before.created_at, before.next_position)
        );
        assert_eq!(state.line_bytes(), 0, "{id}");
        assert_eq!(
            store.get(&key(id), now_millis()).await.unwrap(),
            *state,
            "{id}"
        );
        // And once more, now on the value the first Clear spliced, coupons dropped.
        let again = Mutation::Clear {
            preserve_coupons: false,
            reason: "again".into(),
            only_generated_id: false,
        };
        let twice = store
            .mutate(&key(id), again, 0, now_millis(), None)
            .await
            .unwrap();
        assert!(twice.state.coupons.is_empty() && twice.state.version == state.version + 1);
        assert_eq!(twice.outcome.items_cleared, 0);
        assert_eq!(
            store.get(&key(id), now_millis()).await.unwrap(),
            twice.state
        );
    }
    let meta = format!("cart:{{default:{old}}}");
    assert_eq!(raw.key_type(&meta).await, "string", "written in v2");
    assert_eq!(raw.exists(&format!("{meta}:lines")).await, 0);
    assert_eq!(raw.exists(&format!("{meta}:coupons")).await, 0);
}

scenarios_on!(
    redis,
    crate::helpers::Backend::redis(),
    v1_carts_are_read_then_rewritten_in_v2,
    v1_carts_without_size_or_origin,
    v1_tombstones_and_removal,
    v1_request_records_replay,
    clear_splices_every_form_of_header
);
scenarios_on!(
    cluster,
    crate::helpers::Backend::cluster(),
    v1_carts_are_read_then_rewritten_in_v2,
    v1_carts_without_size_or_origin,
    v1_tombstones_and_removal,
    v1_request_records_replay,
    clear_splices_every_form_of_header
);

/// `cmdstat_<name>` calls in `INFO commandstats` (0 when absent).
fn calls(redis: &RedisServer, name: &str) -> u64 {
    let info = redis.command(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// A steady-state Get is a GET and a PEXPIRETIME, no script: no field, no value, no expiry
/// rewritten (so nothing replicates). Once the lifetime has run down by more than 1 % of
/// cart_ttl, a Get runs its script, which re-arms the expiry (one PEXPIREAT) and reports the
/// restart; the Gets after it are reads again.
#[tokio::test]
async fn a_steady_state_get_writes_nothing() {
    let redis = RedisServer::start();
    let policy = CartPolicy {
        cart_ttl: Duration::from_secs(10),
        ..CartPolicy::default()
    };
    let backend = Backend::Redis(redis.url());
    let store = store(&backend, policy.clone());
    let id = fresh_id("steady");
    let new = new_cart(BTreeMap::new(), vec![new_line("A", 1, 100)]);
    // The store is told the time (the scripts' NOW), so the test moves it instead of
    // sleeping: a loaded machine cannot make the reads outlast the slack.
    let t0 = now_millis();
    let created = store.create(&key(&id), new, t0, None).await.unwrap();
    // So that the refresh's FCALL is one call (no FUNCTION LOAD first).
    store.load_scripts().await.unwrap();
    redis.command(&["CONFIG", "RESETSTAT"]);
    for _ in 0..50 {
        let read = store.get(&key(&id), t0 + 50).await.unwrap();
        assert_eq!(read, created, "within the slack nothing moves");
    }
    assert_eq!(calls(&redis, "get"), 50);
    assert_eq!(calls(&redis, "pexpiretime"), 50);
    assert_eq!(calls(&redis, "fcall"), 0, "no script runs");
    for write in ["set", "hset", "pexpire", "pexpireat", "del"] {
        assert_eq!(calls(&redis, write), 0, "{write}");
    }
    // 1 % of 10 s is 100 ms.
    let before = t0 + 150;
    let refreshed = store.get(&key(&id), before).await.unwrap();
    assert_eq!(calls(&redis, "pexpireat"), 1);
    assert_eq!(calls(&redis, "fcall"), 1, "the script re-arms the expiry");
    assert_eq!(calls(&redis, "set"), 0);
    assert_eq!(refreshed.last_activity_at, before);
    let again = store.get(&key(&id), before + 1).await.unwrap();
    assert_eq!(again, refreshed);
    assert_eq!(
        calls(&redis, "fcall"),
        1,
        "refreshed, a Get is a read again"
    );
    let meta = format!("cart:{{default:{id}}}");
    let expiry: i64 = redis
        .command(&["PEXPIRETIME", &meta])
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert_eq!(
        expiry,
        before + policy.cart_ttl_ms(),
        "expires_at is the key's expiry"
    );
}
