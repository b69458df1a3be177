//! Market pipeline bench (prints figures): trades per second through the
//! market actor (candles, windows, indicators) with and without the sled
//! recorder, the recorder alone, and the process RSS after 10 M trades.
//! Run with `cargo bench -p virc-daemon --bench recorder`
//! (`VIRC_BENCH_TRADES` changes the 10 M).
#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    reason = "a bench fails loudly and prints approximate figures"
)]

use std::{sync::Arc, time::Instant};

use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use virc_core::{
    ids::ProductId,
    market::Trade,
    money::{Price, Size},
    order::Side,
    product::Catalogue,
};
use virc_daemon::{
    clock::SystemClock,
    config::{EventsConfig, Positive},
    events::EventBus,
    market::{DEMO_PRODUCTS, Input, MarketActor},
    recorder::{Recorder, Retention, TradeLog},
    store::Store,
};

/// A seeded random walk, one trade every 100 ms of exchange time.
struct Walk {
    seed: u64,
    cents: i64,
    id: u64,
}

impl Walk {
    fn new() -> Self {
        Self {
            seed: 0x00AB_CDEF,
            cents: 45_000,
            id: 0,
        }
    }

    fn next(&mut self) -> (Trade, Side) {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.cents = (self.cents + (self.seed % 5).cast_signed() - 2).max(100);
        self.id += 1;
        let side = if self.seed.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        };
        (
            Trade {
                time: i64::try_from(self.id).unwrap() * 100_000_000,
                trade_id: self.id,
                price: Price::new(Decimal::new(self.cents, 2)).unwrap(),
                size: Size::new(Decimal::new(
                    i64::try_from(self.seed % 100_000).unwrap() + 1,
                    8,
                ))
                .unwrap(),
            },
            side,
        )
    }
}

fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: ?")
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

fn retention() -> Retention {
    Retention {
        default: std::time::Duration::from_secs(7 * 86_400),
        by_product: std::collections::HashMap::new(),
    }
}

/// Feeds `n` trades through a market actor (with the recorder when `record`); returns trades/s.
async fn through_actor(n: u64, record: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let stop = CancellationToken::new();
    let cfg = EventsConfig {
        max_events: Positive(1_000_000),
        fsync: false,
        ..EventsConfig::default()
    };
    let (bus, events) =
        EventBus::new(store.events(), cfg, Arc::new(SystemClock), stop.clone()).unwrap();
    tokio::spawn(bus.run(stop.clone()));
    let (mut actor, market) = MarketActor::new(
        Catalogue::from_json(DEMO_PRODUCTS).unwrap(),
        events,
        std::time::Duration::from_secs(1),
    );
    if record {
        actor = actor.with_recorder(Recorder::new(TradeLog::open(&store).unwrap(), retention()));
    }
    tokio::spawn(actor.run(stop.clone()));
    let mut walk = Walk::new();
    let started = Instant::now();
    for _ in 0..n {
        let (t, side) = walk.next();
        market
            .feed(Input::Trade(ProductId::parse("BTC-USD").unwrap(), t, side))
            .await;
    }
    // The actor answers in order: once the ticker comes back, every trade is in.
    let ticker = market.ticker(vec!["BTC-USD".into()]).await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    assert_eq!(ticker.len(), 1);
    stop.cancel();
    rate
}

/// Each scenario runs in a process of its own, so that its RSS is its own.
fn main() {
    let n: u64 = std::env::var("VIRC_BENCH_TRADES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    match std::env::var("VIRC_BENCH_SCENARIO").as_deref() {
        Ok("alone") => recorder_alone(n.min(2_000_000)),
        Ok("actor") => actor(n, false),
        Ok("recorder") => actor(n, true),
        _ => {
            for scenario in ["alone", "actor", "recorder"] {
                let status = std::process::Command::new(std::env::current_exe().unwrap())
                    .env("VIRC_BENCH_SCENARIO", scenario)
                    .env("VIRC_BENCH_TRADES", n.to_string())
                    .status()
                    .unwrap();
                assert!(status.success(), "scenario {scenario} failed");
            }
        }
    }
}

fn recorder_alone(n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut rec = Recorder::new(TradeLog::open(&store).unwrap(), retention());
    let mut walk = Walk::new();
    let started = Instant::now();
    for _ in 0..n {
        let (t, side) = walk.next();
        rec.record("BTC-USD", &t, side).unwrap();
    }
    println!(
        "recorder alone            {n} trades: {:.2} M trades/s; RSS after: {}",
        n as f64 / started.elapsed().as_secs_f64() / 1e6,
        rss()
    );
}

fn actor(n: u64, record: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let rate = through_actor(n, record).await;
        let what = if record {
            "market actor + recorder  "
        } else {
            "market actor, no recorder"
        };
        println!(
            "{what} {n} trades: {:.2} M trades/s; RSS after: {}",
            rate / 1e6,
            rss()
        );
    });
}
