//! The gRPC edge: a thin adapter over [`crate::core`] (the `cart.v1.CartService` handlers,
//! pb ↔ command conversions, `CartError` → `Status`), its server span, and the interceptor
//! that authenticates callers.

pub mod codec;
pub mod convert;
pub mod server_span;
pub mod service;
pub mod status;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::auth::Authenticator;

pub use server_span::ServerSpanLayer;
pub use service::GrpcCarts;

/// Largest accepted gRPC message (SPEC §6).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Resolves the `authorization: Bearer` metadata into a [`crate::auth::Principal`] that the
/// gRPC adapter finds in the request's extensions.
#[derive(Clone)]
pub struct AuthInterceptor {
    authenticator: std::sync::Arc<Authenticator>,
}

impl AuthInterceptor {
    pub fn new(authenticator: std::sync::Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let headers: &http::HeaderMap = request.metadata().as_ref();
        let header = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let principal = self.authenticator.authenticate(header)?;
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}
