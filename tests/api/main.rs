//! Integration tests of cart-service over real gRPC and HTTP, against real redis-servers.

/// Runs each scenario (an `async fn(Backend)` of the invoking module) twice: on the in-memory
/// store (`memory::…`) and on the shared test redis-server (`redis::…`).
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(crate::helpers::Backend::Memory).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(crate::helpers::Backend::redis()).await;
                }
            )*
        }
    };
}

mod concurrency;
mod contract;
mod helpers;
mod outage;
mod redis_store;
mod server;
mod shims;
