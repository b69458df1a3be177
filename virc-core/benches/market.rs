//! Analyst bench (prints figures): per-trade update of every candle period,
//! rolling window and indicator (p50/p99/p99.9), and replay throughput at
//! full speed, on 10 M seeded random-walk trades at 10 trades/s of exchange
//! time (about 11.5 days) and at 1 trade/s (about 116 days). Run with `cargo bench -p virc-core --bench market`.
#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a bench fails loudly and prints approximate figures"
)]

use std::{hint::black_box, time::Instant};

use rust_decimal::Decimal;
use virc_core::{
    market::{Analyst, Period, Trade},
    money::{Price, Size},
};

fn main() {
    // Trades per second of exchange time: 10 is a busy BTC-USD; at 1 every
    // trade opens a new second, the analyst's least favourable case.
    // `VIRC_BENCH_RATE=N`: that rate alone, for a profiler.
    let rates = match std::env::var("VIRC_BENCH_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        Some(r) => vec![r],
        None => vec![10, 1],
    };
    for rate in rates {
        run(rate);
    }
}

fn run(rate: i64) {
    let n = 10_000_000u64;
    println!("-- {rate} trade(s) per second of exchange time");
    let mut seed = 0x00AB_CDEF_u64;
    let mut cents: i64 = 45_000;
    let trades: Vec<Trade> = (1..=n)
        .map(|id| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            cents = (cents + (seed % 5).cast_signed() - 2).max(100);
            Trade {
                time: i64::try_from(id).unwrap() * 1_000_000_000 / rate,
                trade_id: id,
                price: Price::new(Decimal::new(cents, 2)).unwrap(),
                size: Size::new(Decimal::new(i64::try_from(seed % 100_000).unwrap() + 1, 8))
                    .unwrap(),
            }
        })
        .collect();

    let mut a = Analyst::new();
    let start = Instant::now();
    for t in &trades {
        black_box(a.on_trade(t));
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "replay at max speed: {n} trades in {secs:.2} s = {:.2} M trades/s",
        n as f64 / secs / 1e6
    );

    let mut a = Analyst::new();
    let mut lat: Vec<u64> = Vec::with_capacity(trades.len());
    for t in &trades {
        let s = Instant::now();
        black_box(a.on_trade(t));
        lat.push(u64::try_from(s.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "per-trade update (6 periods, 8 windows, indicators): p50 {} ns  p99 {} ns  p99.9 {} ns",
        p(0.5),
        p(0.99),
        p(0.999)
    );
    let m1 = a.series(Period::M1).history().count();
    println!("memory: {m1} 1m candles kept (bounded), 60 buckets per window");
}
