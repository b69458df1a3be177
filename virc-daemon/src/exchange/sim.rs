//! The simulated exchange: virc-core's paper engines (one per product,
//! sharing one wallet) behind the [`Exchange`] interface, with a durable
//! record of its own, so that paper trading survives `kill -9` exactly as
//! a real exchange's books would.
//!
//! # Its record
//! - `sim.<name>.book`: the wallet (a record per balance, hold and bot
//!   reservation), each product engine's [`EngineHeader`] and a record per
//!   resting order. A change rewrites only the records it touched, so its
//!   cost does not grow with the number of resting orders.
//! - `sim.<name>.orders`: every order, keyed by arrival, newest last;
//!   `sim.<name>.index` maps order ids and client ids to that key.
//! - `sim.<name>.fills`: every fill, keyed by trade id.
//! - the store's journal: the changes of each operation as one group,
//!   until they are settled into the trees above (see [`Journal`]): a fill
//!   or a placement costs one append to the journal file on the bot's
//!   tick-to-order path instead of a dozen tree writes; the runtime
//!   settles when it is idle.
//!
//! Market data that does not touch our orders (most trades, every book
//! update) is not written: after a restart the queue position of a resting
//! order is the one at its last change, the book the next one the feed shows.
//!
//! # Time
//! The exchange's clock is the market's: the latest trade time it has seen.
//! A replay of 2016 therefore stamps 2016 orders and expires GTT orders in
//! 2016 time. Before any trade, the caller's wall clock is used.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use virc_core::{
    ids::{BotId, ClientOid, Currency, OrderId, id_space},
    ledger::{Balance, Hold},
    ledger::{FeeRates, Ledger},
    market::Trade,
    money::{Funds, Size},
    order::{
        CancelReason, DoneReason, ORDER_NOT_FOUND, Order, OrderEvent, OrderRequest, OrderStatus,
        Rejection, Side, validate,
    },
    paper::{EngineHeader, PaperEvent, PaperExchange, RestingRecord},
    product::Catalogue,
};

use super::{Exchange, ExchangeError, FillView, OrderView, Reply, Target, Update};
use crate::store::{Journal, Records, Store, StoreError};

impl From<StoreError> for ExchangeError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Header {
    engines: BTreeMap<String, EngineHeader>,
    next_key: u64,
    next_trade: u64,
}

const HEADER: &[u8] = b"h";
const BALANCE: u8 = b'b';
const FEES: u8 = b'f';
const HOLD: u8 = b'H';
const RESTING: u8 = b'R';
const RESERVED: u8 = b'r';

fn tagged(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(tag);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// The currency code at the end of a record key.
fn currency(tree: &'static str, bytes: &[u8]) -> Result<Currency, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| Currency::new(text).ok())
        .ok_or_else(|| StoreError::Corrupt {
            tree,
            detail: format!("record key ends in {bytes:?}, not a currency code"),
        })
}

/// What [`SimExchange::persist`] last wrote of each balance, fee total and
/// reservation, as exact representations (`1.0` and `1.00` differ, so
/// what is stored always reads back as it was held), so that a record that
/// has not changed is not written again: a fill moves two balances but one
/// fee total, a placement one balance and no fees.
#[derive(Debug, Default)]
struct Written {
    balances: BTreeMap<Currency, [[u8; 16]; 2]>,
    fees: BTreeMap<Currency, [u8; 16]>,
    reserved: BTreeMap<(BotId, Currency), [u8; 16]>,
}

/// The simulated exchange: the paper wallet, one paper engine per product
/// and the record of every order and fill.
#[derive(Debug)]
pub struct SimExchange {
    name: String,
    catalogue: Catalogue,
    rates: FeeRates,
    wallet: Ledger,
    engines: BTreeMap<String, PaperExchange>,
    /// Orders not yet done, by id (done ones live in the store only).
    live: HashMap<OrderId, (u64, OrderView)>,
    next_key: u64,
    next_trade: u64,
    market_now: i64,
    written: Written,
    journal: Journal,
    book: Records,
    orders: Records,
    index: Records,
    fills: Records,
}

fn key(k: u64) -> [u8; 8] {
    k.to_be_bytes()
}

fn id_key(id: OrderId) -> Vec<u8> {
    [b"o".as_slice(), id.0.as_bytes()].concat()
}

fn client_key(id: ClientOid) -> Vec<u8> {
    [b"c".as_slice(), id.0.as_bytes()].concat()
}

fn done_reason_text(reason: DoneReason) -> &'static str {
    match reason {
        DoneReason::Filled | DoneReason::Canceled(CancelReason::User) => "",
        DoneReason::Canceled(CancelReason::TimeInForce) => "time in force",
        DoneReason::Canceled(CancelReason::SelfTrade) => "self-trade prevention",
        DoneReason::Canceled(CancelReason::InsufficientFunds) => "Insufficient funds",
    }
}

impl SimExchange {
    /// Opens the simulated exchange `name` in `store`; a new one starts
    /// with `wallet`, an existing one continues from its record.
    pub fn open(
        name: &str,
        catalogue: Catalogue,
        rates: FeeRates,
        wallet: &[(String, Decimal)],
        store: &Store,
    ) -> Result<Self, StoreError> {
        // Tree names must be 'static; a handful per configured exchange is bounded.
        let tree = |what: &str| -> &'static str {
            Box::leak(format!("sim.{name}.{what}").into_boxed_str())
        };
        let journal = store.journal().clone();
        let [book, orders, index, fills] = [
            store.journaled(tree("book"))?,
            store.journaled(tree("orders"))?,
            store.journaled(tree("index"))?,
            store.journaled(tree("fills"))?,
        ];
        let saved: Option<Header> = book.get(HEADER)?;
        let fresh = saved.is_none();
        let header = saved.unwrap_or_default();
        let mut ledger = Ledger::restore(
            book.scan_prefix::<Balance>(&[BALANCE])?
                .into_iter()
                .map(|(k, v)| Ok((currency(book.name(), &k[1..])?, v)))
                .collect::<Result<Vec<_>, StoreError>>()?,
            book.scan_prefix::<Hold>(&[HOLD])?
                .into_iter()
                .filter_map(|(k, v)| {
                    Some((OrderId(uuid::Uuid::from_slice(k.get(1..17)?).ok()?), v))
                }),
            book.scan_prefix::<Decimal>(&[RESERVED])?
                .into_iter()
                .filter_map(|(k, v)| {
                    let bot = BotId(uuid::Uuid::from_slice(k.get(1..17)?).ok()?);
                    Some(currency(book.name(), k.get(17..)?).map(|c| (bot, c, v)))
                })
                .collect::<Result<Vec<_>, StoreError>>()?,
            book.scan_prefix::<Decimal>(&[FEES])?
                .into_iter()
                .map(|(k, v)| Ok((currency(book.name(), &k[1..])?, v)))
                .collect::<Result<Vec<_>, StoreError>>()?,
        );
        let mut resting: BTreeMap<String, Vec<(OrderId, RestingRecord)>> = BTreeMap::new();
        for (k, (product, r)) in book.scan_prefix::<(String, RestingRecord)>(&[RESTING])? {
            if let Some(id) = k.get(1..17).and_then(|b| uuid::Uuid::from_slice(b).ok()) {
                resting.entry(product).or_default().push((OrderId(id), r));
            }
        }
        if fresh {
            for (currency, amount) in wallet {
                // Positive by construction (config validation).
                let _ = ledger.deposit(currency, *amount);
            }
        }
        let mut x = Self {
            name: name.to_owned(),
            catalogue,
            rates,
            wallet: ledger,
            engines: BTreeMap::new(),
            live: HashMap::new(),
            next_key: header.next_key,
            next_trade: header.next_trade,
            market_now: 0,
            written: Written::default(),
            journal,
            book,
            orders,
            index,
            fills,
        };
        for (product_id, h) in header.engines {
            let orders = resting.remove(&product_id).unwrap_or_default();
            if let Some(product) = x.catalogue.get(&product_id) {
                let engine =
                    PaperExchange::restore(product.clone(), rates, h, orders, Ledger::default());
                x.market_now = x.market_now.max(engine.now());
                x.engines.insert(product_id, engine);
            } else {
                tracing::warn!(exchange = name, product = %product_id, "Product of saved paper orders is no longer in the catalogue; its orders are kept but not traded");
            }
        }
        if fresh {
            let currencies: Vec<Currency> = x.wallet.balances().map(|(c, _)| c).collect();
            x.persist(&currencies, &[], &[])?;
        }
        for (k, view) in x.orders.all::<OrderView>()? {
            if !view.order.status.is_terminal() {
                let k = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
                x.live.insert(view.order.id, (k, view));
            }
        }
        Ok(x)
    }

    /// The fee rates this exchange charges.
    pub fn rates(&self) -> FeeRates {
        self.rates
    }

    /// The products it trades.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The wallet: balances, holds and per-bot reservations.
    pub fn wallet(&self) -> &Ledger {
        &self.wallet
    }

    /// Orders not yet done.
    pub fn live_orders(&self) -> impl Iterator<Item = &OrderView> {
        self.live.values().map(|(_, v)| v)
    }

    /// Sets `amount` of `currency` aside for `bot` and records it.
    pub fn reserve(
        &mut self,
        bot: BotId,
        currency: &str,
        amount: Decimal,
    ) -> Result<(), ExchangeError> {
        self.wallet
            .reserve(bot, currency, amount)
            .map_err(|e| ExchangeError::Rejected(Rejection::bad_request(e.to_string())))?;
        let code = Currency::new(currency)
            .map_err(|e| ExchangeError::Rejected(Rejection::bad_request(e.to_string())))?;
        self.persist(&[code], &[], &[bot])?;
        Ok(())
    }

    /// Returns a bot's reservations to the free pool.
    pub fn release(&mut self, bot: BotId) -> Result<(), ExchangeError> {
        let currencies: Vec<Currency> = self
            .wallet
            .reservations()
            .filter(|(b, _, _)| *b == bot)
            .map(|(_, c, _)| c)
            .collect();
        self.wallet.release_reservations(bot);
        self.persist(&currencies, &[], &[bot])?;
        Ok(())
    }

    fn now(&self, wall: i64) -> i64 {
        if self.market_now > 0 {
            self.market_now
        } else {
            wall
        }
    }

    /// Writes the records a change touched: the header, the balances and
    /// fees of `currencies`, and the holds, resting records and bot
    /// reservations of `orders` and `bots` (removing those that are gone).
    fn persist(
        &mut self,
        currencies: &[Currency],
        orders: &[OrderId],
        bots: &[BotId],
    ) -> Result<(), StoreError> {
        let header = Header {
            engines: self
                .engines
                .iter()
                .map(|(p, e)| (p.clone(), e.header()))
                .collect(),
            next_key: self.next_key,
            next_trade: self.next_trade,
        };
        self.book.put(HEADER, &header)?;
        let w = &mut self.written;
        for &c in currencies {
            // Remembered once the write is in the group: a failed commit
            // keeps the group for the next one.
            let balance = self.wallet.balance_in(c);
            let exact = [balance.balance.serialize(), balance.hold.serialize()];
            if w.balances.get(&c) != Some(&exact) {
                self.book.put(&tagged(BALANCE, &[c.as_bytes()]), &balance)?;
                w.balances.insert(c, exact);
            }
            if let Some(fees) = self.wallet.fees_paid_in(c)
                && w.fees.get(&c) != Some(&fees.serialize())
            {
                self.book.put(&tagged(FEES, &[c.as_bytes()]), &fees)?;
                w.fees.insert(c, fees.serialize());
            }
            for &bot in bots {
                let r = self.wallet.reserved_in(bot, c);
                if w.reserved.get(&(bot, c)) == Some(&r.serialize()) {
                    continue;
                }
                let k = tagged(RESERVED, &[bot.0.as_bytes(), c.as_bytes()]);
                if r.is_zero() {
                    self.book.remove(&k)?;
                } else {
                    self.book.put(&k, &r)?;
                }
                w.reserved.insert((bot, c), r.serialize());
            }
        }
        for id in orders {
            let k = tagged(HOLD, &[id.0.as_bytes()]);
            match self.wallet.hold(*id) {
                Some(h) => self.book.put(&k, h)?,
                None => self.book.remove(&k)?,
            }
            let k = tagged(RESTING, &[id.0.as_bytes()]);
            let rest = self
                .engines
                .iter()
                .find_map(|(p, e)| e.resting_record(*id).map(|r| (p.clone(), r)));
            match rest {
                Some(r) => self.book.put(&k, &r)?,
                None => self.book.remove(&k)?,
            }
        }
        self.journal.commit()
    }

    /// Copies every journaled change into the trees now; the journal's
    /// own thread does it as writes gather (see [`Journal`]).
    pub fn settle(&self) -> Result<(), ExchangeError> {
        Ok(self.journal.settle()?)
    }

    /// Runs `f` on a product's engine with the shared wallet lent to it.
    fn with_engine<R>(
        &mut self,
        product: &str,
        f: impl FnOnce(&mut PaperExchange) -> R,
    ) -> Option<R> {
        if !self.engines.contains_key(product) {
            let p = self.catalogue.get(product)?.clone();
            let engine = PaperExchange::new(p, self.rates, Ledger::default())
                .with_id_space(id_space(product));
            self.engines.insert(product.to_owned(), engine);
        }
        let engine = self.engines.get_mut(product)?;
        std::mem::swap(engine.ledger_mut(), &mut self.wallet);
        let r = f(engine);
        std::mem::swap(engine.ledger_mut(), &mut self.wallet);
        Some(r)
    }

    /// Folds a public trade in; returns what it did to our orders.
    pub fn on_trade(
        &mut self,
        product: &str,
        trade: &Trade,
        maker_side: Side,
    ) -> Result<Vec<Update>, ExchangeError> {
        if self.catalogue.get(product).is_none() {
            return Ok(Vec::new());
        }
        self.market_now = self.market_now.max(trade.time);
        let events = self
            .with_engine(product, |e| {
                e.on_trade(trade.price, trade.size, maker_side, trade.time)
            })
            .unwrap_or_default();
        self.apply(product, events, trade.time)
    }

    /// Folds a book change in (it may only expire GTT orders).
    pub fn on_l2(
        &mut self,
        product: &str,
        changes: &[(Side, virc_core::money::Price, Size)],
    ) -> Result<Vec<Update>, ExchangeError> {
        if self.catalogue.get(product).is_none() {
            return Ok(Vec::new());
        }
        let now = self.market_now;
        let events = self
            .with_engine(product, |e| {
                let mut out = Vec::new();
                for (side, price, size) in changes {
                    out.extend(e.on_l2(*side, *price, *size, now));
                }
                out
            })
            .unwrap_or_default();
        self.apply(product, events, now)
    }

    /// Replaces a product's observed book.
    pub fn on_snapshot(
        &mut self,
        product: &str,
        book: virc_core::book::L2Book,
    ) -> Result<Vec<Update>, ExchangeError> {
        if self.catalogue.get(product).is_none() {
            return Ok(Vec::new());
        }
        let now = self.market_now;
        let events = self
            .with_engine(product, |e| e.on_snapshot(book, now))
            .unwrap_or_default();
        self.apply(product, events, now)
    }

    /// Turns engine events into order and fill updates, and records them.
    fn apply(
        &mut self,
        product: &str,
        events: Vec<PaperEvent>,
        now: i64,
    ) -> Result<Vec<Update>, ExchangeError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // At size up front (a fill is two updates; a tick touches an order
        // or two): growing these was a tenth of a fill's work.
        let mut out = Vec::with_capacity(2 * events.len());
        let mut touched: SmallVec<[OrderId; 4]> = SmallVec::new();
        // Orders that reached a terminal state: written once at the end
        // (a live one is written from `live`), however many events it had.
        let mut finished: SmallVec<[(u64, OrderView); 1]> = SmallVec::new();
        let mut owners: SmallVec<[BotId; 4]> = SmallVec::new();
        for ev in events {
            let id = match &ev {
                PaperEvent::Received { order_id, .. }
                | PaperEvent::Activate { order_id }
                | PaperEvent::Open { order_id, .. }
                | PaperEvent::Fill { order_id, .. }
                | PaperEvent::Done { order_id, .. } => *order_id,
            };
            if !touched.contains(&id) {
                touched.push(id);
            }
            let Some((k, mut view)) = self.live.remove(&id) else {
                tracing::warn!(exchange = %self.name, order = %id, "Engine event for an unknown order");
                continue;
            };
            if let Some(b) = view.bot
                && !owners.contains(&b)
            {
                owners.push(b);
            }
            let o = &mut view.order;
            let change = match ev {
                PaperEvent::Received { .. } => {
                    if o.status == OrderStatus::Active {
                        let _ = o.apply(&OrderEvent::Triggered);
                    }
                    let _ = o.apply(&OrderEvent::Received);
                    "received"
                }
                PaperEvent::Activate { .. } => {
                    let _ = o.apply(&OrderEvent::Activated);
                    "activate"
                }
                PaperEvent::Open { .. } => {
                    let _ = o.apply(&OrderEvent::Opened);
                    "open"
                }
                PaperEvent::Fill {
                    price,
                    size,
                    fee,
                    liquidity,
                    ..
                } => {
                    let _ = o.apply(&OrderEvent::Matched);
                    o.filled_size = o.filled_size.checked_add(size).unwrap_or(o.filled_size);
                    let value = Funds::new(price.get() * size.get()).unwrap_or(Funds::ZERO);
                    o.executed_value = o
                        .executed_value
                        .checked_add(value)
                        .unwrap_or(o.executed_value);
                    o.fill_fees = o
                        .fill_fees
                        .checked_add(Funds::new(fee).unwrap_or(Funds::ZERO))
                        .unwrap_or(o.fill_fees);
                    self.next_trade += 1;
                    let fill = FillView {
                        trade_id: self.next_trade,
                        order_id: id,
                        client_oid: o.new.client_oid,
                        bot: view.bot,
                        product_id: product.to_owned(),
                        side: o.new.side,
                        price,
                        size,
                        fee,
                        liquidity,
                        time: now,
                    };
                    self.fills.put(&key(fill.trade_id), &fill)?;
                    out.push(Update::Order {
                        view: view.clone(),
                        change: "match",
                    });
                    out.push(Update::Fill(fill));
                    self.live.insert(id, (k, view));
                    continue;
                }
                PaperEvent::Done { reason, .. } => {
                    let _ = o.apply(&OrderEvent::Done(reason));
                    o.done_at = Some(now);
                    done_reason_text(reason).clone_into(&mut view.reason);
                    "done"
                }
            };
            out.push(Update::Order {
                view: view.clone(),
                change,
            });
            if view.order.status.is_terminal() {
                finished.push((k, view));
            } else {
                self.live.insert(id, (k, view));
            }
        }
        for id in &touched {
            if let Some((k, view)) = self.live.get(id) {
                self.orders.put(&key(*k), view)?;
            }
        }
        for (k, view) in &finished {
            self.orders.put(&key(*k), view)?;
        }
        let currencies = self
            .catalogue
            .get(product)
            .map(|p| [p.base_currency, p.quote_currency]);
        self.persist(
            currencies.as_ref().map_or(&[], |c| c.as_slice()),
            &touched,
            &owners,
        )?;
        Ok(out)
    }

    fn find(&self, target: Target) -> Result<Option<(u64, OrderView)>, ExchangeError> {
        let ik = match target {
            Target::Id(id) => {
                if let Some((k, v)) = self.live.get(&id) {
                    return Ok(Some((*k, v.clone())));
                }
                id_key(id)
            }
            Target::Client(c) => client_key(c),
        };
        let Some(k) = self.index.get::<u64>(&ik)? else {
            return Ok(None);
        };
        Ok(self.orders.get::<OrderView>(&key(k))?.map(|v| (k, v)))
    }

    /// Orders, newest first, that pass `keep`; at most `limit`.
    pub fn orders(
        &self,
        keep: impl FnMut(&OrderView) -> bool,
        limit: usize,
    ) -> Result<Vec<OrderView>, ExchangeError> {
        Ok(self.orders.scan_rev(keep, limit)?)
    }

    /// Fills, newest first, that pass `keep`; at most `limit`.
    pub fn fills(
        &self,
        keep: impl FnMut(&FillView) -> bool,
        limit: usize,
    ) -> Result<Vec<FillView>, ExchangeError> {
        Ok(self.fills.scan_rev(keep, limit)?)
    }
}

impl SimExchange {
    /// Places an order now (see [`Exchange::place`]).
    pub fn place_now(
        &mut self,
        req: &OrderRequest,
        bot: Option<BotId>,
        now: i64,
    ) -> Reply<OrderView> {
        if let Some(c) = req.client_oid
            && let Some((_, existing)) = self.find(Target::Client(c))?
        {
            return Ok((existing, Vec::new()));
        }
        let (product, order) = validate(&self.catalogue, req)?;
        let product_id = product.id.as_str().to_owned();
        let now = self.now(now);
        let submitted = self
            .with_engine(&product_id, |e| e.submit_for(order, bot, now))
            .ok_or_else(|| Rejection::not_found(virc_core::order::PRODUCT_NOT_FOUND))??;
        let (id, events) = submitted;
        self.next_key += 1;
        let k = self.next_key;
        let view = OrderView {
            order: Order::accepted(id, order, product_id.clone(), now, None),
            reason: String::new(),
            bot,
        };
        // The engine's events write the order's record (`apply`); an order
        // with none is written here.
        if events.is_empty() {
            self.orders.put(&key(k), &view)?;
        }
        self.index.put(&id_key(id), &k)?;
        if let Some(c) = order.client_oid {
            self.index.put(&client_key(c), &k)?;
        }
        self.live.insert(id, (k, view));
        let updates = self.apply(&product_id, events, now)?;
        let (_, view) = self
            .find(Target::Id(id))?
            .ok_or_else(|| ExchangeError::Unavailable(format!("order {id} vanished")))?;
        Ok((view, updates))
    }

    /// Cancels an order now (see [`Exchange::cancel`]).
    pub fn cancel_now(&mut self, target: Target, now: i64) -> Reply<OrderView> {
        let Some((_, view)) = self.find(target)? else {
            return Err(Rejection::not_found(ORDER_NOT_FOUND).into());
        };
        if view.order.status.is_terminal() {
            return Ok((view, Vec::new()));
        }
        let id = view.order.id;
        let product = view.order.product_id.clone();
        let now = self.now(now);
        let events = self
            .with_engine(&product, |e| e.cancel(id, now))
            .ok_or_else(|| Rejection::not_found(virc_core::order::PRODUCT_NOT_FOUND))??;
        let updates = self.apply(&product, events, now)?;
        let (_, view) = self
            .find(Target::Id(id))?
            .ok_or_else(|| ExchangeError::Unavailable(format!("order {id} vanished")))?;
        Ok((view, updates))
    }

    /// Looks an order up.
    pub fn lookup(&self, target: Target) -> Result<Option<OrderView>, ExchangeError> {
        Ok(self.find(target)?.map(|(_, v)| v))
    }

    /// The fills of one order, oldest first.
    pub fn fills_of_now(&self, order: OrderId) -> Result<Vec<FillView>, ExchangeError> {
        let mut out = self.fills(|f| f.order_id == order, usize::MAX)?;
        out.reverse();
        Ok(out)
    }
}

impl Exchange for SimExchange {
    fn name(&self) -> &str {
        &self.name
    }

    fn shares_store(&self) -> bool {
        true
    }

    fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    fn rates(&self) -> FeeRates {
        self.rates
    }

    fn wallet(&self) -> &Ledger {
        &self.wallet
    }

    fn reserve(
        &mut self,
        bot: BotId,
        currency: &str,
        amount: Decimal,
    ) -> Result<(), ExchangeError> {
        SimExchange::reserve(self, bot, currency, amount)
    }

    fn release(&mut self, bot: BotId) -> Result<(), ExchangeError> {
        SimExchange::release(self, bot)
    }

    fn place(
        &mut self,
        req: &OrderRequest,
        bot: Option<BotId>,
        now: i64,
    ) -> impl Future<Output = Reply<OrderView>> + Send {
        std::future::ready(self.place_now(req, bot, now))
    }

    fn cancel(
        &mut self,
        target: Target,
        now: i64,
    ) -> impl Future<Output = Reply<OrderView>> + Send {
        std::future::ready(self.cancel_now(target, now))
    }

    fn order(
        &mut self,
        target: Target,
    ) -> impl Future<Output = Result<Option<OrderView>, ExchangeError>> + Send {
        std::future::ready(self.lookup(target))
    }

    fn cached_order(&self, target: Target) -> Option<OrderView> {
        self.lookup(target).ok().flatten()
    }

    fn fills_of(
        &mut self,
        order: OrderId,
    ) -> impl Future<Output = Result<Vec<FillView>, ExchangeError>> + Send {
        std::future::ready(self.fills_of_now(order))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use crate::market::DEMO_PRODUCTS;
    use virc_core::money::Price;

    const T0: i64 = 1_463_065_200_000_000_000;

    fn open(store: &Store) -> SimExchange {
        SimExchange::open(
            "paper",
            Catalogue::from_json(DEMO_PRODUCTS).unwrap(),
            FeeRates {
                maker: Decimal::new(4, 3),
                taker: Decimal::new(6, 3),
            },
            &[("USD".to_owned(), Decimal::from(10_000))],
            store,
        )
        .unwrap()
    }

    fn buy(cid: u128) -> OrderRequest {
        OrderRequest {
            client_oid: Some(ClientOid(uuid::Uuid::from_u128(cid))),
            order_type: Some("limit".into()),
            side: Some("buy".into()),
            product_id: "BTC-USD".into(),
            price: Some("450.00".into()),
            size: Some("1".into()),
            ..OrderRequest::default()
        }
    }

    fn trade_at(x: &mut SimExchange, price: &str, id: u64) -> Vec<Update> {
        let trade = Trade {
            time: T0 + i64::try_from(id).unwrap(),
            trade_id: id,
            price: Price::parse(price).unwrap(),
            size: Size::parse("5").unwrap(),
        };
        x.on_trade("BTC-USD", &trade, Side::Buy).unwrap()
    }

    #[test]
    fn a_restart_restores_the_wallet_exactly_though_unchanged_records_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let bot = BotId(uuid::Uuid::from_u128(77));
        let before = {
            let store = Store::open(dir.path()).unwrap();
            let mut x = open(&store);
            x.reserve(bot, "USD", Decimal::new(200_000, 2)).unwrap();
            for (i, price) in ["449.00", "448.50", "447.25"].into_iter().enumerate() {
                let n = u64::try_from(i).unwrap();
                x.place_now(&buy(u128::from(n) + 10), Some(bot), T0)
                    .unwrap();
                trade_at(&mut x, price, n + 1);
            }
            // One more placement, resting: a hold and a smaller reservation.
            x.place_now(&buy(99), Some(bot), T0).unwrap();
            serde_json::to_string(x.wallet()).unwrap()
            // Dropped without settling, as after kill -9.
        };
        let store = Store::open(dir.path()).unwrap();
        let x = open(&store);
        // Every balance, hold, fee total and reservation, to the scale.
        assert_eq!(serde_json::to_string(x.wallet()).unwrap(), before);
    }

    #[test]
    fn a_fill_committed_but_not_settled_survives_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let (id, usd) = {
            let store = Store::open(dir.path()).unwrap();
            let mut x = open(&store);
            let (view, _) = x.place_now(&buy(1), None, T0).unwrap();
            let updates = trade_at(&mut x, "449.00", 1);
            assert!(updates.iter().any(|u| matches!(u, Update::Fill(_))));
            // Reads before settling see the newest state.
            let (_, done) = x.find(Target::Id(view.order.id)).unwrap().unwrap();
            assert!(done.order.status.is_terminal());
            assert!(x.journal.unsettled() > 0);
            store.flush_now();
            (view.order.id, x.wallet().balance("USD"))
            // Dropped without settling, as after kill -9.
        };
        let store = Store::open(dir.path()).unwrap();
        let x = open(&store);
        let (_, order) = x.find(Target::Id(id)).unwrap().unwrap();
        assert_eq!(order.order.status, OrderStatus::Done(DoneReason::Filled));
        assert_eq!(x.wallet().balance("USD"), usd);
        assert_eq!(x.wallet().balance("BTC").balance, Decimal::ONE);
        assert_eq!(x.fills(|f| f.order_id == id, 10).unwrap().len(), 1);
        assert_eq!(x.live_orders().count(), 0);
    }

    #[test]
    fn a_placement_is_found_by_client_id_and_listed_before_and_after_settling() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut x = open(&store);
        let (view, _) = x.place_now(&buy(7), None, T0).unwrap();
        let cid = Target::Client(ClientOid(uuid::Uuid::from_u128(7)));
        assert_eq!(x.find(cid).unwrap().unwrap().1.order.id, view.order.id);
        // Placing it again is the same order, not a second one.
        let (again, _) = x.place_now(&buy(7), None, T0).unwrap();
        assert_eq!(again.order.id, view.order.id);
        assert_eq!(x.orders(|_| true, 10).unwrap().len(), 1);
        x.settle().unwrap();
        assert_eq!(x.journal.unsettled(), 0);
        assert_eq!(x.find(cid).unwrap().unwrap().1.order.id, view.order.id);
        // 450.00 × 1 plus the taker fee (0.6 %), as Coinbase holds it.
        assert_eq!(x.wallet().balance("USD").hold, Decimal::new(4527, 1));
    }
}
