//! Market data in the daemon: a replay source for recorded Coinbase feeds
//! and the market actor that turns trades into tickers, candles, windows
//! and indicators (virc-core's [`Analyst`]) and publishes `market_update`
//! events.
//!
//! # Replay
//! A recording is Coinbase WebSocket JSON, one frame per line. Frames are
//! parsed once; malformed lines are counted and skipped. They are then
//! played at `speed` × the recorded pace (or as fast as possible), and, when
//! looping, each pass is shifted forward in time by the recording's span
//! rounded up to a whole hour and in trade ids by the number of trades, so
//! candles stay aligned and ids stay increasing, exactly as a live feed's
//! would.
//!
//! # Threading model
//! One task owns every product's state ([`MarketActor::run`]); the replay
//! task and the gRPC service talk to it through a [`MarketHandle`].

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use rust_decimal::Decimal;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use virc_core::{
    book::L2Book,
    ids::ProductId,
    market::{Analyst, Candle, Indicators, Period, Trade, WindowStats},
    product::Catalogue,
};
use virc_proto::v1::{self as pb, event::Payload};

use crate::{
    clock::to_timestamp,
    events::{Draft, EventsHandle},
    exchange::coinbase::ws::messages::{WsMessage, parse},
    recorder::{Gap, Recorded, Recorder, TradeLog},
};

/// The bundled demo market: real BTC-USD trades of 2016-05-12 15:00-16:00 UTC.
pub const DEMO_FEED: &str = include_str!("../data/demo/btc-usd-2016-05-12.jsonl");
/// The demo market's product definitions.
pub const DEMO_PRODUCTS: &str = include_str!("../data/demo/products.json");

/// How fast a recording is replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// This many times the recorded pace.
    Factor(f64),
    /// As fast as possible.
    Max,
}

impl std::str::FromStr for Speed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "max" {
            return Ok(Self::Max);
        }
        let n = s.strip_suffix('x').unwrap_or(s);
        match n.parse::<f64>() {
            Ok(f) if f > 0.0 && f.is_finite() => Ok(Self::Factor(f)),
            _ => Err(format!(
                "replay speed `{s}` is not a factor like 1x or 60x, or max"
            )),
        }
    }
}

/// One input the market actor folds in.
#[derive(Debug, Clone)]
pub enum Input {
    /// A trade of a product, with the maker's side (Coinbase's `side` of a match).
    Trade(ProductId, Trade, virc_core::order::Side),
    /// A full book.
    Snapshot(ProductId, L2Book),
    /// A book change.
    L2(
        ProductId,
        crate::exchange::coinbase::ws::messages::L2Changes,
    ),
}

impl Input {
    /// The product it is about.
    pub fn product(&self) -> &str {
        match self {
            Self::Trade(p, ..) | Self::Snapshot(p, _) | Self::L2(p, _) => p,
        }
    }
}

/// The market input a feed message carries, if any: trades, snapshots and
/// book changes. The one place replays and the live feed turn messages into inputs.
pub fn input_of(msg: WsMessage) -> Option<Input> {
    match msg {
        WsMessage::Match(m) => Some(Input::Trade(
            m.product_id,
            Trade {
                time: m.time,
                trade_id: m.trade_id,
                price: m.price,
                size: m.size,
            },
            m.side,
        )),
        WsMessage::Snapshot {
            product_id,
            bids,
            asks,
        } => Some(Input::Snapshot(
            product_id,
            L2Book::from_snapshot(bids, asks),
        )),
        WsMessage::L2Update {
            product_id,
            changes,
            ..
        } => Some(Input::L2(product_id, changes)),
        _ => None,
    }
}

/// Parses a recording into inputs; returns them and the number of malformed lines.
pub fn load_recording(text: &str) -> (Vec<Input>, usize) {
    let mut out = Vec::new();
    let mut malformed = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse(line) {
            Ok(m) => out.extend(input_of(m)),
            Err(crate::exchange::coinbase::ws::messages::ParseError::UnknownType(_)) => {}
            Err(_) => malformed += 1,
        }
    }
    (out, malformed)
}

/// Plays `inputs` into the market until `stop` (or the end, without
/// `looping`). Each pass after the first shifts times by whole hours and
/// trade ids by the recording's id span, so the market keeps moving
/// forward. Trades at or below `resume`'s trade id for their product (what
/// the recorder already holds from an earlier run) are skipped without
/// waiting, so a restarted daemon picks the tape up where it left it.
pub async fn replay(
    inputs: Vec<Input>,
    speed: Speed,
    looping: bool,
    resume: BTreeMap<ProductId, u64>,
    market: MarketHandle,
    stop: CancellationToken,
) {
    let trades = || {
        inputs.iter().filter_map(|i| match i {
            Input::Trade(_, t, _) => Some(t),
            _ => None,
        })
    };
    let (Some(t0), Some(t1)) = (
        trades().map(|t| t.time).min(),
        trades().map(|t| t.time).max(),
    ) else {
        return;
    };
    let (Some(id0), Some(id1)) = (
        trades().map(|t| t.trade_id).min(),
        trades().map(|t| t.trade_id).max(),
    ) else {
        return;
    };
    let hour = 3_600_000_000_000_i64;
    let shift = ((t1 - t0) / hour + 1) * hour;
    let id_span = id1 - id0 + 1;
    let mut pass: i64 = 0;
    loop {
        // Pacing is anchored at the first trade played (not skipped) in the pass.
        let mut anchor: Option<(tokio::time::Instant, i64)> = None;
        for input in &inputs {
            let input = match input.clone() {
                Input::Trade(p, mut t, side) => {
                    t.time += pass * shift;
                    t.trade_id += u64::try_from(pass).unwrap_or(0) * id_span;
                    if resume.get(&p).is_some_and(|r| t.trade_id <= *r) {
                        continue;
                    }
                    let (start, from) =
                        *anchor.get_or_insert_with(|| (tokio::time::Instant::now(), t.time));
                    if let Speed::Factor(f) = speed {
                        #[expect(
                            clippy::cast_precision_loss,
                            clippy::cast_possible_truncation,
                            clippy::cast_sign_loss,
                            reason = "pacing only"
                        )]
                        let due = start + Duration::from_nanos(((t.time - from) as f64 / f) as u64);
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep_until(due) => {}
                        }
                    }
                    Input::Trade(p, t, side)
                }
                other => other,
            };
            if stop.is_cancelled() {
                return;
            }
            if market.tx.send(Request::Input(input)).await.is_err() {
                return;
            }
        }
        if !looping {
            return;
        }
        pass += 1;
    }
}

/// A product's market as the actor keeps it.
#[derive(Debug, Default)]
struct ProductState {
    analyst: Analyst,
    book: L2Book,
    changed: bool,
}

enum Request {
    Input(Input),
    Ticker {
        products: Vec<String>,
        reply: oneshot::Sender<Vec<pb::Ticker>>,
    },
    Stats {
        product: String,
        reply: oneshot::Sender<Option<Vec<pb::WindowStats>>>,
    },
    Candles {
        product: String,
        period: Period,
        limit: usize,
        reply: oneshot::Sender<Option<Vec<pb::Candle>>>,
    },
    Book {
        product: String,
        depth: usize,
        reply: oneshot::Sender<Option<pb::BookResponse>>,
    },
}

/// The way into the market actor.
#[derive(Clone)]
pub struct MarketHandle {
    tx: mpsc::Sender<Request>,
    catalogue: Arc<Catalogue>,
    trades: Option<TradeLog>,
}

impl MarketHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.ok()?;
        rx.await.ok()
    }

    /// Exports and imports go to this trade log.
    pub fn with_trades(mut self, log: TradeLog) -> Self {
        self.trades = Some(log);
        self
    }

    /// The recorded trades.
    pub fn trades(&self) -> Option<&TradeLog> {
        self.trades.as_ref()
    }

    /// The products the market knows.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Tickers of `products` (all with data when empty).
    pub async fn ticker(&self, products: Vec<String>) -> Vec<pb::Ticker> {
        self.ask(|reply| Request::Ticker { products, reply })
            .await
            .unwrap_or_default()
    }

    /// Rolling statistics of a product; `None` if it has no data.
    pub async fn stats(&self, product: String) -> Option<Vec<pb::WindowStats>> {
        self.ask(|reply| Request::Stats { product, reply })
            .await
            .flatten()
    }

    /// The last `limit` candles of a period, oldest first; `None` if no data.
    pub async fn candles(
        &self,
        product: String,
        period: Period,
        limit: usize,
    ) -> Option<Vec<pb::Candle>> {
        self.ask(|reply| Request::Candles {
            product,
            period,
            limit,
            reply,
        })
        .await
        .flatten()
    }

    /// The book of a product; `None` if it has no data.
    pub async fn book(&self, product: String, depth: usize) -> Option<pb::BookResponse> {
        self.ask(|reply| Request::Book {
            product,
            depth,
            reply,
        })
        .await
        .flatten()
    }

    /// Feeds one input (the replay and live feeds use this).
    pub async fn feed(&self, input: Input) {
        let _ = self.tx.send(Request::Input(input)).await;
    }
}

/// The market actor.
pub struct MarketActor {
    rx: mpsc::Receiver<Request>,
    tap: Option<crate::runtime::RuntimeHandle>,
    recorder: Option<Recorder>,
    products: BTreeMap<ProductId, ProductState>,
    events: EventsHandle,
    cadence: Duration,
}

impl MarketActor {
    /// A market over `catalogue`, publishing `market_update` every `cadence` when something changed.
    pub fn new(
        catalogue: Catalogue,
        events: EventsHandle,
        cadence: Duration,
    ) -> (Self, MarketHandle) {
        let (tx, rx) = mpsc::channel(4096);
        (
            Self {
                rx,
                tap: None,
                recorder: None,
                products: BTreeMap::new(),
                events,
                cadence,
            },
            MarketHandle {
                tx,
                catalogue: Arc::new(catalogue),
                trades: None,
            },
        )
    }

    /// Passes every market input on to the bot runtime (for the simulated exchanges),
    /// after the market's own view has taken it in.
    pub fn with_runtime(mut self, runtime: crate::runtime::RuntimeHandle) -> Self {
        self.tap = Some(runtime);
        self
    }

    /// Records every trade it is fed.
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Rebuilds a product's candles and windows from recorded trades (at
    /// start, before any live input); returns how many it took in.
    pub fn backfill(&mut self, product: &str, trades: &[Recorded]) -> usize {
        // The log only holds products that came in as valid ids.
        let Ok(product) = ProductId::parse(product) else {
            return 0;
        };
        let state = self.products.entry(product).or_default();
        let n = trades
            .iter()
            .filter(|(t, _)| state.analyst.on_trade(t))
            .count();
        state.changed |= n > 0;
        n
    }

    /// Runs until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.cadence);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                Some(req) = self.rx.recv() => {
                    let forward = match (&req, &self.tap) {
                        (Request::Input(input), Some(_)) => Some(input.clone()),
                        _ => None,
                    };
                    if let Some(gap) = self.handle(req) {
                        self.events
                            .emit(Draft {
                                bot_id: String::new(),
                                product_id: gap.product_id.clone(),
                                payload: Payload::FeedGap(pb::FeedGap {
                                    exchange: String::new(),
                                    channel: "matches".into(),
                                    expected: gap.after + 1,
                                    received: gap.before,
                                }),
                            })
                            .await;
                    }
                    if let (Some(input), Some(tap)) = (forward, &self.tap) {
                        tap.market(input).await;
                    }
                }
                _ = tick.tick() => self.publish().await,
            }
        }
    }

    /// Handles one request; returns a gap the recorder found in the trade ids.
    fn handle(&mut self, req: Request) -> Option<Gap> {
        match req {
            Request::Input(Input::Trade(p, t, side)) => {
                let gap = self.recorder.as_mut().and_then(|r| {
                    r.record(&p, &t, side).unwrap_or_else(|e| {
                        tracing::error!(product = %p, error = %e, "Cannot record a trade");
                        None
                    })
                });
                let state = self.products.entry(p).or_default();
                state.changed |= state.analyst.on_trade(&t);
                return gap;
            }
            Request::Input(Input::Snapshot(p, book)) => {
                let state = self.products.entry(p).or_default();
                state.book = book;
                state.changed = true;
            }
            Request::Input(Input::L2(p, changes)) => {
                let state = self.products.entry(p).or_default();
                for (side, price, size) in changes {
                    state.book.apply(side, price, size);
                }
                state.changed = true;
            }
            Request::Ticker { products, reply } => {
                let wanted: Vec<&str> = if products.is_empty() {
                    self.products.keys().map(ProductId::as_str).collect()
                } else {
                    products.iter().map(String::as_str).collect()
                };
                let out = wanted
                    .into_iter()
                    .filter_map(|p| self.products.get(p).and_then(|s| ticker(p, s)))
                    .collect();
                let _ = reply.send(out);
            }
            Request::Stats { product, reply } => {
                let _ = reply.send(self.products.get(product.as_str()).and_then(|s| {
                    let now = s.analyst.last()?.time;
                    Some(
                        s.analyst
                            .stats(now)
                            .into_iter()
                            .map(|(w, st)| window(w.name(), st))
                            .collect(),
                    )
                }));
            }
            Request::Candles {
                product,
                period,
                limit,
                reply,
            } => {
                let _ = reply.send(self.products.get(product.as_str()).map(|s| {
                    let series = s.analyst.series(period);
                    let mut out: Vec<pb::Candle> = series
                        .history()
                        .rev()
                        .take(limit)
                        .map(|(c, i)| candle(&c, Some(&i)))
                        .collect();
                    out.reverse();
                    out
                }));
            }
            Request::Book {
                product,
                depth,
                reply,
            } => {
                let _ = reply.send(self.products.get(product.as_str()).map(|s| {
                    let levels = |side| {
                        s.book
                            .levels(side)
                            .take(depth)
                            .map(|(p, q)| pb::BookLevel {
                                price: p.to_string(),
                                size: q.to_string(),
                            })
                            .collect()
                    };
                    pb::BookResponse {
                        product_id: product.clone(),
                        bids: levels(virc_core::order::Side::Buy),
                        asks: levels(virc_core::order::Side::Sell),
                        time: s.analyst.last().map(|t| to_timestamp(t.time)),
                    }
                }));
            }
        }
        None
    }

    async fn publish(&mut self) {
        let mut drafts = Vec::new();
        for (p, s) in &mut self.products {
            if !std::mem::take(&mut s.changed) {
                continue;
            }
            let Some(t) = ticker(p, s) else { continue };
            let now = s.analyst.last().map_or(0, |t| t.time);
            let indicators = Period::ALL
                .iter()
                .filter_map(|per| {
                    s.analyst
                        .series(*per)
                        .latest()
                        .map(|i| (per.name().to_owned(), indicators(&i)))
                })
                .collect();
            let update = pb::MarketUpdate {
                ticker: Some(t),
                windows: s
                    .analyst
                    .stats(now)
                    .into_iter()
                    .map(|(w, st)| window(w.name(), st))
                    .collect(),
                indicators,
            };
            drafts.push(Draft {
                bot_id: String::new(),
                product_id: p.to_string(),
                payload: Payload::MarketUpdate(update),
            });
        }
        for d in drafts {
            self.events.emit(d).await;
        }
    }
}

fn dec(v: Option<Decimal>) -> String {
    v.map(|d| d.normalize().to_string()).unwrap_or_default()
}

fn ticker(product: &str, s: &ProductState) -> Option<pb::Ticker> {
    let last = s.analyst.last()?;
    let day = s
        .analyst
        .stats(last.time)
        .into_iter()
        .find(|(w, _)| w.name() == "24h")
        .and_then(|(_, st)| st);
    Some(pb::Ticker {
        product_id: product.to_owned(),
        price: last.price.get().normalize().to_string(),
        best_bid: s
            .book
            .best_bid()
            .map(|(p, _)| p.to_string())
            .unwrap_or_default(),
        best_ask: s
            .book
            .best_ask()
            .map(|(p, _)| p.to_string())
            .unwrap_or_default(),
        change_24h_pct: dec(day.map(|d| d.change_pct)),
        volume_24h: dec(day.map(|d| d.volume)),
        time: Some(to_timestamp(last.time)),
        trade_id: last.trade_id,
    })
}

fn window(name: &str, st: Option<WindowStats>) -> pb::WindowStats {
    match st {
        None => pb::WindowStats {
            window: name.to_owned(),
            ..Default::default()
        },
        Some(s) => pb::WindowStats {
            window: name.to_owned(),
            low: dec(Some(s.low)),
            high: dec(Some(s.high)),
            volume: dec(Some(s.volume)),
            range: dec(Some(s.range)),
            change_pct: dec(Some(s.change_pct)),
            vwap: dec(Some(s.vwap.round_dp(2))),
            trade_count: s.trades,
        },
    }
}

fn indicators(i: &Indicators) -> pb::Indicators {
    let r = |v: Option<Decimal>| dec(v.map(|d| d.round_dp(4)));
    pb::Indicators {
        sma20: r(i.sma20),
        ema20: r(i.ema20),
        rsi7: r(i.rsi7),
        rsi14: r(i.rsi14),
        bb_mid: r(i.bb_mid),
        bb_up: r(i.bb_up),
        bb_low: r(i.bb_low),
        vwap: r(i.vwap),
    }
}

fn candle(c: &Candle, i: Option<&Indicators>) -> pb::Candle {
    pb::Candle {
        start: Some(to_timestamp(c.start)),
        open: dec(Some(c.open)),
        high: dec(Some(c.high)),
        low: dec(Some(c.low)),
        close: dec(Some(c.close)),
        volume: dec(Some(c.volume)),
        change_pct: dec(Some(c.change_pct())),
        indicators: i.map(indicators),
        trade_count: c.trades,
    }
}
