//! Helpers shared by the tests that run the daemon binary as a child process.
#![allow(dead_code, reason = "each test file uses a part")]

use std::{path::Path, time::Duration};

use hyper_util::rt::TokioIo;
use rust_decimal::Decimal;
use tonic::transport::{Channel, Endpoint, Uri};
use virc_core::ids::{BotId, ClientOid};
use virc_proto::v1::{
    self as pb, account_client::AccountClient, orders_client::OrdersClient,
    system_client::SystemClient,
};

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
    start_emulator_with(None).await
}

/// As [`start_emulator`], with a synthetic market when `driver` is given.
pub async fn start_emulator_with(
    driver: Option<virc_daemon::emulator::driver::DriverConfig>,
) -> virc_daemon::emulator::Emulator {
    virc_daemon::emulator::Emulator::start(
        virc_daemon::emulator::EmulatorConfig {
            products_json: include_str!("../../data/demo/products.json").into(),
            rates: virc_core::ledger::FeeRates {
                maker: Decimal::new(4, 3),
                taker: Decimal::new(6, 3),
            },
            accounts: vec![emulator_account()],
            limits: virc_daemon::emulator::Limits::default(),
            driver,
            rest_addr: "127.0.0.1:0".parse().unwrap(),
            ws_addr: "127.0.0.1:0".parse().unwrap(),
        },
        std::sync::Arc::new(virc_daemon::clock::SystemClock),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap()
}

/// A decimal from the API's text.
pub fn d(s: &str) -> rust_decimal::Decimal {
    s.parse().unwrap()
}

/// Checks any bot against the exchange's record: every intent, numbered
/// from 1 without a gap, is exactly one order (none lost, none doubled),
/// its fills add up to it, and the bot's fees are its fills' fees.
pub async fn check_intents(ch: &Channel, bot: &pb::Bot) -> (Vec<pb::Order>, Vec<pb::Fill>) {
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
    let mut in_order = Vec::new();
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
        let size: Decimal = fills
            .iter()
            .filter(|f| f.order_id == o.id)
            .map(|f| d(&f.size))
            .sum();
        assert_eq!(size, d(&o.filled_size), "fills add up to the order");
        in_order.push(o.clone());
    }
    let fees: Decimal = fills.iter().map(|f| d(&f.fee)).sum();
    let pnl = bot.pnl.clone().unwrap();
    assert_eq!(d(&pnl.fees_paid), fees, "bot {} fees", bot.name);
    assert!(
        in_order
            .iter()
            .all(|o| o.status == pb::OrderStatus::Done as i32
                || o.status == pb::OrderStatus::Rejected as i32),
        "bot {} stopped with orders on the book",
        bot.name
    );
    (in_order, fills)
}

/// Checks a bot whose orders alternate buy, sell (range and the
/// conditional program here): its cycles and realized profit from the
/// fills; returns its completed cycles.
pub async fn check_bot(ch: &Channel, bot: &pb::Bot) -> u64 {
    let (orders, fills) = check_intents(ch, bot).await;
    let (mut realized, mut cycles) = (Decimal::ZERO, 0);
    let (mut bought, mut cycle_fees) = (Decimal::ZERO, Decimal::ZERO);
    for (i, o) in orders.iter().enumerate() {
        let step = i as u64 + 1;
        let expected_side = if step % 2 == 1 {
            pb::Side::Buy
        } else {
            pb::Side::Sell
        };
        assert_eq!(o.side, expected_side as i32, "bot {} step {step}", bot.name);
        let mine: Vec<&pb::Fill> = fills.iter().filter(|f| f.order_id == o.id).collect();
        let value: Decimal = mine.iter().map(|f| d(&f.price) * d(&f.size)).sum();
        cycle_fees += mine.iter().map(|f| d(&f.fee)).sum::<Decimal>();
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
    let pnl = bot.pnl.clone().unwrap();
    assert_eq!(pnl.cycles, cycles, "bot {} cycles", bot.name);
    assert_eq!(
        d(&pnl.realized_profit),
        realized,
        "bot {} realized",
        bot.name
    );
    cycles
}

/// A small deterministic generator (xorshift), so a failing run can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// Asks the daemon for a looping range bot `name` on BTC-USD, on `exchange`
/// (empty: the default one).
pub async fn create_range(
    ch: &Channel,
    exchange: &str,
    name: &str,
    size: &str,
    buy: &str,
    sell: &str,
) -> Result<pb::CreateBotResponse, tonic::Status> {
    virc_proto::v1::bots_client::BotsClient::new(ch.clone())
        .create(pb::CreateBotRequest {
            spec: Some(pb::BotSpec {
                name: name.into(),
                exchange: exchange.into(),
                kind: Some(pb::bot_spec::Kind::Range(pb::RangeSpec {
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
        .map(tonic::Response::into_inner)
}
