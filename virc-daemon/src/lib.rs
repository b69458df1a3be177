//! virc-daemon: the only part of virc with IO. It owns configuration,
//! storage, the event bus and the gRPC API, and runs them in [`run`].
//!
//! # Layout
//! - [`config`]: TOML config and the credentials file.
//! - [`paths`]: default data directory, socket and config locations.
//! - [`store`]: sled storage behind typed methods.
//! - [`events`]: the event bus with its persisted, resumable log.
//! - [`exchange`]: the exchange interface; the simulated exchange; the Coinbase connector's
//!   parts (feed messages and live feed client, signing, rate limits, REST client).
//! - [`runtime`]: the bot runtime: bots, write-ahead intents, reconciliation, manual orders.
//! - [`market`]: recorded-feed replay and the market actor (tickers, candles, windows).
//! - [`recorder`]: every trade per product in sled, read back at start, exported and imported.
//! - [`notify`]: systemd readiness and watchdog notifications.
//! - [`api`]: the tonic services of `virc.v1`.
//! - [`server`]: [`run`], listeners and staged shutdown.
//! - [`clock`]: the source of "now".

pub mod api;
pub mod clock;
pub mod config;
pub mod emulator;
pub mod events;
pub mod exchange;
pub mod market;
pub mod notify;
pub mod paths;
pub mod recorder;
pub mod runtime;
pub mod server;
pub mod store;

pub use server::{DaemonError, Listener, Reloader, run, run_with_reload};
