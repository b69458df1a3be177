//! `virc.v1.Market`: products, tickers, candles, statistics and books.

use std::pin::Pin;

use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};
use virc_core::{
    market::{Period, Trade},
    money::{Price, Size},
    order::Side,
};
use virc_proto::v1::{self as pb, market_server::Market};

use crate::{
    clock::{from_timestamp, to_timestamp},
    market::MarketHandle,
    recorder::TradeLog,
};

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

impl MarketService {
    fn log(&self) -> Result<&TradeLog, Status> {
        self.market
            .trades()
            .ok_or_else(|| Status::unavailable("this daemon has no trade recorder"))
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
                base_currency: p.base_currency.to_string(),
                quote_currency: p.quote_currency.to_string(),
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
        request: Request<pb::ExportTradesRequest>,
    ) -> Result<Response<Self::ExportTradesStream>, Status> {
        let req = request.into_inner();
        self.known(&req.product_id)?;
        let log = self.log()?.clone();
        let from = req.from.as_ref().map_or(i64::MIN, from_timestamp);
        let to = req.to.as_ref().map_or(i64::MAX, from_timestamp);
        let product = req.product_id;
        let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_CHUNK);
        // Read in chunks as the client takes them: memory stays bounded.
        tokio::spawn(async move {
            let mut cursor = TradeLog::cursor(&product, from);
            loop {
                let chunk = match log.next_chunk(&mut cursor, EXPORT_CHUNK) {
                    Ok(c) if c.is_empty() => return,
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                };
                for (t, side) in chunk {
                    if t.time >= to {
                        return;
                    }
                    if tx.send(Ok(wire_trade(&product, &t, side))).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn import_trades(
        &self,
        request: Request<Streaming<pb::Trade>>,
    ) -> Result<Response<pb::ImportTradesResponse>, Status> {
        let log = self.log()?.clone();
        let mut stream = request.into_inner();
        let (mut imported, mut duplicates) = (0, 0);
        let mut n = 0u64;
        // Stored a batch at a time (the log merges minute by minute).
        let mut batch: Vec<(Trade, Side)> = Vec::new();
        let mut batch_product = String::new();
        let mut store = |product: &str, batch: &mut Vec<(Trade, Side)>| -> Result<(), Status> {
            let (new, dup) = log
                .import(product, batch.drain(..))
                .map_err(|e| Status::internal(e.to_string()))?;
            imported += new;
            duplicates += dup;
            Ok(())
        };
        while let Some(t) = stream.message().await? {
            n += 1;
            self.known(&t.product_id)?;
            let trade = core_trade(&t).map_err(|e| {
                Status::invalid_argument(format!("trade {n} (id {}): {e}", t.trade_id))
            })?;
            if t.product_id != batch_product || batch.len() >= IMPORT_BATCH {
                store(&batch_product, &mut batch)?;
                batch_product.clone_from(&t.product_id);
            }
            batch.push(trade);
        }
        store(&batch_product, &mut batch)?;
        Ok(Response::new(pb::ImportTradesResponse {
            imported,
            duplicates,
        }))
    }
}

/// Imported trades are stored this many at a time.
const IMPORT_BATCH: usize = 10_000;

/// Trades go out this many at a time.
const EXPORT_CHUNK: usize = 10_000;

fn wire_trade(product: &str, t: &Trade, side: Side) -> pb::Trade {
    pb::Trade {
        product_id: product.to_owned(),
        trade_id: t.trade_id,
        price: t.price.to_string(),
        size: t.size.to_string(),
        side: crate::runtime::wire_side(side),
        time: Some(to_timestamp(t.time)),
    }
}

/// A wire trade as the recorder stores it; the error names the bad field.
fn core_trade(t: &pb::Trade) -> Result<(Trade, Side), String> {
    let side = match pb::Side::try_from(t.side) {
        Ok(pb::Side::Buy) => Side::Buy,
        Ok(pb::Side::Sell) => Side::Sell,
        _ => return Err("side must be buy or sell".into()),
    };
    let time = t
        .time
        .as_ref()
        .map(from_timestamp)
        .ok_or("time is missing")?;
    let price = Price::parse(&t.price).map_err(|e| format!("price: {e}"))?;
    let size = Size::parse(&t.size).map_err(|e| format!("size: {e}"))?;
    if price.get().is_zero() || size.is_zero() {
        return Err("price and size must be above zero".into());
    }
    Ok((
        Trade {
            time,
            trade_id: t.trade_id,
            price,
            size,
        },
        side,
    ))
}
