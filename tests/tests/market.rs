//! End to end: the bundled demo market replayed into the market actor and
//! read back through `virc.v1.Market`.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

use std::time::Duration;

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
