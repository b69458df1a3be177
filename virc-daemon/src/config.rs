//! The daemon's configuration: a TOML file with built-in defaults, and a
//! separate credentials file for secrets.
//!
//! # Where the config comes from
//! `--config PATH`, else `$VIRC_CONFIG`, else the first that exists of
//! `$XDG_CONFIG_HOME/virc/virc.toml` (or `~/.config/virc/virc.toml`) and
//! `/etc/virc/virc.toml`; with none, the built-in defaults apply.
//!
//! # Errors name the key and the line
//! Every value is checked while it is deserialized (unknown keys are refused,
//! durations and levels are parsed by their own types), so the TOML parser
//! reports the failing key with its line, column and what was expected.

use std::{
    fmt,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use serde::{Deserialize, Deserializer, de};

use crate::paths;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a bad value.
    #[error("invalid config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's report: key, line, column and what was expected.
        message: String,
    },
    /// The credentials file is unsafe or invalid.
    #[error("{0}")]
    Credentials(String),
    /// Settings that are each valid but do not fit together.
    #[error("invalid configuration: {0}")]
    Inconsistent(String),
}

/// The whole daemon configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Process-level settings: storage, listeners, logging.
    pub daemon: DaemonConfig,
    /// The event log and stream.
    pub events: EventsConfig,
    /// Where market data comes from.
    pub market: MarketConfig,
    /// Named exchange connections; a simulated exchange `paper` is always among them
    /// (with the defaults unless `[exchanges.paper]` sets it).
    pub exchanges: ExchangesConfig,
    /// The trade recorder.
    pub recorder: RecorderConfig,
    /// Where the config was loaded from; `None` for built-in defaults.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Start the demo bot (`virc-daemon --demo`): a looping range bot named
    /// `demo` on the bundled market, created once if absent.
    #[serde(skip)]
    pub demo_bot: bool,
}

/// Process-level settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Data directory (sled store and lock); see [`paths::default_data_dir`].
    pub data_dir: Option<PathBuf>,
    /// Unix socket path; see [`paths::default_socket`].
    pub socket: Option<PathBuf>,
    /// Optional TCP listen address; requires an API token in the credentials.
    pub tcp: Option<SocketAddr>,
    /// Credentials file (mode 0600).
    pub credentials_file: Option<PathBuf>,
    /// Log level.
    pub log_level: LogLevel,
    /// Log format.
    pub log_format: LogFormat,
    /// How long staged shutdown may take before remaining tasks are aborted.
    pub shutdown_grace: DurationSpec,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            data_dir: None,
            socket: None,
            tcp: None,
            credentials_file: None,
            log_level: LogLevel::Info,
            log_format: LogFormat::Human,
            shutdown_grace: DurationSpec(Duration::from_secs(4)),
        }
    }
}

/// Event log settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Keep at most this many events in the persisted log.
    pub max_events: Positive,
    /// Drop events older than this.
    pub max_age: DurationSpec,
    /// Events buffered per live subscriber before it is dropped as lagged.
    pub subscriber_buffer: Positive,
    /// Flush the log to disk before fanning each batch out, so a sequence
    /// number a client has seen is never reused after a crash.
    pub fsync: bool,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            max_events: Positive(1_000_000),
            max_age: DurationSpec(Duration::from_secs(30 * 86_400)),
            subscriber_buffer: Positive(4096),
            fsync: true,
        }
    }
}

/// Where the daemon's market data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MarketSource {
    /// The bundled recording (real BTC-USD trades of 2016-05-12), looping:
    /// a live-looking market with no network and no keys.
    Demo,
    /// A recorded Coinbase WebSocket feed file (`market.replay_file`).
    Replay,
    /// No market data.
    None,
    /// Coinbase's live public feed (`market.feed_url`): real prices for
    /// paper trading; no API key needed.
    Coinbase,
}

/// Whether the recorder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecorderMode {
    /// Record a live feed; not a replay (it is a recording already). Recorded
    /// history is read back at start whenever the source is not a replay.
    #[default]
    Auto,
    /// Record whatever the market is fed, replays included; a restarted
    /// replay resumes after the last trade recorded.
    On,
    /// Record nothing and read nothing back at start.
    Off,
}

/// The trade recorder's settings (`[recorder]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecorderConfig {
    /// `auto`, `on` or `off`.
    pub mode: RecorderMode,
    /// How long recorded trades are kept (exchange time), like `30d`.
    pub retention: DurationSpec,
    /// Per-product retention, overriding `retention`: `{ "BTC-USD" = "90d" }`.
    pub retention_by_product: std::collections::BTreeMap<String, DurationSpec>,
    /// How much recorded history rebuilds candles, windows and indicators at start.
    pub backfill: DurationSpec,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            mode: RecorderMode::Auto,
            retention: DurationSpec(Duration::from_secs(30 * 86_400)),
            retention_by_product: std::collections::BTreeMap::new(),
            backfill: DurationSpec(Duration::from_secs(7 * 86_400)),
        }
    }
}

impl Config {
    /// Whether trades are recorded and read back at start.
    pub fn recording(&self) -> bool {
        match self.recorder.mode {
            RecorderMode::On => true,
            RecorderMode::Off => false,
            RecorderMode::Auto => !matches!(
                self.market.source,
                MarketSource::Demo | MarketSource::Replay
            ),
        }
    }
}

/// Market data settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarketConfig {
    /// Where market data comes from.
    pub source: MarketSource,
    /// The recording to replay when `source = "replay"`.
    pub replay_file: Option<PathBuf>,
    /// Product definitions (a `GET /products` response); default: the demo's BTC-USD.
    pub products_file: Option<PathBuf>,
    /// Replay pace: a factor like "1x" or "60x", or "max".
    pub speed: String,
    /// Start the recording again at its end (times and trade ids shifted forward).
    #[serde(rename = "loop")]
    pub looping: bool,
    /// How often a changed product's `market_update` event is published.
    pub update_interval: DurationSpec,
    /// The live feed for `source = "coinbase"`.
    pub feed_url: String,
    /// Coinbase's REST endpoint, for the product list when no `products_file` is given.
    pub rest_url: String,
    /// Products the live feed subscribes to.
    pub products: Vec<String>,
    /// Channels the live feed subscribes to.
    pub channels: Vec<String>,
    /// Reconnect the live feed when nothing arrives for this long.
    pub stall: DurationSpec,
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            source: MarketSource::Demo,
            replay_file: None,
            products_file: None,
            speed: "1x".into(),
            looping: true,
            update_interval: DurationSpec(Duration::from_secs(1)),
            feed_url: "wss://ws-feed.exchange.coinbase.com".into(),
            rest_url: "https://api.exchange.coinbase.com".into(),
            products: vec!["BTC-USD".into()],
            channels: vec!["heartbeat".into(), "matches".into(), "level2_batch".into()],
            stall: DurationSpec(Duration::from_secs(10)),
        }
    }
}

/// The exchange connections, by name (`[exchanges.paper]`, `[exchanges.live]`).
/// Every key but `default` names a connection (serde cannot deny unknown
/// fields next to a flattened map; a stray key fails as a bad connection).
#[derive(Debug, Clone, Deserialize)]
pub struct ExchangesConfig {
    /// Connection used when a bot or order names none.
    #[serde(default = "default_exchange_name")]
    pub default: String,
    /// The connections.
    #[serde(flatten)]
    pub named: std::collections::BTreeMap<String, ExchangeConfig>,
}

fn default_exchange_name() -> String {
    "paper".into()
}

impl Default for ExchangesConfig {
    fn default() -> Self {
        Self {
            default: default_exchange_name(),
            named: [("paper".to_owned(), ExchangeConfig::default())].into(),
        }
    }
}

/// What kind of exchange a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeKind {
    /// The simulated exchange: paper trading on the configured market.
    Sim,
    /// The Coinbase Exchange (live or sandbox), with the credentials of the same name.
    Coinbase,
}

/// One exchange connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeConfig {
    /// `sim` or `coinbase`.
    pub kind: ExchangeKind,
    /// Starting balances of a simulated exchange, by currency (decimal strings);
    /// applied once, when its store is first created.
    pub wallet: std::collections::BTreeMap<String, String>,
    /// Maker fee rate of a simulated exchange ("0.004" = 0.40 %); default: Coinbase's first tier.
    pub maker_fee: String,
    /// Taker fee rate of a simulated exchange; default: Coinbase's first tier.
    pub taker_fee: String,
    /// REST endpoint of a `coinbase` connection; default: production. The
    /// sandbox is `https://api-public.sandbox.exchange.coinbase.com`.
    pub rest_url: Option<String>,
    /// WebSocket endpoint of a `coinbase` connection (its `user` channel);
    /// default: production. The sandbox is
    /// `wss://ws-feed-public.sandbox.exchange.coinbase.com`.
    pub ws_url: Option<String>,
    /// Products whose orders the `user` channel reports; default:
    /// `market.products`.
    pub products: Vec<String>,
    /// How often balances and open orders are read back from Coinbase
    /// (besides every `user`-channel message and reconnect).
    pub poll: DurationSpec,
}

/// Coinbase Exchange's production WebSocket endpoint.
pub const COINBASE_WS: &str = "wss://ws-feed.exchange.coinbase.com";

/// Coinbase Exchange's production REST endpoint.
pub const COINBASE_REST: &str = "https://api.exchange.coinbase.com";

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            kind: ExchangeKind::Sim,
            wallet: [
                ("USD".to_owned(), "10000".to_owned()),
                ("BTC".to_owned(), "10".to_owned()),
            ]
            .into(),
            maker_fee: "0.004".into(),
            taker_fee: "0.006".into(),
            rest_url: None,
            ws_url: None,
            products: Vec::new(),
            poll: DurationSpec(Duration::from_secs(10)),
        }
    }
}

impl ExchangeConfig {
    /// The checked starting wallet and fee rates of a simulated exchange.
    pub fn sim_terms(
        &self,
        name: &str,
    ) -> Result<
        (
            Vec<(String, rust_decimal::Decimal)>,
            virc_core::ledger::FeeRates,
        ),
        ConfigError,
    > {
        let bad = |key: &str, e: &dyn fmt::Display| {
            ConfigError::Inconsistent(format!("exchanges.{name}.{key}: {e}"))
        };
        let rate = |key: &str, text: &str| {
            let v = virc_core::money::parse_decimal("fee rate", text).map_err(|e| bad(key, &e))?;
            if v < rust_decimal::Decimal::ZERO || v >= rust_decimal::Decimal::ONE {
                return Err(bad(
                    key,
                    &format!("`{text}` is not a rate between 0 and 1 (0.004 = 0.40 %)"),
                ));
            }
            Ok(v)
        };
        let rates = virc_core::ledger::FeeRates {
            maker: rate("maker_fee", &self.maker_fee)?,
            taker: rate("taker_fee", &self.taker_fee)?,
        };
        let mut wallet = Vec::new();
        for (currency, text) in &self.wallet {
            virc_core::ids::Currency::new(currency)
                .map_err(|e| bad(&format!("wallet.{currency}"), &e))?;
            let v = virc_core::money::parse_decimal("balance", text)
                .map_err(|e| bad(&format!("wallet.{currency}"), &e))?;
            if v < rust_decimal::Decimal::ZERO {
                return Err(bad(
                    &format!("wallet.{currency}"),
                    &"a balance cannot be negative",
                ));
            }
            if v > rust_decimal::Decimal::ZERO {
                wallet.push((currency.clone(), v));
            }
        }
        Ok((wallet, rates))
    }
}

/// A strictly positive count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Positive(pub u64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        u64::try_from(v)
            .ok()
            .filter(|v| *v > 0)
            .map(Positive)
            .ok_or_else(|| {
                de::Error::invalid_value(de::Unexpected::Signed(v), &"a whole number of at least 1")
            })
    }
}

/// A duration written as a number and a unit: `500ms`, `30s`, `15m`, `6h`, `30d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSpec(pub Duration);

impl FromStr for DurationSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` does not start with a whole number"))?;
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(format!("`{s}` has unit `{unit}`; use ms, s, m, h or d")),
        };
        let ms = n
            .checked_mul(unit_ms)
            .ok_or_else(|| format!("`{s}` is too long"))?;
        if ms == 0 {
            return Err(format!("`{s}` must be longer than zero"));
        }
        Ok(Self(Duration::from_millis(ms)))
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e: String| {
            de::Error::invalid_value(
                de::Unexpected::Str(&s),
                &format!("a duration like \"30s\", \"15m\", \"6h\" or \"30d\" ({e})").as_str(),
            )
        })
    }
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Normal operation.
    Info,
    /// Diagnostics.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The `tracing` filter directive for this level.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line, for journald or log ingestion.
    Json,
}

impl Config {
    /// Parses a config from TOML text; `path` is only used in error messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.source = Some(path.to_owned());
        // The built-in paper exchange stays unless the file defines its own.
        config
            .exchanges
            .named
            .entry("paper".to_owned())
            .or_default();
        Ok(config)
    }

    /// Loads the config: the explicit path if given, else `$VIRC_CONFIG`,
    /// else the search path, else the built-in defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let chosen = explicit.map(Path::to_path_buf).or_else(|| {
            std::env::var_os("VIRC_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let path = match chosen {
            Some(path) => path,
            None => match paths::config_search_path()
                .into_iter()
                .find(|p| p.is_file())
            {
                Some(path) => path,
                None => return Ok(Config::default()),
            },
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_toml(&text, &path)
    }

    /// The data directory in effect.
    pub fn data_dir(&self) -> PathBuf {
        self.daemon
            .data_dir
            .clone()
            .unwrap_or_else(paths::default_data_dir)
    }

    /// The socket path in effect.
    pub fn socket(&self) -> PathBuf {
        self.daemon
            .socket
            .clone()
            .unwrap_or_else(paths::default_socket)
    }

    /// Checks settings that are valid alone but may not fit together.
    pub fn validate(&self, credentials: &Credentials) -> Result<(), ConfigError> {
        if let Err(e) = self.market.speed.parse::<crate::market::Speed>() {
            return Err(ConfigError::Inconsistent(format!("market.speed: {e}")));
        }
        if self.market.source == MarketSource::Coinbase && self.market.products.is_empty() {
            return Err(ConfigError::Inconsistent(
                "market.source is \"coinbase\" but market.products is empty: name the products to follow, like [\"BTC-USD\"]".into(),
            ));
        }
        if self.market.source == MarketSource::Replay && self.market.replay_file.is_none() {
            return Err(ConfigError::Inconsistent(
                "market.source is \"replay\" but market.replay_file is not set: name the recording to replay".into(),
            ));
        }
        let ex = &self.exchanges;
        if !ex.named.contains_key(&ex.default) {
            return Err(ConfigError::Inconsistent(format!(
                "exchanges.default is \"{}\" but no [exchanges.{}] is configured (configured: {})",
                ex.default,
                ex.default,
                ex.named.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        for (name, x) in &ex.named {
            // The name goes into store tree names, file keys and tables.
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ConfigError::Inconsistent(format!(
                    "[exchanges.{name}]: an exchange name is 1 to 64 letters, digits, '-' or '_' (for example paper or live-eu)"
                )));
            }
            match x.kind {
                ExchangeKind::Sim => {
                    x.sim_terms(name)?;
                }
                ExchangeKind::Coinbase => {
                    if !credentials.exchanges.contains_key(name) {
                        return Err(ConfigError::Inconsistent(format!(
                            "exchanges.{name} is a Coinbase connection but has no credentials: add [exchanges.{name}] key, secret and passphrase to the credentials file (mode 0600), or set VIRC_COINBASE_KEY, _SECRET and _PASSPHRASE"
                        )));
                    }
                    if x.products.is_empty() && self.market.products.is_empty() {
                        return Err(ConfigError::Inconsistent(format!(
                            "exchanges.{name}: name the products whose orders to follow, in exchanges.{name}.products or market.products"
                        )));
                    }
                }
            }
        }
        if self.daemon.tcp.is_some() && credentials.api_token.is_none() {
            return Err(ConfigError::Inconsistent(
                "daemon.tcp is set but no API token is configured: set `api_token` in the credentials file or VIRC_API_TOKEN, since the TCP listener refuses every call without it".into(),
            ));
        }
        Ok(())
    }
}

/// A secret string. It has no `Display`, and `Debug` prints `[redacted]`,
/// so it cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for signing or comparing; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Coinbase Exchange API credentials of one exchange connection.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeCredentials {
    /// API key (not secret by itself).
    pub key: String,
    /// Base64 API secret.
    pub secret: Secret,
    /// API passphrase.
    pub passphrase: Secret,
}

impl fmt::Debug for ExchangeCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeCredentials")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Every secret the daemon uses, from the credentials file and the environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Credentials {
    /// Bearer token the TCP listener requires on every call.
    pub api_token: Option<Secret>,
    /// Exchange credentials by connection name (`[exchanges.live]`).
    pub exchanges: std::collections::BTreeMap<String, ExchangeCredentials>,
}

impl Credentials {
    /// Loads the credentials file (which must be mode 0600 or stricter) if
    /// there is one, then applies the environment: `VIRC_API_TOKEN`, and
    /// `VIRC_COINBASE_KEY` / `_SECRET` / `_PASSPHRASE` (all three) for the
    /// connection named by `VIRC_COINBASE_EXCHANGE` (default `live`).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut creds = match path {
            Some(path) => Self::read_file(path)?,
            None => Self::default(),
        };
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(token) = var("VIRC_API_TOKEN") {
            creds.api_token = Some(Secret::new(token));
        }
        match (
            var("VIRC_COINBASE_KEY"),
            var("VIRC_COINBASE_SECRET"),
            var("VIRC_COINBASE_PASSPHRASE"),
        ) {
            (Some(key), Some(secret), Some(passphrase)) => {
                let name = var("VIRC_COINBASE_EXCHANGE").unwrap_or_else(|| "live".to_owned());
                let exchange = ExchangeCredentials {
                    key,
                    secret: Secret::new(secret),
                    passphrase: Secret::new(passphrase),
                };
                creds.exchanges.insert(name, exchange);
            }
            (None, None, None) => {}
            _ => {
                return Err(ConfigError::Credentials(
                    "VIRC_COINBASE_KEY, VIRC_COINBASE_SECRET and VIRC_COINBASE_PASSPHRASE must be set together (or none of them)".into(),
                ));
            }
        }
        Ok(creds)
    }

    fn read_file(path: &Path) -> Result<Self, ConfigError> {
        let meta = std::fs::metadata(path).map_err(|e| {
            ConfigError::Credentials(format!(
                "cannot read credentials file {}: {e}",
                path.display()
            ))
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConfigError::Credentials(format!(
                "credentials file {} has mode {mode:04o}, so other users can read the secrets in it; run `chmod 600 {}` and start again",
                path.display(),
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::Credentials(format!(
                "cannot read credentials file {}: {e}",
                path.display()
            ))
        })?;
        // The parser's message quotes the offending line, which may hold a
        // secret, so only its first line (position and reason) is kept.
        toml::from_str(&text).map_err(|e| {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or_default().to_owned();
            let reason = msg.lines().last().unwrap_or_default().to_owned();
            ConfigError::Credentials(format!(
                "invalid credentials file {}: {first}: {reason}",
                path.display()
            ))
        })
    }

    /// Whether `presented` equals the API token, compared in constant time.
    pub fn token_matches(&self, presented: &str) -> bool {
        let Some(token) = &self.api_token else {
            return false;
        };
        let (a, b) = (token.expose().as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn the_live_feed_needs_products_and_records_by_default() {
        let c = parse("[market]\nsource = \"coinbase\"\nproducts = [\"ETH-USD\"]\n").unwrap();
        assert!(c.recording(), "a live feed is recorded");
        assert_eq!(c.market.feed_url, "wss://ws-feed.exchange.coinbase.com");
        let err = parse("[market]\nsource = \"coinbase\"\nproducts = []\n")
            .and_then(|c| c.validate(&Credentials::default()).map(|()| c))
            .unwrap_err()
            .to_string();
        assert!(err.contains("market.products is empty"), "{err}");
        assert!(!parse("").unwrap().recording(), "the demo replay is not");
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.events.max_events, Positive(1_000_000));
        assert_eq!(c.daemon.log_level, LogLevel::Info);
        assert!(c.daemon.tcp.is_none());
    }

    #[test]
    fn full_file_is_read() {
        let c = parse(
            "[daemon]\ndata_dir = \"/tmp/x\"\nsocket = \"/tmp/x.sock\"\ntcp = \"127.0.0.1:7878\"\nlog_level = \"debug\"\nlog_format = \"json\"\n\n[events]\nmax_events = 10\nmax_age = \"2h\"\n",
        )
        .unwrap();
        assert_eq!(c.data_dir(), PathBuf::from("/tmp/x"));
        assert_eq!(c.daemon.log_format, LogFormat::Json);
        assert_eq!(c.events.max_age.0, Duration::from_secs(7200));
        assert_eq!(c.events.max_events.0, 10);
    }

    #[test]
    fn exchanges_are_named_tables_with_checked_terms() {
        let c = parse(
            "[exchanges]\ndefault = \"paper2\"\n\n[exchanges.paper2]\nkind = \"sim\"\nwallet = { USD = \"500\", ETH = \"0\" }\nmaker_fee = \"0\"\n",
        )
        .unwrap();
        c.validate(&Credentials::default()).unwrap();
        let (wallet, rates) = c.exchanges.named["paper2"].sim_terms("paper2").unwrap();
        assert_eq!(
            wallet,
            vec![("USD".to_owned(), rust_decimal::Decimal::from(500))]
        );
        assert_eq!(rates.maker, rust_decimal::Decimal::ZERO);
        // Defaults: one sim exchange named paper with a wallet.
        let d = parse("").unwrap();
        assert_eq!(d.exchanges.default, "paper");
        assert!(d.exchanges.named["paper"].sim_terms("paper").is_ok());

        let err = parse("[exchanges.paper]\nwalet = {}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `walet`"), "{err}");
        let bad = |text: &str| {
            parse(text)
                .unwrap()
                .validate(&Credentials::default())
                .unwrap_err()
                .to_string()
        };
        let err = bad("[exchanges.paper]\nmaker_fee = \"2\"\n");
        assert!(err.contains("exchanges.paper.maker_fee"), "{err}");
        let err =
            bad("[exchanges]\ndefault = \"my paper\"\n[exchanges.\"my paper\"]\nkind = \"sim\"\n");
        assert!(err.contains("exchange name is 1 to 64 letters"), "{err}");
        let err = bad("[exchanges.paper]\nwallet = { USD = \"-1\" }\n");
        assert!(err.contains("exchanges.paper.wallet.USD"), "{err}");
        let err = bad("[exchanges.paper]\nwallet = { \"US DOLLAR\" = \"1\" }\n");
        assert!(
            err.contains("exchanges.paper.wallet.US DOLLAR") && err.contains("currency code"),
            "{err}"
        );
        let err = bad("[exchanges]\ndefault = \"live\"\n");
        assert!(err.contains("no [exchanges.live]"), "{err}");
        // Naming other connections keeps the built-in paper exchange.
        let c = parse("[exchanges.cheap]\nmaker_fee = \"0.001\"\n").unwrap();
        assert_eq!(
            c.exchanges.named.keys().collect::<Vec<_>>(),
            vec!["cheap", "paper"]
        );
        let err = bad("[exchanges.live]\nkind = \"coinbase\"\n");
        assert!(err.contains("has no credentials"), "{err}");
    }

    #[test]
    fn unknown_key_is_named_with_its_line_and_the_expected_keys() {
        let err = parse("[daemon]\nlog_level = \"info\"\nsoket = \"/tmp/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("unknown field `soket`"), "{err}");
        assert!(err.contains("`socket`"), "{err}");
        assert!(err.contains("test.toml"), "{err}");
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        let cases = [
            ("[events]\nmax_events = 0\n", "a whole number of at least 1"),
            ("[events]\nmax_age = \"3 weeks\"\n", "a duration like"),
            ("[events]\nmax_age = \"10y\"\n", "use ms, s, m, h or d"),
            ("[daemon]\nlog_level = \"loud\"\n", "expected one of"),
            ("[daemon]\ntcp = \"localhost\"\n", "socket address"),
            ("[daemon]\ndata_dir = 5\n", "line 2"),
            ("[nope]\n", "unknown field `nope`"),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?} gave {err}");
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(
            "500ms".parse::<DurationSpec>().unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!(
            "7d".parse::<DurationSpec>().unwrap().0,
            Duration::from_secs(7 * 86_400)
        );
        assert!("0s".parse::<DurationSpec>().is_err());
        assert!("s".parse::<DurationSpec>().is_err());
    }

    #[test]
    fn market_settings_are_checked() {
        let c = parse("").unwrap();
        assert_eq!(
            c.market.source,
            MarketSource::Demo,
            "the bundled market is the default"
        );
        assert!(c.validate(&Credentials::default()).is_ok());
        let c = parse("[market]\nsource = \"replay\"\n").unwrap();
        let err = c.validate(&Credentials::default()).unwrap_err().to_string();
        assert!(err.contains("market.replay_file"), "{err}");
        let c = parse("[market]\nspeed = \"fast\"\n").unwrap();
        let err = c.validate(&Credentials::default()).unwrap_err().to_string();
        assert!(err.contains("market.speed") && err.contains("60x"), "{err}");
        let err = parse("[market]\nsource = \"live\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("demo"), "{err}");
        let c = parse("[market]\nsource = \"none\"\nloop = false\nupdate_interval = \"250ms\"\n")
            .unwrap();
        assert!(!c.market.looping);
    }

    #[test]
    fn tcp_without_token_is_inconsistent() {
        let c = parse("[daemon]\ntcp = \"127.0.0.1:0\"\n").unwrap();
        let err = c.validate(&Credentials::default()).unwrap_err().to_string();
        assert!(err.contains("api_token"), "{err}");
        let creds = Credentials {
            api_token: Some(Secret::new("t")),
            ..Credentials::default()
        };
        assert!(c.validate(&creds).is_ok());
    }

    #[test]
    fn credentials_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(&path, "api_token = \"s3cret\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Credentials::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("mode 0644") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let creds = Credentials::load(Some(&path)).unwrap();
        assert!(creds.token_matches("s3cret"));
        assert!(!creds.token_matches("s3creT"));
        assert!(!creds.token_matches(""));
    }

    #[test]
    fn secrets_never_appear_in_debug_or_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(
            &path,
            "[exchanges.live]\nkey = \"k1\"\nsecret = \"SECRETVALUE\"\npassphrase = \"PASSVALUE\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let creds = Credentials::load(Some(&path)).unwrap();
        let dbg = format!("{creds:?}");
        assert!(dbg.contains("k1"));
        assert!(
            !dbg.contains("SECRETVALUE") && !dbg.contains("PASSVALUE"),
            "{dbg}"
        );

        std::fs::write(
            &path,
            "[exchanges.live]\nkey = \"k1\"\nsecret = SECRETVALUE\n",
        )
        .unwrap();
        let err = Credentials::load(Some(&path)).unwrap_err().to_string();
        assert!(!err.contains("SECRETVALUE"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }
}
