//! Admission control: how many cart requests may be in the store path at once, in all and per
//! tenant.
//!
//! A request takes a [`Permit`] before it calls the store (in `Core::store_call`, the one
//! place every interface's store calls go through) and gives it back when the call ends (the
//! permit is dropped, also when the client cancels and the request's future is dropped). Past
//! either limit it is refused at once with [`CartError::Overloaded`] (gRPC
//! `RESOURCE_EXHAUSTED`, reason `OVERLOADED`, with a `RetryInfo`): nothing waits for a slot, so
//! no queue grows behind a flood, and the requests that are admitted keep the latency of a
//! store that is not overloaded.
//!
//! On gRPC, [`RefuseEarly`] answers what would be refused there as soon as the caller is
//! authenticated, before the message is read, so a flood's refusals cost as little as they can,
//! and then pauses the reading of that request's connection for a moment ([`pause`]), so that
//! a client past its share cannot make the server answer refusals as fast as it can send.
//!
//! The per-tenant limit is the fair share: a tenant that floods uses up its own slots only,
//! and the others keep theirs. The sum of the tenants' limits may exceed the global one; the
//! global limit is the service's own protection (memory, Redis's queue), the per-tenant limit
//! the tenants' protection from each other. Health checks never take a permit.
//!
//! Why refuse instead of queueing: a request that waits for a slot already holds its memory and
//! its connection, and under a sustained flood the wait only grows until clients time out,
//! having cost work that nobody reads. A refusal costs microseconds and tells the client when to
//! come back.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame};
use serde::Deserialize;
use tonic::codegen::Bytes;

use crate::auth::Principal;
use crate::core::Operation;
use crate::domain::TenantId;
use crate::error::CartError;
use crate::metrics::Interface;

mod pause;
pub use pause::{ConnectionInfo, PausedReads, ReadPause};

/// Default of `[admission] max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Default of `[admission] max_in_flight_per_tenant`.
pub const DEFAULT_MAX_IN_FLIGHT_PER_TENANT: usize = 32;
/// Default of `[admission] max_streams_per_connection` with a config file (tenants to keep
/// apart), below the 100 RFC 9113 recommends. Why: every stream the server holds is a task in
/// the one run queue all tenants' requests wait in, refused or not, so this bound, times the
/// connections, is what a flooding tenant makes every other request wait behind (under a
/// 2,000-stream flood over 16 connections, the other tenant's p99 was 8 to 14 times its quiet
/// p99 at 100, 3 to 6 times at 16 or 32, 2 to 4 times at 8). A client loses little: its
/// tenant's share (32 by default) is in reach over 4 connections, and its streams past the
/// bound wait on its own side instead of being refused.
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: u32 = 8;
/// `max_streams_per_connection` of dev mode, whose one tenant has nobody to be kept from: the
/// least RFC 9113 recommends (so as not to limit a client's parallelism), where tonic would
/// leave it unbounded.
pub const SINGLE_TENANT_MAX_STREAMS_PER_CONNECTION: u32 = 100;
/// Default of `[admission] refused_pause_ms`: how long a gRPC connection is not read after one
/// of its requests is refused early (see [`pause`]). Long enough that a flooding client's
/// connection is read some fifty times a second instead of as fast as it sends (in the flood
/// test, 2,000 streams over 16 connections: refusals fell from about 22,000 to 3,400 a second
/// and the flood's admitted requests rose, the CPU its refusals took going to requests);
/// short against the second its `RetryInfo` asks for.
pub const DEFAULT_REFUSED_PAUSE_MS: u64 = 20;
/// How long a refused client is asked to wait (`RetryInfo.retry_delay`, `Retry-After`).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// `[admission]` of the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// Cart requests in the store path at once, all tenants together.
    pub max_in_flight: usize,
    /// Cart requests of one tenant at once, unless its `[[tenants]]` entry sets
    /// `max_in_flight`.
    pub max_in_flight_per_tenant: usize,
    /// HTTP/2 streams one gRPC connection may have open at once (the server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS; health checks count too). A client past it waits on
    /// its own side, so one connection cannot make the server hold more (streams, tasks,
    /// buffers) than this, however many requests it sends.
    pub max_streams_per_connection: u32,
    /// Milliseconds a gRPC connection is not read after a request of it is refused (0: never
    /// paused). Writes go on; the client's next requests wait in its socket meanwhile.
    pub refused_pause_ms: u64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_in_flight_per_tenant: DEFAULT_MAX_IN_FLIGHT_PER_TENANT,
            max_streams_per_connection: DEFAULT_MAX_STREAMS_PER_CONNECTION,
            refused_pause_ms: DEFAULT_REFUSED_PAUSE_MS,
        }
    }
}

impl AdmissionConfig {
    /// Dev mode's limits: its one tenant (`default`) has nobody to share with, so its limit is
    /// the service's, and its connections have the streams RFC 9113 recommends.
    pub fn single_tenant() -> Self {
        Self {
            max_in_flight_per_tenant: DEFAULT_MAX_IN_FLIGHT,
            max_streams_per_connection: SINGLE_TENANT_MAX_STREAMS_PER_CONNECTION,
            ..Self::default()
        }
    }

    /// A limit of 0 would refuse every request.
    pub fn check(&self) -> Result<(), String> {
        if self.max_in_flight == 0
            || self.max_in_flight_per_tenant == 0
            || self.max_streams_per_connection == 0
        {
            return Err("admission limits must be at least 1".into());
        }
        Ok(())
    }
}

/// One limit and how much of it is taken.
#[derive(Debug)]
struct Gate {
    limit: usize,
    taken: AtomicUsize,
}

impl Gate {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            taken: AtomicUsize::new(0),
        }
    }

    fn try_enter(&self) -> bool {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn leave(&self) {
        self.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

/// FNV-1a: tenant ids come from the config file, not from callers, so the maps of gates need
/// no defence against chosen collisions, and a request hashes its tenant in a few instructions.
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Gates = HashMap<TenantId, Arc<Gate>, BuildHasherDefault<Fnv>>;

#[derive(Debug)]
struct Limits {
    global: Gate,
    per_tenant: usize,
    /// Tenants of the config file (with their own limit or the default) and dev mode's
    /// `default`: read without a lock.
    configured: Gates,
    /// Any other tenant a principal names, made on first use; after that a shared read lock.
    others: RwLock<Gates>,
}

/// The admission limits of one service (cheap to clone: clones share the counts).
#[derive(Debug, Clone)]
pub struct Admission {
    limits: Arc<Limits>,
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(AdmissionConfig::default(), [])
    }
}

impl Admission {
    /// Limits from `config`, with per-tenant overrides (`[[tenants]] max_in_flight`).
    pub fn new(
        config: AdmissionConfig,
        overrides: impl IntoIterator<Item = (TenantId, Option<usize>)>,
    ) -> Self {
        let mut configured: Gates = overrides
            .into_iter()
            .map(|(tenant, limit)| {
                let gate = Gate::new(limit.unwrap_or(config.max_in_flight_per_tenant));
                (tenant, Arc::new(gate))
            })
            .collect();
        // Dev mode's one tenant (and any principal's that the config leaves unnamed) would
        // otherwise be made on first use: made up front, it is read without a lock.
        configured
            .entry(TenantId::default_tenant())
            .or_insert_with(|| Arc::new(Gate::new(config.max_in_flight_per_tenant)));
        Self {
            limits: Arc::new(Limits {
                global: Gate::new(config.max_in_flight),
                per_tenant: config.max_in_flight_per_tenant,
                configured,
                others: RwLock::new(Gates::default()),
            }),
        }
    }

    fn gate(&self, tenant: &TenantId) -> Arc<Gate> {
        if let Some(gate) = self.limits.configured.get(tenant) {
            return gate.clone();
        }
        let others = &self.limits.others;
        if let Some(gate) = others.read().unwrap_or_else(|e| e.into_inner()).get(tenant) {
            return gate.clone();
        }
        others
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant.clone())
            .or_insert_with(|| Arc::new(Gate::new(self.limits.per_tenant)))
            .clone()
    }

    /// A slot for one request of `tenant`, or `Overloaded` at once when the tenant or the
    /// service is at its limit.
    pub fn admit(&self, tenant: &TenantId) -> Result<Permit, CartError> {
        let gate = self.gate(tenant);
        if !gate.try_enter() {
            return Err(CartError::Overloaded);
        }
        if !self.limits.global.try_enter() {
            gate.leave();
            return Err(CartError::Overloaded);
        }
        Ok(Permit {
            limits: self.limits.clone(),
            tenant: gate,
        })
    }

    /// Whether [`Admission::admit`] would refuse `tenant` now.
    pub fn at_limit(&self, tenant: &TenantId) -> bool {
        let gate = self.gate(tenant);
        let global = &self.limits.global;
        gate.taken.load(Ordering::Acquire) >= gate.limit
            || global.taken.load(Ordering::Acquire) >= global.limit
    }

    /// Requests in flight now (all tenants).
    pub fn in_flight(&self) -> usize {
        self.limits.global.taken.load(Ordering::Acquire)
    }

    /// Requests of `tenant` in flight now.
    pub fn tenant_in_flight(&self, tenant: &TenantId) -> usize {
        self.gate(tenant).taken.load(Ordering::Acquire)
    }
}

/// A taken slot; dropping it gives the slot back.
#[derive(Debug)]
#[must_use = "a request holds its permit until it ends"]
pub struct Permit {
    limits: Arc<Limits>,
    tenant: Arc<Gate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.tenant.leave();
        self.limits.global.leave();
    }
}

/// The cart RPC of a path, by its last segment (`/cart.v1.CartService/<name>`).
fn operation(path: &str) -> Option<Operation> {
    Operation::from_name(path.rsplit('/').next()?)
}

/// The gRPC cart service behind the authentication service (`grpc::Authenticated`), answering a request whose
/// tenant (or the service) is at its limit before its message is read.
///
/// Why: under a flood most requests are refusals, and every one waits in the same run queue
/// as the other tenants' requests. Answered here, a refusal skips the decoding, the operation
/// span and the building of its status (the headers are made once): each costs less, so the
/// requests of a tenant within its share wait less behind them. The permit is still taken in
/// `Core::store_call`; this only refuses what that would refuse (a slot that frees meanwhile
/// is not waited for: nothing waits). A caller without the operation's scope, or a path that
/// names no cart RPC, goes on to the handler, which answers it as before.
#[derive(Clone)]
pub struct RefuseEarly<S> {
    inner: S,
    admission: Admission,
    refusal: Arc<http::HeaderMap>,
    /// How long the connection of a refused request is not read ([`pause`]).
    pause: Duration,
}

impl<S> RefuseEarly<S> {
    pub fn new(inner: S, admission: Admission, pause: Duration) -> Self {
        let status = tonic::Status::from(CartError::Overloaded);
        let refusal = status.into_http::<()>().into_parts().0.headers;
        Self {
            inner,
            admission,
            refusal: Arc::new(refusal),
            pause,
        }
    }

    /// The operation of a request that its tenant's or the service's limit refuses now.
    fn refused<B>(&self, request: &http::Request<B>) -> Option<Operation> {
        let principal = request.extensions().get::<Principal>()?;
        let operation = operation(request.uri().path())?;
        crate::core::admit(principal, operation).ok()?;
        self.admission
            .at_limit(&principal.tenant)
            .then_some(operation)
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for RefuseEarly<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for RefuseEarly<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Unpin,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Answer<S::Future, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(operation) = self.refused(&request) else {
            return Answer::Handler(self.inner.call(request));
        };
        if let Some(connection) = request.extensions().get::<ConnectionInfo>() {
            connection.pause.pause(self.pause);
        }
        let error = CartError::Overloaded;
        crate::telemetry::record_on_request("error.type", error.reason());
        crate::metrics::global().record_rpc(
            Interface::Grpc,
            operation.name(),
            error.reason(),
            // Answered within this call: there is no wait to observe.
            Duration::ZERO,
            crate::telemetry::sampled_trace_id(),
        );
        let mut response = http::Response::new(tonic::body::Body::default());
        *response.headers_mut() = (*self.refusal).clone();
        Answer::Refused {
            request: Some(request.into_body()),
            drained: 0,
            response: Some(response),
        }
    }
}

/// Bytes of a refused request's message read (and dropped) before its refusal is sent.
const DRAIN_LIMIT: usize = 64 * 1024;

/// [`RefuseEarly`]'s answer: a refusal, or the handler's.
///
/// A refusal first reads what is left of the request (a unary message has mostly arrived with
/// its headers, so this rarely waits), up to [`DRAIN_LIMIT`]: a server that answers a stream
/// whose request it has not read resets it, and dropping the request before the answer is
/// written resets it with CANCEL, which a client may take for a failed call. Past the limit,
/// the rest of the request is dropped only after the answer (a reset with NO_ERROR, which RFC
/// 9113 §8.1 tells clients to accept).
pub enum Answer<F, B> {
    Refused {
        request: Option<B>,
        drained: usize,
        response: Option<http::Response<tonic::body::Body>>,
    },
    Handler(F),
}

impl<F, E, B> Future for Answer<F, B>
where
    F: Future<Output = Result<http::Response<tonic::body::Body>, E>> + Unpin,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Refused {
                request,
                drained,
                response,
            } => {
                while *drained <= DRAIN_LIMIT
                    && let Some(body) = request.as_mut()
                {
                    match Pin::new(body).poll_frame(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(Ok(frame))) => {
                            *drained += frame.data_ref().map_or(0, Bytes::len);
                        }
                        Poll::Ready(Some(Err(_)) | None) => *request = None,
                    }
                }
                let mut response = response.take().expect("polled after it was answered");
                if let Some(rest) = request.take() {
                    *response.body_mut() = tonic::body::Body::new(Holding(rest));
                }
                Poll::Ready(Ok(response))
            }
            Self::Handler(future) => Pin::new(future).poll(cx),
        }
    }
}

/// An empty response body that owns the unread rest of a refused request until the response
/// has been written.
struct Holding<B>(B);

impl<B: Unpin> Body for Holding<B> {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    fn config(global: usize, per_tenant: usize) -> AdmissionConfig {
        AdmissionConfig {
            max_in_flight: global,
            max_in_flight_per_tenant: per_tenant,
            ..AdmissionConfig::default()
        }
    }

    #[test]
    fn a_tenant_is_refused_past_its_limit_and_admitted_again_when_a_slot_frees() {
        let admission = Admission::new(config(100, 2), []);
        let a = tenant("a");
        let first = admission.admit(&a).unwrap();
        let _second = admission.admit(&a).unwrap();
        assert!(matches!(admission.admit(&a), Err(CartError::Overloaded)));
        assert_eq!(admission.tenant_in_flight(&a), 2);
        drop(first);
        assert_eq!(admission.tenant_in_flight(&a), 1);
        let _third = admission.admit(&a).expect("a freed slot is taken again");
    }

    #[test]
    fn one_tenant_at_its_limit_leaves_the_others_their_slots() {
        let admission = Admission::new(config(100, 3), []);
        let held: Vec<_> = (0..3)
            .map(|_| admission.admit(&tenant("a")).unwrap())
            .collect();
        assert!(admission.admit(&tenant("a")).is_err());
        let _b = admission
            .admit(&tenant("b"))
            .expect("b has slots of its own");
        assert_eq!(admission.in_flight(), 4);
        drop(held);
        assert_eq!(admission.in_flight(), 1);
    }

    #[test]
    fn the_global_limit_holds_across_tenants_and_a_refusal_takes_no_slot() {
        let admission = Admission::new(config(3, 2), []);
        let _a1 = admission.admit(&tenant("a")).unwrap();
        let _a2 = admission.admit(&tenant("a")).unwrap();
        let _b1 = admission.admit(&tenant("b")).unwrap();
        // b is under its own limit, but the service is full.
        assert!(matches!(
            admission.admit(&tenant("b")),
            Err(CartError::Overloaded)
        ));
        assert_eq!(admission.tenant_in_flight(&tenant("b")), 1);
        assert_eq!(admission.in_flight(), 3);
    }

    #[test]
    fn a_configured_tenant_has_its_own_limit_and_the_others_the_default() {
        let admission = Admission::new(
            config(100, 1),
            [(tenant("big"), Some(3)), (tenant("plain"), None)],
        );
        let big: Vec<_> = (0..3).map(|_| admission.admit(&tenant("big"))).collect();
        assert!(big.iter().all(Result::is_ok));
        assert!(admission.admit(&tenant("big")).is_err());
        let _plain = admission.admit(&tenant("plain")).unwrap();
        assert!(admission.admit(&tenant("plain")).is_err());
        let _unlisted = admission.admit(&tenant("unlisted")).unwrap();
        assert!(admission.admit(&tenant("unlisted")).is_err());
    }

    #[tokio::test]
    async fn a_cancelled_request_gives_its_slot_back() {
        let admission = Admission::new(config(100, 1), []);
        let a = tenant("a");
        let request = {
            let admission = admission.clone();
            let a = a.clone();
            tokio::spawn(async move {
                let _permit = admission.admit(&a).unwrap();
                std::future::pending::<()>().await;
            })
        };
        while admission.tenant_in_flight(&a) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(admission.admit(&a).is_err());
        // The client went away: the server drops the handler's future.
        request.abort();
        let _ = request.await;
        assert_eq!(admission.in_flight(), 0);
        let _again = admission.admit(&a).expect("the slot is free again");
    }

    #[test]
    fn concurrent_admissions_never_exceed_the_limit() {
        let admission = Admission::new(config(1000, 8), []);
        let peak = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let admission = admission.clone();
                let peak = peak.clone();
                scope.spawn(move || {
                    for _ in 0..20_000 {
                        if let Ok(permit) = admission.admit(&tenant("a")) {
                            peak.fetch_max(
                                admission.tenant_in_flight(&tenant("a")),
                                Ordering::Relaxed,
                            );
                            drop(permit);
                        }
                    }
                });
            }
        });
        assert!(peak.load(Ordering::Relaxed) <= 8);
        assert_eq!(admission.in_flight(), 0);
    }

    /// A cart service that answers OK and counts the requests that reach it.
    fn counting_service(
        reached: Arc<AtomicUsize>,
    ) -> impl tower::Service<
        http::Request<tonic::body::Body>,
        Response = http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
        Future = std::future::Ready<
            Result<http::Response<tonic::body::Body>, std::convert::Infallible>,
        >,
    > + Clone {
        tower::service_fn(move |_: http::Request<tonic::body::Body>| {
            reached.fetch_add(1, Ordering::Relaxed);
            std::future::ready(Ok(http::Response::new(tonic::body::Body::default())))
        })
    }

    fn cart_request(rpc: &str, principal: Principal) -> http::Request<tonic::body::Body> {
        let mut request = http::Request::new(tonic::body::Body::default());
        *request.uri_mut() = format!("/cart.v1.CartService/{rpc}").parse().unwrap();
        request.extensions_mut().insert(principal);
        request
    }

    fn principal(id: &str, write: bool) -> Principal {
        Principal {
            tenant: tenant(id),
            read: true,
            write,
        }
    }

    #[tokio::test]
    async fn a_tenant_at_its_limit_is_refused_before_the_handler_and_others_reach_it() {
        use tower::ServiceExt;
        let admission = Admission::new(config(100, 1), []);
        let reached = Arc::new(AtomicUsize::new(0));
        let service = RefuseEarly::new(
            counting_service(reached.clone()),
            admission.clone(),
            Duration::ZERO,
        );
        let call = |request| service.clone().oneshot(request);

        call(cart_request("Clear", principal("a", true)))
            .await
            .unwrap();
        assert_eq!(
            reached.load(Ordering::Relaxed),
            1,
            "under its limit: handled"
        );

        let _held = admission.admit(&tenant("a")).unwrap();
        let refused = call(cart_request("Clear", principal("a", true)))
            .await
            .unwrap();
        assert_eq!(
            reached.load(Ordering::Relaxed),
            1,
            "at its limit: not handled"
        );
        let status = tonic::Status::from_header_map(refused.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let expected = tonic::Status::from(CartError::Overloaded);
        assert_eq!(
            status.details(),
            expected.details(),
            "ErrorInfo and RetryInfo"
        );

        // Another tenant, a caller the handler refuses for its scope, and a path that is no
        // cart RPC are all the handler's to answer.
        call(cart_request("Get", principal("b", true)))
            .await
            .unwrap();
        call(cart_request("Clear", principal("a", false)))
            .await
            .unwrap();
        call(cart_request("Nope", principal("a", true)))
            .await
            .unwrap();
        assert_eq!(reached.load(Ordering::Relaxed), 4);
    }

    /// A request body of one message, which records that it was read to its end.
    struct Message(Option<Bytes>, Arc<std::sync::atomic::AtomicBool>);

    impl Body for Message {
        type Data = Bytes;
        type Error = tonic::Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.0.take() {
                Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                None => {
                    self.1.store(true, Ordering::Relaxed);
                    Poll::Ready(None)
                }
            }
        }
    }

    /// Answering a stream whose request is unread would reset it (RST_STREAM), which some
    /// clients report as a failed call instead of the refusal.
    #[tokio::test]
    async fn a_refusal_reads_the_request_to_its_end_before_it_answers() {
        use tower::ServiceExt;
        let admission = Admission::new(config(100, 1), []);
        let _held = admission.admit(&tenant("a")).unwrap();
        let reached = Arc::new(AtomicUsize::new(0));
        let read = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let service =
            RefuseEarly::new(counting_service(reached.clone()), admission, Duration::ZERO);
        let mut request = cart_request("Clear", principal("a", true));
        let message = Message(
            Some(Bytes::from_static(b"\0\0\0\0\x02\x0a\0")),
            read.clone(),
        );
        *request.body_mut() = tonic::body::Body::new(message);
        let refused = service.oneshot(request).await.unwrap();
        assert!(
            read.load(Ordering::Relaxed),
            "the request was read to its end"
        );
        assert_eq!(reached.load(Ordering::Relaxed), 0);
        assert!(refused.body().is_end_stream(), "a trailers-only answer");
        let status = tonic::Status::from_header_map(refused.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }

    /// A refused request pauses the reads of its own connection, an admitted one of another
    /// connection does not.
    #[tokio::test]
    async fn a_refusal_pauses_its_connection_and_an_admitted_request_does_not() {
        use tower::ServiceExt;
        let admission = Admission::new(config(100, 1), []);
        let service = RefuseEarly::new(
            counting_service(Arc::new(AtomicUsize::new(0))),
            admission.clone(),
            Duration::from_secs(60),
        );
        let on = |pause: &ReadPause, principal| {
            let mut request = cart_request("Clear", principal);
            request.extensions_mut().insert(ConnectionInfo {
                tcp: tonic::transport::server::TcpConnectInfo {
                    local_addr: None,
                    remote_addr: None,
                },
                pause: pause.clone(),
            });
            request
        };
        let (flooding, steady) = (ReadPause::default(), ReadPause::default());
        let _held = admission.admit(&tenant("a")).unwrap();
        let refused = service
            .clone()
            .oneshot(on(&flooding, principal("a", true)))
            .await
            .unwrap();
        let status = tonic::Status::from_header_map(refused.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        service
            .oneshot(on(&steady, principal("b", true)))
            .await
            .unwrap();
        assert!(flooding.is_paused(), "the refused request's connection");
        assert!(!steady.is_paused(), "the admitted request's connection");
    }

    #[test]
    fn every_cart_rpc_is_known_by_its_path() {
        for op in Operation::ALL {
            let path = format!("/cart.v1.CartService/{}", op.name());
            assert_eq!(operation(&path), Some(op));
        }
        assert_eq!(operation("/cart.v1.CartService/Checkout"), None);
    }

    #[test]
    fn zero_limits_are_refused() {
        assert!(config(0, 1).check().is_err());
        assert!(config(1, 0).check().is_err());
        assert!(AdmissionConfig::default().check().is_ok());
    }
}
