//! Exchange connectors behind one interface, [`Exchange`]. Venue JSON types
//! never leave their connector: what comes out is virc-core's types and the
//! [`OrderView`] / [`FillView`] / [`Update`] below.
//!
//! - [`sim`]: the simulated exchange (paper trading on the configured market).
//! - [`coinbase`]: the Coinbase Exchange (feed messages and request signing so far).

pub mod coinbase;
pub mod sim;

use serde::{Deserialize, Serialize};
use virc_core::{
    ids::{BotId, ClientOid, OrderId},
    money::{Price, Size},
    order::{Order, OrderRequest, Rejection, Side},
    paper::Liquidity,
};

/// An order as an exchange reports it, with what virc adds (the owning bot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// The exchange's record: request, status, progress and times.
    pub order: Order,
    /// The exchange's words for a rejection or a cancel it made.
    pub reason: String,
    /// The bot that placed it; `None` for manual orders.
    pub bot: Option<BotId>,
}

impl OrderView {
    /// The client id it was placed under.
    pub fn client_oid(&self) -> Option<ClientOid> {
        self.order.new.client_oid
    }
}

/// One fill of one of our orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillView {
    /// The exchange's trade id.
    pub trade_id: u64,
    /// Our order.
    pub order_id: OrderId,
    /// Our order's client id.
    pub client_oid: Option<ClientOid>,
    /// The owning bot, if any.
    pub bot: Option<BotId>,
    /// Product id.
    pub product_id: String,
    /// Our side.
    pub side: Side,
    /// Price.
    pub price: Price,
    /// Size.
    pub size: Size,
    /// Fee in quote.
    pub fee: rust_decimal::Decimal,
    /// Maker or taker.
    pub liquidity: Liquidity,
    /// Exchange time (ns since the epoch).
    pub time: i64,
}

/// Something that happened to our orders, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// An order changed: `change` is "received", "open", "done", ...
    Order {
        /// The order after the change.
        view: OrderView,
        /// What changed, in the exchange's feed vocabulary.
        change: &'static str,
    },
    /// One of our orders traded.
    Fill(FillView),
}

/// How a caller names an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// By the exchange's id.
    Id(OrderId),
    /// By our client id.
    Client(ClientOid),
}

/// What went wrong talking to an exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The exchange refused, with its exact text.
    #[error("{0}")]
    Rejected(#[from] Rejection),
    /// The exchange could not be asked (storage, connection); retry later.
    #[error("exchange unavailable: {0}")]
    Unavailable(String),
}

/// One reply from an exchange: the result, and every update it caused.
pub type Reply<T> = Result<(T, Vec<Update>), ExchangeError>;

/// What the bot runtime needs from a venue, shaped around bots rather than
/// around one venue's wire format: place under a client id, cancel, look an
/// order up by client id (the heart of reconciliation), and its fills.
/// Updates the venue produces on its own (fills from market data, cancels
/// made elsewhere) come from the venue's own feed: for the simulated
/// exchange, the return values of [`sim::SimExchange::on_trade`] and its
/// siblings. The methods are synchronous because the one venue so far
/// answers from memory; they become async with the live connector.
pub trait Exchange {
    /// The connection's configured name.
    fn name(&self) -> &str;
    /// Whether the venue keeps its record in the daemon's own store (the
    /// simulated exchange). Its writes then follow the bots' intents in one
    /// log, so no flush is needed before acting on it; a remote venue needs
    /// the intent flushed first.
    fn shares_store(&self) -> bool;
    /// Places an order; placing again under the same `client_oid` returns
    /// the existing order and no updates (idempotent, as Coinbase is).
    fn place(&mut self, req: &OrderRequest, bot: Option<BotId>, now: i64) -> Reply<OrderView>;
    /// Cancels an order; canceling a done order returns it unchanged.
    fn cancel(&mut self, target: Target, now: i64) -> Reply<OrderView>;
    /// Looks an order up.
    fn order(&self, target: Target) -> Result<Option<OrderView>, ExchangeError>;
    /// The fills of one order, oldest first.
    fn fills_of(&self, order: OrderId) -> Result<Vec<FillView>, ExchangeError>;
}
