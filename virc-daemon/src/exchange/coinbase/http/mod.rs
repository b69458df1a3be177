//! The REST side of the connector: request signing, the clock it signs
//! with, the rate-limit scheduler, and typed errors.

pub mod client;
pub mod error;
pub mod limiter;
pub mod signer;
pub mod timesync;
