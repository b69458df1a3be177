//! Generates the `virc.v1` gRPC code without a system `protoc`: protox parses
//! the `.proto` files in-process and tonic-prost-build generates from the result.
use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "virc/v1/common.proto",
    "virc/v1/orders.proto",
    "virc/v1/bots.proto",
    "virc/v1/market.proto",
    "virc/v1/account.proto",
    "virc/v1/events.proto",
    "virc/v1/system.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=virc");
    let fds = protox::compile(PROTOS, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // The encoded descriptor set feeds server reflection, so grpcurl can list the services.
    std::fs::write(
        out.join("virc_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
