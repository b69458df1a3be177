//! Replays the real SKL-USD level-2 and trade recording of 2021-04-17
//! (cryptofeed fixture, see tests/fixtures/cryptofeed/PROVENANCE.txt)
//! through the paper fill model with user orders resting in and around the
//! spread.
#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use rust_decimal::Decimal;
use serde_json::Value;
use virc_core::{
    book::L2Book,
    ledger::{FeeRates, Ledger},
    money::{Price, Size},
    order::{OrderRequest, Side, validate_for},
    paper::{Liquidity, PaperEvent, PaperExchange},
    product::Catalogue,
};

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

/// Runs the replay; returns every event, the final exchange, and the trade ids seen.
fn replay() -> (Vec<PaperEvent>, PaperExchange, Vec<u64>, usize) {
    let catalogue =
        Catalogue::from_json(include_str!("fixtures/cryptofeed/products-2021-04-17.json")).unwrap();
    let product = catalogue.get("SKL-USD").unwrap().clone();
    let mut ledger = Ledger::default();
    ledger.deposit("USD", Decimal::from(100_000)).unwrap();
    ledger.deposit("SKL", Decimal::from(100_000)).unwrap();
    let rates = FeeRates {
        maker: Decimal::new(4, 3),
        taker: Decimal::new(6, 3),
    };
    let mut x = PaperExchange::new(product.clone(), rates, ledger);
    let mut events = Vec::new();
    let mut trade_ids = Vec::new();
    let mut crossed = 0;
    let text = include_str!("fixtures/cryptofeed/skl-usd-ws-2021-04-17.jsonl");
    for (n, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        let now = i64::try_from(n).unwrap();
        match v["type"].as_str().unwrap() {
            "snapshot" => {
                events.extend(x.on_snapshot(
                    L2Book::from_snapshot(levels(&v["bids"]), levels(&v["asks"])),
                    now,
                ));
                let (bid, _) = x.book().best_bid().unwrap();
                let (ask, _) = x.book().best_ask().unwrap();
                let inc = product.quote_increment;
                let mk = |s: &str, price: Decimal, size: &str| {
                    validate_for(
                        &product,
                        &OrderRequest {
                            product_id: "SKL-USD".into(),
                            side: Some(s.into()),
                            price: Some(price.to_string()),
                            size: Some(size.into()),
                            ..OrderRequest::default()
                        },
                    )
                    .unwrap()
                };
                // At the best bid and ask (behind the displayed queue), and one tick inside the spread (first in line).
                for order in [
                    mk("buy", bid.get(), "500"),
                    mk("sell", ask.get(), "500"),
                    mk("buy", bid.get() + inc, "300"),
                    mk("sell", ask.get() - inc, "300"),
                ] {
                    events.extend(x.submit(order, now).unwrap().1);
                }
            }
            "l2update" => {
                for c in v["changes"].as_array().unwrap() {
                    let (s, p, q) = (
                        c[0].as_str().unwrap(),
                        c[1].as_str().unwrap(),
                        c[2].as_str().unwrap(),
                    );
                    events.extend(x.on_l2(
                        side(s),
                        Price::parse(p).unwrap(),
                        Size::parse(q).unwrap(),
                        now,
                    ));
                }
                if x.book().is_crossed() {
                    crossed += 1;
                }
            }
            "match" | "last_match" => {
                trade_ids.push(v["trade_id"].as_u64().unwrap());
                let (p, q) = (v["price"].as_str().unwrap(), v["size"].as_str().unwrap());
                events.extend(x.on_trade(
                    Price::parse(p).unwrap(),
                    Size::parse(q).unwrap(),
                    side(v["side"].as_str().unwrap()),
                    now,
                ));
            }
            _ => {}
        }
    }
    (events, x, trade_ids, crossed)
}

#[test]
fn replay_of_real_trades_and_book_updates_fills_our_orders_consistently() {
    let (events, x, mut trade_ids, crossed) = replay();
    assert_eq!(
        crossed, 0,
        "the recorded book never crosses once rebuilt from snapshot + updates"
    );
    trade_ids.sort_unstable();
    assert!(
        trade_ids.windows(2).all(|w| w[1] == w[0] + 1),
        "trade ids are contiguous"
    );

    let mut usd = Decimal::from(100_000);
    let mut skl = Decimal::from(100_000);
    let mut maker_fills = 0;
    for e in &events {
        if let PaperEvent::Fill { liquidity, .. } = e {
            assert_eq!(
                *liquidity,
                Liquidity::Maker,
                "no order was marketable on arrival"
            );
            maker_fills += 1;
        }
    }
    assert!(
        maker_fills > 0,
        "the one-tick-inside orders must trade in 30 s of real flow"
    );

    // The ledger moved exactly by the fills: recompute from the order sides.
    let mut sides = std::collections::HashMap::new();
    for e in &events {
        if let PaperEvent::Received { order_id, side, .. } = e {
            sides.insert(*order_id, *side);
        }
    }
    for e in &events {
        if let PaperEvent::Fill {
            order_id,
            price,
            size,
            fee,
            ..
        } = e
        {
            let value = price.get() * size.get();
            match sides[order_id] {
                Side::Buy => {
                    usd -= value + fee;
                    skl += size.get();
                }
                Side::Sell => {
                    usd += value - fee;
                    skl -= size.get();
                }
            }
        }
    }
    assert_eq!(x.ledger().balance("USD").balance, usd);
    assert_eq!(x.ledger().balance("SKL").balance, skl);
    for (_, b) in x.ledger().balances() {
        assert!(b.hold >= Decimal::ZERO && b.hold <= b.balance);
    }
}

#[test]
fn replay_is_deterministic() {
    let a = serde_json::to_string(&replay().0).unwrap();
    let b = serde_json::to_string(&replay().0).unwrap();
    assert_eq!(a, b);
}
