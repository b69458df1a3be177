//! The paper fill model: the user's orders against a real market that we
//! only observe (public trades and level-2 updates), with the holds, fees,
//! increments and order rules of the exchange.
//!
//! # The model, so a reader can predict any fill
//! - **Joining the queue.** A limit order that rests joins the back of its
//!   price level: `queue_ahead` = the displayed L2 size at that price and
//!   side at that moment.
//! - **The queue shrinks** with trades at our price (each trade eats
//!   `queue_ahead` first) and with L2 decreases at our level
//!   (`queue_ahead = min(queue_ahead, new level size)`): a decrease is
//!   assumed to come from ahead of us, since cancels behind us cannot be told
//!   apart. Increases join behind us and change nothing.
//! - **Passive fills.** A public trade whose maker side is our side fills us
//!   as maker, at our price:
//!   - at our price, with what is left of the trade after `queue_ahead`;
//!   - through our price (a buy printed below our bid, a sell above our ask),
//!     with the trade's size: the real level at our price was consumed.
//!
//!   One trade never fills more than its own size across all our orders,
//!   which take it in price-time priority. Partial fills follow from this.
//! - **Aggressive orders.** A marketable order on arrival walks the current
//!   L2 book as taker, level by level, at each level's price (slippage
//!   included), up to its limit; liquidity we took is not offered again
//!   until the level's next L2 update. The rest rests (GTC/GTT) or is
//!   canceled (IOC, market), and FOK is checked against displayed depth first.
//! - **Trades-only markets.** Until the feed has shown depth on the
//!   opposite side (a recording of trades only, like the bundled demo), a
//!   marketable order takes at the last trade price, as deep as it needs.
//! - **Post-only** that would cross the displayed book: `Post only mode`.
//! - **Stops** trigger on the last public trade price, then enter as above.
//! - **GTT** expiry is applied before anything at or after the expiry time.
//! - Our orders never move the real market: the next L2 update is the truth.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    book::L2Book,
    ids::{BotId, ClientOid, OrderId},
    ledger::{FeeRates, Ledger, fill_fee, market_buy_net_funds},
    money::{Price, Size},
    order::{
        CancelReason, DoneReason, Expiries, MarketAmount, NewOrder, ORDER_NOT_FOUND, OrderKind,
        POST_ONLY_MODE, Rejection, Side, StopKind, TimeInForce,
    },
    product::Product,
};

/// Whether a fill added or took liquidity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Liquidity {
    /// Our resting order was hit.
    Maker,
    /// Our order took displayed liquidity.
    Taker,
}

/// What happened to one of the user's paper orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaperEvent {
    /// Accepted.
    Received {
        /// Order.
        order_id: OrderId,
        /// Side.
        side: Side,
        /// Kind and parameters.
        order: OrderKind,
        /// Client id.
        client_oid: Option<ClientOid>,
    },
    /// A stop is parked until its trigger.
    Activate {
        /// Order.
        order_id: OrderId,
    },
    /// Resting.
    Open {
        /// Order.
        order_id: OrderId,
        /// Price.
        price: Price,
        /// Size left.
        remaining: Size,
        /// Displayed size ahead of it when it joined.
        queue_ahead: Size,
    },
    /// Filled (partly).
    Fill {
        /// Order.
        order_id: OrderId,
        /// Price.
        price: Price,
        /// Size.
        size: Size,
        /// Fee in quote.
        fee: Decimal,
        /// Maker or taker.
        liquidity: Liquidity,
    },
    /// Finished.
    Done {
        /// Order.
        order_id: OrderId,
        /// Why.
        reason: DoneReason,
        /// Size left unfilled.
        remaining: Size,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Resting {
    side: Side,
    price: Price,
    remaining: Size,
    #[serde(with = "crate::compact::decimal")]
    queue_ahead: Decimal,
    expire_at: Option<i64>,
}

/// A stop order parked until its trigger; `owner` is the bot whose
/// reservation pays for it when it triggers.
type ParkedStop = (OrderId, NewOrder, StopKind, Price, Option<BotId>);

/// The persistent header of a paper engine: id counters, clock, last
/// price and parked stops. With the [`RestingRecord`] of each resting order
/// and the ledger, it restores the engine ([`PaperExchange::restore`]); the
/// observed book is not persisted (the next snapshot or L2 update is the
/// truth). Kept apart from the orders so that a change to one order
/// rewrites that order's record, not every order's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineHeader {
    stops: Vec<ParkedStop>,
    next_order: u128,
    id_space: u64,
    last_price: Option<Price>,
    now: i64,
}

/// One resting paper order, as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestingRecord(Resting);

/// The user's orders, ledger and view of one product's market.
#[derive(Debug, Clone)]
pub struct PaperExchange {
    product: Product,
    rates: FeeRates,
    ledger: Ledger,
    book: L2Book,
    consumed: HashMap<(Side, Price), Decimal>,
    resting: BTreeMap<OrderId, Resting>,
    /// The resting orders by side, price and id, so a trade or a book
    /// change visits only the orders at or through its price, not all of
    /// them (1,000 bots' orders made every trade a sort of 1,000).
    by_price: [BTreeSet<(Price, OrderId)>; 2],
    /// GTT expiries, soonest first, so expiry costs O(expired), not O(resting).
    expiries: Expiries,
    stops: Vec<ParkedStop>,
    next_order: u128,
    id_space: u64,
    last_price: Option<Price>,
    now: i64,
    events: Vec<PaperEvent>,
}

impl PaperExchange {
    /// A paper exchange for `product` with the user's `ledger` (the paper wallet).
    pub fn new(product: Product, rates: FeeRates, ledger: Ledger) -> Self {
        Self {
            product,
            rates,
            ledger,
            book: L2Book::default(),
            consumed: HashMap::new(),
            resting: BTreeMap::new(),
            by_price: [BTreeSet::new(), BTreeSet::new()],
            expiries: Expiries::default(),
            stops: Vec::new(),
            next_order: 0,
            id_space: 0,
            last_price: None,
            now: i64::MIN,
            events: Vec::new(),
        }
    }

    /// The header to persist (see [`EngineHeader`]).
    pub fn header(&self) -> EngineHeader {
        EngineHeader {
            stops: self.stops.clone(),
            next_order: self.next_order,
            id_space: self.id_space,
            last_price: self.last_price,
            now: self.now,
        }
    }

    /// The record of a resting order, or `None` once it no longer rests.
    pub fn resting_record(&self, id: OrderId) -> Option<RestingRecord> {
        self.resting.get(&id).cloned().map(RestingRecord)
    }

    /// An engine as persisted: its header, its resting orders and the
    /// ledger, with an empty book.
    pub fn restore(
        product: Product,
        rates: FeeRates,
        header: EngineHeader,
        resting: impl IntoIterator<Item = (OrderId, RestingRecord)>,
        ledger: Ledger,
    ) -> Self {
        let mut x = Self::new(product, rates, ledger).with_id_space(header.id_space);
        x.stops = header.stops;
        x.next_order = header.next_order;
        x.last_price = header.last_price;
        x.now = header.now;
        for (id, RestingRecord(r)) in resting {
            if let Some(at) = r.expire_at {
                x.expiries.add(at, id);
            }
            x.rest(id, r);
        }
        x
    }

    /// Issues order ids in their own space (the upper 64 bits), so that
    /// several products' engines behind one exchange never issue the same id.
    pub fn with_id_space(mut self, space: u64) -> Self {
        self.id_space = space;
        self
    }

    /// The user's ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The user's ledger, to change. An account shared by several
    /// products' engines is lent to each in turn (`std::mem::swap` in and
    /// out), since a paper engine only ever touches its own product's two
    /// currencies.
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// The product this engine trades.
    pub fn product(&self) -> &Product {
        &self.product
    }

    /// The fee rates applied to fills.
    pub fn rates(&self) -> FeeRates {
        self.rates
    }

    /// The engine's clock: the latest time it was given.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// The last public trade price seen.
    pub fn last_price(&self) -> Option<Price> {
        self.last_price
    }

    /// The observed book.
    pub fn book(&self) -> &L2Book {
        &self.book
    }

    /// Number of the user's resting orders.
    pub fn resting_count(&self) -> usize {
        self.resting.len()
    }

    /// Replaces the book with a snapshot.
    pub fn on_snapshot(&mut self, book: L2Book, now: i64) -> Vec<PaperEvent> {
        self.expire(now);
        self.book = book;
        self.consumed.clear();
        for r in self.resting.values_mut() {
            r.queue_ahead = r.queue_ahead.min(self.book.size_at(r.side, r.price).get());
        }
        std::mem::take(&mut self.events)
    }

    /// Applies one L2 change (new total size at a level).
    pub fn on_l2(&mut self, side: Side, price: Price, size: Size, now: i64) -> Vec<PaperEvent> {
        self.expire(now);
        self.book.apply(side, price, size);
        self.consumed.remove(&(side, price));
        let at_level = self.by_price[side_index(side)]
            .range((price, OrderId(Uuid::nil()))..=(price, OrderId(Uuid::max())));
        for (_, id) in at_level {
            if let Some(r) = self.resting.get_mut(id) {
                r.queue_ahead = r.queue_ahead.min(size.get());
            }
        }
        std::mem::take(&mut self.events)
    }

    /// Applies one public trade; `maker_side` is Coinbase's `side` of a match.
    pub fn on_trade(
        &mut self,
        price: Price,
        size: Size,
        maker_side: Side,
        now: i64,
    ) -> Vec<PaperEvent> {
        self.expire(now);
        self.last_price = Some(price);
        let mut left = size.get();
        // Only our makers at or through the trade's price can fill: buys at
        // or above it, sells at or below it.
        let book = &self.by_price[side_index(maker_side)];
        let reach: Vec<&(Price, OrderId)> = match maker_side {
            Side::Buy => book.range((price, OrderId(Uuid::nil()))..).collect(),
            Side::Sell => book.range(..=(price, OrderId(Uuid::max()))).collect(),
        };
        let mut ids: Vec<(OrderId, Price)> = reach.into_iter().map(|(p, id)| (*id, *p)).collect();
        // Price-time priority among our own orders: best price first, then arrival (id order).
        match maker_side {
            Side::Buy => ids.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0))),
            Side::Sell => ids.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0))),
        }
        for (id, our_price) in ids {
            if left <= Decimal::ZERO {
                break;
            }
            let through = match maker_side {
                Side::Buy => price < our_price,
                Side::Sell => price > our_price,
            };
            let Some(r) = self.resting.get_mut(&id) else {
                continue;
            };
            let available = if through {
                left
            } else if price == our_price {
                let eaten = r.queue_ahead.min(left);
                r.queue_ahead -= eaten;
                left -= eaten;
                left
            } else {
                continue;
            };
            let fill = available.min(r.remaining.get());
            if fill > Decimal::ZERO {
                left -= fill;
                let fill = Size::new(fill).unwrap_or(Size::ZERO);
                self.fill(id, maker_side, our_price, fill, Liquidity::Maker);
            }
        }
        self.run_stops();
        std::mem::take(&mut self.events)
    }

    /// Places a paper order at `now`, paid from funds no bot has reserved.
    pub fn submit(
        &mut self,
        order: NewOrder,
        now: i64,
    ) -> Result<(OrderId, Vec<PaperEvent>), Rejection> {
        self.submit_for(order, None, now)
    }

    /// Places a paper order at `now`, paid from `owner`'s reservation (or,
    /// without one, from funds no bot has reserved).
    pub fn submit_for(
        &mut self,
        order: NewOrder,
        owner: Option<BotId>,
        now: i64,
    ) -> Result<(OrderId, Vec<PaperEvent>), Rejection> {
        self.expire(now);
        self.next_order += 1;
        let id = OrderId(Uuid::from_u128(
            (u128::from(self.id_space) << 64) | (self.next_order & u128::from(u64::MAX)),
        ));
        if let OrderKind::Limit {
            stop: Some((kind, stop_price)),
            ..
        } = order.kind
        {
            self.stops.push((id, order, kind, stop_price, owner));
            self.events.push(PaperEvent::Activate { order_id: id });
            return Ok((id, std::mem::take(&mut self.events)));
        }
        self.enter(id, order, owner)?;
        self.run_stops();
        Ok((id, std::mem::take(&mut self.events)))
    }

    /// Cancels a paper order.
    pub fn cancel(&mut self, id: OrderId, now: i64) -> Result<Vec<PaperEvent>, Rejection> {
        self.expire(now);
        if let Some(pos) = self.stops.iter().position(|s| s.0 == id) {
            let (_, order, _, _, _) = self.stops.remove(pos);
            let remaining = match order.kind {
                OrderKind::Limit { size, .. } => size,
                OrderKind::Market(_) => Size::ZERO,
            };
            self.events.push(PaperEvent::Done {
                order_id: id,
                reason: DoneReason::Canceled(CancelReason::User),
                remaining,
            });
            return Ok(std::mem::take(&mut self.events));
        }
        if !self.resting.contains_key(&id) {
            return Err(Rejection::not_found(ORDER_NOT_FOUND));
        }
        self.finish_resting(id, DoneReason::Canceled(CancelReason::User));
        Ok(std::mem::take(&mut self.events))
    }

    /// Moves time forward, expiring GTT orders.
    pub fn advance(&mut self, now: i64) -> Vec<PaperEvent> {
        self.expire(now);
        std::mem::take(&mut self.events)
    }

    fn expire(&mut self, now: i64) {
        self.now = self.now.max(now);
        while let Some(id) = self.expiries.pop_due(self.now) {
            self.finish_resting(id, DoneReason::Canceled(CancelReason::TimeInForce));
        }
    }

    fn fill(&mut self, id: OrderId, side: Side, price: Price, size: Size, liquidity: Liquidity) {
        let rate = match liquidity {
            Liquidity::Maker => self.rates.maker,
            Liquidity::Taker => self.rates.taker,
        };
        let fee = fill_fee(price, size, rate);
        let owner = self.ledger.hold(id).and_then(|h| h.bot);
        self.ledger
            .settle_fill(id, &self.product, side, price, size, fee, owner);
        self.events.push(PaperEvent::Fill {
            order_id: id,
            price,
            size,
            fee,
            liquidity,
        });
        if let Some(r) = self.resting.get_mut(&id) {
            r.remaining = r.remaining.checked_sub(size).unwrap_or(Size::ZERO);
            if r.remaining.is_zero() {
                self.finish_resting(id, DoneReason::Filled);
            }
        }
    }

    /// Puts an order on the book of resting orders and its price index.
    fn rest(&mut self, id: OrderId, r: Resting) {
        self.by_price[side_index(r.side)].insert((r.price, id));
        self.resting.insert(id, r);
    }

    fn finish_resting(&mut self, id: OrderId, reason: DoneReason) {
        if let Some(r) = self.resting.remove(&id) {
            self.by_price[side_index(r.side)].remove(&(r.price, id));
            if let Some(at) = r.expire_at {
                self.expiries.remove(at, id);
            }
            let _ = self.ledger.release_hold(id);
            self.events.push(PaperEvent::Done {
                order_id: id,
                reason,
                remaining: r.remaining,
            });
        }
    }

    fn available(&self, side: Side, price: Price, displayed: Size) -> Decimal {
        (displayed.get()
            - self
                .consumed
                .get(&(side, price))
                .copied()
                .unwrap_or_default())
        .max(Decimal::ZERO)
    }

    /// Displayed opposite levels our order could take: (price, available size), best first.
    fn takeable(&self, side: Side, limit: Option<Price>) -> Vec<(Price, Decimal)> {
        let opposite = side.opposite();
        if self.book.levels(opposite).next().is_none() {
            // A trades-only market (no depth ever shown): the last trade price
            // is the only liquidity we know of, and we assume it is deep.
            return self
                .last_price
                .filter(|last| match (side, limit) {
                    (_, None) => true,
                    (Side::Buy, Some(l)) => *last <= l,
                    (Side::Sell, Some(l)) => *last >= l,
                })
                .map(|last| vec![(last, Decimal::MAX)])
                .unwrap_or_default();
        }
        self.book
            .levels(opposite)
            .take_while(|(p, _)| match (side, limit) {
                (_, None) => true,
                (Side::Buy, Some(l)) => *p <= l,
                (Side::Sell, Some(l)) => *p >= l,
            })
            .map(|(p, s)| (p, self.available(opposite, p, s)))
            .filter(|(_, a)| *a > Decimal::ZERO)
            .collect()
    }

    fn enter(
        &mut self,
        id: OrderId,
        order: NewOrder,
        owner: Option<BotId>,
    ) -> Result<(), Rejection> {
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
        let (currency, amount) = self
            .ledger
            .hold_needed(&self.product, &order, self.rates, owner);
        self.ledger.place_hold(id, currency, amount, owner)?;
        let levels = self.takeable(side, limit);
        if post_only && !levels.is_empty() {
            let _ = self.ledger.release_hold(id);
            return Err(Rejection::bad_request(POST_ONLY_MODE));
        }
        self.events.push(PaperEvent::Received {
            order_id: id,
            side,
            order: order.kind,
            client_oid: order.client_oid,
        });
        let (mut size_left, mut funds_left) = match order.kind {
            OrderKind::Limit { size, .. } | OrderKind::Market(MarketAmount::Size(size)) => {
                (Some(size.get()), None)
            }
            OrderKind::Market(MarketAmount::Funds(f)) if side == Side::Buy => {
                (None, Some(market_buy_net_funds(f, self.rates.taker).get()))
            }
            OrderKind::Market(MarketAmount::Funds(f)) => (None, Some(f.get())),
        };
        if tif == Some(TimeInForce::Fok) {
            let depth: Decimal = levels.iter().map(|(_, a)| *a).sum();
            if size_left.is_some_and(|s| depth < s) {
                let _ = self.ledger.release_hold(id);
                let remaining = Size::new(size_left.unwrap_or_default()).unwrap_or(Size::ZERO);
                self.events.push(PaperEvent::Done {
                    order_id: id,
                    reason: DoneReason::Canceled(CancelReason::TimeInForce),
                    remaining,
                });
                return Ok(());
            }
        }
        for (price, available) in levels {
            let want = match (size_left, funds_left) {
                (Some(s), _) => s,
                (None, Some(f)) => Size::new(f / price.get())
                    .map_or(Decimal::ZERO, |s| s.floor_to(self.product.base_increment)),
                (None, None) => Decimal::ZERO,
            };
            let take = want.min(available);
            if take <= Decimal::ZERO {
                break;
            }
            *self.consumed.entry((side.opposite(), price)).or_default() += take;
            let size = Size::new(take).unwrap_or(Size::ZERO);
            self.fill(id, side, price, size, Liquidity::Taker);
            size_left = size_left.map(|s| s - take);
            funds_left = funds_left.map(|f| f - price.get() * take);
        }
        let remaining =
            Size::new(size_left.unwrap_or_default().max(Decimal::ZERO)).unwrap_or(Size::ZERO);
        let filled = size_left.is_some_and(|s| s <= Decimal::ZERO)
            || (size_left.is_none() && funds_left.is_some());
        match (limit, tif) {
            _ if filled && size_left.is_some() => {
                let _ = self.ledger.release_hold(id);
                self.events.push(PaperEvent::Done {
                    order_id: id,
                    reason: DoneReason::Filled,
                    remaining: Size::ZERO,
                });
            }
            (Some(price), Some(TimeInForce::Gtc | TimeInForce::Gtt(_))) => {
                let expire_at = match tif {
                    Some(TimeInForce::Gtt(after)) => Some(self.now.saturating_add(after.nanos())),
                    _ => None,
                };
                if let Some(at) = expire_at {
                    self.expiries.add(at, id);
                }
                let queue_ahead = self.book.size_at(side, price);
                self.rest(
                    id,
                    Resting {
                        side,
                        price,
                        remaining,
                        queue_ahead: queue_ahead.get(),
                        expire_at,
                    },
                );
                self.events.push(PaperEvent::Open {
                    order_id: id,
                    price,
                    remaining,
                    queue_ahead,
                });
            }
            _ => {
                // Market orders by funds end "filled" once the book cannot give another increment.
                let reason = if size_left.is_none()
                    && self
                        .events
                        .iter()
                        .any(|e| matches!(e, PaperEvent::Fill { order_id, .. } if *order_id == id))
                {
                    DoneReason::Filled
                } else {
                    DoneReason::Canceled(CancelReason::TimeInForce)
                };
                let _ = self.ledger.release_hold(id);
                self.events.push(PaperEvent::Done {
                    order_id: id,
                    reason,
                    remaining,
                });
            }
        }
        Ok(())
    }

    fn run_stops(&mut self) {
        while let Some(last) = self.last_price {
            let Some(pos) = self.stops.iter().position(|s| s.2.triggers(last, s.3)) else {
                break;
            };
            let (id, mut order, _, _, owner) = self.stops.remove(pos);
            if let OrderKind::Limit { ref mut stop, .. } = order.kind {
                *stop = None;
            }
            if self.enter(id, order, owner).is_err() {
                let remaining = match order.kind {
                    OrderKind::Limit { size, .. } => size,
                    OrderKind::Market(_) => Size::ZERO,
                };
                self.events.push(PaperEvent::Done {
                    order_id: id,
                    reason: DoneReason::Canceled(CancelReason::InsufficientFunds),
                    remaining,
                });
            }
        }
    }
}

/// Index of a side in per-side arrays.
fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::order::OrderRequest;
    use crate::testkit::{btc_usd, limit, order};

    const RATES: FeeRates = FeeRates {
        maker: dec!(0.004),
        taker: dec!(0.006),
    };

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    fn z(s: &str) -> Size {
        Size::parse(s).unwrap()
    }

    fn exchange() -> PaperExchange {
        let mut ledger = Ledger::default();
        ledger.deposit("USD", dec!(100000)).unwrap();
        ledger.deposit("BTC", dec!(10)).unwrap();
        let mut x = PaperExchange::new(btc_usd(), RATES, ledger);
        let book = L2Book::from_snapshot(
            [(p("100.00"), z("2")), (p("99.00"), z("5"))],
            [(p("101.00"), z("1")), (p("102.00"), z("3"))],
        );
        x.on_snapshot(book, 0);
        x
    }

    fn fills(events: &[PaperEvent]) -> Vec<(Decimal, Decimal, Liquidity)> {
        events
            .iter()
            .filter_map(|e| match e {
                PaperEvent::Fill {
                    price,
                    size,
                    liquidity,
                    ..
                } => Some((price.get(), size.get(), *liquidity)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn resting_order_fills_only_after_the_queue_ahead_is_consumed() {
        let mut x = exchange();
        let (_, ev) = x.submit(limit("buy", "100.00", "1"), 1).unwrap();
        assert!(
            matches!(ev.last(), Some(PaperEvent::Open { queue_ahead, .. }) if queue_ahead.get() == dec!(2))
        );
        // 1.5 trades at our price: all of it goes to the 2 ahead of us.
        assert!(fills(&x.on_trade(p("100.00"), z("1.5"), Side::Buy, 2)).is_empty());
        // 1 more: 0.5 finishes the queue, 0.5 fills us.
        assert_eq!(
            fills(&x.on_trade(p("100.00"), z("1"), Side::Buy, 3)),
            vec![(dec!(100.00), dec!(0.5), Liquidity::Maker)]
        );
        // The queue is gone: the next trade at our price fills us directly.
        let ev = x.on_trade(p("100.00"), z("2"), Side::Buy, 4);
        assert_eq!(
            fills(&ev),
            vec![(dec!(100.00), dec!(0.5), Liquidity::Maker)]
        );
        assert!(matches!(
            ev.last(),
            Some(PaperEvent::Done {
                reason: DoneReason::Filled,
                ..
            })
        ));
    }

    #[test]
    fn level_decreases_shrink_the_queue_and_increases_join_behind() {
        let mut x = exchange();
        x.submit(limit("buy", "100.00", "1"), 1).unwrap();
        x.on_l2(Side::Buy, p("100.00"), z("0.5"), 2);
        x.on_l2(Side::Buy, p("100.00"), z("4"), 3);
        assert_eq!(
            fills(&x.on_trade(p("100.00"), z("0.75"), Side::Buy, 4)),
            vec![(dec!(100.00), dec!(0.25), Liquidity::Maker)]
        );
    }

    #[test]
    fn trades_through_our_price_fill_at_our_price_up_to_the_trade_size() {
        let mut x = exchange();
        x.submit(limit("buy", "100.00", "1"), 1).unwrap();
        assert_eq!(
            fills(&x.on_trade(p("99.50"), z("0.4"), Side::Buy, 2)),
            vec![(dec!(100.00), dec!(0.4), Liquidity::Maker)]
        );
        // A trade on the other side never fills a buy.
        assert!(fills(&x.on_trade(p("99.50"), z("0.4"), Side::Sell, 3)).is_empty());
    }

    #[test]
    fn marketable_orders_walk_the_book_as_taker_with_slippage() {
        let mut x = exchange();
        let (_, ev) = x.submit(limit("buy", "102.00", "2.5"), 1).unwrap();
        assert_eq!(
            fills(&ev),
            vec![
                (dec!(101.00), dec!(1), Liquidity::Taker),
                (dec!(102.00), dec!(1.5), Liquidity::Taker)
            ]
        );
        // The liquidity we took is not offered twice before the level updates.
        let (_, ev) = x.submit(limit("buy", "101.00", "1"), 2).unwrap();
        assert!(fills(&ev).is_empty());
        assert!(matches!(ev.last(), Some(PaperEvent::Open { .. })));
        let mkt = order(OrderRequest {
            order_type: Some("market".into()),
            side: Some("sell".into()),
            size: Some("3".into()),
            ..OrderRequest::default()
        });
        let (_, ev) = x.submit(mkt, 3).unwrap();
        assert_eq!(
            fills(&ev),
            vec![
                (dec!(100.00), dec!(2), Liquidity::Taker),
                (dec!(99.00), dec!(1), Liquidity::Taker)
            ]
        );
        let fee = dec!(100.00) * dec!(2) * dec!(0.006);
        assert!(matches!(&ev[1], PaperEvent::Fill { fee: f, .. } if *f == fee));
    }

    #[test]
    fn post_only_fok_ioc_and_gtt() {
        let mut x = exchange();
        let po = order(OrderRequest {
            post_only: Some(true),
            ..OrderRequest {
                side: Some("buy".into()),
                price: Some("101.00".into()),
                size: Some("1".into()),
                ..OrderRequest::default()
            }
        });
        assert_eq!(x.submit(po, 1).unwrap_err().message, "Post only mode");
        let fok = order(OrderRequest {
            time_in_force: Some("FOK".into()),
            side: Some("buy".into()),
            price: Some("102.00".into()),
            size: Some("5".into()),
            ..OrderRequest::default()
        });
        let (_, ev) = x.submit(fok, 2).unwrap();
        assert!(fills(&ev).is_empty());
        assert!(matches!(
            ev.last(),
            Some(PaperEvent::Done {
                reason: DoneReason::Canceled(CancelReason::TimeInForce),
                ..
            })
        ));
        let ioc = order(OrderRequest {
            time_in_force: Some("IOC".into()),
            side: Some("buy".into()),
            price: Some("101.00".into()),
            size: Some("5".into()),
            ..OrderRequest::default()
        });
        let (_, ev) = x.submit(ioc, 3).unwrap();
        assert_eq!(fills(&ev), vec![(dec!(101.00), dec!(1), Liquidity::Taker)]);
        assert!(
            matches!(ev.last(), Some(PaperEvent::Done { remaining, .. }) if remaining.get() == dec!(4))
        );
        let gtt = order(OrderRequest {
            time_in_force: Some("GTT".into()),
            cancel_after: Some("min".into()),
            side: Some("buy".into()),
            price: Some("90.00".into()),
            size: Some("1".into()),
            ..OrderRequest::default()
        });
        x.submit(gtt, 10).unwrap();
        assert!(x.advance(10 + 59_999_999_999).is_empty());
        assert!(matches!(
            x.advance(10 + 60_000_000_000).as_slice(),
            [PaperEvent::Done {
                reason: DoneReason::Canceled(CancelReason::TimeInForce),
                ..
            }]
        ));
        assert_eq!(x.ledger().balance("USD").hold, dec!(0));
    }

    #[test]
    fn stop_loss_triggers_on_a_public_trade_and_sells_into_the_book() {
        let mut x = exchange();
        let stop = order(OrderRequest {
            stop: Some("loss".into()),
            stop_price: Some("99.50".into()),
            side: Some("sell".into()),
            price: Some("99.00".into()),
            size: Some("1".into()),
            ..OrderRequest::default()
        });
        let (id, ev) = x.submit(stop, 1).unwrap();
        assert_eq!(ev, vec![PaperEvent::Activate { order_id: id }]);
        assert!(fills(&x.on_trade(p("100.00"), z("0.1"), Side::Buy, 2)).is_empty());
        let ev = x.on_trade(p("99.50"), z("0.1"), Side::Buy, 3);
        assert_eq!(fills(&ev), vec![(dec!(100.00), dec!(1), Liquidity::Taker)]);
    }

    #[test]
    fn a_bot_order_holds_from_its_reservation_and_its_fills_come_back_to_it() {
        let mut x = exchange();
        let bot = BotId(Uuid::from_u128(5));
        x.ledger_mut().reserve(bot, "USD", dec!(60.36)).unwrap();
        // The hold is 0.6 × 99.50 × 1.006 = 60.0582, taken from the reservation.
        let (id, _) = x
            .submit_for(limit("buy", "99.50", "0.6"), Some(bot), 1)
            .unwrap();
        assert_eq!(x.ledger().reserved(bot, "USD"), dec!(0.3018));
        assert_eq!(x.ledger().hold(id).unwrap().bot, Some(bot));
        // A trade through our price fills us; the base lands in the bot's reservation.
        let ev = x.on_trade(p("99.00"), z("1"), Side::Buy, 2);
        assert_eq!(fills(&ev), vec![(dec!(99.50), dec!(0.6), Liquidity::Maker)]);
        assert_eq!(x.ledger().reserved(bot, "BTC"), dec!(0.6));
        // A second order beyond the reservation is refused, although the wallet could pay.
        let err = x
            .submit_for(limit("buy", "99.50", "0.6"), Some(bot), 3)
            .unwrap_err();
        assert_eq!(err.message, "Insufficient funds");
    }

    #[test]
    fn header_and_resting_records_restore_the_engine_through_json() {
        let mut x = exchange();
        let (id, _) = x.submit(limit("buy", "99.50", "0.5"), 1).unwrap();
        let header = serde_json::to_string(&x.header()).unwrap();
        let rest = serde_json::to_string(&x.resting_record(id).unwrap()).unwrap();
        let mut y = PaperExchange::restore(
            btc_usd(),
            RATES,
            serde_json::from_str(&header).unwrap(),
            [(id, serde_json::from_str(&rest).unwrap())],
            x.ledger().clone(),
        );
        assert_eq!(y.resting_count(), 1);
        // The restored order still fills, and new ids do not collide.
        let ev = y.on_trade(p("99.00"), z("1"), Side::Buy, 2);
        assert_eq!(fills(&ev), vec![(dec!(99.50), dec!(0.5), Liquidity::Maker)]);
        let (next, _) = y.submit(limit("buy", "90.00", "0.5"), 3).unwrap();
        assert_ne!(next, id);
        assert!(
            y.resting_record(id).is_none(),
            "a filled order no longer rests"
        );
    }

    #[test]
    fn trades_only_market_fills_marketable_orders_at_the_last_price() {
        let mut ledger = Ledger::default();
        ledger.deposit("USD", dec!(1000)).unwrap();
        let mut x = PaperExchange::new(btc_usd(), RATES, ledger);
        // Nothing traded yet: a market order has nothing to take.
        let req = OrderRequest {
            product_id: "BTC-USD".into(),
            order_type: Some("market".into()),
            side: Some("buy".into()),
            funds: Some("100.00".into()),
            ..OrderRequest::default()
        };
        let (_, ev) = x.submit(order(req.clone()), 1).unwrap();
        assert!(fills(&ev).is_empty());
        x.on_trade(p("450.00"), z("0.1"), Side::Sell, 2);
        let (_, ev) = x.submit(order(req), 3).unwrap();
        let f = fills(&ev);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].0, f[0].2), (dec!(450.00), Liquidity::Taker));
        // A limit buy below the last price rests instead.
        let (_, ev) = x.submit(limit("buy", "440.00", "0.1"), 4).unwrap();
        assert!(ev.iter().any(|e| matches!(e, PaperEvent::Open { .. })));
    }
}
