//! `cart.v1.CartService`: the handlers that gRPC and every HTTP shim call.
//!
//! A handler authorizes the caller (the [`Principal`] an interceptor or a shim put into the
//! request's extensions), decodes the request into domain values, makes one store call and
//! renders the result. No other code decides anything about carts.

use std::future::Future;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

use super::convert;
use crate::admission::Admission;
use crate::auth::{CartTokens, IdIsTheCapability, Principal, Scope};
use crate::deadline;
use crate::domain::{CartKey, CartPolicy, CartState, Mutation, RequestTag, TenantId, now_millis};
use crate::error::CartError;
use crate::metrics::{self, Interface};
use crate::pb;
use crate::pb::cart_service_server::CartService as CartServiceApi;
use crate::store::SharedStore;
use crate::telemetry;

/// The one implementation of `cart.v1.CartService`.
#[derive(Clone)]
pub struct CartService {
    store: SharedStore,
    tokens: CartTokens,
    policy: CartPolicy,
    admission: Admission,
}

impl CartService {
    pub fn new(store: SharedStore, tokens: CartTokens, policy: CartPolicy) -> Self {
        Self {
            store,
            tokens,
            policy,
            admission: Admission::default(),
        }
    }

    /// The same handlers under other admission limits.
    pub fn with_admission(self, admission: Admission) -> Self {
        Self { admission, ..self }
    }

    pub fn tokens(&self) -> &CartTokens {
        &self.tokens
    }

    /// The admission limits the handlers apply (what is in flight, for embedding callers).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    fn view(&self, key: &CartKey, state: &CartState) -> pb::Cart {
        convert::cart_view(key, state, &self.tokens, &self.policy)
    }

    async fn mutate(
        &self,
        key: &CartKey,
        mutation: Mutation,
        expected_version: i64,
        request: Option<&RequestTag>,
    ) -> Result<(pb::Cart, i64), CartError> {
        let mutated = self
            .store
            .mutate(key, mutation, expected_version, now_millis(), request)
            .await?;
        Ok((
            self.view(key, &mutated.state),
            mutated.outcome.items_cleared,
        ))
    }
}

/// The caller of a request, checked for `scope`.
fn authorize<T>(request: &Request<T>, scope: Scope) -> Result<Principal, CartError> {
    let principal = request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(CartError::Unauthenticated)?;
    principal.require(scope)?;
    tracing::Span::current().record("tenant", principal.tenant.as_str());
    telemetry::record_on_request("tenant", principal.tenant.as_str());
    Ok(principal)
}

fn record_cart(key: &CartKey) {
    tracing::Span::current().record("cart_id", key.cart_id.as_str());
    telemetry::record_on_request("cart_id", key.cart_id.as_str());
}

/// What a handler knows of its call besides the message.
#[derive(Debug, Clone)]
struct Call {
    interface: Interface,
    /// The client's deadline (`grpc-timeout`), from when the request arrived.
    budget: Option<Duration>,
    /// The caller's tenant, whose admission limit the request counts against.
    tenant: Option<TenantId>,
}

/// The interface a request came through (gRPC unless a shim says otherwise) and its deadline.
fn call<T>(request: &Request<T>) -> Call {
    Call {
        interface: request
            .extensions()
            .get::<Interface>()
            .copied()
            .unwrap_or(Interface::Grpc),
        budget: request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout),
        tenant: request
            .extensions()
            .get::<Principal>()
            .map(|principal| principal.tenant.clone()),
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

impl CartService {
    /// Runs one handler body if admission lets it (see [`crate::admission`]), within the
    /// client's deadline, records its metrics, and turns its error into a status.
    async fn observed<T>(
        &self,
        method: &'static str,
        call: Call,
        body: impl Future<Output = Result<T, CartError>>,
    ) -> Result<Response<T>, Status> {
        observed(method, call, &self.admission, body).await
    }
}

async fn observed<T>(
    method: &'static str,
    call: Call,
    admission: &Admission,
    body: impl Future<Output = Result<T, CartError>>,
) -> Result<Response<T>, Status> {
    let metrics = metrics::global();
    let _in_flight = metrics.in_flight();
    let started = Instant::now();
    let arrived = tokio::time::Instant::now();
    // Held until the body ends or is dropped (the client went away).
    let permit = call.tenant.as_ref().map(|tenant| admission.admit(tenant));
    let result = match (permit, call.budget) {
        (Some(Err(refused)), _) => Err(refused),
        // Answer a little before the deadline, so the client reads DEADLINE_EXCEEDED rather
        // than the transport's own CANCELLED when both timers fire. A deadline that has
        // already passed does no work at all.
        (_permit, Some(budget)) => {
            let margin = (budget / 10).min(Duration::from_millis(10));
            let deadline = arrived + (budget - margin);
            match budget - margin {
                left if left.is_zero() => Err(CartError::DeadlineExceeded),
                _ => tokio::time::timeout_at(deadline, deadline::within(Some(deadline), body))
                    .await
                    .unwrap_or(Err(CartError::DeadlineExceeded)),
            }
        }
        (_permit, None) => body.await,
    };
    let interface = call.interface;
    let outcome = match &result {
        Ok(_) => "OK",
        Err(error) => {
            if error.is_store_failure() {
                metrics.record_store_error(error.reason());
            }
            telemetry::record_on_request("error.type", error.reason());
            error.reason()
        }
    };
    let elapsed = started.elapsed();
    metrics.record_rpc(
        interface,
        method,
        outcome,
        elapsed,
        telemetry::sampled_trace_id(),
    );
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl CartServiceApi for CartService {
    #[tracing::instrument(name = "Create", skip_all, fields(tenant, cart_id))]
    async fn create(
        &self,
        request: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::Cart>, Status> {
        self.observed("Create", call(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let command = convert::create(
                &principal.tenant,
                request.into_inner(),
                &self.policy.limits,
                &self.tokens,
            )?;
            record_cart(&command.key);
            let state = self
                .store
                .create(
                    &command.key,
                    command.cart,
                    now_millis(),
                    command.request.as_ref(),
                )
                .await?;
            Ok(self.view(&command.key, &state))
        })
        .await
    }

    #[tracing::instrument(name = "Get", skip_all, fields(tenant, cart_id))]
    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Cart>, Status> {
        self.observed("Get", call(&request), async {
            let principal = authorize(&request, Scope::Read)?;
            let key = convert::get(&principal.tenant, request.get_ref())?;
            record_cart(&key);
            let state = self.store.get(&key, now_millis()).await?;
            Ok(self.view(&key, &state))
        })
        .await
    }

    #[tracing::instrument(name = "AddItems", skip_all, fields(tenant, cart_id))]
    async fn add_items(
        &self,
        request: Request<pb::AddItemsRequest>,
    ) -> Result<Response<pb::Cart>, Status> {
        self.observed("AddItems", call(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let c =
                convert::add_items(&principal.tenant, request.into_inner(), &self.policy.limits)?;
            record_cart(&c.key);
            let (cart, _) = self
                .mutate(
                    &c.key,
                    Mutation::AddItems(c.change),
                    c.expected_version,
                    c.request.as_ref(),
                )
                .await?;
            Ok(cart)
        })
        .await
    }

    #[tracing::instrument(name = "UpdateItems", skip_all, fields(tenant, cart_id))]
    async fn update_items(
        &self,
        request: Request<pb::UpdateItemsRequest>,
    ) -> Result<Response<pb::Cart>, Status> {
        self.observed("UpdateItems", call(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let c = convert::update_items(
                &principal.tenant,
                request.into_inner(),
                &self.policy.limits,
            )?;
            record_cart(&c.key);
            let (cart, _) = self
                .mutate(
                    &c.key,
                    Mutation::UpdateItems(c.change),
                    c.expected_version,
                    c.request.as_ref(),
                )
                .await?;
            Ok(cart)
        })
        .await
    }

    #[tracing::instrument(name = "ApplyCoupon", skip_all, fields(tenant, cart_id))]
    async fn apply_coupon(
        &self,
        request: Request<pb::ApplyCouponRequest>,
    ) -> Result<Response<pb::Cart>, Status> {
        self.observed("ApplyCoupon", call(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let c = convert::apply_coupon(&principal.tenant, request.get_ref())?;
            record_cart(&c.key);
            let (code, amount) = c.change;
            let mutation = Mutation::ApplyCoupon { code, amount };
            let (cart, _) = self
                .mutate(&c.key, mutation, c.expected_version, c.request.as_ref())
                .await?;
            Ok(cart)
        })
        .await
    }

    #[tracing::instrument(name = "Clear", skip_all, fields(tenant, cart_id))]
    async fn clear(
        &self,
        request: Request<pb::ClearRequest>,
    ) -> Result<Response<pb::ClearResponse>, Status> {
        self.observed("Clear", call(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let c = convert::clear(&principal.tenant, request.get_ref())?;
            record_cart(&c.key);
            let (preserve_coupons, reason) = c.change;
            let mutation = Mutation::Clear {
                preserve_coupons,
                reason,
                only_generated_id: request.extensions().get::<IdIsTheCapability>().is_some(),
            };
            let (cart, items_cleared) = self
                .mutate(&c.key, mutation, c.expected_version, c.request.as_ref())
                .await?;
            Ok(pb::ClearResponse {
                cart: Some(cart),
                items_cleared,
            })
        })
        .await
    }

    #[tracing::instrument(name = "Remove", skip_all, fields(tenant, cart_id))]
    async fn remove(
        &self,
        request: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        self.observed("Remove", call(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let c = convert::remove(&principal.tenant, request.get_ref())?;
            record_cart(&c.key);
            let items_removed = self
                .store
                .remove(&c.key, c.expected_version, now_millis(), c.request.as_ref())
                .await?;
            Ok(pb::RemoveResponse {
                cart_id: c.key.cart_id.to_string(),
                items_removed,
            })
        })
        .await
    }

    #[tracing::instrument(name = "Delete", skip_all, fields(tenant, cart_id))]
    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.observed("Delete", call(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let c = convert::delete(&principal.tenant, request.get_ref())?;
            record_cart(&c.key);
            let mutation = Mutation::Delete {
                order_number: c.change,
            };
            let (cart, _) = self
                .mutate(&c.key, mutation, c.expected_version, c.request.as_ref())
                .await?;
            Ok(pb::DeleteResponse { cart: Some(cart) })
        })
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
