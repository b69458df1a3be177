//! Paper-model bench (prints figures): recorded-feed events per second
//! through the fill model with 100 resting user orders, on the real SKL-USD
//! capture (parsed up front; only the model is timed), replayed 200 times.
//! Run with `cargo bench -p virc-core --bench paper`.
#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    reason = "a bench fails loudly and prints approximate figures"
)]

use std::{hint::black_box, time::Instant};

use rust_decimal::Decimal;
use serde_json::Value;
use virc_core::{
    book::L2Book,
    ledger::{FeeRates, Ledger},
    money::{Price, Size},
    order::{OrderRequest, Side, validate_for},
    paper::{PaperEvent, PaperExchange},
    product::Catalogue,
};

enum Input {
    Snapshot(Vec<(Price, Size)>, Vec<(Price, Size)>),
    L2(Side, Price, Size),
    Trade(Price, Size, Side),
}

fn side(s: &str) -> Side {
    if s == "buy" { Side::Buy } else { Side::Sell }
}

fn levels(v: &Value) -> Vec<(Price, Size)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                Price::parse(l[0].as_str().unwrap()).unwrap(),
                Size::parse(l[1].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

fn main() {
    let catalogue = Catalogue::from_json(include_str!(
        "../tests/fixtures/cryptofeed/products-2021-04-17.json"
    ))
    .unwrap();
    let product = catalogue.get("SKL-USD").unwrap().clone();
    let inputs: Vec<Input> =
        include_str!("../tests/fixtures/cryptofeed/skl-usd-ws-2021-04-17.jsonl")
            .lines()
            .flat_map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                match v["type"].as_str().unwrap() {
                    "snapshot" => vec![Input::Snapshot(levels(&v["bids"]), levels(&v["asks"]))],
                    "l2update" => v["changes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| {
                            Input::L2(
                                side(c[0].as_str().unwrap()),
                                Price::parse(c[1].as_str().unwrap()).unwrap(),
                                Size::parse(c[2].as_str().unwrap()).unwrap(),
                            )
                        })
                        .collect(),
                    "match" | "last_match" => vec![Input::Trade(
                        Price::parse(v["price"].as_str().unwrap()).unwrap(),
                        Size::parse(v["size"].as_str().unwrap()).unwrap(),
                        side(v["side"].as_str().unwrap()),
                    )],
                    _ => vec![],
                }
            })
            .collect();

    let mut ledger = Ledger::default();
    ledger.deposit("USD", Decimal::from(1_000_000_000)).unwrap();
    ledger.deposit("SKL", Decimal::from(1_000_000_000)).unwrap();
    let mut x = PaperExchange::new(
        product.clone(),
        FeeRates {
            maker: Decimal::new(4, 3),
            taker: Decimal::new(6, 3),
        },
        ledger,
    );
    let order = |s: &str, price: Decimal| {
        validate_for(
            &product,
            &OrderRequest {
                product_id: "SKL-USD".into(),
                side: Some(s.into()),
                price: Some(price.to_string()),
                size: Some("100".into()),
                ..OrderRequest::default()
            },
        )
        .unwrap()
    };
    let rounds = 200;
    let mut now = 0i64;
    let mut fills = 0u64;
    let mut events = 0u64;
    let start = Instant::now();
    for _ in 0..rounds {
        for input in &inputs {
            now += 1;
            let out = match input {
                Input::Snapshot(b, a) => {
                    let out = x.on_snapshot(
                        L2Book::from_snapshot(b.iter().copied(), a.iter().copied()),
                        now,
                    );
                    // Keep 100 user orders resting, 50 a side, on the ticks nearest the spread.
                    let (bid, _) = x.book().best_bid().unwrap();
                    let (ask, _) = x.book().best_ask().unwrap();
                    let tick = product.quote_increment;
                    let mut k = Decimal::ZERO;
                    while x.resting_count() < 100 {
                        k += Decimal::ONE;
                        black_box(x.submit(order("buy", bid.get() - tick * k), now).unwrap());
                        black_box(x.submit(order("sell", ask.get() + tick * k), now).unwrap());
                    }
                    out
                }
                Input::L2(s, p, q) => x.on_l2(*s, *p, *q, now),
                Input::Trade(p, q, s) => x.on_trade(*p, *q, *s, now),
            };
            events += 1;
            fills += out
                .iter()
                .filter(|e| matches!(e, PaperEvent::Fill { .. }))
                .count() as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "paper model: {} feed events ({} per replay x {rounds}) with 100 resting user orders: {:.2} M events/s, {:.0} ns/event, {fills} fills",
        events,
        inputs.len(),
        events as f64 / secs / 1e6,
        secs * 1e9 / events as f64
    );
}
