//! The `virc.v1` gRPC contract: generated messages, clients and servers, plus
//! the encoded file descriptor set for server reflection.
//!
//! The `.proto` files under `proto/virc/v1/` are the source of truth and
//! document every message and field.

/// Generated code for package `virc.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("virc.v1");
}

/// Encoded `FileDescriptorSet` of `virc.v1`, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/virc_descriptor.bin"));

/// The API package name, as reported by `System.Version`.
pub const API_PACKAGE: &str = "virc.v1";
