//! Feed parsing bench (prints figures): the recorded 2021 Coinbase capture's
//! `l2update`, `match` and `ticker` frames, per message, through
//! - `sonic_rs::Value` and `serde_json::Value` (untyped parses: the yardstick),
//! - virc's typed parse (exact decimals, times, ids), and for `l2update`
//!   the parse plus applying every change to the product's level-2 book,
//!
//! and the ratio of the typed parse (+ apply) to sonic-rs in the same run;
//! then the cost of signing one REST request.
//! Run with `cargo bench -p virc-daemon --bench feed`
//! (`VIRC_BENCH_PROFILE=l2update` runs only virc's parse of those frames, for a profiler).
#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    reason = "a bench fails loudly and prints approximate figures"
)]

use std::{
    collections::{BTreeMap, HashMap},
    hint::black_box,
    time::Instant,
};

use virc_core::{book::L2Book, ids::ProductId};
use virc_daemon::{
    config::{ExchangeCredentials, Secret},
    exchange::coinbase::{
        http::signer::Signer,
        ws::messages::{WsMessage, parse},
    },
};

const CAPTURE: &str = include_str!("../tests/fixtures/cryptofeed/coinbase-ws-2021-04-17.jsonl");

/// Nanoseconds per frame of each of `fs` over `frames`, best of 9 rounds.
/// The contenders take turns within each round, so a slow spell of this
/// shared machine hits them alike and the ratios hold still.
fn race<const N: usize>(frames: &[&str], fs: &mut [&mut dyn FnMut(&str); N]) -> [f64; N] {
    let passes = (50_000 / frames.len().max(1)).max(3);
    let mut best = [f64::MAX; N];
    for _ in 0..9 {
        for (f, best) in fs.iter_mut().zip(&mut best) {
            let t = Instant::now();
            for _ in 0..passes {
                for frame in frames {
                    f(frame);
                }
            }
            let ns = t.elapsed().as_nanos() as f64 / (passes * frames.len()) as f64;
            *best = best.min(ns);
        }
    }
    best
}

/// The books of the products seen, kept as the daemon's market actor keeps
/// them (a `BTreeMap` by product id).
#[derive(Default)]
struct Books(BTreeMap<ProductId, L2Book>);

impl Books {
    fn apply(&mut self, m: WsMessage) {
        match m {
            WsMessage::L2Update {
                product_id,
                changes,
                ..
            } => {
                let book = self.0.entry(product_id).or_default();
                for (side, price, size) in changes {
                    book.apply(side, price, size);
                }
            }
            m => {
                black_box(m);
            }
        }
    }
}

fn main() {
    let mut by_type: HashMap<&str, Vec<&str>> = HashMap::new();
    for line in CAPTURE.lines() {
        for kind in ["l2update", "match", "ticker"] {
            if line.contains(&format!("\"type\":\"{kind}\"")) {
                by_type.entry(kind).or_default().push(line);
            }
        }
    }
    // `VIRC_BENCH_PROFILE=l2update|match|ticker`: only virc's parse of those
    // frames, for a while, for `perf record`.
    // `VIRC_BENCH_PROFILE=apply`: the `l2update` frames parsed and applied.
    if let Ok(kind) = std::env::var("VIRC_BENCH_PROFILE") {
        let apply = kind == "apply";
        let frames = &by_type[if apply { "l2update" } else { kind.as_str() }];
        let mut books = Books::default();
        for _ in 0..(3_000_000 / frames.len()) {
            for f in frames {
                if apply {
                    books.apply(parse(f).unwrap());
                } else {
                    black_box(parse(f).unwrap());
                }
            }
        }
        return;
    }
    println!("frames of the 2021-04-17 capture, ns per message (best of 9 interleaved rounds):");
    println!(
        "{:<9} {:>6} {:>10} {:>11} {:>11} {:>14} {:>9}",
        "type", "frames", "sonic-rs", "serde_json", "virc typed", "typed + apply", "ratio"
    );
    for kind in ["l2update", "match", "ticker"] {
        let frames = &by_type[kind];
        let mut books = Books::default();
        let [sonic, serde, typed, applied] = race(
            frames,
            &mut [
                &mut |f| {
                    black_box(sonic_rs::from_str::<sonic_rs::Value>(f).unwrap());
                },
                &mut |f| {
                    black_box(serde_json::from_str::<serde_json::Value>(f).unwrap());
                },
                &mut |f| {
                    black_box(parse(f).unwrap());
                },
                &mut |f| books.apply(parse(f).unwrap()),
            ],
        );
        println!(
            "{kind:<9} {:>6} {sonic:>10.0} {serde:>11.0} {typed:>11.0} {applied:>14.0} {:>8.2}x",
            frames.len(),
            applied / sonic
        );
    }
    let signer = Signer::new(&ExchangeCredentials {
        key: "key".into(),
        secret: Secret::new("c2VjcmV0LWJ5dGVzLWZvci10ZXN0cw=="),
        passphrase: Secret::new("pass"),
    })
    .unwrap();
    let body = r#"{"client_oid":"5f0a1c2e-8b1d-4c3e-9f6a-2b7d8e9f0a1b","type":"limit","side":"buy","product_id":"BTC-USD","price":"27000.00","size":"0.01"}"#;
    let n = 200_000;
    let t = Instant::now();
    for i in 0..n {
        black_box(signer.sign(&format!("{}", 1_700_000_000 + i), "POST", "/orders", body));
    }
    println!(
        "REST signing (HMAC-SHA256 + base64 of a POST /orders): {:.0} ns per request",
        t.elapsed().as_nanos() as f64 / f64::from(n)
    );
}
