//! The trade recorder: every public trade per product in sled, keyed for
//! range scans by time, with gaps recorded as such, pruned by retention,
//! and read back to rebuild candles and windows at start, to export, and
//! to import.
//!
//! # Layout: one record per minute
//! sled keeps memory per key (hundreds of bytes, beyond its cache), so one
//! key per trade would grow the daemon without bound. Trades are stored as
//! *minute blocks* instead: tree `trade_blocks`, key `product \0 minute`,
//! value one line per trade, `time trade_id price size side`, sorted by
//! time then id (exact decimals as text, `b`/`s` the maker side). The
//! minute a live feed is in is written trade by trade to `trade_tail`
//! (key `product \0 time trade_id`), so a crash loses nothing; when the
//! feed moves to a later minute, the tail is folded into its block. Times
//! are 8 big-endian bytes with the sign bit flipped, so keys sort by time.
//! Gaps (trade ids missing between two recorded trades) are JSON records
//! in `trade_gaps`, keyed like the trade after the gap.
//!
//! # Duplicates and order
//! A trade already recorded (same product, time and id) is skipped, so a
//! feed that repeats itself, a replay started again, or an import of an
//! overlapping export records nothing twice. A trade whose id is at or
//! below the last recorded one is still stored (an import may fill a gap)
//! but opens no gap.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use virc_core::{
    market::Trade,
    money::{Price, Size},
    order::Side,
};

use crate::store::{Store, StoreError};

/// Trade ids missing between two recorded trades.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Product.
    pub product_id: String,
    /// Last trade id before the gap.
    pub after: u64,
    /// First trade id after the gap.
    pub before: u64,
    /// Exchange time of the trade before the gap (ns).
    pub from: i64,
    /// Exchange time of the trade after the gap (ns).
    pub to: i64,
}

impl Gap {
    /// How many trade ids are missing.
    pub fn missing(&self) -> u64 {
        self.before.saturating_sub(self.after + 1)
    }
}

/// A position in a chunked read of one product's trades.
#[derive(Debug, Clone)]
pub struct Cursor {
    product: String,
    /// Trades before this are not read.
    from: i64,
    /// The next minute to read.
    next: i64,
}

/// One recorded trade with its maker side.
pub type Recorded = (Trade, Side);

/// The recorded trades: reading, importing, pruning. Cheap to clone.
#[derive(Clone)]
pub struct TradeLog {
    blocks: sled::Tree,
    tail: sled::Tree,
    gaps: sled::Tree,
}

impl std::fmt::Debug for TradeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradeLog")
            .field("minutes", &self.blocks.len())
            .finish_non_exhaustive()
    }
}

const MINUTE: i64 = 60_000_000_000;

fn minute_of(time: i64) -> i64 {
    time.saturating_sub(time.rem_euclid(MINUTE))
}

fn time_bytes(t: i64) -> [u8; 8] {
    // Flipping the sign bit makes the big-endian bytes sort like the numbers.
    (t.cast_unsigned() ^ (1 << 63)).to_be_bytes()
}

fn time_of(b: &[u8]) -> Option<i64> {
    let raw: [u8; 8] = b.try_into().ok()?;
    Some((u64::from_be_bytes(raw) ^ (1 << 63)).cast_signed())
}

fn prefix(product: &str) -> Vec<u8> {
    let mut k = product.as_bytes().to_vec();
    k.push(0);
    k
}

fn key(product: &str, time: i64, trade_id: u64) -> Vec<u8> {
    let mut k = prefix(product);
    k.extend_from_slice(&time_bytes(time));
    k.extend_from_slice(&trade_id.to_be_bytes());
    k
}

fn block_key(product: &str, minute: i64) -> Vec<u8> {
    let mut k = prefix(product);
    k.extend_from_slice(&time_bytes(minute));
    k
}

/// The time in a block or tail key (the 8 bytes after the product).
fn key_time(product: &str, k: &[u8]) -> Option<i64> {
    let at = product.len() + 1;
    time_of(k.get(at..at + 8)?)
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        tree: "trade_blocks",
        detail,
    }
}

fn side_char(side: Side) -> char {
    match side {
        Side::Buy => 'b',
        Side::Sell => 's',
    }
}

fn parse_side(s: &str) -> Option<Side> {
    match s {
        "b" => Some(Side::Buy),
        "s" => Some(Side::Sell),
        _ => None,
    }
}

fn encode_tail(t: &Trade, side: Side) -> String {
    format!("{} {} {}", t.price, t.size, side_char(side))
}

fn decode_tail(k: &[u8], v: &[u8]) -> Result<Recorded, StoreError> {
    let bad = || corrupt(format!("undecodable trade under key {k:?}"));
    let n = k.len();
    if n < 17 {
        return Err(bad());
    }
    let time = time_of(&k[n - 16..n - 8]).ok_or_else(bad)?;
    let trade_id = u64::from_be_bytes(k[n - 8..].try_into().map_err(|_| bad())?);
    let text = std::str::from_utf8(v).map_err(|_| bad())?;
    let mut parts = text.split(' ');
    let (Some(p), Some(s), Some(side), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok((
        Trade {
            time,
            trade_id,
            price: Price::parse(p).map_err(|_| bad())?,
            size: Size::parse(s).map_err(|_| bad())?,
        },
        parse_side(side).ok_or_else(bad)?,
    ))
}

fn encode_block(trades: &[Recorded]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(trades.len() * 48);
    for (t, side) in trades {
        let _ = writeln!(
            out,
            "{} {} {} {} {}",
            t.time,
            t.trade_id,
            t.price,
            t.size,
            side_char(*side)
        );
    }
    out
}

fn decode_block(k: &[u8], v: &[u8]) -> Result<Vec<Recorded>, StoreError> {
    let bad = || corrupt(format!("undecodable block under key {k:?}"));
    let text = std::str::from_utf8(v).map_err(|_| bad())?;
    text.lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let (Some(time), Some(id), Some(p), Some(s), Some(side), None) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) else {
                return Err(bad());
            };
            Ok((
                Trade {
                    time: time.parse().map_err(|_| bad())?,
                    trade_id: id.parse().map_err(|_| bad())?,
                    price: Price::parse(p).map_err(|_| bad())?,
                    size: Size::parse(s).map_err(|_| bad())?,
                },
                parse_side(side).ok_or_else(bad)?,
            ))
        })
        .collect()
}

/// Sorted by (time, id), each trade once.
fn normalize(trades: &mut Vec<Recorded>) {
    trades.sort_by_key(|(t, _)| (t.time, t.trade_id));
    trades.dedup_by_key(|(t, _)| (t.time, t.trade_id));
}

impl TradeLog {
    /// The log in `store`.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            blocks: store.tree("trade_blocks")?,
            tail: store.tree("trade_tail")?,
            gaps: store.tree("trade_gaps")?,
        })
    }

    fn block(&self, product: &str, minute: i64) -> Result<Vec<Recorded>, StoreError> {
        let k = block_key(product, minute);
        match self.blocks.get(&k)? {
            Some(v) => decode_block(&k, &v),
            None => Ok(Vec::new()),
        }
    }

    fn tail_minute(&self, product: &str, minute: i64) -> Result<Vec<Recorded>, StoreError> {
        self.tail
            .range(key(product, minute, 0)..key(product, minute + MINUTE, 0))
            .map(|r| {
                let (k, v) = r?;
                decode_tail(&k, &v)
            })
            .collect()
    }

    /// Every trade of one minute, block and tail, sorted and once each.
    fn minute(&self, product: &str, minute: i64) -> Result<Vec<Recorded>, StoreError> {
        let mut all = self.block(product, minute)?;
        all.extend(self.tail_minute(product, minute)?);
        normalize(&mut all);
        Ok(all)
    }

    /// The first minute at or after `from` with trades, if any.
    fn next_minute(&self, product: &str, from: i64) -> Result<Option<i64>, StoreError> {
        let end = block_key(product, i64::MAX);
        let first = |tree: &sled::Tree| -> Result<Option<i64>, StoreError> {
            match tree.range(block_key(product, from)..end.clone()).next() {
                Some(r) => Ok(key_time(product, &r?.0).map(minute_of)),
                None => Ok(None),
            }
        };
        Ok(match (first(&self.blocks)?, first(&self.tail)?) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Merges `trades` (all of one minute) into that minute's block; returns
    /// how many were new.
    fn merge(&self, product: &str, minute: i64, trades: &[Recorded]) -> Result<usize, StoreError> {
        let mut all = self.block(product, minute)?;
        let before = all.len();
        all.extend_from_slice(trades);
        normalize(&mut all);
        let new = all.len() - before;
        if new > 0 {
            self.blocks
                .insert(block_key(product, minute), encode_block(&all).as_bytes())?;
        }
        Ok(new)
    }

    /// Writes one live trade to the tail; false when it was already recorded.
    fn insert_tail(&self, product: &str, t: &Trade, side: Side) -> Result<bool, StoreError> {
        let in_block = self
            .block(product, minute_of(t.time))?
            .iter()
            .any(|(b, _)| b.trade_id == t.trade_id && b.time == t.time);
        if in_block {
            return Ok(false);
        }
        let k = key(product, t.time, t.trade_id);
        Ok(self
            .tail
            .insert(k, encode_tail(t, side).as_bytes())?
            .is_none())
    }

    /// Folds the tail's minutes before `before` into their blocks.
    fn fold(&self, product: &str, before: i64) -> Result<(), StoreError> {
        let tail: Vec<(sled::IVec, Recorded)> = self
            .tail
            .range(prefix(product)..key(product, before, 0))
            .map(|r| {
                let (k, v) = r?;
                let rec = decode_tail(&k, &v)?;
                Ok((k, rec))
            })
            .collect::<Result<_, StoreError>>()?;
        let mut i = 0;
        while i < tail.len() {
            let minute = minute_of(tail[i].1.0.time);
            let j = tail[i..]
                .iter()
                .position(|(_, (t, _))| minute_of(t.time) != minute)
                .map_or(tail.len(), |n| i + n);
            let trades: Vec<Recorded> = tail[i..j].iter().map(|(_, r)| *r).collect();
            self.merge(product, minute, &trades)?;
            // Key by key, not a sled batch (see the store's docs): a crash
            // midway leaves tail records that the next merge finds stored.
            for (k, _) in &tail[i..j] {
                self.tail.remove(k)?;
            }
            i = j;
        }
        Ok(())
    }

    /// Stores one trade; false when it was already recorded.
    pub fn insert(&self, product: &str, t: &Trade, side: Side) -> Result<bool, StoreError> {
        Ok(self.merge(product, minute_of(t.time), &[(*t, side)])? == 1)
    }

    /// Records a gap.
    pub fn insert_gap(&self, gap: &Gap) -> Result<(), StoreError> {
        let k = key(&gap.product_id, gap.to, gap.before);
        let v = serde_json::to_vec(gap).map_err(|e| corrupt(e.to_string()))?;
        self.gaps.insert(k, v)?;
        Ok(())
    }

    /// Trades of `product` with `from <= time < to`, oldest first, at most `limit`.
    pub fn range(
        &self,
        product: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<Recorded>, StoreError> {
        let mut out = Vec::new();
        let mut cursor = Self::cursor(product, from);
        while out.len() < limit {
            let chunk = self.next_chunk(&mut cursor, limit - out.len())?;
            if chunk.is_empty() {
                break;
            }
            out.extend(chunk.into_iter().filter(|(t, _)| t.time < to));
            if cursor.next >= to {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Where a chunked read of `product` from `from` starts.
    pub fn cursor(product: &str, from: i64) -> Cursor {
        Cursor {
            product: product.to_owned(),
            from,
            next: minute_of(from),
        }
    }

    /// The next trades after `cursor`, oldest first, whole minutes until at
    /// least `limit` (or the end); the cursor moves past them. Empty at the end.
    pub fn next_chunk(
        &self,
        cursor: &mut Cursor,
        limit: usize,
    ) -> Result<Vec<Recorded>, StoreError> {
        let mut out = Vec::new();
        while out.len() < limit.max(1) {
            let Some(m) = self.next_minute(&cursor.product, cursor.next)? else {
                break;
            };
            let from = cursor.from;
            out.extend(
                self.minute(&cursor.product, m)?
                    .into_iter()
                    .filter(|(t, _)| t.time >= from),
            );
            cursor.next = m.saturating_add(MINUTE);
        }
        Ok(out)
    }

    /// Calls `f` with every trade of `product` from `from` on, oldest
    /// first, in chunks of about `chunk`: memory stays bounded however
    /// much is recorded. Returns how many trades.
    pub fn scan(
        &self,
        product: &str,
        from: i64,
        chunk: usize,
        mut f: impl FnMut(Vec<Recorded>),
    ) -> Result<usize, StoreError> {
        let mut cursor = Self::cursor(product, from);
        let mut total = 0;
        loop {
            let batch = self.next_chunk(&mut cursor, chunk)?;
            if batch.is_empty() {
                return Ok(total);
            }
            total += batch.len();
            f(batch);
        }
    }

    /// Gaps of `product` whose later trade is in `[from, to)`.
    pub fn gaps(&self, product: &str, from: i64, to: i64) -> Result<Vec<Gap>, StoreError> {
        self.gaps
            .range(key(product, from, 0)..key(product, to, 0))
            .map(|r| {
                let (_, v) = r?;
                serde_json::from_slice(&v).map_err(|e| corrupt(e.to_string()))
            })
            .collect()
    }

    /// The last recorded trade of `product`.
    pub fn last(&self, product: &str) -> Result<Option<Recorded>, StoreError> {
        let p = prefix(product);
        let last = |tree: &sled::Tree| -> Result<Option<i64>, StoreError> {
            match tree.scan_prefix(&p).next_back() {
                Some(r) => Ok(key_time(product, &r?.0).map(minute_of)),
                None => Ok(None),
            }
        };
        let m = match (last(&self.blocks)?, last(&self.tail)?) {
            (Some(a), Some(b)) => a.max(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return Ok(None),
        };
        Ok(self.minute(product, m)?.pop())
    }

    /// Products with recorded trades.
    pub fn products(&self) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = Vec::new();
        for tree in [&self.blocks, &self.tail] {
            let mut from = Vec::new();
            // Jump from product to product instead of walking every record.
            while let Some(r) = tree.range(from.clone()..).next() {
                let (k, _) = r?;
                let Some(end) = k.iter().position(|b| *b == 0) else {
                    return Err(corrupt(format!("key without a product: {k:?}")));
                };
                out.push(String::from_utf8_lossy(&k[..end]).into_owned());
                from = k[..end].to_vec();
                from.push(1);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Deletes the trades and gaps of `product` older than `before` (whole
    /// minutes); returns how many minutes.
    pub fn prune(&self, product: &str, before: i64) -> Result<usize, StoreError> {
        let (lo, edge) = (prefix(product), minute_of(before));
        let mut removed = [0; 3];
        for ((tree, hi), n) in [
            (&self.blocks, block_key(product, edge)),
            (&self.tail, key(product, edge, 0)),
            (&self.gaps, key(product, edge, 0)),
        ]
        .into_iter()
        .zip(&mut removed)
        {
            for r in tree.range(lo.clone()..hi) {
                tree.remove(r?.0)?;
                *n += 1;
            }
        }
        Ok(removed[0])
    }

    /// Stores trades of `product` (an import), minute by minute; returns
    /// (stored, already there).
    pub fn import(
        &self,
        product: &str,
        trades: impl IntoIterator<Item = Recorded>,
    ) -> Result<(u64, u64), StoreError> {
        let (mut stored, mut seen) = (0u64, 0u64);
        let mut group: Vec<Recorded> = Vec::new();
        let mut flush = |group: &mut Vec<Recorded>| -> Result<(), StoreError> {
            if let Some((first, _)) = group.first() {
                let minute = minute_of(first.time);
                let before = group.len();
                normalize(group);
                let dup_in_input = before - group.len();
                let new = self.merge(product, minute, group)?;
                stored += new as u64;
                seen += (group.len() - new + dup_in_input) as u64;
                group.clear();
            }
            Ok(())
        };
        for (t, side) in trades {
            if group
                .first()
                .is_some_and(|(f, _)| minute_of(f.time) != minute_of(t.time))
            {
                flush(&mut group)?;
            }
            group.push((t, side));
        }
        flush(&mut group)?;
        Ok((stored, seen))
    }
}

/// How long trades are kept.
#[derive(Debug, Clone)]
pub struct Retention {
    /// For every product without its own.
    pub default: std::time::Duration,
    /// Per product.
    pub by_product: HashMap<String, std::time::Duration>,
}

impl Retention {
    fn of(&self, product: &str) -> i64 {
        let d = self.by_product.get(product).unwrap_or(&self.default);
        i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
    }
}

/// Prune a product after this many new trades, and at least once an hour of exchange time.
const PRUNE_EVERY: u32 = 100_000;

/// The live recorder: the log plus what it needs to see gaps and prune.
#[derive(Debug)]
pub struct Recorder {
    log: TradeLog,
    retention: Retention,
    /// Per product: last trade id and time recorded, trades since the last prune, time of it.
    last: HashMap<String, (u64, i64, u32, i64)>,
}

impl Recorder {
    /// A recorder over `log`.
    pub fn new(log: TradeLog, retention: Retention) -> Self {
        Self {
            log,
            retention,
            last: HashMap::new(),
        }
    }

    /// The log it writes.
    pub fn log(&self) -> &TradeLog {
        &self.log
    }

    /// Records one trade of the live feed: a gap when ids were skipped, a
    /// prune now and then. Returns the gap, if one opened.
    pub fn record(
        &mut self,
        product: &str,
        t: &Trade,
        side: Side,
    ) -> Result<Option<Gap>, StoreError> {
        let prev = match self.last.get(product) {
            Some(p) => Some(*p),
            None => self
                .log
                .last(product)?
                .map(|(l, _)| (l.trade_id, l.time, 0, l.time)),
        };
        // A later minute: the tail's earlier minutes become blocks.
        if let Some((_, last_time, _, _)) = prev
            && minute_of(t.time) > minute_of(last_time)
        {
            self.log.fold(product, minute_of(t.time))?;
        }
        let stored = if prev.is_some_and(|(_, lt, _, _)| minute_of(t.time) < minute_of(lt)) {
            // Late, into a minute already folded.
            self.log.insert(product, t, side)?
        } else {
            self.log.insert_tail(product, t, side)?
        };
        let mut gap = None;
        let (mut last_id, mut last_time, mut since, mut pruned_at) =
            prev.unwrap_or((t.trade_id, t.time, 0, t.time));
        if stored && t.trade_id > last_id {
            if prev.is_some() && t.trade_id > last_id + 1 {
                let g = Gap {
                    product_id: product.to_owned(),
                    after: last_id,
                    before: t.trade_id,
                    from: last_time,
                    to: t.time,
                };
                self.log.insert_gap(&g)?;
                gap = Some(g);
            }
            last_id = t.trade_id;
            last_time = last_time.max(t.time);
            since += 1;
        }
        let hour = 3_600_000_000_000;
        if since >= PRUNE_EVERY || last_time - pruned_at >= hour {
            self.log.prune(
                product,
                last_time.saturating_sub(self.retention.of(product)),
            )?;
            since = 0;
            pruned_at = last_time;
        }
        self.last
            .insert(product.to_owned(), (last_id, last_time, since, pruned_at));
        Ok(gap)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::time::Duration;

    use super::*;

    const S: i64 = 1_000_000_000;

    fn t(id: u64, time: i64, price: &str) -> Trade {
        Trade {
            time,
            trade_id: id,
            price: Price::parse(price).unwrap(),
            size: Size::parse("0.5").unwrap(),
        }
    }

    fn retention_of(secs: u64) -> Retention {
        Retention {
            default: Duration::from_secs(secs),
            by_product: HashMap::new(),
        }
    }

    fn open(dir: &std::path::Path) -> TradeLog {
        TradeLog::open(&Store::open(dir).unwrap()).unwrap()
    }

    #[test]
    fn trades_round_trip_exactly_and_scan_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        // Before 1970 too: the key order must still follow time.
        for (id, time) in [(3, 30 * S), (1, -10 * S), (2, 20 * S)] {
            assert!(
                log.insert("BTC-USD", &t(id, time, "453.07000000"), Side::Sell)
                    .unwrap()
            );
        }
        log.insert("ETH-USD", &t(9, 25 * S, "10.5"), Side::Buy)
            .unwrap();
        assert!(
            !log.insert("BTC-USD", &t(2, 20 * S, "453.07000000"), Side::Sell)
                .unwrap()
        );
        let all = log.range("BTC-USD", i64::MIN, i64::MAX, 100).unwrap();
        assert_eq!(
            all.iter().map(|(t, _)| t.trade_id).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(
            all[0].0.price.to_string(),
            "453.07000000",
            "exact text back"
        );
        assert_eq!(all[0].1, Side::Sell);
        let mid = log.range("BTC-USD", 0, 30 * S, 100).unwrap();
        assert_eq!(mid.len(), 1, "from inclusive, to exclusive");
        assert_eq!(log.products().unwrap(), ["BTC-USD", "ETH-USD"]);
        assert_eq!(log.last("BTC-USD").unwrap().unwrap().0.trade_id, 3);
        assert!(log.last("LTC-USD").unwrap().is_none());
    }

    #[test]
    fn skipped_ids_are_recorded_as_gaps_and_retention_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let mut r = Recorder::new(
            log.clone(),
            Retention {
                default: Duration::from_secs(3600),
                by_product: HashMap::from([("ETH-USD".into(), Duration::from_secs(120))]),
            },
        );
        assert!(
            r.record("BTC-USD", &t(10, 0, "1"), Side::Buy)
                .unwrap()
                .is_none()
        );
        assert!(
            r.record("BTC-USD", &t(11, S, "1"), Side::Buy)
                .unwrap()
                .is_none()
        );
        let gap = r
            .record("BTC-USD", &t(15, 2 * S, "1"), Side::Buy)
            .unwrap()
            .unwrap();
        assert_eq!((gap.after, gap.before, gap.missing()), (11, 15, 3));
        assert_eq!(log.gaps("BTC-USD", 0, 10 * S).unwrap(), [gap]);
        // A repeat and a late trade open no gap.
        assert!(
            r.record("BTC-USD", &t(15, 2 * S, "1"), Side::Buy)
                .unwrap()
                .is_none()
        );
        assert!(
            r.record("BTC-USD", &t(12, S, "1"), Side::Buy)
                .unwrap()
                .is_none()
        );
        // A recorder started again sees the gap after what is stored.
        let mut again = Recorder::new(log.clone(), r.retention.clone());
        assert!(
            again
                .record("BTC-USD", &t(20, 3 * S, "1"), Side::Buy)
                .unwrap()
                .is_some()
        );
        // ETH keeps two minutes: a trade two hours later prunes the first.
        r.record("ETH-USD", &t(1, 0, "1"), Side::Buy).unwrap();
        r.record("ETH-USD", &t(2, 7200 * S, "1"), Side::Buy)
            .unwrap();
        let eth = log.range("ETH-USD", i64::MIN, i64::MAX, 10).unwrap();
        assert_eq!(eth.iter().map(|(t, _)| t.trade_id).collect::<Vec<_>>(), [2]);
        assert_eq!(
            log.range("BTC-USD", i64::MIN, i64::MAX, 10).unwrap().len(),
            5
        );
    }

    #[test]
    fn scans_come_in_bounded_chunks_and_miss_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let mut r = Recorder::new(log.clone(), retention_of(3600));
        for id in 0..25u64 {
            // Pairs of trades share a time, six a minute: the scan must not
            // skip the second of a pair, nor a minute still in the tail.
            let time = i64::try_from(id / 2).unwrap() * 20 * S;
            r.record("BTC-USD", &t(id, time, "1"), Side::Buy).unwrap();
        }
        let mut sizes = Vec::new();
        let mut ids = Vec::new();
        let n = log
            .scan("BTC-USD", 20 * S, 4, |c| {
                sizes.push(c.len());
                ids.extend(c.iter().map(|(t, _)| t.trade_id));
            })
            .unwrap();
        assert_eq!(n, 23);
        assert_eq!(ids, (2..25).collect::<Vec<_>>());
        // Whole minutes until at least the chunk size: at most one minute over.
        assert!(
            sizes.len() > 2 && sizes.iter().all(|s| *s <= 4 + 6),
            "{sizes:?}"
        );
        assert_eq!(log.range("BTC-USD", 40 * S, 80 * S, 100).unwrap().len(), 4);
        assert_eq!(log.last("BTC-USD").unwrap().unwrap().0.trade_id, 24);
    }

    #[test]
    fn imports_count_what_was_already_there() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let trades = vec![(t(1, 0, "5"), Side::Buy), (t(2, S, "6"), Side::Sell)];
        assert_eq!(log.import("BTC-USD", trades.clone()).unwrap(), (2, 0));
        assert_eq!(log.import("BTC-USD", trades).unwrap(), (0, 2));
    }
}
