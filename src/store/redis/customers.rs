//! The customers' indexes of carts on Redis: one sorted set per customer,
//! `customer:{tenant:<digest>}:carts`, cart ids scored by when they were indexed.
//!
//! The index has its own hash tag (the customer's, not a cart's), so on a Cluster it lives in
//! another slot than the carts it names and no script could touch both: it is written with
//! plain commands, before the cart names the customer, and read as a list of candidates that
//! the core checks one by one (see `Core::get_active_cart`). Every command here is idempotent
//! (ZADD of the same id, ZREM, a read), so each is sent again after any transient failure
//! while the store timeout allows. The set lives a cart lifetime from its last write.
//!
//! The customer id is opaque text of up to 256 bytes (it may hold `{` or `}`), so the key
//! carries the hex of the first 128 bits of its SHA-256, not the id itself.

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
    format!("customer:{{{}:{hex}}}:carts", customer.tenant)
}

impl RedisStore {
    /// ZADD (again: a newer score), trimmed to the newest [`MAX_INDEXED_CARTS`], re-armed TTL.
    pub(super) async fn index_add(
        &self,
        customer: &CustomerKey,
        cart_id: &CartId,
        now: UnixMillis,
    ) -> Result<(), CartError> {
        let key = index_key(customer);
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("ZADD")
            .arg(&key)
            .arg(now)
            .arg(cart_id.as_str())
            .ignore()
            .cmd("ZREMRANGEBYRANK")
            .arg(&key)
            .arg(0)
            .arg(-(MAX_INDEXED_CARTS as i64) - 1)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(self.policy.cart_ttl_ms())
            .ignore();
        self.index_call(&pipeline).await.map(drop)
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
        let replies = self.index_call(&pipeline).await?;
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
        command.ignore();
        self.index_call(&pipeline).await.map(drop)
    }

    /// Sends `pipeline` (one key) until it is answered, within the store timeout and the
    /// client's deadline.
    async fn index_call(&self, pipeline: &Pipeline) -> Result<Vec<Value>, CartError> {
        let deadline = Instant::now() + self.timeouts.response;
        let mut attempts = 1;
        loop {
            crate::deadline::check()?;
            let sent = tokio::time::timeout_at(deadline, async {
                let mut connection = self.connection.active().await?;
                pipeline.query_async::<Vec<Value>>(&mut connection).await
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
        assert!(key.starts_with("customer:{default:") && key.ends_with("}:carts"));
        assert_eq!(key.matches('{').count(), 1, "{key}");
        assert_ne!(key, index_key(&customer("cust{2}")));
    }
}
