//! The REST side of the connector.

pub mod signer;
