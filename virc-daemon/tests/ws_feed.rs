//! The live feed client against a Coinbase-shaped WebSocket server on
//! loopback: it subscribes, turns frames into the market, skips garbage,
//! notices a stall, reconnects, resubscribes, takes the fresh snapshot as
//! the book, and fetches the trades it missed from REST, in order.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

mod common;

use std::{
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use virc_core::product::Catalogue;
use virc_daemon::{
    clock::SystemClock,
    config::EventsConfig,
    events::EventBus,
    exchange::coinbase::{
        http::{client::RestClient, limiter::RateLimits},
        ws::client::{FeedConfig, FeedStats, run},
    },
    market::{DEMO_PRODUCTS, MarketActor},
    recorder::{Recorder, Retention, TradeLog},
    store::Store,
};

fn matched(id: u64, price: &str, second: u32) -> String {
    format!(
        r#"{{"type":"match","trade_id":{id},"maker_order_id":"00000000-0000-0000-0000-000000000000","taker_order_id":"00000000-0000-0000-0000-000000000000","side":"buy","size":"0.5","price":"{price}","product_id":"BTC-USD","sequence":{},"time":"2026-11-27T00:00:{second:02}.000000Z"}}"#,
        100 + id
    )
}

fn snapshot(bid: &str, ask: &str) -> String {
    format!(
        r#"{{"type":"snapshot","product_id":"BTC-USD","bids":[["{bid}","1.0"]],"asks":[["{ask}","2.0"]]}}"#
    )
}

/// The event bus (running) and a market actor on the bundled products (to be run).
fn market(
    store: &Store,
    stop: &CancellationToken,
) -> (
    virc_daemon::events::EventsHandle,
    MarketActor,
    virc_daemon::market::MarketHandle,
) {
    let (bus, events) = EventBus::new(
        store.events(),
        EventsConfig {
            fsync: false,
            ..EventsConfig::default()
        },
        Arc::new(SystemClock),
        stop.clone(),
    )
    .unwrap();
    tokio::spawn(bus.run(stop.clone()));
    let (actor, market) = MarketActor::new(
        Catalogue::from_json(DEMO_PRODUCTS).unwrap(),
        events.clone(),
        Duration::from_millis(50),
    );
    (events, actor, market)
}

/// Each connection gets the next script, then silence.
async fn server(scripts: Vec<Vec<String>>, subscribes: Arc<Mutex<Vec<String>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for script in scripts {
            let (sock, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(sock).await.unwrap();
            let Some(Ok(Message::Text(sub))) = ws.next().await else {
                panic!("no subscribe");
            };
            subscribes.lock().unwrap().push(sub.to_string());
            for frame in script {
                ws.send(Message::text(frame)).await.unwrap();
            }
            // Silence, connection kept open: the client must notice the stall.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(ws);
            });
        }
    });
    format!("ws://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_reconnects_after_a_stall_and_resyncs() {
    let subscribes = Arc::new(Mutex::new(Vec::new()));
    let url = server(
        vec![
            vec![
                r#"{"type":"subscriptions","channels":[{"name":"matches","product_ids":["BTC-USD"]}]}"#.into(),
                snapshot("100.00", "101.00"),
                matched(1, "100.00", 1),
                r#"{"type":"l2update","product_id":"BTC-USD","changes":[["buy","100.50","0.3"]],"time":"2026-11-27T00:00:01.500000Z"}"#.into(),
                r#"{"type":"match","trade_id":"not a number"}"#.into(),
                r#"{"type":"mystery"}"#.into(),
                matched(2, "100.50", 2),
            ],
            vec![
                snapshot("99.00", "102.00"),
                matched(5, "99.50", 9),
                // Trades 6 and 7 never come as matches; the heartbeat says they happened.
                r#"{"type":"heartbeat","last_trade_id":7,"product_id":"BTC-USD","sequence":120,"time":"2026-11-27T00:00:09.500000Z"}"#.into(),
            ],
        ],
        subscribes.clone(),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let stop = CancellationToken::new();
    let (events, actor, market) = market(&store, &stop);
    let log = TradeLog::open(&store).unwrap();
    let actor = actor.with_recorder(Recorder::new(
        log.clone(),
        Retention {
            default: Duration::from_secs(86_400),
            by_product: std::collections::HashMap::new(),
        },
    ));
    tokio::spawn(actor.run(stop.clone()));
    // Trades 3 and 4 happen while the feed is away; REST has them (newest first, paged).
    // Trade `id` at second `id + 3` (2 and 5 at 2 s and 9 s, as their matches).
    let rest_trade = |id: u64, price: &str| {
        let second = match id {
            2 => 2,
            5 => 9,
            n => n + 3,
        };
        format!(
            r#"{{"time":"2026-11-27T00:00:{second:02}.000000Z","trade_id":{id},"price":"{price}","size":"0.1","side":"sell"}}"#
        )
    };
    let page1 = format!("[{},{}]", rest_trade(4, "99.80"), rest_trade(3, "99.90"));
    let page2 = format!("[{}]", rest_trade(2, "100.50"));
    let page3 = format!(
        "[{},{},{}]",
        rest_trade(7, "98.75"),
        rest_trade(6, "99.00"),
        rest_trade(5, "99.50")
    );
    let rest_url = common::http_server(Arc::new(move |_, path, _, _| match path {
        "/products/BTC-USD/trades?after=5" => common::reply(200, &page1, "cb-after: 3\r\n"),
        "/products/BTC-USD/trades?after=3" => common::reply(200, &page2, "cb-after: 2\r\n"),
        "/products/BTC-USD/trades?after=8" => common::reply(200, &page3, "cb-after: 5\r\n"),
        _ => common::reply(404, r#"{"message":"NotFound"}"#, ""),
    }))
    .await;
    let rest = RestClient::new(
        &rest_url,
        None,
        RateLimits::default(),
        Duration::from_secs(5),
        Arc::new(SystemClock),
    )
    .unwrap();
    let stats = Arc::new(FeedStats::default());
    let config = FeedConfig {
        url,
        products: vec!["BTC-USD".into()],
        channels: vec!["matches".into(), "level2_batch".into(), "heartbeat".into()],
        stall: Duration::from_millis(300),
        max_backoff: Duration::from_secs(2),
        rest: Some(rest),
        events: Some(events),
    };
    tokio::spawn(run(config, market.clone(), stats.clone(), stop.clone()));

    let mut ticker = None;
    for _ in 0..500 {
        let t = market.ticker(vec!["BTC-USD".into()]).await;
        if t.first().is_some_and(|t| t.trade_id == 7) {
            ticker = t.into_iter().next();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ticker = ticker.expect("the second connection's trade arrives");
    assert_eq!(ticker.price, "98.75");
    // The fresh snapshot replaced the book.
    let book = market.book("BTC-USD".into(), 10).await.unwrap();
    assert_eq!(
        (book.bids[0].price.as_str(), book.asks[0].price.as_str()),
        ("99.00", "102.00")
    );
    let subs = subscribes.lock().unwrap().clone();
    assert_eq!(subs.len(), 2, "subscribed again after the stall");
    let sub: serde_json::Value = serde_json::from_str(&subs[1]).unwrap();
    assert_eq!(sub["type"], "subscribe");
    assert_eq!(sub["product_ids"][0], "BTC-USD");
    assert_eq!(sub["channels"].as_array().unwrap().len(), 3);
    assert_eq!(stats.connections.load(Ordering::Relaxed), 2);
    assert_eq!(stats.malformed.load(Ordering::Relaxed), 1);
    // Trades 3 and 4, missed while disconnected, were fetched and fed in order: no gap.
    assert_eq!(stats.backfilled.load(Ordering::Relaxed), 4);
    let tape: Vec<u64> = log
        .range("BTC-USD", i64::MIN, i64::MAX, 100)
        .unwrap()
        .iter()
        .map(|(t, _)| t.trade_id)
        .collect();
    assert_eq!(tape, [1, 2, 3, 4, 5, 6, 7]);
    assert!(log.gaps("BTC-USD", i64::MIN, i64::MAX).unwrap().is_empty());
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_trades_paper_on_a_live_feed() {
    let subscribes = Arc::new(Mutex::new(Vec::new()));
    let url = server(
        vec![vec![
            snapshot("100.00", "101.00"),
            matched(1, "100.00", 1),
            matched(2, "100.25", 2),
        ]],
        subscribes.clone(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let products = dir.path().join("products.json");
    std::fs::write(&products, DEMO_PRODUCTS).unwrap();
    let sock = dir.path().join("virc.sock");
    std::fs::write(
        dir.path().join("virc.toml"),
        format!(
            "[daemon]\ndata_dir = \"{}\"\nsocket = \"{}\"\n\n[events]\nfsync = false\n\n[market]\nsource = \"coinbase\"\nfeed_url = \"{url}\"\nproducts = [\"BTC-USD\"]\nproducts_file = \"{}\"\n",
            dir.path().join("data").display(),
            sock.display(),
            products.display()
        ),
    )
    .unwrap();
    let _daemon = common::Guard(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("virc-daemon"))
            .arg("--config")
            .arg(dir.path().join("virc.toml"))
            .env_remove("VIRC_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ch = common::ready(&sock).await;
    let mut m = virc_proto::v1::market_client::MarketClient::new(ch);
    let mut last = 0;
    for _ in 0..500 {
        let t = m
            .ticker(virc_proto::v1::TickerRequest::default())
            .await
            .unwrap()
            .into_inner()
            .tickers;
        last = t.first().map_or(0, |t| t.trade_id);
        if last == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(last, 2, "the live trades reach the daemon's market");
    let sub: serde_json::Value = serde_json::from_str(&subscribes.lock().unwrap()[0]).unwrap();
    assert_eq!(
        sub["channels"],
        serde_json::json!(["heartbeat", "matches", "level2_batch"])
    );
}

/// Against the Coinbase emulator, signed for `full` and `level2`: the
/// emulator loses messages, the client sees the sequence jump, fetches the
/// book again and back-fills the lost trades, so the tape stays contiguous
/// and the book matches the exchange's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_channel_gap_resyncs_the_book_and_the_tape() {
    use rust_decimal_macros::dec;
    let em = common::start_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let stop = CancellationToken::new();
    let (events, actor, market) = market(&store, &stop);
    tokio::spawn(actor.run(stop.clone()));
    let signer = virc_daemon::exchange::coinbase::http::signer::Signer::new(
        &common::emulator_account().credentials(),
    )
    .unwrap();
    let rest = RestClient::new(
        &em.rest_url,
        Some(signer),
        RateLimits::default(),
        Duration::from_secs(5),
        Arc::new(SystemClock),
    )
    .unwrap();
    let stats = Arc::new(FeedStats::default());
    let config = FeedConfig {
        url: em.ws_url.clone(),
        products: vec!["BTC-USD".into()],
        channels: vec!["full".into(), "level2".into(), "heartbeat".into()],
        stall: Duration::from_secs(5),
        max_backoff: Duration::from_secs(2),
        rest: Some(rest),
        events: Some(events),
    };
    tokio::spawn(run(config, market.clone(), stats.clone(), stop.clone()));
    for _ in 0..200 {
        if stats.frames.load(Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    em.rest("BTC-USD", false, dec!(451.00), dec!(3)).unwrap();
    em.rest("BTC-USD", true, dec!(449.00), dec!(3)).unwrap();
    em.take("BTC-USD", true, dec!(451.00), dec!(0.5)).unwrap(); // trade 1
    // Lost: the next received, match (trade 2) and done.
    em.faults().skip_next("BTC-USD", 4);
    em.take("BTC-USD", true, dec!(451.00), dec!(0.5)).unwrap(); // trade 2
    em.take("BTC-USD", false, dec!(449.00), dec!(0.25)).unwrap(); // trade 3
    em.rest("BTC-USD", false, dec!(452.00), dec!(1)).unwrap();
    let mut last = 0;
    for _ in 0..300 {
        let t = market.ticker(vec!["BTC-USD".into()]).await;
        last = t.first().map_or(0, |t| t.trade_id);
        if last == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(last, 3);
    assert!(
        stats.resyncs.load(Ordering::Relaxed) >= 1,
        "the gap was seen"
    );
    assert_eq!(
        stats.backfilled.load(Ordering::Relaxed),
        1,
        "trade 2 came back from REST"
    );
    // The book agrees with the exchange's once the last update is in.
    let mut same = false;
    for _ in 0..200 {
        let book = market.book("BTC-USD".into(), 10).await.unwrap();
        let d = |t: &str| t.parse::<rust_decimal::Decimal>().unwrap();
        let ours: Vec<_> = book
            .asks
            .iter()
            .map(|l| (d(&l.price), d(&l.size)))
            .collect();
        if ours == [(dec!(451.00), dec!(2)), (dec!(452.00), dec!(1))]
            && book.bids.first().map(|l| (d(&l.price), d(&l.size))) == Some((dec!(449), dec!(2.75)))
        {
            same = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(same, "{:?}", market.book("BTC-USD".into(), 10).await);
    stop.cancel();
}
