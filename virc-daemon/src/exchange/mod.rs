//! Exchange connectors behind one interface, [`Exchange`]. Venue JSON types
//! never leave their connector: what comes out is virc-core's types and the
//! [`OrderView`] / [`FillView`] / [`Update`] below.
//!
//! - [`sim`]: the simulated exchange (paper trading on the configured market).
//! - [`coinbase`]: the Coinbase Exchange (REST, WebSocket feeds, and
//!   [`coinbase::venue::CoinbaseExchange`], the venue bots trade on).
//!
//! The runtime holds each configured connection as a [`Connector`], which
//! dispatches to the one [`Exchange`] interface both implement.

pub mod coinbase;
pub mod sim;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use virc_core::{
    ids::{BotId, ClientOid, OrderId},
    ledger::{FeeRates, Ledger},
    money::{Price, Size},
    order::{Order, OrderRequest, Rejection, Side},
    paper::Liquidity,
    product::Catalogue,
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
    #[serde(with = "virc_core::compact::decimal")]
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
/// order up by client id (the heart of reconciliation), its fills, and the
/// wallet with the bots' reservations. Updates the venue produces on its
/// own (fills from market data, cancels made elsewhere) come from the
/// venue's own feed: for the simulated exchange, the return values of
/// [`sim::SimExchange::on_trade`] and its siblings; for Coinbase,
/// [`coinbase::venue::CoinbaseExchange::refresh`] driven by the `user`
/// channel. The simulated exchange answers at once (its futures are ready);
/// Coinbase answers over the network.
pub trait Exchange: Send {
    /// The connection's configured name.
    fn name(&self) -> &str;
    /// Whether the venue keeps its record in the daemon's own store (the
    /// simulated exchange). Its writes then follow the bots' intents in one
    /// log, so no flush is needed before acting on it; a remote venue needs
    /// the intent flushed first.
    fn shares_store(&self) -> bool;
    /// The products it trades.
    fn catalogue(&self) -> &Catalogue;
    /// Fee rates charged.
    fn rates(&self) -> FeeRates;
    /// Balances, holds and per-bot reservations.
    fn wallet(&self) -> &Ledger;
    /// Sets `amount` of `currency` aside for `bot`.
    fn reserve(&mut self, bot: BotId, currency: &str, amount: Decimal)
    -> Result<(), ExchangeError>;
    /// Returns a bot's reservations to the free pool.
    fn release(&mut self, bot: BotId) -> Result<(), ExchangeError>;
    /// Places an order; placing again under the same `client_oid` never
    /// makes a second order (the simulated exchange returns the existing
    /// one, Coinbase's connector looks it up before any resend).
    fn place(
        &mut self,
        req: &OrderRequest,
        bot: Option<BotId>,
        now: i64,
    ) -> impl Future<Output = Reply<OrderView>> + Send;
    /// Cancels an order; canceling a done order returns it as it ended.
    fn cancel(&mut self, target: Target, now: i64)
    -> impl Future<Output = Reply<OrderView>> + Send;
    /// Looks an order up on the venue.
    fn order(
        &mut self,
        target: Target,
    ) -> impl Future<Output = Result<Option<OrderView>, ExchangeError>> + Send;
    /// The order as last known, without a round trip (for list views).
    fn cached_order(&self, target: Target) -> Option<OrderView>;
    /// The fills of one order, oldest first.
    fn fills_of(
        &mut self,
        order: OrderId,
    ) -> impl Future<Output = Result<Vec<FillView>, ExchangeError>> + Send;
}

/// One configured exchange connection, whichever kind.
#[derive(Debug)]
pub enum Connector {
    /// Paper trading.
    Sim(sim::SimExchange),
    /// The Coinbase Exchange (or anything speaking its API, like the emulator).
    Coinbase(coinbase::venue::CoinbaseExchange),
}

macro_rules! each {
    ($self:expr, $x:ident => $body:expr) => {
        match $self {
            Connector::Sim($x) => $body,
            Connector::Coinbase($x) => $body,
        }
    };
}

impl Exchange for Connector {
    fn name(&self) -> &str {
        each!(self, x => x.name())
    }

    fn shares_store(&self) -> bool {
        matches!(self, Self::Sim(_))
    }

    fn catalogue(&self) -> &Catalogue {
        each!(self, x => x.catalogue())
    }

    fn rates(&self) -> FeeRates {
        each!(self, x => x.rates())
    }

    fn wallet(&self) -> &Ledger {
        each!(self, x => x.wallet())
    }

    fn reserve(
        &mut self,
        bot: BotId,
        currency: &str,
        amount: Decimal,
    ) -> Result<(), ExchangeError> {
        each!(self, x => x.reserve(bot, currency, amount))
    }

    fn release(&mut self, bot: BotId) -> Result<(), ExchangeError> {
        each!(self, x => x.release(bot))
    }

    async fn place(
        &mut self,
        req: &OrderRequest,
        bot: Option<BotId>,
        now: i64,
    ) -> Reply<OrderView> {
        match self {
            Self::Sim(x) => Exchange::place(x, req, bot, now).await,
            Self::Coinbase(x) => Exchange::place(x, req, bot, now).await,
        }
    }

    async fn cancel(&mut self, target: Target, now: i64) -> Reply<OrderView> {
        match self {
            Self::Sim(x) => Exchange::cancel(x, target, now).await,
            Self::Coinbase(x) => Exchange::cancel(x, target, now).await,
        }
    }

    async fn order(&mut self, target: Target) -> Result<Option<OrderView>, ExchangeError> {
        match self {
            Self::Sim(x) => Exchange::order(x, target).await,
            Self::Coinbase(x) => Exchange::order(x, target).await,
        }
    }

    fn cached_order(&self, target: Target) -> Option<OrderView> {
        match self {
            Self::Sim(x) => Exchange::cached_order(x, target),
            Self::Coinbase(x) => Exchange::cached_order(x, target),
        }
    }

    async fn fills_of(&mut self, order: OrderId) -> Result<Vec<FillView>, ExchangeError> {
        match self {
            Self::Sim(x) => Exchange::fills_of(x, order).await,
            Self::Coinbase(x) => Exchange::fills_of(x, order).await,
        }
    }
}

impl Connector {
    /// "sim" or "live", for `virc exchanges`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sim(_) => "sim",
            Self::Coinbase(_) => "live",
        }
    }

    /// The simulated exchange behind this connection, if it is one.
    pub fn sim(&self) -> Option<&sim::SimExchange> {
        match self {
            Self::Sim(x) => Some(x),
            Self::Coinbase(_) => None,
        }
    }

    /// The simulated exchange behind this connection, if it is one, to change.
    pub fn sim_mut(&mut self) -> Option<&mut sim::SimExchange> {
        match self {
            Self::Sim(x) => Some(x),
            Self::Coinbase(_) => None,
        }
    }

    /// Orders of ours not yet done, as last known.
    pub fn live_orders(&self) -> Vec<OrderView> {
        match self {
            Self::Sim(x) => x.live_orders().cloned().collect(),
            Self::Coinbase(x) => x
                .open_orders()
                .into_iter()
                .filter_map(|id| x.cached(Target::Id(id)))
                .collect(),
        }
    }

    /// The Coinbase venue.
    pub fn coinbase_mut(&mut self) -> Option<&mut coinbase::venue::CoinbaseExchange> {
        match self {
            Self::Sim(_) => None,
            Self::Coinbase(x) => Some(x),
        }
    }

    /// Orders, newest first, that pass `keep`; at most `limit`.
    pub async fn orders(
        &mut self,
        mut keep: impl FnMut(&OrderView) -> bool,
        product: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderView>, ExchangeError> {
        match self {
            Self::Sim(x) => x.orders(keep, limit),
            Self::Coinbase(x) => {
                let mut all = x.orders(product, limit.saturating_mul(4).max(100)).await?;
                all.retain(|o| keep(o));
                all.truncate(limit);
                Ok(all)
            }
        }
    }

    /// Fills, newest first, that pass `keep`; at most `limit`. Coinbase
    /// lists fills per product only, so there `product` is needed.
    pub async fn fills(
        &mut self,
        mut keep: impl FnMut(&FillView) -> bool,
        product: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FillView>, ExchangeError> {
        match self {
            Self::Sim(x) => x.fills(keep, limit),
            Self::Coinbase(x) => {
                let Some(p) = product else {
                    return Err(ExchangeError::Rejected(Rejection::bad_request(
                        "Coinbase lists fills per product: give --product",
                    )));
                };
                let mut all = x.fills(p, limit.saturating_mul(4).max(100)).await?;
                all.retain(|f| keep(f));
                all.truncate(limit);
                Ok(all)
            }
        }
    }
}
