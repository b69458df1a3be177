//! The emulated exchange's state: one virc-core [`Matcher`] per product,
//! every account's wallet, the record of orders, fills and public trades,
//! and the feed messages each change produces. Synchronous and without IO:
//! the HTTP and WebSocket fronts lock it, call it, and put what it returns
//! on the wire.
//!
//! # Wallets across products
//! A matcher keeps the ledgers of the users it matches. An account's money
//! is one wallet shared by every product, so before each operation on a
//! product the wallets move into that product's matcher and afterwards
//! back out (a move, not a copy).

use std::collections::{BTreeMap, HashMap, VecDeque};

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use virc_core::{
    ids::{ClientOid, OrderId, id_space},
    ledger::{FeeRates, Ledger},
    matcher::{FeedEvent, FeedKind, Matcher, UserId},
    money::{Funds, Price, Size, format_8dp},
    order::{
        DoneReason, MarketAmount, ORDER_NOT_FOUND, Order, OrderEvent, OrderKind, OrderRequest,
        OrderStatus, PRODUCT_NOT_FOUND, Rejection, Side, TimeInForce, validate,
    },
    paper::Liquidity,
    product::Catalogue,
    time::format_rfc3339_micros,
};

use crate::exchange::coinbase::wire::{Fill, fill_json, order_json, side_text, stop_text};

/// The market driver's resting side: the synthetic book every account trades against.
pub const DRIVER_MAKER: UserId = UserId(0);
/// The market driver's taking side (a second user, so that its trades
/// against the maker's orders are not self-trades).
pub const DRIVER_TAKER: UserId = UserId(u32::MAX);

/// Whether `user` is the driver, whose orders and fills are not kept.
pub fn is_driver(user: UserId) -> bool {
    user == DRIVER_MAKER || user == DRIVER_TAKER
}

/// Public trades kept per product for `GET /products/{id}/trades`.
const TRADES_KEPT: usize = 100_000;

/// Text of `DELETE` on an order that is no longer open.
pub const ORDER_ALREADY_DONE: &str = "Order already done";

/// Which feed a message belongs to, for the WebSocket front's filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `full` (and `user` for the owners).
    Full,
    /// Private `activate` (`user` only).
    Private,
    /// `level2` / `level2_batch` updates.
    Level2,
    /// `ticker`.
    Ticker,
}

/// One message for WebSocket subscribers.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Product it is about.
    pub product: String,
    /// Feed.
    pub stream: Stream,
    /// Sequence, for `full` messages.
    pub sequence: Option<u64>,
    /// Users whose orders it is about (owners see [`Outgoing::private`]).
    pub users: Vec<UserId>,
    /// What everyone else sees.
    pub public: Value,
    /// What the owners see: with `client_oid`, `user_id`, `profile_id`.
    pub private: Value,
}

#[derive(Debug, Clone)]
struct OrderRec {
    order: Order,
    user: UserId,
    specified_funds: Option<Funds>,
}

/// One public trade.
#[derive(Debug, Clone, Copy)]
struct TradeRec {
    trade_id: u64,
    price: Price,
    size: Size,
    maker_side: Side,
    time: i64,
}

#[derive(Debug, Default)]
struct ProductState {
    trades: VecDeque<TradeRec>,
    volume_24h: Decimal,
}

/// The emulated exchange.
#[derive(Debug)]
pub struct Engine {
    catalogue: Catalogue,
    products_json: Vec<Value>,
    rates: FeeRates,
    matchers: BTreeMap<String, Matcher>,
    state: BTreeMap<String, ProductState>,
    wallets: BTreeMap<UserId, Ledger>,
    profiles: BTreeMap<UserId, String>,
    orders: HashMap<OrderId, OrderRec>,
    by_client: HashMap<(UserId, ClientOid), OrderId>,
    /// Every order of each account, by arrival.
    arrivals: BTreeMap<UserId, BTreeMap<u64, OrderId>>,
    next_arrival: u64,
    fills: BTreeMap<UserId, Vec<Fill>>,
    out: Vec<Outgoing>,
}

impl Engine {
    /// An exchange trading the products of `products_json` (the `/products`
    /// body), charging `rates` to everyone but the driver.
    pub fn new(products_json: &str, rates: FeeRates) -> Result<Self, String> {
        let catalogue = Catalogue::from_json(products_json).map_err(|e| e.to_string())?;
        let list: Vec<Value> = serde_json::from_str(products_json).map_err(|e| e.to_string())?;
        let matchers = catalogue
            .iter()
            .map(|p| {
                let id = p.id.as_str().to_owned();
                let m = Matcher::new(p.clone(), rates).with_id_space(id_space(&id));
                (id, m)
            })
            .collect();
        let state = catalogue
            .iter()
            .map(|p| (p.id.as_str().to_owned(), ProductState::default()))
            .collect();
        Ok(Self {
            catalogue,
            products_json: list,
            rates,
            matchers,
            state,
            wallets: BTreeMap::new(),
            profiles: BTreeMap::new(),
            orders: HashMap::new(),
            by_client: HashMap::new(),
            arrivals: BTreeMap::new(),
            next_arrival: 0,
            fills: BTreeMap::new(),
            out: Vec::new(),
        })
    }

    /// A price as the exchange writes it: to the product's tick
    /// (`"451.00"` for a 0.01 tick), whatever the scale it was sent with.
    fn px(&self, product: &str, p: impl std::borrow::Borrow<Price>) -> String {
        let scale = self
            .catalogue
            .get(product)
            .map_or(8, |p| p.quote_increment.normalize().scale());
        format!("{:.*}", scale as usize, p.borrow().get())
    }

    /// The products traded.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The fee rates charged.
    pub fn rates(&self) -> FeeRates {
        self.rates
    }

    /// Opens an account (or tops it up) with `profile_id`.
    pub fn fund(&mut self, user: UserId, profile_id: &str, money: &[(&str, Decimal)]) {
        self.profiles.insert(user, profile_id.to_owned());
        let w = self.wallets.entry(user).or_default();
        for (currency, amount) in money {
            let _ = w.deposit(currency, *amount);
        }
    }

    /// The messages produced since the last call.
    pub fn take_outgoing(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.out)
    }

    fn profile(&self, user: UserId) -> String {
        self.profiles.get(&user).cloned().unwrap_or_default()
    }

    /// Runs `f` on a product's matcher with every wallet moved into it.
    fn with_matcher<T>(
        &mut self,
        product: &str,
        f: impl FnOnce(&mut Matcher) -> T,
    ) -> Result<T, Rejection> {
        let m = self
            .matchers
            .get_mut(product)
            .ok_or_else(|| Rejection::not_found(PRODUCT_NOT_FOUND))?;
        for (user, w) in &mut self.wallets {
            *m.ledger_mut(*user) = std::mem::take(w);
        }
        let r = f(m);
        for (user, w) in &mut self.wallets {
            *w = std::mem::take(m.ledger_mut(*user));
        }
        Ok(r)
    }

    /// `POST /orders` for `user`: the order object, `pending` as Coinbase
    /// answers, or the exchange's refusal.
    pub fn place(
        &mut self,
        user: UserId,
        req: &OrderRequest,
        now: i64,
    ) -> Result<Value, Rejection> {
        let (product, order) = validate(&self.catalogue, req)?;
        let product_id = product.id.as_str().to_owned();
        let specified_funds = match order.kind {
            OrderKind::Market(MarketAmount::Funds(f)) if order.side == Side::Buy => Some(f),
            _ => None,
        };
        let (id, events) = self.with_matcher(&product_id, |m| m.submit(user, order, now))??;
        self.next_arrival += 1;
        let expire_at = match order.kind {
            OrderKind::Limit {
                tif: TimeInForce::Gtt(after),
                ..
            } => Some(now + after.nanos()),
            _ => None,
        };
        let rec = OrderRec {
            order: Order::accepted(id, order, product_id.clone(), now, expire_at),
            user,
            specified_funds,
        };
        let answer = order_json(&rec.order, specified_funds, &self.profile(user));
        if !is_driver(user) {
            if let Some(cid) = order.client_oid {
                self.by_client.insert((user, cid), id);
            }
            self.arrivals
                .entry(user)
                .or_default()
                .insert(self.next_arrival, id);
        }
        self.orders.insert(id, rec);
        self.apply(&product_id, events);
        Ok(answer)
    }

    fn find(&self, user: UserId, target: &str) -> Option<OrderId> {
        if let Some(cid) = target.strip_prefix("client:") {
            let cid = ClientOid::parse(cid).ok()?;
            return self.by_client.get(&(user, cid)).copied();
        }
        let id = OrderId::parse(target).ok()?;
        self.orders.get(&id).filter(|r| r.user == user).map(|_| id)
    }

    /// `GET /orders/{id}` or `/orders/client:{oid}`.
    pub fn order(&self, user: UserId, target: &str) -> Option<Value> {
        let id = self.find(user, target)?;
        let r = &self.orders[&id];
        Some(order_json(&r.order, r.specified_funds, &self.profile(user)))
    }

    /// How many orders `user` placed under `cid` (a retry must never make two).
    pub fn count_client_oid(&self, user: UserId, cid: ClientOid) -> usize {
        self.orders
            .values()
            .filter(|r| r.user == user && r.order.new.client_oid == Some(cid))
            .count()
    }

    /// `DELETE /orders/{id}` or `/orders/client:{oid}`: echoes the target.
    pub fn cancel(&mut self, user: UserId, target: &str, now: i64) -> Result<String, Rejection> {
        let id = self
            .find(user, target)
            .ok_or_else(|| Rejection::not_found(ORDER_NOT_FOUND))?;
        let rec = &self.orders[&id];
        if rec.order.status.is_terminal() {
            return Err(Rejection::bad_request(ORDER_ALREADY_DONE));
        }
        let product = rec.order.product_id.clone();
        let events = self.with_matcher(&product, |m| m.cancel(user, id, now))??;
        self.apply(&product, events);
        Ok(target
            .strip_prefix("client:")
            .map_or_else(|| id.to_string(), str::to_owned))
    }

    /// `DELETE /orders[?product_id=]`: the ids canceled.
    pub fn cancel_all(
        &mut self,
        user: UserId,
        product: Option<&str>,
        now: i64,
    ) -> Result<Vec<String>, Rejection> {
        if let Some(p) = product
            && self.catalogue.get(&p.to_ascii_uppercase()).is_none()
        {
            return Err(Rejection::not_found(PRODUCT_NOT_FOUND));
        }
        let open: Vec<OrderId> = self
            .arrivals
            .get(&user)
            .into_iter()
            .flat_map(|a| a.values())
            .filter(|id| {
                let o = &self.orders[id].order;
                !o.status.is_terminal()
                    && product.is_none_or(|p| o.product_id.eq_ignore_ascii_case(p))
            })
            .copied()
            .collect();
        let mut done = Vec::new();
        for id in open {
            if self.cancel(user, &id.to_string(), now).is_ok() {
                done.push(id.to_string());
            }
        }
        Ok(done)
    }

    /// `GET /orders`: newest first, `after` an arrival cursor; statuses
    /// as Coinbase filters them (default: open, pending and active).
    pub fn orders(
        &self,
        user: UserId,
        product: Option<&str>,
        statuses: &[String],
        after: Option<u64>,
        limit: usize,
    ) -> (Vec<Value>, Option<u64>) {
        let wanted = |s: OrderStatus| {
            let name = match s {
                OrderStatus::Pending => "pending",
                OrderStatus::Active => "active",
                OrderStatus::Open => "open",
                OrderStatus::Done(_) => "done",
                OrderStatus::Rejected => "rejected",
            };
            if statuses.is_empty() {
                matches!(name, "open" | "pending" | "active")
            } else {
                statuses.iter().any(|w| w == "all" || w == name)
            }
        };
        let mut items = Vec::new();
        let mut last = None;
        let Some(all) = self.arrivals.get(&user) else {
            return (items, None);
        };
        for (&arrival, id) in all.range(..after.unwrap_or(u64::MAX)).rev() {
            let r = &self.orders[id];
            if wanted(r.order.status) && product.is_none_or(|p| r.order.product_id == p) {
                items.push(order_json(&r.order, r.specified_funds, &self.profile(user)));
                last = Some(arrival);
                if items.len() == limit {
                    break;
                }
            }
        }
        (items, last)
    }

    /// `GET /fills?order_id=|product_id=`: newest first, `after` a trade id.
    pub fn fills(
        &self,
        user: UserId,
        order: Option<OrderId>,
        product: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> (Vec<Value>, Option<u64>) {
        let profile = self.profile(user);
        let list: Vec<&Fill> = self
            .fills
            .get(&user)
            .into_iter()
            .flatten()
            .rev()
            .filter(|f| order.is_none_or(|o| f.order_id == o))
            .filter(|f| product.is_none_or(|p| f.product_id == p))
            .filter(|f| after.is_none_or(|a| f.trade_id < a))
            .take(limit)
            .collect();
        let cursor = list.last().map(|f| f.trade_id);
        (
            list.iter().map(|f| fill_json(f, &profile)).collect(),
            cursor,
        )
    }

    /// `GET /accounts`.
    pub fn accounts(&self, user: UserId) -> Vec<Value> {
        let profile = self.profile(user);
        let Some(w) = self.wallets.get(&user) else {
            return Vec::new();
        };
        w.balances()
            .map(|(currency, b)| {
                json!({
                    "id": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{profile}/{currency}").as_bytes()).to_string(),
                    "currency": currency,
                    "balance": format_8dp(b.balance),
                    "hold": format_8dp(b.hold),
                    "available": format_8dp(b.available()),
                    "profile_id": profile,
                    "trading_enabled": true,
                })
            })
            .collect()
    }

    /// `GET /fees`.
    pub fn fees(&self) -> Value {
        json!({
            "maker_fee_rate": self.rates.maker.to_string(),
            "taker_fee_rate": self.rates.taker.to_string(),
            "usd_volume": "0",
        })
    }

    /// `GET /products`.
    pub fn products(&self) -> Value {
        Value::Array(self.products_json.clone())
    }

    /// `GET /products/{id}`.
    pub fn product(&self, id: &str) -> Option<Value> {
        self.products_json
            .iter()
            .find(|p| p["id"].as_str() == Some(id))
            .cloned()
    }

    /// `GET /products/{id}/book?level=1|2`.
    pub fn book(&self, id: &str, level: u8, now: i64) -> Option<Value> {
        let m = self.matchers.get(id)?;
        let depth = if level == 1 { 1 } else { usize::MAX };
        let side = |s| {
            m.depth(s, depth)
                .into_iter()
                .map(|(p, q)| json!([self.px(id, p), format_8dp(q.get()), 1]))
                .collect::<Vec<_>>()
        };
        Some(json!({
            "bids": side(Side::Buy),
            "asks": side(Side::Sell),
            "sequence": self.sequence(id),
            "time": format_rfc3339_micros(now),
            "auction_mode": false,
            "auction": null,
        }))
    }

    /// `GET /products/{id}/ticker`.
    pub fn ticker(&self, id: &str) -> Option<Value> {
        let m = self.matchers.get(id)?;
        let s = &self.state[id];
        let last = s.trades.back();
        Some(json!({
            "trade_id": last.map(|t| t.trade_id),
            "price": last.map(|t| self.px(id, t.price)),
            "size": last.map(|t| format_8dp(t.size.get())),
            "time": last.map(|t| format_rfc3339_micros(t.time)),
            "bid": m.best_bid().map(|p| self.px(id, p)),
            "ask": m.best_ask().map(|p| self.px(id, p)),
            "volume": format_8dp(s.volume_24h),
        }))
    }

    /// `GET /products/{id}/trades`: newest first, `after` a trade id.
    pub fn trades(
        &self,
        id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Option<(Vec<Value>, Option<u64>)> {
        let s = self.state.get(id)?;
        let list: Vec<&TradeRec> = s
            .trades
            .iter()
            .rev()
            .filter(|t| after.is_none_or(|a| t.trade_id < a))
            .take(limit)
            .collect();
        let cursor = list.last().map(|t| t.trade_id);
        Some((
            list.iter()
                .map(|t| {
                    json!({
                        "trade_id": t.trade_id,
                        "price": self.px(id, t.price),
                        "size": format_8dp(t.size.get()),
                        "time": format_rfc3339_micros(t.time),
                        "side": side_text(t.maker_side),
                    })
                })
                .collect(),
            cursor,
        ))
    }

    /// The last sequence number of a product's feed.
    pub fn sequence(&self, id: &str) -> u64 {
        self.matchers.get(id).map_or(0, Matcher::sequence)
    }

    /// The last trade id of a product.
    pub fn last_trade_id(&self, id: &str) -> u64 {
        self.state
            .get(id)
            .and_then(|s| s.trades.back())
            .map_or(0, |t| t.trade_id)
    }

    /// The last trade of a product as a `last_match` message.
    pub fn last_match(&self, id: &str) -> Option<Value> {
        let t = self.state.get(id)?.trades.back()?;
        Some(json!({
            "type": "last_match",
            "trade_id": t.trade_id,
            "sequence": self.sequence(id),
            "maker_order_id": uuid::Uuid::nil().to_string(),
            "taker_order_id": uuid::Uuid::nil().to_string(),
            "time": format_rfc3339_micros(t.time),
            "product_id": id,
            "size": format_8dp(t.size.get()),
            "price": self.px(id, t.price),
            "side": side_text(t.maker_side),
        }))
    }

    /// A level-2 `snapshot` message of a product.
    pub fn l2_snapshot(&self, id: &str, now: i64) -> Option<Value> {
        let m = self.matchers.get(id)?;
        let side = |s| {
            m.depth(s, usize::MAX)
                .into_iter()
                .map(|(p, q)| json!([self.px(id, p), format_8dp(q.get())]))
                .collect::<Vec<_>>()
        };
        Some(json!({
            "type": "snapshot",
            "product_id": id,
            "bids": side(Side::Buy),
            "asks": side(Side::Sell),
            "time": format_rfc3339_micros(now),
        }))
    }

    /// Best bid and ask of a product.
    pub fn top(&self, id: &str) -> (Option<Price>, Option<Price>) {
        self.matchers
            .get(id)
            .map_or((None, None), |m| (m.best_bid(), m.best_ask()))
    }

    /// Moves time on: GTT orders that expired are canceled.
    pub fn advance(&mut self, now: i64) {
        let ids: Vec<String> = self.matchers.keys().cloned().collect();
        for id in ids {
            if let Ok(events) = self.with_matcher(&id, |m| m.advance(now)) {
                self.apply(&id, events);
            }
        }
    }

    /// Records what the matcher did and queues the feed messages.
    fn apply(&mut self, product: &str, events: Vec<FeedEvent>) {
        let mut touched: Vec<(Side, Price)> = Vec::new();
        for e in events {
            self.apply_one(product, &e, &mut touched);
        }
        self.level2(product, touched);
    }

    fn lifecycle(&mut self, id: OrderId, event: &OrderEvent, time: i64) {
        if let Some(r) = self.orders.get_mut(&id) {
            if r.order.status == OrderStatus::Active && *event == OrderEvent::Received {
                let _ = r.order.apply(&OrderEvent::Triggered);
            }
            if let Err(e) = r.order.apply(event) {
                tracing::warn!(error = %e, "Emulator order lifecycle");
            }
            if let OrderEvent::Done(_) = event {
                r.order.done_at = Some(time);
                if is_driver(r.user) {
                    self.orders.remove(&id);
                }
            }
        }
    }

    fn owner_fields(&self, m: &mut Map<String, Value>, user: UserId, id: OrderId) {
        m.insert("user_id".into(), json!(format!("user-{}", user.0)));
        m.insert("profile_id".into(), json!(self.profile(user)));
        if let Some(cid) = self.orders.get(&id).and_then(|r| r.order.new.client_oid) {
            m.insert("client_oid".into(), json!(cid.to_string()));
        }
    }

    #[expect(clippy::too_many_lines, reason = "one arm per feed message type")]
    fn apply_one(&mut self, product: &str, e: &FeedEvent, touched: &mut Vec<(Side, Price)>) {
        let time = format_rfc3339_micros(e.time);
        let mut m = Map::new();
        m.insert("time".into(), json!(time));
        m.insert("product_id".into(), json!(product));
        if let Some(s) = e.sequence {
            m.insert("sequence".into(), json!(s));
        }
        m.insert("order_id".into(), json!(e.order_id.to_string()));
        let mut users = vec![e.user];
        let mut stream = Stream::Full;
        let mut private_extra = Map::new();
        match &e.kind {
            FeedKind::Received {
                side,
                order,
                client_oid: _,
            } => {
                m.insert("type".into(), json!("received"));
                m.insert("side".into(), json!(side_text(*side)));
                match order {
                    OrderKind::Limit { price, size, .. } => {
                        m.insert("order_type".into(), json!("limit"));
                        m.insert("price".into(), json!(self.px(product, price)));
                        m.insert("size".into(), json!(format_8dp(size.get())));
                    }
                    OrderKind::Market(a) => {
                        m.insert("order_type".into(), json!("market"));
                        match a {
                            MarketAmount::Size(s) => {
                                m.insert("size".into(), json!(format_8dp(s.get())));
                            }
                            MarketAmount::Funds(f) => {
                                m.insert("funds".into(), json!(format_8dp(f.get())));
                            }
                        }
                    }
                }
                self.lifecycle(e.order_id, &OrderEvent::Received, e.time);
            }
            FeedKind::Open {
                side,
                price,
                remaining_size,
            } => {
                m.insert("type".into(), json!("open"));
                m.insert("side".into(), json!(side_text(*side)));
                m.insert("price".into(), json!(self.px(product, price)));
                m.insert(
                    "remaining_size".into(),
                    json!(format_8dp(remaining_size.get())),
                );
                touched.push((*side, *price));
                self.lifecycle(e.order_id, &OrderEvent::Opened, e.time);
            }
            FeedKind::Match {
                trade_id,
                maker_order_id,
                maker_user,
                taker_order_id,
                side,
                price,
                size,
                maker_fee,
                taker_fee,
            } => {
                m.remove("order_id");
                m.insert("type".into(), json!("match"));
                m.insert("trade_id".into(), json!(trade_id.0));
                m.insert("maker_order_id".into(), json!(maker_order_id.to_string()));
                m.insert("taker_order_id".into(), json!(taker_order_id.to_string()));
                m.insert("side".into(), json!(side_text(*side)));
                m.insert("price".into(), json!(self.px(product, price)));
                m.insert("size".into(), json!(format_8dp(size.get())));
                users.push(*maker_user);
                private_extra.insert("maker_fee_rate".into(), json!(self.rates.maker.to_string()));
                private_extra.insert("taker_fee_rate".into(), json!(self.rates.taker.to_string()));
                touched.push((*side, *price));
                let value = price.get() * size.get();
                for (id, user, fee, liquidity, our_side) in [
                    (
                        *maker_order_id,
                        *maker_user,
                        *maker_fee,
                        Liquidity::Maker,
                        *side,
                    ),
                    (
                        *taker_order_id,
                        e.user,
                        *taker_fee,
                        Liquidity::Taker,
                        side.opposite(),
                    ),
                ] {
                    if let Some(r) = self.orders.get_mut(&id) {
                        let o = &mut r.order;
                        o.filled_size =
                            Size::new(o.filled_size.get() + size.get()).unwrap_or(o.filled_size);
                        o.executed_value =
                            Funds::new(o.executed_value.get() + value).unwrap_or(o.executed_value);
                        o.fill_fees = Funds::new(o.fill_fees.get() + fee).unwrap_or(o.fill_fees);
                        let _ = o.apply(&OrderEvent::Matched);
                    }
                    if !is_driver(user) {
                        self.fills.entry(user).or_default().push(Fill {
                            trade_id: trade_id.0,
                            product_id: product.to_owned(),
                            order_id: id,
                            side: our_side,
                            price: *price,
                            size: *size,
                            fee,
                            liquidity,
                            time: e.time,
                        });
                    }
                }
                let st = self.state.entry(product.to_owned()).or_default();
                st.trades.push_back(TradeRec {
                    trade_id: trade_id.0,
                    price: *price,
                    size: *size,
                    maker_side: *side,
                    time: e.time,
                });
                if st.trades.len() > TRADES_KEPT {
                    st.trades.pop_front();
                }
                let day_ago = e.time - 86_400_000_000_000;
                st.volume_24h = st
                    .trades
                    .iter()
                    .rev()
                    .take_while(|t| t.time > day_ago)
                    .map(|t| t.size.get())
                    .sum();
                self.ticker_message(product, e, *price, *size, *side, trade_id.0);
            }
            FeedKind::Change {
                side,
                price,
                old_size,
                new_size,
            } => {
                m.insert("type".into(), json!("change"));
                m.insert("reason".into(), json!("STP"));
                m.insert("side".into(), json!(side_text(*side)));
                m.insert("price".into(), json!(price.map(|p| self.px(product, p))));
                m.insert("old_size".into(), json!(format_8dp(old_size.get())));
                m.insert("new_size".into(), json!(format_8dp(new_size.get())));
                if let Some(p) = price {
                    touched.push((*side, *p));
                }
                self.lifecycle(e.order_id, &OrderEvent::Changed, e.time);
            }
            FeedKind::Done {
                side,
                price,
                remaining_size,
                reason,
            } => {
                m.insert("type".into(), json!("done"));
                m.insert("side".into(), json!(side_text(*side)));
                if let (Some(p), Some(r)) = (price, remaining_size) {
                    m.insert("price".into(), json!(self.px(product, p)));
                    m.insert("remaining_size".into(), json!(format_8dp(r.get())));
                    touched.push((*side, *p));
                }
                m.insert(
                    "reason".into(),
                    json!(match reason {
                        DoneReason::Filled => "filled",
                        DoneReason::Canceled(_) => "canceled",
                    }),
                );
                if let DoneReason::Canceled(r) = reason
                    && let Some(code) = r.code()
                {
                    let text = match code {
                        "101" => "101:Time In Force",
                        "102" => "102:Self Trade Prevention",
                        _ => "105:Insufficient Funds",
                    };
                    private_extra.insert("cancel_reason".into(), json!(text));
                }
                // Recorded after the message is built: the driver's done orders are dropped.
                self.owner_fields(&mut private_extra, e.user, e.order_id);
                self.lifecycle(e.order_id, &OrderEvent::Done(*reason), e.time);
            }
            FeedKind::Activate {
                side,
                stop,
                stop_price,
                price,
                size,
            } => {
                stream = Stream::Private;
                m.remove("time");
                m.insert("type".into(), json!("activate"));
                m.insert(
                    "timestamp".into(),
                    json!(format!(
                        "{}.{:06}",
                        e.time.div_euclid(1_000_000_000),
                        e.time.rem_euclid(1_000_000_000) / 1000
                    )),
                );
                m.insert("stop_type".into(), json!(stop_text(*stop)));
                m.insert("side".into(), json!(side_text(*side)));
                m.insert("stop_price".into(), json!(self.px(product, stop_price)));
                m.insert("price".into(), json!(self.px(product, price)));
                m.insert("size".into(), json!(format_8dp(size.get())));
                m.insert("private".into(), json!(true));
                self.lifecycle(e.order_id, &OrderEvent::Activated, e.time);
            }
        }
        if !private_extra.contains_key("user_id") {
            self.owner_fields(&mut private_extra, e.user, e.order_id);
        }
        let public = Value::Object(m.clone());
        m.extend(private_extra);
        self.out.push(Outgoing {
            product: product.to_owned(),
            stream,
            sequence: e.sequence,
            users,
            public,
            private: Value::Object(m),
        });
    }

    fn ticker_message(
        &mut self,
        product: &str,
        e: &FeedEvent,
        price: Price,
        size: Size,
        side: Side,
        trade_id: u64,
    ) {
        let (bid, ask) = self.top(product);
        let st = &self.state[product];
        let open = st
            .trades
            .iter()
            .find(|t| t.time > e.time - 86_400_000_000_000)
            .map_or(price, |t| t.price);
        let (low, high) = st
            .trades
            .iter()
            .rev()
            .take_while(|t| t.time > e.time - 86_400_000_000_000)
            .fold((price, price), |(l, h), t| (l.min(t.price), h.max(t.price)));
        let v = json!({
            "type": "ticker",
            "sequence": e.sequence,
            "product_id": product,
            "price": self.px(product, price),
            "open_24h": self.px(product, open),
            "volume_24h": format_8dp(st.volume_24h),
            "low_24h": self.px(product, low),
            "high_24h": self.px(product, high),
            "best_bid": bid.map(|p| self.px(product, p)),
            "best_ask": ask.map(|p| self.px(product, p)),
            "side": side_text(side.opposite()),
            "time": format_rfc3339_micros(e.time),
            "trade_id": trade_id,
            "last_size": format_8dp(size.get()),
        });
        self.out.push(Outgoing {
            product: product.to_owned(),
            stream: Stream::Ticker,
            sequence: None,
            users: Vec::new(),
            public: v.clone(),
            private: v,
        });
    }

    fn level2(&mut self, product: &str, mut touched: Vec<(Side, Price)>) {
        if touched.is_empty() {
            return;
        }
        touched.sort_by_key(|(side, price)| (*side == Side::Sell, *price));
        touched.dedup();
        let Some(m) = self.matchers.get(product) else {
            return;
        };
        let changes: Vec<Value> = touched
            .iter()
            .map(|(side, price)| {
                json!([
                    side_text(*side),
                    self.px(product, price),
                    format_8dp(m.level_size(*side, *price).get())
                ])
            })
            .collect();
        let v = json!({
            "type": "l2update",
            "product_id": product,
            "time": format_rfc3339_micros(m.now()),
            "changes": changes,
        });
        self.out.push(Outgoing {
            product: product.to_owned(),
            stream: Stream::Level2,
            sequence: None,
            users: Vec::new(),
            public: v.clone(),
            private: v,
        });
    }

    /// An order's id and status for `user`, for tests and the driver.
    pub fn status(&self, id: OrderId) -> Option<OrderStatus> {
        self.orders.get(&id).map(|r| r.order.status)
    }

    /// A user's wallet.
    pub fn wallet(&self, user: UserId) -> Option<&Ledger> {
        self.wallets.get(&user)
    }

    /// Parses an order id the driver got back from [`Engine::place`].
    pub fn id_of(answer: &Value) -> Option<OrderId> {
        answer["id"].as_str().and_then(|s| OrderId::parse(s).ok())
    }
}
