//! Bench binary (prints figures): event fan-out throughput to 1 and 100
//! subscribers, resume latency, and the idle RSS of the daemon binary.
//! Run with `cargo bench -p virc-daemon --bench daemon`.
#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    reason = "a bench fails loudly and prints approximate rates"
)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;
use virc_daemon::{
    clock::SystemClock,
    config::{EventsConfig, Positive},
    events::{Draft, EventBus, EventsHandle, Filter},
    store::Store,
};
use virc_proto::v1::{self as pb, event::Payload};

fn draft(n: u64) -> Draft {
    Draft::new(Payload::Warning(pb::Warning {
        source: "bench".into(),
        message: format!("event {n}"),
    }))
}

fn start(store: &Store, fsync: bool) -> EventsHandle {
    let cfg = EventsConfig {
        max_events: Positive(10_000_000),
        subscriber_buffer: Positive(1 << 20),
        fsync,
        ..EventsConfig::default()
    };
    let stop = CancellationToken::new();
    let (bus, handle) =
        EventBus::new(store.events(), cfg, Arc::new(SystemClock), stop.clone()).unwrap();
    tokio::spawn(bus.run(stop));
    handle
}

async fn fan_out(subscribers: usize, events: u64, fsync: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let bus = start(&store, fsync);
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let mut rx = bus.subscribe(None, Filter::default(), false).await.unwrap();
        readers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while n < events {
                rx.recv().await.unwrap().unwrap();
                n += 1;
            }
        }));
    }
    let t = Instant::now();
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let bus = bus.clone();
            tokio::spawn(async move {
                for n in 0..events / 4 {
                    bus.emit(draft(p * events + n)).await;
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    for r in readers {
        r.await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "fan-out  subscribers={subscribers:<3} fsync={fsync:<5} events={events}  {:>10.0} events/s published  {:>12.0} deliveries/s",
        events as f64 / secs,
        (events * subscribers as u64) as f64 / secs
    );
}

async fn resume_latency() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let bus = start(&store, false);
    for n in 0..100_000 {
        bus.emit(draft(n)).await;
    }
    let (_, head) = bus.bounds().await.unwrap();
    for back in [1u64, 1_000, 100_000] {
        let mut first = Vec::new();
        let mut all = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let mut rx = bus
                .subscribe(Some(head + 1 - back), Filter::default(), true)
                .await
                .unwrap();
            rx.recv().await.unwrap().unwrap();
            first.push(t.elapsed());
            while rx.recv().await.is_some() {}
            all.push(t.elapsed());
        }
        first.sort();
        all.sort();
        println!(
            "resume   from head-{back:<6}  first event p50 {:>9.1?}  caught up p50 {:>9.1?}",
            first[first.len() / 2],
            all[all.len() / 2]
        );
    }
}

fn idle_rss() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("d.sock");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_virc-daemon"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--socket")
        .arg(&sock)
        .env_remove("VIRC_CONFIG")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_secs(2));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: ?")
        .to_owned();
    println!(
        "idle     virc-daemon {}",
        rss.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        fan_out(1, 200_000, false).await;
        fan_out(100, 50_000, false).await;
        fan_out(1, 50_000, true).await;
        fan_out(100, 20_000, true).await;
        resume_latency().await;
    });
    idle_rss();
}
