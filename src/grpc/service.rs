//! `cart.v1.CartService`: the handlers that gRPC and every HTTP shim call.
//!
//! A handler authorizes the caller (the [`Principal`] an interceptor or a shim put into the
//! request's extensions), decodes the request into domain values, makes one store call and
//! renders the result. No other code decides anything about carts.

use std::future::Future;
use std::time::Instant;

use tonic::{Request, Response, Status};

use super::convert;
use crate::auth::{CartTokens, Principal, Scope};
use crate::domain::{CartKey, CartPolicy, CartState, Mutation, now_millis};
use crate::error::CartError;
use crate::metrics::{self, Interface};
use crate::pb;
use crate::pb::cart_service_server::CartService as CartServiceApi;
use crate::store::SharedStore;

/// The one implementation of `cart.v1.CartService`.
#[derive(Clone)]
pub struct CartService {
    store: SharedStore,
    tokens: CartTokens,
    policy: CartPolicy,
}

impl CartService {
    pub fn new(store: SharedStore, tokens: CartTokens, policy: CartPolicy) -> Self {
        Self {
            store,
            tokens,
            policy,
        }
    }

    pub fn tokens(&self) -> &CartTokens {
        &self.tokens
    }

    fn view(&self, key: &CartKey, state: &CartState) -> pb::Cart {
        convert::cart_view(key, state, &self.tokens, &self.policy)
    }

    async fn mutate(
        &self,
        key: &CartKey,
        mutation: Mutation,
        expected_version: i64,
    ) -> Result<(pb::Cart, i64), CartError> {
        let mutated = self
            .store
            .mutate(key, mutation, expected_version, now_millis())
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
    Ok(principal)
}

fn record_cart(key: &CartKey) {
    tracing::Span::current().record("cart_id", key.cart_id.as_str());
}

/// Runs one handler body, records its metrics, and turns its error into a status.
async fn observed<T>(
    method: &'static str,
    interface: Interface,
    body: impl Future<Output = Result<T, CartError>>,
) -> Result<Response<T>, Status> {
    let started = Instant::now();
    let result = body.await;
    let metrics = metrics::global();
    let outcome = match &result {
        Ok(_) => "OK",
        Err(error) => {
            if matches!(error, CartError::Unavailable(_) | CartError::Internal(_)) {
                metrics.record_store_error(error.reason());
            }
            error.reason()
        }
    };
    metrics.record_rpc(interface, method, outcome, started.elapsed());
    result.map(Response::new).map_err(Status::from)
}

/// The interface a request came through (gRPC unless a shim says otherwise).
fn interface<T>(request: &Request<T>) -> Interface {
    request
        .extensions()
        .get::<Interface>()
        .copied()
        .unwrap_or(Interface::Grpc)
}

#[tonic::async_trait]
impl CartServiceApi for CartService {
    #[tracing::instrument(name = "Create", skip_all, fields(tenant, cart_id))]
    async fn create(
        &self,
        request: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::Cart>, Status> {
        observed("Create", interface(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let command =
                convert::create(&principal.tenant, request.into_inner(), &self.policy.limits)?;
            record_cart(&command.key);
            let state = self
                .store
                .create(&command.key, command.cart, now_millis())
                .await?;
            Ok(self.view(&command.key, &state))
        })
        .await
    }

    #[tracing::instrument(name = "Get", skip_all, fields(tenant, cart_id))]
    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::Cart>, Status> {
        observed("Get", interface(&request), async {
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
        observed("AddItems", interface(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let c =
                convert::add_items(&principal.tenant, request.into_inner(), &self.policy.limits)?;
            record_cart(&c.key);
            let (cart, _) = self
                .mutate(&c.key, Mutation::AddItems(c.change), c.expected_version)
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
        observed("UpdateItems", interface(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let c = convert::update_items(
                &principal.tenant,
                request.into_inner(),
                &self.policy.limits,
            )?;
            record_cart(&c.key);
            let (cart, _) = self
                .mutate(&c.key, Mutation::UpdateItems(c.change), c.expected_version)
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
        observed("ApplyCoupon", interface(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let c = convert::apply_coupon(&principal.tenant, request.get_ref())?;
            record_cart(&c.key);
            let (code, amount) = c.change;
            let mutation = Mutation::ApplyCoupon { code, amount };
            let (cart, _) = self.mutate(&c.key, mutation, c.expected_version).await?;
            Ok(cart)
        })
        .await
    }

    #[tracing::instrument(name = "Clear", skip_all, fields(tenant, cart_id))]
    async fn clear(
        &self,
        request: Request<pb::ClearRequest>,
    ) -> Result<Response<pb::ClearResponse>, Status> {
        observed("Clear", interface(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let c = convert::clear(&principal.tenant, request.get_ref())?;
            record_cart(&c.key);
            let (preserve_coupons, reason) = c.change;
            let mutation = Mutation::Clear {
                preserve_coupons,
                reason,
            };
            let (cart, items_cleared) = self.mutate(&c.key, mutation, c.expected_version).await?;
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
        observed("Remove", interface(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let c = convert::remove(&principal.tenant, request.get_ref())?;
            record_cart(&c.key);
            let items_removed = self
                .store
                .remove(&c.key, c.expected_version, now_millis())
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
        observed("Delete", interface(&request), async {
            let principal = authorize(&request, Scope::Write)?;
            let c = convert::delete(&principal.tenant, request.get_ref())?;
            record_cart(&c.key);
            let mutation = Mutation::Delete {
                order_number: c.change,
            };
            let (cart, _) = self.mutate(&c.key, mutation, c.expected_version).await?;
            Ok(pb::DeleteResponse { cart: Some(cart) })
        })
        .await
    }
}
