//! Bench binary (prints figures): wall time of `virc status`, and of
//! `virc bot list` with 1,000 bots, against a running daemon, process start
//! to exit. Run with
//! `cargo bench -p virc-cli --bench status`.
#![allow(clippy::unwrap_used, reason = "a bench fails loudly")]

use std::time::{Duration, Instant};

use virc_daemon::config::Credentials;
use virc_tests::{TestDaemon, test_config};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let daemon = rt
        .block_on(TestDaemon::start(
            test_config(dir.path()),
            Credentials::default(),
            vec![],
        ))
        .unwrap();
    let mut times: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_virc"))
                .arg("--socket")
                .arg(&daemon.socket)
                .arg("status")
                .output()
                .unwrap();
            assert!(out.status.success());
            t.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "virc status wall time over {} runs: p50 {:.2?}  p90 {:.2?}  max {:.2?}",
        times.len(),
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        times[times.len() - 1]
    );
    rt.block_on(async {
        let mut bots = virc_proto::v1::bots_client::BotsClient::new(daemon.channel().await);
        for i in 0..1000_i64 {
            bots.create(range(i)).await.unwrap();
        }
    });
    for json in [false, true] {
        let mut times: Vec<Duration> = (0..50)
            .map(|_| {
                let t = Instant::now();
                let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_virc"));
                cmd.arg("--socket").arg(&daemon.socket);
                if json {
                    cmd.arg("--json");
                }
                let out = cmd.args(["bot", "list"]).output().unwrap();
                assert!(out.status.success());
                assert!(out.stdout.len() > 50_000);
                t.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "virc{} bot list with 1000 bots, wall time over {} runs: p50 {:.2?}  p90 {:.2?}  max {:.2?}",
            if json { " --json" } else { "" },
            times.len(),
            times[times.len() / 2],
            times[times.len() * 9 / 10],
            times[times.len() - 1]
        );
    }
    rt.block_on(daemon.stop()).unwrap();
}

/// A range bot whose buy rests (no market): 0.1 BTC at 50.00 + i cents.
fn range(i: i64) -> virc_proto::v1::CreateBotRequest {
    use virc_proto::v1 as pb;
    pb::CreateBotRequest {
        spec: Some(pb::BotSpec {
            name: format!("bench-{i}"),
            exchange: String::new(),
            kind: Some(pb::bot_spec::Kind::Range(pb::RangeSpec {
                product_id: "BTC-USD".into(),
                size: "0.1".into(),
                buy_price: cents(5000 + i),
                sell_price: "200.00".into(),
                r#loop: true,
                begin_with_sell: false,
                force: false,
            })),
        }),
        if_absent: false,
    }
}

/// Cents as a decimal string ("50.01").
fn cents(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}
