//! Matcher bench (prints figures): throughput and per-op latency
//! (p50/p99/p99.9) of virc's matcher on three workloads of 1 M ops, with the
//! same workload run through the `lobster` and `orderbook-rs` crates in the
//! same run and a check that every engine executed the same quantity; then a
//! long drifting-price run that checks our book stays bounded.
//! Run with `cargo bench -p virc-core --bench matcher`.
#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a bench fails loudly and prints approximate figures"
)]

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use rust_decimal::Decimal;
use virc_core::{
    ids::OrderId,
    ledger::FeeRates,
    matcher::{FeedEvent, FeedKind, Matcher, UserId},
    money::{Price, Size},
    order::{MarketAmount, NewOrder, OrderKind, Side, Stp, TimeInForce},
    product::Catalogue,
};

const MID: u64 = 1_000_000;

#[derive(Clone, Copy)]
enum Op {
    Add {
        id: u64,
        buy: bool,
        ticks: u64,
        lots: u64,
    },
    Cancel {
        id: u64,
    },
    Market {
        id: u64,
        buy: bool,
        lots: u64,
    },
}

/// xorshift64*: a fixed seed gives the same workload on every machine.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `add`/`cancel` percentages; the rest are market orders. Passive adds sit
/// 1..=200 ticks from a fixed mid, so they never cross and every engine's
/// fills come from market orders alone, which makes them comparable.
fn workload(n: usize, add: u64, cancel: u64, seed: u64) -> Vec<Op> {
    let mut rng = Rng(seed);
    let mut ops = Vec::with_capacity(n);
    let mut live: Vec<u64> = Vec::new();
    let mut next_id = 1u64;
    // Seed a deep book first (~10,000 orders), as part of the op count.
    for _ in 0..10_000.min(n) {
        let buy = rng.below(2) == 0;
        let off = 1 + rng.below(200);
        ops.push(Op::Add {
            id: next_id,
            buy,
            ticks: if buy { MID - off } else { MID + off },
            lots: 1 + rng.below(100),
        });
        live.push(next_id);
        next_id += 1;
    }
    while ops.len() < n {
        let r = rng.below(100);
        if r < add {
            let buy = rng.below(2) == 0;
            let off = 1 + rng.below(200);
            ops.push(Op::Add {
                id: next_id,
                buy,
                ticks: if buy { MID - off } else { MID + off },
                lots: 1 + rng.below(100),
            });
            live.push(next_id);
            next_id += 1;
        } else if r < add + cancel && !live.is_empty() {
            let i = rng.below(live.len() as u64) as usize;
            ops.push(Op::Cancel {
                id: live.swap_remove(i),
            });
        } else {
            // Sweeps about 1-5 levels of a book ~50 lots deep per level.
            ops.push(Op::Market {
                id: next_id,
                buy: rng.below(2) == 0,
                lots: 50 + rng.below(200),
            });
            next_id += 1;
        }
    }
    ops
}

trait Engine {
    fn name(&self) -> &'static str;
    fn apply(&mut self, op: Op);
    /// Total quantity executed so far, in lots.
    fn executed(&self) -> u64;
}

struct Virc {
    m: Matcher,
    /// The engine's order for each bench id (ids are dense from 1): a
    /// vector, so the adapter adds no hashing of its own to virc's figures.
    ids: Vec<Option<(UserId, OrderId)>>,
    executed: u64,
    buf: Vec<FeedEvent>,
}

impl Virc {
    fn new() -> Self {
        let product = Catalogue::from_json(include_str!(
            "../tests/fixtures/cryptofeed/products-2021-04-17.json"
        ))
        .unwrap()
        .get("BTC-USD")
        .unwrap()
        .clone();
        let mut m = Matcher::new(
            product,
            FeeRates {
                maker: Decimal::new(4, 3),
                taker: Decimal::new(6, 3),
            },
        );
        for u in [1, 2] {
            m.ledger_mut(UserId(u))
                .deposit("USD", Decimal::from(1_000_000_000_000u64))
                .unwrap();
            m.ledger_mut(UserId(u))
                .deposit("BTC", Decimal::from(1_000_000_000u64))
                .unwrap();
        }
        Self {
            m,
            ids: Vec::new(),
            executed: 0,
            buf: Vec::with_capacity(64),
        }
    }
    fn count(&mut self) {
        for e in self.buf.drain(..) {
            if let FeedKind::Match { size, .. } = &e.kind {
                // Sizes are whole lots of 0.001 (scale 3): the mantissa is
                // the lot count, read without Decimal arithmetic (the other
                // engines count in their own integers).
                let d = size.get();
                self.executed += if d.scale() == 3 {
                    u64::try_from(d.mantissa()).unwrap_or(0)
                } else {
                    (d * Decimal::from(1000)).try_into().unwrap_or(0u64)
                };
            }
        }
    }
}

impl Engine for Virc {
    fn name(&self) -> &'static str {
        "virc"
    }
    fn apply(&mut self, op: Op) {
        match op {
            Op::Add {
                id,
                buy,
                ticks,
                lots,
            } => {
                // Buyers and sellers are different users, so STP never fires and fills stay comparable.
                let (side, user) = if buy {
                    (Side::Buy, UserId(1))
                } else {
                    (Side::Sell, UserId(2))
                };
                let order = NewOrder {
                    client_oid: None,
                    side,
                    kind: OrderKind::Limit {
                        price: Price::new(Decimal::new(ticks.cast_signed(), 2)).unwrap(),
                        size: Size::new(Decimal::new(lots.cast_signed(), 3)).unwrap(),
                        tif: TimeInForce::Gtc,
                        post_only: false,
                        stop: None,
                    },
                    stp: Stp::Dc,
                };
                let oid = self.m.submit_into(user, order, 0, &mut self.buf).unwrap();
                self.count();
                let i = id as usize;
                if self.ids.len() <= i {
                    self.ids.resize(i + 1, None);
                }
                self.ids[i] = Some((user, oid));
            }
            Op::Cancel { id } => {
                if let Some((user, oid)) = self.ids.get_mut(id as usize).and_then(Option::take) {
                    let _ = black_box(self.m.cancel_into(user, oid, 0, &mut self.buf));
                    self.buf.clear();
                }
            }
            Op::Market { buy, lots, .. } => {
                let (side, user) = if buy {
                    (Side::Buy, UserId(1))
                } else {
                    (Side::Sell, UserId(2))
                };
                let order = NewOrder {
                    client_oid: None,
                    side,
                    kind: OrderKind::Market(MarketAmount::Size(
                        Size::new(Decimal::new(lots.cast_signed(), 3)).unwrap(),
                    )),
                    stp: Stp::Dc,
                };
                let _ = self.m.submit_into(user, order, 0, &mut self.buf);
                self.count();
            }
        }
    }
    fn executed(&self) -> u64 {
        self.executed
    }
}

struct Lobster {
    book: lobster::OrderBook,
    executed: u64,
}

impl Engine for Lobster {
    fn name(&self) -> &'static str {
        "lobster"
    }
    fn apply(&mut self, op: Op) {
        use lobster::{OrderEvent, OrderType, Side as S};
        let side = |buy| if buy { S::Bid } else { S::Ask };
        let ev = match op {
            Op::Add {
                id,
                buy,
                ticks,
                lots,
            } => self.book.event(OrderType::Limit {
                id: u128::from(id),
                side: side(buy),
                qty: lots,
                price: ticks,
            }),
            Op::Cancel { id } => self.book.event(OrderType::Cancel(u128::from(id))),
            Op::Market { id, buy, lots } => self.book.event(OrderType::Market {
                id: u128::from(id),
                side: side(buy),
                qty: lots,
            }),
        };
        if let OrderEvent::Filled { filled_qty, .. }
        | OrderEvent::PartiallyFilled { filled_qty, .. } = ev
        {
            self.executed += filled_qty;
        }
    }
    fn executed(&self) -> u64 {
        self.executed
    }
}

struct OrderbookRs {
    book: orderbook_rs::OrderBook<()>,
    executed: u64,
}

impl Engine for OrderbookRs {
    fn name(&self) -> &'static str {
        "orderbook-rs"
    }
    fn apply(&mut self, op: Op) {
        use pricelevel::{Id, Side as S, TimeInForce as T};
        let side = |buy| if buy { S::Buy } else { S::Sell };
        match op {
            Op::Add {
                id,
                buy,
                ticks,
                lots,
            } => {
                let _ = black_box(self.book.add_limit_order(
                    Id::from_u64(id),
                    u128::from(ticks),
                    lots,
                    side(buy),
                    T::Gtc,
                    None,
                ));
            }
            Op::Cancel { id } => {
                let _ = black_box(self.book.cancel_order(Id::from_u64(id)));
            }
            Op::Market { id, buy, lots } => {
                if let Ok(r) = self
                    .book
                    .match_market_order(Id::from_u64(id), lots, side(buy))
                {
                    self.executed += lots - r.remaining_quantity().as_u64();
                }
            }
        }
    }
    fn executed(&self) -> u64 {
        self.executed
    }
}

fn run(engine: &mut dyn Engine, ops: &[Op]) -> (f64, [Duration; 3]) {
    let mut lat = Vec::with_capacity(ops.len());
    let start = Instant::now();
    for op in ops {
        let t = Instant::now();
        engine.apply(*op);
        lat.push(t.elapsed());
    }
    let total = start.elapsed();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    (
        ops.len() as f64 / total.as_secs_f64(),
        [pct(0.5), pct(0.99), pct(0.999)],
    )
}

fn main() {
    let n = 1_000_000;
    let workloads = [
        ("mix 60/30/10", workload(n, 60, 30, 0x5EED_0001)),
        ("add-only", workload(n, 100, 0, 0x5EED_0002)),
        ("match-heavy 50/50", workload(n, 50, 0, 0x5EED_0003)),
    ];
    // `cargo bench -p virc-core --bench matcher -- mix` runs only workloads whose name contains "mix".
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for (name, ops) in workloads
        .iter()
        .filter(|(name, _)| filter.as_deref().is_none_or(|f| name.contains(f)))
    {
        // No engine can execute more than was ever offered: a check on the counts.
        let added: u64 = ops
            .iter()
            .map(|op| match op {
                Op::Add { lots, .. } => *lots,
                _ => 0,
            })
            .sum();
        println!("workload {name}: {n} ops, {added} lots added");
        let mut engines: Vec<Box<dyn Engine>> = vec![
            Box::new(Virc::new()),
            Box::new(Lobster {
                book: lobster::OrderBook::default(),
                executed: 0,
            }),
            Box::new(OrderbookRs {
                book: orderbook_rs::OrderBook::new("BTC-USD"),
                executed: 0,
            }),
        ];
        // `VIRC_BENCH_ENGINE=virc`: one engine alone, for a profiler.
        if let Ok(only) = std::env::var("VIRC_BENCH_ENGINE") {
            engines.retain(|e| e.name() == only);
        }
        let mut results = Vec::new();
        for e in &mut engines {
            let (rate, [p50, p99, p999]) = run(e.as_mut(), ops);
            println!(
                "  {:<13} {:>6.2} M ops/s   p50 {:>7.0?}  p99 {:>8.0?}  p99.9 {:>8.0?}   executed {} lots",
                e.name(),
                rate / 1e6,
                p50,
                p99,
                p999,
                e.executed()
            );
            if e.executed() > added {
                println!(
                    "  {:<13} reports more executed than was ever added: its count is wrong",
                    e.name()
                );
            }
            results.push((e.name(), rate, e.executed()));
        }
        let Some(&ours) = results.first() else {
            continue;
        };
        for other in &results[1..] {
            let same = if other.2 == ours.2 {
                "same fills"
            } else {
                "FILLS DIFFER"
            };
            println!(
                "  virc / {:<13} throughput ratio {:.2}x  ({same})",
                other.0,
                ours.1 / other.1
            );
        }
    }

    if filter
        .as_deref()
        .is_some_and(|f| f != "drift" && f != "deep")
    {
        return;
    }
    if filter.as_deref() != Some("drift") {
        deep_book();
    }
    if filter.as_deref() == Some("deep") {
        return;
    }
    // A market drifting upward for a long time: makers add near a moving mid
    // and cancel their oldest order once 10,000 rest (as real makers pull
    // stale quotes); takers sweep. Live orders are then bounded, and the book
    // stays bounded only if emptied levels and finished orders are freed.
    let mut v = Virc::new();
    let mut rng = Rng(0x00D1_21F7);
    let mut mid = MID;
    let mut live = std::collections::VecDeque::new();
    let mut peak_levels = 0;
    let mut peak_orders = 0;
    for (id, step) in (1u64..).zip(0..2_000_000u64) {
        if step % 1000 == 0 {
            mid += 5;
        }
        let op = if rng.below(10) < 7 {
            let buy = rng.below(2) == 0;
            let off = 1 + rng.below(20);
            live.push_back(id);
            Op::Add {
                id,
                buy,
                ticks: if buy { mid - off } else { mid + off },
                lots: 1 + rng.below(100),
            }
        } else {
            Op::Market {
                id,
                buy: rng.below(3) != 0,
                lots: 50 + rng.below(200),
            }
        };
        v.apply(op);
        let stale = if live.len() > 10_000 {
            live.pop_front()
        } else {
            None
        };
        if let Some(old) = stale {
            v.apply(Op::Cancel { id: old });
        }
        if step % 10_000 == 0 {
            peak_levels = peak_levels.max(v.m.level_count());
            peak_orders = peak_orders.max(v.m.resting_count());
        }
    }
    println!(
        "drift 2 M ops, mid +{} ticks: final {} levels / {} resting orders, peak {} levels / {} orders",
        mid - MID,
        v.m.level_count(),
        v.m.resting_count(),
        peak_levels,
        peak_orders
    );
}

/// The worst case of the matcher's level layout (a sorted vector, best
/// last): a book 20,000 levels deep on one side, where each add opens a new
/// level at the far end, behind all the others.
fn deep_book() {
    let mut v = Virc::new();
    let depth = 20_000u64;
    for (id, i) in (1u64..).zip(0..depth) {
        v.apply(Op::Add {
            id,
            buy: true,
            ticks: MID - 2 * i - 2,
            lots: 1,
        });
    }
    let mut far = Vec::new();
    let mut near = Vec::new();
    for (id, i) in (depth + 1..).zip(0..10_000u64) {
        // Far: a new level below every other bid. Near: a new level just
        // below the best bid (the gaps between the seeded levels).
        for (ticks, out) in [
            (MID - 2 * depth - 2 - i, &mut far),
            (MID - 3 - 2 * (i % 50), &mut near),
        ] {
            let t = Instant::now();
            v.apply(Op::Add {
                id: id * 2 + u64::from(out.len() % 2 == 0),
                buy: true,
                ticks,
                lots: 1,
            });
            out.push(t.elapsed());
        }
    }
    for (what, mut lat) in [("far end", far), ("near the touch", near)] {
        lat.sort_unstable();
        println!(
            "deep book ({depth}+ bid levels), add at the {what}: p50 {:.0?}  p99 {:.0?}",
            lat[lat.len() / 2],
            lat[lat.len() * 99 / 100]
        );
    }
}
