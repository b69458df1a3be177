//! The gRPC surface: one module per `virc.v1` service, and the one place
//! where daemon errors become `tonic::Status`.

pub mod events;
mod market;
pub mod system;

pub use events::EventsService;
pub use market::MarketService;
pub use system::SystemService;

use tonic::Status;

use crate::events::BusError;

/// What a service handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The daemon is shutting down.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// A bug or storage failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<BusError> for ServiceError {
    fn from(err: BusError) -> Self {
        match err {
            BusError::Stopped => Self::ShuttingDown,
            BusError::Store(e) => Self::Internal(e.to_string()),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        let msg = err.to_string();
        match err {
            ServiceError::Invalid(_) => Status::invalid_argument(msg),
            ServiceError::ShuttingDown => Status::unavailable(msg),
            ServiceError::Internal(_) => {
                tracing::error!(error = %msg, "Internal error");
                Status::internal(msg)
            }
        }
    }
}
