//! The daemon trading through the live Coinbase connector, against the
//! Coinbase emulator on loopback: a looping range bot completes cycles
//! while the emulator loses order answers, drops and stalls the feeds and
//! storms 429s; afterwards the emulator's own record shows one order per
//! client id and the bot's profit is its fills minus their fees.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

mod common;

use std::{fmt::Write as _, path::Path, time::Duration};

use common::{Guard, ready, start_emulator};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::Value;
use tonic::transport::Channel;
use virc_core::{ids::ClientOid, matcher::UserId};
use virc_daemon::emulator::Emulator;
use virc_proto::v1::{
    self as pb, bot_spec::Kind, bots_client::BotsClient, events_client::EventsClient,
    system_client::SystemClient,
};

const USER: UserId = UserId(1);

fn spawn(dir: &Path, em: &Emulator) -> Guard {
    spawn_with(dir, em, &em.rest_url, &em.ws_url)
}

/// The daemon on `em`'s market, with its `live` connection at these URLs.
fn spawn_with(dir: &Path, em: &Emulator, rest: &str, ws: &str) -> Guard {
    let config = format!(
        r#"[daemon]
data_dir = "{data}"
socket = "{sock}"

[events]
fsync = false

[market]
source = "coinbase"
feed_url = "{ws}"
rest_url = "{rest}"
products = ["BTC-USD"]
stall = "2s"

[exchanges]
default = "live"

[exchanges.live]
kind = "coinbase"
rest_url = "{x_rest}"
ws_url = "{x_ws}"
poll = "1s"
"#,
        data = dir.join("data").display(),
        sock = dir.join("virc.sock").display(),
        ws = em.ws_url,
        rest = em.rest_url,
        x_rest = rest,
        x_ws = ws,
    );
    std::fs::write(dir.join("virc.toml"), config).unwrap();
    let account = common::emulator_account();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("virc-daemon"))
        .arg("--config")
        .arg(dir.join("virc.toml"))
        .env_remove("VIRC_CONFIG")
        .env("VIRC_COINBASE_KEY", &account.key)
        .env("VIRC_COINBASE_SECRET", account.secret.expose())
        .env("VIRC_COINBASE_PASSPHRASE", account.passphrase.expose())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    Guard(child)
}

async fn bot(ch: &Channel, name: &str) -> pb::Bot {
    BotsClient::new(ch.clone())
        .get(pb::GetBotRequest { bot: name.into() })
        .await
        .unwrap()
        .into_inner()
}

/// Waits until `check` holds for the bot, or fails with the daemon's log.
async fn wait_bot(
    ch: &Channel,
    dir: &Path,
    what: &str,
    check: impl Fn(&pb::Bot) -> bool,
) -> pb::Bot {
    for _ in 0..300 {
        let b = bot(ch, "swing").await;
        if check(&b) {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    panic!(
        "bot never reached: {what}\n{:#?}\n--- daemon log ---\n{log}",
        bot(ch, "swing").await
    );
}

/// The daemon's exchange connections, as `virc exchanges` shows them.
async fn exchanges(ch: &Channel) -> Vec<pb::ExchangeInfo> {
    SystemClient::new(ch.clone())
        .exchanges(pb::ExchangesRequest {})
        .await
        .unwrap()
        .into_inner()
        .exchanges
}

/// Waits until the `live` connection is up (clock, products, fees,
/// balances read, user feed subscribed).
async fn wait_up(ch: &Channel) {
    for _ in 0..200 {
        let xs = exchanges(ch).await;
        if xs
            .iter()
            .any(|x| x.name == "live" && x.kind == "live" && x.state == "up")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the live connection never came up");
}

/// The states of every `connection` event so far, oldest first.
async fn connection_states(ch: &Channel) -> Vec<String> {
    let mut events = EventsClient::new(ch.clone())
        .subscribe(pb::SubscribeRequest {
            from_seq: Some(0),
            kinds: vec![pb::EventKind::Connection as i32],
            stop_at_head: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut states = Vec::new();
    while let Some(e) = events.message().await.unwrap() {
        if let Some(pb::event::Payload::Connection(c)) = e.payload {
            assert_eq!(c.exchange, "live");
            states.push(c.state);
        }
    }
    states
}

/// The test account's orders on the emulator, every status.
fn orders(em: &Emulator) -> Vec<Value> {
    em.shared
        .with_engine(|e| e.orders(USER, None, &["all".to_owned()], None, 1000))
        .0
}

fn open_orders(em: &Emulator) -> usize {
    orders(em).iter().filter(|o| o["status"] == "open").count()
}

async fn wait_open(em: &Emulator, n: usize) {
    for _ in 0..200 {
        if open_orders(em) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "expected {n} open orders on the emulator: {:#?}",
        orders(em)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_bot_trades_through_the_live_connector_and_survives_every_fault() {
    let em = start_emulator().await;
    // A book to trade against: the bot's range sits inside it.
    em.rest("BTC-USD", false, dec!(470.00), dec!(5)).unwrap();
    em.rest("BTC-USD", true, dec!(430.00), dec!(5)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _daemon = spawn(dir.path(), &em);
    let ch = ready(&dir.path().join("virc.sock")).await;

    wait_up(&ch).await;

    common::create_range(&ch, "live", "swing", "0.1", "445.00", "455.00")
        .await
        .unwrap();
    wait_open(&em, 1).await;

    // Cycle 1. The buy fills; the answer to the sell's placement is lost.
    em.faults().lose_next_posts(1);
    em.take("BTC-USD", false, dec!(445.00), dec!(0.1)).unwrap();
    wait_bot(&ch, dir.path(), "selling", |b| {
        b.current_step.starts_with("sell")
    })
    .await;
    wait_open(&em, 1).await;
    // The feeds drop; the sell fills while the daemon reconnects.
    em.faults().drop_connections();
    em.take("BTC-USD", true, dec!(455.00), dec!(0.1)).unwrap();
    wait_bot(&ch, dir.path(), "one cycle", |b| {
        b.pnl.as_ref().unwrap().cycles == 1
    })
    .await;

    // Cycle 2, through a storm of 429s and a stalled feed.
    wait_open(&em, 1).await;
    em.faults().fail_next(6, 429);
    em.take("BTC-USD", false, dec!(445.00), dec!(0.1)).unwrap();
    wait_bot(&ch, dir.path(), "selling again", |b| {
        b.current_step.starts_with("sell")
    })
    .await;
    wait_open(&em, 1).await;
    em.faults().stall_for(Duration::from_secs(3));
    em.take("BTC-USD", true, dec!(455.00), dec!(0.1)).unwrap();
    let b = wait_bot(&ch, dir.path(), "two cycles", |b| {
        b.pnl.as_ref().unwrap().cycles == 2
    })
    .await;

    // The drop and the stall were told as connection events: down, then up
    // (the stall is noticed 2 s in, maybe after the cycle completed).
    let mut states = Vec::new();
    for _ in 0..100 {
        states = connection_states(&ch).await;
        if states.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(states.len() >= 5, "up, then down/up twice: {states:?}");
    assert_eq!(states[0], "up");
    assert!(states.windows(2).all(|w| w[0] != w[1]), "{states:?}");
    assert!(states.windows(2).all(|w| w[0] != w[1]), "{states:?}");

    // The exchange's record: one order per client id, and the bot's
    // profit is exactly its fills net of their fees.
    let all = orders(&em);
    for o in &all {
        let cid = ClientOid::parse(o["client_oid"].as_str().unwrap()).unwrap();
        assert_eq!(
            em.shared.with_engine(|e| e.count_client_oid(USER, cid)),
            1,
            "{o}"
        );
    }
    let (fills, _) = em
        .shared
        .with_engine(|e| e.fills(USER, None, Some("BTC-USD"), None, 1000));
    assert_eq!(fills.len(), 4, "{fills:#?}");
    let d = |v: &Value, f: &str| v[f].as_str().unwrap().parse::<Decimal>().unwrap();
    let net: Decimal = fills
        .iter()
        .map(|f| {
            let value = d(f, "price") * d(f, "size");
            let sign = if f["side"] == "sell" {
                Decimal::ONE
            } else {
                -Decimal::ONE
            };
            sign * value - d(f, "fee")
        })
        .sum();
    let pnl = b.pnl.unwrap();
    assert_eq!(pnl.realized_profit.parse::<Decimal>().unwrap(), net);
    assert_eq!(
        net,
        dec!(1.28),
        "2 × (10 × 0.1 − 0.4 % of 44.5 and of 45.5)"
    );
}

/// `--check-exchange` against the emulator: a good key is reported with
/// its balances and fees; each kind of bad credential gets Coinbase's text
/// and what to fix; a skewed clock is measured and reported, not fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exchange_diagnoses_each_bad_credential() {
    let em = start_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("virc.toml"),
        format!(
            "[market]\nproducts = [\"BTC-USD\"]\n\n[exchanges.live]\nkind = \"coinbase\"\nrest_url = \"{}\"\nws_url = \"{}\"\n",
            em.rest_url, em.ws_url
        ),
    )
    .unwrap();
    let good = common::emulator_account();
    let check = |key: &str, secret: &str, passphrase: &str| {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("virc-daemon"))
            .arg("--config")
            .arg(dir.path().join("virc.toml"))
            .args(["--check-exchange", "live"])
            .env_remove("VIRC_CONFIG")
            .env("VIRC_COINBASE_KEY", key)
            .env("VIRC_COINBASE_SECRET", secret)
            .env("VIRC_COINBASE_PASSPHRASE", passphrase)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (secret, pass) = (good.secret.expose(), good.passphrase.expose());
    let (ok, out, _) = tokio::task::block_in_place(|| check(&good.key, secret, pass));
    assert!(ok, "{out}");
    assert!(out.contains("USD 10000.00000000"), "{out}");
    assert!(out.contains("maker 0.004 / taker 0.006"), "{out}");
    for (key, secret, pass, says, hint) in [
        ("nobody", secret, pass, "Invalid API Key", "check `key`"),
        (
            good.key.as_str(),
            secret,
            "wrong",
            "Invalid Passphrase",
            "check `passphrase`",
        ),
        (
            good.key.as_str(),
            "b3RoZXI=",
            pass,
            "invalid signature",
            "`secret` is not this key's secret",
        ),
    ] {
        let (ok, _, err) = tokio::task::block_in_place(|| check(key, secret, pass));
        assert!(!ok);
        assert!(err.contains(says) && err.contains(hint), "{err}");
        assert!(
            !err.contains(good.secret.expose()),
            "the secret leaked: {err}"
        );
    }
    em.faults().set_skew(90_000_000_000);
    let (ok, out, err) = tokio::task::block_in_place(|| check(&good.key, secret, pass));
    assert!(ok, "{err}");
    assert!(out.contains("more than 5 s"), "{out}");
}

/// The crash harness on the live connector: looping range bots trade on
/// the emulator's synthetic market while the daemon is killed with SIGKILL
/// at random moments and restarted; afterwards, by Coinbase's (the
/// emulator's) own record, every intent is exactly one order, and every
/// bot's cycles, profit and fees are its fills'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_on_the_live_connector_loses_and_duplicates_no_order() {
    let rounds: u32 = std::env::var("VIRC_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let seed: u64 = std::env::var("VIRC_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) * 0x9E37_79B9 + 1);
    eprintln!("live crash harness: {rounds} rounds, VIRC_CRASH_SEED={seed}");
    let mut rng = common::Rng(seed | 1);
    let em = common::start_emulator_with(Some(virc_daemon::emulator::driver::DriverConfig {
        seed,
        interval: Duration::from_millis(40),
        start: [("BTC-USD".to_owned(), dec!(450))].into(),
        levels: 3,
        size: dec!(0.5),
        volatility: dec!(0.003),
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("virc.sock");
    let mut daemon = spawn(dir.path(), &em);
    let ch = ready(&sock).await;
    wait_up(&ch).await;
    for (name, buy, sell) in [
        ("a", "448.00", "452.00"),
        ("b", "447.00", "451.00"),
        ("c", "449.00", "453.00"),
    ] {
        common::create_range(&ch, "live", name, "0.05", buy, sell)
            .await
            .unwrap();
    }
    for round in 0..rounds {
        let wait = rng.between(300, 1500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        daemon.0.kill().unwrap();
        daemon.0.wait().unwrap();
        eprintln!("round {round}: killed after {wait} ms");
        daemon = spawn(dir.path(), &em);
        ready(&sock).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ch = ready(&sock).await;
    BotsClient::new(ch.clone())
        .stop_all(pb::StopAllBotsRequest {})
        .await
        .unwrap();
    // Every bot is stopped, or failed because the exchange (here virc's
    // check of its reservation) refused an order: a bot whose buy crossed
    // the moving market paid the taker fee, its cycle lost money, and its
    // reservation no longer pays for the next buy. Both are legitimate
    // ends; what must hold is the record.
    let mut total = 0;
    for name in ["a", "b", "c"] {
        let b = bot(&ch, name).await;
        let refused = b.status == pb::BotStatus::Failed as i32
            && b.status_reason == "order refused: Insufficient funds";
        if b.status != pb::BotStatus::Stopped as i32 && !refused {
            let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
            let mut history = String::new();
            for h in b.history.iter().rev() {
                let _ = writeln!(history, "{}", h.description);
            }
            panic!(
                "bot {name} ended {:?} ({}):\n{history}\n--- last daemon log ---\n{log}",
                b.status, b.status_reason
            );
        }
        total += common::check_bot(&ch, &b).await;
    }
    eprintln!("{total} cycles completed across {rounds} crashes");
    // Coinbase's side: one order per client id, and nothing left on hold.
    for o in orders(&em) {
        let cid = ClientOid::parse(o["client_oid"].as_str().unwrap()).unwrap();
        assert_eq!(
            em.shared.with_engine(|e| e.count_client_oid(USER, cid)),
            1,
            "{o}"
        );
    }
    let held = em.shared.with_engine(|e| {
        e.wallet(USER)
            .map(|w| (w.balance("USD").hold, w.balance("BTC").hold))
    });
    assert_eq!(held, Some((Decimal::ZERO, Decimal::ZERO)));
}

/// A stop-loss whose stop-limit rests on Coinbase (so it protects while the
/// daemon is down): the emulator parks it (`active`), the market trades
/// through the stop, it enters the book and fills, and the bot ends with
/// the exchange's fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_loss_rests_on_coinbase_and_executes_there() {
    let em = start_emulator().await;
    em.rest("BTC-USD", false, dec!(470.00), dec!(5)).unwrap();
    em.rest("BTC-USD", true, dec!(450.00), dec!(5)).unwrap();
    em.take("BTC-USD", false, dec!(450.00), dec!(0.1)).unwrap(); // a last price
    let dir = tempfile::tempdir().unwrap();
    let _daemon = spawn(dir.path(), &em);
    let ch = ready(&dir.path().join("virc.sock")).await;
    wait_up(&ch).await;
    BotsClient::new(ch.clone())
        .create(pb::CreateBotRequest {
            spec: Some(pb::BotSpec {
                name: "swing".into(),
                exchange: "live".into(),
                kind: Some(Kind::StopLoss(pb::StopLossSpec {
                    product_id: "BTC-USD".into(),
                    amount: Some(pb::stop_loss_spec::Amount::Size("0.2".into())),
                    trigger: Some(pb::stop_loss_spec::Trigger::StopPrice("440.00".into())),
                    limit_offset: "1.00".into(),
                    guard_bot_id: String::new(),
                    guard_product: false,
                })),
            }),
            if_absent: false,
        })
        .await
        .unwrap();
    // The stop rests on Coinbase, parked until the trigger.
    let mut active = false;
    for _ in 0..200 {
        if orders(&em).iter().any(|o| o["status"] == "active") {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(active, "{:#?}", orders(&em));
    // The market trades down to 440.00: the stop triggers and its limit
    // (439.00) sells into the 439.50 bid.
    em.rest("BTC-USD", true, dec!(439.50), dec!(1)).unwrap();
    em.rest("BTC-USD", true, dec!(440.00), dec!(0.1)).unwrap();
    em.take("BTC-USD", false, dec!(440.00), dec!(5)).unwrap();
    let b = wait_bot(&ch, dir.path(), "ended", |b| {
        b.status == pb::BotStatus::Ended as i32
    })
    .await;
    let (fills, _) = em
        .shared
        .with_engine(|e| e.fills(USER, None, Some("BTC-USD"), None, 100));
    let d = |v: &Value, f: &str| v[f].as_str().unwrap().parse::<Decimal>().unwrap();
    let sold: Decimal = fills
        .iter()
        .filter(|f| f["side"] == "sell")
        .map(|f| d(f, "size"))
        .sum();
    assert_eq!(sold, dec!(0.2), "{fills:#?}");
    let fees: Decimal = fills
        .iter()
        .filter(|f| f["side"] == "sell")
        .map(|f| d(f, "fee"))
        .sum();
    assert_eq!(b.pnl.unwrap().fees_paid.parse::<Decimal>().unwrap(), fees);
}

/// A Coinbase connection that cannot be reached: `virc exchanges` says why,
/// and a bot created on it is refused as unavailable (retry later), not
/// with a misleading balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_connection_is_reported_and_refuses_bots_clearly() {
    let em = start_emulator().await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 of loopback.
    let _daemon = spawn_with(dir.path(), &em, "http://127.0.0.1:9", "ws://127.0.0.1:9");
    let ch = ready(&dir.path().join("virc.sock")).await;
    let mut state = String::new();
    for _ in 0..200 {
        let xs = exchanges(&ch).await;
        state = xs.iter().find(|x| x.name == "live").unwrap().state.clone();
        if state.starts_with("down") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        state.starts_with("down: ") && state.contains("127.0.0.1:9"),
        "{state}"
    );
    let err = common::create_range(&ch, "live", "swing", "0.1", "445.00", "455.00")
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("exchange live is not connected"),
        "{err:?}"
    );
}
