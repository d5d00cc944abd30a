//! The production store: carts in Redis, each mutation one EVALSHA of a Lua script.
//!
//! Keys (SPEC §7): `cart:{tenant:id}`, `cart:{tenant:id}:lines`, `cart:{tenant:id}:coupons`,
//! all carrying the cart's TTL. The connection is a `ConnectionManager` created lazily, so the
//! service starts while Redis is down and reconnects by itself when Redis returns.

mod codec;
mod scripts;

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script, ServerErrorKind, Value};

use self::codec::Reply;
use self::scripts::Scripts;
use super::{CartStore, Mutated};
use crate::domain::{
    CartKey, CartPolicy, CartState, Mutation, MutationOutcome, NewCart, UnixMillis,
};
use crate::error::CartError;

/// How long Redis may take before a call fails with UNAVAILABLE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisTimeouts {
    pub connect: Duration,
    pub response: Duration,
}

impl Default for RedisTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(1),
            response: Duration::from_secs(2),
        }
    }
}

pub struct RedisStore {
    connection: ConnectionManager,
    scripts: Scripts,
    policy: CartPolicy,
}

impl RedisStore {
    /// Prepares a store for `url` without connecting; fails only on a malformed URL.
    pub fn new(url: &str, policy: CartPolicy, timeouts: RedisTimeouts) -> Result<Self, CartError> {
        let client = redis::Client::open(url)
            .map_err(|e| CartError::Internal(format!("invalid redis url: {e}").into()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.response))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| CartError::Internal(Box::new(e)))?;
        Ok(Self {
            connection,
            scripts: Scripts::new(),
            policy,
        })
    }

    /// Loads every script (SCRIPT LOAD), so that the first calls are plain EVALSHAs.
    pub async fn load_scripts(&self) -> Result<(), CartError> {
        let mut connection = self.connection.clone();
        for script in self.scripts.all() {
            script
                .prepare_invoke()
                .load_async(&mut connection)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    fn keys(key: &CartKey) -> [String; 3] {
        let meta = format!("cart:{{{}:{}}}", key.tenant, key.cart_id);
        let lines = format!("{meta}:lines");
        let coupons = format!("{meta}:coupons");
        [meta, lines, coupons]
    }

    /// ARGV[1..=7] of every script (see `lua/prelude.lua`).
    fn args(&self, now: UnixMillis, expected_version: i64) -> Vec<Vec<u8>> {
        let limits = &self.policy.limits;
        [
            now,
            self.policy.cart_ttl_ms(),
            self.policy.tombstone_ttl_ms(),
            expected_version,
            i64::from(limits.max_lines),
            i64::from(limits.max_quantity),
            i64::from(limits.max_coupons),
        ]
        .iter()
        .map(|n| n.to_string().into_bytes())
        .collect()
    }

    /// One EVALSHA (plus SCRIPT LOAD and a retry only if Redis lost the script).
    async fn run(
        &self,
        script: &Script,
        key: &CartKey,
        args: Vec<Vec<u8>>,
        expected_version: i64,
    ) -> Result<Vec<Value>, CartError> {
        let mut invocation = script.prepare_invoke();
        for k in Self::keys(key) {
            invocation.key(k);
        }
        for a in args {
            invocation.arg(a);
        }
        let mut connection = self.connection.clone();
        let reply: Value = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(store_error)?;
        match codec::parse_reply(reply, &self.policy.limits)? {
            Reply::Ok(parts) => Ok(parts),
            Reply::Refused(CartError::VersionMismatch { actual, .. }) => {
                Err(CartError::VersionMismatch {
                    expected: expected_version,
                    actual,
                })
            }
            Reply::Refused(error) => Err(error),
        }
    }

    async fn snapshot(
        &self,
        script: &Script,
        key: &CartKey,
        args: Vec<Vec<u8>>,
        expected_version: i64,
    ) -> Result<(CartState, i64), CartError> {
        let parts = self.run(script, key, args, expected_version).await?;
        codec::decode_snapshot(&parts)
    }
}

/// Connection trouble is retryable (UNAVAILABLE); anything else is a bug (INTERNAL).
fn store_error(error: RedisError) -> CartError {
    let transient_server_error = matches!(
        error.kind(),
        redis::ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        ) | redis::ErrorKind::ClusterConnectionNotFound
    );
    if error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
        || transient_server_error
    {
        CartError::Unavailable(Box::new(error))
    } else {
        CartError::Internal(Box::new(error))
    }
}

#[async_trait]
impl CartStore for RedisStore {
    #[tracing::instrument(skip_all, fields(cart_id = %key.cart_id))]
    async fn create(
        &self,
        key: &CartKey,
        cart: NewCart,
        now: UnixMillis,
    ) -> Result<CartState, CartError> {
        let mut args = self.args(now, 0);
        let header = &cart.header;
        for field in [
            &header.customer_id,
            &header.session_id,
            &header.channel,
            &header.currency.to_string(),
            &header.locale,
        ] {
            args.push(field.as_bytes().to_vec());
        }
        args.push(codec::encode_metadata(&header.metadata));
        codec::push_items(&mut args, &cart.items, now);
        let (state, _) = self.snapshot(&self.scripts.create, key, args, 0).await?;
        Ok(state)
    }

    #[tracing::instrument(skip_all, fields(cart_id = %key.cart_id))]
    async fn get(&self, key: &CartKey, now: UnixMillis) -> Result<CartState, CartError> {
        let args = self.args(now, 0);
        let (state, _) = self.snapshot(&self.scripts.get, key, args, 0).await?;
        Ok(state)
    }

    #[tracing::instrument(skip_all, fields(cart_id = %key.cart_id))]
    async fn mutate(
        &self,
        key: &CartKey,
        mutation: Mutation,
        expected_version: i64,
        now: UnixMillis,
    ) -> Result<Mutated, CartError> {
        let mut args = self.args(now, expected_version);
        let script = match &mutation {
            Mutation::AddItems(items) => {
                codec::push_items(&mut args, items, now);
                &self.scripts.add_items
            }
            Mutation::UpdateItems(updates) => {
                args.push(updates.len().to_string().into_bytes());
                for update in updates {
                    args.push(update.line_id.as_str().as_bytes().to_vec());
                    args.push(update.quantity.to_string().into_bytes());
                }
                &self.scripts.update_items
            }
            Mutation::ApplyCoupon { code, amount } => {
                args.push(code.as_str().as_bytes().to_vec());
                args.push(amount.to_string().into_bytes());
                &self.scripts.apply_coupon
            }
            Mutation::Clear {
                preserve_coupons,
                reason,
            } => {
                args.push(if *preserve_coupons {
                    b"1".to_vec()
                } else {
                    b"0".to_vec()
                });
                args.push(reason.as_bytes().to_vec());
                &self.scripts.clear
            }
            Mutation::Delete { order_number } => {
                args.push(order_number.as_str().as_bytes().to_vec());
                &self.scripts.delete
            }
        };
        let (state, items_cleared) = self.snapshot(script, key, args, expected_version).await?;
        Ok(Mutated {
            state,
            outcome: MutationOutcome { items_cleared },
        })
    }

    #[tracing::instrument(skip_all, fields(cart_id = %key.cart_id))]
    async fn remove(
        &self,
        key: &CartKey,
        expected_version: i64,
        now: UnixMillis,
    ) -> Result<i64, CartError> {
        let args = self.args(now, expected_version);
        let parts = self
            .run(&self.scripts.remove, key, args, expected_version)
            .await?;
        codec::decode_units(&parts)
    }

    async fn ping(&self) -> Result<(), CartError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
            .map_err(store_error)
    }
}
