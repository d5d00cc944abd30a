//! Micro-benchmarks of the pure code on every request: proto → command validation, the core's
//! cart view (with the cart's hmac) → proto rendering, and each dialect's response body
//! (`dialect_body/<dialect>`, a 10-line cart).
//!
//! `cargo bench --bench hot_paths`

use std::hint::black_box;

use cart_service::auth::CartTokens;
use cart_service::core::{CartView, Command, Fingerprint, Operation};
use cart_service::domain::{
    CartHeader, CartKey, CartPolicy, CartState, Currency, Limits, NewCart, TenantId,
};
use cart_service::grpc::convert;
use cart_service::http::encode::sample;
use cart_service::http::{amazon, fabric_xm, stateset, vtex, zaui};
use cart_service::pb;
use criterion::{Criterion, criterion_group, criterion_main};

fn new_items(n: usize) -> Vec<pb::NewItem> {
    (0..n)
        .map(|i| pb::NewItem {
            sku: format!("SKU-{i:04}"),
            product_id: format!("prod-{i}"),
            title: format!("Product number {i}"),
            quantity: 2,
            unit_price: 1_250,
            attributes: [("color".to_owned(), "blue".to_owned())].into(),
            ..Default::default()
        })
        .collect()
}

/// A rendered cart of `lines` lines, as handlers and shims see it.
fn cart(lines: usize) -> (CartKey, CartState) {
    let tenant = TenantId::default_tenant();
    let request = pb::AddItemsRequest {
        cart_id: "0123456789abcdef01234567".into(),
        items: new_items(lines),
        expected_version: 0,
        request_id: String::new(),
    };
    let key = CartKey {
        tenant: tenant.clone(),
        cart_id: cart_service::domain::CartId::parse(&request.cart_id).unwrap(),
    };
    let items = match lines {
        0 => Vec::new(),
        _ => {
            convert::add_items(request, &Limits::default())
                .unwrap()
                .command
                .items
        }
    };
    let header = CartHeader {
        customer_id: "cust_abc123".into(),
        session_id: "sess_xyz789".into(),
        channel: "web".into(),
        currency: Currency::parse("USD").unwrap(),
        locale: "en-US".into(),
        metadata: [("campaign".to_owned(), "spring".to_owned())].into(),
    };
    let state = CartState::create(
        NewCart {
            header,
            items,
            id_generated: true,
        },
        1_700_000_000_000,
        &Limits::default(),
    )
    .unwrap();
    (key, state)
}

fn benches(c: &mut Criterion) {
    let limits = Limits::default();
    let tokens = CartTokens::new(b"bench secret of some length");
    let policy = CartPolicy::default();

    c.bench_function("convert/add_items_10_lines", |b| {
        let items = new_items(10);
        b.iter(|| {
            let request = pb::AddItemsRequest {
                cart_id: "0123456789abcdef01234567".into(),
                items: items.clone(),
                expected_version: 0,
                request_id: String::new(),
            };
            black_box(convert::add_items(request, &limits).unwrap())
        })
    });
    c.bench_function("convert/clear", |b| {
        let request = pb::ClearRequest {
            cart_id: "0123456789abcdef01234567".into(),
            reason: "customer_requested".into(),
            ..Default::default()
        };
        b.iter(|| black_box(convert::clear(black_box(request.clone()), &limits).unwrap()))
    });
    for lines in [0, 10, 250] {
        let (key, state) = cart(lines);
        c.bench_function(&format!("render/cart_view_{lines}_lines"), |b| {
            b.iter(|| {
                let view = CartView::new(
                    key.clone(),
                    black_box(Box::new(state.clone())),
                    &policy,
                    &tokens,
                );
                black_box(convert::cart(&view))
            })
        });
    }
    c.bench_function("idempotency/tag_clear", |b| {
        // What a request id costs the service itself: the Clear's fingerprint and its tag.
        let clear = convert::clear(
            pb::ClearRequest {
                cart_id: "0123456789abcdef01234567".into(),
                reason: "customer_requested".into(),
                request_id: "5b1f0c9e-3f4e-4c53-9d0e-2a0f6f1d7c11".into(),
                ..Default::default()
            },
            &limits,
        )
        .unwrap();
        let key = clear.idempotency_key.clone().unwrap();
        b.iter(|| {
            let mut fingerprint = Fingerprint::of(Operation::Clear);
            black_box(&clear.command).fingerprint(&mut fingerprint);
            black_box(fingerprint.tag(key.clone()))
        })
    });
    c.bench_function("auth/hmac_sign", |b| {
        // A cart in use: its hmac is remembered.
        let (key, _) = cart(0);
        b.iter(|| black_box(tokens.sign(&key.tenant, &key.cart_id)))
    });
    c.bench_function("auth/hmac_sign_new_cart", |b| {
        // Carts signed once in a long while (many more than the remembered ones, in turn):
        // the HMAC is computed, and remembered in place of another cart's.
        let (key, _) = cart(0);
        let ids: Vec<_> = (0..16_384)
            .map(|n| cart_service::domain::CartId::parse(&format!("{n:024x}")).unwrap())
            .collect();
        let mut next = ids.iter().cycle();
        b.iter(|| black_box(tokens.sign(&key.tenant, next.next().unwrap())))
    });

    c.bench_function("dialect/zaui_decode", |b| {
        let body = "<request><zapiToken>1</zapiToken><zapiAccountId>1234</zapiAccountId><zapiUserId>7</zapiUserId><zapiMethod><methodName>zapiRemoveCartSession</methodName><cartId>0123456789abcdef01234567</cartId></zapiMethod></request>";
        b.iter(|| black_box(zaui::decode(black_box(body.as_bytes())).unwrap()))
    });
}

/// Each dialect's response body for a 10-line cart (Zaui and Amazon answer no cart: their
/// envelope and `CartClearResponse`).
fn dialect_bodies(c: &mut Criterion) {
    let view = sample::cart(10, false);
    let mut group = c.benchmark_group("dialect_body");
    group.bench_function("zaui", |b| {
        b.iter(|| black_box(zaui::envelope(black_box("zapiRemoveCartSession"), &Ok(()))))
    });
    group.bench_function("fabric_xm", |b| {
        b.iter(|| black_box(fabric_xm::deleted_cart(black_box(&view))))
    });
    group.bench_function("stateset", |b| {
        b.iter(|| black_box(stateset::cart_object(black_box(&view), 3)))
    });
    group.bench_function("amazon", |b| {
        let arguments = amazon::parse_query(Some(
            "Service=AWSECommerceService&AWSAccessKeyId=AKIA&Operation=CartClear&CartId=0123456789abcdef01234567&HMAC=ab%2Bcd%2F%3D",
        ))
        .unwrap();
        b.iter(|| {
            black_box(amazon::response_xml(
                black_box(&arguments),
                "Mozilla/5.0",
                "c0ffee-request",
                0.001,
                ("0123456789abcdef01234567", "ab+cd/="),
                &Ok(()),
            ))
        })
    });
    group.bench_function("vtex", |b| {
        b.iter(|| black_box(vtex::order_form(black_box(&view))))
    });
    group.finish();
}

/// UpdateItems naming `n` line ids, encoded as it arrives (the server decodes it first).
fn hostile_update(line_id: impl Fn(usize) -> String, n: usize) -> Vec<u8> {
    use prost::Message;
    pb::UpdateItemsRequest {
        cart_id: "0123456789abcdef01234567".into(),
        updates: (0..n)
            .map(|i| pb::ItemUpdate {
                line_id: line_id(i),
                quantity: 1,
            })
            .collect(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The server's work on a hostile UpdateItems: decode, convert, and the refusal as a status.
fn hostile(c: &mut Criterion) {
    use prost::Message;
    let limits = Limits::default();
    for (name, line_id) in [
        (
            "distinct",
            (|i| format!("li_{i:024x}")) as fn(usize) -> String,
        ),
        ("malformed", |i| format!("bad line {i}")),
    ] {
        for n in [250, 30_000] {
            let bytes = hostile_update(line_id, n);
            c.bench_function(&format!("hostile/update_items_{n}_{name}"), |b| {
                b.iter(|| {
                    let request = pb::UpdateItemsRequest::decode(black_box(&bytes[..])).unwrap();
                    let refusal = convert::update_items(request, &limits);
                    black_box(refusal.err().map(tonic::Status::from))
                })
            });
        }
    }
}

criterion_group!(hot_paths, benches, dialect_bodies, hostile);
criterion_main!(hot_paths);
