//! Synthetic market flow: a random walk per product from a seed, shown as
//! a ladder of resting orders around the mid (the driver's maker account)
//! and crossed now and then by market orders (its taker account), so
//! there are trades, a moving book and counterparties for the test
//! account's orders. The same seed and the same clock give the same flow.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use virc_core::{ids::OrderId, matcher::UserId, order::OrderRequest};

use super::{
    Shared,
    engine::{DRIVER_MAKER, DRIVER_TAKER, Engine},
};

/// How the synthetic market moves.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Seed of the walk.
    pub seed: u64,
    /// Time between steps.
    pub interval: Duration,
    /// Starting mid price per product driven.
    pub start: BTreeMap<String, Decimal>,
    /// Price levels shown on each side.
    pub levels: u32,
    /// Base size of each level.
    pub size: Decimal,
    /// Largest step of the mid per interval, as a fraction of it.
    pub volatility: Decimal,
}

/// xorshift64*: tiny, seeded, good enough for a market that only has to move.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform integer in `-n..=n`.
    fn signed(&mut self, n: i64) -> i64 {
        let span = u64::try_from(2 * n + 1).unwrap_or(1).max(1);
        i64::try_from(self.next() % span).unwrap_or(0) - n
    }
}

fn limit(
    product: &str,
    side: &str,
    price: Decimal,
    size: Decimal,
    tif: Option<&str>,
) -> OrderRequest {
    OrderRequest {
        product_id: product.to_owned(),
        side: Some(side.into()),
        price: Some(price.normalize().to_string()),
        size: Some(size.normalize().to_string()),
        time_in_force: tif.map(str::to_owned),
        ..OrderRequest::default()
    }
}

/// The driver's state for one product.
#[derive(Debug)]
struct Walk {
    mid: Decimal,
    resting: Vec<OrderId>,
}

/// One step: move the mid, cross the book now and then, re-lay the ladder.
fn step(
    e: &mut Engine,
    c: &DriverConfig,
    rng: &mut Rng,
    walks: &mut BTreeMap<String, Walk>,
    now: i64,
) {
    e.advance(now);
    for (product, w) in walks.iter_mut() {
        let Some(p) = e.catalogue().get(product).cloned() else {
            continue;
        };
        let tick = p.quote_increment;
        let max_ticks = i64::try_from(((w.mid * c.volatility) / tick).trunc().mantissa())
            .unwrap_or(1)
            .max(1);
        let moved = w.mid + tick * Decimal::from(rng.signed(max_ticks));
        w.mid = moved.max(tick * Decimal::from(10));
        // Every other step on average, a taker crosses to the new mid.
        if rng.next().is_multiple_of(2) {
            let buy = rng.next().is_multiple_of(2);
            let size = (c.size / Decimal::from(4)).max(p.base_increment);
            let req = limit(
                product,
                if buy { "buy" } else { "sell" },
                w.mid,
                size,
                Some("IOC"),
            );
            let _ = e.place(DRIVER_TAKER, &req, now);
        }
        for id in w.resting.drain(..) {
            let _ = e.cancel(DRIVER_MAKER, &id.to_string(), now);
        }
        for i in 1..=c.levels {
            let off = tick * Decimal::from(i);
            for (side, price) in [("buy", w.mid - off), ("sell", w.mid + off)] {
                if let Ok(answer) = e.place(
                    DRIVER_MAKER,
                    &limit(product, side, price, c.size, None),
                    now,
                ) && let Some(id) = Engine::id_of(&answer)
                {
                    w.resting.push(id);
                }
            }
        }
    }
}

/// Funds the driver's two accounts with more than any test can move.
pub fn fund(e: &mut Engine) {
    let big = Decimal::from(1_000_000_000_000_i64);
    let currencies: Vec<_> = e
        .catalogue()
        .iter()
        .flat_map(|p| [p.base_currency, p.quote_currency])
        .collect();
    for user in [DRIVER_MAKER, DRIVER_TAKER] {
        let money: Vec<(&str, Decimal)> = currencies.iter().map(|c| (c.as_str(), big)).collect();
        e.fund(user, &format!("driver-{}", user.0), &money);
    }
}

/// Runs the walk until `stop`.
pub async fn run(c: DriverConfig, shared: Arc<Shared>, stop: CancellationToken) {
    let mut rng = Rng(c.seed.max(1));
    let mut walks: BTreeMap<String, Walk> = c
        .start
        .iter()
        .map(|(p, mid)| {
            (
                p.clone(),
                Walk {
                    mid: *mid,
                    resting: Vec::new(),
                },
            )
        })
        .collect();
    let mut every = tokio::time::interval(c.interval);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {
                let now = shared.now();
                shared.with_engine(|e| step(e, &c, &mut rng, &mut walks, now));
            }
        }
    }
}

/// A driver order for tests: `maker` rests it, otherwise it is an IOC that
/// takes everything up to `price` (the test account's orders included).
pub fn order(
    shared: &Shared,
    product: &str,
    buy: bool,
    price: Decimal,
    size: Decimal,
    maker: bool,
) -> Result<(), String> {
    let user: UserId = if maker { DRIVER_MAKER } else { DRIVER_TAKER };
    let req = limit(
        product,
        if buy { "buy" } else { "sell" },
        price,
        size,
        (!maker).then_some("IOC"),
    );
    let now = shared.now();
    shared
        .with_engine(|e| e.place(user, &req, now))
        .map(|_| ())
        .map_err(|r| r.message)
}
