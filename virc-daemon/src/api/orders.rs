//! `virc.v1.Orders` and `virc.v1.Account`: manual orders, balances, fills.

use tonic::{Request, Response, Status};
use virc_core::ids::{ClientOid, OrderId};
use virc_proto::v1::{
    self as pb, account_server::Account, cancel_order_request, get_order_request,
    orders_server::Orders,
};

use crate::{api::ServiceError, exchange::Target, runtime::RuntimeHandle};

/// Serves `virc.v1.Orders` and `virc.v1.Account` from the bot runtime,
/// which owns the exchanges.
#[derive(Debug, Clone)]
pub struct OrdersService {
    runtime: RuntimeHandle,
}

impl OrdersService {
    /// A service over the runtime.
    pub fn new(runtime: RuntimeHandle) -> Self {
        Self { runtime }
    }
}

fn target(order_id: Option<&str>, client_oid: Option<&str>) -> Result<Target, ServiceError> {
    match (order_id, client_oid) {
        (Some(id), _) => OrderId::parse(id)
            .map(Target::Id)
            .map_err(|e| ServiceError::Invalid(format!("order id: {e}"))),
        (None, Some(c)) => ClientOid::parse(c)
            .map(Target::Client)
            .map_err(|e| ServiceError::Invalid(format!("client_oid: {e}"))),
        (None, None) => Err(ServiceError::Invalid(
            "name the order by its id or its client_oid".into(),
        )),
    }
}

#[tonic::async_trait]
impl Orders for OrdersService {
    async fn place(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        Ok(Response::new(
            self.runtime.place(request.into_inner()).await?,
        ))
    }

    async fn cancel(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let r = request.into_inner();
        let t = match &r.target {
            Some(cancel_order_request::Target::OrderId(id)) => target(Some(id), None),
            Some(cancel_order_request::Target::ClientOid(c)) => target(None, Some(c)),
            None => target(None, None),
        }?;
        Ok(Response::new(self.runtime.cancel(r.exchange, t).await?))
    }

    async fn list(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let orders = self.runtime.orders(request.into_inner()).await?;
        Ok(Response::new(pb::ListOrdersResponse { orders }))
    }

    async fn get(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let r = request.into_inner();
        let t = match &r.target {
            Some(get_order_request::Target::OrderId(id)) => target(Some(id), None),
            Some(get_order_request::Target::ClientOid(c)) => target(None, Some(c)),
            None => target(None, None),
        }?;
        Ok(Response::new(self.runtime.order(r.exchange, t).await?))
    }
}

#[tonic::async_trait]
impl Account for OrdersService {
    async fn balances(
        &self,
        request: Request<pb::BalancesRequest>,
    ) -> Result<Response<pb::BalancesResponse>, Status> {
        Ok(Response::new(
            self.runtime.balances(request.into_inner().exchange).await?,
        ))
    }

    async fn fills(
        &self,
        request: Request<pb::FillsRequest>,
    ) -> Result<Response<pb::FillsResponse>, Status> {
        let fills = self.runtime.fills(request.into_inner()).await?;
        Ok(Response::new(pb::FillsResponse { fills }))
    }
}
