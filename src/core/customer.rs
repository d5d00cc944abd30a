//! The customer's carts: GetActiveCart, and Merge (a guest cart joins the customer's cart at
//! login).
//!
//! **The index.** A store keeps per customer a short list of candidate cart ids
//! ([`crate::store::CustomerKey`]). It lives apart from the carts (on a Cluster in another
//! slot), so no step writes both atomically; instead the list only ever holds *candidates*:
//! an id is indexed before the cart names the customer (Create, Merge's claim), so a failure
//! between the two leaves an extra entry, never a missing one; and every read checks every
//! entry against the cart itself. An entry whose cart is gone (removed, expired, never
//! created), ended (deleted, merged) or now another customer's is dropped on that read
//! (repaired on read); a cart being merged stays, as the merge may give it back. The answer is
//! the live (ACTIVE or FROZEN) cart with the latest `last_activity_at`, and it is read with
//! Get, which restarts its lifetime and moves it first in the index.
//!
//! **Merge** is four atomic steps, because the two carts live in different slots:
//! 1. resolve the target (the customer's active cart, not the source) and check both carts
//!    (currency, limits, frozen: the refusals of step 3, run on a copy, so most refusals
//!    change nothing at all);
//! 2. seal the source under the Merge's request id (`MERGING`, the target recorded in it): a
//!    concurrent AddItems on it either came first and is in what is merged, or is refused
//!    with CART_MERGED; a retry finds the target recorded here;
//! 3. apply the source's lines and coupons to the target under an idempotency record in the
//!    target's slot, keyed by a digest of the source, the request id and the target, so a
//!    retry replays it instead of adding again: each guest line counts exactly once;
//! 4. turn the source into the MERGED tombstone.
//!
//! A refusal at step 3 unseals the source (nothing changed in either cart). A failure
//! anywhere (store outage, killed process, lost answer) leaves the merge at a step that a
//! retry with the same request id resumes: a sealed source resumes at step 3, a MERGED one
//! answers the merge's result again. Without a target the customer has none: the source
//! becomes the customer's cart (claimed: `customer_id` set, same id), indexed first.

use sha2::{Digest, Sha256};

use super::command::{GetActiveCart, Merge};
use super::{Caller, CartView, Core, MergeOutcome};
use crate::auth::Scope;
use crate::domain::{
    CartId, CartKey, CartState, CartStatus, CouponCode, IdempotencyKey, IdempotencyTag, MergeMode,
    Mutation, NewLine, UnixMillis, now_millis,
};
use crate::error::CartError;
use crate::store::CustomerKey;

/// How often a Merge starts over when its target vanished between steps 1 and 3.
const MERGE_ATTEMPTS: usize = 2;

impl Core {
    pub async fn get_active_cart(
        &self,
        caller: &Caller,
        command: GetActiveCart,
    ) -> Result<CartView, CartError> {
        caller.principal.require(Scope::Read)?;
        let customer = CustomerKey {
            tenant: caller.principal.tenant.clone(),
            customer_id: command.customer_id,
        };
        // A cart found live can end before the Get that reads it: look again, briefly.
        for _ in 0..3 {
            let now = now_millis();
            let Some((key, _)) = self.active_cart(caller, &customer, now, None).await? else {
                return Err(CartError::NoActiveCart);
            };
            let state = match self.store_call(caller, self.store.get(&key, now)).await {
                Ok(state) => state,
                Err(CartError::CartNotFound) => continue,
                Err(other) => return Err(other),
            };
            if state.is_live() && state.header.customer_id == customer.customer_id {
                // Most recently used first: it stays within the index's bound.
                self.store_call(caller, self.store.index_cart(&customer, &key.cart_id, now))
                    .await?;
                return Ok(self.view(key, state));
            }
        }
        Err(CartError::NoActiveCart)
    }

    /// The customer's live cart with the latest activity (other than `except`), read without
    /// touching it; the index's dead entries are dropped on the way.
    async fn active_cart(
        &self,
        caller: &Caller,
        customer: &CustomerKey,
        now: UnixMillis,
        except: Option<&CartId>,
    ) -> Result<Option<(CartKey, Box<CartState>)>, CartError> {
        let ids = self
            .store_call(caller, self.store.indexed_carts(customer))
            .await?;
        let mut best: Option<(CartKey, Box<CartState>)> = None;
        let mut dead = Vec::new();
        for cart_id in ids {
            if except == Some(&cart_id) {
                continue;
            }
            let key = CartKey {
                tenant: customer.tenant.clone(),
                cart_id,
            };
            let state = match self.store_call(caller, self.store.peek(&key, now)).await {
                Ok(state) => state,
                Err(CartError::CartNotFound) => {
                    dead.push(key.cart_id);
                    continue;
                }
                Err(other) => return Err(other),
            };
            let theirs = state.header.customer_id == customer.customer_id;
            if theirs && state.is_live() {
                if best
                    .as_ref()
                    .is_none_or(|(_, b)| state.last_activity_at > b.last_activity_at)
                {
                    best = Some((key, state));
                }
            } else if !theirs || state.status != CartStatus::Merging {
                dead.push(key.cart_id);
            }
        }
        if !dead.is_empty() {
            // Repair on read; a failure here leaves entries that the next read drops.
            let _ = self
                .store_call(caller, self.store.unindex_carts(customer, &dead))
                .await;
        }
        Ok(best)
    }

    pub async fn merge(&self, caller: &Caller, command: Merge) -> Result<MergeOutcome, CartError> {
        let Some(tag) = caller.tag(&command) else {
            return Err(CartError::invalid(
                "request_id",
                "required: a Merge is retried under its request_id",
            ));
        };
        let source_key = self.authorize(caller, Scope::Write, command.source_cart_id.clone())?;
        for _ in 0..MERGE_ATTEMPTS {
            if let Some(outcome) = self.merge_once(caller, &command, &source_key, &tag).await? {
                return Ok(outcome);
            }
        }
        Err(CartError::Unavailable(
            "the customer's cart ended during the merge; retry with the same request_id".into(),
        ))
    }

    /// One pass of the steps; `None` when the target vanished after the source was sealed
    /// (the source is unsealed again; the merge starts over).
    async fn merge_once(
        &self,
        caller: &Caller,
        command: &Merge,
        source_key: &CartKey,
        tag: &IdempotencyTag,
    ) -> Result<Option<MergeOutcome>, CartError> {
        let merge_key = tag.key.as_str().to_owned();
        let now = now_millis();
        let source = self
            .store_call(caller, self.store.peek(source_key, now))
            .await?;
        let customer_id = &command.customer_id;
        if !source.header.customer_id.is_empty() && &source.header.customer_id != customer_id {
            return Err(CartError::CartNotFound);
        }
        match source.status {
            CartStatus::Merged if source.merge_key == merge_key => {
                // Done before: the same answer again.
                let target_key = self.key_of(source_key, &source.merged_into)?;
                let target = self
                    .store_call(caller, self.store.get(&target_key, now))
                    .await?;
                return Ok(Some(self.merged(
                    target_key,
                    target,
                    source_key,
                    &source,
                    command.mode,
                )));
            }
            CartStatus::Merging if source.merge_key == merge_key => {
                let target = source.merged_into.clone();
                return self
                    .merge_into(caller, command, source_key, source, &target, tag)
                    .await;
            }
            CartStatus::Merging | CartStatus::Merged => return Err(CartError::CartMerged),
            CartStatus::Deleted => return Err(CartError::CartDeleted),
            CartStatus::Frozen => return Err(CartError::CartFrozen),
            CartStatus::Active => {}
        }
        // Step 1: the target, and the refusals step 3 would make, on a copy.
        let customer = CustomerKey {
            tenant: source_key.tenant.clone(),
            customer_id: customer_id.clone(),
        };
        let target = self
            .active_cart(caller, &customer, now, Some(&source_key.cart_id))
            .await?;
        let Some((target_key, target)) = target else {
            // No cart yet: the guest cart becomes the customer's.
            self.store_call(
                caller,
                self.store.index_cart(&customer, &source_key.cart_id, now),
            )
            .await?;
            let claim = Mutation::Claim {
                customer_id: customer_id.clone(),
            };
            let claimed = self
                .store_call(caller, self.store.mutate(source_key, claim, 0, now, None))
                .await?
                .state;
            let lines_merged = claimed.lines.len() as i64;
            return Ok(Some(MergeOutcome {
                cart: self.view(source_key.clone(), claimed),
                source_cart_id: source_key.cart_id.to_string(),
                lines_merged,
            }));
        };
        let mut trial = target.clone();
        trial.apply(&absorb(&source, command.mode), 0, now, &self.policy.limits)?;
        // Step 2: seal the source for this target.
        let seal = Mutation::Seal {
            target: target_key.cart_id.to_string(),
            merge_key,
        };
        let sealed = self
            .store_call(caller, self.store.mutate(source_key, seal, 0, now, None))
            .await?
            .state;
        let target_id = target_key.cart_id.to_string();
        self.merge_into(caller, command, source_key, sealed, &target_id, tag)
            .await
    }

    /// Steps 3 and 4, from a sealed source.
    async fn merge_into(
        &self,
        caller: &Caller,
        command: &Merge,
        source_key: &CartKey,
        sealed: Box<CartState>,
        target_id: &str,
        tag: &IdempotencyTag,
    ) -> Result<Option<MergeOutcome>, CartError> {
        let merge_key = tag.key.as_str().to_owned();
        let target_key = self.key_of(source_key, target_id)?;
        let record = absorb_tag(source_key, target_id, tag);
        let now = now_millis();
        let absorbed = self
            .store_call(
                caller,
                self.store.mutate(
                    &target_key,
                    absorb(&sealed, command.mode),
                    0,
                    now,
                    Some(&record),
                ),
            )
            .await;
        let merged = match absorbed {
            Ok(merged) => merged.state,
            Err(refusal) if refusal.remembered().is_some() => {
                // The target refused: the source opens again, as it was.
                let unseal = Mutation::Unseal { merge_key };
                self.store_call(caller, self.store.mutate(source_key, unseal, 0, now, None))
                    .await?;
                return match refusal {
                    CartError::CartNotFound => Ok(None),
                    refusal => Err(refusal),
                };
            }
            Err(failure) => return Err(failure),
        };
        // Step 4.
        let finish = Mutation::FinishMerge { merge_key };
        self.store_call(caller, self.store.mutate(source_key, finish, 0, now, None))
            .await?;
        Ok(Some(self.merged(
            target_key,
            merged,
            source_key,
            &sealed,
            command.mode,
        )))
    }

    /// The answer of a merge into `target_key`.
    fn merged(
        &self,
        target_key: CartKey,
        target: Box<CartState>,
        source_key: &CartKey,
        source: &CartState,
        mode: MergeMode,
    ) -> MergeOutcome {
        MergeOutcome {
            cart: self.view(target_key, target),
            source_cart_id: source_key.cart_id.to_string(),
            lines_merged: match mode {
                MergeMode::KeepTarget => 0,
                _ => source.lines.len() as i64,
            },
        }
    }

    /// The key of a cart id recorded in another cart of the same tenant.
    fn key_of(&self, beside: &CartKey, cart_id: &str) -> Result<CartKey, CartError> {
        Ok(CartKey {
            tenant: beside.tenant.clone(),
            cart_id: CartId::parse(cart_id).map_err(|e| {
                CartError::Internal(format!("a merge recorded a bad cart id: {e}").into())
            })?,
        })
    }
}

/// Step 3's change of the target: the source's lines as items, and its coupons.
fn absorb(source: &CartState, mode: MergeMode) -> Mutation {
    Mutation::Absorb {
        mode,
        currency: source.header.currency.clone(),
        items: source
            .lines
            .iter()
            .map(|line| NewLine {
                line_id: line.line_id.clone(),
                sku: line.sku.clone(),
                product_id: line.product_id.clone(),
                title: line.title.clone(),
                quantity: line.quantity,
                unit_price: line.unit_price,
                attributes: line.attributes.clone(),
                currency: None,
            })
            .collect(),
        coupons: source
            .coupons
            .iter()
            .map(|c| (c.code.clone(), c.amount))
            .collect::<Vec<(CouponCode, i64)>>(),
    }
}

/// The idempotency record of step 3, in the target's slot: one per source, Merge request and
/// target, under the Merge's fingerprint (so the same request id with another payload is
/// REQUEST_ID_REUSED there too).
fn absorb_tag(source: &CartKey, target_id: &str, merge: &IdempotencyTag) -> IdempotencyTag {
    let mut digest = Sha256::new();
    for part in [source.cart_id.as_str(), merge.key.as_str(), target_id] {
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part.as_bytes());
    }
    let hex: String = digest.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = IdempotencyKey::parse(&format!("merge-{hex}")).expect("a hex key is a valid key");
    IdempotencyTag {
        key,
        fingerprint: merge.fingerprint.clone(),
    }
}
