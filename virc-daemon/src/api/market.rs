//! `virc.v1.Market`: products, tickers, candles, statistics and books.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use virc_core::market::Period;
use virc_proto::v1::{self as pb, market_server::Market};

use crate::market::MarketHandle;

/// Serves `virc.v1.Market` from the market actor.
#[derive(Clone)]
pub struct MarketService {
    market: MarketHandle,
}

impl MarketService {
    /// A service over the market actor.
    pub fn new(market: MarketHandle) -> Self {
        Self { market }
    }

    fn known(&self, product: &str) -> Result<(), Status> {
        if self.market.catalogue().get(product).is_some() {
            return Ok(());
        }
        let known: Vec<String> = self
            .market
            .catalogue()
            .iter()
            .map(|p| p.id.to_string())
            .collect();
        Err(Status::not_found(format!(
            "unknown product `{product}`; this daemon's market has: {}",
            known.join(", ")
        )))
    }
}

fn no_data(product: &str) -> Status {
    Status::not_found(format!(
        "no market data for {product} yet: the feed has not delivered a trade"
    ))
}

#[tonic::async_trait]
impl Market for MarketService {
    type ExportTradesStream =
        Pin<Box<dyn Stream<Item = Result<pb::Trade, Status>> + Send + 'static>>;

    async fn products(
        &self,
        _: Request<pb::ProductsRequest>,
    ) -> Result<Response<pb::ProductsResponse>, Status> {
        let products = self
            .market
            .catalogue()
            .iter()
            .map(|p| pb::Product {
                id: p.id.to_string(),
                base_currency: p.base_currency.clone(),
                quote_currency: p.quote_currency.clone(),
                quote_increment: p.quote_increment.normalize().to_string(),
                base_increment: p.base_increment.normalize().to_string(),
                min_market_funds: p.min_market_funds.get().normalize().to_string(),
                max_market_funds: p
                    .max_market_funds
                    .map(|f| f.get().normalize().to_string())
                    .unwrap_or_default(),
                status: p.status.clone(),
                post_only: p.post_only,
                limit_only: p.limit_only,
                cancel_only: p.cancel_only,
                trading_disabled: p.trading_disabled,
                display_name: p.display_name.clone(),
            })
            .collect();
        Ok(Response::new(pb::ProductsResponse { products }))
    }

    async fn ticker(
        &self,
        request: Request<pb::TickerRequest>,
    ) -> Result<Response<pb::TickerResponse>, Status> {
        let products = request.into_inner().product_ids;
        for p in &products {
            self.known(p)?;
        }
        let tickers = self.market.ticker(products.clone()).await;
        if let Some(missing) = products
            .iter()
            .find(|p| !tickers.iter().any(|t| &t.product_id == *p))
        {
            return Err(no_data(missing));
        }
        Ok(Response::new(pb::TickerResponse { tickers }))
    }

    async fn candles(
        &self,
        request: Request<pb::CandlesRequest>,
    ) -> Result<Response<pb::CandlesResponse>, Status> {
        let req = request.into_inner();
        self.known(&req.product_id)?;
        let period = match pb::CandlePeriod::try_from(req.period) {
            Ok(pb::CandlePeriod::CandlePeriod1m) => Period::M1,
            Ok(pb::CandlePeriod::CandlePeriod5m) => Period::M5,
            Ok(pb::CandlePeriod::CandlePeriod15m) => Period::M15,
            Ok(pb::CandlePeriod::CandlePeriod1h) => Period::H1,
            Ok(pb::CandlePeriod::CandlePeriod6h) => Period::H6,
            Ok(pb::CandlePeriod::CandlePeriod1d) => Period::D1,
            _ => {
                return Err(Status::invalid_argument(
                    "period must be one of 1m, 5m, 15m, 1h, 6h, 1d",
                ));
            }
        };
        let limit = if req.limit == 0 {
            100
        } else {
            req.limit as usize
        };
        let candles = self
            .market
            .candles(req.product_id.clone(), period, limit)
            .await
            .ok_or_else(|| no_data(&req.product_id))?;
        Ok(Response::new(pb::CandlesResponse { candles }))
    }

    async fn stats(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        let product = request.into_inner().product_id;
        self.known(&product)?;
        let windows = self
            .market
            .stats(product.clone())
            .await
            .ok_or_else(|| no_data(&product))?;
        Ok(Response::new(pb::StatsResponse {
            product_id: product,
            windows,
        }))
    }

    async fn book(
        &self,
        request: Request<pb::BookRequest>,
    ) -> Result<Response<pb::BookResponse>, Status> {
        let req = request.into_inner();
        self.known(&req.product_id)?;
        let depth = if req.depth == 0 {
            10
        } else {
            req.depth as usize
        };
        let book = self
            .market
            .book(req.product_id.clone(), depth)
            .await
            .ok_or_else(|| no_data(&req.product_id))?;
        Ok(Response::new(book))
    }

    async fn export_trades(
        &self,
        _: Request<pb::ExportTradesRequest>,
    ) -> Result<Response<Self::ExportTradesStream>, Status> {
        Err(Status::unimplemented(
            "trade export needs the recorder, which is not built yet (issue 5)",
        ))
    }

    async fn import_trades(
        &self,
        _: Request<Streaming<pb::Trade>>,
    ) -> Result<Response<pb::ImportTradesResponse>, Status> {
        Err(Status::unimplemented(
            "trade import needs the recorder, which is not built yet (issue 5)",
        ))
    }
}
