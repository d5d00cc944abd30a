//! What one-line carts cost the in-memory store: its own estimate (the bytes its
//! `[memory] max_bytes` cap counts) against the growth of the process's resident memory,
//! with the service's allocator (mimalloc).
//!
//! ```sh
//! cargo run --release --example memory-footprint -- 100000
//! ```

use std::collections::BTreeMap;

use cart_service::domain::{
    CartHeader, CartId, CartKey, CartPolicy, Currency, LineId, NewCart, NewLine, Sku, TenantId,
    now_millis,
};
use cart_service::store::{CartStore, MemoryStore};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Resident set size of this process, from `/proc/self/statm` (Linux).
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn one_line_cart() -> NewCart {
    let sku = Sku::parse("SKU-1", 64).unwrap();
    NewCart {
        header: CartHeader {
            customer_id: "cust_abc123".into(),
            session_id: "sess_xyz789".into(),
            channel: "web".into(),
            currency: Currency::parse("USD").unwrap(),
            locale: "en-US".into(),
            metadata: BTreeMap::new(),
        },
        items: vec![NewLine {
            line_id: LineId::for_sku(&sku),
            sku,
            product_id: "prod-SKU-1".into(),
            title: "Mug".into(),
            quantity: 2,
            unit_price: 1250,
            attributes: BTreeMap::new(),
            currency: None,
        }],
        id_generated: true,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let carts: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("a number of carts"))
        .unwrap_or(100_000);
    let store = MemoryStore::with_max_bytes(CartPolicy::default(), usize::MAX);
    let tenant = TenantId::default_tenant();
    let before = rss_bytes();
    for n in 0..carts {
        let key = CartKey {
            tenant: tenant.clone(),
            cart_id: CartId::parse(&format!("{n:024x}")).unwrap(),
        };
        store
            .create(&key, one_line_cart(), now_millis(), None)
            .await
            .expect("create");
    }
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "{carts} one-line carts: estimate {} B per cart ({} B held), RSS grew {} B per cart ({} B)",
        store.held_bytes() / carts,
        store.held_bytes(),
        grown / carts,
        grown
    );
}
