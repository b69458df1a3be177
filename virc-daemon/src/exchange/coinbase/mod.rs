//! The Coinbase Exchange connector (`api.exchange.coinbase.com`,
//! `ws-feed.exchange.coinbase.com`), split by transport.

pub mod http;
pub mod ws;
