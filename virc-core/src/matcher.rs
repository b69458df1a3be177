//! A price-time-priority matching engine for one product, with the Coinbase
//! Exchange's semantics, where every participant's money is in a [`Ledger`].
//!
//! # What a reader can predict
//! - **Priority**: best price first, then arrival order (FIFO per level).
//! - **Price**: every trade prints at the resting (maker) order's price.
//! - **Order of checks** on `submit`: GTT orders whose expiry is at or before
//!   `now` are canceled first; then a stop is parked (`activate`, no hold, no
//!   sequence); otherwise the hold is taken (`Insufficient funds`), post-only
//!   is checked (`Post only mode` if any part would take; nothing is
//!   emitted), FOK is checked (self-trades count as matches), then
//!   `received`, the matches, and `open` or `done`.
//! - **FOK** is checked against the book before any match, counting the
//!   user's own orders as matches (as Coinbase documents); STP then applies
//!   as usual, so a FOK that meets its own order can end partly filled with
//!   the rest decremented or canceled (`102`). Without a self-trade it fills
//!   entirely or not at all (`101`).
//! - **Market orders** never rest: what the book cannot fill is canceled
//!   (`101`). A market buy by funds trades `funds / (1 + taker)` truncated to
//!   8 decimals, each fill's size floored to the base increment.
//! - **STP**: the taker's flag decides; no `match` is ever emitted between
//!   two orders of one user. `dc` cancels the smaller and decrements the
//!   larger (`change`, reason STP); equal sizes cancel both.
//! - **Stops** trigger on the last trade price (`loss` ≤, `entry` ≥) after
//!   the order that printed it is fully processed, in arrival order; they
//!   take their hold then (cancel reason `105` if it cannot be taken).
//! - **Fees**: maker rate for the resting order, taker rate for the
//!   incoming one, in quote, per fill.
//! - **Sequence**: every public event (`received`, `open`, `match`,
//!   `change`, `done`) takes the next per-product sequence number; the
//!   private `activate` takes none. Trade ids increase by one per match.
//!
//! # Invariants
//! The book is never crossed; an order never fills more than its size;
//! money moves only between ledgers and fees (Σ balances + Σ fees is
//! constant); the same inputs give the same events, byte for byte.

use std::collections::VecDeque;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    ids::{ClientOid, IdMap, OrderId, TradeId},
    ledger::{FeeRates, Ledger, market_buy_net_funds},
    money::{Funds, Price, Size},
    order::{
        CancelReason, DoneReason, Expiries, MarketAmount, NewOrder, ORDER_NOT_FOUND, OrderKind,
        POST_ONLY_MODE, Rejection, Side, StopKind, Stp, TimeInForce, too_accurate,
    },
    product::Product,
};

/// A participant of the simulated exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UserId(pub u32);

/// One event of the `full` / `user` channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEvent {
    /// Per-product sequence; `None` for private `activate`.
    pub sequence: Option<u64>,
    /// Engine time (ns since the epoch).
    pub time: i64,
    /// The order the event is about (the taker's, for a match).
    pub order_id: OrderId,
    /// Its owner.
    pub user: UserId,
    /// What happened.
    pub kind: FeedKind,
}

/// The event types of the `full` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeedKind {
    /// The engine accepted the order.
    Received {
        /// Side.
        side: Side,
        /// Kind and parameters.
        order: OrderKind,
        /// The owner's client id.
        client_oid: Option<ClientOid>,
    },
    /// The order rests on the book.
    Open {
        /// Side.
        side: Side,
        /// Price.
        price: Price,
        /// Size left.
        remaining_size: Size,
    },
    /// A trade between a resting and an incoming order.
    Match {
        /// Trade id.
        trade_id: TradeId,
        /// The resting order.
        maker_order_id: OrderId,
        /// The resting order's owner.
        maker_user: UserId,
        /// The incoming order.
        taker_order_id: OrderId,
        /// The maker's side, as Coinbase reports `side` on a match.
        side: Side,
        /// Trade price (the maker's).
        price: Price,
        /// Trade size.
        size: Size,
        /// Fee charged to the maker.
        maker_fee: Decimal,
        /// Fee charged to the taker.
        taker_fee: Decimal,
    },
    /// An order's size (or funds) was decremented by self-trade prevention.
    Change {
        /// Side.
        side: Side,
        /// Price, `None` for market orders.
        price: Option<Price>,
        /// Size before.
        old_size: Size,
        /// Size after.
        new_size: Size,
    },
    /// The order is done.
    Done {
        /// Side.
        side: Side,
        /// Price, `None` for market orders.
        price: Option<Price>,
        /// Size left unfilled; `None` for market orders.
        remaining_size: Option<Size>,
        /// Why.
        reason: DoneReason,
    },
    /// A stop order was accepted and waits for its trigger (private).
    Activate {
        /// Side.
        side: Side,
        /// Trigger direction.
        stop: StopKind,
        /// Trigger price.
        stop_price: Price,
        /// Limit price.
        price: Price,
        /// Size.
        size: Size,
    },
}

#[derive(Debug, Clone, Copy)]
struct Resting {
    user: UserId,
    side: Side,
    price: Price,
    /// `price` in quote increments: the key of its level.
    ticks: u64,
    remaining: Size,
    expire_at: Option<i64>,
}

#[derive(Debug, Clone)]
struct Parked {
    id: OrderId,
    user: UserId,
    order: NewOrder,
    stop: StopKind,
    stop_price: Price,
}

/// One price level. Cancels are lazy: a canceled id stays in the queue until
/// it reaches the front (or the queue is compacted), so a cancel costs
/// O(log levels) instead of a scan of the queue.
///
/// Invariant: the front id, if any, is a live resting order, and `live` is
/// the number of live orders in `queue`; a level with none is removed.
#[derive(Debug, Clone)]
struct Level {
    price: Price,
    queue: VecDeque<OrderId>,
    live: usize,
}

/// How many emptied level queues are kept for reuse (a bound, so a market
/// that once had many levels does not hold their memory forever).
const SPARE_QUEUES: usize = 64;

/// What an incoming order's fills add up to, settled once when it stops
/// matching.
#[derive(Debug)]
struct Taken {
    value: Decimal,
    size: Size,
}

impl Default for Taken {
    fn default() -> Self {
        Self {
            value: Decimal::ZERO,
            size: Size::ZERO,
        }
    }
}

/// What the incoming order still wants.
#[derive(Debug, Clone, Copy)]
enum Want {
    Size(Size),
    Funds(Funds),
}

/// One side's price levels, best last. Sweeps empty the touch and most new
/// levels open near it, so both happen at the end of the vectors; lookups
/// binary-search a dense vector of keys. (A `BTreeMap` spent a node walk on
/// each and a rebalance on every emptied level.)
///
/// Keys are ticks for bids and `!ticks` for asks, so that on both sides a
/// better price is a larger key.
///
/// The price of this layout: opening or emptying a level moves the levels
/// better than it (64 bytes each with its key). Near the touch, where
/// nearly all of a market's activity is, that is a handful; a new level
/// behind 20,000 others takes ~25 µs (`cargo bench -p virc-core --bench
/// matcher -- deep`), where a tree takes well under one. This engine's
/// books are the emulator's maker ladder and its clients' orders, tens to
/// hundreds of levels; the paper engine that fills bots against the real
/// market keeps its own book.
#[derive(Debug, Clone)]
struct Ladder {
    asks: bool,
    keys: Vec<u64>,
    levels: Vec<Level>,
}

impl Ladder {
    fn new(side: Side) -> Self {
        Self {
            asks: side == Side::Sell,
            keys: Vec::new(),
            levels: Vec::new(),
        }
    }

    fn key(&self, ticks: u64) -> u64 {
        if self.asks { !ticks } else { ticks }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    /// The best level and its ticks.
    fn best(&self) -> Option<(u64, &Level)> {
        let key = *self.keys.last()?;
        Some((self.key(key), self.levels.last()?))
    }

    /// Levels best first, with their ticks.
    fn best_first(&self) -> impl Iterator<Item = (u64, &Level)> {
        self.keys
            .iter()
            .rev()
            .zip(self.levels.iter().rev())
            .map(|(k, l)| (self.key(*k), l))
    }

    fn get(&self, ticks: u64) -> Option<&Level> {
        let at = self.keys.binary_search(&self.key(ticks)).ok()?;
        self.levels.get(at)
    }

    fn get_mut(&mut self, ticks: u64) -> Option<&mut Level> {
        let at = self.keys.binary_search(&self.key(ticks)).ok()?;
        self.levels.get_mut(at)
    }

    /// The level at `ticks`, opened with `open()` if there is none.
    fn level(&mut self, ticks: u64, open: impl FnOnce() -> Level) -> &mut Level {
        let key = self.key(ticks);
        let at = match self.keys.binary_search(&key) {
            Ok(at) => at,
            Err(at) => {
                self.keys.insert(at, key);
                self.levels.insert(at, open());
                at
            }
        };
        &mut self.levels[at]
    }

    fn remove(&mut self, ticks: u64) -> Option<Level> {
        let at = self.keys.binary_search(&self.key(ticks)).ok()?;
        self.keys.remove(at);
        Some(self.levels.remove(at))
    }
}

/// The users' ledgers, sorted by user: a scan or binary search of `u32`s
/// instead of a `BTreeMap`'s entry code, twice per order and once per
/// fill. Iterates in user order, as the map did.
#[derive(Debug, Clone, Default)]
struct Accounts(Vec<(UserId, Ledger)>);

impl Accounts {
    /// Where `user` is, or where it would go.
    fn find(&self, user: UserId) -> Result<usize, usize> {
        // A few users (a paper account, a backtest's participants): a scan
        // is cheaper than a search's branches.
        if self.0.len() <= 8 {
            return self
                .0
                .iter()
                .position(|(u, _)| *u == user)
                .ok_or_else(|| self.0.partition_point(|(u, _)| *u < user));
        }
        self.0.binary_search_by_key(&user, |(u, _)| *u)
    }

    fn get(&self, user: UserId) -> Option<&Ledger> {
        self.find(user).ok().map(|i| &self.0[i].1)
    }

    /// The user's ledger, created empty on first use.
    fn get_mut(&mut self, user: UserId) -> &mut Ledger {
        let i = match self.find(user) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (user, Ledger::default()));
                i
            }
        };
        &mut self.0[i].1
    }
}

/// The engine for one product.
#[derive(Debug, Clone)]
pub struct Matcher {
    product: Product,
    rates: FeeRates,
    /// Levels keyed by price in ticks (see [`Price::ticks`]).
    bids: Ladder,
    asks: Ladder,
    resting: IdMap<Resting>,
    /// GTT expiries, soonest first, so expiry costs O(expired), not O(resting).
    expiries: Expiries,
    stops: Vec<Parked>,
    /// Queues of emptied levels, reused by new ones: near the touch, levels
    /// empty and refill all the time, and each one allocated a queue.
    spare_queues: Vec<VecDeque<OrderId>>,
    ledgers: Accounts,
    sequence: u64,
    trade_id: u64,
    next_order: u128,
    /// High 64 bits of every order id, so engines of different products never collide.
    id_space: u64,
    last_price: Option<Price>,
    events: Vec<FeedEvent>,
    now: i64,
}

impl Matcher {
    /// An empty book for `product`, charging `rates`.
    pub fn new(product: Product, rates: FeeRates) -> Self {
        Self {
            product,
            rates,
            bids: Ladder::new(Side::Buy),
            asks: Ladder::new(Side::Sell),
            resting: IdMap::default(),
            expiries: Expiries::default(),
            stops: Vec::new(),
            spare_queues: Vec::new(),
            ledgers: Accounts::default(),
            sequence: 0,
            trade_id: 0,
            next_order: 0,
            id_space: 0,
            last_price: None,
            events: Vec::new(),
            now: i64::MIN,
        }
    }

    /// Issues order ids in `space` (see [`crate::ids::id_space`]).
    pub fn with_id_space(mut self, space: u64) -> Self {
        self.id_space = space;
        self
    }

    /// The product traded.
    pub fn product(&self) -> &Product {
        &self.product
    }

    /// A user's ledger, created empty on first use.
    pub fn ledger_mut(&mut self, user: UserId) -> &mut Ledger {
        self.ledgers.get_mut(user)
    }

    /// A user's ledger.
    pub fn ledger(&self, user: UserId) -> Option<&Ledger> {
        self.ledgers.get(user)
    }

    /// Every ledger, by user.
    pub fn ledgers(&self) -> impl Iterator<Item = (UserId, &Ledger)> {
        self.ledgers.0.iter().map(|(u, l)| (*u, l))
    }

    /// Best bid price.
    pub fn best_bid(&self) -> Option<Price> {
        self.bids.best().map(|(_, l)| l.price)
    }

    /// Best ask price.
    pub fn best_ask(&self) -> Option<Price> {
        self.asks.best().map(|(_, l)| l.price)
    }

    /// Aggregated levels, best first: (price, total size).
    pub fn depth(&self, side: Side, levels: usize) -> Vec<(Price, Size)> {
        let sum = |level: &Level| (level.price, self.total(level));
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
        .best_first()
        .take(levels)
        .map(|(_, l)| sum(l))
        .collect()
    }

    /// Total resting size at one price on one side (zero when the level is empty),
    /// for a level-2 feed that reports absolute sizes per changed level.
    pub fn level_size(&self, side: Side, price: Price) -> Size {
        let book = match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        };
        price
            .ticks(self.product.quote_increment)
            .and_then(|t| book.get(t))
            .map_or(Size::ZERO, |level| self.total(level))
    }

    /// The resting size of a level.
    fn total(&self, level: &Level) -> Size {
        let total = level
            .queue
            .iter()
            .filter_map(|id| self.resting.get(id))
            .map(|r| r.remaining.get())
            .sum();
        Size::new(total).unwrap_or(Size::ZERO)
    }

    /// A limit price in ticks; off the increment is the exchange's refusal
    /// (a validated order never is).
    fn ticks(&self, price: Price) -> Result<u64, Rejection> {
        price
            .ticks(self.product.quote_increment)
            .ok_or_else(|| too_accurate("price", self.product.quote_increment))
    }

    /// The last sequence number issued.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The engine's time: the latest `now` it was given.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// Number of resting orders.
    pub fn resting_count(&self) -> usize {
        self.resting.len()
    }

    /// Number of price levels on both sides.
    pub fn level_count(&self) -> usize {
        self.bids.len() + self.asks.len()
    }

    /// Last trade price.
    pub fn last_price(&self) -> Option<Price> {
        self.last_price
    }

    /// Submits an order at `now`. On acceptance returns its id and the
    /// events it caused (in sequence order); on refusal the exchange's text
    /// and no events.
    pub fn submit(
        &mut self,
        user: UserId,
        order: NewOrder,
        now: i64,
    ) -> Result<(OrderId, Vec<FeedEvent>), Rejection> {
        let mut events = Vec::new();
        let id = self.submit_into(user, order, now, &mut events)?;
        Ok((id, events))
    }

    /// As [`Matcher::submit`], appending the events to `out` so a caller on a
    /// hot path can reuse one buffer. Expiries that precede a refused order
    /// are still appended.
    pub fn submit_into(
        &mut self,
        user: UserId,
        order: NewOrder,
        now: i64,
        out: &mut Vec<FeedEvent>,
    ) -> Result<OrderId, Rejection> {
        self.emitting_into(out, |m| m.submit_inner(user, order, now))
    }

    /// Runs `f` with `out` as the event buffer, so events are written once,
    /// where the caller wants them, instead of queued and copied.
    fn emitting_into<T>(&mut self, out: &mut Vec<FeedEvent>, f: impl FnOnce(&mut Self) -> T) -> T {
        std::mem::swap(&mut self.events, out);
        let result = f(self);
        std::mem::swap(&mut self.events, out);
        result
    }

    fn submit_inner(
        &mut self,
        user: UserId,
        order: NewOrder,
        now: i64,
    ) -> Result<OrderId, Rejection> {
        self.expire(now);
        let id = self.new_id();
        if let OrderKind::Limit {
            price,
            size,
            stop: Some((stop, stop_price)),
            ..
        } = order.kind
        {
            self.ticks(price)?;
            self.stops.push(Parked {
                id,
                user,
                order,
                stop,
                stop_price,
            });
            self.emit(
                false,
                id,
                user,
                FeedKind::Activate {
                    side: order.side,
                    stop,
                    stop_price,
                    price,
                    size,
                },
            );
            Ok(id)
        } else {
            self.enter(id, user, order).map(|()| {
                self.run_stops();
                id
            })
        }
    }

    /// Cancels an order of `user`. An unknown or already done order is
    /// `order not found`, as Coinbase answers.
    pub fn cancel(
        &mut self,
        user: UserId,
        id: OrderId,
        now: i64,
    ) -> Result<Vec<FeedEvent>, Rejection> {
        let mut events = Vec::new();
        self.cancel_into(user, id, now, &mut events)?;
        Ok(events)
    }

    /// As [`Matcher::cancel`], appending the events to `out`.
    pub fn cancel_into(
        &mut self,
        user: UserId,
        id: OrderId,
        now: i64,
        out: &mut Vec<FeedEvent>,
    ) -> Result<(), Rejection> {
        self.emitting_into(out, |m| m.cancel_inner(user, id, now))
    }

    fn cancel_inner(&mut self, user: UserId, id: OrderId, now: i64) -> Result<(), Rejection> {
        self.expire(now);
        if let Some(pos) = self.stops.iter().position(|s| s.id == id && s.user == user) {
            let parked = self.stops.remove(pos);
            let OrderKind::Limit { price, size, .. } = parked.order.kind else {
                unreachable!("stops are limit orders")
            };
            self.emit(
                true,
                id,
                user,
                FeedKind::Done {
                    side: parked.order.side,
                    price: Some(price),
                    remaining_size: Some(size),
                    reason: DoneReason::Canceled(CancelReason::User),
                },
            );
            return Ok(());
        }
        match self.resting.get(&id) {
            Some(r) if r.user == user => {}
            _ => {
                return Err(Rejection::not_found(ORDER_NOT_FOUND));
            }
        }
        self.remove_resting(id, DoneReason::Canceled(CancelReason::User));
        Ok(())
    }

    /// Moves time to `now`: GTT orders whose expiry is at or before `now`
    /// are canceled (`101`), before anything that arrives at `now`.
    pub fn advance(&mut self, now: i64) -> Vec<FeedEvent> {
        self.expire(now);
        std::mem::take(&mut self.events)
    }

    /// Cancels expired GTT orders, leaving their events queued.
    fn expire(&mut self, now: i64) {
        self.now = self.now.max(now);
        while let Some(id) = self.expiries.pop_due(self.now) {
            self.remove_resting(id, DoneReason::Canceled(CancelReason::TimeInForce));
        }
    }

    fn new_id(&mut self) -> OrderId {
        self.next_order += 1;
        OrderId(Uuid::from_u128(
            (u128::from(self.id_space) << 64) | (self.next_order & u128::from(u64::MAX)),
        ))
    }

    fn emit(&mut self, public: bool, order_id: OrderId, user: UserId, kind: FeedKind) {
        let sequence = public.then(|| {
            self.sequence += 1;
            self.sequence
        });
        self.events.push(FeedEvent {
            sequence,
            time: self.now,
            order_id,
            user,
            kind,
        });
    }

    /// Whether a taker on `side` limited to `limit` ticks trades at `level` ticks.
    fn crosses(side: Side, limit: Option<u64>, level: u64) -> bool {
        match (side, limit) {
            (_, None) => true,
            (Side::Buy, Some(p)) => level <= p,
            (Side::Sell, Some(p)) => level >= p,
        }
    }

    /// The best level a taker on `side` meets: its ticks and the level.
    fn best_opposite(&self, side: Side) -> Option<(u64, &Level)> {
        match side {
            Side::Buy => self.asks.best(),
            Side::Sell => self.bids.best(),
        }
    }

    /// Base size that `funds` buys at `price`, floored to the base increment.
    fn size_for_funds(&self, funds: Funds, price: Price) -> Size {
        let raw = funds.get() / price.get();
        Size::new(raw).map_or(Size::ZERO, |s| {
            Size::new(s.floor_to(self.product.base_increment)).unwrap_or(Size::ZERO)
        })
    }

    /// How much of `want` the opposite side could fill now, counting own orders as matches (FOK).
    fn fillable(&self, side: Side, limit: Option<u64>, want: Want) -> bool {
        let mut left = want;
        let levels = match side {
            Side::Buy => self.asks.best_first(),
            Side::Sell => self.bids.best_first(),
        };
        for (ticks, level) in levels {
            let (queue, price) = (&level.queue, level.price);
            if !Self::crosses(side, limit, ticks) {
                break;
            }
            for r in queue.iter().filter_map(|id| self.resting.get(id)) {
                left = match left {
                    Want::Size(s) => match s.checked_sub(r.remaining) {
                        Ok(rest) if !rest.is_zero() => Want::Size(rest),
                        _ => return true,
                    },
                    Want::Funds(f) => {
                        match f.checked_sub(price.checked_mul(r.remaining).unwrap_or(Funds::ZERO)) {
                            Ok(rest) if !rest.is_zero() => Want::Funds(rest),
                            _ => return true,
                        }
                    }
                };
            }
        }
        false
    }

    /// Takes the hold, checks post-only and FOK, then matches and rests.
    fn enter(&mut self, id: OrderId, user: UserId, order: NewOrder) -> Result<(), Rejection> {
        let side = order.side;
        let (limit, tif, post_only) = match order.kind {
            OrderKind::Limit {
                price,
                tif,
                post_only,
                ..
            } => (Some(price), Some(tif), post_only || self.product.post_only),
            OrderKind::Market(_) => (None, None, false),
        };
        let limit_ticks = limit.map(|p| self.ticks(p)).transpose()?;
        let ledger = self.ledgers.get_mut(user);
        let (currency, amount) = ledger.hold_needed(&self.product, &order, self.rates, None);
        ledger.place_hold(id, currency, amount, None)?;
        if post_only
            && self
                .best_opposite(side)
                .is_some_and(|(best, _)| Self::crosses(side, limit_ticks, best))
        {
            let _ = self.ledger_mut(user).release_hold(id);
            return Err(Rejection::bad_request(POST_ONLY_MODE));
        }
        let mut want = match order.kind {
            OrderKind::Limit { size, .. } | OrderKind::Market(MarketAmount::Size(size)) => {
                Want::Size(size)
            }
            OrderKind::Market(MarketAmount::Funds(funds)) if side == Side::Buy => {
                Want::Funds(market_buy_net_funds(funds, self.rates.taker))
            }
            OrderKind::Market(MarketAmount::Funds(funds)) => Want::Funds(funds),
        };
        self.emit(
            true,
            id,
            user,
            FeedKind::Received {
                side,
                order: order.kind,
                client_oid: order.client_oid,
            },
        );
        if tif == Some(TimeInForce::Fok) && !self.fillable(side, limit_ticks, want) {
            self.finish_taker(
                id,
                user,
                side,
                limit,
                want,
                DoneReason::Canceled(CancelReason::TimeInForce),
            );
            return Ok(());
        }
        let mut canceled = None;
        let mut taken = Taken::default();
        while let Some((level, maker_id)) = self
            .best_opposite(side)
            .filter(|(best, _)| Self::crosses(side, limit_ticks, *best))
            .and_then(|(_, l)| Some((l.price, *l.queue.front()?)))
        {
            let Some(maker) = self.resting.get(&maker_id).copied() else {
                break;
            };
            let want_size = match want {
                Want::Size(s) => s,
                Want::Funds(f) => self.size_for_funds(f, level),
            };
            if want_size.is_zero() {
                break;
            }
            if maker.user == user {
                match self.self_trade(
                    id, user, side, limit, order.stp, maker_id, &maker, want, want_size,
                ) {
                    Some(next) => {
                        want = next;
                        continue;
                    }
                    None => {
                        canceled = Some(DoneReason::Canceled(CancelReason::SelfTrade));
                        break;
                    }
                }
            }
            let size = want_size.min(maker.remaining);
            let value = self.trade(id, user, maker_id, &maker, level, size);
            taken.value += value;
            taken.size = taken.size.checked_add(size).unwrap_or(taken.size);
            want = match want {
                Want::Size(s) => Want::Size(s.checked_sub(size).unwrap_or(Size::ZERO)),
                Want::Funds(f) => Want::Funds(
                    f.checked_sub(Funds::new(value).unwrap_or(Funds::ZERO))
                        .unwrap_or(Funds::ZERO),
                ),
            };
        }
        // The taker's fills settle together: nothing reads its ledger
        // during the sweep, sums of exact decimals are the same money, and
        // it cost one hold and three balance updates per fill. Before the
        // hold is released or kept below.
        if !taken.size.is_zero() {
            // Σ(valueᵢ × rate) is (Σ valueᵢ) × rate, exactly: one product
            // instead of a sum per fill.
            let fee = taken.value * self.rates.taker;
            self.ledgers.get_mut(user).settle(
                id,
                &self.product,
                side,
                taken.value,
                taken.size,
                fee,
                None,
            );
        }
        if let Some(reason) = canceled {
            self.finish_taker(id, user, side, limit, want, reason);
            return Ok(());
        }
        let left = match want {
            Want::Size(s) => s,
            Want::Funds(f) => match self.best_opposite(side) {
                Some((_, l)) => self.size_for_funds(f, l.price),
                None => Size::new(f.get()).unwrap_or(Size::ZERO),
            },
        };
        let done_filled = left.is_zero() || matches!(want, Want::Funds(f) if f.is_zero());
        match (limit, tif) {
            _ if done_filled => self.finish_taker(
                id,
                user,
                side,
                limit,
                Want::Size(Size::ZERO),
                DoneReason::Filled,
            ),
            (Some(price), Some(TimeInForce::Gtc | TimeInForce::Gtt(_))) => {
                let expire_at = match tif {
                    Some(TimeInForce::Gtt(after)) => Some(self.now.saturating_add(after.nanos())),
                    _ => None,
                };
                if let Some(at) = expire_at {
                    self.expiries.add(at, id);
                }
                let book = match side {
                    Side::Buy => &mut self.bids,
                    Side::Sell => &mut self.asks,
                };
                let spare = &mut self.spare_queues;
                let ticks = limit_ticks.unwrap_or_default();
                let level = book.level(ticks, || Level {
                    price,
                    queue: spare.pop().unwrap_or_default(),
                    live: 0,
                });
                level.queue.push_back(id);
                level.live += 1;
                self.resting.insert(
                    id,
                    Resting {
                        user,
                        side,
                        price,
                        ticks,
                        remaining: left,
                        expire_at,
                    },
                );
                self.emit(
                    true,
                    id,
                    user,
                    FeedKind::Open {
                        side,
                        price,
                        remaining_size: left,
                    },
                );
            }
            _ => self.finish_taker(
                id,
                user,
                side,
                limit,
                want,
                DoneReason::Canceled(CancelReason::TimeInForce),
            ),
        }
        Ok(())
    }

    /// Applies the taker's STP flag against its own resting order. Returns
    /// what the taker still wants, or `None` when the taker is canceled.
    #[expect(
        clippy::too_many_arguments,
        reason = "the two orders' facts at the moment of the self-trade"
    )]
    fn self_trade(
        &mut self,
        id: OrderId,
        user: UserId,
        side: Side,
        limit: Option<Price>,
        stp: Stp,
        maker_id: OrderId,
        maker: &Resting,
        want: Want,
        want_size: Size,
    ) -> Option<Want> {
        let self_trade = DoneReason::Canceled(CancelReason::SelfTrade);
        match stp {
            Stp::Co => {
                self.remove_resting(maker_id, self_trade);
                Some(want)
            }
            Stp::Cn => None,
            Stp::Cb => {
                self.remove_resting(maker_id, self_trade);
                None
            }
            Stp::Dc => {
                match want_size.cmp(&maker.remaining) {
                    std::cmp::Ordering::Equal => {
                        self.remove_resting(maker_id, self_trade);
                        None
                    }
                    std::cmp::Ordering::Less => {
                        // The taker is smaller: it is canceled, the maker decremented.
                        let new_size = maker.remaining.checked_sub(want_size).unwrap_or(Size::ZERO);
                        if let Some(r) = self.resting.get_mut(&maker_id) {
                            r.remaining = new_size;
                        }
                        self.emit(
                            true,
                            maker_id,
                            user,
                            FeedKind::Change {
                                side: maker.side,
                                price: Some(maker.price),
                                old_size: maker.remaining,
                                new_size,
                            },
                        );
                        None
                    }
                    std::cmp::Ordering::Greater => {
                        // The maker is smaller: it is canceled, the taker decremented.
                        self.remove_resting(maker_id, self_trade);
                        let next = match want {
                            Want::Size(s) => {
                                Want::Size(s.checked_sub(maker.remaining).unwrap_or(Size::ZERO))
                            }
                            Want::Funds(f) => Want::Funds(
                                f.checked_sub(
                                    maker
                                        .price
                                        .checked_mul(maker.remaining)
                                        .unwrap_or(Funds::ZERO),
                                )
                                .unwrap_or(Funds::ZERO),
                            ),
                        };
                        if let (Want::Size(old), Want::Size(new)) = (want, next) {
                            self.emit(
                                true,
                                id,
                                user,
                                FeedKind::Change {
                                    side,
                                    price: limit,
                                    old_size: old,
                                    new_size: new,
                                },
                            );
                        }
                        Some(next)
                    }
                }
            }
        }
    }

    /// Prints one trade, settles the maker's side and takes the maker off
    /// the book when filled; returns the trade's value for the taker's
    /// settlement (see [`Taken`]).
    fn trade(
        &mut self,
        taker_id: OrderId,
        taker: UserId,
        maker_id: OrderId,
        maker: &Resting,
        price: Price,
        size: Size,
    ) -> Decimal {
        self.trade_id += 1;
        // As fill_fee computes it, (price × size) × rate, with the product once.
        let value = price.get() * size.get();
        let maker_fee = value * self.rates.maker;
        let taker_fee = value * self.rates.taker;
        let product = &self.product;
        self.ledgers
            .get_mut(maker.user)
            .settle(maker_id, product, maker.side, value, size, maker_fee, None);
        self.last_price = Some(price);
        self.emit(
            true,
            taker_id,
            taker,
            FeedKind::Match {
                trade_id: TradeId(self.trade_id),
                maker_order_id: maker_id,
                maker_user: maker.user,
                taker_order_id: taker_id,
                side: maker.side,
                price,
                size,
                maker_fee,
                taker_fee,
            },
        );
        let remaining = maker.remaining.checked_sub(size).unwrap_or(Size::ZERO);
        if remaining.is_zero() {
            self.remove_resting(maker_id, DoneReason::Filled);
        } else if let Some(r) = self.resting.get_mut(&maker_id) {
            r.remaining = remaining;
        }
        value
    }

    fn finish_taker(
        &mut self,
        id: OrderId,
        user: UserId,
        side: Side,
        limit: Option<Price>,
        want: Want,
        reason: DoneReason,
    ) {
        let _ = self.ledger_mut(user).release_hold(id);
        let remaining_size = limit.map(|_| match want {
            Want::Size(s) => s,
            Want::Funds(_) => Size::ZERO,
        });
        self.emit(
            true,
            id,
            user,
            FeedKind::Done {
                side,
                price: limit,
                remaining_size,
                reason,
            },
        );
    }

    /// Takes a resting order off the book (the level goes too when empty, so
    /// a drifting market leaves no dead levels behind) and emits its `done`.
    fn remove_resting(&mut self, id: OrderId, reason: DoneReason) {
        let Some(r) = self.resting.remove(&id) else {
            return;
        };
        if let Some(at) = r.expire_at {
            self.expiries.remove(at, id);
        }
        let book = match r.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        if let Some(level) = book.get_mut(r.ticks) {
            level.live = level.live.saturating_sub(1);
            if level.live == 0 {
                if let Some(mut emptied) = book.remove(r.ticks)
                    && self.spare_queues.len() < SPARE_QUEUES
                    && emptied.queue.capacity() <= 256
                {
                    emptied.queue.clear();
                    self.spare_queues.push(emptied.queue);
                }
            } else {
                while level
                    .queue
                    .front()
                    .is_some_and(|front| !self.resting.contains_key(front))
                {
                    level.queue.pop_front();
                }
                if level.queue.len() > 2 * level.live + 8 {
                    level.queue.retain(|o| self.resting.contains_key(o));
                }
            }
        }
        let _ = self.ledger_mut(r.user).release_hold(id);
        let remaining = if reason == DoneReason::Filled {
            Size::ZERO
        } else {
            r.remaining
        };
        self.emit(
            true,
            id,
            r.user,
            FeedKind::Done {
                side: r.side,
                price: Some(r.price),
                remaining_size: Some(remaining),
                reason,
            },
        );
    }

    /// Triggers parked stops on the last trade price, in arrival order,
    /// until none triggers (a triggered stop's trades may trigger more).
    fn run_stops(&mut self) {
        while let Some(last) = self.last_price {
            let Some(pos) = self
                .stops
                .iter()
                .position(|s| s.stop.triggers(last, s.stop_price))
            else {
                break;
            };
            let parked = self.stops.remove(pos);
            let mut order = parked.order;
            if let OrderKind::Limit { ref mut stop, .. } = order.kind {
                *stop = None;
            }
            if self.enter(parked.id, parked.user, order).is_err() {
                let OrderKind::Limit { price, size, .. } = order.kind else {
                    continue;
                };
                self.emit(
                    true,
                    parked.id,
                    parked.user,
                    FeedKind::Done {
                        side: order.side,
                        price: Some(price),
                        remaining_size: Some(size),
                        reason: DoneReason::Canceled(CancelReason::InsufficientFunds),
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::order::{OrderRequest, validate_for};
    use crate::testkit::{btc_usd, request as req};

    pub(super) const RATES: FeeRates = FeeRates {
        maker: dec!(0.004),
        taker: dec!(0.006),
    };

    const A: UserId = UserId(1);
    const B: UserId = UserId(2);

    fn engine() -> Matcher {
        let mut m = Matcher::new(btc_usd(), RATES);
        for u in [A, B] {
            m.ledger_mut(u).deposit("USD", dec!(1000000)).unwrap();
            m.ledger_mut(u).deposit("BTC", dec!(100)).unwrap();
        }
        m
    }

    #[expect(
        clippy::needless_pass_by_value,
        reason = "reads better at call sites built with struct update syntax"
    )]
    fn order(r: OrderRequest) -> NewOrder {
        validate_for(&btc_usd(), &r).unwrap()
    }

    fn limit(side: &str, price: &str, size: &str) -> NewOrder {
        order(req(side, price, size))
    }

    fn kinds(events: &[FeedEvent]) -> Vec<&'static str> {
        events
            .iter()
            .map(|e| match &e.kind {
                FeedKind::Received { .. } => "received",
                FeedKind::Open { .. } => "open",
                FeedKind::Match { .. } => "match",
                FeedKind::Change { .. } => "change",
                FeedKind::Done {
                    reason: DoneReason::Filled,
                    ..
                } => "done:filled",
                FeedKind::Done {
                    reason: DoneReason::Canceled(CancelReason::TimeInForce),
                    ..
                } => "done:101",
                FeedKind::Done {
                    reason: DoneReason::Canceled(CancelReason::SelfTrade),
                    ..
                } => "done:102",
                FeedKind::Done {
                    reason: DoneReason::Canceled(CancelReason::InsufficientFunds),
                    ..
                } => "done:105",
                FeedKind::Done { .. } => "done:canceled",
                FeedKind::Activate { .. } => "activate",
            })
            .collect()
    }

    #[test]
    fn a_price_off_the_increment_is_refused_without_a_trace() {
        let mut m = engine();
        m.submit(A, limit("buy", "100.00", "1"), 1).unwrap();
        let mut off = limit("buy", "100.00", "1");
        let mut stop = order(OrderRequest {
            stop: Some("loss".into()),
            stop_price: Some("90.00".into()),
            ..req("sell", "89.00", "1")
        });
        for o in [&mut off, &mut stop] {
            if let OrderKind::Limit { price, .. } = &mut o.kind {
                *price = Price::new(dec!(100.005)).unwrap();
            }
        }
        let before = (m.sequence(), m.ledger(A).unwrap().clone());
        for o in [off, stop] {
            let refused = m.submit(A, o, 2).unwrap_err();
            assert_eq!(
                refused.message,
                "price is too accurate. Smallest unit is 0.01000000"
            );
        }
        assert_eq!((m.sequence(), m.ledger(A).unwrap().clone()), before);
        assert_eq!(
            m.depth(Side::Buy, 5),
            [(
                Price::new(dec!(100.00)).unwrap(),
                Size::new(dec!(1)).unwrap()
            )]
        );
        // The same price written at another scale is the same level.
        m.submit(A, limit("buy", "100.0000", "2"), 3).unwrap();
        assert_eq!(m.level_count(), 1);
        assert_eq!(
            m.level_size(Side::Buy, Price::new(dec!(100)).unwrap())
                .get(),
            dec!(3)
        );
    }

    #[test]
    fn each_fill_charges_the_maker_and_taker_rates_to_each_side() {
        use crate::ledger::fill_fee;
        let mut m = engine();
        m.submit(A, limit("sell", "100.01", "0.333"), 1).unwrap();
        m.submit(A, limit("sell", "100.02", "1"), 2).unwrap();
        let (_, ev) = m.submit(B, limit("buy", "100.02", "0.5"), 3).unwrap();
        let (mut maker_total, mut taker_total) = (Decimal::ZERO, Decimal::ZERO);
        for e in &ev {
            if let FeedKind::Match {
                price,
                size,
                maker_fee,
                taker_fee,
                ..
            } = &e.kind
            {
                assert_eq!(*maker_fee, fill_fee(*price, *size, RATES.maker));
                assert_eq!(*taker_fee, fill_fee(*price, *size, RATES.taker));
                maker_total += maker_fee;
                taker_total += taker_fee;
            }
        }
        // 0.333 @ 100.01 and 0.167 @ 100.02: 50.00667 of value.
        assert_eq!(maker_total, dec!(50.00667) * dec!(0.004));
        assert_eq!(m.ledger(A).unwrap().fees_paid("USD"), maker_total);
        assert_eq!(m.ledger(B).unwrap().fees_paid("USD"), taker_total);
        assert_eq!(taker_total, dec!(50.00667) * dec!(0.006));
    }

    #[test]
    fn trades_print_at_the_makers_price_in_time_priority() {
        let mut m = engine();
        let (first, _) = m.submit(A, limit("buy", "100.00", "1"), 1).unwrap();
        let (_second, _) = m.submit(A, limit("buy", "100.00", "1"), 2).unwrap();
        let (taker, ev) = m.submit(B, limit("sell", "80.00", "1.5"), 3).unwrap();
        assert_eq!(
            kinds(&ev),
            ["received", "match", "done:filled", "match", "done:filled"]
        );
        let FeedKind::Match {
            maker_order_id,
            price,
            size,
            side,
            ..
        } = &ev[1].kind
        else {
            panic!()
        };
        assert_eq!(
            (*maker_order_id, price.get(), size.get(), *side),
            (first, dec!(100.00), dec!(1), Side::Buy)
        );
        assert_eq!(ev[2].order_id, first);
        assert_eq!(ev[4].order_id, taker);
        assert_eq!(
            m.depth(Side::Buy, 5),
            vec![(Price::parse("100.00").unwrap(), Size::parse("0.5").unwrap())]
        );
        let seqs: Vec<_> = ev.iter().map(|e| e.sequence.unwrap()).collect();
        assert_eq!(
            seqs,
            [5, 6, 7, 8, 9],
            "one sequence per public event, continuing"
        );
    }

    #[test]
    fn fees_and_balances_settle_per_fill() {
        let mut m = engine();
        m.submit(A, limit("sell", "20000.00", "0.01"), 1).unwrap();
        m.submit(B, limit("buy", "20000.00", "0.01"), 2).unwrap();
        // A was maker (0.4 %), B taker (0.6 %) on 200 USD.
        assert_eq!(
            m.ledger(A).unwrap().balance("USD").balance,
            dec!(1000000) + dec!(200) - dec!(0.8)
        );
        assert_eq!(
            m.ledger(B).unwrap().balance("USD").balance,
            dec!(1000000) - dec!(200) - dec!(1.2)
        );
        assert_eq!(m.ledger(B).unwrap().balance("BTC").balance, dec!(100.01));
        assert_eq!(m.ledger(B).unwrap().balance("USD").hold, dec!(0));
    }

    #[test]
    fn post_only_that_would_take_is_rejected_with_nothing_emitted() {
        let mut m = engine();
        m.submit(A, limit("sell", "100.00", "1"), 1).unwrap();
        let po = order(OrderRequest {
            post_only: Some(true),
            ..req("buy", "100.00", "1")
        });
        let err = m.submit(B, po, 2).unwrap_err();
        assert_eq!(err.message, "Post only mode");
        assert_eq!(m.ledger(B).unwrap().balance("USD").hold, dec!(0));
        let po = order(OrderRequest {
            post_only: Some(true),
            ..req("buy", "99.99", "1")
        });
        let (_, ev) = m.submit(B, po, 3).unwrap();
        assert_eq!(kinds(&ev), ["received", "open"]);
    }

    #[test]
    fn insufficient_funds_is_refused_before_acceptance() {
        let mut m = engine();
        let err = m.submit(A, limit("buy", "20000.00", "100"), 1).unwrap_err();
        assert_eq!(err.message, "Insufficient funds");
        assert_eq!(m.resting_count(), 0);
    }

    #[test]
    fn ioc_and_fok_follow_their_rules() {
        let mut m = engine();
        m.submit(A, limit("sell", "100.00", "1"), 1).unwrap();
        let ioc = order(OrderRequest {
            time_in_force: Some("IOC".into()),
            ..req("buy", "100.00", "3")
        });
        let (_, ev) = m.submit(B, ioc, 2).unwrap();
        assert_eq!(kinds(&ev), ["received", "match", "done:filled", "done:101"]);
        m.submit(A, limit("sell", "100.00", "1"), 3).unwrap();
        let fok = order(OrderRequest {
            time_in_force: Some("FOK".into()),
            ..req("buy", "100.00", "2")
        });
        let (_, ev) = m.submit(B, fok, 4).unwrap();
        assert_eq!(kinds(&ev), ["received", "done:101"], "nothing executes");
        let fok = order(OrderRequest {
            time_in_force: Some("FOK".into()),
            ..req("buy", "100.00", "1")
        });
        let (_, ev) = m.submit(B, fok, 5).unwrap();
        assert_eq!(
            kinds(&ev),
            ["received", "match", "done:filled", "done:filled"]
        );
    }

    #[test]
    fn gtt_expires_before_a_later_order() {
        let mut m = engine();
        let gtt = order(OrderRequest {
            time_in_force: Some("GTT".into()),
            cancel_after: Some("min".into()),
            ..req("sell", "100.00", "1")
        });
        let (gid, _) = m.submit(A, gtt, 0).unwrap();
        let (_, ev) = m
            .submit(B, limit("buy", "100.00", "1"), 60_000_000_000)
            .unwrap();
        assert_eq!(kinds(&ev), ["done:101", "received", "open"]);
        assert_eq!(ev[0].order_id, gid);
    }

    #[test]
    fn stp_decided_by_the_takers_flag() {
        let stp = |flag: &str, maker: &str, taker: &str| {
            let mut m = engine();
            m.submit(A, limit("sell", "100.00", maker), 1).unwrap();
            let t = order(OrderRequest {
                stp: Some(flag.into()),
                ..req("buy", "100.00", taker)
            });
            let (_, ev) = m.submit(A, t, 2).unwrap();
            (kinds(&ev), m.resting_count())
        };
        assert_eq!(
            stp("dc", "1", "1"),
            (vec!["received", "done:102", "done:102"], 0)
        );
        assert_eq!(
            stp("dc", "2", "1"),
            (vec!["received", "change", "done:102"], 1)
        );
        assert_eq!(
            stp("dc", "1", "2"),
            (vec!["received", "done:102", "change", "open"], 1)
        );
        assert_eq!(
            stp("co", "1", "1"),
            (vec!["received", "done:102", "open"], 1)
        );
        assert_eq!(stp("cn", "1", "1"), (vec!["received", "done:102"], 1));
        assert_eq!(
            stp("cb", "1", "1"),
            (vec!["received", "done:102", "done:102"], 0)
        );
    }

    #[test]
    fn stops_park_then_trigger_on_last_trade_and_take_their_hold_then() {
        let mut m = engine();
        let stop = order(OrderRequest {
            stop: Some("loss".into()),
            stop_price: Some("95.00".into()),
            ..req("sell", "94.00", "1")
        });
        let (sid, ev) = m.submit(A, stop, 1).unwrap();
        assert_eq!(kinds(&ev), ["activate"]);
        assert_eq!(ev[0].sequence, None);
        assert_eq!(
            m.ledger(A).unwrap().balance("BTC").hold,
            dec!(0),
            "no hold before the trigger"
        );
        m.submit(B, limit("buy", "94.00", "1"), 2).unwrap();
        m.submit(B, limit("sell", "96.00", "0.1"), 3).unwrap();
        let (_, ev) = m.submit(A, limit("buy", "96.00", "0.1"), 4).unwrap();
        assert!(
            !ev.iter().any(|e| e.order_id == sid),
            "96 does not trigger a loss stop at 95"
        );
        m.submit(B, limit("sell", "95.00", "0.1"), 5).unwrap();
        let (_, ev) = m.submit(A, limit("buy", "95.00", "0.1"), 6).unwrap();
        let triggered: Vec<_> = ev
            .iter()
            .filter(|e| e.order_id == sid)
            .map(|e| kinds(std::slice::from_ref(e))[0])
            .collect();
        assert_eq!(triggered, ["received", "match", "done:filled"]);
    }

    #[test]
    fn market_buy_with_funds_reserves_the_fee_as_documented() {
        let mut m = Matcher::new(
            btc_usd(),
            FeeRates {
                maker: dec!(0),
                taker: dec!(0.005),
            },
        );
        m.ledger_mut(A).deposit("BTC", dec!(10)).unwrap();
        m.ledger_mut(B).deposit("USD", dec!(100)).unwrap();
        m.submit(A, limit("sell", "1.00", "10"), 1).unwrap();
        let mkt = order(OrderRequest {
            order_type: Some("market".into()),
            price: None,
            size: None,
            funds: Some("10.00".into()),
            ..req("buy", "1", "1")
        });
        let (_, ev) = m.submit(B, mkt, 2).unwrap();
        let FeedKind::Match {
            size, taker_fee, ..
        } = &ev[1].kind
        else {
            panic!("{ev:?}")
        };
        // 10 / 1.005 = 9.95024875 funds -> 9.95024875 BTC at 1.00, fee 0.5 %.
        assert_eq!(size.get(), dec!(9.95024875));
        assert_eq!(*taker_fee, dec!(9.95024875) * dec!(0.005));
        assert_eq!(kinds(&ev).last(), Some(&"done:filled"));
        assert_eq!(m.ledger(B).unwrap().balance("USD").hold, dec!(0));
    }

    #[test]
    fn empty_levels_are_freed_so_a_drifting_market_stays_bounded() {
        let mut m = engine();
        for i in 0..1000u32 {
            let p = format!("{}.00", 1000 + i);
            m.submit(A, limit("sell", &p, "0.01"), i64::from(i))
                .unwrap();
            m.submit(B, limit("buy", &p, "0.01"), i64::from(i)).unwrap();
        }
        assert_eq!((m.resting_count(), m.level_count()), (0, 0));
    }
}

#[cfg(test)]
mod ladder_tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use rust_decimal::Decimal;

    use super::{Ladder, Level, Side};
    use crate::money::Price;

    fn level(ticks: u64) -> Level {
        Level {
            price: Price::new(Decimal::from(ticks)).unwrap_or_else(|_| unreachable!()),
            queue: std::collections::VecDeque::new(),
            live: 0,
        }
    }

    proptest! {
        /// A ladder holds the same levels as an ordered map, best first:
        /// highest bid, lowest ask.
        #[test]
        fn a_ladder_is_an_ordered_map_best_first(
            ops in proptest::collection::vec((any::<bool>(), 1u64..60, any::<bool>()), 0..200)
        ) {
            for side in [Side::Buy, Side::Sell] {
                let mut ladder = Ladder::new(side);
                let mut model: BTreeMap<u64, usize> = BTreeMap::new();
                for (i, &(insert, ticks, touch)) in ops.iter().enumerate() {
                    if insert {
                        ladder.level(ticks, || level(ticks)).live += usize::from(touch);
                        *model.entry(ticks).or_default() += usize::from(touch);
                    } else {
                        prop_assert_eq!(ladder.remove(ticks).map(|l| l.live), model.remove(&ticks), "op {}", i);
                    }
                    prop_assert_eq!(ladder.get(ticks).map(|l| l.live), model.get(&ticks).copied());
                }
                let got: Vec<(u64, usize)> = ladder.best_first().map(|(t, l)| (t, l.live)).collect();
                let want: Vec<(u64, usize)> = match side {
                    Side::Buy => model.iter().rev().map(|(t, n)| (*t, *n)).collect(),
                    Side::Sell => model.iter().map(|(t, n)| (*t, *n)).collect(),
                };
                prop_assert_eq!(&got, &want);
                prop_assert_eq!(ladder.best().map(|(t, _)| t), want.first().map(|(t, _)| *t));
                prop_assert_eq!(ladder.len(), model.len());
            }
        }
    }
}

#[cfg(test)]
mod property_tests {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use rust_decimal::Decimal;

    use super::{tests::RATES, *};
    use crate::order::{OrderRequest, validate_for};
    use crate::testkit::btc_usd;

    #[derive(Debug, Clone)]
    enum Op {
        Limit {
            user: u32,
            buy: bool,
            ticks: u32,
            lots: u32,
            tif: u8,
            post_only: bool,
            stp: u8,
        },
        Market {
            user: u32,
            buy: bool,
            lots: u32,
        },
        Cancel {
            user: u32,
            nth: usize,
        },
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u32..3, any::<bool>(), 90u32..110, 1u32..50, 0u8..4, any::<bool>(), 0u8..4)
                .prop_map(|(user, buy, ticks, lots, tif, post_only, stp)| Op::Limit { user, buy, ticks, lots, tif, post_only, stp }),
            1 => (0u32..3, any::<bool>(), 1u32..80).prop_map(|(user, buy, lots)| Op::Market { user, buy, lots }),
            2 => (0u32..3, 0usize..20).prop_map(|(user, nth)| Op::Cancel { user, nth }),
        ]
    }

    fn request(op: &Op) -> Option<OrderRequest> {
        let tifs = ["GTC", "IOC", "FOK", "GTC"];
        let stps = ["dc", "co", "cn", "cb"];
        Some(match op {
            Op::Limit {
                buy,
                ticks,
                lots,
                tif,
                post_only,
                stp,
                ..
            } => OrderRequest {
                product_id: "BTC-USD".into(),
                side: Some(if *buy { "buy" } else { "sell" }.into()),
                price: Some(format!("{ticks}.00")),
                size: Some(format!("0.{lots:02}")),
                time_in_force: Some(tifs[*tif as usize].into()),
                post_only: Some(*post_only && *tif != 1 && *tif != 2),
                stp: Some(stps[*stp as usize].into()),
                ..OrderRequest::default()
            },
            Op::Market { buy, lots, .. } => OrderRequest {
                product_id: "BTC-USD".into(),
                order_type: Some("market".into()),
                side: Some(if *buy { "buy" } else { "sell" }.into()),
                size: Some(format!("0.{lots:02}")),
                ..OrderRequest::default()
            },
            Op::Cancel { .. } => return None,
        })
    }

    fn run(ops: &[Op]) -> (Matcher, Vec<FeedEvent>, Vec<(OrderId, Decimal, bool)>) {
        let product = btc_usd();
        let mut m = Matcher::new(product.clone(), RATES);
        for u in 0..3 {
            m.ledger_mut(UserId(u))
                .deposit("USD", Decimal::from(5000))
                .unwrap();
            m.ledger_mut(UserId(u))
                .deposit("BTC", Decimal::from(20))
                .unwrap();
        }
        let mut all = Vec::new();
        let mut placed: Vec<(UserId, OrderId, Decimal, bool)> = Vec::new();
        for (t, op) in ops.iter().enumerate() {
            let now = i64::try_from(t).unwrap();
            if let Op::Cancel { user, nth } = op {
                let mine: Vec<_> = placed.iter().filter(|p| p.0 == UserId(*user)).collect();
                if let Some(ev) = mine.get(*nth).and_then(|p| m.cancel(p.0, p.1, now).ok()) {
                    all.extend(ev);
                }
                continue;
            }
            let user = match op {
                Op::Limit { user, .. } | Op::Market { user, .. } | Op::Cancel { user, .. } => {
                    UserId(*user)
                }
            };
            let Some(req) = request(op) else { continue };
            let Ok(order) = validate_for(&product, &req) else {
                continue;
            };
            let size = match order.kind {
                OrderKind::Limit { size, .. } | OrderKind::Market(MarketAmount::Size(size)) => {
                    size.get()
                }
                OrderKind::Market(MarketAmount::Funds(_)) => Decimal::MAX,
            };
            let fok = matches!(
                order.kind,
                OrderKind::Limit {
                    tif: TimeInForce::Fok,
                    ..
                }
            );
            if let Ok((id, ev)) = m.submit(user, order, now) {
                placed.push((user, id, size, fok));
                all.extend(ev);
            }
        }
        let sizes = placed.iter().map(|p| (p.1, p.2, p.3)).collect();
        (m, all, sizes)
    }

    fn totals(m: &Matcher) -> (Decimal, Decimal) {
        let mut usd = Decimal::ZERO;
        let mut btc = Decimal::ZERO;
        for (_, l) in m.ledgers() {
            usd += l.balance("USD").balance + l.fees_paid("USD");
            btc += l.balance("BTC").balance;
        }
        (usd, btc)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn prop_book_is_never_crossed(ops in proptest::collection::vec(arb_op(), 0..200)) {
            let (m, _, _) = run(&ops);
            if let (Some(bid), Some(ask)) = (m.best_bid(), m.best_ask()) {
                prop_assert!(bid < ask, "crossed: {bid} >= {ask}");
            }
        }

        #[test]
        fn prop_money_is_neither_created_nor_destroyed(ops in proptest::collection::vec(arb_op(), 0..200)) {
            let (m, _, _) = run(&ops);
            prop_assert_eq!(totals(&m), (Decimal::from(15000), Decimal::from(60)));
            for (_, l) in m.ledgers() {
                for (_, b) in l.balances() {
                    prop_assert!(b.hold >= Decimal::ZERO && b.hold <= b.balance);
                }
            }
        }

        #[test]
        fn prop_no_order_fills_more_than_its_size_and_fok_is_all_or_nothing(ops in proptest::collection::vec(arb_op(), 0..200)) {
            let (_, events, sizes) = run(&ops);
            let mut filled: HashMap<OrderId, Decimal> = HashMap::new();
            let mut self_matches = 0;
            for e in &events {
                if let FeedKind::Match { maker_order_id, taker_order_id, size, maker_user, .. } = &e.kind {
                    *filled.entry(*maker_order_id).or_default() += size.get();
                    *filled.entry(*taker_order_id).or_default() += size.get();
                    if *maker_user == e.user { self_matches += 1; }
                }
            }
            prop_assert_eq!(self_matches, 0, "no match between two orders of one user");
            for (id, size, fok) in &sizes {
                let got = filled.get(id).copied().unwrap_or_default();
                prop_assert!(got <= *size);
                if *fok && !got.is_zero() && got != *size {
                    // FOK counts self-trades as matches (Coinbase's rule), so only STP while
                    // it was being processed may leave it partly filled.
                    let start = events.iter().position(|e| e.order_id == *id && matches!(e.kind, FeedKind::Received { .. }));
                    let end = events.iter().position(|e| e.order_id == *id && matches!(e.kind, FeedKind::Done { .. }));
                    let stp = start.zip(end).is_some_and(|(a, b)| {
                        events[a..=b].iter().any(|e| {
                            matches!(
                                e.kind,
                                FeedKind::Change { .. } | FeedKind::Done { reason: DoneReason::Canceled(CancelReason::SelfTrade), .. }
                            )
                        })
                    });
                    prop_assert!(stp, "FOK {id} filled {got} of {size} without self-trade prevention");
                }
            }
            let mut done_once: HashMap<OrderId, usize> = HashMap::new();
            for e in &events {
                if matches!(e.kind, FeedKind::Done { .. }) { *done_once.entry(e.order_id).or_default() += 1; }
            }
            prop_assert!(done_once.values().all(|n| *n == 1), "exactly one done per order");
            let seqs: Vec<u64> = events.iter().filter_map(|e| e.sequence).collect();
            prop_assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "gap-free sequence");
        }

        #[test]
        fn prop_same_input_gives_byte_identical_output(ops in proptest::collection::vec(arb_op(), 0..100)) {
            let (_, a, _) = run(&ops);
            let (_, b, _) = run(&ops);
            prop_assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        }
    }

    #[test]
    fn fok_never_partially_fills() {
        // Deterministic check beside the property: a FOK larger than the book executes nothing.
        let ops = vec![
            Op::Limit {
                user: 0,
                buy: false,
                ticks: 100,
                lots: 10,
                tif: 0,
                post_only: false,
                stp: 0,
            },
            Op::Limit {
                user: 1,
                buy: true,
                ticks: 100,
                lots: 20,
                tif: 2,
                post_only: false,
                stp: 0,
            },
        ];
        let (_, events, _) = run(&ops);
        assert!(
            !events
                .iter()
                .any(|e| matches!(e.kind, FeedKind::Match { .. }))
        );
    }
}
