//! The REST side of the connector.

pub mod limiter;
pub mod signer;
