//! Integration tests of cart-service over real gRPC, against real redis-servers.

mod concurrency;
mod contract;
mod helpers;
mod outage;
mod redis_store;
mod server;
mod shims;
