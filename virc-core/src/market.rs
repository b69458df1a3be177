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
//!   A close updates the running state only; each output (divisions,
//!   rounding to 8 places, RSI to 4) is worked out when it is read. σ is
//!   taken in `f64`, as DESIGN.md allows for indicator outputs.
//! - **Rolling windows** keep 60 buckets of `window / 60` each, so memory is
//!   fixed however many trades arrive; a window covers the last `window`
//!   to within one bucket at its old edge.
//! - **Exact integers inside**: prices and sizes are counted in integer
//!   units at the finest scale seen so far (up to [`MAX_SCALE`] places;
//!   beyond that, or where a finer scale would not fit an `i64` count, they
//!   are rounded), so sums are exact and a trade costs a few integer
//!   operations. Trades are summed per second of exchange time, seconds
//!   into 5 s, 15 s, 30 s and 1 minute buckets, and each finished bucket
//!   goes once to the windows and candles built from it; figures are
//!   `Decimal`s again wherever they leave the analyst.
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
    /// Percent change from open to close.
    pub fn change_pct(&self) -> Decimal {
        pct(self.open, self.close)
    }

    /// Volume-weighted average price; `None` for an empty candle.
    pub fn vwap(&self) -> Option<Decimal> {
        if self.volume.is_zero() {
            return None;
        }
        self.quote_volume.checked_div(self.volume)
    }
}

fn pct(from: Decimal, to: Decimal) -> Decimal {
    if from.is_zero() {
        return Decimal::ZERO;
    }
    (to - from)
        .checked_div(from)
        .and_then(|r| r.checked_mul(Decimal::ONE_HUNDRED))
        .map_or(Decimal::ZERO, |r| r.round_dp(4))
}

/// Most decimal places the analyst keeps for a price or a size. Coinbase's
/// increments stop at 8; digits beyond this are rounded off.
pub const MAX_SCALE: u32 = 18;

/// Nanoseconds in the analyst's finest bucket, one second of exchange time.
const SECOND: i64 = 1_000_000_000;

/// Nanoseconds in a minute: every candle period and the buckets of the
/// windows from 1 hour up are whole minutes.
const MINUTE: i64 = 60 * SECOND;

/// The analyst's aggregation levels above the second, each a multiple of
/// the one before: the buckets of the 5, 15 and 30 minute windows, and the
/// minute. A finished second is merged into the 5 s level, a finished 5 s
/// bucket into the 15 s level, and so on, so a second costs two merges
/// however many periods and windows there are.
const LEVELS: [i64; 4] = [5 * SECOND, 15 * SECOND, 30 * SECOND, MINUTE];

/// The level a window takes its buckets from: 0 for seconds, `k + 1` for
/// [`LEVELS`]`[k]`, and the minute for every bucket of whole minutes.
fn feed_of(bucket: i64) -> usize {
    match LEVELS.iter().position(|l| *l == bucket) {
        Some(k) => k + 1,
        None if bucket < MINUTE => 0,
        None => LEVELS.len(),
    }
}

/// The integer scales (decimal places) prices and sizes are counted in.
///
/// Every live aggregate counts in integer units at these scales, so a trade
/// costs a few integer operations instead of `Decimal` arithmetic; values
/// become `Decimal`s again only when a candle closes or someone reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scale {
    price: u32,
    size: u32,
}

impl Scale {
    fn price(self, units: i64) -> Decimal {
        Decimal::new(units, self.price)
    }

    fn size(self, units: i128) -> Decimal {
        decimal(units, self.size)
    }

    fn quote(self, units: i128) -> Decimal {
        decimal(units, self.price + self.size)
    }
}

/// `units × 10^-scale` as a `Decimal`, dropping (rounded) low digits when it
/// has more than a `Decimal` holds. Only quote sums at combined scales can
/// need that, and only past 28 significant digits.
fn decimal(mut units: i128, mut scale: u32) -> Decimal {
    loop {
        if scale <= 28
            && let Ok(d) = Decimal::try_from_i128_with_scale(units, scale)
        {
            return d;
        }
        if scale == 0 {
            return if units < 0 {
                Decimal::MIN
            } else {
                Decimal::MAX
            };
        }
        let rem = units % 10;
        units = units / 10 + i128::from(rem >= 5) - i128::from(rem <= -5);
        scale -= 1;
    }
}

/// Integer powers of ten that fit an `i64`, for rescaling units.
fn pow10(exp: u32) -> Option<i64> {
    10i64.checked_pow(exp)
}

/// An OHLCV aggregate in integer units: the live candle of a period, one
/// bucket of a rolling window, or the pending second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Agg {
    start: i64,
    open: i64,
    high: i64,
    low: i64,
    close: i64,
    volume: i128,
    quote: i128,
    trades: u64,
}

impl Agg {
    fn first(start: i64, price: i64, size: i64) -> Self {
        Self {
            start,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: i128::from(size),
            quote: i128::from(price) * i128::from(size),
            trades: 1,
        }
    }

    #[inline]
    fn add(&mut self, price: i64, size: i64) {
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.close = price;
        // Sums saturate instead of wrapping: 1.7 × 10^38 units is beyond any
        // market, and a wrong-but-huge figure beats a panic on a bad feed.
        self.volume = self.volume.saturating_add(i128::from(size));
        self.quote = self
            .quote
            .saturating_add(i128::from(price) * i128::from(size));
        self.trades += 1;
    }

    fn merge(&mut self, o: &Agg) {
        self.high = self.high.max(o.high);
        self.low = self.low.min(o.low);
        self.close = o.close;
        self.volume = self.volume.saturating_add(o.volume);
        self.quote = self.quote.saturating_add(o.quote);
        self.trades += o.trades;
    }

    /// This aggregate counted at scales `by_price` and `by_size` digits
    /// finer; `None` if a value would no longer fit.
    fn rescaled(&self, by_price: u32, by_size: u32) -> Option<Self> {
        let p = pow10(by_price)?;
        let s = i128::from(pow10(by_size)?);
        let q = i128::from(p).checked_mul(s)?;
        Some(Self {
            start: self.start,
            open: self.open.checked_mul(p)?,
            high: self.high.checked_mul(p)?,
            low: self.low.checked_mul(p)?,
            close: self.close.checked_mul(p)?,
            volume: self.volume.checked_mul(s)?,
            quote: self.quote.checked_mul(q)?,
            trades: self.trades,
        })
    }

    fn candle(&self, sc: Scale) -> Candle {
        Candle {
            start: self.start,
            open: sc.price(self.open),
            high: sc.price(self.high),
            low: sc.price(self.low),
            close: sc.price(self.close),
            volume: sc.size(self.volume),
            quote_volume: sc.quote(self.quote),
            trades: self.trades,
        }
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

    /// Folds a close in; the averages (gain, loss) once there are enough.
    fn push(&mut self, close: Decimal) -> Option<(Decimal, Decimal)> {
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
        Some((self.gain, self.loss))
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
    // 100 − 100 / (1 + G/L) is 100·G / (G + L): one division, not two.
    (Decimal::ONE_HUNDRED * gain / (gain + loss)).round_dp(4)
}

/// The indicator state as of one closed candle, from which its
/// [`Indicators`] are worked out when someone reads them: a close only
/// updates running sums, and the divisions and roundings of the outputs
/// are paid per read (a view or a rule), not per candle of a replay.
#[derive(Debug, Clone, Copy, Default)]
struct Raw {
    /// Σ of the last 20 closes, once there are 20.
    sum20: Option<Decimal>,
    ema20: Option<Decimal>,
    /// Population σ of the last 20 closes.
    sigma: Option<f64>,
    /// Wilder averages (gain, loss).
    rsi7: Option<(Decimal, Decimal)>,
    rsi14: Option<(Decimal, Decimal)>,
}

impl Raw {
    fn indicators(&self, candle: &Candle) -> Indicators {
        let sma = self.sum20.map(|s| (s / Decimal::from(20)).round_dp(8));
        let band = self
            .sigma
            .and_then(|s| Decimal::from_f64_retain(2.0 * s))
            .map(|b| b.round_dp(8));
        let bands = sma.zip(band).map(|(m, b)| (m, m + b, m - b));
        Indicators {
            sma20: sma,
            ema20: self.ema20.map(|e| e.round_dp(8)),
            rsi7: self.rsi7.map(|(g, l)| rsi_value(g, l)),
            rsi14: self.rsi14.map(|(g, l)| rsi_value(g, l)),
            bb_mid: bands.map(|b| b.0),
            bb_up: bands.map(|b| b.1),
            bb_low: bands.map(|b| b.2),
            vwap: candle.vwap().map(|v| v.round_dp(8)),
        }
    }
}

/// SMA, EMA and Bollinger over the last 20 closes, updated in O(1).
///
/// σ is taken in `f64` over the 20 kept closes (DESIGN.md: floats only in
/// indicator outputs such as σ): a running Σx² in `Decimal` can overflow or
/// cancel, and 20 `Decimal` squares at every close cost a microsecond.
#[derive(Debug, Clone, Default)]
struct Closes {
    ring: VecDeque<(Decimal, f64)>,
    sum: Decimal,
    ema: Option<Decimal>,
}

impl Closes {
    const N: usize = 20;

    /// Folds a close in; (Σ, EMA, σ) of the last 20 once there are 20.
    fn push(&mut self, close: Decimal) -> Option<(Decimal, Decimal, f64)> {
        self.ring
            .push_back((close, close.to_f64().unwrap_or(f64::NAN)));
        self.sum += close;
        if self.ring.len() > Self::N
            && let Some((old, _)) = self.ring.pop_front()
        {
            self.sum -= old;
        }
        if self.ring.len() < Self::N {
            return None;
        }
        let ema = match self.ema {
            None => self.sum / Decimal::from(20),
            Some(prev) => prev + ema_alpha() * (close - prev),
        };
        self.ema = Some(ema);
        #[expect(clippy::cast_precision_loss, reason = "N is 20")]
        let count = Self::N as f64;
        let mean = self.ring.iter().map(|(_, x)| x).sum::<f64>() / count;
        let variance = self
            .ring
            .iter()
            .map(|(_, x)| (x - mean) * (x - mean))
            .sum::<f64>()
            / count;
        Some((self.sum, ema, variance.sqrt()))
    }
}

/// EMA-20's smoothing factor, 2 / 21, computed once.
fn ema_alpha() -> Decimal {
    static ALPHA: std::sync::OnceLock<Decimal> = std::sync::OnceLock::new();
    *ALPHA.get_or_init(|| Decimal::TWO / Decimal::from(21))
}

/// One period's candles and indicators.
#[derive(Debug, Clone)]
pub struct CandleSeries {
    period: Period,
    /// The live candle, in units at the analyst's scale.
    current: Option<Agg>,
    history: VecDeque<(Candle, Raw)>,
    closes: Closes,
    rsi7: Rsi,
    rsi14: Rsi,
}

impl CandleSeries {
    fn new(period: Period) -> Self {
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

    /// Closed candles with their indicators, oldest first.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = (Candle, Indicators)> + '_ {
        self.history.iter().map(|(c, r)| (*c, r.indicators(c)))
    }

    /// The latest closed candle's indicators.
    pub fn latest(&self) -> Option<Indicators> {
        self.history.back().map(|(c, r)| r.indicators(c))
    }

    fn close(&mut self, candle: Candle) {
        let averages = self.closes.push(candle.close);
        let raw = Raw {
            sum20: averages.map(|a| a.0),
            ema20: averages.map(|a| a.1),
            sigma: averages.map(|a| a.2),
            rsi7: self.rsi7.push(candle.close),
            rsi14: self.rsi14.push(candle.close),
        };
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((candle, raw));
    }

    /// Closes the live candle if `time` lies past it, with an empty candle
    /// carrying the last close forward for each bucket without a trade.
    fn advance(&mut self, time: i64, sc: Scale) {
        let len = self.period.nanos();
        let Some(c) = self.current else { return };
        if time < c.start + len {
            return;
        }
        self.current = None;
        self.close(c.candle(sc));
        let start = time - time.rem_euclid(len);
        let close = sc.price(c.close);
        let mut gap = c.start + len;
        while gap < start {
            self.close(Candle {
                start: gap,
                open: close,
                high: close,
                low: close,
                close,
                volume: Decimal::ZERO,
                quote_volume: Decimal::ZERO,
                trades: 0,
            });
            gap += len;
        }
    }

    /// Folds a finished minute into the live candle.
    fn fold(&mut self, minute: &Agg, sc: Scale) {
        self.advance(minute.start, sc);
        match &mut self.current {
            Some(c) => c.merge(minute),
            None => {
                let len = self.period.nanos();
                self.current = Some(Agg {
                    start: minute.start - minute.start.rem_euclid(len),
                    ..*minute
                });
            }
        }
    }

    /// The live candle with `pending` (what is summed but not yet folded)
    /// included.
    fn live(&self, pending: Option<&Agg>) -> Option<Agg> {
        let len = self.period.nanos();
        match (self.current, pending) {
            (Some(mut c), Some(p)) if p.start < c.start + len => {
                c.merge(p);
                Some(c)
            }
            (_, Some(p)) => Some(Agg {
                start: p.start - p.start.rem_euclid(len),
                ..*p
            }),
            (c, None) => c,
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
struct RollingWindow {
    window: Window,
    /// The window's length, ns.
    span: i64,
    bucket: i64,
    /// The level it is fed from (see [`feed_of`]).
    feed: usize,
    buckets: VecDeque<Agg>,
}

impl RollingWindow {
    fn new(window: Window) -> Self {
        let bucket = window.nanos() / 60;
        Self {
            window,
            span: window.nanos(),
            bucket,
            feed: feed_of(bucket),
            buckets: VecDeque::with_capacity(62),
        }
    }

    /// Folds a finished second (or bucket of its level) in and drops
    /// buckets that left the window.
    fn fold(&mut self, part: &Agg) {
        // Parts arrive in order, so the back bucket is the only candidate;
        // comparing with its end saves a division per fold.
        match self.buckets.back_mut() {
            Some(b) if part.start < b.start + self.bucket => b.merge(part),
            _ => {
                let start = part.start - part.start.rem_euclid(self.bucket);
                self.buckets.push_back(Agg { start, ..*part });
            }
        }
        let edge = part.start - self.span;
        while self
            .buckets
            .front()
            .is_some_and(|b| b.start + self.bucket <= edge)
        {
            self.buckets.pop_front();
        }
    }

    /// Statistics as of `now`, with `pending` (what is summed but not yet
    /// folded) included; `None` when no trade is in the window.
    fn stats(&self, now: i64, pending: Option<&Agg>, sc: Scale) -> Option<WindowStats> {
        let edge = now - self.span;
        let mut live = self
            .buckets
            .iter()
            .chain(pending)
            .filter(|b| b.start - b.start.rem_euclid(self.bucket) + self.bucket > edge);
        let first = *live.next()?;
        let mut acc = first;
        for b in live {
            acc.merge(b);
        }
        let c = acc.candle(sc);
        Some(WindowStats {
            low: c.low,
            high: c.high,
            volume: c.volume,
            range: c.high - c.low,
            change_pct: pct(c.open, c.close),
            vwap: c.vwap().map_or(c.close, |v| v.round_dp(8)),
            trades: c.trades,
        })
    }
}

/// Everything the analyst knows about one product.
///
/// Trades are summed into the pending second in integer units. A finished
/// second goes to the 1-minute window and up the [`LEVELS`] (5 s, 15 s,
/// 30 s, minute); each finished bucket of a level goes to the windows fed
/// from it and into the next level, and each finished minute to every
/// candle period and the windows of whole-minute buckets. That keeps a
/// trade's cost to a handful of integer operations whatever the number of
/// periods and windows, and gives exactly the figures a per-trade fold
/// would (aggregation is associative).
#[derive(Debug, Clone)]
pub struct Analyst {
    series: Vec<CandleSeries>,
    windows: Vec<RollingWindow>,
    pending: Option<Agg>,
    /// The unfinished bucket of each of [`LEVELS`]; a higher level holds
    /// older trades than a lower one.
    levels: [Option<Agg>; LEVELS.len()],
    /// The range of `windows` fed from each level (they are in feed order).
    fed: [std::ops::Range<usize>; LEVELS.len() + 1],
    /// Start of the next minute: no candle can close before it.
    next_minute: i64,
    scale: Scale,
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
        let windows: Vec<RollingWindow> =
            Window::ALL.iter().map(|w| RollingWindow::new(*w)).collect();
        let fed = std::array::from_fn(|feed| {
            let from = windows.iter().take_while(|w| w.feed < feed).count();
            from..from
                + windows[from..]
                    .iter()
                    .take_while(|w| w.feed == feed)
                    .count()
        });
        Self {
            series: Period::ALL.iter().map(|p| CandleSeries::new(*p)).collect(),
            windows,
            pending: None,
            levels: [None; LEVELS.len()],
            fed,
            next_minute: i64::MIN,
            scale: Scale { price: 0, size: 0 },
            last: None,
        }
    }

    /// Folds a trade into every candle period and window. Returns false for
    /// a duplicate (trade id not above the last seen), and for a trade whose
    /// price or size does not fit 9.2 × 10^18 units of the analyst's scale.
    pub fn on_trade(&mut self, trade: &Trade) -> bool {
        let time = match self.last {
            Some(last) if trade.trade_id <= last.trade_id => return false,
            Some(last) => trade.time.max(last.time),
            None => trade.time,
        };
        let (price, size) = (trade.price.get(), trade.size.get());
        let units = match (
            units_at(price, self.scale.price),
            units_at(size, self.scale.size),
        ) {
            (Some(p), Some(s)) => (p, s),
            _ => match self.units_slow(price, size) {
                Some(u) => u,
                None => return false,
            },
        };
        match &mut self.pending {
            Some(p) if time < p.start + SECOND => p.add(units.0, units.1),
            _ => {
                self.flush(time);
                self.pending = Some(Agg::first(time - time.rem_euclid(SECOND), units.0, units.1));
            }
        }
        self.last = Some(Trade { time, ..*trade });
        true
    }

    /// Sends the pending second up the levels, finishes the buckets `time`
    /// lies past, and closes the candles it lies past.
    fn flush(&mut self, time: i64) {
        if let Some(p) = self.pending.take() {
            self.deliver(0, &p);
            self.offer(0, p);
        }
        // Lowest first: a finished bucket is offered to the next level.
        // Every unfinished bucket holds the last flush's time, so they nest:
        // once one is unfinished, so are all above it.
        for (k, len) in LEVELS.iter().enumerate() {
            match self.levels[k] {
                Some(a) if time >= a.start + len => {
                    self.levels[k] = None;
                    self.finish(k, a);
                }
                Some(_) => break,
                None => {}
            }
        }
        if time >= self.next_minute {
            let sc = self.scale;
            for s in &mut self.series {
                s.advance(time, sc);
            }
            self.next_minute = time - time.rem_euclid(MINUTE) + MINUTE;
        }
    }

    /// Merges `a` into level `k`'s bucket, finishing that bucket first if
    /// `a` lies past it.
    fn offer(&mut self, k: usize, a: Agg) {
        let len = LEVELS[k];
        if let Some(b) = &mut self.levels[k]
            && a.start < b.start + len
        {
            b.merge(&a);
            return;
        }
        if let Some(done) = self.levels[k].take() {
            // Older than `a`: it goes up first.
            self.finish(k, done);
        }
        self.levels[k] = Some(Agg {
            start: a.start - a.start.rem_euclid(len),
            ..a
        });
    }

    /// A finished bucket of level `k`: to the consumers fed from it and
    /// into the next level.
    fn finish(&mut self, k: usize, a: Agg) {
        self.deliver(k + 1, &a);
        if k + 1 < LEVELS.len() {
            self.offer(k + 1, a);
        }
    }

    /// A finished bucket to the windows fed from level `feed`, and a
    /// finished minute to every candle period.
    fn deliver(&mut self, feed: usize, a: &Agg) {
        let fed = self.fed[feed].clone();
        for w in &mut self.windows[fed] {
            w.fold(a);
        }
        if feed == LEVELS.len() {
            let sc = self.scale;
            for s in &mut self.series {
                s.fold(a, sc);
            }
        }
    }

    /// What is summed but not yet delivered to consumers fed from level
    /// `feed`: the unfinished buckets below it, oldest first, and the
    /// pending second.
    fn tail(&self, feed: usize) -> Option<Agg> {
        self.levels[..feed]
            .iter()
            .rev()
            .chain(std::iter::once(&self.pending))
            .flatten()
            .fold(None, |acc: Option<Agg>, a| match acc {
                Some(mut t) => {
                    t.merge(a);
                    Some(t)
                }
                None => Some(*a),
            })
    }

    /// A trade's units when it has more decimal places than the analyst
    /// counts in: the scale is raised (and every live aggregate rescaled) as
    /// far towards the trade's as fits, up to [`MAX_SCALE`]; digits beyond
    /// that are rounded off.
    fn units_slow(&mut self, price: Decimal, size: Decimal) -> Option<(i64, i64)> {
        // Trailing zeros past the limit are not precision; keep the scale the
        // exchange writes otherwise, so figures read back as it prints them.
        let trim = |d: Decimal| {
            if d.scale() > MAX_SCALE {
                d.normalize()
            } else {
                d
            }
        };
        let (price, size) = (trim(price), trim(size));
        self.raise(price, self.scale.price, |sc, p| Scale { price: p, ..sc });
        self.raise(size, self.scale.size, |sc, z| Scale { size: z, ..sc });
        let sc = self.scale;
        Some((
            units_at(price.round_dp(sc.price), sc.price)?,
            units_at(size.round_dp(sc.size), sc.size)?,
        ))
    }

    /// Raises one scale from `have` towards `value`'s places, as far as
    /// `value` and every live aggregate still fit; `with` sets that scale.
    fn raise(&mut self, value: Decimal, have: u32, with: impl Fn(Scale, u32) -> Scale) {
        let mut places = value.scale().min(MAX_SCALE);
        while places > have
            && !(units_at(value.round_dp(places), places).is_some()
                && self.rescale(with(self.scale, places)))
        {
            places -= 1;
        }
    }

    /// Moves every live aggregate to `want`; false (and nothing changed) if
    /// one would overflow.
    fn rescale(&mut self, want: Scale) -> bool {
        let (dp, ds) = (want.price - self.scale.price, want.size - self.scale.size);
        let fit = |a: &Option<Agg>| match a {
            Some(a) => a.rescaled(dp, ds).map(Some),
            None => Some(None),
        };
        let Some(pending) = fit(&self.pending) else {
            return false;
        };
        let Some(levels) = self.levels.iter().map(fit).collect::<Option<Vec<_>>>() else {
            return false;
        };
        let Some(current) = self
            .series
            .iter()
            .map(|s| fit(&s.current))
            .collect::<Option<Vec<_>>>()
        else {
            return false;
        };
        let Some(buckets) = self
            .windows
            .iter()
            .map(|w| {
                w.buckets
                    .iter()
                    .map(|b| b.rescaled(dp, ds))
                    .collect::<Option<VecDeque<_>>>()
            })
            .collect::<Option<Vec<_>>>()
        else {
            return false;
        };
        self.pending = pending;
        for (l, a) in self.levels.iter_mut().zip(levels) {
            *l = a;
        }
        for (s, c) in self.series.iter_mut().zip(current) {
            s.current = c;
        }
        for (w, b) in self.windows.iter_mut().zip(buckets) {
            w.buckets = b;
        }
        self.scale = want;
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

    /// The candle of `period` being built, if any.
    pub fn current(&self, period: Period) -> Option<Candle> {
        self.series(period)
            .live(self.tail(LEVELS.len()).as_ref())
            .map(|a| a.candle(self.scale))
    }

    /// One window's statistics as of `now` (exchange time).
    pub fn window(&self, window: Window, now: i64) -> Option<WindowStats> {
        let w = self.windows.iter().find(|w| w.window == window)?;
        w.stats(now, self.tail(w.feed).as_ref(), self.scale)
    }

    /// Every window's statistics as of `now` (exchange time), shortest first.
    pub fn stats(&self, now: i64) -> Vec<(Window, Option<WindowStats>)> {
        self.windows
            .iter()
            .map(|w| {
                (
                    w.window,
                    w.stats(now, self.tail(w.feed).as_ref(), self.scale),
                )
            })
            .collect()
    }

    /// Percent change over the last 24 hours as of `now`.
    pub fn change_24h_pct(&self, now: i64) -> Option<Decimal> {
        self.window(Window::H24, now).map(|s| s.change_pct)
    }
}

/// `value` in integer units at `scale` decimal places, if it has no more
/// places than that and fits an `i64`.
#[inline]
fn units_at(value: Decimal, scale: u32) -> Option<i64> {
    let have = value.scale();
    if have > scale {
        return None;
    }
    let m = i64::try_from(value.mantissa()).ok()?;
    if have == scale {
        Some(m)
    } else {
        m.checked_mul(pow10(scale - have)?)
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
                let s = a.window(w, now)?;
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
        let m1: Vec<_> = a.series(Period::M1).history().map(|(c, _)| c).collect();
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
        assert_eq!(a.current(Period::M1).unwrap().start, 3 * MIN);
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
        assert_eq!(a.current(Period::M1).unwrap().volume, dec!(2));
    }

    #[test]
    fn indicators_match_hand_checked_values() {
        let mut a = Analyst::new();
        for i in 0..=21i64 {
            let id = u64::try_from(i).unwrap() + 1;
            a.on_trade(&trade(id, i * MIN, Decimal::from(i + 1), dec!(1)));
        }
        let s = a.series(Period::M1);
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
        let mut a = Analyst::new();
        a.on_trade(&trade(1, 0, dec!(100), dec!(1)));
        a.on_trade(&trade(2, 2 * MIN, dec!(120), dec!(1)));
        a.on_trade(&trade(3, 4 * MIN, dec!(110), dec!(2)));
        let w = |now| a.window(Window::M5, now);
        let s = w(4 * MIN).unwrap();
        assert_eq!(
            (s.low, s.high, s.volume, s.range, s.trades),
            (dec!(100), dec!(120), dec!(4), dec!(20), 3)
        );
        assert_eq!(s.change_pct, dec!(10));
        assert_eq!(s.vwap, dec!(110));
        let s = w(6 * MIN).unwrap();
        assert_eq!(
            (s.low, s.high, s.trades),
            (dec!(110), dec!(120), 2),
            "the trade at 0 min has left the window"
        );
        let s = w(8 * MIN).unwrap();
        assert_eq!(
            (s.low, s.high, s.trades),
            (dec!(110), dec!(110), 1),
            "only the trade at 4 min is left"
        );
        assert!(w(10 * MIN).is_none());
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

    /// Buckets of `len` over `trades` folded one trade at a time in
    /// `Decimal`s: (start, open, high, low, close, volume, trades).
    type Naive = (i64, Decimal, Decimal, Decimal, Decimal, Decimal, u64);

    fn naive(trades: &[(i64, Decimal, Decimal)], len: i64) -> Vec<Naive> {
        let mut out: Vec<Naive> = Vec::new();
        for &(t, p, z) in trades {
            let start = t - t.rem_euclid(len);
            match out.last_mut() {
                Some(b) if b.0 == start => {
                    b.2 = b.2.max(p);
                    b.3 = b.3.min(p);
                    b.4 = p;
                    b.5 += z;
                    b.6 += 1;
                }
                _ => out.push((start, p, p, p, p, z, 1)),
            }
        }
        out
    }

    proptest::proptest! {
        /// Summing each second in integer units, at scales that rise as finer
        /// prices and sizes arrive, gives exactly what folding every trade
        /// into every candle and window in `Decimal`s would.
        #[test]
        fn prop_integer_seconds_equal_a_per_trade_decimal_fold(
            steps in proptest::collection::vec(
                (
                    // Mostly trades within seconds of each other, some after
                    // minutes of silence (empty candles and buckets).
                    proptest::prop_oneof![9 => 0i64..3_000_000_000, 1 => 0i64..400_000_000_000],
                    1i64..2_000_000,
                    0u32..6,
                    1i64..5_000_000,
                    0u32..9,
                ),
                1..300,
            ),
            late in 0i64..400_000_000_000,
        ) {
            let mut a = Analyst::new();
            let mut time = 0;
            let mut seen = Vec::new();
            for (i, (dt, pm, ps, sm, ss)) in steps.into_iter().enumerate() {
                time += dt;
                let (p, z) = (Decimal::new(pm, ps), Decimal::new(sm, ss));
                proptest::prop_assert!(a.on_trade(&trade(i as u64 + 1, time, p, z)));
                seen.push((time, p, z));
            }
            for period in [Period::M1, Period::M5, Period::M15, Period::H1] {
                let want = naive(&seen, period.nanos());
                let got: Vec<Naive> = a
                    .series(period)
                    .history()
                    .map(|(c, _)| c)
                    .filter(|c| c.trades > 0)
                    .chain(a.current(period))
                    .map(|c| (c.start, c.open, c.high, c.low, c.close, c.volume, c.trades))
                    .collect();
                proptest::prop_assert_eq!(got, want);
            }
            for w in Window::ALL {
                let now = time + late;
                let bucket = w.nanos() / 60;
                let inside: Vec<_> = seen
                    .iter()
                    .copied()
                    .filter(|(t, _, _)| t - t.rem_euclid(bucket) + bucket > now - w.nanos())
                    .collect();
                let got = a.window(w, now);
                if inside.is_empty() {
                    proptest::prop_assert_eq!(got, None);
                    continue;
                }
                let all = naive(&inside, i64::MAX);
                let (_, open, high, low, close, volume, n) = all[0];
                let quote: Decimal = inside.iter().map(|(_, p, z)| p * z).sum();
                let got = got.unwrap();
                proptest::prop_assert_eq!(
                    (got.low, got.high, got.volume, got.trades, got.change_pct),
                    (low, high, volume, n, pct(open, close))
                );
                proptest::prop_assert_eq!(got.vwap, (quote / volume).round_dp(8));
            }
        }
    }

    #[test]
    fn each_window_is_fed_whole_buckets_of_its_size() {
        let feeds: Vec<usize> = Window::ALL
            .iter()
            .map(|w| RollingWindow::new(*w).feed)
            .collect();
        assert_eq!(feeds, [0, 1, 2, 3, 4, 4, 4, 4]);
        let a = Analyst::new();
        assert_eq!(a.fed, [0..1, 1..2, 2..3, 3..4, 4..8]);
        for w in Window::ALL {
            let r = RollingWindow::new(w);
            let from = if r.feed == 0 {
                SECOND
            } else {
                LEVELS[r.feed - 1]
            };
            assert_eq!(r.bucket % from, 0, "{w:?}");
        }
        for p in Period::ALL {
            assert_eq!(p.nanos() % MINUTE, 0, "{p:?}");
        }
        assert!(LEVELS.windows(2).all(|l| l[1] % l[0] == 0));
    }

    #[test]
    fn absurd_trades_are_refused_and_extra_digits_rounded() {
        let mut a = Analyst::new();
        assert!(a.on_trade(&trade(1, 0, dec!(100.25), dec!(1))));
        // 79 228 162 514 264 337 593 543 950 335 has no i64 count of units.
        assert!(!a.on_trade(&trade(2, 1, Decimal::MAX, dec!(1))));
        assert!(!a.on_trade(&trade(3, 2, dec!(100.25), Decimal::MAX)));
        // 20 decimal places: 18 (MAX_SCALE) and 17 leave no i64 count of
        // units for a price of 100, so it is counted, rounded, at 16.
        let fine = Decimal::from_i128_with_scale(10_012_345_678_901_234_567_891, 20);
        assert!(a.on_trade(&trade(4, 3, fine, dec!(0.5))));
        let c = a.current(Period::M1).unwrap();
        assert_eq!(c.close, dec!(100.1234567890123457));
        assert_eq!(c.high, dec!(100.25));
        assert_eq!(
            a.window(Window::M1, 3).unwrap().low,
            dec!(100.1234567890123457)
        );
    }
}
