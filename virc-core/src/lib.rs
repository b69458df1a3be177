//! virc-core: the pure domain of virc, with no IO, no async runtime and no
//! wall clock: time comes in as a value, so everything here is
//! deterministic and testable with plain unit and property tests.
//!
//! # Layout
//! - [`money`]: `Price`, `Size`, `Funds`; strict decimal parsing.
//! - [`compact`]: binary serde forms of decimals and ids for stored records.
//! - [`ids`]: `OrderId`, `ClientOid`, `BotId`, `TradeId`, `Sequence`, `ProductId`.
//! - [`product`]: products and their catalogue (`GET /products`).
//! - [`order`]: order requests, validation with Coinbase's texts, the lifecycle.
//! - [`ledger`]: balances, holds, fees and per-bot reservations.
//! - [`matcher`]: the matching engine with Coinbase semantics.
//! - [`book`]: the level-2 book.
//! - [`bot`]: bots as pure state machines (inputs in, commands out).
//! - [`paper`]: the queue-aware paper fill model against an observed market.
//! - [`market`]: trades to candles, rolling windows and indicators.
//! - [`rule`]: the rule language of conditional bots (infix and JsonLogic).
//! - [`time`]: exchange timestamps (RFC 3339) without a clock.

pub mod book;
pub mod bot;
pub mod compact;
pub mod ids;
pub mod ledger;
pub mod market;
pub mod matcher;
pub mod money;
pub mod order;
pub mod paper;
pub mod product;
pub mod rule;
#[cfg(test)]
mod testkit;
pub mod time;
