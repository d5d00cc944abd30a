//! The customers' indexes of carts on Redis: one sorted set per customer,
//! `cart:customer:{tenant:<digest>}:carts`, cart ids scored by when they were indexed (under
//! `cart:` as every key of the service, so one ACL key pattern covers them).
//!
//! The index has its own hash tag (the customer's, not a cart's), so on a Cluster it lives in
//! another slot than the carts it names and no script could touch both: it is written with
//! a script of its own (`lua/customer_index.lua`: add, trim, re-arm the TTL, refused whole by a
//! full Redis), before the cart names the customer, and read (ZRANGE) as a list of candidates
//! that the core checks one by one (see `Core::get_active_cart`); dead entries go with ZREM.
//! Every call here is idempotent, so each is sent again after any transient failure while the
//! store timeout allows. The set lives a cart lifetime from its last write.
//!
//! The customer id is opaque text of up to 256 bytes (it may hold `{` or `}`), so the key
//! carries the hex of the first 128 bits of its SHA-256, not the id itself.

use std::sync::LazyLock;

use redis::{Pipeline, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::{Failure, MAX_ATTEMPTS, RETRY_BACKOFF, RedisStore, failure, store_error};
use crate::domain::{CartId, UnixMillis};
use crate::error::CartError;
use crate::store::{CustomerKey, MAX_INDEXED_CARTS};

/// The index's key.
pub fn index_key(customer: &CustomerKey) -> String {
    let digest = Sha256::digest(customer.customer_id.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("cart:customer:{{{}:{hex}}}:carts", customer.tenant)
}

/// The index's one write (EVALSHA; loaded again on NOSCRIPT).
static INDEX_CART: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/customer_index.lua")));

impl RedisStore {
    /// ZADD (again: a newer score), trimmed to the newest [`MAX_INDEXED_CARTS`], re-armed TTL.
    pub(super) async fn index_add(
        &self,
        customer: &CustomerKey,
        cart_id: &CartId,
        now: UnixMillis,
    ) -> Result<(), CartError> {
        let mut invocation = INDEX_CART.prepare_invoke();
        invocation
            .key(index_key(customer))
            .arg(now)
            .arg(cart_id.as_str())
            .arg(MAX_INDEXED_CARTS)
            .arg(self.policy.cart_ttl_ms());
        self.index_call(Call::Script(&invocation)).await.map(drop)
    }

    /// The ids, newest first.
    pub(super) async fn index_read(
        &self,
        customer: &CustomerKey,
    ) -> Result<Vec<CartId>, CartError> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("ZRANGE")
            .arg(index_key(customer))
            .arg(0)
            .arg(MAX_INDEXED_CARTS - 1)
            .arg("REV");
        let replies = self.index_call(Call::Commands(&pipeline)).await?;
        let Some(Value::Array(ids)) = replies.into_iter().next() else {
            return Err(CartError::Internal(
                "unexpected reply from redis to ZRANGE".into(),
            ));
        };
        Ok(ids
            .iter()
            .filter_map(|id| match id {
                Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
                _ => None,
            })
            // Only ids the service wrote are in the set; anything else is skipped.
            .filter_map(|id| CartId::parse(id).ok())
            .collect())
    }

    pub(super) async fn index_drop(
        &self,
        customer: &CustomerKey,
        cart_ids: &[CartId],
    ) -> Result<(), CartError> {
        if cart_ids.is_empty() {
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        let command = pipeline.cmd("ZREM").arg(index_key(customer));
        for id in cart_ids {
            command.arg(id.as_str());
        }
        self.index_call(Call::Commands(&pipeline)).await.map(drop)
    }

    /// Sends `call` (one key) until it is answered, within the store timeout and the client's
    /// deadline.
    async fn index_call(&self, call: Call<'_>) -> Result<Vec<Value>, CartError> {
        let deadline = Instant::now() + self.timeouts.response;
        let mut attempts = 1;
        loop {
            crate::deadline::check()?;
            let sent = tokio::time::timeout_at(deadline, async {
                let mut connection = self.connection.active().await?;
                match call {
                    Call::Commands(pipeline) => {
                        pipeline.query_async::<Vec<Value>>(&mut connection).await
                    }
                    Call::Script(invocation) => invocation
                        .invoke_async::<Value>(&mut connection)
                        .await
                        .map(|reply| vec![reply]),
                }
            })
            .await;
            let error = match sent {
                Ok(Ok(replies)) => return Ok(replies),
                Ok(Err(error)) => error,
                Err(_) => {
                    return Err(CartError::Unavailable(
                        format!("redis did not answer within {:?}", self.timeouts.response).into(),
                    ));
                }
            };
            let transient = matches!(failure(&error), Failure::NotSent | Failure::Unknown);
            let backoff = RETRY_BACKOFF * attempts;
            if !transient || attempts >= MAX_ATTEMPTS || Instant::now() + backoff >= deadline {
                return Err(store_error(error));
            }
            tokio::time::sleep(backoff).await;
            attempts += 1;
        }
    }
}

/// What an index call sends: plain commands (reads, ZREM), or the index's script.
#[derive(Clone, Copy)]
enum Call<'a> {
    Commands(&'a Pipeline),
    Script(&'a redis::ScriptInvocation<'static>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;

    #[test]
    fn the_key_hides_the_customer_id_behind_its_own_hash_tag() {
        let customer = |id: &str| CustomerKey {
            tenant: TenantId::default_tenant(),
            customer_id: id.into(),
        };
        let key = index_key(&customer("cust{1}"));
        assert!(key.starts_with("cart:customer:{default:") && key.ends_with("}:carts"));
        assert_eq!(key.matches('{').count(), 1, "{key}");
        assert_ne!(key, index_key(&customer("cust{2}")));
    }
}
