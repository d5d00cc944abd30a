//! The transport-neutral core: every interface (gRPC, each HTTP shim) hands it a validated
//! [`Command`] and the [`Caller`], and gets back the operation's outcome or a [`CartError`].
//!
//! No type of tonic or axum reaches this module, and no cart logic lives outside it (and the
//! stores it calls). [`observe`] is the one place that times, counts and names every
//! operation; `Core::store_call` the one place a store is called from, where the caller's
//! deadline is checked.

pub mod command;
mod customer;
mod observe;
mod view;

use tokio::time::Instant;

use crate::admission::Admission;
use crate::auth::{CartTokens, Principal, Scope};
use crate::domain::{
    CartId, CartKey, CartPolicy, CartState, IdempotencyKey, IdempotencyTag, Mutation, now_millis,
};
use crate::error::CartError;
use crate::metrics::Interface;
use crate::store::{CustomerKey, SharedStore};
use crate::telemetry;

use command::IntoMutation;
pub use command::{
    AddItems, ApplyCoupon, Clear, Command, Create, Delete, Fingerprint, Freeze, Get, GetActiveCart,
    Merge, Operation, Remove, Unfreeze, UpdateItems,
};
pub use observe::{deadline, observe, observe_pinned};
pub use view::{CartView, ClearOutcome, MergeOutcome, RemoveOutcome};

/// The correlation id of a request (`x-request-id`): it labels logs, traces and the dialects
/// that echo it; it never identifies a retry (that is the [`IdempotencyKey`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorrelationId(String);

impl CorrelationId {
    /// Any header value is accepted as it came: it is only echoed.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who asks, and under which terms: what every interface knows of a request besides the
/// command.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated caller; its tenant scopes every cart id it names.
    pub principal: Principal,
    /// The retry key of a mutation (`request_id`, `Idempotency-Key`).
    pub idempotency_key: Option<IdempotencyKey>,
    /// When the caller stops waiting (gRPC's `grpc-timeout`); no store call starts after it.
    pub deadline: Option<Instant>,
    pub interface: Interface,
    pub correlation_id: Option<CorrelationId>,
}

impl Caller {
    /// A caller with no idempotency key, deadline or correlation id.
    pub fn new(principal: Principal, interface: Interface) -> Self {
        Self {
            principal,
            idempotency_key: None,
            deadline: None,
            interface,
            correlation_id: None,
        }
    }

    /// The tag a store remembers `command`'s outcome under, when the caller gave a key.
    fn tag<C: Command>(&self, command: &C) -> Option<IdempotencyTag> {
        let key = self.idempotency_key.clone()?;
        let mut fingerprint = Fingerprint::of(C::OPERATION);
        command.fingerprint(&mut fingerprint);
        Some(fingerprint.tag(key))
    }
}

/// Lets `principal` run `operation` (its scope) and names its tenant on the operation's span
/// and the request's server span: the first step of every adapter once it knows the caller.
pub fn admit(principal: &Principal, operation: Operation) -> Result<(), CartError> {
    principal.require(operation.scope())?;
    let tenant = principal.tenant.as_str();
    if info_spans_enabled() {
        // Ids are tokens ([A-Za-z0-9_-]): written as they are, without a string's quoting and
        // escaping, which the log formatter would otherwise do for every request.
        tracing::Span::current().record("tenant", tracing::field::display(tenant));
    }
    telemetry::record_on_request("tenant", tenant);
    Ok(())
}

/// Whether an info span can be enabled at all: the spans that name the tenant, cart and
/// correlation id (the operation's and the request's) are info spans, so when the filters
/// enable nothing at that level there is no span to record them on, and the current span is
/// not looked up for nothing.
fn info_spans_enabled() -> bool {
    tracing::level_enabled!(tracing::Level::INFO)
}

/// The cart operations, over one store.
#[derive(Clone)]
pub struct Core {
    store: SharedStore,
    tokens: CartTokens,
    policy: CartPolicy,
    admission: Admission,
}

impl Core {
    pub fn new(store: SharedStore, tokens: CartTokens, policy: CartPolicy) -> Self {
        Self {
            store,
            tokens,
            policy,
            admission: Admission::default(),
        }
    }

    /// The same core under other admission limits.
    pub fn with_admission(self, admission: Admission) -> Self {
        Self { admission, ..self }
    }

    /// The admission limits the core applies (what is in flight, for embedding callers).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    pub fn tokens(&self) -> &CartTokens {
        &self.tokens
    }

    pub fn policy(&self) -> &CartPolicy {
        &self.policy
    }

    /// Runs any command (the generic entry of the adapters).
    pub async fn run<C: Command>(
        &self,
        caller: &Caller,
        command: C,
    ) -> Result<C::Outcome, CartError> {
        command.execute(self, caller).await
    }

    /// The caller's key of `cart_id`, after checking that the caller holds `scope` (again:
    /// an adapter [`admit`]s a caller before it decodes). Names the cart on the operation's
    /// span and on the request's server span, and the correlation id on the operation's span
    /// (so every log line of the operation carries it).
    fn authorize(
        &self,
        caller: &Caller,
        scope: Scope,
        cart_id: CartId,
    ) -> Result<CartKey, CartError> {
        caller.principal.require(scope)?;
        if info_spans_enabled() {
            let span = tracing::Span::current();
            span.record("cart_id", tracing::field::display(cart_id.as_str()));
            if let Some(correlation_id) = &caller.correlation_id {
                span.record("correlation_id", correlation_id.as_str());
            }
        }
        telemetry::record_on_request("cart_id", cart_id.as_str());
        Ok(CartKey {
            tenant: caller.principal.tenant.clone(),
            cart_id,
        })
    }

    /// Every store call goes through here: a caller whose deadline has passed is answered
    /// DEADLINE_EXCEEDED without touching the store; then the call takes an admission permit
    /// (refused at once with OVERLOADED past the service's or the tenant's limit, see
    /// [`crate::admission`]), held until it ends, and runs with the caller's deadline visible
    /// to the store ([`crate::deadline`]), which sends nothing past it.
    async fn store_call<T>(
        &self,
        caller: &Caller,
        call: impl Future<Output = Result<T, CartError>>,
    ) -> Result<T, CartError> {
        if caller
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            return Err(CartError::DeadlineExceeded);
        }
        let _permit = self.admission.admit(&caller.principal.tenant)?;
        crate::deadline::within(caller.deadline, call).await
    }

    fn view(&self, key: CartKey, state: Box<CartState>) -> CartView {
        CartView::new(key, state, &self.policy, &self.tokens)
    }

    /// Runs a mutation of a live cart; the new view and the units it cleared.
    async fn mutate<C: Command + IntoMutation>(
        &self,
        caller: &Caller,
        command: C,
    ) -> Result<(CartView, i64), CartError> {
        let tag = caller.tag(&command);
        let (cart_id, expected_version, mutation) = command.into_mutation();
        let key = self.authorize(caller, Scope::Write, cart_id)?;
        let mutated = self
            .store_call(
                caller,
                self.store
                    .mutate(&key, mutation, expected_version, now_millis(), tag.as_ref()),
            )
            .await?;
        Ok((self.view(key, mutated.state), mutated.outcome.items_cleared))
    }

    pub async fn create(&self, caller: &Caller, command: Create) -> Result<CartView, CartError> {
        let tag = caller.tag(&command);
        let mut cart = command.cart;
        // Both ids the core chooses are capabilities (VTEX takes them as one): 96 random bits,
        // or 96 bits of HMAC-SHA256 under the hmac secret, unguessable without it even when
        // the idempotency key is guessable.
        cart.id_generated = command.cart_id.is_none();
        let cart_id = match (command.cart_id, &caller.idempotency_key) {
            (Some(id), _) => id,
            // A retried Create must land on the same cart.
            (None, Some(key)) => self.tokens.derive_cart_id(&caller.principal.tenant, key),
            (None, None) => CartId::generate(),
        };
        let key = self.authorize(caller, Scope::Write, cart_id)?;
        let now = now_millis();
        let state = if cart.header.customer_id.is_empty() {
            self.store_call(caller, self.store.create(&key, cart, now, tag.as_ref()))
                .await?
        } else {
            // Indexed before (or with) the cart: never a cart the index misses.
            let customer = CustomerKey {
                tenant: key.tenant.clone(),
                customer_id: cart.header.customer_id.clone(),
            };
            let create = self
                .store
                .create_indexed(&customer, &key, cart, now, tag.as_ref());
            self.store_call(caller, create).await?
        };
        Ok(self.view(key, state))
    }

    pub async fn get(&self, caller: &Caller, command: Get) -> Result<CartView, CartError> {
        let key = self.authorize(caller, Scope::Read, command.cart_id)?;
        let state = self
            .store_call(caller, self.store.get(&key, now_millis()))
            .await?;
        Ok(self.view(key, state))
    }

    pub async fn add_items(
        &self,
        caller: &Caller,
        command: AddItems,
    ) -> Result<CartView, CartError> {
        Ok(self.mutate(caller, command).await?.0)
    }

    pub async fn update_items(
        &self,
        caller: &Caller,
        command: UpdateItems,
    ) -> Result<CartView, CartError> {
        Ok(self.mutate(caller, command).await?.0)
    }

    pub async fn apply_coupon(
        &self,
        caller: &Caller,
        command: ApplyCoupon,
    ) -> Result<CartView, CartError> {
        Ok(self.mutate(caller, command).await?.0)
    }

    pub async fn clear(&self, caller: &Caller, command: Clear) -> Result<ClearOutcome, CartError> {
        let (cart, items_cleared) = self.mutate(caller, command).await?;
        Ok(ClearOutcome {
            cart,
            items_cleared,
        })
    }

    pub async fn remove(
        &self,
        caller: &Caller,
        command: Remove,
    ) -> Result<RemoveOutcome, CartError> {
        let tag = caller.tag(&command);
        let key = self.authorize(caller, Scope::Write, command.cart_id)?;
        let items_removed = self
            .store_call(
                caller,
                self.store
                    .remove(&key, command.expected_version, now_millis(), tag.as_ref()),
            )
            .await?;
        Ok(RemoveOutcome {
            cart_id: key.cart_id.to_string(),
            items_removed,
        })
    }

    pub async fn delete(&self, caller: &Caller, command: Delete) -> Result<CartView, CartError> {
        Ok(self.mutate(caller, command).await?.0)
    }

    /// Freezes the cart until Unfreeze, Delete, or the policy's `freeze_ttl` from now.
    pub async fn freeze(&self, caller: &Caller, command: Freeze) -> Result<CartView, CartError> {
        let tag = caller.tag(&command);
        let key = self.authorize(caller, Scope::Write, command.cart_id)?;
        let now = now_millis();
        let mutation = Mutation::Freeze {
            reason: command.reason,
            until: self.policy.frozen_until(now),
        };
        let mutated = self
            .store_call(
                caller,
                self.store
                    .mutate(&key, mutation, command.expected_version, now, tag.as_ref()),
            )
            .await?;
        Ok(self.view(key, mutated.state))
    }

    pub async fn unfreeze(
        &self,
        caller: &Caller,
        command: Unfreeze,
    ) -> Result<CartView, CartError> {
        Ok(self.mutate(caller, command).await?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CartHeader, Currency, NewCart, TenantId};
    use crate::store::MemoryStore;

    fn core() -> Core {
        Core::new(
            MemoryStore::new(CartPolicy::default()),
            CartTokens::new(b"core tests secret"),
            CartPolicy::default(),
        )
    }

    fn caller(tenant: &str, key: Option<&str>) -> Caller {
        let mut caller = Caller::new(Principal::dev(), Interface::Grpc);
        caller.principal.tenant = TenantId::parse(tenant).unwrap();
        caller.idempotency_key = key.map(|k| IdempotencyKey::parse(k).unwrap());
        caller
    }

    fn create() -> Create {
        Create {
            cart_id: None,
            cart: NewCart {
                header: CartHeader {
                    customer_id: String::new(),
                    session_id: String::new(),
                    channel: String::new(),
                    currency: Currency::parse("EUR").unwrap(),
                    locale: String::new(),
                    metadata: Default::default(),
                },
                items: Vec::new(),
                id_generated: false,
            },
        }
    }

    #[tokio::test]
    async fn create_without_id_generates_one() {
        let cart = core()
            .create(&caller("default", None), create())
            .await
            .unwrap();
        assert_eq!(cart.id().len(), 24);
        assert!(CartId::parse(cart.id()).is_ok());
    }

    #[tokio::test]
    async fn create_with_an_idempotency_key_derives_the_same_id_every_time() {
        let core = core();
        let first = core
            .create(&caller("default", Some("7c0d6a4e-retry")), create())
            .await
            .unwrap();
        let again = core
            .create(&caller("default", Some("7c0d6a4e-retry")), create())
            .await
            .unwrap();
        assert_eq!(first, again, "the retry replays the first outcome");
        assert_eq!(first.id().len(), 24);
        let elsewhere = core
            .create(&caller("other", Some("7c0d6a4e-retry")), create())
            .await
            .unwrap();
        assert_ne!(first.id(), elsewhere.id());
    }

    #[tokio::test]
    async fn only_ids_the_service_chooses_are_marked_generated() {
        let core = core();
        let create_with = |cart_id: &str, key: Option<&'static str>| {
            let command = Create {
                cart_id: (!cart_id.is_empty()).then(|| CartId::parse(cart_id).unwrap()),
                ..create()
            };
            let core = core.clone();
            async move {
                let cart = core.create(&caller("default", key), command).await.unwrap();
                cart.state.id_generated
            }
        };
        assert!(create_with("", None).await);
        assert!(
            create_with("", Some("retry-1")).await,
            "derived with the hmac secret"
        );
        assert!(!create_with("cart-42", None).await);
        assert!(!create_with("cart-43", Some("retry-2")).await);
    }

    #[tokio::test]
    async fn a_passed_deadline_never_reaches_the_store() {
        let core = core();
        let mut late = caller("default", None);
        late.deadline = Some(Instant::now());
        assert!(matches!(
            core.create(&late, create()).await,
            Err(CartError::DeadlineExceeded)
        ));
    }

    #[tokio::test]
    async fn fingerprints_ignore_the_key_but_not_the_payload() {
        let clear = |reason: &str| Clear::parse("c1", false, reason).unwrap();
        let tag = |key: &str, c: &Clear| caller("default", Some(key)).tag(c).unwrap();
        let a = tag("r-1", &clear("x"));
        assert_eq!(a.fingerprint, tag("r-2", &clear("x")).fingerprint);
        assert_ne!(a.fingerprint, tag("r-1", &clear("y")).fingerprint);
        assert!(caller("default", None).tag(&clear("x")).is_none());
    }
}
