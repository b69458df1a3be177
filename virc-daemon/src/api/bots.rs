//! `virc.v1.Bots`: create, list, show and control bots.

use tonic::{Request, Response, Status};
use virc_proto::v1::{self as pb, bots_server::Bots};

use crate::runtime::{Action, RuntimeHandle};

/// Serves `virc.v1.Bots` from the bot runtime.
#[derive(Debug, Clone)]
pub struct BotsService {
    runtime: RuntimeHandle,
}

impl BotsService {
    /// A service over the runtime.
    pub fn new(runtime: RuntimeHandle) -> Self {
        Self { runtime }
    }

    async fn control(&self, bot: String, action: Action) -> Result<Response<pb::Bot>, Status> {
        Ok(Response::new(self.runtime.control(bot, action).await?))
    }
}

#[tonic::async_trait]
impl Bots for BotsService {
    async fn create(
        &self,
        request: Request<pb::CreateBotRequest>,
    ) -> Result<Response<pb::CreateBotResponse>, Status> {
        Ok(Response::new(
            self.runtime.create(request.into_inner()).await?,
        ))
    }

    async fn list(
        &self,
        request: Request<pb::ListBotsRequest>,
    ) -> Result<Response<pb::ListBotsResponse>, Status> {
        let bots = self.runtime.list(request.into_inner()).await?;
        Ok(Response::new(pb::ListBotsResponse { bots }))
    }

    async fn get(&self, request: Request<pb::GetBotRequest>) -> Result<Response<pb::Bot>, Status> {
        Ok(Response::new(
            self.runtime.get(request.into_inner().bot).await?,
        ))
    }

    async fn stop(
        &self,
        request: Request<pb::StopBotRequest>,
    ) -> Result<Response<pb::Bot>, Status> {
        self.control(request.into_inner().bot, Action::Stop).await
    }

    async fn stop_all(
        &self,
        _: Request<pb::StopAllBotsRequest>,
    ) -> Result<Response<pb::StopAllBotsResponse>, Status> {
        let bots = self.runtime.stop_all().await?;
        Ok(Response::new(pb::StopAllBotsResponse { bots }))
    }

    async fn pause(
        &self,
        request: Request<pb::PauseBotRequest>,
    ) -> Result<Response<pb::Bot>, Status> {
        self.control(request.into_inner().bot, Action::Pause).await
    }

    async fn resume(
        &self,
        request: Request<pb::ResumeBotRequest>,
    ) -> Result<Response<pb::Bot>, Status> {
        self.control(request.into_inner().bot, Action::Resume).await
    }

    async fn duplicate(
        &self,
        request: Request<pb::DuplicateBotRequest>,
    ) -> Result<Response<pb::CreateBotResponse>, Status> {
        Ok(Response::new(
            self.runtime.duplicate(request.into_inner()).await?,
        ))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteBotRequest>,
    ) -> Result<Response<pb::DeleteBotResponse>, Status> {
        let bot = self
            .control(request.into_inner().bot, Action::Delete)
            .await?;
        Ok(Response::new(pb::DeleteBotResponse {
            id: bot.into_inner().id,
        }))
    }

    async fn check_rule(
        &self,
        request: Request<pb::CheckRuleRequest>,
    ) -> Result<Response<pb::CheckRuleResponse>, Status> {
        Ok(Response::new(
            self.runtime.check_rule(request.into_inner()).await?,
        ))
    }
}
