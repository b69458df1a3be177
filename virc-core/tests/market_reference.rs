//! The analyst against a straightforward reference on real data: 1,411
//! BTC-USD trades of 2016-05-12 15:00-15:59 recorded by coinbase-pro-node
//! (Apache-2.0, see tests/fixtures/coinbase-pro-node/). Candles are rebuilt by
//! grouping trades per bucket, and indicators recomputed from the full list of
//! closes at every step, then compared with the incremental values.
#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::collections::BTreeMap;

use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde_json::Value;
use virc_core::{
    market::{Analyst, Period, Trade},
    money::{Price, Size},
    time::parse_rfc3339,
};

fn trades() -> Vec<Trade> {
    let calls: Value = serde_json::from_str(include_str!(
        "fixtures/coinbase-pro-node/pubclient_stream_trades.json"
    ))
    .unwrap();
    let mut out: Vec<Trade> = calls
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["response"].as_array().unwrap().clone())
        .map(|t| Trade {
            time: parse_rfc3339(t["time"].as_str().unwrap()).unwrap(),
            trade_id: t["trade_id"].as_u64().unwrap(),
            price: Price::parse(t["price"].as_str().unwrap()).unwrap(),
            size: Size::parse(t["size"].as_str().unwrap()).unwrap(),
        })
        .collect();
    // REST pages come newest first; the feed order is by trade id.
    out.sort_by_key(|t| t.trade_id);
    out.dedup_by_key(|t| t.trade_id);
    out
}

fn reference_closes(
    trades: &[Trade],
    len: i64,
) -> Vec<(i64, Decimal, Decimal, Decimal, Decimal, Decimal)> {
    let mut buckets: BTreeMap<i64, (Decimal, Decimal, Decimal, Decimal, Decimal)> = BTreeMap::new();
    for t in trades {
        let start = t.time - t.time.rem_euclid(len);
        let (p, s) = (t.price.get(), t.size.get());
        buckets
            .entry(start)
            .and_modify(|b| {
                b.1 = b.1.max(p);
                b.2 = b.2.min(p);
                b.3 = p;
                b.4 += s;
            })
            .or_insert((p, p, p, p, s));
    }
    // Fill gaps with the previous close, as the analyst does.
    let mut out = Vec::new();
    let mut prev: Option<(i64, Decimal)> = None;
    for (start, (o, h, l, c, v)) in buckets {
        if let Some((ps, pc)) = prev {
            let mut gap = ps + len;
            while gap < start {
                out.push((gap, pc, pc, pc, pc, Decimal::ZERO));
                gap += len;
            }
        }
        out.push((start, o, h, l, c, v));
        prev = Some((start, c));
    }
    out
}

fn wilder(closes: &[Decimal], n: usize) -> Option<Decimal> {
    if closes.len() <= n {
        return None;
    }
    let changes: Vec<Decimal> = closes.windows(2).map(|w| w[1] - w[0]).collect();
    let nd = Decimal::from(n);
    let mut gain: Decimal = changes[..n]
        .iter()
        .filter(|c| **c > Decimal::ZERO)
        .sum::<Decimal>()
        / nd;
    let mut loss: Decimal = -changes[..n]
        .iter()
        .filter(|c| **c < Decimal::ZERO)
        .sum::<Decimal>()
        / nd;
    for c in &changes[n..] {
        gain = (gain * (nd - Decimal::ONE) + (*c).max(Decimal::ZERO)) / nd;
        loss = (loss * (nd - Decimal::ONE) + (-*c).max(Decimal::ZERO)) / nd;
    }
    Some(if loss.is_zero() {
        if gain.is_zero() {
            Decimal::from(50)
        } else {
            Decimal::ONE_HUNDRED
        }
    } else {
        (Decimal::ONE_HUNDRED - Decimal::ONE_HUNDRED / (Decimal::ONE + gain / loss)).round_dp(4)
    })
}

#[test]
fn candles_and_indicators_match_a_reference_computation_on_real_trades() {
    let trades = trades();
    assert_eq!(trades.len(), 1411);
    let mut a = Analyst::new();
    for t in &trades {
        assert!(a.on_trade(t));
    }
    let series = a.series(Period::M1);
    let got: Vec<_> = series.history().collect();
    let want = reference_closes(&trades, Period::M1.nanos());
    // The last bucket is still open in the analyst.
    assert_eq!(got.len(), want.len() - 1);
    let mut closes = Vec::new();
    for ((c, ind), w) in got.iter().zip(&want) {
        assert_eq!((c.start, c.open, c.high, c.low, c.close, c.volume), *w);
        closes.push(c.close);
        let last20 = &closes[closes.len().saturating_sub(20)..];
        if closes.len() >= 20 {
            let mean = last20.iter().sum::<Decimal>() / Decimal::from(20);
            assert_eq!(ind.sma20, Some(mean.round_dp(8)));
            let var = last20
                .iter()
                .map(|x| ((*x - mean) * (*x - mean)).to_f64().unwrap())
                .sum::<f64>()
                / 20.0;
            let band = ind.bb_up.unwrap() - ind.bb_mid.unwrap();
            assert!(
                (band.to_f64().unwrap() - 2.0 * var.sqrt()).abs() < 1e-6,
                "band {band} vs {}",
                2.0 * var.sqrt()
            );
        } else {
            assert_eq!(ind.sma20, None);
        }
        assert_eq!(
            ind.rsi14,
            wilder(&closes, 14),
            "RSI-14 at candle {}",
            closes.len()
        );
        assert_eq!(
            ind.rsi7,
            wilder(&closes, 7),
            "RSI-7 at candle {}",
            closes.len()
        );
    }
    assert!(
        got.iter().filter(|(_, i)| i.rsi14.is_some()).count() > 40,
        "the RSI check ran on most candles"
    );

    // The 1h window at the last trade holds every trade of the hour.
    let last = trades.last().unwrap().time;
    let stats = a.stats(last);
    let (_, h1) = stats.iter().find(|(w, _)| w.name() == "1h").unwrap();
    let h1 = h1.unwrap();
    assert_eq!(h1.trades, 1411);
    assert_eq!(
        h1.volume,
        trades.iter().map(|t| t.size.get()).sum::<Decimal>()
    );
    assert_eq!(h1.high, trades.iter().map(|t| t.price.get()).max().unwrap());
    assert_eq!(h1.low, trades.iter().map(|t| t.price.get()).min().unwrap());
}
