//! Bots as pure state machines: `step(&mut self, input, env) -> Vec<Command>`.
//!
//! A bot never talks to an exchange. The runtime feeds it inputs (started,
//! order accepted / refused / filled / done, stop, pause, resume), persists
//! the bot's new state, and only then performs the commands it returned.
//! Because every order intent carries a deterministic `client_oid` (bot id,
//! step, attempt) and is part of the persisted state before the order
//! leaves, a restarted runtime can ask the exchange about each intent
//! instead of guessing, and a bot can be replayed from its inputs exactly.
//!
//! # Statuses
//! `running → paused → running`, and once only one of `stopped` (by the
//! user), `ended` (a one-shot program finished) or `failed` (an order was
//! refused, or canceled outside virc). There is no "dead": a running bot is
//! running again after a restart.
//!
//! # Kinds
//! - [`range`]: buy low, sell high, loop (the seed's simple bot);
//! - [`grid`]: resting buys and sells on a ladder of levels;
//! - [`conditional`]: a program of rule conditions and orders;
//! - [`stop_loss`]: exits a position, or the position of a bot it guards.
//!
//! [`Machine`] is the one type the runtime stores and drives.

/// The accessors every kind shares, over its `params`, `status`, `reason` and `account` fields.
macro_rules! common_accessors {
    ($params:ty) => {
        /// The parameters.
        pub fn params(&self) -> &$params {
            &self.params
        }

        /// The status.
        pub fn status(&self) -> BotStatus {
            self.status
        }

        /// Why it is stopped, ended or failed.
        pub fn reason(&self) -> &str {
            &self.reason
        }

        /// The money figures.
        pub fn account(&self) -> &BotAccount {
            &self.account
        }
    };
}

pub mod conditional;
pub mod grid;
pub mod range;
pub mod stop_loss;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use self::{
    conditional::ConditionalBot, grid::GridBot, range::RangeBot, stop_loss::StopLossBot,
};
use crate::{
    ids::{BotId, ClientOid, OrderId},
    money::{Price, Size},
    order::{CancelReason, DoneReason, Side},
    rule::{Source, Values, Var},
};

/// What a bot sees besides its input: the time and its product's market.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// The caller's clock (ns).
    pub now: i64,
    /// The product's market, when the runtime has one.
    pub market: Option<&'a dyn Values>,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// `ticker.price`, the last trade price.
pub const LAST_PRICE: Var = Var {
    source: Source::Ticker,
    field: "price",
};

impl Env<'_> {
    /// No market: only the time.
    pub fn at(now: i64) -> Env<'static> {
        Env { now, market: None }
    }

    /// The last trade price, if there is a market with a trade.
    pub fn price(&self) -> Option<Price> {
        self.market
            .and_then(|m| m.value(&LAST_PRICE))
            .and_then(|p| Price::new(p).ok())
    }
}

/// A bot's lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BotStatus {
    /// Trading.
    Running,
    /// Takes no new step; resting orders stay on the book.
    Paused,
    /// Stopped by the user after its orders were canceled.
    Stopped,
    /// Finished its program.
    Ended,
    /// An order was refused or canceled outside virc; see the reason.
    Failed,
}

impl BotStatus {
    /// Whether the bot will never act again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Stopped | Self::Ended | Self::Failed)
    }

    /// The lowercase name used in events and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Ended => "ended",
            Self::Failed => "failed",
        }
    }
}

/// The type of order a bot asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    /// A resting limit order (GTC) at the intent's price.
    #[default]
    Limit,
    /// A market order by size; the intent's price is the reference it was decided at.
    Market,
    /// A stop-loss limit order: triggers when the price trades at or below
    /// `stop`, then rests at the intent's price.
    StopLoss {
        /// Trigger price.
        stop: Price,
    },
}

/// An order a bot wants, identified by its intent id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderIntent {
    /// Deterministic id from (bot, step, attempt).
    pub client_oid: ClientOid,
    /// Buy or sell.
    pub side: Side,
    /// Limit price (for a market order: the price it was decided at).
    pub price: Price,
    /// Base size.
    pub size: Size,
    /// Limit, market or stop.
    #[serde(default)]
    pub kind: OrderKind,
}

impl OrderIntent {
    /// A GTC limit order.
    pub fn limit(client_oid: ClientOid, side: Side, price: Price, size: Size) -> Self {
        Self {
            client_oid,
            side,
            price,
            size,
            kind: OrderKind::Limit,
        }
    }

    /// "buy 0.01 BTC @ 450.00 USD", "sell 0.5 BTC at market", "stop sell ...".
    pub fn words(&self, base: &str, quote: &str) -> String {
        let side = match self.side {
            Side::Buy => "buy",
            Side::Sell => "sell",
        };
        match self.kind {
            OrderKind::Limit => format!("{side} {} {base} @ {} {quote}", self.size, self.price),
            OrderKind::Market => format!("{side} {} {base} at market", self.size),
            OrderKind::StopLoss { stop } => format!(
                "{side} {} {base} @ {} {quote} when the price falls to {stop}",
                self.size, self.price
            ),
        }
    }
}

/// What the runtime must do for a bot, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Place this order (the intent is already in the persisted state).
    Place(OrderIntent),
    /// Cancel the order placed under this client id.
    Cancel(ClientOid),
    /// The bot reached a final status, or was paused or resumed.
    Status {
        /// The new status.
        status: BotStatus,
        /// Why, in the user's or the exchange's words.
        reason: String,
    },
    /// A step worth a line in the bot's history ("buy 0.01 BTC @ 450.00 USD filled").
    Note(String),
    /// A rule fired: the line for the history and the values that made it true.
    Fired {
        /// What fired, in words.
        text: String,
        /// Each variable the rule read and its value.
        values: Vec<(String, String)>,
    },
    /// Stop another bot (a stop-loss stopping the bot it guards).
    StopBot(BotId),
    /// Stop every other bot on the bot's product and exchange, and cancel
    /// the manual resting sells above the market (a stop-loss guarding the product).
    StopProduct,
}

/// Something that happened to a bot or one of its orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BotInput {
    /// The runtime starts (or restarts) the bot.
    Started,
    /// The exchange accepted the order placed under `client_oid`.
    Accepted {
        /// Intent id.
        client_oid: ClientOid,
        /// Exchange id.
        order_id: OrderId,
    },
    /// The exchange refused the order, with its exact text.
    Rejected {
        /// Intent id.
        client_oid: ClientOid,
        /// The exchange's message ("Insufficient funds").
        reason: String,
    },
    /// A (partial) fill of the order.
    Fill {
        /// Intent id.
        client_oid: ClientOid,
        /// Fill price.
        price: Price,
        /// Fill size.
        size: Size,
        /// Fee charged, in quote.
        fee: Decimal,
    },
    /// The order is done.
    Done {
        /// Intent id.
        client_oid: ClientOid,
        /// Filled, or canceled and why.
        reason: DoneReason,
    },
    /// The user asked the bot to stop.
    Stop,
    /// The user asked the bot to pause.
    Pause,
    /// The user asked the bot to resume.
    Resume,
    /// A trade on the bot's product; the market's values are in the [`Env`].
    Market {
        /// The trade price.
        price: Price,
    },
    /// The bot this one guards has stopped; what it held is now this bot's.
    GuardStopped {
        /// Base currency handed over.
        holdings: Decimal,
    },
}

/// A bot's money: what its orders cost and brought, net of fees.
///
/// A cycle runs from flat to flat: buys, then sells of what was bought. When
/// the sells reach the size bought, the cycle's profit `Σ sell value − Σ buy
/// value − Σ fees` is realized, so the total equals the fills minus fees to
/// the last decimal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotAccount {
    /// Fees paid over all fills.
    #[serde(with = "crate::compact::decimal")]
    pub fees_paid: Decimal,
    /// Realized profit over completed cycles, net of fees.
    #[serde(with = "crate::compact::decimal")]
    pub realized: Decimal,
    /// Completed cycles.
    pub cycles: u64,
    /// Quote value of the current cycle's buy fills.
    #[serde(with = "crate::compact::decimal")]
    pub cycle_bought: Decimal,
    /// Base size bought in the current cycle.
    #[serde(with = "crate::compact::decimal")]
    pub cycle_size: Decimal,
    /// Quote value of the current cycle's sell fills.
    #[serde(with = "crate::compact::decimal")]
    pub cycle_sold: Decimal,
    /// Base size sold in the current cycle.
    #[serde(with = "crate::compact::decimal")]
    pub cycle_sold_size: Decimal,
    /// Fees of the current cycle so far.
    #[serde(with = "crate::compact::decimal")]
    pub cycle_fees: Decimal,
    /// Profit of the last completed cycle.
    #[serde(default, with = "crate::compact::decimal")]
    pub last_cycle: Decimal,
}

impl BotAccount {
    /// Counts a done order's fills into the current cycle.
    pub fn add(&mut self, w: &Working) {
        match w.intent.side {
            Side::Buy => {
                self.cycle_bought += w.value;
                self.cycle_size += w.filled;
            }
            Side::Sell => {
                self.cycle_sold += w.value;
                self.cycle_sold_size += w.filled;
            }
        }
        self.cycle_fees += w.fees;
    }

    /// "cycle 3 complete: 0.0636 USD net of fees (total 0.1908 USD)", after `last` was realized.
    pub fn cycle_note(&self, quote: &str) -> String {
        format!(
            "cycle {} complete: {} {quote} net of fees (total {} {quote})",
            self.cycles,
            self.last_cycle.normalize(),
            self.realized.normalize()
        )
    }

    /// Realizes the cycle when its sells cover its buys; true when it did.
    /// Sells with no buy before them (selling holdings) end no cycle: their
    /// fees are paid, their proceeds are not a profit.
    pub fn close_if_flat(&mut self) -> bool {
        let flat = self.cycle_sold_size >= self.cycle_size;
        if !flat {
            return false;
        }
        let closed = self.cycle_size > Decimal::ZERO;
        if closed {
            self.last_cycle = self.cycle_sold - self.cycle_bought - self.cycle_fees;
            self.realized += self.last_cycle;
            self.cycles += 1;
        }
        self.cycle_bought = Decimal::ZERO;
        self.cycle_size = Decimal::ZERO;
        self.cycle_sold = Decimal::ZERO;
        self.cycle_sold_size = Decimal::ZERO;
        self.cycle_fees = Decimal::ZERO;
        closed
    }
}

/// The order a bot is waiting on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Working {
    /// What was asked for.
    pub intent: OrderIntent,
    /// The exchange id, once accepted.
    pub order_id: Option<OrderId>,
    /// Base filled so far.
    #[serde(with = "crate::compact::decimal")]
    pub filled: Decimal,
    /// Quote value filled so far.
    #[serde(with = "crate::compact::decimal")]
    pub value: Decimal,
    /// Fees so far.
    #[serde(with = "crate::compact::decimal")]
    pub fees: Decimal,
    /// We asked for its cancel (stop), so its cancel is expected.
    pub cancel_requested: bool,
}

impl Working {
    /// An order just decided on: not yet accepted, nothing filled.
    pub fn new(intent: OrderIntent) -> Self {
        Self {
            intent,
            order_id: None,
            filled: Decimal::ZERO,
            value: Decimal::ZERO,
            fees: Decimal::ZERO,
            cancel_requested: false,
        }
    }

    /// Counts a fill.
    pub fn fill(&mut self, price: Price, size: Size, fee: Decimal) {
        self.filled += size.get();
        self.value += price.get() * size.get();
        self.fees += fee;
    }
}

/// `(sell − buy) × size − fees` at `fee` on both orders, and that as a
/// percentage of the buy cost.
pub fn cycle_profit(
    buy: Decimal,
    sell: Decimal,
    size: Decimal,
    fee: Decimal,
) -> (Decimal, Decimal) {
    let cost = buy * size;
    let proceeds = sell * size;
    let profit = proceeds - cost - (cost + proceeds) * fee;
    let pct = if cost.is_zero() {
        Decimal::ZERO
    } else {
        (profit / cost * Decimal::ONE_HUNDRED).round_dp(4)
    };
    (profit, pct)
}

/// Pauses a running bot (`why` is the history's wording); false when it was not running.
pub fn pause(status: &mut BotStatus, why: &str, out: &mut Vec<Command>) -> bool {
    if *status != BotStatus::Running {
        return false;
    }
    *status = BotStatus::Paused;
    out.push(Command::Status {
        status: BotStatus::Paused,
        reason: why.into(),
    });
    true
}

/// Resumes a paused bot; false when it was not paused. The caller then
/// takes the step it had deferred.
pub fn resume(status: &mut BotStatus, out: &mut Vec<Command>) -> bool {
    if *status != BotStatus::Paused {
        return false;
    }
    *status = BotStatus::Running;
    out.push(Command::Status {
        status: BotStatus::Running,
        reason: "resumed by the user".into(),
    });
    true
}

/// Stop for a bot with at most one order: asks (once) for that order's
/// cancel; true when there is no order and the bot can stop at once.
pub fn cancel_to_stop(working: Option<&mut Working>, out: &mut Vec<Command>) -> bool {
    match working {
        Some(w) if !w.cancel_requested => {
            w.cancel_requested = true;
            out.push(Command::Cancel(w.intent.client_oid));
            false
        }
        Some(_) => false,
        None => true,
    }
}

/// A canceled order: its history line, and the status its bot takes with
/// the reason: stopped when the cancel was the bot's own (a stop), failed
/// when it came from elsewhere.
pub fn canceled(what: &str, w: &Working, why: CancelReason) -> (Command, BotStatus, String) {
    if w.cancel_requested {
        let note = format!("{what} canceled ({} filled)", w.filled.normalize());
        return (
            Command::Note(note),
            BotStatus::Stopped,
            "stopped by the user".into(),
        );
    }
    let text = outside_cancel_text(why);
    (
        Command::Note(format!("{what} canceled: {text}")),
        BotStatus::Failed,
        text.into(),
    )
}

/// Records an acceptance or a fill of `w`; returns the fee it charged.
pub fn record(w: &mut Working, input: &BotInput) -> Decimal {
    match *input {
        BotInput::Accepted { order_id, .. } => {
            w.order_id = Some(order_id);
            Decimal::ZERO
        }
        BotInput::Fill {
            price, size, fee, ..
        } => {
            w.fill(price, size, fee);
            fee
        }
        _ => Decimal::ZERO,
    }
}

/// Why a bot fails when one of its orders is canceled by someone else.
pub fn outside_cancel_text(why: CancelReason) -> &'static str {
    match why {
        CancelReason::User => "order canceled outside virc",
        CancelReason::TimeInForce => "order canceled by the exchange (time in force)",
        CancelReason::SelfTrade => "order canceled by self-trade prevention",
        CancelReason::InsufficientFunds => "order canceled: Insufficient funds",
    }
}

/// A bot of any kind, as the runtime stores and drives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Machine {
    /// A range bot.
    Range(RangeBot),
    /// A grid bot.
    Grid(GridBot),
    /// A conditional bot.
    Conditional(ConditionalBot),
    /// A stop-loss bot.
    StopLoss(StopLossBot),
}

macro_rules! each {
    ($self:expr, $b:ident => $e:expr) => {
        match $self {
            Machine::Range($b) => $e,
            Machine::Grid($b) => $e,
            Machine::Conditional($b) => $e,
            Machine::StopLoss($b) => $e,
        }
    };
}

impl Machine {
    /// Advances the bot by one input; see each kind's `step`.
    pub fn step(&mut self, input: BotInput, env: &Env<'_>) -> Vec<Command> {
        match self {
            Self::Range(b) => b.step(input, env.now),
            Self::Grid(b) => b.step(input, env),
            Self::Conditional(b) => b.step(input, env),
            Self::StopLoss(b) => b.step(input, env),
        }
    }

    /// The status.
    pub fn status(&self) -> BotStatus {
        each!(self, b => b.status())
    }

    /// Why it is stopped, ended or failed.
    pub fn reason(&self) -> &str {
        each!(self, b => b.reason())
    }

    /// "range", "grid", "conditional" or "stop-loss".
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Range(_) => "range",
            Self::Grid(_) => "grid",
            Self::Conditional(_) => "conditional",
            Self::StopLoss(_) => "stop-loss",
        }
    }

    /// The product it trades.
    pub fn product_id(&self) -> &str {
        each!(self, b => &b.params().product_id)
    }

    /// The product's quote currency, in which its figures are.
    pub fn quote(&self) -> &str {
        each!(self, b => &b.params().quote)
    }

    /// Every order it has decided on and not seen done.
    pub fn working(&self) -> Vec<&Working> {
        match self {
            Self::Range(b) => b.working().into_iter().collect(),
            Self::Grid(b) => b.working(),
            Self::Conditional(b) => b.working().into_iter().collect(),
            Self::StopLoss(b) => b.working().into_iter().collect(),
        }
    }

    /// The working order placed under `cid`.
    pub fn working_for(&self, cid: ClientOid) -> Option<&Working> {
        self.working()
            .into_iter()
            .find(|w| w.intent.client_oid == cid)
    }

    /// The money figures.
    pub fn account(&self) -> &BotAccount {
        each!(self, b => b.account())
    }

    /// The current step in words.
    pub fn describe_step(&self) -> String {
        each!(self, b => b.describe_step())
    }

    /// Expected profit of one cycle at maker fees, absolute and % of its
    /// cost: a range bot's buy/sell cycle, a grid's round trip between its
    /// two lowest levels; `None` for kinds whose cycle is not fixed.
    pub fn theoretical_cycle_profit(
        &self,
        rates: crate::ledger::FeeRates,
    ) -> Option<(Decimal, Decimal)> {
        match self {
            Self::Range(b) => Some(b.theoretical_cycle_profit(rates)),
            Self::Grid(b) => {
                let p = b.params();
                let (buy, sell) = (p.levels.first()?.get(), p.levels.get(1)?.get());
                Some(cycle_profit(buy, sell, p.size.get(), rates.maker))
            }
            Self::Conditional(_) | Self::StopLoss(_) => None,
        }
    }

    /// Whether [`Machine::wants_market`] can ever be true for it: a range
    /// bot follows only its own orders, so the runtime need not visit it
    /// for each trade.
    pub fn may_want_market(&self) -> bool {
        !matches!(self, Self::Range(_))
    }

    /// Whether it wants a [`BotInput::Market`] for every trade on its product.
    pub fn wants_market(&self) -> bool {
        match self {
            Self::Range(_) => false,
            Self::Grid(b) => b.wants_market(),
            Self::Conditional(_) | Self::StopLoss(_) => true,
        }
    }
}
