//! The `virc` binary against an in-process daemon: exit codes and `--json` shapes.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

use std::path::Path;

use assert_cmd::Command;
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
