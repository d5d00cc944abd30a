//! The gRPC adapter: the generated `cart.v1.CartService` trait implemented over the
//! [`Core`], one generic `GrpcCarts::handle` for every RPC.
//!
//! A handler reads the caller (the [`Principal`] that [`super::Authenticated`] put into the request's
//! extensions) and the client's deadline (`grpc-timeout`), decodes the message into its
//! command ([`convert`]), runs it in the core and encodes the outcome; the error becomes a
//! `Status` in one place ([`super::status`]). No cart logic lives here.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use tonic::{Request, Response, Status};

use super::convert::{self, Decode};
use crate::auth::Principal;
use crate::core::{self, Caller, Command, Core, CorrelationId};
use crate::metrics::Interface;
use crate::pb;
use crate::pb::cart_service_server::CartService;

/// The core, served as `cart.v1.CartService`.
#[derive(Clone)]
pub struct GrpcCarts {
    core: Core,
}

impl GrpcCarts {
    pub fn new(core: Core) -> Self {
        Self { core }
    }

    /// Observes the RPC (see [`core::observe`]), admits the caller, decodes the message, runs
    /// the command and encodes its outcome.
    ///
    /// Not an `async fn`: the headers are read and dropped when it is called, so the future
    /// holds only the message and what was read from them, and a method boxes it once, where
    /// the generated trait's `async fn` would box a wrapper that then builds it and moves it
    /// into its own state.
    fn handle<M: Send + 'static, C: Command, R: 'static>(
        &self,
        request: Request<M>,
        decode: Decode<M, C>,
        encode: fn(C::Outcome) -> R,
    ) -> impl Future<Output = Result<Response<R>, Status>> + Send + '_ {
        let (metadata, mut extensions, message) = request.into_parts();
        // One pass over the headers finds both: a lookup by a name that is not a standard
        // header hashes its bytes, and neither is usually sent.
        let (mut timeout, mut request_id) = (None, None);
        let headers: &http::HeaderMap = metadata.as_ref();
        for (name, value) in headers {
            if *name == GRPC_TIMEOUT {
                timeout.get_or_insert(value);
            } else if *name == X_REQUEST_ID {
                request_id.get_or_insert(value);
            }
        }
        let deadline = timeout
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map(|budget| core::deadline(Instant::now(), budget));
        // A client's `x-request-id`, when it sends one (gRPC has no correlation id of its own).
        let correlation_id = request_id
            .and_then(|v| v.to_str().ok())
            .map(CorrelationId::new);
        let principal = extensions.remove::<Principal>();
        async move {
            // Pinned in this future, which the method boxes: observed without a box of its own.
            let body = std::pin::pin!(async {
                let principal = principal.ok_or(crate::error::CartError::Unauthenticated)?;
                core::admit(&principal, C::OPERATION)?;
                let decoded = decode(message, &self.core.policy().limits)?;
                let caller = Caller {
                    idempotency_key: decoded.idempotency_key,
                    deadline,
                    correlation_id,
                    ..Caller::new(principal, Interface::Grpc)
                };
                self.core.run(&caller, decoded.command).await
            });
            core::observe_pinned(C::OPERATION, Interface::Grpc, deadline, body)
                .await
                .map(|outcome| Response::new(encode(outcome)))
                .map_err(Status::from)
        }
    }
}

/// Header names built once, not parsed from text on every lookup.
const GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The generated trait's methods, each one boxed `GrpcCarts::handle` of its decoder and
/// encoder (the signature `async_trait` gives the trait's `async fn`s).
macro_rules! rpcs {
    ($($method:ident($message:ty) -> $reply:ty = $decode:path, $encode:path;)*) => {
        impl CartService for GrpcCarts {
            $(
                fn $method<'life0, 'async_trait>(
                    &'life0 self,
                    request: Request<$message>,
                ) -> Pin<Box<dyn Future<Output = Result<Response<$reply>, Status>> + Send + 'async_trait>>
                where
                    'life0: 'async_trait,
                    Self: 'async_trait,
                {
                    Box::pin(self.handle(request, $decode, $encode))
                }
            )*
        }
    };
}

rpcs! {
    create(pb::CreateRequest) -> pb::Cart = convert::create, convert::cart_reply;
    get(pb::GetRequest) -> pb::Cart = convert::get, convert::cart_reply;
    add_items(pb::AddItemsRequest) -> pb::Cart = convert::add_items, convert::cart_reply;
    update_items(pb::UpdateItemsRequest) -> pb::Cart = convert::update_items, convert::cart_reply;
    apply_coupon(pb::ApplyCouponRequest) -> pb::Cart = convert::apply_coupon, convert::cart_reply;
    clear(pb::ClearRequest) -> pb::ClearResponse = convert::clear, convert::cleared;
    remove(pb::RemoveRequest) -> pb::RemoveResponse = convert::remove, convert::removed;
    delete(pb::DeleteRequest) -> pb::DeleteResponse = convert::delete, convert::deleted;
    freeze(pb::FreezeRequest) -> pb::Cart = convert::freeze, convert::cart_reply;
    unfreeze(pb::UnfreezeRequest) -> pb::Cart = convert::unfreeze, convert::cart_reply;
    get_active_cart(pb::GetActiveCartRequest) -> pb::Cart =
        convert::get_active_cart, convert::cart_reply;
    merge(pb::MergeRequest) -> pb::MergeResponse = convert::merge, convert::merged;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_grpc_timeout("1S"), Some(Duration::from_secs(1)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "123456789S", "10x", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
