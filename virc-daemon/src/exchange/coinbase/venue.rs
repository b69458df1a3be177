//! The Coinbase Exchange as a venue for bots: [`Exchange`] over the REST
//! client, with the authenticated `user` feed ([`super::ws::user`]) as the
//! trigger to look orders up again.
//!
//! # What is the truth
//! Coinbase's own record: an order's state and its fills are read back from
//! `GET /orders/…` and `GET /fills?order_id=…`, never inferred from feed
//! messages (private messages carry no sequence, so a lost one cannot be
//! detected; coinbase-exchange.md §10). A `user`-channel message about an
//! order, a reconnect, and a periodic poll all lead to the same
//! [`CoinbaseExchange::refresh`], which reports what changed since the last
//! report: each fill exactly once (by trade id) and each status change.
//!
//! # The wallet
//! Balances and holds come from `GET /accounts` (at connect and every
//! poll). Between polls virc keeps them as the simulated exchange does,
//! with the same [`Ledger`]: a hold per order of ours, settled by its
//! fills, released when it is done; and the per-bot reservations, which
//! only virc knows. So a bot on Coinbase is held to its reservation exactly
//! as on paper, and is refused ("Insufficient funds") before the request
//! leaves when it would overspend it.
//!
//! # Its record (sled)
//! `coinbase.<name>`: the wallet's holds, reservations and fees (`w`), and
//! every order of ours not yet reported done with the trade ids reported
//! (`k` + id), written together as one group of the store's journal.
//! `coinbase.<name>.owners`: client id → bot, written before the order is
//! sent, so an order found after a crash has its owner.

use std::collections::{BTreeSet, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use virc_core::{
    ids::{BotId, ClientOid, OrderId},
    ledger::{FeeRates, Ledger},
    order::{
        CancelReason, DoneReason, INSUFFICIENT_FUNDS, ORDER_NOT_FOUND, OrderRequest, OrderStatus,
        PRODUCT_NOT_FOUND, Rejection, validate,
    },
    product::Catalogue,
};

use super::{
    http::{
        client::{Method, RestClient},
        error::RestError,
        limiter::{Class, Priority},
    },
    wire::{self, Fill},
};
use crate::{
    exchange::{Exchange, ExchangeError, FillView, OrderView, Reply, Target, Update},
    store::{Journal, Records, Store, StoreError},
};

/// At most this many fills of one order are read back.
const MAX_FILLS: usize = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Known {
    view: OrderView,
    /// Trade ids already reported (and settled in the wallet).
    trades: BTreeSet<u64>,
    /// Done and settled: its hold is released and no fill can follow.
    /// Closed orders stay in the record (not in memory), so that reading
    /// one back later never takes its hold or settles its fills again.
    #[serde(default)]
    closed: bool,
}

/// Whether the venue can be reached, for `virc exchanges`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not tried yet.
    Connecting,
    /// The last request and the feed are fine.
    Up,
    /// The last attempt failed, with what failed.
    Down(String),
}

/// The Coinbase Exchange, as one named connection of the daemon.
#[derive(Debug)]
pub struct CoinbaseExchange {
    name: String,
    rest: RestClient,
    catalogue: Catalogue,
    rates: FeeRates,
    wallet: Ledger,
    known: HashMap<OrderId, Known>,
    record: Records,
    /// Makes the wallet and an order's record land together.
    journal: Journal,
    owners: Records,
    link: Link,
}

const WALLET: &[u8] = b"w";

fn known_key(id: OrderId) -> Vec<u8> {
    [b"k".as_slice(), id.0.as_bytes()].concat()
}

impl From<RestError> for ExchangeError {
    fn from(e: RestError) -> Self {
        match e {
            RestError::Rejected { status, message } => {
                Self::Rejected(Rejection { status, message })
            }
            RestError::NotFound { message } => Self::Rejected(Rejection::not_found(message)),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl CoinbaseExchange {
    /// Opens connection `name` over `rest`, with its record in `store`;
    /// nothing is asked of Coinbase until [`CoinbaseExchange::connect`].
    pub fn open(
        name: &str,
        rest: RestClient,
        catalogue: Catalogue,
        rates: FeeRates,
        store: &Store,
    ) -> Result<Self, StoreError> {
        // Tree names must be 'static; three per configured exchange is bounded.
        let tree = |what: &str| -> &'static str {
            Box::leak(format!("coinbase.{name}{what}").into_boxed_str())
        };
        let journal = store.journal().clone();
        let record = store.journaled(tree(""))?;
        let owners = store.records(tree(".owners"))?;
        let wallet = record.get::<Ledger>(WALLET)?.unwrap_or_default();
        let known = record
            .scan_prefix::<Known>(b"k")?
            .into_iter()
            .filter(|(_, k)| !k.closed)
            .map(|(_, k)| (k.view.order.id, k))
            .collect();
        Ok(Self {
            name: name.to_owned(),
            rest,
            catalogue,
            rates,
            wallet,
            known,
            record,
            journal,
            owners,
            link: Link::Connecting,
        })
    }

    /// The products it trades.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The fee rates Coinbase charges this account (from `GET /fees`).
    pub fn rates(&self) -> FeeRates {
        self.rates
    }

    /// Balances, holds and per-bot reservations.
    pub fn wallet(&self) -> &Ledger {
        &self.wallet
    }

    /// Whether it is reachable.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// The REST client (for `--check-exchange` style reports).
    pub fn rest(&self) -> &RestClient {
        &self.rest
    }

    /// Orders of ours not yet reported done.
    pub fn open_orders(&self) -> Vec<OrderId> {
        self.known.keys().copied().collect()
    }

    fn save_wallet(&self) -> Result<(), StoreError> {
        self.record.put(WALLET, &self.wallet)?;
        self.journal.commit()
    }

    fn fail<T>(&mut self, e: RestError) -> Result<T, ExchangeError> {
        if matches!(e, RestError::Unavailable { .. } | RestError::Auth { .. }) {
            self.link = Link::Down(e.to_string());
        }
        Err(e.into())
    }

    /// Reads the clock, the product list, the fee rates and the balances:
    /// at start and after every reconnect.
    /// Returns the clock skew measured.
    pub async fn connect(&mut self) -> Result<super::http::timesync::Skew, ExchangeError> {
        let skew = match self.rest.sync_time().await {
            Ok(s) => s,
            Err(e) => return self.fail(e),
        };
        match self.rest.get::<Value>("/products", Class::Public).await {
            Ok(v) => match Catalogue::from_json(&v.to_string()) {
                Ok(c) if !c.is_empty() => self.catalogue = c,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(exchange = self.name, error = %e, "Coinbase product list unreadable; keeping the previous one");
                }
            },
            Err(e) => return self.fail(e),
        }
        match self.rest.get::<Value>("/fees", Class::Private).await {
            Ok(v) => {
                let rate = |f: &str| v[f].as_str().and_then(|s| s.parse::<Decimal>().ok());
                if let (Some(maker), Some(taker)) = (rate("maker_fee_rate"), rate("taker_fee_rate"))
                {
                    self.rates = FeeRates { maker, taker };
                }
            }
            Err(e) => return self.fail(e),
        }
        self.balances().await?;
        self.link = Link::Up;
        Ok(skew)
    }

    /// Replaces balances and holds with Coinbase's (`GET /accounts`),
    /// keeping virc's holds per order and the reservations.
    pub async fn balances(&mut self) -> Result<(), ExchangeError> {
        let accounts: Vec<Value> = match self.rest.get("/accounts", Class::Private).await {
            Ok(a) => a,
            Err(e) => return self.fail(e),
        };
        let mut balances = Vec::new();
        for a in &accounts {
            let d = |f: &str| a[f].as_str().and_then(|s| s.parse::<Decimal>().ok());
            // A currency virc cannot name is one no product of the
            // catalogue trades; it is left out (and said) rather than
            // failing the rest.
            let code = a["currency"].as_str().and_then(|c| {
                virc_core::ids::Currency::new(c)
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "Coinbase account left out of the wallet"),
                    )
                    .ok()
            });
            if let (Some(c), Some(balance), Some(hold)) = (code, d("balance"), d("hold")) {
                balances.push((c, virc_core::ledger::Balance { balance, hold }));
            }
        }
        let holds: Vec<_> = self
            .known
            .keys()
            .filter_map(|id| Some((*id, self.wallet.hold(*id)?.clone())))
            .collect();
        let reservations: Vec<_> = self.wallet.reservations().collect();
        let fees: Vec<_> = self
            .wallet
            .balances()
            .map(|(c, _)| (c, self.wallet.fees_paid(&c)))
            .collect();
        self.wallet = Ledger::restore(balances, holds, reservations, fees);
        self.save_wallet()?;
        Ok(())
    }

    /// Sets `amount` of `currency` aside for `bot`.
    pub fn reserve(
        &mut self,
        bot: BotId,
        currency: &str,
        amount: Decimal,
    ) -> Result<(), ExchangeError> {
        self.wallet
            .reserve(bot, currency, amount)
            .map_err(|e| ExchangeError::Rejected(Rejection::bad_request(e.to_string())))?;
        self.save_wallet()?;
        Ok(())
    }

    /// Returns a bot's reservations to the free pool.
    pub fn release(&mut self, bot: BotId) -> Result<(), ExchangeError> {
        self.wallet.release_reservations(bot);
        self.save_wallet()?;
        Ok(())
    }

    fn owner(&self, cid: Option<ClientOid>) -> Option<BotId> {
        cid.and_then(|c| self.owners.get::<BotId>(c.0.as_bytes()).ok().flatten())
    }

    fn view(&self, v: &Value) -> Result<OrderView, ExchangeError> {
        let order =
            wire::order_from_json(v).map_err(|e| ExchangeError::Unavailable(e.to_string()))?;
        Ok(OrderView {
            bot: self.owner(order.new.client_oid),
            order,
            reason: String::new(),
        })
    }

    /// Places an order: checked against the product and the bot's
    /// reservation first (the exchange's texts), then sent under its
    /// `client_oid`, looked up rather than re-sent when the answer is lost.
    pub async fn place(&mut self, req: &OrderRequest, bot: Option<BotId>) -> Reply<OrderView> {
        let (product, new) = validate(&self.catalogue, req)?;
        let product = product.clone();
        let (currency, amount) = self.wallet.hold_needed(&product, &new, self.rates, bot);
        let spendable = bot.map_or_else(
            || self.wallet.free(&currency),
            |b| self.wallet.reserved(b, &currency),
        );
        if amount > spendable {
            return Err(Rejection::bad_request(INSUFFICIENT_FUNDS).into());
        }
        let cid = req
            .client_oid
            .unwrap_or_else(|| ClientOid(uuid::Uuid::new_v4()));
        if let Some(b) = bot {
            // Durable before the request leaves: an order found after a
            // crash is attributed to its bot.
            self.owners.put(cid.0.as_bytes(), &b)?;
            self.owners.flush().await?;
        }
        let mut body = serde_json::to_value(OrderRequest {
            client_oid: Some(cid),
            ..req.clone()
        })
        .map_err(|e| ExchangeError::Unavailable(e.to_string()))?;
        if let Value::Object(m) = &mut body {
            m.retain(|_, v| !v.is_null());
        }
        let priority = if req.order_type.as_deref() == Some("market") {
            Priority::Protective
        } else {
            Priority::Normal
        };
        let answer = match self
            .rest
            .place_order(&body.to_string(), &cid.to_string(), priority)
            .await
        {
            Ok(v) => v,
            Err(e) => return self.fail(e),
        };
        self.link = Link::Up;
        let view = self.view(&answer)?;
        let id = view.order.id;
        if let Some(b) = bot {
            // Fills name the order, not its client id.
            self.owners.put(id.0.as_bytes(), &b)?;
        }
        self.adopt(&view);
        self.persist(id)?;
        Ok((
            view.clone(),
            vec![Update::Order {
                view,
                change: "received",
            }],
        ))
    }

    /// Writes the wallet and the order's record as one journal group, so
    /// a crash can never keep a settled fill without its trade id (which
    /// would settle it twice) or a hold without its order.
    fn persist(&self, id: OrderId) -> Result<(), StoreError> {
        self.record.put(WALLET, &self.wallet)?;
        if let Some(k) = self.known.get(&id) {
            self.record.put(&known_key(id), k)?;
        }
        self.journal.commit()
    }

    /// What virc knows of an order: open ones in memory, closed ones in the record.
    fn seen(&self, id: OrderId) -> Option<Known> {
        self.known
            .get(&id)
            .cloned()
            .or_else(|| self.record.get(&known_key(id)).ok().flatten())
    }

    fn is_closed(&self, id: OrderId) -> bool {
        !self.known.contains_key(&id) && self.seen(id).is_some_and(|k| k.closed)
    }

    /// Takes an order into virc's books the first time it is seen: its
    /// hold, from its bot's reservation, as the exchange took it. An order
    /// placed just before a crash is adopted when it is found again.
    fn adopt(&mut self, view: &OrderView) {
        let id = view.order.id;
        if self.known.contains_key(&id) || self.seen(id).is_some() {
            return;
        }
        if let Some(product) = self.catalogue.get(&view.order.product_id).cloned() {
            let (currency, amount) =
                self.wallet
                    .hold_needed(&product, &view.order.new, self.rates, view.bot);
            if let Err(e) = self.wallet.place_hold(id, currency, amount, view.bot) {
                tracing::warn!(exchange = self.name, order = %id, error = %e, "Cannot hold funds for an order found on Coinbase");
            }
        }
        self.known.insert(
            id,
            Known {
                view: view.clone(),
                trades: BTreeSet::new(),
                closed: false,
            },
        );
    }

    /// Releases a done order's hold and closes its record.
    fn close(&mut self, id: OrderId) -> Result<(), StoreError> {
        if self.wallet.hold(id).is_some() {
            let _ = self.wallet.release_hold(id);
        }
        let closed = self.known.remove(&id).map(|mut k| {
            k.closed = true;
            k
        });
        self.record.put(WALLET, &self.wallet)?;
        if let Some(k) = closed {
            self.record.put(&known_key(id), &k)?;
        }
        self.journal.commit()
    }

    fn path(target: Target) -> String {
        match target {
            Target::Id(id) => format!("/orders/{id}"),
            Target::Client(c) => format!("/orders/client:{c}"),
        }
    }

    /// Cancels an order (cancels go first in the rate limiter); an order
    /// already done is returned as it ended.
    pub async fn cancel(&mut self, target: Target) -> Reply<OrderView> {
        let sent = self
            .rest
            .send(
                Method::Delete,
                &Self::path(target),
                None,
                Class::Private,
                Priority::Protective,
            )
            .await;
        match sent {
            Ok(_) => {}
            // Not open any more (§8.3): learn how it ended below.
            Err(RestError::Rejected { message, .. } | RestError::NotFound { message })
                if message.contains("already done")
                    || message.contains(ORDER_NOT_FOUND)
                    || message == "NotFound" => {}
            Err(e) => return self.fail(e),
        }
        match self.refresh(target).await? {
            Some(r) => Ok(r),
            None => Err(Rejection::not_found(ORDER_NOT_FOUND).into()),
        }
    }

    /// Looks an order up on Coinbase.
    pub async fn order(&mut self, target: Target) -> Result<Option<OrderView>, ExchangeError> {
        match self
            .rest
            .get::<Value>(&Self::path(target), Class::Private)
            .await
        {
            Ok(v) => Ok(Some(self.view(&v)?)),
            Err(RestError::NotFound { .. }) => Ok(None),
            Err(e) => self.fail(e),
        }
    }

    /// The order as last reported, without asking Coinbase (for list views).
    pub fn cached(&self, target: Target) -> Option<OrderView> {
        match target {
            Target::Id(id) => self.known.get(&id),
            // Open orders are few; a client id is found by looking at each.
            Target::Client(c) => self.known.values().find(|k| k.view.client_oid() == Some(c)),
        }
        .map(|k| k.view.clone())
    }

    async fn fetch_fills(&mut self, order: OrderId) -> Result<Vec<Fill>, ExchangeError> {
        let items = match self
            .rest
            .get_all(&format!("/fills?order_id={order}"), Class::Fills, MAX_FILLS)
            .await
        {
            Ok(i) => i,
            Err(e) => return self.fail(e),
        };
        let mut fills = items
            .iter()
            .map(wire::fill_from_json)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ExchangeError::Unavailable(e.to_string()))?;
        fills.sort_by_key(|f| f.trade_id);
        Ok(fills)
    }

    fn fill_view(f: &Fill, client_oid: Option<ClientOid>, bot: Option<BotId>) -> FillView {
        FillView {
            trade_id: f.trade_id,
            order_id: f.order_id,
            client_oid,
            bot,
            product_id: f.product_id.clone(),
            side: f.side,
            price: f.price,
            size: f.size,
            fee: f.fee,
            liquidity: f.liquidity,
            time: f.time,
        }
    }

    /// Settles a fill seen for the first time; `false` if it was seen
    /// before (or its order is closed).
    fn absorb(&mut self, f: &Fill, view: &OrderView) -> bool {
        let Some(k) = self.known.get_mut(&f.order_id) else {
            return false;
        };
        if !k.trades.insert(f.trade_id) {
            return false;
        }
        if let Some(p) = self.catalogue.get(&f.product_id) {
            let p = p.clone();
            self.wallet
                .settle_fill(f.order_id, &p, f.side, f.price, f.size, f.fee, view.bot);
        }
        true
    }

    /// Every fill of an order, oldest first. Each is settled in the wallet
    /// the first time it is seen, whichever path saw it.
    pub async fn fills_of(&mut self, order: OrderId) -> Result<Vec<FillView>, ExchangeError> {
        if self.is_closed(order) {
            let fills = self.fetch_fills(order).await?;
            let view = self.seen(order).map(|k| k.view);
            let (cid, bot) = view.map_or((None, None), |v| (v.client_oid(), v.bot));
            return Ok(fills.iter().map(|f| Self::fill_view(f, cid, bot)).collect());
        }
        // Reconciliation: the order as it is now, so that a done one is
        // closed here (its hold's rest back to the bot) and not at the next
        // poll; read before its fills, so none can come after what is read.
        let Some(view) = self.order(Target::Id(order)).await? else {
            return Ok(Vec::new());
        };
        let fills = self.fetch_fills(order).await?;
        let out = fills
            .iter()
            .map(|f| Self::fill_view(f, view.client_oid(), view.bot))
            .collect();
        self.adopt(&view);
        for f in &fills {
            self.absorb(f, &view);
        }
        if let Some(k) = self.known.get_mut(&order) {
            k.view = view.clone();
        }
        if view.order.status.is_terminal() {
            self.close(order)?;
        } else {
            self.persist(order)?;
        }
        Ok(out)
    }

    /// Reads an order back and reports what changed since the last report:
    /// new fills (oldest first), then a status change. `None` when Coinbase
    /// does not know the order and neither does virc.
    pub async fn refresh(
        &mut self,
        target: Target,
    ) -> Result<Option<(OrderView, Vec<Update>)>, ExchangeError> {
        let before = self.cached(target);
        let view = match self.order(target).await? {
            Some(v) => v,
            // Purged: a cancel that never matched (§8.3).
            None => match &before {
                Some(b) => {
                    let mut v = b.clone();
                    v.order.status = OrderStatus::Done(DoneReason::Canceled(CancelReason::User));
                    v
                }
                None => return Ok(None),
            },
        };
        let id = view.order.id;
        let mut updates = Vec::new();
        if self.is_closed(id) {
            // Reported and settled to the end already.
            return Ok(Some((view, updates)));
        }
        self.adopt(&view);
        // Fills are read when the order traded since the last report, and
        // for an order seen for the first time (found after a restart).
        let traded = before
            .as_ref()
            .is_none_or(|b| b.order.filled_size != view.order.filled_size);
        if traded && !view.order.filled_size.is_zero() {
            for f in self.fetch_fills(id).await? {
                if self.absorb(&f, &view) {
                    updates.push(Update::Fill(Self::fill_view(
                        &f,
                        view.client_oid(),
                        view.bot,
                    )));
                }
            }
        }
        let status_changed = before
            .as_ref()
            .is_none_or(|b| b.order.status != view.order.status);
        if status_changed {
            let change = match view.order.status {
                OrderStatus::Open => "open",
                OrderStatus::Done(_) => "done",
                OrderStatus::Active => "activate",
                OrderStatus::Rejected => "rejected",
                OrderStatus::Pending => "received",
            };
            updates.push(Update::Order {
                view: view.clone(),
                change,
            });
        }
        if let Some(k) = self.known.get_mut(&id) {
            k.view = view.clone();
        }
        if view.order.status.is_terminal() {
            self.close(id)?;
        } else {
            self.persist(id)?;
        }
        self.link = Link::Up;
        Ok(Some((view, updates)))
    }

    /// Orders, newest first (`GET /orders?status=all`), at most `limit`.
    pub async fn orders(
        &mut self,
        product: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OrderView>, ExchangeError> {
        let path = match product {
            Some(p) => format!("/orders?status=all&product_id={p}"),
            None => "/orders?status=all".to_owned(),
        };
        let items = match self.rest.get_all(&path, Class::Private, limit).await {
            Ok(i) => i,
            Err(e) => return self.fail(e),
        };
        items.iter().map(|v| self.view(v)).collect()
    }

    /// Fills of a product, newest first, at most `limit`.
    pub async fn fills(
        &mut self,
        product: &str,
        limit: usize,
    ) -> Result<Vec<FillView>, ExchangeError> {
        let items = match self
            .rest
            .get_all(&format!("/fills?product_id={product}"), Class::Fills, limit)
            .await
        {
            Ok(i) => i,
            Err(e) => return self.fail(e),
        };
        let mut out = Vec::new();
        for v in &items {
            let f =
                wire::fill_from_json(v).map_err(|e| ExchangeError::Unavailable(e.to_string()))?;
            let (cid, bot) = self.seen(f.order_id).map_or_else(
                || {
                    let bot = self
                        .owners
                        .get::<BotId>(f.order_id.0.as_bytes())
                        .ok()
                        .flatten();
                    (None, bot)
                },
                |k| (k.view.client_oid(), k.view.bot),
            );
            out.push(Self::fill_view(&f, cid, bot));
        }
        Ok(out)
    }

    /// The connection's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Marks the venue unreachable (the feed lost its connection).
    pub fn set_down(&mut self, why: String) {
        self.link = Link::Down(why);
    }

    /// Whether `product` is traded here.
    pub fn trades(&self, product: &str) -> Result<(), ExchangeError> {
        self.catalogue
            .get(product)
            .map(|_| ())
            .ok_or_else(|| Rejection::not_found(PRODUCT_NOT_FOUND).into())
    }
}

impl Exchange for CoinbaseExchange {
    fn name(&self) -> &str {
        &self.name
    }

    fn shares_store(&self) -> bool {
        false
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
        CoinbaseExchange::reserve(self, bot, currency, amount)
    }

    fn release(&mut self, bot: BotId) -> Result<(), ExchangeError> {
        CoinbaseExchange::release(self, bot)
    }

    /// Coinbase stamps its own time; `now` is not sent.
    async fn place(
        &mut self,
        req: &OrderRequest,
        bot: Option<BotId>,
        _now: i64,
    ) -> Reply<OrderView> {
        CoinbaseExchange::place(self, req, bot).await
    }

    async fn cancel(&mut self, target: Target, _now: i64) -> Reply<OrderView> {
        CoinbaseExchange::cancel(self, target).await
    }

    async fn order(&mut self, target: Target) -> Result<Option<OrderView>, ExchangeError> {
        CoinbaseExchange::order(self, target).await
    }

    fn cached_order(&self, target: Target) -> Option<OrderView> {
        self.cached(target)
    }

    async fn fills_of(&mut self, order: OrderId) -> Result<Vec<FillView>, ExchangeError> {
        CoinbaseExchange::fills_of(self, order).await
    }
}
