//! End to end: the bundled demo market replayed into the market actor and
//! read back through `virc.v1.Market`.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

use std::{collections::BTreeMap, time::Duration};

use rust_decimal::Decimal;
use tokio_stream::StreamExt as _;
use virc_daemon::config::{Credentials, MarketSource};
use virc_proto::v1::{self as pb, events_client::EventsClient, market_client::MarketClient};
use virc_tests::{TestDaemon, test_config};

const LAST_TRADE: u64 = 8_409_425;

async fn demo(looping: bool) -> (tempfile::TempDir, TestDaemon) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.market.source = MarketSource::Demo;
    config.market.speed = "max".into();
    config.market.looping = looping;
    config.market.update_interval = "50ms".parse().unwrap();
    let d = TestDaemon::start(config, Credentials::default(), vec![])
        .await
        .unwrap();
    (dir, d)
}

async fn ticker_until(
    m: &mut MarketClient<tonic::transport::Channel>,
    done: impl Fn(&pb::Ticker) -> bool,
) -> pb::Ticker {
    for _ in 0..500 {
        if let Ok(r) = m
            .ticker(pb::TickerRequest {
                product_ids: vec!["BTC-USD".into()],
            })
            .await
        {
            let t = r.into_inner().tickers.remove(0);
            if done(&t) {
                return t;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the replay did not get there within 5 s");
}

#[tokio::test]
async fn the_demo_recording_builds_the_market_it_implies() {
    let (_dir, d) = demo(false).await;
    let mut m = MarketClient::new(d.channel().await);
    let t = ticker_until(&mut m, |t| t.trade_id == LAST_TRADE).await;
    assert_eq!(t.price, "453.07", "the recording's last trade");
    assert_eq!(t.best_bid, "", "the recording has trades only");

    let stats = m
        .stats(pb::StatsRequest {
            product_id: "BTC-USD".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let h1 = stats.windows.iter().find(|w| w.window == "1h").unwrap();
    assert_eq!(
        h1.trade_count, 1411,
        "every trade of the hour is in the 1h window"
    );
    assert_eq!(stats.windows.len(), 8);

    let candles = m
        .candles(pb::CandlesRequest {
            product_id: "BTC-USD".into(),
            period: pb::CandlePeriod::CandlePeriod1m as i32,
            limit: 100,
        })
        .await
        .unwrap()
        .into_inner()
        .candles;
    assert_eq!(
        candles.len(),
        59,
        "15:00..15:58 closed; 15:59 is still open"
    );
    assert_eq!(
        candles[0].start.unwrap().seconds,
        1_463_065_200,
        "2016-05-12T15:00:00Z: exchange time, not wall time"
    );
    assert!(
        candles
            .last()
            .unwrap()
            .indicators
            .as_ref()
            .unwrap()
            .rsi14
            .parse::<f64>()
            .is_ok()
    );

    let products = m
        .products(pb::ProductsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .products;
    assert_eq!(
        products.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["BTC-USD"]
    );
    let err = m
        .stats(pb::StatsRequest {
            product_id: "NOPE-USD".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(err.message().contains("BTC-USD"), "{}", err.message());

    let mut events = EventsClient::new(d.channel().await);
    let req = pb::SubscribeRequest {
        from_seq: Some(0),
        kinds: vec![pb::EventKind::MarketUpdate as i32],
        stop_at_head: true,
        ..Default::default()
    };
    let updates: Vec<_> = events
        .subscribe(req)
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert!(!updates.is_empty(), "market_update events were published");
    d.stop().await.unwrap();
}

#[tokio::test]
async fn looping_shifts_time_and_trade_ids_forward() {
    let (_dir, d) = demo(true).await;
    let mut m = MarketClient::new(d.channel().await);
    let t = ticker_until(&mut m, |t| t.trade_id > LAST_TRADE + 10).await;
    let hour_later = 1_463_065_200 + 3600;
    assert!(
        t.time.unwrap().seconds >= hour_later,
        "the second pass is an hour later"
    );
    d.stop().await.unwrap();
}

/// The 2021 capture's own account of each product: its book after the
/// snapshot and every update, in the plainest way, and its trade ids.
struct Implied {
    bids: BTreeMap<String, BTreeMap<Decimal, Decimal>>,
    asks: BTreeMap<String, BTreeMap<Decimal, Decimal>>,
    trades: BTreeMap<String, Vec<u64>>,
}

fn implied(text: &str) -> Implied {
    let mut out = Implied {
        bids: BTreeMap::new(),
        asks: BTreeMap::new(),
        trades: BTreeMap::new(),
    };
    let dec = |v: &serde_json::Value| v.as_str().unwrap().parse::<Decimal>().unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let product = v["product_id"].as_str().unwrap_or_default().to_owned();
        match v["type"].as_str().unwrap() {
            "snapshot" => {
                for (side, book) in [("bids", &mut out.bids), ("asks", &mut out.asks)] {
                    let levels = book.entry(product.clone()).or_default();
                    levels.clear();
                    for l in v[side].as_array().unwrap() {
                        levels.insert(dec(&l[0]), dec(&l[1]));
                    }
                }
            }
            "l2update" => {
                for c in v["changes"].as_array().unwrap() {
                    let book = if c[0] == "buy" {
                        &mut out.bids
                    } else {
                        &mut out.asks
                    };
                    let levels = book.entry(product.clone()).or_default();
                    let (price, size) = (dec(&c[1]), dec(&c[2]));
                    if size.is_zero() {
                        levels.remove(&price);
                    } else {
                        levels.insert(price, size);
                    }
                }
            }
            "match" | "last_match" => out
                .trades
                .entry(product)
                .or_default()
                .push(v["trade_id"].as_u64().unwrap()),
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_2021_capture_builds_the_books_and_tapes_its_messages_imply() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let capture = root.join("virc-daemon/tests/fixtures/cryptofeed/coinbase-ws-2021-04-17.jsonl");
    let implied = implied(&std::fs::read_to_string(&capture).unwrap());
    assert_eq!(
        implied.trades.len(),
        10,
        "ten products trade in the capture"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut config = virc_tests::market_config(dir.path(), &capture, "max");
    config.market.looping = false;
    config.market.products_file =
        Some(root.join("virc-core/tests/fixtures/cryptofeed/products-2021-04-17.json"));
    config.recorder.mode = virc_daemon::config::RecorderMode::On;
    let d = TestDaemon::start(config, Credentials::default(), vec![])
        .await
        .unwrap();
    let ch = d.channel().await;
    let mut m = MarketClient::new(ch.clone());
    // Every product's last trade shows in its ticker once the replay is through.
    for _ in 0..500 {
        let tickers = m
            .ticker(pb::TickerRequest::default())
            .await
            .unwrap()
            .into_inner()
            .tickers;
        let done = implied.trades.iter().all(|(p, ids)| {
            tickers
                .iter()
                .any(|t| t.product_id == *p && Some(&t.trade_id) == ids.iter().max())
        });
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dec = |s: &str| s.parse::<Decimal>().unwrap();
    for (product, bids) in &implied.bids {
        let book = m
            .book(pb::BookRequest {
                product_id: product.clone(),
                depth: 100_000,
            })
            .await
            .unwrap()
            .into_inner();
        let side = |levels: &[pb::BookLevel]| -> BTreeMap<Decimal, Decimal> {
            levels
                .iter()
                .map(|l| (dec(&l.price), dec(&l.size)))
                .collect()
        };
        assert_eq!(&side(&book.bids), bids, "{product} bids");
        assert_eq!(&side(&book.asks), &implied.asks[product], "{product} asks");
        assert!(
            book.bids.first().map(|b| dec(&b.price)) < book.asks.first().map(|a| dec(&a.price)),
            "{product} book is not crossed"
        );
    }
    // The recorded tape of each product is the capture's, contiguous, with no gap.
    for (product, ids) in &implied.trades {
        let mut stream = m
            .export_trades(pb::ExportTradesRequest {
                product_id: product.clone(),
                from: None,
                to: None,
            })
            .await
            .unwrap()
            .into_inner();
        let mut tape = Vec::new();
        while let Some(t) = stream.message().await.unwrap() {
            tape.push(t.trade_id);
        }
        let mut want = ids.clone();
        want.sort_unstable();
        want.dedup();
        assert_eq!(tape, want, "{product} tape");
        assert!(
            tape.windows(2).all(|w| w[1] == w[0] + 1),
            "{product} trade ids are contiguous"
        );
    }
    let gaps = EventsClient::new(ch)
        .subscribe(pb::SubscribeRequest {
            from_seq: Some(0),
            kinds: vec![pb::EventKind::FeedGap as i32],
            stop_at_head: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .collect::<Vec<_>>()
        .await;
    assert!(gaps.is_empty(), "no feed gap: {gaps:?}");
    d.stop().await.unwrap();
}
