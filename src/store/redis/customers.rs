//! The customers' indexes of carts on Redis: one sorted set per customer,
//! `cart:customer:{tenant:<digest>}:carts`, cart ids scored by when they were indexed (under
//! `cart:` as every key of the service, so one ACL key pattern covers them).
//!
//! The index has its own hash tag (the customer's, not a cart's), so on a Cluster it lives in
//! another slot than the carts it names and no script could touch both: it is written with
//! a script of its own (`lua/customer_index.lua`: add, trim, re-arm the TTL, refused whole by a
//! full Redis), before the cart names the customer. A Create that names a customer sends both
//! in one round trip on a single Redis: `MULTI`, the index's script (`EVAL` of its source, which
//! no script flush can make unknown inside the transaction), the Create, `EXEC`; on a Cluster
//! the index's script goes first, in a round trip of its own. It is read (ZRANGE) as a list of candidates
//! that the core checks one by one (see `Core::get_active_cart`); dead entries go with ZREM.
//! Every call here is idempotent, so each is sent again after any transient failure while the
//! store timeout allows. The set lives a cart lifetime from its last write.
//!
//! The customer id is opaque text of up to 256 bytes (it may hold `{` or `}`), so the key
//! carries the hex of the first 128 bits of its SHA-256, not the id itself.

use std::sync::LazyLock;

use redis::{Pipeline, RedisError, ServerErrorKind, Value};
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

/// The source of the index's one write, without its comment lines: a Create naming a customer
/// sends it whole (`index_eval`), and Redis hashes what it is sent (616 bytes with the
/// comments, 167 without).
static INDEX_SOURCE: LazyLock<String> =
    LazyLock::new(|| super::scripts::without_comments(include_str!("lua/customer_index.lua")));

/// The index's one write (EVALSHA; loaded again on NOSCRIPT).
static INDEX_CART: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(INDEX_SOURCE.as_str()));

/// The arguments of the index's script after its key (one argument each): now, the cart id,
/// the most entries it keeps, its lifetime.
fn index_args(cart_id: &CartId, now: UnixMillis, ttl_ms: i64) -> (UnixMillis, &str, usize, i64) {
    (now, cart_id.as_str(), MAX_INDEXED_CARTS, ttl_ms)
}

/// The index's script by EVALSHA on `connection` (loaded first if Redis lost it), alone: for a
/// Create whose index the transaction could not write.
pub(super) async fn index_by_evalsha(
    connection: &mut super::connection::Active,
    customer: &CustomerKey,
    cart_id: &CartId,
    now: UnixMillis,
    ttl_ms: i64,
) -> Result<(), RedisError> {
    INDEX_CART
        .key(index_key(customer))
        .arg(index_args(cart_id, now, ttl_ms))
        .invoke_async::<Value>(connection)
        .await
        .map(drop)
}

/// `EVAL` of the index's script, for a transaction: its source rather than its hash, so that
/// it cannot fail for a flushed script cache while the Create after it runs.
pub(super) fn index_eval(
    customer: &CustomerKey,
    cart_id: &CartId,
    now: UnixMillis,
    ttl_ms: i64,
) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(INDEX_SOURCE.as_str())
        .arg(1)
        .arg(index_key(customer))
        .arg(index_args(cart_id, now, ttl_ms));
    cmd
}

impl RedisStore {
    /// The index's script (ZADD again: a newer score; trimmed to the newest
    /// [`MAX_INDEXED_CARTS`]; TTL re-armed), followed by a `WAIT` when changes must reach
    /// replicas (`[durability]`), as every cart mutation: an entry lost in a failover would
    /// hide a live cart from GetActiveCart.
    pub(super) async fn index_add(
        &self,
        customer: &CustomerKey,
        cart_id: &CartId,
        now: UnixMillis,
    ) -> Result<(), CartError> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(INDEX_CART.get_hash())
            .arg(1)
            .arg(index_key(customer))
            .arg(index_args(cart_id, now, self.policy.cart_ttl_ms()));
        let mut pipeline = redis::pipe();
        pipeline.ignore_errors().add_command(cmd);
        let replicas = self.durability.min_replicas;
        if replicas > 0 {
            pipeline
                .cmd("WAIT")
                .arg(replicas)
                .arg(self.durability.timeout.as_millis().max(1) as u64);
        }
        let replies = self.index_call(&pipeline).await?;
        match replies.get(1) {
            Some(Value::Int(acked)) if *acked < i64::from(replicas) => {
                Err(CartError::ReplicationTimeout {
                    acked: *acked,
                    wanted: replicas,
                })
            }
            _ => Ok(()),
        }
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
        self.index_call(&pipeline).await.map(drop)
    }

    /// Sends `pipeline` (one key; errors as values when it says so) until it is answered,
    /// within the store timeout and the client's deadline. A Redis that lost the index's
    /// script gets it again.
    async fn index_call(&self, pipeline: &Pipeline) -> Result<Vec<Value>, CartError> {
        let deadline = Instant::now() + self.timeouts.response;
        let mut attempts = 1;
        loop {
            crate::deadline::check()?;
            let sent = tokio::time::timeout_at(deadline, async {
                let mut connection = self.connection.active().await?;
                let replies = pipeline.query_async::<Vec<Value>>(&mut connection).await?;
                match replies.first() {
                    Some(Value::ServerError(error)) => {
                        let error: RedisError = error.clone().into();
                        if error.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript) {
                            INDEX_CART
                                .prepare_invoke()
                                .load_async(&mut connection)
                                .await?;
                        }
                        Err(error)
                    }
                    _ => Ok(replies),
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
            let no_script = error.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript);
            let transient =
                no_script || matches!(failure(&error), Failure::NotSent | Failure::Unknown);
            let backoff = RETRY_BACKOFF * attempts;
            if !transient || attempts >= MAX_ATTEMPTS || Instant::now() + backoff >= deadline {
                return Err(store_error(error));
            }
            if !no_script {
                tokio::time::sleep(backoff).await;
            }
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
        assert!(key.starts_with("cart:customer:{default:") && key.ends_with("}:carts"));
        assert_eq!(key.matches('{').count(), 1, "{key}");
        assert_ne!(key, index_key(&customer("cust{2}")));
    }
}
