//! Compiles `proto/cart/v1/cart.proto` with a pure-Rust protobuf compiler (no system `protoc`)
//! and writes the descriptor sets that server reflection serves: the API's, and that of the
//! vendored `google/rpc` error detail protos (descriptors only, no code).

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/cart/v1/cart.proto";
    // Status, ErrorInfo, BadRequest: what every error's grpc-status-details-bin carries.
    const ERROR_PROTOS: [&str; 2] = ["google/rpc/status.proto", "google/rpc/error_details.proto"];
    println!("cargo:rerun-if-changed={PROTO}");
    for proto in ERROR_PROTOS {
        println!("cargo:rerun-if-changed=proto/{proto}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    let fds = protox::compile([PROTO], ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("cart_descriptor.bin"), fds.encode_to_vec())?;
    let error_fds = protox::compile(ERROR_PROTOS, ["proto"])?;
    std::fs::write(
        out_dir.join("google_rpc_descriptor.bin"),
        error_fds.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        // Sorted maps: a message encodes to the same bytes every time, which the request-id
        // fingerprint of a payload relies on (and responses list metadata in a stable order).
        .btree_map(".")
        // Replies encoded whole, then copied into the frame once (`grpc::codec`).
        .codec_path("crate::grpc::codec::Codec")
        // The cart of a reply that also carries other fields, boxed: the reply is moved from
        // the handler into tonic's encoder through several futures, and a boxed cart makes
        // each move a few words instead of the whole message (560 bytes).
        .boxed(".cart.v1.ClearResponse.cart")
        .boxed(".cart.v1.DeleteResponse.cart")
        .boxed(".cart.v1.MergeResponse.cart")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
