//! Integration tests of cart-service over real gRPC and HTTP, against real redis-servers.

/// Runs each scenario (an `async fn(Backend)` of the invoking module) as `#[tokio::test]`s
/// in a submodule named after the store.
macro_rules! scenarios_on {
    ($module:ident, $backend:expr, $($scenario:ident),*) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario($backend).await;
                }
            )*
        }
    };
}

/// Each scenario on the in-memory store (`memory::…`) and the shared redis-server (`redis::…`).
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {
        scenarios_on!(memory, crate::helpers::Backend::Memory, $($scenario),*);
        scenarios_on!(redis, crate::helpers::Backend::redis(), $($scenario),*);
    };
}

/// As [`on_both_stores`], and on the shared 3-master Redis Cluster (`cluster::…`) too.
macro_rules! on_every_store {
    ($($scenario:ident),* $(,)?) => {
        on_both_stores!($($scenario),*);
        scenarios_on!(cluster, crate::helpers::Backend::cluster(), $($scenario),*);
    };
}

mod active_cart;
mod cluster;
mod concurrency;
mod contract;
mod eviction;
mod faults;
mod flood;
mod freeze;
mod functions;
mod fuzzing;
mod helpers;
mod history;
mod hostile;
mod idempotency;
mod layout;
mod merge;
mod outage;
mod overload;
mod redis_store;
mod retries;
mod secrets;
mod server;
mod shims;
mod store_full;
mod telemetry;
