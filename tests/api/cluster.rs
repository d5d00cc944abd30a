//! Redis Cluster specifics: carts land on every master, each cart's keys in one slot.

use crate::helpers::{Backend, shared_cluster, spawn_app};

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
                node.command(&[
                    "EXISTS",
                    &meta,
                    &format!("{meta}:lines"),
                    &format!("{meta}:coupons"),
                ]) == ":3\r\n"
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
