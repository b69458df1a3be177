//! `virc.v1.Events`: the resumable event stream.

use std::pin::Pin;

use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};
use virc_proto::v1::{self as pb, EventKind, events_server::Events};

use crate::events::{EventsHandle, Filter};

/// Serves `Events.Subscribe` from the event bus.
#[derive(Clone)]
pub struct EventsService {
    bus: EventsHandle,
}

impl EventsService {
    /// A service over the bus.
    pub fn new(bus: EventsHandle) -> Self {
        Self { bus }
    }
}

#[tonic::async_trait]
impl Events for EventsService {
    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send + 'static>>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let req = request.into_inner();
        for kind in &req.kinds {
            if EventKind::try_from(*kind).map_or(true, |k| k == EventKind::Unspecified) {
                return Err(Status::invalid_argument(format!(
                    "unknown event kind {kind}"
                )));
            }
        }
        let filter = Filter::new(req.bot_ids, req.product_ids, req.kinds);
        let rx = self
            .bus
            .subscribe(req.from_seq, filter, req.stop_at_head)
            .await?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
