//! Histories of acknowledged mutations, checked against the domain model.
//!
//! The successful mutations of one cart, as clients saw them, must form one sequence: their
//! versions are 2, 3, … without gap (nothing was applied that no client saw, or applied twice)
//! or repeat (no update was lost), and replaying them in version order through
//! `CartState::apply` must reproduce every reply and the cart as read at the end.

use std::collections::BTreeMap;

use cart_service::domain::{
    CartHeader, CartState, CouponCode, Currency, Limits, LineId, LineUpdate, Mutation, NewCart,
    NewLine, OrderNumber, Sku,
};
use cart_service::pb;

/// Distinct skus the workloads pick from.
pub const SKUS: usize = 8;

pub fn sku(n: usize) -> String {
    format!("SKU-{n}")
}

pub fn price(n: usize) -> i64 {
    100 * (n as i64 + 1)
}

pub fn line_id(n: usize) -> String {
    LineId::for_sku(&Sku::parse(&sku(n), 64).unwrap()).to_string()
}

/// Tiny deterministic generator, so a failure can be replayed.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// A mutation as a client asked for it (skus by number).
#[derive(Debug, Clone)]
pub enum Op {
    Add(Vec<(usize, i64)>),
    Update(Vec<(usize, i64)>),
    Coupon(String, i64),
    Clear,
    Delete(String),
}

impl Op {
    fn mutation(&self) -> Mutation {
        match self {
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
            Op::Coupon(code, amount) => Mutation::ApplyCoupon {
                code: CouponCode::parse(code).unwrap(),
                amount: *amount,
            },
            Op::Clear => Mutation::Clear {
                preserve_coupons: false,
                reason: String::new(),
                only_generated_id: false,
            },
            Op::Delete(order) => Mutation::Delete {
                order_number: OrderNumber::parse(order).unwrap(),
            },
        }
    }
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

/// What a cart holds, as compared: lines (sku, quantity) and coupons (code, amount), in order.
type Content = (Vec<(String, i64)>, Vec<(String, i64)>);

fn content(cart: &pb::Cart) -> Content {
    (
        cart.items
            .iter()
            .map(|l| (l.sku.clone(), l.quantity))
            .collect(),
        cart.applied_coupons
            .iter()
            .map(|c| (c.code.clone(), c.amount))
            .collect(),
    )
}

fn model_content(model: &CartState) -> Content {
    (
        model
            .lines
            .iter()
            .map(|l| (l.sku.to_string(), i64::from(l.quantity)))
            .collect(),
        model
            .coupons
            .iter()
            .map(|c| (c.code.to_string(), c.amount))
            .collect(),
    )
}

/// A successful mutation and the reply its client got.
#[derive(Debug)]
pub struct Applied {
    pub op: Op,
    pub version: i64,
    content: Content,
    items_cleared: i64,
}

impl Applied {
    pub fn new(op: Op, reply: &pb::Cart, items_cleared: i64) -> Self {
        Self {
            op,
            version: reply.version,
            content: content(reply),
            items_cleared,
        }
    }
}

/// How a cart's history ended.
pub enum End {
    /// The cart as read after the workload.
    Cart(Box<pb::Cart>),
    /// A Remove ended it, reporting these units.
    Removed(i64),
}

/// Checks one cart's history; the cart was created empty (version 1, USD).
pub fn check(mut applied: Vec<Applied>, end: &End) -> Result<(), String> {
    applied.sort_by_key(|a| a.version);
    for (i, a) in applied.iter().enumerate() {
        let due = i as i64 + 2;
        if a.version != due {
            return Err(format!(
                "{} acknowledged mutations, but version {} reported where {due} was due: a \
                 mutation was lost, or applied without being acknowledged (twice)",
                applied.len(),
                a.version
            ));
        }
    }
    let limits = Limits::default();
    let header = CartHeader {
        customer_id: String::new(),
        session_id: String::new(),
        channel: String::new(),
        currency: Currency::parse("USD").unwrap(),
        locale: String::new(),
        metadata: BTreeMap::new(),
    };
    let new = NewCart {
        header,
        items: vec![],
        id_generated: true,
    };
    let mut model = CartState::create(new, 0, &limits).unwrap();
    for a in &applied {
        let outcome = model.apply(&a.op.mutation(), 0, 0, &limits).map_err(|e| {
            format!(
                "version {}: {:?} succeeded on the server but not in sequence: {e}",
                a.version, a.op
            )
        })?;
        let expected = model_content(&model);
        if expected != a.content || outcome.items_cleared != a.items_cleared {
            return Err(format!(
                "version {}: {:?} replied {:?} (cleared {}), the sequence gives {expected:?} \
                 (cleared {})",
                a.version, a.op, a.content, a.items_cleared, outcome.items_cleared
            ));
        }
    }
    match end {
        End::Cart(last) => {
            if last.version != applied.len() as i64 + 1 {
                return Err(format!(
                    "final version {} after {} acknowledged mutations: one was applied twice \
                     or without an acknowledgement",
                    last.version,
                    applied.len()
                ));
            }
            if content(last) != model_content(&model) {
                return Err(format!(
                    "final cart {:?}, the sequence gives {:?}",
                    content(last),
                    model_content(&model)
                ));
            }
            let (units, money): (i64, i64) = last.items.iter().fold((0, 0), |(u, m), l| {
                (u + l.quantity, m + l.quantity * l.unit_price)
            });
            if (last.item_count, last.subtotal) != (units, money) {
                return Err("final totals differ from the sum of the lines".into());
            }
        }
        End::Removed(units) => {
            if *units != model.item_count() {
                return Err(format!(
                    "Remove reported {units} units, the sequence leaves {}",
                    model.item_count()
                ));
            }
        }
    }
    Ok(())
}
