//! The analyst: public trades in, candles (1m..1d) with indicators and
//! rolling-window statistics (1m..7d) out. Pure and incremental: time comes
//! from the trades' own timestamps, so a replay of 2016 data builds 2016
//! candles exactly as live would have, and each trade costs O(1) work.
//!
//! # Rules a reader can check
//! - **Candles** are aligned on the epoch (a 1h candle starts on the hour,
//!   UTC). A trade in a later bucket closes the current candle; buckets with
//!   no trade in between are carried forward as empty candles (open = high =
//!   low = close = the previous close, volume 0), and indicators advance over
//!   them too. Each period keeps its last [`HISTORY`] closed candles.
//! - **Indicators** are computed on closed candles' closes, carried over the
//!   whole history (not recomputed over a truncated tail): SMA-20, EMA-20
//!   (seeded with the first SMA-20), RSI-7 and RSI-14 (Wilder: seeded with the
//!   simple average of the first N changes, then `avg = (avg × (N − 1) +
//!   x) / N`), Bollinger MA-20 ± 2σ (population σ of the last 20 closes), and
//!   the candle's VWAP. Values are `None` until there is enough history.
//! - **Rolling windows** keep 60 buckets of `window / 60` each, so memory is
//!   fixed however many trades arrive; a window covers the last `window`
//!   to within one bucket at its old edge.
//! - **Order**: a trade whose id is not above the last one seen is a
//!   duplicate and is ignored; a trade time earlier than the last is treated
//!   as the last time (exchange clocks do not run backwards within a product).

use std::collections::VecDeque;

use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde::{Deserialize, Serialize};

use crate::{
    money::{Price, Size},
    rule::{Source, Values, Var},
};

/// Closed candles kept per period.
pub const HISTORY: usize = 1000;

/// One public trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// Exchange time, ns since the epoch.
    pub time: i64,
    /// Exchange trade id (increasing per product).
    pub trade_id: u64,
    /// Price.
    pub price: Price,
    /// Base size.
    pub size: Size,
}

/// Candle periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Period {
    /// 1 minute.
    M1,
    /// 5 minutes.
    M5,
    /// 15 minutes.
    M15,
    /// 1 hour.
    H1,
    /// 6 hours.
    H6,
    /// 1 day.
    D1,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 6] = [Self::M1, Self::M5, Self::M15, Self::H1, Self::H6, Self::D1];

    /// Length in nanoseconds.
    pub fn nanos(self) -> i64 {
        60_000_000_000
            * match self {
                Self::M1 => 1,
                Self::M5 => 5,
                Self::M15 => 15,
                Self::H1 => 60,
                Self::H6 => 360,
                Self::D1 => 1440,
            }
    }

    /// Short name: "1m", "5m", "15m", "1h", "6h", "1d".
    pub fn name(self) -> &'static str {
        match self {
            Self::M1 => "1m",
            Self::M5 => "5m",
            Self::M15 => "15m",
            Self::H1 => "1h",
            Self::H6 => "6h",
            Self::D1 => "1d",
        }
    }
}

/// Rolling windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Window {
    /// 1 minute.
    M1,
    /// 5 minutes.
    M5,
    /// 15 minutes.
    M15,
    /// 30 minutes.
    M30,
    /// 1 hour.
    H1,
    /// 6 hours.
    H6,
    /// 24 hours.
    H24,
    /// 7 days.
    D7,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 8] = [
        Self::M1,
        Self::M5,
        Self::M15,
        Self::M30,
        Self::H1,
        Self::H6,
        Self::H24,
        Self::D7,
    ];

    /// Length in nanoseconds.
    pub fn nanos(self) -> i64 {
        60_000_000_000
            * match self {
                Self::M1 => 1,
                Self::M5 => 5,
                Self::M15 => 15,
                Self::M30 => 30,
                Self::H1 => 60,
                Self::H6 => 360,
                Self::H24 => 1440,
                Self::D7 => 10_080,
            }
    }

    /// Short name: "1m" .. "7d".
    pub fn name(self) -> &'static str {
        match self {
            Self::M1 => "1m",
            Self::M5 => "5m",
            Self::M15 => "15m",
            Self::M30 => "30m",
            Self::H1 => "1h",
            Self::H6 => "6h",
            Self::H24 => "24h",
            Self::D7 => "7d",
        }
    }
}

/// One OHLCV candle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    /// Bucket start, ns since the epoch.
    pub start: i64,
    /// First price.
    pub open: Decimal,
    /// Highest price.
    pub high: Decimal,
    /// Lowest price.
    pub low: Decimal,
    /// Last price.
    pub close: Decimal,
    /// Base volume.
    pub volume: Decimal,
    /// Σ price × size, for VWAP.
    pub quote_volume: Decimal,
    /// Number of trades; 0 for a carried-forward empty bucket.
    pub trades: u64,
}

impl Candle {
    fn new(start: i64, price: Decimal) -> Self {
        Self {
            start,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: Decimal::ZERO,
            quote_volume: Decimal::ZERO,
            trades: 0,
        }
    }

    fn add(&mut self, price: Decimal, size: Decimal) {
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.close = price;
        self.volume += size;
        self.quote_volume += price * size;
        self.trades += 1;
    }

    /// Percent change from open to close.
    pub fn change_pct(&self) -> Decimal {
        pct(self.open, self.close)
    }

    /// Volume-weighted average price; `None` for an empty candle.
    pub fn vwap(&self) -> Option<Decimal> {
        (!self.volume.is_zero()).then(|| self.quote_volume / self.volume)
    }
}

fn pct(from: Decimal, to: Decimal) -> Decimal {
    if from.is_zero() {
        Decimal::ZERO
    } else {
        ((to - from) / from * Decimal::ONE_HUNDRED).round_dp(4)
    }
}

/// Indicators as of one closed candle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indicators {
    /// SMA of the last 20 closes.
    pub sma20: Option<Decimal>,
    /// EMA-20.
    pub ema20: Option<Decimal>,
    /// Wilder RSI-7.
    pub rsi7: Option<Decimal>,
    /// Wilder RSI-14.
    pub rsi14: Option<Decimal>,
    /// Bollinger middle band (MA-20).
    pub bb_mid: Option<Decimal>,
    /// MA-20 + 2σ.
    pub bb_up: Option<Decimal>,
    /// MA-20 − 2σ.
    pub bb_low: Option<Decimal>,
    /// The candle's VWAP.
    pub vwap: Option<Decimal>,
}

/// Wilder's RSI over `period` changes, updated in O(1).
#[derive(Debug, Clone)]
struct Rsi {
    period: u32,
    prev: Option<Decimal>,
    seen: u32,
    gain: Decimal,
    loss: Decimal,
}

impl Rsi {
    fn new(period: u32) -> Self {
        Self {
            period,
            prev: None,
            seen: 0,
            gain: Decimal::ZERO,
            loss: Decimal::ZERO,
        }
    }

    fn push(&mut self, close: Decimal) -> Option<Decimal> {
        let prev = self.prev.replace(close)?;
        let change = close - prev;
        let (g, l) = if change > Decimal::ZERO {
            (change, Decimal::ZERO)
        } else {
            (Decimal::ZERO, -change)
        };
        let n = Decimal::from(self.period);
        if self.seen < self.period {
            self.gain += g;
            self.loss += l;
            self.seen += 1;
            if self.seen < self.period {
                return None;
            }
            self.gain /= n;
            self.loss /= n;
        } else {
            self.gain = (self.gain * (n - Decimal::ONE) + g) / n;
            self.loss = (self.loss * (n - Decimal::ONE) + l) / n;
        }
        Some(rsi_value(self.gain, self.loss))
    }
}

fn rsi_value(gain: Decimal, loss: Decimal) -> Decimal {
    if loss.is_zero() {
        return if gain.is_zero() {
            Decimal::from(50)
        } else {
            Decimal::ONE_HUNDRED
        };
    }
    (Decimal::ONE_HUNDRED - Decimal::ONE_HUNDRED / (Decimal::ONE + gain / loss)).round_dp(4)
}

/// What [`Closes::push`] yields: SMA-20, EMA-20 and the Bollinger bands (mid, up, low).
#[derive(Debug, Clone, Copy, Default)]
struct Averages {
    sma: Option<Decimal>,
    ema: Option<Decimal>,
    bands: Option<(Decimal, Decimal, Decimal)>,
}

/// SMA, EMA and Bollinger over the last 20 closes, updated in O(1).
#[derive(Debug, Clone, Default)]
struct Closes {
    ring: VecDeque<Decimal>,
    sum: Decimal,
    sum_sq: Decimal,
    ema: Option<Decimal>,
}

impl Closes {
    const N: usize = 20;

    fn push(&mut self, close: Decimal) -> Averages {
        self.ring.push_back(close);
        self.sum += close;
        self.sum_sq += close * close;
        if self.ring.len() > Self::N
            && let Some(old) = self.ring.pop_front()
        {
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        if self.ring.len() < Self::N {
            return Averages::default();
        }
        let n = Decimal::from(20);
        let sma = self.sum / n;
        let alpha = Decimal::TWO / Decimal::from(21);
        let ema = match self.ema {
            None => sma,
            Some(prev) => prev + alpha * (close - prev),
        };
        self.ema = Some(ema);
        // Population variance; floats only for the square root, as DESIGN.md allows for σ.
        let variance = (self.sum_sq / n - sma * sma).max(Decimal::ZERO);
        let sigma = variance
            .to_f64()
            .map(f64::sqrt)
            .and_then(Decimal::from_f64_retain)
            .unwrap_or(Decimal::ZERO);
        let band = (sigma * Decimal::TWO).round_dp(8);
        let sma = sma.round_dp(8);
        Averages {
            sma: Some(sma),
            ema: Some(ema.round_dp(8)),
            bands: Some((sma, sma + band, sma - band)),
        }
    }
}

/// One period's candles and indicators.
#[derive(Debug, Clone)]
pub struct CandleSeries {
    period: Period,
    current: Option<Candle>,
    history: VecDeque<(Candle, Indicators)>,
    closes: Closes,
    rsi7: Rsi,
    rsi14: Rsi,
}

impl CandleSeries {
    /// An empty series.
    pub fn new(period: Period) -> Self {
        Self {
            period,
            current: None,
            history: VecDeque::new(),
            closes: Closes::default(),
            rsi7: Rsi::new(7),
            rsi14: Rsi::new(14),
        }
    }

    /// The period.
    pub fn period(&self) -> Period {
        self.period
    }

    /// The candle being built, if any.
    pub fn current(&self) -> Option<&Candle> {
        self.current.as_ref()
    }

    /// Closed candles with their indicators, oldest first.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &(Candle, Indicators)> {
        self.history.iter()
    }

    /// The latest closed candle's indicators.
    pub fn latest(&self) -> Option<&Indicators> {
        self.history.back().map(|(_, i)| i)
    }

    fn close(&mut self, candle: Candle) {
        let Averages {
            sma: sma20,
            ema: ema20,
            bands,
        } = self.closes.push(candle.close);
        let ind = Indicators {
            sma20,
            ema20,
            rsi7: self.rsi7.push(candle.close),
            rsi14: self.rsi14.push(candle.close),
            bb_mid: bands.map(|b| b.0),
            bb_up: bands.map(|b| b.1),
            bb_low: bands.map(|b| b.2),
            vwap: candle.vwap().map(|v| v.round_dp(8)),
        };
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((candle, ind));
    }

    /// Folds one trade in.
    pub fn on_trade(&mut self, time: i64, price: Decimal, size: Decimal) {
        let len = self.period.nanos();
        let start = time - time.rem_euclid(len);
        match self.current {
            Some(mut c) if c.start == start => {
                c.add(price, size);
                self.current = Some(c);
            }
            Some(c) if start > c.start => {
                self.close(c);
                let mut gap = c.start + len;
                while gap < start {
                    // Empty buckets carry the last close forward.
                    self.close(Candle::new(gap, c.close));
                    gap += len;
                }
                let mut next = Candle::new(start, price);
                next.add(price, size);
                self.current = Some(next);
            }
            Some(mut c) => {
                // Late trade (time before the current bucket): fold into the current candle.
                c.add(price, size);
                self.current = Some(c);
            }
            None => {
                let mut next = Candle::new(start, price);
                next.add(price, size);
                self.current = Some(next);
            }
        }
    }
}

/// Statistics of one rolling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Lowest price.
    pub low: Decimal,
    /// Highest price.
    pub high: Decimal,
    /// Base volume.
    pub volume: Decimal,
    /// High − low.
    pub range: Decimal,
    /// Percent change from the window's first to last price.
    pub change_pct: Decimal,
    /// Volume-weighted average price.
    pub vwap: Decimal,
    /// Number of trades.
    pub trades: u64,
}

/// A rolling window over 60 fixed buckets.
#[derive(Debug, Clone)]
pub struct RollingWindow {
    window: Window,
    bucket: i64,
    buckets: VecDeque<Candle>,
}

impl RollingWindow {
    /// An empty window.
    pub fn new(window: Window) -> Self {
        Self {
            window,
            bucket: window.nanos() / 60,
            buckets: VecDeque::with_capacity(62),
        }
    }

    /// Folds one trade in.
    pub fn on_trade(&mut self, time: i64, price: Decimal, size: Decimal) {
        let start = time - time.rem_euclid(self.bucket);
        match self.buckets.back_mut() {
            Some(b) if b.start >= start => b.add(price, size),
            _ => {
                let mut b = Candle::new(start, price);
                b.add(price, size);
                self.buckets.push_back(b);
            }
        }
        self.evict(time);
    }

    fn evict(&mut self, now: i64) {
        let edge = now - self.window.nanos();
        while self
            .buckets
            .front()
            .is_some_and(|b| b.start + self.bucket <= edge)
        {
            self.buckets.pop_front();
        }
    }

    /// Statistics as of `now`; `None` when no trade is in the window.
    pub fn stats(&self, now: i64) -> Option<WindowStats> {
        let edge = now - self.window.nanos();
        let mut live = self.buckets.iter().filter(|b| b.start + self.bucket > edge);
        let first = *live.next()?;
        let mut acc = first;
        for b in live {
            acc.high = acc.high.max(b.high);
            acc.low = acc.low.min(b.low);
            acc.close = b.close;
            acc.volume += b.volume;
            acc.quote_volume += b.quote_volume;
            acc.trades += b.trades;
        }
        Some(WindowStats {
            low: acc.low,
            high: acc.high,
            volume: acc.volume,
            range: acc.high - acc.low,
            change_pct: pct(first.open, acc.close),
            vwap: acc.vwap().map_or(acc.close, |v| v.round_dp(8)),
            trades: acc.trades,
        })
    }
}

/// Everything the analyst knows about one product.
#[derive(Debug, Clone)]
pub struct Analyst {
    series: Vec<CandleSeries>,
    windows: Vec<RollingWindow>,
    last: Option<Trade>,
}

impl Default for Analyst {
    fn default() -> Self {
        Self::new()
    }
}

impl Analyst {
    /// An analyst with no history.
    pub fn new() -> Self {
        Self {
            series: Period::ALL.iter().map(|p| CandleSeries::new(*p)).collect(),
            windows: Window::ALL.iter().map(|w| RollingWindow::new(*w)).collect(),
            last: None,
        }
    }

    /// Folds a trade into every candle period and window. Returns false for
    /// a duplicate (trade id not above the last seen).
    pub fn on_trade(&mut self, trade: &Trade) -> bool {
        let time = match self.last {
            Some(last) if trade.trade_id <= last.trade_id => return false,
            Some(last) => trade.time.max(last.time),
            None => trade.time,
        };
        let (price, size) = (trade.price.get(), trade.size.get());
        for s in &mut self.series {
            s.on_trade(time, price, size);
        }
        for w in &mut self.windows {
            w.on_trade(time, price, size);
        }
        self.last = Some(Trade { time, ..*trade });
        true
    }

    /// The last trade.
    pub fn last(&self) -> Option<&Trade> {
        self.last.as_ref()
    }

    /// One period's series.
    pub fn series(&self, period: Period) -> &CandleSeries {
        let i = Period::ALL.iter().position(|p| *p == period).unwrap_or(0);
        &self.series[i]
    }

    /// Every window's statistics as of `now` (exchange time), shortest first.
    pub fn stats(&self, now: i64) -> Vec<(Window, Option<WindowStats>)> {
        self.windows
            .iter()
            .map(|w| (w.window, w.stats(now)))
            .collect()
    }

    /// Percent change over the last 24 hours as of `now`.
    pub fn change_24h_pct(&self, now: i64) -> Option<Decimal> {
        self.windows
            .iter()
            .find(|w| w.window == Window::H24)
            .and_then(|w| w.stats(now))
            .map(|s| s.change_pct)
    }
}

/// One product's market as rules read it: the analyst plus the best quotes.
#[derive(Debug, Clone, Copy)]
pub struct MarketView<'a> {
    /// Trades, candles, windows and indicators.
    pub analyst: &'a Analyst,
    /// Best bid, from the level-2 book.
    pub bid: Option<Decimal>,
    /// Best ask, from the level-2 book.
    pub ask: Option<Decimal>,
}

impl MarketView<'_> {
    /// The last trade price.
    pub fn price(&self) -> Option<Decimal> {
        self.analyst.last().map(|t| t.price.get())
    }
}

impl Values for MarketView<'_> {
    fn value(&self, var: &Var) -> Option<Decimal> {
        let a = self.analyst;
        let now = a.last()?.time;
        match var.source {
            Source::Ticker => match var.field {
                "price" => self.price(),
                "bid" => self.bid,
                "ask" => self.ask,
                "spread" => Some(self.ask? - self.bid?),
                "change_24h" => a.change_24h_pct(now),
                _ => None,
            },
            Source::Candle(p) => {
                let (c, i) = a.series(p).history().next_back()?;
                match var.field {
                    "open" => Some(c.open),
                    "high" => Some(c.high),
                    "low" => Some(c.low),
                    "close" => Some(c.close),
                    "volume" => Some(c.volume),
                    "change" => Some(c.change_pct()),
                    "sma20" => i.sma20,
                    "ema20" => i.ema20,
                    "rsi7" => i.rsi7,
                    "rsi14" => i.rsi14,
                    "bb_mid" => i.bb_mid,
                    "bb_up" => i.bb_up,
                    "bb_low" => i.bb_low,
                    "vwap" => i.vwap,
                    _ => None,
                }
            }
            Source::Window(w) => {
                let s = a.windows.iter().find(|r| r.window == w)?.stats(now)?;
                match var.field {
                    "low" => Some(s.low),
                    "high" => Some(s.high),
                    "volume" => Some(s.volume),
                    "range" => Some(s.range),
                    "change" => Some(s.change_pct),
                    "vwap" => Some(s.vwap),
                    "trades" => Some(Decimal::from(s.trades)),
                    _ => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    const MIN: i64 = 60_000_000_000;

    fn trade(id: u64, time: i64, price: Decimal, size: Decimal) -> Trade {
        Trade {
            time,
            trade_id: id,
            price: Price::new(price).unwrap(),
            size: Size::new(size).unwrap(),
        }
    }

    #[test]
    fn candles_aggregate_and_carry_empty_buckets_forward() {
        let mut a = Analyst::new();
        a.on_trade(&trade(1, 10 * 1_000_000_000, dec!(100), dec!(1)));
        a.on_trade(&trade(2, 20 * 1_000_000_000, dec!(110), dec!(2)));
        a.on_trade(&trade(3, 50 * 1_000_000_000, dec!(90), dec!(1)));
        a.on_trade(&trade(4, 3 * MIN + 1, dec!(95), dec!(1)));
        let m1: Vec<_> = a.series(Period::M1).history().map(|(c, _)| *c).collect();
        assert_eq!(
            m1.len(),
            3,
            "minute 0 closed, minutes 1 and 2 carried forward"
        );
        let c = m1[0];
        assert_eq!(
            (c.open, c.high, c.low, c.close, c.volume, c.trades),
            (dec!(100), dec!(110), dec!(90), dec!(90), dec!(4), 3)
        );
        assert_eq!(c.change_pct(), dec!(-10));
        assert_eq!(c.vwap(), Some(dec!(102.5)));
        for empty in &m1[1..] {
            assert_eq!(
                (empty.open, empty.close, empty.volume, empty.trades),
                (dec!(90), dec!(90), dec!(0), 0)
            );
        }
        assert_eq!(a.series(Period::M1).current().unwrap().start, 3 * MIN);
        assert!(a.series(Period::M5).history().next().is_none());
    }

    #[test]
    fn duplicates_are_ignored_and_time_never_runs_back() {
        let mut a = Analyst::new();
        assert!(a.on_trade(&trade(5, MIN, dec!(1), dec!(1))));
        assert!(!a.on_trade(&trade(5, MIN, dec!(1), dec!(1))));
        assert!(!a.on_trade(&trade(4, MIN, dec!(1), dec!(1))));
        assert!(a.on_trade(&trade(6, 0, dec!(2), dec!(1))));
        assert_eq!(a.last().unwrap().time, MIN);
        assert_eq!(a.series(Period::M1).current().unwrap().volume, dec!(2));
    }

    #[test]
    fn indicators_match_hand_checked_values() {
        let mut s = CandleSeries::new(Period::M1);
        for i in 0..=21i64 {
            s.on_trade(i * MIN, Decimal::from(i + 1), dec!(1));
        }
        // Closed candles have closes 1..=21.
        let (_, ind) = s.history().last().unwrap();
        assert_eq!(ind.sma20, Some(dec!(11.5)), "mean of 2..=21");
        assert_eq!(ind.rsi14, Some(dec!(100)), "only gains");
        assert_eq!(ind.rsi7, Some(dec!(100)));
        // σ of 20 consecutive integers is sqrt((20²−1)/12) = 5.766281...
        let band = ind.bb_up.unwrap() - ind.bb_mid.unwrap();
        assert!((band - dec!(11.53256259)).abs() < dec!(0.0000001), "{band}");
        // EMA seeded with SMA(1..=20) = 10.5, then one step towards 21.
        assert_eq!(
            ind.ema20,
            Some((dec!(10.5) + dec!(2) / dec!(21) * (dec!(21) - dec!(10.5))).round_dp(8))
        );
        let (_, early) = s.history().nth(5).unwrap();
        assert_eq!(
            (early.sma20, early.rsi14),
            (None, None),
            "not enough history yet"
        );
    }

    #[test]
    fn rolling_windows_cover_the_recent_past_only() {
        let mut w = RollingWindow::new(Window::M5);
        w.on_trade(0, dec!(100), dec!(1));
        w.on_trade(2 * MIN, dec!(120), dec!(1));
        w.on_trade(4 * MIN, dec!(110), dec!(2));
        let s = w.stats(4 * MIN).unwrap();
        assert_eq!(
            (s.low, s.high, s.volume, s.range, s.trades),
            (dec!(100), dec!(120), dec!(4), dec!(20), 3)
        );
        assert_eq!(s.change_pct, dec!(10));
        assert_eq!(s.vwap, dec!(110));
        let s = w.stats(6 * MIN).unwrap();
        assert_eq!(
            (s.low, s.high, s.trades),
            (dec!(110), dec!(120), 2),
            "the trade at 0 min has left the window"
        );
        let s = w.stats(8 * MIN).unwrap();
        assert_eq!(
            (s.low, s.high, s.trades),
            (dec!(110), dec!(110), 1),
            "only the trade at 4 min is left"
        );
        assert!(w.stats(10 * MIN).is_none());
    }

    #[test]
    fn memory_is_bounded_however_long_it_runs() {
        let mut a = Analyst::new();
        for i in 0..200_000u64 {
            let t = i64::try_from(i).unwrap() * 7_000_000_000;
            a.on_trade(&trade(i + 1, t, Decimal::from(100 + i % 7), dec!(0.1)));
        }
        assert_eq!(a.series(Period::M1).history().count(), HISTORY);
        assert!(a.windows.iter().all(|w| w.buckets.len() <= 61));
    }

    #[test]
    fn rules_read_the_market_view() {
        use crate::rule::{Rule, Syntax};
        let mut a = Analyst::new();
        // Three closed 1-minute candles: 100 → 110 → 121.
        for (i, price) in [dec!(100), dec!(110), dec!(121), dec!(121)]
            .into_iter()
            .enumerate()
        {
            let i = i64::try_from(i).unwrap();
            a.on_trade(&trade(
                u64::try_from(i).unwrap() + 1,
                i * MIN,
                price,
                dec!(1),
            ));
        }
        let view = MarketView {
            analyst: &a,
            bid: Some(dec!(120.5)),
            ask: Some(dec!(121.5)),
        };
        let read = |name: &str| view.value(&Var::parse(name).unwrap());
        assert_eq!(read("ticker.price"), Some(dec!(121)));
        assert_eq!(read("ticker.spread"), Some(dec!(1.0)));
        assert_eq!(read("p60.close"), Some(dec!(121)), "the last closed candle");
        assert_eq!(read("p60.change"), Some(dec!(0)));
        assert_eq!(read("p60.rsi14"), None, "not enough history yet");
        assert_eq!(read("w5m.trades"), Some(dec!(4)));
        assert_eq!(read("w5m.low"), Some(dec!(100)));
        let r = Rule::parse("w5m.high - w5m.low >= 21 and p60.rsi14 > 0", Syntax::Infix).unwrap();
        assert_eq!(r.eval(&view), None);
        let empty = Analyst::new();
        let nothing = MarketView {
            analyst: &empty,
            bid: None,
            ask: None,
        };
        assert!(Var::all().iter().all(|v| nothing.value(v).is_none()));
    }
}
