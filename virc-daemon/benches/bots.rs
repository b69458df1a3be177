//! Bench binary (prints figures) for the bot runtime with 1,000 bots:
//! tick-to-command latency (a trade that fills one bot's buy, in; that
//! bot's sell order handed to the exchange, and accepted by it, out), inside the runtime and
//! as a subscriber sees the order event; the `Bots.List` round trip; the
//! daemon's RSS; and restart-to-reconciled time. Run with `cargo bench -p virc-daemon --bench bots`.
#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    reason = "a bench fails loudly and prints approximate figures"
)]

use std::{
    collections::BTreeMap,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use hyper_util::rt::TokioIo;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint, Uri};
use virc_core::{
    ids::ProductId,
    ledger::FeeRates,
    market::Trade,
    money::{Price, Size},
    order::Side,
    product::Catalogue,
};
use virc_daemon::{
    clock::SystemClock,
    config::EventsConfig,
    events::{EventBus, Filter},
    exchange::sim::SimExchange,
    market::{DEMO_PRODUCTS, Input},
    runtime::{Runtime, Venue},
    store::Store,
};
use virc_proto::v1::{self as pb, bot_spec::Kind, bots_client::BotsClient, event::Payload};

const BOTS: usize = 1000;

fn spec(i: usize) -> pb::CreateBotRequest {
    // Distinct buy prices 60.00, 60.01, ...: a trade printed at one of them
    // (buyer as maker) fills that bot and no bot below it.
    let buy = Decimal::new(6000 + i64::try_from(i).unwrap(), 2);
    pb::CreateBotRequest {
        spec: Some(pb::BotSpec {
            name: format!("bench-{i}"),
            exchange: String::new(),
            kind: Some(Kind::Range(pb::RangeSpec {
                product_id: "BTC-USD".into(),
                size: "0.1".into(),
                buy_price: buy.to_string(),
                sell_price: "200.00".into(),
                r#loop: true,
                begin_with_sell: false,
                force: false,
            })),
        }),
        if_absent: false,
    }
}

fn pct(v: &[Duration], p: usize) -> Duration {
    v[(v.len() * p / 100).min(v.len() - 1)]
}

async fn tick_to_command() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let stop = CancellationToken::new();
    let cfg = EventsConfig {
        fsync: false,
        ..EventsConfig::default()
    };
    let (bus, events) =
        EventBus::new(store.events(), cfg, Arc::new(SystemClock), stop.clone()).unwrap();
    tokio::spawn(bus.run(stop.clone()));
    let catalogue = Catalogue::from_json(DEMO_PRODUCTS).unwrap();
    let rates = FeeRates {
        maker: Decimal::new(4, 3),
        taker: Decimal::new(6, 3),
    };
    let wallet = vec![("USD".to_owned(), Decimal::from(1_000_000))];
    let exchange = SimExchange::open("paper", catalogue, rates, &wallet, &store).unwrap();
    let venues = BTreeMap::from([(
        "paper".to_owned(),
        Venue {
            exchange: virc_daemon::exchange::Connector::Sim(exchange),
            endpoint: "bench".into(),
        },
    )]);
    let (runtime, handle) = Runtime::new(
        venues,
        "paper".into(),
        store.clone(),
        events.clone(),
        Arc::new(SystemClock),
    )
    .unwrap();
    tokio::spawn(runtime.run(stop.clone()));
    let t = Instant::now();
    for i in 0..BOTS {
        handle.create(spec(i)).await.unwrap();
    }
    println!(
        "create   {BOTS} bots in {:.2?} ({:.0} µs each, flushed before each reply)",
        t.elapsed(),
        t.elapsed().as_micros() as f64 / BOTS as f64
    );
    let mut orders = events
        .subscribe(
            None,
            Filter::new(vec![], vec![], vec![pb::EventKind::Order as i32]),
            false,
        )
        .await
        .unwrap();
    let mut lat = Vec::with_capacity(BOTS);
    // `VIRC_BENCH_PACE_US=2000`: a pause after each tick, as between the
    // trades of a calm market, instead of the next tick at once.
    let pace = std::env::var("VIRC_BENCH_PACE_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_micros);
    let mut trade_id = 1;
    for i in (0..BOTS).rev() {
        let price = Price::new(Decimal::new(6000 + i64::try_from(i).unwrap(), 2)).unwrap();
        trade_id += 1;
        let trade = Trade {
            time: 1_463_065_200_000_000_000 + i64::try_from(trade_id).unwrap(),
            trade_id,
            price,
            size: Size::new(Decimal::new(1, 1)).unwrap(),
        };
        let t = Instant::now();
        handle
            .market(Input::Trade(
                ProductId::parse("BTC-USD").unwrap(),
                trade,
                Side::Buy,
            ))
            .await;
        // Out: the filled bot's sell is received by the exchange.
        loop {
            let e = orders.recv().await.unwrap().unwrap();
            if let Some(Payload::Order(u)) = &e.payload
                && u.change == "received"
                && u.order
                    .as_ref()
                    .is_some_and(|o| o.side == pb::Side::Sell as i32)
            {
                break;
            }
        }
        lat.push(t.elapsed());
        if let Some(pause) = pace {
            tokio::time::sleep(pause).await;
        }
    }
    let figures = handle.tick_latency().await;
    for (what, samples) in [
        ("sent to the exchange", figures.sent),
        ("accepted by it     ", figures.accepted),
    ] {
        let mut inside = Vec::from(samples);
        if std::env::var("VIRC_BENCH_TRACE").is_ok() {
            eprintln!(
                "{what}: {:?}",
                inside.iter().map(Duration::as_micros).collect::<Vec<_>>()
            );
        }
        inside.sort();
        println!(
            "tick→command {what}, {BOTS} running bots: p50 {:.1?}  p90 {:.1?}  p99 {:.1?}  max {:.1?}  ({} ticks)",
            pct(&inside, 50),
            pct(&inside, 90),
            pct(&inside, 99),
            inside[inside.len() - 1],
            inside.len()
        );
    }
    lat.sort();
    println!(
        "tick→event  to a subscriber, {BOTS} running bots: p50 {:.1?}  p99 {:.1?}  max {:.1?}  ({} ticks)",
        pct(&lat, 50),
        pct(&lat, 99),
        lat[lat.len() - 1],
        lat.len()
    );
    stop.cancel();
}

async fn connect(path: &Path) -> Option<Channel> {
    let path = path.to_owned();
    Endpoint::from_static("http://virc.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .ok()
}

fn spawn(dir: &Path) -> std::process::Child {
    std::fs::write(
        dir.join("virc.toml"),
        format!(
            "[daemon]\ndata_dir = \"{}\"\nsocket = \"{}\"\n[market]\nsource = \"none\"\n[exchanges.paper]\nwallet = {{ USD = \"1000000\" }}\n",
            dir.join("data").display(),
            dir.join("d.sock").display()
        ),
    )
    .unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_virc-daemon"))
        .arg("--config")
        .arg(dir.join("virc.toml"))
        .env_remove("VIRC_CONFIG")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn list_until_ready(sock: &Path) -> (BotsClient<Channel>, usize) {
    loop {
        if let Some(ch) = connect(sock).await {
            let mut c = BotsClient::new(ch);
            if let Ok(r) = c.list(pb::ListBotsRequest::default()).await {
                return (c, r.into_inner().bots.len());
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn process_figures() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("d.sock");
    let mut child = spawn(dir.path());
    let (mut bots, _) = list_until_ready(&sock).await;
    for i in 0..BOTS {
        bots.create(spec(i)).await.unwrap();
    }
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let n = bots
            .list(pb::ListBotsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .bots
            .len();
        assert_eq!(n, BOTS);
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "Bots.List of {BOTS} bots (RPC round trip): p50 {:.2?}  max {:.2?}",
        pct(&times, 50),
        times[times.len() - 1]
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: ?")
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ");
    println!("RSS      virc-daemon with {BOTS} running bots: {rss}");
    // A graceful stop, then time from exec to every bot reconciled and listed.
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let t = Instant::now();
    let mut child = spawn(dir.path());
    let (_, n) = list_until_ready(&sock).await;
    println!(
        "restart  exec → {n} bots reconciled and listed: {:.2?}",
        t.elapsed()
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("VIRC_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        builder.worker_threads(n);
    }
    let rt = builder.enable_all().build().unwrap();
    rt.block_on(async {
        tick_to_command().await;
        // `VIRC_BENCH_ONLY=tick`: the tick figures alone, for a profiler;
        // `VIRC_BENCH_TRACE=1` also prints every tick's latency, in order.
        if std::env::var("VIRC_BENCH_ONLY").as_deref() != Ok("tick") {
            process_figures().await;
        }
    });
}
