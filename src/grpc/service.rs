//! The gRPC adapter: the generated `cart.v1.CartService` trait implemented over the
//! [`Core`], one generic `GrpcCarts::handle` for every RPC.
//!
//! A handler reads the caller (the [`Principal`] the interceptor put into the request's
//! extensions) and the client's deadline (`grpc-timeout`), decodes the message into its
//! command ([`convert`]), runs it in the core and encodes the outcome; the error becomes a
//! `Status` in one place ([`super::status`]). No cart logic lives here.

use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

use super::convert::{self, Decode};
use crate::auth::Principal;
use crate::core::{self, Caller, Command, Core};
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
    async fn handle<M, C: Command, R>(
        &self,
        request: Request<M>,
        decode: Decode<M, C>,
        encode: fn(C::Outcome) -> R,
    ) -> Result<Response<R>, Status> {
        let deadline = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map(|budget| core::deadline(Instant::now(), budget));
        let principal = request.extensions().get::<Principal>().cloned();
        core::observe(C::OPERATION, Interface::Grpc, deadline, async {
            let principal = principal.ok_or(crate::error::CartError::Unauthenticated)?;
            core::admit(&principal, C::OPERATION)?;
            let decoded = decode(request.into_inner(), &self.core.policy().limits)?;
            let caller = Caller {
                idempotency_key: decoded.idempotency_key,
                deadline,
                ..Caller::new(principal, Interface::Grpc)
            };
            self.core.run(&caller, decoded.command).await
        })
        .await
        .map(|outcome| Response::new(encode(outcome)))
        .map_err(Status::from)
    }
}

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

#[tonic::async_trait]
impl CartService for GrpcCarts {
    async fn create(
        &self,
        request: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::Cart>, Status> {
        self.handle(request, convert::create, convert::cart_reply)
            .await
    }

    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Cart>, Status> {
        self.handle(request, convert::get, convert::cart_reply)
            .await
    }

    async fn add_items(
        &self,
        request: Request<pb::AddItemsRequest>,
    ) -> Result<Response<pb::Cart>, Status> {
        self.handle(request, convert::add_items, convert::cart_reply)
            .await
    }

    async fn update_items(
        &self,
        request: Request<pb::UpdateItemsRequest>,
    ) -> Result<Response<pb::Cart>, Status> {
        self.handle(request, convert::update_items, convert::cart_reply)
            .await
    }

    async fn apply_coupon(
        &self,
        request: Request<pb::ApplyCouponRequest>,
    ) -> Result<Response<pb::Cart>, Status> {
        self.handle(request, convert::apply_coupon, convert::cart_reply)
            .await
    }

    async fn clear(
        &self,
        request: Request<pb::ClearRequest>,
    ) -> Result<Response<pb::ClearResponse>, Status> {
        self.handle(request, convert::clear, convert::cleared).await
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        self.handle(request, convert::remove, convert::removed)
            .await
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.handle(request, convert::delete, convert::deleted)
            .await
    }
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
