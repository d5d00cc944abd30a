//! The production store: carts in Redis, each mutation one EVALSHA of a Lua script.
//!
//! Keys (SPEC §7): `cart:{tenant:id}`, `cart:{tenant:id}:lines`, `cart:{tenant:id}:coupons`,
//! all carrying the cart's TTL and one hash tag, so each script touches one Cluster slot.
//! Every call is bounded by the store timeout; a failed call is sent again only when that
//! cannot apply it twice (see [`Retry`]).

mod codec;
pub mod connection;
mod scripts;

use std::time::Duration;

use async_trait::async_trait;
use prometheus_client::metrics::histogram::Histogram;
use redis::{RedisError, Script, ServerErrorKind, Value};
use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

use self::codec::Reply;
use self::connection::Connection;
use self::scripts::Scripts;
use super::{CartStore, Mutated};
use crate::domain::{
    CartKey, CartPolicy, CartState, Mutation, MutationOutcome, NewCart, UnixMillis,
};
use crate::error::CartError;

/// The Lua source of the Clear script, as the store loads it (for benchmarking it alone).
pub fn clear_script_source() -> String {
    scripts::source(include_str!("lua/clear.lua"))
}

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
    connection: Connection,
    scripts: Scripts,
    policy: CartPolicy,
    timeouts: RedisTimeouts,
    /// `server.address` and `server.port` of the store call spans.
    server: (String, u16),
    /// `cart_store_call_duration_seconds` of each script, in the order of `Scripts::all`.
    script_latency: [Histogram; Scripts::NAMES.len()],
}

/// Whether a call whose outcome is unknown (the connection broke after it was sent) may be
/// sent again. A call that never reached Redis (refused connection, cluster down, loading)
/// is always sent again while time remains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Create, and mutations without `expected_version`: a second run could apply twice.
    Never,
    /// Get, Delete (idempotent by order number), and mutations guarded by `expected_version`.
    Safe,
}

const MAX_ATTEMPTS: u32 = 4;
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

impl RedisStore {
    /// Prepares a store for `url` without connecting; fails only on a malformed URL.
    /// `ca_cert` (PEM) replaces the system roots for `rediss://`.
    pub fn new(
        url: &str,
        policy: CartPolicy,
        timeouts: RedisTimeouts,
        ca_cert: Option<Vec<u8>>,
    ) -> Result<Self, CartError> {
        // rustls needs a process-wide crypto provider; a second install is a harmless no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let metrics = crate::metrics::global();
        Ok(Self {
            connection: Connection::open(url, timeouts, ca_cert)?,
            scripts: Scripts::new(),
            policy,
            timeouts,
            server: connection::server_endpoint(url).unwrap_or_default(),
            script_latency: Scripts::NAMES.map(|name| metrics.store_call_histogram(name)),
        })
    }

    pub fn is_cluster(&self) -> bool {
        self.connection.is_cluster()
    }

    /// Loads every script (SCRIPT LOAD), so that the first calls are plain EVALSHAs.
    pub async fn load_scripts(&self) -> Result<(), CartError> {
        let mut connection = self.connection.active().await.map_err(store_error)?;
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

    /// [`RedisStore::run`] in an OpenTelemetry client span (`db.*` and `server.*` attributes,
    /// the failure recorded on it), timed into the script's latency histogram.
    async fn call(
        &self,
        script: &Script,
        key: &CartKey,
        args: Vec<Vec<u8>>,
        expected_version: i64,
        retry: Retry,
    ) -> Result<Vec<Value>, CartError> {
        let index = self.scripts.index_of(script);
        let span = tracing::info_span!(
            "redis",
            otel.name = Scripts::SPAN_NAMES[index],
            otel.kind = "client",
            otel.status_code = Empty,
            db.system.name = "redis",
            db.operation.name = "EVALSHA",
            db.stored_procedure.name = Scripts::NAMES[index],
            server.address = self.server.0.as_str(),
            server.port = i64::from(self.server.1),
            "error.type" = Empty,
        );
        let started = std::time::Instant::now();
        let result = self
            .run(script, key, args, expected_version, retry)
            .instrument(span.clone())
            .await;
        self.script_latency[index].observe(started.elapsed().as_secs_f64());
        if let Err(error @ (CartError::Unavailable(_) | CartError::Internal(_))) = &result {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", error.reason());
        }
        result
    }

    /// One EVALSHA (plus SCRIPT LOAD and a resend only if Redis lost the script), within the
    /// store timeout, sent again per `retry` after a transient failure.
    async fn run(
        &self,
        script: &Script,
        key: &CartKey,
        args: Vec<Vec<u8>>,
        expected_version: i64,
        retry: Retry,
    ) -> Result<Vec<Value>, CartError> {
        let mut invocation = script.prepare_invoke();
        for k in Self::keys(key) {
            invocation.key(k);
        }
        for a in args {
            invocation.arg(a);
        }
        let deadline = Instant::now() + self.timeouts.response;
        let mut attempt = 1;
        let reply = loop {
            let call = async {
                let mut connection = self.connection.active().await?;
                invocation.invoke_async::<Value>(&mut connection).await
            };
            let error = match tokio::time::timeout_at(deadline, call).await {
                Ok(Ok(reply)) => break reply,
                Ok(Err(error)) => error,
                Err(_) => {
                    return Err(CartError::Unavailable(
                        format!("redis did not answer within {:?}", self.timeouts.response).into(),
                    ));
                }
            };
            let resend = match failure(&error) {
                Failure::NotSent => true,
                Failure::Unknown => retry == Retry::Safe,
                Failure::Permanent => false,
            };
            let backoff = RETRY_BACKOFF * attempt;
            if !resend || attempt >= MAX_ATTEMPTS || Instant::now() + backoff >= deadline {
                return Err(store_error(error));
            }
            tracing::debug!(%error, attempt, "redis call failed; sending it again");
            tokio::time::sleep(backoff).await;
            attempt += 1;
        };
        match codec::parse_reply(reply, &self.policy.limits)? {
            Reply::Ok(parts) => Ok(parts),
            // After a resend, a guard refusal may be the first attempt's own success showing.
            Reply::Refused(CartError::VersionMismatch { .. } | CartError::CartNotFound)
                if attempt > 1 =>
            {
                Err(CartError::Unavailable(
                    "redis failed mid-call; the outcome is unknown, read the cart".into(),
                ))
            }
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
        retry: Retry,
    ) -> Result<(CartState, i64), CartError> {
        let parts = self
            .call(script, key, args, expected_version, retry)
            .await?;
        codec::decode_snapshot(&parts)
    }
}

/// What a failed call tells about its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Redis did not run it (no connection, cluster down or failing over, a redirect that
    /// outlasted the cluster client's own retries, loading).
    NotSent,
    /// It may or may not have run (the connection broke or timed out after sending).
    Unknown,
    /// Neither: a bug or a misconfiguration that a resend cannot fix.
    Permanent,
}

fn failure(error: &RedisError) -> Failure {
    let refused_by_server = matches!(
        error.kind(),
        redis::ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
        ) | redis::ErrorKind::ClusterConnectionNotFound
    );
    if error.is_connection_refusal() || refused_by_server {
        Failure::NotSent
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
        Failure::Unknown
    } else {
        Failure::Permanent
    }
}

/// Connection trouble and refused credentials are UNAVAILABLE (the store cannot be used right
/// now; health says so); anything else is a bug (INTERNAL).
fn store_error(error: RedisError) -> CartError {
    let unusable = failure(&error) != Failure::Permanent
        || matches!(error.kind(), redis::ErrorKind::AuthenticationFailed)
        || matches!(
            error.kind(),
            redis::ErrorKind::Server(ServerErrorKind::NoPerm)
        );
    if unusable {
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
        let (state, _) = self
            .snapshot(&self.scripts.create, key, args, 0, Retry::Never)
            .await?;
        Ok(state)
    }

    #[tracing::instrument(skip_all, fields(cart_id = %key.cart_id))]
    async fn get(&self, key: &CartKey, now: UnixMillis) -> Result<CartState, CartError> {
        let args = self.args(now, 0);
        let (state, _) = self
            .snapshot(&self.scripts.get, key, args, 0, Retry::Safe)
            .await?;
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
        let retry = match (&mutation, expected_version) {
            (Mutation::Delete { .. }, _) => Retry::Safe,
            (_, 0) => Retry::Never,
            _ => Retry::Safe,
        };
        let (state, items_cleared) = self
            .snapshot(script, key, args, expected_version, retry)
            .await?;
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
        let retry = if expected_version == 0 {
            Retry::Never
        } else {
            Retry::Safe
        };
        let parts = self
            .call(&self.scripts.remove, key, args, expected_version, retry)
            .await?;
        codec::decode_units(&parts)
    }

    async fn ping(&self) -> Result<(), CartError> {
        let ping = async {
            let mut connection = self.connection.active().await?;
            redis::cmd("PING")
                .query_async::<Value>(&mut connection)
                .await
        };
        match tokio::time::timeout(self.timeouts.response, ping).await {
            Ok(result) => result.map(drop).map_err(store_error),
            Err(_) => Err(CartError::Unavailable(
                "redis did not answer PING in time".into(),
            )),
        }
    }
}
