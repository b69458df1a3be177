//! `virc.v1.System`: status, version, exchanges and shutdown.

use std::{path::PathBuf, sync::Arc, time::Instant};

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use virc_proto::v1::{self as pb, system_server::System};

use crate::{
    api::ServiceError,
    clock::{Nanos, to_timestamp},
    events::EventsHandle,
    runtime::RuntimeHandle,
};

/// Facts about the running daemon that `Status` reports.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    /// Wall-clock start time.
    pub started_at: Nanos,
    /// Monotonic start time, for uptime.
    pub started: Instant,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Listening addresses, as "unix:PATH" or "tcp:ADDR".
    pub listeners: Vec<String>,
}

/// Serves `virc.v1.System`.
#[derive(Clone)]
pub struct SystemService {
    info: Arc<DaemonInfo>,
    bus: EventsHandle,
    shutdown: Arc<tokio::sync::Mutex<Option<tokio::sync::oneshot::Sender<String>>>>,
    stop: CancellationToken,
    runtime: RuntimeHandle,
}

impl SystemService {
    /// A service reporting `info`; `Shutdown` sends its reason on `shutdown`.
    pub fn new(
        info: DaemonInfo,
        bus: EventsHandle,
        shutdown: tokio::sync::oneshot::Sender<String>,
        stop: CancellationToken,
        runtime: RuntimeHandle,
    ) -> Self {
        Self {
            info: Arc::new(info),
            bus,
            shutdown: Arc::new(tokio::sync::Mutex::new(Some(shutdown))),
            stop,
            runtime,
        }
    }
}

/// Bot statuses in display order, for `Status.bots`.
const BOT_STATUSES: [&str; 5] = ["running", "paused", "stopped", "ended", "failed"];

#[tonic::async_trait]
impl System for SystemService {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let (tail, head) = self.bus.bounds().await.map_err(ServiceError::from)?;
        let counts = self.runtime.counts().await;
        Ok(Response::new(pb::StatusResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: Some(to_timestamp(self.info.started_at)),
            uptime_seconds: self.info.started.elapsed().as_secs(),
            data_dir: self.info.data_dir.display().to_string(),
            listeners: self.info.listeners.clone(),
            event_head: head,
            event_tail: tail,
            bots: BOT_STATUSES
                .iter()
                .map(|s| pb::BotStatusCount {
                    status: (*s).into(),
                    count: counts.get(s).copied().unwrap_or(0),
                })
                .collect(),
            exchanges: self.runtime.exchanges().await,
            pid: std::process::id(),
        }))
    }

    async fn version(
        &self,
        _: Request<pb::VersionRequest>,
    ) -> Result<Response<pb::VersionResponse>, Status> {
        Ok(Response::new(pb::VersionResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            api: virc_proto::API_PACKAGE.into(),
        }))
    }

    async fn exchanges(
        &self,
        _: Request<pb::ExchangesRequest>,
    ) -> Result<Response<pb::ExchangesResponse>, Status> {
        Ok(Response::new(pb::ExchangesResponse {
            exchanges: self.runtime.exchanges().await,
        }))
    }

    async fn shutdown(
        &self,
        request: Request<pb::ShutdownRequest>,
    ) -> Result<Response<pb::ShutdownResponse>, Status> {
        if self.stop.is_cancelled() {
            return Err(ServiceError::ShuttingDown.into());
        }
        let reason = request.into_inner().reason;
        let reason = if reason.is_empty() {
            "shutdown requested".to_owned()
        } else {
            format!("shutdown requested: {reason}")
        };
        if let Some(tx) = self.shutdown.lock().await.take() {
            let _ = tx.send(reason);
        }
        Ok(Response::new(pb::ShutdownResponse {}))
    }
}
