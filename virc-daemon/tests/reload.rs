//! SIGHUP reloads the config: the log level and event retention change
//! live, the rest is
//! reported as needing a restart, a broken file changes nothing, and the
//! bots keep running throughout.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

mod common;

use std::time::Duration;

use common::{Guard, ready};
use tokio_stream::StreamExt as _;
use virc_proto::v1::{
    self as pb, bot_spec::Kind, bots_client::BotsClient, event::Payload,
    events_client::EventsClient,
};

fn config(dir: &std::path::Path, level: &str, speed: &str, keep: u64) -> String {
    format!(
        "[daemon]\ndata_dir = \"{}\"\nsocket = \"{}\"\nlog_level = \"{level}\"\n[events]\nmax_events = {keep}\n[market]\nsource = \"none\"\nspeed = \"{speed}\"\n",
        dir.join("data").display(),
        dir.join("d.sock").display()
    )
}

fn hup(child: &std::process::Child) {
    let ok = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

async fn next_reload(events: &mut tonic::Streaming<pb::Event>) -> Payload {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .unwrap();
        if let Some(p @ (Payload::ConfigReloaded(_) | Payload::Warning(_))) = e.payload {
            return p;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_what_it_can_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("virc.toml");
    std::fs::write(&path, config(dir.path(), "info", "1x", 1000)).unwrap();
    let daemon = Guard(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("virc-daemon"))
            .arg("--config")
            .arg(&path)
            .env_remove("VIRC_CONFIG")
            .env_remove("RUST_LOG")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ch = ready(&dir.path().join("d.sock")).await;
    let mut bots = BotsClient::new(ch.clone());
    bots.create(pb::CreateBotRequest {
        spec: Some(pb::BotSpec {
            name: "keeps".into(),
            exchange: String::new(),
            kind: Some(Kind::Range(pb::RangeSpec {
                product_id: "BTC-USD".into(),
                size: "0.1".into(),
                buy_price: "50".into(),
                sell_price: "60".into(),
                r#loop: true,
                begin_with_sell: false,
                force: false,
            })),
        }),
        if_absent: false,
    })
    .await
    .unwrap();
    let mut events = EventsClient::new(ch.clone())
        .subscribe(pb::SubscribeRequest {
            from_seq: None,
            kinds: vec![
                pb::EventKind::ConfigReloaded as i32,
                pb::EventKind::Warning as i32,
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    std::fs::write(&path, config(dir.path(), "debug", "60x", 3)).unwrap();
    hup(&daemon.0);
    let Payload::ConfigReloaded(r) = next_reload(&mut events).await else {
        panic!("expected config_reloaded");
    };
    assert_eq!(r.applied.len(), 2, "{:?}", r.applied);
    assert_eq!(r.applied[0], "daemon.log_level = debug");
    assert!(
        r.applied[1].starts_with("events.max_events = 3"),
        "{:?}",
        r.applied
    );
    assert_eq!(r.needs_restart, vec!["market"]);
    // The new retention applies at once: at most 3 events are kept.
    let status = virc_proto::v1::system_client::SystemClient::new(ch.clone())
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        status.event_head - status.event_tail < 3,
        "{}..{}",
        status.event_tail,
        status.event_head
    );

    std::fs::write(&path, "[daemon\nbroken").unwrap();
    hup(&daemon.0);
    let Payload::Warning(w) = next_reload(&mut events).await else {
        panic!("expected a warning");
    };
    assert!(
        w.message.contains("reload refused, nothing changed"),
        "{}",
        w.message
    );

    let b = bots
        .get(pb::GetBotRequest {
            bot: "keeps".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.status, pb::BotStatus::Running as i32, "bots keep running");
}
