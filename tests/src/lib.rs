//! Shared harness for virc end-to-end tests: starts `virc_daemon::run`
//! in-process on a temporary socket and data dir, and connects clients.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint, Uri};
use virc_daemon::{
    Listener,
    config::{Config, Credentials},
};

/// A daemon running in this process.
pub struct TestDaemon {
    /// Its socket.
    pub socket: PathBuf,
    /// Its data directory.
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), virc_daemon::DaemonError>>>,
}

/// A config for tests: everything under `dir`, no fsync (tmpfs-friendly).
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.daemon.data_dir = Some(dir.join("data"));
    config.daemon.socket = Some(dir.join("virc.sock"));
    config.events.fsync = false;
    // Tests that want a market turn it on; the rest need a quiet event log.
    config.market.source = virc_daemon::config::MarketSource::None;
    config
}

/// Writes a recording of `product` trading `prices` in turn, one trade a
/// second from 2016-05-12T15:00:00Z, each of `size`. A trade at or below
/// `pivot` is printed with the buyer as maker (the price fell into bids), one
/// above it with the seller as maker, as a real tape would show them.
pub fn write_market(path: &Path, product: &str, prices: &[&str], pivot: f64, size: &str) {
    let mut text = String::new();
    for (i, p) in prices.iter().enumerate() {
        let side = if p.parse::<f64>().unwrap_or(0.0) <= pivot {
            "buy"
        } else {
            "sell"
        };
        let _ = writeln!(
            text,
            "{{\"type\":\"match\",\"trade_id\":{},\"maker_order_id\":\"00000000-0000-0000-0000-000000000000\",\"taker_order_id\":\"00000000-0000-0000-0000-000000000000\",\"side\":\"{side}\",\"size\":\"{size}\",\"price\":\"{p}\",\"product_id\":\"{product}\",\"time\":\"2016-05-12T15:{:02}:{:02}.000000Z\"}}",
            i + 1,
            i / 60,
            i % 60
        );
    }
    std::fs::write(path, text).expect("write the test market");
}

/// A test config whose market replays `recording` (looping) at `speed`.
pub fn market_config(dir: &Path, recording: &Path, speed: &str) -> Config {
    let mut config = test_config(dir);
    config.market.source = virc_daemon::config::MarketSource::Replay;
    config.market.replay_file = Some(recording.to_owned());
    config.market.speed = speed.into();
    config.market.looping = true;
    config
}

impl TestDaemon {
    /// Starts a daemon with `config` on its Unix socket (plus `extra` listeners).
    pub async fn start(
        config: Config,
        credentials: Credentials,
        extra: Vec<Listener>,
    ) -> Result<Self, virc_daemon::DaemonError> {
        let socket = config.socket();
        let data_dir = config.data_dir();
        let mut listeners = vec![Listener::bind_unix(&socket).await?];
        listeners.extend(extra);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(virc_daemon::run(
            config,
            credentials,
            listeners,
            async move {
                let _ = rx.await;
                "test shutdown".to_owned()
            },
        ));
        // Wait until the store is open and the server answers.
        for _ in 0..200 {
            if let Ok(ch) = connect(&socket).await {
                let mut sys = virc_proto::v1::system_client::SystemClient::new(ch);
                if sys.status(virc_proto::v1::StatusRequest {}).await.is_ok() {
                    return Ok(Self {
                        socket,
                        data_dir,
                        stop: Some(tx),
                        task: Some(task),
                    });
                }
            }
            if task.is_finished() {
                return match task.await {
                    Ok(Err(e)) => Err(e),
                    _ => Err(virc_daemon::DaemonError::Serve(
                        "daemon exited at start".into(),
                    )),
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Err(virc_daemon::DaemonError::Serve(
            "daemon did not answer within 2 s".into(),
        ))
    }

    /// A channel to the daemon's socket.
    pub async fn channel(&self) -> Channel {
        connect(&self.socket).await.expect("connect to test daemon")
    }

    /// Stops the daemon gracefully and waits for it.
    pub async fn stop(mut self) -> Result<(), virc_daemon::DaemonError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| virc_daemon::DaemonError::Serve(e.to_string()))?,
            None => Ok(()),
        }
    }
}

/// Connects a channel to a Unix socket.
pub async fn connect(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = path.to_owned();
    Endpoint::from_static("http://virc.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
}

/// Polls bot `bot` until `cond` holds (15 s at most); panics naming `what`.
pub async fn wait_for_bot(
    bots: &mut virc_proto::v1::bots_client::BotsClient<Channel>,
    bot: &str,
    what: &str,
    cond: impl Fn(&virc_proto::v1::Bot) -> bool,
) -> virc_proto::v1::Bot {
    for _ in 0..600 {
        let b = bots
            .get(virc_proto::v1::GetBotRequest { bot: bot.into() })
            .await
            .expect("get the bot")
            .into_inner();
        if cond(&b) {
            return b;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("bot {bot} never reached: {what}");
}
