//! The crash harness: kills the daemon with SIGKILL at random moments while
//! several looping range bots trade on the simulated exchange, restarts it,
//! and checks against the exchange's own record that no order was lost or
//! placed twice and that every bot's ledger matches its fills.
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

use common::{Guard, ready};
use rust_decimal::Decimal;
use tonic::transport::Channel;
use virc_core::ids::{BotId, ClientOid};
use virc_proto::v1::{
    self as pb, account_client::AccountClient, bot_spec::Kind, bots_client::BotsClient,
    orders_client::OrdersClient,
};

/// A small deterministic generator (xorshift), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

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

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// Checks one bot against the exchange's record; returns its completed cycles.
async fn check_bot(ch: &Channel, bot: &pb::Bot) -> u64 {
    let bot_id = BotId::parse(&bot.id).unwrap();
    let orders = OrdersClient::new(ch.clone())
        .list(pb::ListOrdersRequest {
            bot_id: bot.id.clone(),
            statuses: vec![
                pb::OrderStatus::Pending as i32,
                pb::OrderStatus::Open as i32,
                pb::OrderStatus::Done as i32,
                pb::OrderStatus::Rejected as i32,
            ],
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .orders;
    let fills = AccountClient::new(ch.clone())
        .fills(pb::FillsRequest {
            bot_id: bot.id.clone(),
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .fills;
    let (mut realized, mut fees, mut cycles) = (Decimal::ZERO, Decimal::ZERO, 0);
    let (mut bought, mut cycle_fees) = (Decimal::ZERO, Decimal::ZERO);
    for step in 1..=orders.len() as u64 {
        let cid = ClientOid::for_intent(bot_id, step, 0).to_string();
        let placed: Vec<&pb::Order> = orders.iter().filter(|o| o.client_oid == cid).collect();
        assert_eq!(
            placed.len(),
            1,
            "bot {} step {step}: {} orders for one intent (lost or duplicated)",
            bot.name,
            placed.len()
        );
        let o = placed[0];
        let expected_side = if step % 2 == 1 {
            pb::Side::Buy
        } else {
            pb::Side::Sell
        };
        assert_eq!(o.side, expected_side as i32, "bot {} step {step}", bot.name);
        let mine: Vec<&pb::Fill> = fills.iter().filter(|f| f.order_id == o.id).collect();
        let size: Decimal = mine.iter().map(|f| d(&f.size)).sum();
        assert_eq!(size, d(&o.filled_size), "fills add up to the order");
        let value: Decimal = mine.iter().map(|f| d(&f.price) * d(&f.size)).sum();
        let fee: Decimal = mine.iter().map(|f| d(&f.fee)).sum();
        fees += fee;
        cycle_fees += fee;
        if step < orders.len() as u64 {
            assert_eq!(
                o.done_reason,
                pb::DoneReason::Filled as i32,
                "bot {} step {step} is not the last, so it filled",
                bot.name
            );
        }
        if expected_side == pb::Side::Buy {
            bought += value;
        } else if o.done_reason == pb::DoneReason::Filled as i32 {
            realized += value - bought - cycle_fees;
            cycles += 1;
            bought = Decimal::ZERO;
            cycle_fees = Decimal::ZERO;
        }
    }
    assert_eq!(
        orders.len(),
        orders
            .iter()
            .filter(|o| o.client_oid.parse::<uuid::Uuid>().is_ok())
            .count()
    );
    let pnl = bot.pnl.clone().unwrap();
    assert_eq!(pnl.cycles, cycles, "bot {} cycles", bot.name);
    assert_eq!(
        d(&pnl.realized_profit),
        realized,
        "bot {} realized",
        bot.name
    );
    assert_eq!(d(&pnl.fees_paid), fees, "bot {} fees", bot.name);
    cycles
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
    let mut bots = BotsClient::new(ch);
    for (name, size, buy, sell) in [
        ("a", "0.1", "95.00", "105.00"),
        ("b", "0.06", "96.50", "103.50"),
        ("c", "0.2", "94.00", "106.00"),
    ] {
        bots.create(pb::CreateBotRequest {
            spec: Some(pb::BotSpec {
                name: name.into(),
                exchange: String::new(),
                kind: Some(Kind::Range(pb::RangeSpec {
                    product_id: "BTC-USD".into(),
                    size: size.into(),
                    buy_price: buy.into(),
                    sell_price: sell.into(),
                    r#loop: true,
                    begin_with_sell: false,
                    force: false,
                })),
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
    assert_eq!(stopped.len(), 3, "every bot came back running: {stopped:?}");
    let mut total = 0;
    for b in &stopped {
        assert_eq!(b.status, pb::BotStatus::Stopped as i32, "{b:?}");
        total += check_bot(&ch, b).await;
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
