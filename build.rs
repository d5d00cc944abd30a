//! Compiles `proto/cart/v1/cart.proto` with a pure-Rust protobuf compiler (no system `protoc`)
//! and writes the descriptor set that server reflection serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/cart/v1/cart.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    println!("cargo:rerun-if-changed=build.rs");

    let fds = protox::compile([PROTO], ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("cart_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        // Sorted maps: a message encodes to the same bytes every time, which the request-id
        // fingerprint of a payload relies on (and responses list metadata in a stable order).
        .btree_map(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
