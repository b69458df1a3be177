//! The crash harness: kills the daemon with SIGKILL at random moments while
//! bots of every kind trade on the simulated exchange (three looping range
//! bots, a grid, a looping conditional bot and a trailing stop-loss whose
//! stop rests on the exchange), restarts it, and checks against the
//! exchange's own record that no order was lost or placed twice and that
//! every bot's ledger matches its fills.
//!
//! The suite runs a few rounds; a long run is
//! `VIRC_CRASH_ROUNDS=200 cargo test --release -p virc-daemon --test crash -- --nocapture`
//! (`VIRC_CRASH_SEED` replays a run).
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

mod common;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use common::{Guard, Rng, check_bot, check_intents, d, ready};
use rust_decimal::Decimal;
use virc_proto::v1::{
    self as pb, account_client::AccountClient, bot_spec::Kind, bots_client::BotsClient,
};

fn spawn(dir: &Path) -> Guard {
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("virc-daemon"))
        .arg("--config")
        .arg(dir.join("virc.toml"))
        .env_remove("VIRC_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    Guard(child)
}

fn setup(dir: &Path) -> PathBuf {
    // Down through every bot's bid, up through every bot's ask, one trade a second.
    let mut tape = String::new();
    let swing = ["100.00", "93.00", "100.00", "107.00"];
    for i in 0..400 {
        let p = swing[i % 4];
        let side = if p == "93.00" { "buy" } else { "sell" };
        let _ = writeln!(
            tape,
            r#"{{"type":"match","trade_id":{},"maker_order_id":"00000000-0000-0000-0000-000000000000","taker_order_id":"00000000-0000-0000-0000-000000000000","side":"{side}","size":"0.25","price":"{p}","product_id":"BTC-USD","time":"2016-05-12T15:{:02}:{:02}.000000Z"}}"#,
            i + 1,
            i / 60,
            i % 60
        );
    }
    std::fs::write(dir.join("tape.jsonl"), tape).unwrap();
    let sock = dir.join("virc.sock");
    std::fs::write(
        dir.join("virc.toml"),
        format!(
            "[daemon]\ndata_dir = \"{}\"\nsocket = \"{}\"\n\n[events]\nfsync = false\n\n[market]\nsource = \"replay\"\nreplay_file = \"{}\"\nspeed = \"50x\"\n",
            dir.join("data").display(),
            sock.display(),
            dir.join("tape.jsonl").display()
        ),
    )
    .unwrap();
    sock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_and_duplicates_no_order() {
    let rounds: u32 = std::env::var("VIRC_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed: u64 = std::env::var("VIRC_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) * 0x9E37_79B9 + 1);
    eprintln!("crash harness: {rounds} rounds, VIRC_CRASH_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let sock = setup(dir.path());

    let mut daemon = spawn(dir.path());
    let ch = ready(&sock).await;
    let mut bots = BotsClient::new(ch.clone());
    for (name, size, buy, sell) in [
        ("a", "0.1", "95.00", "105.00"),
        ("b", "0.06", "96.50", "103.50"),
        ("c", "0.2", "94.00", "106.00"),
    ] {
        common::create_range(&ch, "", name, size, buy, sell)
            .await
            .unwrap();
    }
    let grid = Kind::Grid(pb::GridSpec {
        product_id: "BTC-USD".into(),
        lower_price: "95".into(),
        upper_price: "105".into(),
        levels: 5,
        spacing: pb::GridSpacing::Arithmetic as i32,
        sizing: Some(pb::grid_spec::Sizing::SizePerLevel("0.06".into())),
        stop_loss_price: String::new(),
        take_profit_price: String::new(),
    });
    let step = |s: pb::conditional_step::Step| pb::ConditionalStep { step: Some(s) };
    let order = |side: pb::Side| {
        step(pb::conditional_step::Step::Order(pb::ConditionalOrder {
            side: side as i32,
            size: "0.06".into(),
            price: "mkt".into(),
        }))
    };
    let when = |rule: &str| {
        step(pb::conditional_step::Step::When(pb::RuleCondition {
            rule: rule.into(),
            syntax: pb::RuleSyntax::Infix as i32,
        }))
    };
    let conditional = Kind::Conditional(pb::ConditionalSpec {
        steps: vec![
            when("ticker.price <= 95"),
            order(pb::Side::Buy),
            when("ticker.price >= 105"),
            order(pb::Side::Sell),
        ],
        r#loop: true,
        product_id: "BTC-USD".into(),
    });
    let stop_loss = Kind::StopLoss(pb::StopLossSpec {
        product_id: "BTC-USD".into(),
        amount: Some(pb::stop_loss_spec::Amount::Size("0.1".into())),
        trigger: Some(pb::stop_loss_spec::Trigger::TrailingPercent("15".into())),
        limit_offset: "1.00".into(),
        guard_bot_id: String::new(),
        guard_product: false,
    });
    // The grid and the stop-loss need a price to be laid and armed.
    for _ in 0..200 {
        let t = virc_proto::v1::market_client::MarketClient::new(ready(&sock).await)
            .ticker(pb::TickerRequest::default())
            .await
            .unwrap()
            .into_inner()
            .tickers;
        if !t.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (name, kind) in [("g", grid), ("cond", conditional), ("sl", stop_loss)] {
        bots.create(pb::CreateBotRequest {
            spec: Some(pb::BotSpec {
                name: name.into(),
                exchange: String::new(),
                kind: Some(kind),
            }),
            if_absent: false,
        })
        .await
        .unwrap();
    }
    for round in 0..rounds {
        let wait = rng.between(50, 600);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        // SIGKILL: no shutdown, no flush, whatever the daemon was doing.
        daemon.0.kill().unwrap();
        daemon.0.wait().unwrap();
        eprintln!("round {round}: killed after {wait} ms");
        daemon = spawn(dir.path());
        ready(&sock).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ch = ready(&sock).await;
    let mut bots = BotsClient::new(ch.clone());
    let stopped = bots
        .stop_all(pb::StopAllBotsRequest {})
        .await
        .unwrap()
        .into_inner()
        .bots;
    assert_eq!(stopped.len(), 6, "every bot came back running: {stopped:?}");
    let mut total = 0;
    for b in &stopped {
        assert_eq!(b.status, pb::BotStatus::Stopped as i32, "{b:?}");
        match b.kind.as_str() {
            "range" | "conditional" => total += check_bot(&ch, b).await,
            _ => {
                let (orders, _) = check_intents(&ch, b).await;
                assert!(!orders.is_empty(), "bot {} placed orders", b.name);
            }
        }
    }
    eprintln!("{total} cycles completed across {rounds} crashes");
    assert!(total > 0, "the bots traded");
    // The books balance: nothing is held once every bot has stopped.
    let balances = AccountClient::new(ch)
        .balances(pb::BalancesRequest::default())
        .await
        .unwrap()
        .into_inner();
    for b in &balances.balances {
        assert_eq!(d(&b.hold), Decimal::ZERO, "{b:?}");
    }
}
