//! A Coinbase Exchange emulator on loopback: the REST API and the WebSocket
//! feed of coinbase-exchange.md, served from virc-core's matching engine, so
//! the live connector is proved offline against the real wire protocol
//! (paths, auth headers and signatures, JSON shapes, error texts,
//! pagination, channels, sequence numbers).
//!
//! - [`engine`]: the exchange's state and the messages it produces (no IO).
//! - [`rest`]: the HTTP front (auth, rate limits, routes).
//! - [`ws`]: the WebSocket front (subscribe, auth, channels, heartbeats).
//! - [`driver`]: synthetic market flow from a seed, so there is a market
//!   for the test account's orders to meet.
//! - [`Faults`]: what a test can break: HTTP errors and slow answers, lost
//!   order answers, dropped and stalled feeds, skipped messages, clock skew.
//!
//! Start one with [`Emulator::start`] (tests, benches) or
//! `virc-daemon --emulate` (a demo; it prints the URLs and credentials to
//! put in the daemon's config).
//!
//! # Simplifications, on purpose
//! - `level2_batch` is sent like `level2`: one `l2update` per change, no
//!   50 ms batching.
//! - One account per credential triple, no profiles beyond its id; no
//!   transfers, holds or ledger endpoints; candles and stats are not served.
//! - Heartbeats carry the product's last sequence number.

pub mod driver;
pub mod engine;
pub mod rest;
pub mod ws;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use rust_decimal::Decimal;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use virc_core::{ledger::FeeRates, matcher::UserId};

use crate::{
    clock::Clock,
    config::{ExchangeCredentials, Secret},
    exchange::coinbase::http::signer::Signer,
};
use engine::{Engine, Outgoing};

/// One account of the emulator, with its API credentials.
#[derive(Debug, Clone)]
pub struct Account {
    /// The matcher's user.
    pub user: UserId,
    /// Its profile id.
    pub profile_id: String,
    /// API key.
    pub key: String,
    /// Base64 secret.
    pub secret: Secret,
    /// Passphrase.
    pub passphrase: Secret,
    /// Starting money.
    pub funds: Vec<(String, Decimal)>,
}

impl Account {
    /// The credentials a client configures to be this account.
    pub fn credentials(&self) -> ExchangeCredentials {
        ExchangeCredentials {
            key: self.key.clone(),
            secret: self.secret.clone(),
            passphrase: self.passphrase.clone(),
        }
    }
}

/// Token-bucket limits per class (coinbase-exchange.md §5).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Public: rate per second, burst.
    pub public: (f64, f64),
    /// Private: rate per second, burst.
    pub private: (f64, f64),
    /// `/fills`: rate per second, burst.
    pub fills: (f64, f64),
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            public: (10.0, 15.0),
            private: (15.0, 30.0),
            fills: (10.0, 20.0),
        }
    }
}

/// What to emulate.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The `/products` body of the products traded.
    pub products_json: String,
    /// Fee rates.
    pub rates: FeeRates,
    /// The accounts clients may log in as.
    pub accounts: Vec<Account>,
    /// Rate limits.
    pub limits: Limits,
    /// Synthetic flow; `None` for a market that moves only when a test says.
    pub driver: Option<driver::DriverConfig>,
    /// REST listen address (port 0: any free port).
    pub rest_addr: SocketAddr,
    /// WebSocket listen address.
    pub ws_addr: SocketAddr,
}

/// A canned refusal for the next HTTP requests.
#[derive(Debug, Clone, Copy)]
struct FailNext {
    count: u32,
    status: u16,
}

#[derive(Debug, Default)]
struct FaultState {
    fail: Option<FailNext>,
    slow: u32,
    slow_for: Duration,
    lose_posts: u32,
    skew_ns: i64,
    skip: HashMap<String, u32>,
    stall_until: Option<tokio::time::Instant>,
}

/// Fault injection, shared by both fronts.
#[derive(Debug)]
pub struct Faults {
    state: Mutex<FaultState>,
    drops: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            drops: watch::channel(0).0,
        }
    }
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next `count` HTTP requests are answered `status` (429, 500, 503)
    /// without reaching the exchange.
    pub fn fail_next(&self, count: u32, status: u16) {
        self.lock().fail = Some(FailNext { count, status });
    }

    /// The next `count` requests are carried out, then answered only after
    /// `delay` (longer than the client's timeout: the answer is lost).
    pub fn slow_next(&self, count: u32, delay: Duration) {
        let mut s = self.lock();
        s.slow = count;
        s.slow_for = delay;
    }

    /// The next `count` order placements reach the book but are answered
    /// 500: the client cannot know whether its order exists.
    pub fn lose_next_posts(&self, count: u32) {
        self.lock().lose_posts = count;
    }

    /// The exchange's clock runs `skew_ns` ahead of the machine's.
    pub fn set_skew(&self, skew_ns: i64) {
        self.lock().skew_ns = skew_ns;
    }

    /// Closes every WebSocket connection now.
    pub fn drop_connections(&self) {
        self.drops.send_modify(|g| *g += 1);
    }

    /// The next `count` `full`/`matches`/`ticker` messages of `product` are
    /// lost for every subscriber (a sequence and trade-id gap).
    pub fn skip_next(&self, product: &str, count: u32) {
        self.lock().skip.insert(product.to_owned(), count);
    }

    /// The feed sends nothing at all (not even heartbeats) for `how_long`.
    pub fn stall_for(&self, how_long: Duration) {
        self.lock().stall_until = Some(tokio::time::Instant::now() + how_long);
    }

    fn skew(&self) -> i64 {
        self.lock().skew_ns
    }

    fn take_fail(&self) -> Option<u16> {
        let mut s = self.lock();
        let f = s.fail.as_mut()?;
        let status = f.status;
        f.count = f.count.saturating_sub(1);
        if f.count == 0 {
            s.fail = None;
        }
        Some(status)
    }

    fn take_slow(&self) -> Option<Duration> {
        let mut s = self.lock();
        (s.slow > 0).then(|| {
            s.slow -= 1;
            s.slow_for
        })
    }

    fn take_lost_post(&self) -> bool {
        let mut s = self.lock();
        (s.lose_posts > 0).then(|| s.lose_posts -= 1).is_some()
    }

    fn take_skip(&self, product: &str) -> bool {
        let mut s = self.lock();
        match s.skip.get_mut(product) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    fn stalled(&self) -> Option<tokio::time::Instant> {
        let s = self.lock();
        s.stall_until.filter(|u| *u > tokio::time::Instant::now())
    }
}

/// What both fronts share.
pub struct Shared {
    engine: Mutex<Engine>,
    accounts: Vec<(Account, Signer)>,
    /// Fault injection.
    pub faults: Faults,
    feed: broadcast::Sender<Arc<Outgoing>>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    /// Requests served (any status), for tests.
    pub requests: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// The exchange's time (the machine's, plus injected skew).
    pub fn now(&self) -> i64 {
        self.clock.now() + self.faults.skew()
    }

    /// Runs `f` on the engine and publishes the messages it produced.
    pub fn with_engine<T>(&self, f: impl FnOnce(&mut Engine) -> T) -> T {
        let mut e = self
            .engine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let r = f(&mut e);
        for out in e.take_outgoing() {
            // A lost message: every subscriber misses it.
            if matches!(out.stream, engine::Stream::Full | engine::Stream::Ticker)
                && self.faults.take_skip(&out.product)
            {
                continue;
            }
            // No subscriber is fine.
            let _ = self.feed.send(Arc::new(out));
        }
        r
    }

    fn account(&self, key: &str) -> Option<&(Account, Signer)> {
        self.accounts.iter().find(|(a, _)| a.key == key)
    }
}

/// A running emulator.
#[derive(Debug, Clone)]
pub struct Emulator {
    /// What the fronts share: the engine and the fault switches.
    pub shared: Arc<Shared>,
    /// `http://127.0.0.1:PORT`.
    pub rest_url: String,
    /// `ws://127.0.0.1:PORT`.
    pub ws_url: String,
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error("emulator: {0}")]
    Config(String),
}

impl Emulator {
    /// Binds both fronts and starts serving (and driving the market) until `stop`.
    pub async fn start(
        config: EmulatorConfig,
        clock: Arc<dyn Clock>,
        stop: CancellationToken,
    ) -> Result<Self, EmulatorError> {
        let mut engine = Engine::new(&config.products_json, config.rates)
            .map_err(|e| EmulatorError::Config(format!("products: {e}")))?;
        driver::fund(&mut engine);
        let mut accounts = Vec::new();
        for a in &config.accounts {
            let signer = Signer::new(&a.credentials())
                .map_err(|e| EmulatorError::Config(format!("account {}: {e}", a.key)))?;
            let funds: Vec<(&str, Decimal)> =
                a.funds.iter().map(|(c, v)| (c.as_str(), *v)).collect();
            engine.fund(a.user, &a.profile_id, &funds);
            accounts.push((a.clone(), signer));
        }
        let (feed, _) = broadcast::channel(65_536);
        let shared = Arc::new(Shared {
            engine: Mutex::new(engine),
            accounts,
            faults: Faults::default(),
            feed,
            clock,
            limits: config.limits,
            requests: std::sync::atomic::AtomicU64::new(0),
        });
        let bind = |addr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| EmulatorError::Listen { addr, source })
        };
        let rest_listener = bind(config.rest_addr).await?;
        let ws_listener = bind(config.ws_addr).await?;
        let local = |l: &tokio::net::TcpListener, addr| {
            l.local_addr()
                .map_err(|source| EmulatorError::Listen { addr, source })
        };
        let rest_url = format!("http://{}", local(&rest_listener, config.rest_addr)?);
        let ws_url = format!("ws://{}", local(&ws_listener, config.ws_addr)?);
        tokio::spawn(rest::serve(rest_listener, shared.clone(), stop.clone()));
        tokio::spawn(ws::serve(ws_listener, shared.clone(), stop.clone()));
        if let Some(d) = config.driver {
            tokio::spawn(driver::run(d, shared.clone(), stop));
        }
        Ok(Self {
            shared,
            rest_url,
            ws_url,
        })
    }

    /// The fault switches.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Rests a driver order at `price` (a counterparty for the test account).
    pub fn rest(
        &self,
        product: &str,
        buy: bool,
        price: Decimal,
        size: Decimal,
    ) -> Result<(), String> {
        driver::order(&self.shared, product, buy, price, size, true)
    }

    /// A driver IOC that takes everything up to `price`: it prints trades and
    /// fills the test account's resting orders it reaches.
    pub fn take(
        &self,
        product: &str,
        buy: bool,
        price: Decimal,
        size: Decimal,
    ) -> Result<(), String> {
        driver::order(&self.shared, product, buy, price, size, false)
    }
}
