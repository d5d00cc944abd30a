//! cart-service: shopping carts over gRPC (`cart.v1.CartService`), stored in Redis or in
//! memory, with HTTP shims for legacy cart APIs; both are adapters over one core.

pub mod admission;
pub mod app;
pub mod auth;
pub mod config;
pub mod core;
pub mod deadline;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod grpc_web;
pub mod health;
pub mod http;
pub mod metrics;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod tenancy;

/// Code generated from `proto/cart/v1/cart.proto`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("cart.v1");

    /// Descriptor set of the proto (and its imports), served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/cart_descriptor.bin"));

    /// Descriptor set of `google/rpc/status.proto` and `error_details.proto` (and their
    /// imports), under their canonical file names: reflection serves it so that grpcurl
    /// decodes the ErrorInfo and BadRequest in an error's details.
    pub const GOOGLE_RPC_FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/google_rpc_descriptor.bin"));
}
