//! The production store: carts in Redis, each call one FCALL of a function of the store's
//! Lua library (or, where Redis refuses the library, one EVALSHA of the script; see
//! `scripts.rs`), but for a steady-state Get, which is one pipelined `GET` and `PEXPIRETIME`
//! read without Lua. The library is loaded at start (on every master of a Cluster) and again
//! whenever a call finds its function missing (a Redis restarted without persistence, a new
//! master after a reshard, FUNCTION FLUSH), and the call resent within its deadline.
//!
//! Layout v2 (SPEC §7 leaves it to the store): a cart is one string key, `cart:{tenant:id}`,
//! holding the whole cart as msgpack (the header as one array of [`codec::MetaField`]s, then
//! the coupons, then the lines; see `lua/prelude.lua`), whose expiry is the cart's TTL. So a
//! mutation is one GET and one `SET ... PXAT`, a Clear replaces the value whatever its size,
//! and the reply is one bulk string that `codec` decodes in place. A steady-state Get writes
//! nothing: a live cart's `last_activity_at` is its key's expiry less `cart_ttl`, and a Get
//! re-arms the expiry only once it has run down by more than
//! [`CartPolicy::refresh_slack_ms`] (1 % of `cart_ttl`), as the in-memory store does. So a
//! Get reads the value and its expiry and decodes them here (`RedisStore::read`); only when
//! the refresh is due, or the key is a v1 cart, does it run the Get script (a second round
//! trip, at most about once per `refresh_slack` of a cart's use).
//! Carts still in layout v1 (a header hash plus `cart:{tenant:id}:lines` and
//! `cart:{tenant:id}:coupons` hashes; their names are still passed as KEYS, one hash tag) are
//! read as they are and rewritten in v2 by their first mutation; records left by v1 scripts
//! replay as they were. A call with an idempotency key also names
//! `cart:{tenant:id}:request:<key>`, where its script keeps its reply bytes. Every call is bounded by the store timeout; a
//! failed call is sent again only when that cannot apply it twice (see `Call::retry`). With
//! [`Durability::min_replicas`] set, every mutation is pipelined with a `WAIT`. No call goes to a
//! Redis whose `maxmemory-policy` evicts keys (`eviction.rs`) unless the config allows it, and
//! a Cluster connection whose slot map went stale is replaced (`connection.rs`).
//!
//! One call (`RedisStore::run`) is three steps: send with retry, the durability check, and
//! the decoding of the reply (whose layout `codec` names once).
//!
//! A Redis over `maxmemory` refuses every script that may grow it before it runs (see
//! `scripts.rs`); that refusal is [`CartError::StoreFull`], answered at once and not resent.

mod codec;
pub mod connection;
mod customers;
mod eviction;
mod msgpack;
mod scripts;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use prometheus_client::metrics::histogram::Histogram;
use redis::{Cmd, RedisError, ServerErrorKind, Value};
use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

use self::codec::{Body, Reply};
use self::connection::{Active, Connection};
use self::eviction::{EvictionGuard, Survey};
use self::scripts::{Key, Library, RetryClass, Script, Scripts};
use super::{CartStore, CustomerKey, Mutated};
use crate::domain::{
    CartId, CartKey, CartPolicy, CartState, IdempotencyTag, Mutation, MutationOutcome, NewCart,
    UnixMillis,
};
use crate::error::CartError;

/// The Lua source of the Clear script, as a store with the default policy loads it (for
/// benchmarking it alone).
pub fn clear_script_source() -> String {
    scripts::script_source(Script::Clear, &CartPolicy::default())
}

/// The Functions library, as a store with the default policy loads it, and the name of its
/// Clear function (for benchmarking it alone).
pub fn library_source() -> (String, String) {
    let library = scripts::Library::new(&CartPolicy::default());
    let clear = library.function(Script::Clear).to_owned();
    (library.source, clear)
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

/// How many replicas must hold a change before it is acknowledged (config `[durability]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    /// 0: acknowledge once the master applied it (Redis replicates asynchronously).
    pub min_replicas: u32,
    /// How long `WAIT` waits for them.
    pub timeout: Duration,
}

impl Default for Durability {
    fn default() -> Self {
        Self {
            min_replicas: 0,
            timeout: Duration::from_millis(50),
        }
    }
}

pub struct RedisStore {
    connection: Connection,
    scripts: Scripts,
    library: Library,
    /// Whether calls are FCALLs of the library's functions; false while Redis refuses the
    /// library (FUNCTION LOAD), when they are EVALSHAs of the scripts.
    functions: AtomicBool,
    /// Whether a Create and its customer's index go as one transaction; false once Redis
    /// refused one for the user's permissions (an ACL without `multi`, `exec` or `eval`).
    transactions: AtomicBool,
    /// Whether the last refusal of the library was a full Redis's (`maxmemory`): one that
    /// passes once Redis has room, so the health check offers the library again.
    refused_full: AtomicBool,
    policy: CartPolicy,
    timeouts: RedisTimeouts,
    durability: Durability,
    /// `server.address` and `server.port` of the store call spans.
    server: (String, u16),
    /// `cart_store_call_duration_seconds` of each script, in the order of [`Script::ALL`].
    script_latency: [Histogram; Script::ALL.len()],
    /// Refuses calls while Redis may evict keys (see `eviction.rs`).
    eviction: EvictionGuard,
}

/// Whether a call whose outcome is unknown (the connection broke after it was sent) may be
/// sent again. A call that never reached Redis (refused connection, cluster down, loading)
/// is always sent again while time remains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// A second run could apply twice.
    Never,
    /// A second run changes nothing, or replays the first one's outcome.
    Safe,
}

/// One script call.
struct Call<'a> {
    script: Script,
    key: &'a CartKey,
    now: UnixMillis,
    expected_version: i64,
    request: Option<&'a IdempotencyTag>,
    /// ARGV[4..]: the script's own arguments.
    args: Vec<Arg<'a>>,
    /// A Create's customer, whose index the same transaction writes first (single Redis).
    indexed: Option<&'a CustomerKey>,
}

impl<'a> Call<'a> {
    fn new(script: Script, key: &'a CartKey, now: UnixMillis) -> Self {
        Self {
            script,
            key,
            now,
            expected_version: 0,
            request: None,
            args: Vec::new(),
            indexed: None,
        }
    }

    fn mutation(
        script: Script,
        key: &'a CartKey,
        now: UnixMillis,
        expected_version: i64,
        request: Option<&'a IdempotencyTag>,
        args: Vec<Arg<'a>>,
    ) -> Self {
        Self {
            expected_version,
            request,
            args,
            ..Self::new(script, key, now)
        }
    }

    /// The one decision whether this call may be resent after an unknown outcome: from its
    /// script's retry class, and whether the call is guarded.
    fn retry(&self) -> Retry {
        let guarded = self.expected_version != 0 || self.request.is_some();
        match (self.script.retry_class(), guarded) {
            (RetryClass::Always, _) | (RetryClass::WhenGuarded, true) => Retry::Safe,
            (RetryClass::WhenGuarded, false) => Retry::Never,
        }
    }
}

/// A script argument: borrowed from the command it comes from where it is its bytes as they
/// stand (ids, codes, reasons), owned where it is formatted (numbers, JSON).
type Arg<'a> = Cow<'a, [u8]>;

const MAX_ATTEMPTS: u32 = 4;
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

impl RedisStore {
    /// Prepares a store for `url` without connecting; fails only on a malformed URL.
    /// `ca_cert` (PEM) replaces the system roots for `rediss://`.
    pub fn new(
        url: &str,
        policy: CartPolicy,
        timeouts: RedisTimeouts,
        durability: Durability,
        ca_cert: Option<Vec<u8>>,
    ) -> Result<Self, CartError> {
        // rustls needs a process-wide crypto provider; a second install is a harmless no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let metrics = crate::metrics::global();
        Ok(Self {
            connection: Connection::open(url, timeouts, ca_cert)?,
            scripts: Scripts::new(&policy),
            library: Library::new(&policy),
            functions: AtomicBool::new(true),
            refused_full: AtomicBool::new(false),
            transactions: AtomicBool::new(true),
            policy,
            timeouts,
            durability,
            server: connection::server_endpoint(url).unwrap_or_default(),
            script_latency: Script::ALL.map(|script| metrics.store_call_histogram(script.name())),
            eviction: EvictionGuard::new(false),
        })
    }

    /// `[redis] allow_eviction`: serve even when Redis may evict keys (carts can be torn).
    pub fn allow_eviction(mut self, allow: bool) -> Self {
        self.eviction = EvictionGuard::new(allow);
        self
    }

    /// Reads every server's `maxmemory_policy` and admits or refuses calls by it (and, on a
    /// Cluster, probes its slot map, which replaces a stale connection).
    async fn survey(&self) -> Result<(), CartError> {
        let generation = self.connection.generation();
        let replies = self.connection.memory_info().await.map_err(store_error)?;
        self.eviction.record(Survey::of(replies), generation)
    }

    /// Surveys unless a survey since the last connection failure already did, sharing one
    /// survey among the calls that wait for it.
    async fn survey_if_needed(&self) -> Result<(), CartError> {
        let _one = self.eviction.checking.lock().await;
        if self.eviction.needs_survey(self.connection.generation()) {
            self.survey().await?;
        }
        Ok(())
    }

    pub fn is_cluster(&self) -> bool {
        self.connection.is_cluster()
    }

    /// Loads the library (FUNCTION LOAD, on every master of a Cluster), so that the first
    /// calls are plain FCALLs; where Redis refuses it, every script (SCRIPT LOAD) instead.
    pub async fn load_scripts(&self) -> Result<(), CartError> {
        let load = async {
            let mut connection = self.connection.active().await?;
            self.load(&mut connection, &Script::ALL).await
        };
        match tokio::time::timeout(self.timeouts.connect + self.timeouts.response, load).await {
            Ok(loaded) => loaded.map_err(store_error),
            Err(_) => Err(CartError::Unavailable(
                "redis did not take the library in time".into(),
            )),
        }
    }

    /// Gives Redis the library again (FUNCTION LOAD REPLACE: loading the same code twice, as
    /// two instances of one version may, changes nothing); when Redis refuses it (an ACL
    /// without `function`, a full Redis: FUNCTION LOAD is `denyoom`, a Redis without
    /// Functions), falls back to EVALSHA, loading `scripts`, with one WARN line. Tried again
    /// each time Redis has lost what the calls need, and (after a full Redis's refusal) at
    /// every health check, so a fallback ends once Redis takes it.
    async fn load(&self, connection: &mut Active, scripts: &[Script]) -> Result<(), RedisError> {
        let loaded = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(&self.library.source)
            .query_async::<Value>(connection)
            .await;
        match loaded {
            Ok(_) => {
                if !self.functions.swap(true, Ordering::Relaxed) {
                    tracing::info!(library = %self.library.name, "redis took the functions library; calls are FCALLs again");
                }
                Ok(())
            }
            // Refused (an unknown FUNCTION reads as a lost command: here it is a refusal).
            Err(error)
                if lost_code(&error)
                    || matches!(failure(&error), Failure::Full | Failure::Permanent) =>
            {
                self.refused_full
                    .store(matches!(failure(&error), Failure::Full), Ordering::Relaxed);
                if self.functions.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%error, library = %self.library.name, "redis refused FUNCTION LOAD; calling the scripts by EVALSHA instead");
                }
                for script in scripts {
                    self.scripts
                        .get(*script)
                        .prepare_invoke()
                        .load_async(connection)
                        .await?;
                }
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// The cart's key, `cart:{<tenant>:<cart id>}`, into `out` (emptied first): the hash tag
    /// every key of the cart starts with.
    fn cart_key(key: &CartKey, out: &mut String) {
        out.clear();
        out.reserve(64);
        out.push_str("cart:{");
        out.push_str(key.tenant.as_str());
        out.push(':');
        out.push_str(key.cart_id.as_str());
        out.push('}');
    }

    /// The FCALL (or, while Redis refuses the library, the EVALSHA) of `call`: its KEYS (its
    /// script's cart keys, then its idempotency record when there is one), the prelude's
    /// ARGV[1..=3], then its own arguments. Each key is written into one buffer and copied
    /// into the command, so building it allocates little.
    fn command(&self, call: &Call<'_>, functions: bool) -> Cmd {
        let keys = call.script.keys();
        let key_count = keys.len() + usize::from(call.request.is_some());
        let data = 64 * key_count + call.args.iter().map(|arg| arg.len()).sum::<usize>() + 128;
        let mut cmd = Cmd::with_capacity(6 + key_count + call.args.len(), data);
        if functions {
            cmd.arg("FCALL").arg(self.library.function(call.script));
        } else {
            cmd.arg("EVALSHA")
                .arg(self.scripts.get(call.script).get_hash());
        }
        cmd.arg(key_count);
        let mut key = String::new();
        Self::cart_key(call.key, &mut key);
        let tag = key.len();
        for part in keys {
            key.truncate(tag);
            key.push_str(match part {
                Key::Meta => "",
                Key::Lines => ":lines",
                Key::Coupons => ":coupons",
            });
            cmd.arg(key.as_str());
        }
        if let Some(request) = call.request {
            key.truncate(tag);
            key.push_str(":request:");
            key.push_str(request.key.as_str());
            cmd.arg(key.as_str());
        }
        cmd.arg(Hex::of(call.now).as_bytes())
            .arg(call.expected_version)
            .arg(call.request.map_or("", |tag| tag.fingerprint.as_str()));
        for arg in &call.args {
            cmd.arg(arg.as_ref());
        }
        cmd
    }

    /// One round trip: the FCALL (or EVALSHA), followed in the same write by `WAIT` when a
    /// mutation must reach replicas (on the connection of the master that owns the cart's
    /// slot: the cluster client routes a pipeline by its keyed command). Returns the script's
    /// reply and, after a `WAIT`, how many replicas acknowledged. A Redis that lost the
    /// library or the script (restarted without persistence, a new master after a reshard,
    /// FUNCTION FLUSH) gets it again, and the call is sent again at once.
    async fn send(&self, request: &Request<'_>) -> Result<(Value, Option<i64>), RedisError> {
        let mut connection = self.connection.active().await?;
        let mut loaded = false;
        loop {
            // Connecting may have taken the client's remaining time.
            if crate::deadline::check().is_err() {
                return Err(deadline_passed());
            }
            let reply = match request {
                Request::Script(call) => self.call(&mut connection, call).await,
                Request::Read(pipeline) => {
                    let replies = pipeline.query_async::<Vec<Value>>(&mut connection).await?;
                    match replies.as_slice() {
                        // WRONGTYPE: a v1 cart's header hash, which the caller reads by script.
                        [Value::ServerError(error), _] if error.code() != "WRONGTYPE" => {
                            Err(error.clone().into())
                        }
                        [_, Value::ServerError(error)] => Err(error.clone().into()),
                        [_, Value::Int(_)] => Ok((Value::Array(replies), None)),
                        _ => Err(RedisError::from((
                            redis::ErrorKind::Client,
                            "unexpected reply to GET and PEXPIRETIME",
                        ))),
                    }
                }
            };
            match (reply, request) {
                (Err(error), Request::Script(call)) if !loaded && lost_code(&error) => {
                    // Boxed, as every rare branch of a call: the call's future (boxed whole,
                    // see `traced`) is copied and touched on every call, room for the rare
                    // branches included.
                    Box::pin(self.load(&mut connection, &[call.script])).await?;
                    loaded = true;
                }
                (other, _) => return other,
            }
        }
    }

    /// Sends `call` on `connection`: its FCALL (or EVALSHA), pipelined with a `WAIT` when it
    /// mutates and changes must reach replicas.
    async fn call(
        &self,
        connection: &mut Active,
        call: &Call<'_>,
    ) -> Result<(Value, Option<i64>), RedisError> {
        let cmd = self.command(call, self.functions.load(Ordering::Relaxed));
        let wait = call.script.mutates() && self.durability.min_replicas > 0;
        if let Some(customer) = call.indexed {
            return self
                .call_indexed(connection, call, customer, cmd, wait)
                .await;
        }
        if !wait {
            return cmd
                .query_async::<Value>(connection)
                .await
                .map(|reply| (reply, None));
        }
        let mut pipeline = redis::pipe();
        pipeline.ignore_errors().add_command(cmd);
        self.push_wait(&mut pipeline);
        let mut replies = pipeline
            .query_async::<Vec<Value>>(connection)
            .await?
            .into_iter();
        Self::waited(replies.next(), replies.next(), true)
    }

    /// A Create and its customer's index in one round trip: `MULTI`, the index's script, the
    /// Create's call, `EXEC` (and the `WAIT`). The transaction runs the two with nothing
    /// between; a full Redis refuses the whole of it (both scripts would grow it). Replies
    /// the Create's reply as [`RedisStore::call`] does.
    async fn call_indexed(
        &self,
        connection: &mut Active,
        call: &Call<'_>,
        customer: &CustomerKey,
        cmd: Cmd,
        wait: bool,
    ) -> Result<(Value, Option<i64>), RedisError> {
        let index = customers::index_eval(
            customer,
            &call.key.cart_id,
            call.now,
            self.policy.cart_ttl_ms(),
        );
        let mut pipeline = redis::pipe();
        pipeline
            .ignore_errors()
            .cmd("MULTI")
            .add_command(index)
            .add_command(cmd)
            .cmd("EXEC");
        if wait {
            self.push_wait(&mut pipeline);
        }
        let replies = pipeline.query_async::<Vec<Value>>(connection).await?;
        let mut replies = replies.into_iter();
        let queued: Vec<Value> = replies.by_ref().take(3).collect();
        if let Some(Value::ServerError(error)) = queued.first() {
            // MULTI refused (an ACL without `multi`): the two commands ran on their own, the
            // index first, and EXEC answered that there was no transaction.
            self.refuse_transactions(error);
            let mut ran = queued.into_iter().skip(1);
            let (index, reply) = (ran.next(), ran.next());
            let _exec = replies.next();
            let reply = Self::waited(reply, replies.next(), wait)?;
            if matches!(index, Some(Value::ServerError(_))) {
                // The cart exists and its index missed it (an ACL without `eval` either): the
                // index's own call, as a Create sends it from now on.
                customers::index_by_evalsha(
                    connection,
                    customer,
                    &call.key.cart_id,
                    call.now,
                    self.policy.cart_ttl_ms(),
                )
                .await?;
            }
            return Ok(reply);
        }
        let results = match replies.next() {
            Some(Value::Array(results)) => results,
            // EXECABORT: a command was refused as it was queued (a full Redis: OOM; an ACL),
            // and its own error says why; or EXEC itself was refused (Redis reached maxmemory
            // after the commands were queued), and the abort's text says why. Nothing ran.
            other => {
                let refused = queued
                    .into_iter()
                    .find_map(|reply| match reply {
                        Value::ServerError(error) => Some(error),
                        _ => None,
                    })
                    .or_else(|| match &other {
                        Some(Value::ServerError(abort)) => aborted_because(abort),
                        _ => None,
                    });
                if let Some(error) = &refused {
                    self.refuse_transactions(error);
                }
                return Err(match (refused, other) {
                    (Some(error), _) | (None, Some(Value::ServerError(error))) => error.into(),
                    _ => unexpected_transaction_reply(),
                });
            }
        };
        let mut results = results.into_iter();
        match (results.next(), results.next()) {
            // The index not written: the Create's outcome is not taken (only a full Redis
            // refuses the index's script, and then the Create too).
            (Some(Value::ServerError(error)), _) => Err(error.into()),
            (Some(_), reply @ Some(_)) => Self::waited(reply, replies.next(), wait),
            _ => Err(unexpected_transaction_reply()),
        }
    }

    /// After Redis refused a part of the transaction for the user's permissions (NOPERM), a
    /// Create naming a customer sends the index first, in a round trip of its own; one WARN line.
    fn refuse_transactions(&self, error: &redis::ServerError) {
        if error.code() == "NOPERM" && self.transactions.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %RedisError::from(error.clone()), "redis refused the transaction of a Create and its customer's index; sending the index first, in a round trip of its own");
        }
    }

    /// A `WAIT` for the replicas `[durability]` asks for, after the last command.
    fn push_wait(&self, pipeline: &mut redis::Pipeline) {
        pipeline
            .cmd("WAIT")
            .arg(self.durability.min_replicas)
            .arg(self.durability.timeout.as_millis().max(1) as u64);
    }

    /// A script's reply and, when a `WAIT` followed it (`waited`), what that answered.
    fn waited(
        reply: Option<Value>,
        wait: Option<Value>,
        waited: bool,
    ) -> Result<(Value, Option<i64>), RedisError> {
        match (reply, wait) {
            (Some(Value::ServerError(error)), _) => Err(error.into()),
            (Some(reply), None) if !waited => Ok((reply, None)),
            (Some(reply), Some(Value::Int(acked))) if waited => Ok((reply, Some(acked))),
            // The script ran, but no replica is known to have its change: a master turned
            // replica while it waited answers WAIT with UNBLOCKED (as when a crashed master
            // rejoins), one that became read-only with an error. What a WAIT that timed out
            // says, not an internal error: REPLICATION_TIMEOUT, safe to resend with its id.
            (Some(reply), Some(Value::ServerError(error))) if waited => {
                // Under an ACL that refuses WAIT every mutation fails it: one line per period.
                if let Some(failed) = FAILED_WAITS.tick(crate::domain::now_millis()) {
                    tracing::warn!(error = %RedisError::from(error), failed, "WAIT failed after the script ran ({failed} since the last such line; one line per 10 s at most)");
                }
                Ok((reply, Some(0)))
            }
            _ => Err(RedisError::from((
                redis::ErrorKind::Client,
                "unexpected reply to a script call and WAIT",
            ))),
        }
    }

    /// [`RedisStore::run`] in an OpenTelemetry client span (`db.*` and `server.*` attributes,
    /// the failure recorded on it), timed into the script's latency histogram.
    async fn traced(&self, call: Call<'_>) -> Result<Body, CartError> {
        let script = call.script;
        // A Get is first a read without its script (`RedisStore::read`): named so until it
        // falls back to the script.
        let read_first = script == Script::Get;
        let functions = self.functions.load(Ordering::Relaxed);
        // Only a trace viewer reads this span (the logs name the operation's span).
        let span = match crate::telemetry::is_exporting() {
            true => tracing::info_span!(
                "redis",
                otel.name = if read_first {
                    "GET"
                } else {
                    script.span_name(functions)
                },
                otel.kind = "client",
                otel.status_code = Empty,
                db.system.name = "redis",
                db.operation.name = if read_first {
                    "GET"
                } else {
                    operation(functions)
                },
                db.stored_procedure.name = Empty,
                server.address = self.server.0.as_str(),
                server.port = i64::from(self.server.1),
                "error.type" = Empty,
            ),
            false => tracing::Span::none(),
        };
        if !read_first {
            span.record("db.stored_procedure.name", script.name());
        }
        let started = std::time::Instant::now();
        // Boxed: the round trip's future is large, and every async fn that awaits it (up to
        // the RPC's handler) would otherwise hold it in its own state and copy it when built.
        let result = Box::pin(self.run(call, &span))
            .instrument(span.clone())
            .await;
        self.script_latency[script.index()].observe(started.elapsed().as_secs_f64());
        if let Err(error) = &result
            && error.is_store_failure()
        {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", error.reason());
        }
        result
    }

    /// Names `span` after the call of `script` as it is sent now: `FCALL <script>` (or
    /// `EVALSHA <script>`), its `db.operation.name` and `db.stored_procedure.name`.
    fn name_span(&self, span: &tracing::Span, script: Script) {
        let functions = self.functions.load(Ordering::Relaxed);
        span.record("otel.name", script.span_name(functions));
        span.record("db.operation.name", operation(functions));
        span.record("db.stored_procedure.name", script.name());
    }

    /// Runs one script call: admitted by the eviction policy, sent (and resent per its
    /// [`Retry`]) within the store timeout, its replicas' acknowledgement checked, its reply
    /// decoded.
    async fn run(&self, call: Call<'_>, span: &tracing::Span) -> Result<Body, CartError> {
        if call.script == Script::Get {
            if let Some(body) = self.read(&call).await? {
                return Ok(body);
            }
            // The read found a refresh due or a v1 cart: the span is the script's from here.
            self.name_span(span, call.script);
        }
        let functions = self.functions.load(Ordering::Relaxed);
        let sent = self
            .send_bounded(&Request::Script(&call), call.retry())
            .await;
        // The call fell back to EVALSHA (or back to FCALL) on the way: the span says what was
        // sent last.
        if self.functions.load(Ordering::Relaxed) != functions {
            self.name_span(span, call.script);
        }
        let sent = sent?;
        let reply = codec::parse_reply(sent.reply, &self.policy.limits)?;
        // A change (or, under an idempotency key, its remembered outcome) was written; a
        // refusal for want of memory is not remembered.
        let wrote = match &reply {
            Reply::Ok(_) => true,
            Reply::Refused(CartError::StoreFull) => false,
            Reply::Refused(_) => call.request.is_some(),
        };
        self.check_durability(sent.acked, wrote)?;
        Self::outcome(reply, &call, sent.attempts)
    }

    /// Sends `request` within the store timeout (or the client's deadline, when it comes
    /// first, which then bounds the call and every resend), once the eviction policy admits it.
    async fn send_bounded(&self, request: &Request<'_>, retry: Retry) -> Result<Sent, CartError> {
        let store_deadline = Instant::now() + self.timeouts.response;
        let client_deadline = crate::deadline::current().filter(|client| *client < store_deadline);
        let deadline = client_deadline.unwrap_or(store_deadline);
        self.check_eviction(deadline).await?;
        self.send_with_retry(request, retry, deadline, client_deadline.is_some())
            .await
    }

    /// Get in the steady state, without Lua: one round trip of `GET` and `PEXPIRETIME`,
    /// decoded here. `None` when the Get script must run instead (a second round trip, which
    /// is rare): the lifetime of a live cart is due for its refresh (it has run down by more
    /// than [`CartPolicy::refresh_slack_ms`], the rule of `lua/get.lua`; about once per
    /// `refresh_slack` of a cart's use), or the key is a v1 cart's header hash (WRONGTYPE).
    /// Writes nothing, so a full Redis answers it.
    async fn read(&self, call: &Call<'_>) -> Result<Option<Body>, CartError> {
        let mut key = String::new();
        Self::cart_key(call.key, &mut key);
        let mut pipeline = redis::pipe();
        pipeline
            .ignore_errors()
            .cmd("GET")
            .arg(&key)
            .cmd("PEXPIRETIME")
            .arg(&key);
        let sent = self
            .send_bounded(&Request::Read(pipeline), call.retry())
            .await?;
        let replies = match sent.reply {
            Value::Array(replies) => <[Value; 2]>::try_from(replies).ok(),
            _ => None,
        };
        let (value, expires) = match replies {
            Some([Value::BulkString(value), Value::Int(expires)]) => (value, expires),
            Some([Value::Nil, _]) => {
                let refused = Reply::Refused(CartError::CartNotFound);
                return Self::outcome(refused, call, sent.attempts).map(Some);
            }
            // WRONGTYPE (`send` passes no other error on).
            Some([Value::ServerError(_), _]) => return Ok(None),
            other => {
                return Err(CartError::Internal(
                    format!("unexpected reply from redis to GET and PEXPIRETIME: {other:?}").into(),
                ));
            }
        };
        // -1: no expiry, -2: gone since the GET; the script decides those too.
        let refresh_due = expires < 0
            || (expires < call.now + self.policy.cart_ttl_ms() - self.policy.refresh_slack_ms()
                && codec::stored_is_live(&value)?);
        Ok((!refresh_due).then_some(Body::Stored { value, expires }))
    }

    /// Sends `request` until it is answered, resending after a transient failure while
    /// `deadline` (the store timeout, or the client's deadline when `client_bound`) allows and
    /// `retry` permits (a failure that never reached Redis is always resent). Nothing is sent
    /// or resent past the client's deadline.
    async fn send_with_retry(
        &self,
        request: &Request<'_>,
        retry: Retry,
        deadline: Instant,
        client_bound: bool,
    ) -> Result<Sent, CartError> {
        let mut attempts = 1;
        loop {
            // Never send (or resend) what the client no longer waits for.
            crate::deadline::check()?;
            let generation = self.connection.generation();
            let error = match tokio::time::timeout_at(deadline, self.send(request)).await {
                Ok(Ok((reply, acked))) => {
                    return Ok(Sent {
                        reply,
                        acked,
                        attempts,
                    });
                }
                Ok(Err(error)) => {
                    // A stale Cluster view is replaced; a lost connection is surveyed again.
                    self.connection.heal(generation, &error);
                    if connection::failure_is_connection(&error) {
                        self.eviction.invalidate();
                    }
                    // Past the client's deadline, a failure is not worth a resend, nor reporting.
                    crate::deadline::check()?;
                    error
                }
                Err(_) if client_bound => return Err(CartError::DeadlineExceeded),
                Err(_) => {
                    return Err(CartError::Unavailable(
                        format!("redis did not answer within {:?}", self.timeouts.response).into(),
                    ));
                }
            };
            let resend = match failure(&error) {
                Failure::NotSent => true,
                Failure::Unknown => retry == Retry::Safe,
                // Not applied, but a resend within milliseconds meets the same full Redis: the
                // client gets STORE_FULL at once, with a RetryInfo delay.
                Failure::Full | Failure::Permanent => false,
            };
            let backoff = RETRY_BACKOFF * attempts;
            if !resend || attempts >= MAX_ATTEMPTS || Instant::now() + backoff >= deadline {
                return Err(store_error(error));
            }
            tracing::debug!(%error, attempts, "redis call failed; sending it again");
            tokio::time::sleep(backoff).await;
            attempts += 1;
        }
    }

    /// No call goes to a Redis that may evict keys (unless the config allows it): surveyed
    /// first when a new connection has not been yet.
    async fn check_eviction(&self, deadline: Instant) -> Result<(), CartError> {
        if self.eviction.needs_survey(self.connection.generation()) {
            // Unreachable Redis shows in the call itself. Boxed: a survey is rare (a new
            // connection) and its future large.
            let _ = Box::pin(tokio::time::timeout_at(deadline, self.survey_if_needed())).await;
        }
        self.eviction.admit()
    }

    /// A write that too few replicas hold may vanish in a failover: the caller must not take
    /// it as done.
    fn check_durability(&self, acked: Option<i64>, wrote: bool) -> Result<(), CartError> {
        match acked {
            Some(acked) if wrote && acked < i64::from(self.durability.min_replicas) => {
                Err(CartError::ReplicationTimeout {
                    acked,
                    wanted: self.durability.min_replicas,
                })
            }
            _ => Ok(()),
        }
    }

    /// The outcome of a decoded reply.
    fn outcome(reply: Reply, call: &Call<'_>, attempts: u32) -> Result<Body, CartError> {
        match reply {
            Reply::Ok(parts) => Ok(parts),
            // After a resend, a guard refusal may be the first attempt's own success showing
            // (an idempotency key would have replayed that success instead).
            Reply::Refused(CartError::VersionMismatch { .. } | CartError::CartNotFound)
                if attempts > 1 && call.request.is_none() =>
            {
                Err(CartError::Unavailable(
                    "redis failed mid-call; the outcome is unknown, read the cart".into(),
                ))
            }
            Reply::Refused(CartError::VersionMismatch { actual, .. }) => {
                Err(CartError::VersionMismatch {
                    expected: call.expected_version,
                    actual,
                })
            }
            Reply::Refused(error) => Err(error),
        }
    }

    /// The Create of `cart`, alone.
    async fn create_one(
        &self,
        key: &CartKey,
        cart: &NewCart,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<Box<CartState>, CartError> {
        let (state, _) = self
            .snapshot(Self::create_call(key, cart, now, request))
            .await?;
        Ok(state)
    }

    /// The Create of `cart`: its header's fields, metadata, whether the id was generated, and
    /// its items, as `lua/create.lua` takes them.
    fn create_call<'a>(
        key: &'a CartKey,
        cart: &'a NewCart,
        now: UnixMillis,
        request: Option<&'a IdempotencyTag>,
    ) -> Call<'a> {
        let header = &cart.header;
        let mut args = Vec::with_capacity(8 + 5 * cart.items.len());
        args.extend([
            Arg::Borrowed(header.customer_id.as_bytes()),
            Arg::Borrowed(header.session_id.as_bytes()),
            Arg::Borrowed(header.channel.as_bytes()),
            Arg::Borrowed(header.currency.as_str().as_bytes()),
            Arg::Borrowed(header.locale.as_bytes()),
            Arg::Owned(codec::encode_metadata(&header.metadata)),
        ]);
        args.push(flag(cart.id_generated));
        codec::push_items(&mut args, &cart.items, now);
        Call::mutation(Script::Create, key, now, 0, request, args)
    }

    /// A cart reply, as of the call's `now` (a freeze past its end reads as over).
    async fn snapshot(&self, call: Call<'_>) -> Result<(Box<CartState>, i64), CartError> {
        let now = call.now;
        let body = self.traced(call).await?;
        let (mut state, extra) = codec::decode_snapshot(&body, &self.policy)?;
        state.thaw(now);
        Ok((state, extra))
    }
}

/// The error an `EXECABORT` names when EXEC itself was refused: `Transaction discarded because
/// of: OOM command not allowed ...` is the OOM of a Redis that reached maxmemory between the
/// queueing and the EXEC, a refusal like any other full Redis's (STORE_FULL), not a failure of
/// the service. Read back as the reply Redis would have sent for it.
fn aborted_because(abort: &redis::ServerError) -> Option<redis::ServerError> {
    if abort.kind() != Some(ServerErrorKind::ExecAbort) {
        return None;
    }
    let reason = abort
        .details()?
        .strip_prefix("Transaction discarded because of: ")?;
    match redis::parse_redis_value(format!("-{reason}\r\n").as_bytes()) {
        Ok(Value::ServerError(error)) => Some(error),
        _ => None,
    }
}

/// A transaction of the index and Create that Redis answered in no shape it has.
fn unexpected_transaction_reply() -> RedisError {
    RedisError::from((
        redis::ErrorKind::Client,
        "unexpected reply to a transaction of the index and Create",
    ))
}

/// Failed WAITs, logged at most once per 10 s.
static FAILED_WAITS: Sampled = Sampled::every(10_000);

/// A log line for a recurring event, written at most once per period: [`Sampled::tick`] counts
/// each event and says, when a line is due, how many happened since the last one.
struct Sampled {
    period_ms: i64,
    /// When the last line was due (unix ms); `i64::MIN` before the first.
    last: AtomicI64,
    /// Events since the last line.
    since: AtomicU64,
}

impl Sampled {
    const fn every(period_ms: i64) -> Self {
        Self {
            period_ms,
            last: AtomicI64::new(i64::MIN),
            since: AtomicU64::new(0),
        }
    }

    /// One event at `now`: `Some(events since the last line, this one included)` when a line
    /// is due (to one caller of those racing for it), else `None`.
    fn tick(&self, now: UnixMillis) -> Option<u64> {
        self.since.fetch_add(1, Ordering::Relaxed);
        let last = self.last.load(Ordering::Relaxed);
        let due = last == i64::MIN || now.saturating_sub(last) >= self.period_ms;
        (due && self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok())
        .then(|| self.since.swap(0, Ordering::Relaxed))
    }
}

/// What one round trip sends.
enum Request<'c> {
    /// A script call: its command is built when it is sent (FCALL, or EVALSHA while Redis
    /// refuses the library), with a `WAIT` after it when changes must reach replicas.
    Script(&'c Call<'c>),
    /// A Get without its script: `GET` and `PEXPIRETIME` of the cart's key, pipelined (one
    /// key, so one slot; the cluster client follows MOVED and ASK for the pair).
    Read(redis::Pipeline),
}

/// The command a script call is sent as: `db.operation.name` of its span.
fn operation(functions: bool) -> &'static str {
    if functions { "FCALL" } else { "EVALSHA" }
}

/// Whether `error` says that Redis lacks the function (`ERR Function not found`; or FCALL
/// itself, a server without Functions that was not reachable when the store started) or the
/// script (NOSCRIPT) a call named: it did not run, and runs once Redis is given it again (or,
/// without Functions, once the store has fallen back to EVALSHA).
fn lost_code(error: &RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript)
        || (error.code() == Some("ERR")
            && error.detail().is_some_and(|detail| {
                detail == "Function not found" || detail.starts_with("unknown command")
            }))
}

/// An answered round trip.
struct Sent {
    reply: Value,
    /// How many replicas acknowledged, after a `WAIT`.
    acked: Option<i64>,
    /// How many times it was sent.
    attempts: u32,
}

/// A command not sent because the client's deadline passed while it waited for a
/// connection; [`RedisStore::run`] answers it with DEADLINE_EXCEEDED.
fn deadline_passed() -> RedisError {
    RedisError::from((
        redis::ErrorKind::Client,
        "the client's deadline passed before the command was sent",
    ))
}

/// What a failed call tells about its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Redis did not run it (no connection, cluster down or failing over, a redirect that
    /// outlasted the cluster client's own retries, loading, no such function or script).
    NotSent,
    /// It may or may not have run (the connection broke or timed out after sending).
    Unknown,
    /// Redis is over `maxmemory` and refused the script before its first command (`OOM`):
    /// nothing of it was applied.
    Full,
    /// Neither: a bug or a misconfiguration that a resend cannot fix.
    Permanent,
}

fn failure(error: &RedisError) -> Failure {
    // redis-rs knows no OOM kind: it is an `Extension` error whose code is the reply's prefix.
    if error.code() == Some("OOM") {
        return Failure::Full;
    }
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
    // Redis lacked the function or script (`send` loads it and sends once more): when even
    // that resend met a Redis without it (a Cluster master the client's slot map did not
    // show yet), it is sent again after a backoff, loading it again first.
    if error.is_connection_refusal() || refused_by_server || lost_code(error) {
        Failure::NotSent
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
        Failure::Unknown
    } else {
        Failure::Permanent
    }
}

/// ARGV[1], the call's `now`, in hexadecimal (see `lua/prelude.lua`: Lua reads it with a
/// strtoul, where decimal would take a strtod); written without allocating.
struct Hex {
    digits: [u8; 16],
    start: usize,
}

impl Hex {
    fn of(now: UnixMillis) -> Self {
        let mut digits = [b'0'; 16];
        let mut value = now.max(0) as u64;
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b"0123456789abcdef"[(value & 0xf) as usize];
            value >>= 4;
            if value == 0 {
                break;
            }
        }
        Self { digits, start }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

/// A boolean script argument.
fn flag(value: bool) -> Arg<'static> {
    Arg::Borrowed(if value { b"1" } else { b"0" })
}

/// A full Redis is STORE_FULL; connection trouble and refused credentials are UNAVAILABLE (the
/// store cannot be used right now; health says so); anything else is a bug (INTERNAL).
fn store_error(error: RedisError) -> CartError {
    if failure(&error) == Failure::Full {
        return CartError::StoreFull;
    }
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
    async fn create(
        &self,
        key: &CartKey,
        cart: NewCart,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<Box<CartState>, CartError> {
        self.create_one(key, &cart, now, request).await
    }

    /// On a single Redis, one round trip (a transaction of the index's script and the
    /// Create: `RedisStore::call_indexed`); on a Cluster, whose index lives in another slot
    /// than the cart, the index's own round trip first.
    async fn create_indexed(
        &self,
        customer: &CustomerKey,
        key: &CartKey,
        cart: NewCart,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<Box<CartState>, CartError> {
        let two_trips = async {
            self.index_add(customer, &key.cart_id, now).await?;
            self.create_one(key, &cart, now, request).await
        };
        if self.is_cluster() || !self.transactions.load(Ordering::Relaxed) {
            return two_trips.await;
        }
        let call = Call {
            indexed: Some(customer),
            ..Self::create_call(key, &cart, now, request)
        };
        match self.snapshot(call).await {
            Ok((state, _)) => Ok(state),
            // Refused for the user's permissions as it was queued, so nothing ran: the two
            // round trips instead, now and from now on.
            Err(_) if !self.transactions.load(Ordering::Relaxed) => two_trips.await,
            Err(error) => Err(error),
        }
    }

    async fn get(&self, key: &CartKey, now: UnixMillis) -> Result<Box<CartState>, CartError> {
        let (state, _) = self.snapshot(Call::new(Script::Get, key, now)).await?;
        Ok(state)
    }

    async fn mutate(
        &self,
        key: &CartKey,
        mutation: Mutation,
        expected_version: i64,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<Mutated, CartError> {
        // Borrowed from the mutation where they are its own bytes; at most four outside a
        // list of items or coupons.
        let mut args = Vec::with_capacity(4);
        let script = match &mutation {
            Mutation::AddItems(items) => {
                codec::push_items(&mut args, items, now);
                Script::AddItems
            }
            Mutation::UpdateItems(updates) => {
                args.push(codec::int(updates.len() as i64));
                for update in updates {
                    args.push(Arg::Borrowed(update.line_id.as_str().as_bytes()));
                    args.push(codec::int(update.quantity.into()));
                }
                Script::UpdateItems
            }
            Mutation::ApplyCoupon { code, amount } => {
                args.push(Arg::Borrowed(code.as_str().as_bytes()));
                args.push(codec::int(*amount));
                Script::ApplyCoupon
            }
            Mutation::Clear {
                preserve_coupons,
                reason,
                only_generated_id,
            } => {
                args.push(flag(*preserve_coupons));
                args.push(Arg::Borrowed(reason.as_bytes()));
                args.push(flag(*only_generated_id));
                // Its new expiry as text: Redis formats a number argument of a command with
                // `%.17g`, which costs a Clear more than the argument does.
                args.push(codec::int(now + self.policy.cart_ttl_ms()));
                Script::Clear
            }
            Mutation::Delete { order_number } => {
                args.push(Arg::Borrowed(order_number.as_str().as_bytes()));
                Script::Delete
            }
            Mutation::Freeze { reason, until } => {
                args.push(Arg::Borrowed(reason.as_bytes()));
                args.push(until.map_or(Arg::Borrowed(b""), codec::int));
                Script::Freeze
            }
            Mutation::Unfreeze => Script::Unfreeze,
            Mutation::Claim { customer_id } => {
                args.push(Arg::Borrowed(customer_id.as_bytes()));
                Script::Claim
            }
            Mutation::Seal { target, merge_key } => {
                args.push(Arg::Borrowed(target.as_bytes()));
                args.push(Arg::Borrowed(merge_key.as_bytes()));
                Script::Seal
            }
            Mutation::Unseal { merge_key } => {
                args.push(Arg::Borrowed(merge_key.as_bytes()));
                Script::Unseal
            }
            Mutation::FinishMerge { merge_key } => {
                args.push(Arg::Borrowed(merge_key.as_bytes()));
                Script::FinishMerge
            }
            Mutation::Absorb {
                mode,
                currency,
                items,
                coupons,
            } => {
                args.push(Arg::Borrowed(mode.name().as_bytes()));
                args.push(Arg::Borrowed(currency.as_str().as_bytes()));
                codec::push_items(&mut args, items, now);
                args.push(codec::int(coupons.len() as i64));
                for (code, amount) in coupons {
                    args.push(Arg::Borrowed(code.as_str().as_bytes()));
                    args.push(codec::int(*amount));
                }
                Script::MergeIn
            }
        };
        let call = Call::mutation(script, key, now, expected_version, request, args);
        let (state, items_cleared) = self.snapshot(call).await?;
        Ok(Mutated {
            state,
            outcome: MutationOutcome { items_cleared },
        })
    }

    async fn remove(
        &self,
        key: &CartKey,
        expected_version: i64,
        now: UnixMillis,
        request: Option<&IdempotencyTag>,
    ) -> Result<i64, CartError> {
        let call = Call::mutation(
            Script::Remove,
            key,
            now,
            expected_version,
            request,
            Vec::new(),
        );
        let body = self.traced(call).await?;
        codec::decode_units(&body)
    }

    async fn peek(&self, key: &CartKey, now: UnixMillis) -> Result<Box<CartState>, CartError> {
        let (state, _) = self.snapshot(Call::new(Script::Peek, key, now)).await?;
        Ok(state)
    }

    async fn index_cart(
        &self,
        customer: &CustomerKey,
        cart_id: &CartId,
        now: UnixMillis,
    ) -> Result<(), CartError> {
        self.index_add(customer, cart_id, now).await
    }

    async fn indexed_carts(&self, customer: &CustomerKey) -> Result<Vec<CartId>, CartError> {
        self.index_read(customer).await
    }

    async fn unindex_carts(
        &self,
        customer: &CustomerKey,
        cart_ids: &[CartId],
    ) -> Result<(), CartError> {
        self.index_drop(customer, cart_ids).await
    }

    /// PING, then the eviction survey (on a Cluster also the slot-map probe). While calls go
    /// by EVALSHA because Redis was full when it was offered the library, the library is
    /// offered again (FUNCTION LOAD, refused at once while Redis is still full).
    async fn ping(&self) -> Result<(), CartError> {
        let ping = async {
            let mut connection = self.connection.active().await?;
            redis::cmd("PING")
                .query_async::<Value>(&mut connection)
                .await?;
            if !self.functions.load(Ordering::Relaxed) && self.refused_full.load(Ordering::Relaxed)
            {
                self.load(&mut connection, &[]).await?;
            }
            Ok::<_, RedisError>(())
        };
        match tokio::time::timeout(self.timeouts.response, ping).await {
            Ok(result) => result.map(drop).map_err(store_error)?,
            Err(_) => {
                return Err(CartError::Unavailable(
                    "redis did not answer PING in time".into(),
                ));
            }
        }
        let survey = async {
            let _one = self.eviction.checking.lock().await;
            self.survey().await
        };
        match tokio::time::timeout(self.timeouts.response, survey).await {
            Ok(result) => result,
            Err(_) => Err(CartError::Unavailable(
                "redis did not answer INFO in time".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Hex, Sampled, aborted_because, store_error};
    use crate::error::CartError;

    fn server_error(reply: &str) -> redis::ServerError {
        match redis::parse_redis_value(reply.as_bytes()) {
            Ok(redis::Value::ServerError(error)) => error,
            other => panic!("{other:?}"),
        }
    }

    /// EXEC refused because Redis reached maxmemory after the commands were queued is a full
    /// Redis (STORE_FULL); an abort for the queued commands' own errors names none.
    #[test]
    fn an_exec_refused_for_memory_is_a_full_store() {
        let abort = server_error(
            "-EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'.\r\n",
        );
        let reason = aborted_because(&abort).expect("the abort names its reason");
        assert_eq!(reason.code(), "OOM");
        assert!(matches!(store_error(reason.into()), CartError::StoreFull));
        let own = server_error("-EXECABORT Transaction discarded because of previous errors.\r\n");
        assert!(aborted_because(&own).is_none());
        assert!(aborted_because(&server_error("-OOM not an abort\r\n")).is_none());
    }

    #[test]
    fn a_sampled_line_is_due_once_per_period_and_counts_what_it_skipped() {
        let sampled = Sampled::every(10_000);
        assert_eq!(sampled.tick(1_000), Some(1), "the first event has its line");
        assert_eq!(sampled.tick(2_000), None);
        assert_eq!(sampled.tick(10_999), None);
        assert_eq!(sampled.tick(11_000), Some(3), "two skipped, and this one");
        assert_eq!(sampled.tick(11_001), None);
        assert_eq!(sampled.tick(40_000), Some(2));
    }

    #[test]
    fn now_is_sent_in_hexadecimal() {
        for now in [0, 1, 15, 16, 1_764_612_345_678, i64::MAX] {
            let hex = Hex::of(now);
            let text = std::str::from_utf8(hex.as_bytes()).unwrap();
            assert_eq!(text, format!("{now:x}"));
        }
    }
}
