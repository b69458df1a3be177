//! Helpers shared by the tests that run the daemon binary as a child process.
#![allow(dead_code, reason = "each test file uses a part")]

use std::{path::Path, time::Duration};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};
use virc_proto::v1::{self as pb, system_client::SystemClient};

/// Kills the daemon if the test ends early.
pub struct Guard(pub std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A channel to the daemon socket at `path`, if it accepts.
pub async fn connect(path: &Path) -> Option<Channel> {
    let path = path.to_owned();
    Endpoint::from_static("http://virc.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .ok()
}

/// Waits until the daemon on `sock` answers `Status`.
pub async fn ready(sock: &Path) -> Channel {
    for _ in 0..500 {
        if let Some(ch) = connect(sock).await
            && SystemClient::new(ch.clone())
                .status(pb::StatusRequest {})
                .await
                .is_ok()
        {
            return ch;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("daemon did not come up");
}

/// An HTTP/1.1 response with a JSON body and extra header lines ("name: value\r\n").
pub fn reply(status: u16, body: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The handler of [`http_server`]: (method, path with query, lower-cased headers, body) to a response.
pub type Handler =
    dyn Fn(&str, &str, &std::collections::HashMap<String, String>, &str) -> String + Send + Sync;

/// A minimal HTTP/1.1 server on loopback (one request per connection), for
/// Coinbase-shaped REST answers; returns its base URL.
pub async fn http_server(handler: std::sync::Arc<Handler>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let head = text[..end].to_owned();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .and_then(|v| v.trim().parse::<usize>().ok())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break (head, text[end + 4..end + 4 + len].to_owned());
                        }
                    }
                };
                let mut lines = head.lines();
                let mut first = lines.next().unwrap_or_default().split(' ');
                let (method, path) = (
                    first.next().unwrap_or_default().to_owned(),
                    first.next().unwrap_or_default().to_owned(),
                );
                let headers: std::collections::HashMap<String, String> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let out = handler(&method, &path, &headers, &body);
                let _ = sock.write_all(out.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

/// The emulator's one test account: 10,000 USD and 1 BTC.
pub fn emulator_account() -> virc_daemon::emulator::Account {
    use rust_decimal::Decimal;
    virc_daemon::emulator::Account {
        user: virc_core::matcher::UserId(1),
        profile_id: "profile-1".into(),
        key: "key-1".into(),
        secret: virc_daemon::config::Secret::new("c2VjcmV0LWJ5dGVzLWZvci10ZXN0cw=="),
        passphrase: virc_daemon::config::Secret::new("pass phrase"),
        funds: vec![
            ("USD".into(), Decimal::from(10_000)),
            ("BTC".into(), Decimal::ONE),
        ],
    }
}

/// A Coinbase emulator on loopback trading the bundled BTC-USD product at
/// Coinbase's first fee tier, with [`emulator_account`] and no market driver.
pub async fn start_emulator() -> virc_daemon::emulator::Emulator {
    use rust_decimal::Decimal;
    virc_daemon::emulator::Emulator::start(
        virc_daemon::emulator::EmulatorConfig {
            products_json: include_str!("../../data/demo/products.json").into(),
            rates: virc_core::ledger::FeeRates {
                maker: Decimal::new(4, 3),
                taker: Decimal::new(6, 3),
            },
            accounts: vec![emulator_account()],
            limits: virc_daemon::emulator::Limits::default(),
            driver: None,
            rest_addr: "127.0.0.1:0".parse().unwrap(),
            ws_addr: "127.0.0.1:0".parse().unwrap(),
        },
        std::sync::Arc::new(virc_daemon::clock::SystemClock),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap()
}
