//! The gRPC surface: one module per `virc.v1` service, and the one place
//! where daemon errors become `tonic::Status`.

mod bots;
pub mod events;
mod market;
mod orders;
pub mod system;

pub use bots::BotsService;
pub use events::EventsService;
pub use market::MarketService;
pub use orders::OrdersService;
pub use system::SystemService;

use tonic::Status;

use crate::events::BusError;

/// What a service handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The named bot, order, product or exchange does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Refused: by the exchange (its exact text) or by a rule (a bot that must be stopped first).
    #[error("{0}")]
    Refused(String),
    /// Something of that name exists already.
    #[error("{0}")]
    Exists(String),
    /// The daemon is shutting down.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// An exchange cannot be reached now; the same request may work later.
    #[error("{0}")]
    Unavailable(String),
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

impl From<crate::exchange::ExchangeError> for ServiceError {
    fn from(err: crate::exchange::ExchangeError) -> Self {
        match err {
            crate::exchange::ExchangeError::Rejected(r) if r.status == 404 => {
                Self::NotFound(r.message)
            }
            crate::exchange::ExchangeError::Rejected(r) => Self::Refused(r.message),
            crate::exchange::ExchangeError::Unavailable(e) => Self::Unavailable(e),
        }
    }
}

impl From<crate::store::StoreError> for ServiceError {
    fn from(err: crate::store::StoreError) -> Self {
        Self::Internal(err.to_string())
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        let msg = err.to_string();
        match err {
            ServiceError::Invalid(_) => Status::invalid_argument(msg),
            ServiceError::NotFound(_) => Status::not_found(msg),
            ServiceError::Refused(_) => Status::failed_precondition(msg),
            ServiceError::Exists(_) => Status::already_exists(msg),
            ServiceError::ShuttingDown | ServiceError::Unavailable(_) => Status::unavailable(msg),
            ServiceError::Internal(_) => {
                tracing::error!(error = %msg, "Internal error");
                Status::internal(msg)
            }
        }
    }
}
