//! Bench binary (prints figures): wall time of `virc status` against a
//! running daemon, process start to exit. Run with
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
    rt.block_on(daemon.stop()).unwrap();
}
