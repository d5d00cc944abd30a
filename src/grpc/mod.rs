//! The gRPC edge: a thin adapter over [`crate::core`] (the `cart.v1.CartService` handlers,
//! pb ↔ command conversions, `CartError` → `Status`), its server span, and the service
//! that authenticates callers.

pub mod codec;
pub mod convert;
pub mod server_span;
pub mod service;
pub mod status;
pub mod wire;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;

use crate::auth::Authenticator;

pub use server_span::ServerSpanLayer;
pub use service::GrpcCarts;

/// Largest accepted gRPC message (SPEC §6).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Resolves the `authorization: Bearer` metadata into a [`crate::auth::Principal`] that the
/// services inside (the early refusal, the gRPC adapter) find in the request's extensions,
/// or answers UNAUTHENTICATED without calling them.
///
/// It works on the HTTP request as it came, where tonic's `InterceptedService` would turn it
/// into a `tonic::Request` and back (cloning its URI and method, and moving its headers twice)
/// on every call.
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

impl<S> Authenticated<S> {
    pub fn new(inner: S, authenticator: Arc<Authenticator>) -> Self {
        Self {
            inner,
            authenticator,
        }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for Authenticated<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Unpin,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AuthFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let header = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match self.authenticator.authenticate(header) {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
                AuthFuture::Admitted(self.inner.call(request))
            }
            Err(error) => AuthFuture::Refused(Some(Status::from(error).into_http())),
        }
    }
}

/// The response of [`Authenticated`]: the inner service's, or the refusal of a caller who
/// did not authenticate.
pub enum AuthFuture<F> {
    Admitted(F),
    Refused(Option<http::Response<Body>>),
}

impl<F, E> Future for AuthFuture<F>
where
    F: Future<Output = Result<http::Response<Body>, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Admitted(future) => Pin::new(future).poll(cx),
            Self::Refused(response) => Poll::Ready(Ok(response
                .take()
                .expect("a refusal is polled until it is answered, once"))),
        }
    }
}
