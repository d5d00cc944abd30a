//! Integration tests of cart-service over real gRPC, against real redis-servers.

mod contract;
mod helpers;
