//! The `virc` binary against an in-process daemon: exit codes and `--json` shapes.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

use std::path::Path;

use assert_cmd::Command;
use serde_json::json;
use virc_daemon::config::Credentials;
use virc_tests::{TestDaemon, test_config};

fn virc(socket: &Path, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("virc")
        .unwrap()
        .env_remove("VIRC_ENDPOINT")
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

async fn run(socket: &Path, args: &'static [&'static str]) -> std::process::Output {
    let socket = socket.to_owned();
    tokio::task::spawn_blocking(move || virc(&socket, args))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_prints_a_table_and_stable_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(test_config(dir.path()), Credentials::default(), vec![])
        .await
        .unwrap();
    let out = run(&d.socket, &["status"]).await;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for key in [
        "daemon",
        "data dir",
        "listening",
        "event log",
        "bots",
        "exchanges",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(key)),
            "{key} missing:\n{text}"
        );
    }

    let out = run(&d.socket, &["--json", "status"]).await;
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["events"]["head"], 1);
    assert_eq!(v["bots"]["running"], 0);
    assert!(v["listeners"][0].as_str().unwrap().starts_with("unix:"));
    assert!(v["exchanges"].is_array());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn events_json_is_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(test_config(dir.path()), Credentials::default(), vec![])
        .await
        .unwrap();
    let out = run(&d.socket, &["--json", "events", "--since", "0"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["kind"], "daemon_started");
    assert_eq!(lines[0]["data"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));

    let out = run(&d.socket, &["events", "--kind", "warning", "--since", "0"]).await;
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_in_the_future_is_rejected_with_exit_4() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(test_config(dir.path()), Credentials::default(), vec![])
        .await
        .unwrap();
    let out = run(&d.socket, &["events", "--since", "99"]).await;
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resume with --since 2"));
    d.stop().await.unwrap();
}

#[test]
fn unreachable_daemon_says_where_it_looked_and_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let out = virc(&sock, &["status"]);
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&sock.display().to_string()), "{err}");
    assert!(err.contains("virc-daemon"), "{err}");
    assert!(!err.contains("transport error"), "{err}");

    let out = virc(&sock, &["--json", "status"]);
    assert_eq!(out.status.code(), Some(5));
    let v: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(v["error"]["kind"], "unreachable");
    assert_eq!(v["error"]["exit_code"], 5);
}

#[test]
fn stale_socket_file_is_reported_as_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let out = virc(&sock, &["status"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("connection refused"));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("x.sock");
    assert_eq!(virc(&sock, &["frobnicate"]).status.code(), Some(2));
    let out = virc(&sock, &["events", "--kind", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown event kind `nonsense`"));
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::cargo_bin("virc")
            .unwrap()
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("events"),
            "{shell}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn market_views_print_tables_and_stable_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.market.source = virc_daemon::config::MarketSource::Demo;
    config.market.speed = "max".into();
    config.market.looping = false;
    let d = TestDaemon::start(config, Credentials::default(), vec![])
        .await
        .unwrap();
    let mut ticker = serde_json::Value::Null;
    for _ in 0..500 {
        let out = run(&d.socket, &["--json", "ticker"]).await;
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && v["trade_id"] == 8_409_425
        {
            ticker = v;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(ticker["product_id"], "BTC-USD");
    assert_eq!(ticker["price"], "453.07", "the recording's last trade");
    assert!(ticker["best_bid"].is_null());

    let out = run(&d.socket, &["stats", "BTC-USD"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("WINDOW"), "{text}");
    assert_eq!(text.lines().count(), 9, "a header and 8 windows:\n{text}");

    let out = run(
        &d.socket,
        &[
            "--json", "candles", "BTC-USD", "--period", "5m", "--limit", "3",
        ],
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert!(v[0]["indicators"].is_object());

    let out = run(&d.socket, &["ticker", "NOPE-USD"]).await;
    assert_eq!(out.status.code(), Some(3));
    d.stop().await.unwrap();
}

async fn run_owned(socket: &Path, args: Vec<String>) -> std::process::Output {
    let socket = socket.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        virc(&socket, &args)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn bot_commands_from_a_shell_and_from_cron() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(test_config(dir.path()), Credentials::default(), vec![])
        .await
        .unwrap();
    let out = run(
        &d.socket,
        &[
            "bot",
            "create",
            "range",
            "--product",
            "BTC-USD",
            "--size",
            "0.1",
            "--buy",
            "50.004",
            "--sell",
            "60",
            "--loop",
            "--name",
            "r1",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("bot r1 created"), "{text}");
    assert!(text.contains("buy 0.1 BTC @ 50.00 USD"), "{text}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("warning: buy price 50.004 rounded to 50.00"),
        "{err}"
    );

    // Cron: idempotent by name, stable JSON.
    let cron: &[&str] = &[
        "--json",
        "bot",
        "create",
        "range",
        "--product",
        "BTC-USD",
        "--size",
        "0.1",
        "--buy",
        "50",
        "--sell",
        "60",
        "--name",
        "r1",
        "--if-absent",
    ];
    let out = run(&d.socket, cron).await;
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["created"], false);
    assert_eq!(v["name"], "r1");
    assert_eq!(v["status"], "running");
    assert_eq!(v["pnl"]["currency"], "USD");

    // A spec file.
    let spec = dir.path().join("bot.toml");
    std::fs::write(
        &spec,
        "kind = \"range\"\nname = \"fromfile\"\nproduct = \"BTC-USD\"\nsize = \"0.2\"\nbuy = \"40\"\nsell = \"45\"\n",
    )
    .unwrap();
    let out = run_owned(
        &d.socket,
        vec![
            "bot".into(),
            "create".into(),
            "range".into(),
            "--spec".into(),
            spec.display().to_string(),
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");

    let out = run(&d.socket, &["bot", "list"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("REALIZED"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("fromfile"), "{text}");

    let out = run(&d.socket, &["bot", "pause", "r1"]).await;
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("bot r1 paused")
    );
    let out = run(&d.socket, &["--json", "bot", "show", "r1"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "paused");
    assert_eq!(v["current_order"]["status"], "open");
    let history: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["description"].as_str().unwrap())
        .collect();
    assert!(history[0].contains("paused by the user"), "{history:?}");

    // Exit codes: 3 not found, 4 refused.
    let out = run(&d.socket, &["bot", "show", "nope"]).await;
    assert_eq!(out.status.code(), Some(3));
    let out = run(&d.socket, &["bot", "rm", "r1"]).await;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("stop it first")
    );
    let out = run(&d.socket, &["bot", "stop", "--all"]).await;
    assert!(out.status.success());
    let out = run(&d.socket, &["bot", "rm", "r1"]).await;
    assert!(out.status.success(), "{out:?}");

    let out = run(&d.socket, &["--json", "balances"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exchange"], "paper");
    assert!(v["reservations"].as_array().unwrap().is_empty());
    let out = run(&d.socket, &["exchanges"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("paper *") && text.contains("sim"), "{text}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn order_commands_speak_the_exchange_language() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(test_config(dir.path()), Credentials::default(), vec![])
        .await
        .unwrap();
    let out = run(
        &d.socket,
        &[
            "--json",
            "order",
            "place",
            "--product",
            "BTC-USD",
            "--side",
            "buy",
            "--price",
            "50",
            "--size",
            "1",
            "--tif",
            "GTT",
            "--cancel-after",
            "hour",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(o["status"], "open");
    assert_eq!(o["type"], "limit");
    let id = o["id"].as_str().unwrap().to_owned();

    let out = run(
        &d.socket,
        &[
            "order",
            "place",
            "--product",
            "BTC-USD",
            "--side",
            "buy",
            "--price",
            "50",
            "--size",
            "1",
            "--tif",
            "IOC",
            "--post-only",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("post_only"), "{err}");

    let out = run(&d.socket, &["order", "list"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&id), "{text}");
    let out = run_owned(&d.socket, vec!["order".into(), "cancel".into(), id.clone()]).await;
    assert!(out.status.success(), "{out:?}");
    let out = run(&d.socket, &["order", "list"]).await;
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "no open orders"
    );
    let out = run(&d.socket, &["--json", "fills"]).await;
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "[]");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn grid_stop_loss_and_conditional_bots_and_rule_checks_from_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.market.source = virc_daemon::config::MarketSource::Demo;
    config.market.speed = "max".into();
    config.market.looping = false;
    let d = TestDaemon::start(config, Credentials::default(), vec![])
        .await
        .unwrap();
    for _ in 0..500 {
        let out = run(&d.socket, &["--json", "ticker"]).await;
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && v["trade_id"] == 8_409_425
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let out = run(
        &d.socket,
        &[
            "bot",
            "create",
            "grid",
            "--product",
            "BTC-USD",
            "--lower",
            "440",
            "--upper",
            "460",
            "--levels",
            "5",
            "--size-per-level",
            "0.02",
            "--name",
            "g",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("3 buys and 1 sells of 0.02 BTC on 5 levels 440.00–460.00 USD"),
        "{text}"
    );
    let out = run(&d.socket, &["--json", "bot", "show", "g"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v["kind"], &v["spec"]["kind"], &v["spec"]["levels"]),
        (&json!("grid"), &json!("grid"), &json!(5))
    );
    assert_eq!(v["current_order"]["status"], "open");

    // A rule error names its column; the exit code says "rejected".
    let out = run(
        &d.socket,
        &[
            "bot",
            "create",
            "conditional",
            "--product",
            "BTC-USD",
            "--step",
            "when: ticker.price > 3 and p60.rsi15 > 3",
            "--step",
            "buy: 0.02",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(
            "step 1: rule `ticker.price > 3 and p60.rsi15 > 3`: column 22: unknown field `rsi15`"
        ),
        "{err}"
    );
    let out = run(
        &d.socket,
        &[
            "bot",
            "create",
            "conditional",
            "--product",
            "BTC-USD",
            "--step",
            "hold: 3",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let out = run(
        &d.socket,
        &[
            "--json",
            "bot",
            "create",
            "conditional",
            "--product",
            "BTC-USD",
            "--name",
            "c",
            "--step",
            "when: ticker.price < 1",
            "--step",
            "buy: 0.02 @ mkt-1%",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["current_step"], "step 1/2: when ticker.price < 1");
    assert!(v["pnl"]["theoretical_cycle_profit"].is_null());

    let out = run(
        &d.socket,
        &[
            "bot",
            "create",
            "stop-loss",
            "--product",
            "BTC-USD",
            "--guard",
            "nobody",
            "--stop",
            "400",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = run(
        &d.socket,
        &[
            "bot",
            "create",
            "stop-loss",
            "--product",
            "BTC-USD",
            "--size",
            "0.5",
            "--stop",
            "460",
            "--name",
            "s",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("stop price 460 is not below the market (453.07)")
    );

    let out = run(
        &d.socket,
        &[
            "--json",
            "rule",
            "check",
            "ticker.price > 453 and w5m.trades > 0",
            "--product",
            "BTC-USD",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["value"], true);
    assert_eq!(v["variables"]["ticker.price"], "453.07");
    let out = run(
        &d.socket,
        &["rule", "check", "p3600.rsi14 > 1", "--product", "BTC-USD"],
    )
    .await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(": false") && text.contains("n/a"), "{text}");
    let out = run(
        &d.socket,
        &["rule", "check", "ticker.price > 1", "--product", "NOPE-USD"],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    d.stop().await.unwrap();
}

/// `virc --json candles BTC-USD --period 1m --limit 100`, parsed.
async fn candles_json(socket: &Path) -> serde_json::Value {
    let out = run(
        socket,
        &[
            "--json", "candles", "BTC-USD", "--period", "1m", "--limit", "100",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn recorder_round_trip_export_import_gives_identical_candles() {
    let dir = tempfile::tempdir().unwrap();
    // Five minutes of trades, trade 150 missing: a gap the recorder notes.
    let tape = dir.path().join("tape.jsonl");
    let prices: Vec<String> = (0..300).map(|i| format!("{}.00", 100 + i % 7)).collect();
    let refs: Vec<&str> = prices.iter().map(String::as_str).collect();
    virc_tests::write_market(&tape, "BTC-USD", &refs, 103.0, "0.25");
    let text = std::fs::read_to_string(&tape).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 149)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&tape, kept.join("\n")).unwrap();

    let a_dir = dir.path().join("a");
    let a_config = || {
        let mut c = virc_tests::market_config(&a_dir, &tape, "max");
        c.market.looping = false;
        c.recorder.mode = virc_daemon::config::RecorderMode::On;
        c
    };
    let a = TestDaemon::start(a_config(), Credentials::default(), vec![])
        .await
        .unwrap();
    for _ in 0..500 {
        let out = run(&a.socket, &["--json", "ticker"]).await;
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && v["trade_id"] == 300
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before = candles_json(&a.socket).await;
    assert_eq!(before.as_array().unwrap().len(), 4, "four closed minutes");
    let out = run(
        &a.socket,
        &["--json", "events", "--since", "0", "--kind", "feed_gap"],
    )
    .await;
    let gap: serde_json::Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(
        (&gap["data"]["expected"], &gap["data"]["received"]),
        (&json!(150), &json!(151))
    );

    let export = dir.path().join("export.jsonl");
    let out = run_owned(
        &a.socket,
        vec![
            "record".into(),
            "export".into(),
            "--product".into(),
            "BTC-USD".into(),
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    std::fs::write(&export, &out.stdout).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 299);
    let window = run(
        &a.socket,
        &[
            "record",
            "export",
            "--product",
            "BTC-USD",
            "--from",
            "2016-05-12T15:01:00Z",
            "--to",
            "2016-05-12T15:02:00Z",
        ],
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&window.stdout).lines().count(), 60);

    // A restarted recording replay resumes after what it recorded: same candles, no duplicates.
    a.stop().await.unwrap();
    let a = TestDaemon::start(a_config(), Credentials::default(), vec![])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(candles_json(&a.socket).await, before);
    a.stop().await.unwrap();

    // Another daemon imports the export and, restarted, rebuilds the same candles.
    let b_dir = dir.path().join("b");
    let b = TestDaemon::start(test_config(&b_dir), Credentials::default(), vec![])
        .await
        .unwrap();
    let out = run_owned(
        &b.socket,
        vec![
            "record".into(),
            "import".into(),
            export.display().to_string(),
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "imported 299 trades; 0 already recorded; 0 other messages skipped; 0 malformed lines\n"
    );
    let again = run_owned(
        &b.socket,
        vec![
            "--json".into(),
            "record".into(),
            "import".into(),
            export.display().to_string(),
        ],
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!((&v["imported"], &v["duplicates"]), (&json!(0), &json!(299)));
    b.stop().await.unwrap();
    let b = TestDaemon::start(test_config(&b_dir), Credentials::default(), vec![])
        .await
        .unwrap();
    assert_eq!(candles_json(&b.socket).await, before);
    b.stop().await.unwrap();
}
