//! The bot runtime: one actor that owns the exchanges and every bot, runs
//! the bots' state machines, and performs their commands.
//!
//! # Write ahead, then act
//! A bot's step returns commands; the bot's new state, which already holds
//! the order intent with its deterministic `client_oid`, is committed to
//! the store's journal (see `store::Journal`) before any order leaves, and
//! flushed to disk too when the order leaves the process (Coinbase). An
//! exchange's reply and its updates are fed back to the owning bot as
//! inputs, through one queue, in order.
//!
//! This departs from DESIGN.md's "flushed to sled" for the simulated
//! exchange only: its record is written through the same journal, whose
//! groups survive `kill -9` once committed and a power loss as one prefix,
//! so an fsync per paper order (milliseconds) would buy nothing.
//!
//! # Recover by asking
//! On start every unfinished bot is reconciled: its outstanding intent is
//! looked up by `client_oid`; found, it is adopted and the fills the bot has
//! not seen are applied (by cumulative size, so none twice); not found, it
//! is placed (under the same `client_oid`, so a second crash cannot double
//! it). Running bots come back running. Bots on a remote venue (Coinbase)
//! are reconciled when its `user` feed connects, and again after every
//! reconnect; its messages, and a periodic poll, make the venue read
//! orders back (`Runtime::on_venue`).
//!
//! # Why one actor
//! Bots, the exchanges' books and the event order must change together; an
//! actor makes every change a sequence with no locks, and is fast enough
//! (see BENCHMARKS.md) for the hundreds of bots one daemon serves. On
//! Coinbase the actor awaits each REST answer in turn, which keeps every
//! change in order: Coinbase's 15 private requests a second, not the
//! actor, bound how fast bots can act there.

mod convert;
mod create;

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::Arc,
};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use virc_core::{
    book::L2Book,
    bot::{BotInput, BotStatus, Command, Env, Machine, OrderIntent, OrderKind},
    ids::BotId,
    market::{Analyst, MarketView},
    order::{CancelReason, DoneReason, OrderRequest, OrderStatus, Side},
    rule::{Rule, Syntax},
};
use virc_proto::v1::{self as pb, event::Payload};

use crate::{
    api::ServiceError,
    clock::{Clock, to_timestamp},
    events::{Draft, EventsHandle},
    exchange::{
        Connector, Exchange, ExchangeError, OrderView, Target, Update,
        coinbase::{venue::Link, ws::user::Signal},
    },
    market::Input,
    store::{Records, Store},
};

pub use convert::{dec, side as wire_side};

/// `virc bot show` lists at most this many history lines (the event log has all).
const HISTORY: usize = 200;

/// The runtime's own view of one product's market, fed by the same inputs
/// as the market actor's. Rules read it as of the trade a bot reacts to,
/// so a replay at any speed decides exactly as live would have; sharing the
/// market actor's state instead would show bots a market running ahead.
#[derive(Debug, Default)]
struct Mirror {
    analyst: Analyst,
    book: L2Book,
}

impl Mirror {
    fn view(&self) -> MarketView<'_> {
        MarketView {
            analyst: &self.analyst,
            bid: self.book.best_bid().map(|(p, _)| p.get()),
            ask: self.book.best_ask().map(|(p, _)| p.get()),
        }
    }
}

/// One line of a bot's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Wall-clock time (ns).
    pub time: i64,
    /// What happened.
    pub description: String,
    /// Sequence number of the event that recorded it.
    pub seq: u64,
}

/// A bot as persisted: identity and its machine. Its history lines live in
/// their own tree, so that a step rewrites a small record, not the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotRecord {
    /// Id.
    pub id: BotId,
    /// Unique name.
    pub name: String,
    /// Exchange connection it trades on.
    pub exchange: String,
    /// Creation time (ns).
    pub created_at: i64,
    /// Last change (ns).
    pub updated_at: i64,
    /// Created with sell ≤ buy accepted.
    pub force: bool,
    /// The state machine, with its outstanding intent.
    pub machine: Machine,
    /// History lines written so far (the key of the next one).
    #[serde(default)]
    pub history_len: u64,
}

/// How much of a bot to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// For lists: no spec, current order or history (a list of 1,000 bots stays small).
    List,
    /// With its current order.
    One,
    /// With its current order and history.
    Full,
}

/// A control action on one bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Cancel its orders, then stop.
    Stop,
    /// Take no new step; orders stay.
    Pause,
    /// Continue.
    Resume,
    /// Forget a final bot.
    Delete,
}

type Answer<T> = oneshot::Sender<Result<T, ServiceError>>;

enum Request {
    Market(Input),
    Create(pb::CreateBotRequest, Answer<pb::CreateBotResponse>),
    Duplicate(pb::DuplicateBotRequest, Answer<pb::CreateBotResponse>),
    List(pb::ListBotsRequest, Answer<Vec<pb::Bot>>),
    Get(String, Answer<pb::Bot>),
    Control(String, Action, Answer<pb::Bot>),
    StopAll(Answer<Vec<pb::Bot>>),
    Place(pb::PlaceOrderRequest, Answer<pb::Order>),
    Cancel(String, Target, Answer<pb::Order>),
    GetOrder(String, Target, Answer<pb::Order>),
    ListOrders(pb::ListOrdersRequest, Answer<Vec<pb::Order>>),
    Balances(String, Answer<pb::BalancesResponse>),
    Fills(pb::FillsRequest, Answer<Vec<pb::Fill>>),
    Exchanges(oneshot::Sender<Vec<pb::ExchangeInfo>>),
    Counts(oneshot::Sender<BTreeMap<&'static str, u32>>),
    TickLatency(oneshot::Sender<TickLatency>),
    CheckRule(pb::CheckRuleRequest, Answer<pb::CheckRuleResponse>),
    Backfill(String, Vec<crate::recorder::Recorded>),
    Venue(String, Signal),
}

/// How many tick-to-command samples the runtime keeps.
const LATENCY_SAMPLES: usize = 10_000;

/// Recent tick-to-command latencies, from a market input arriving in the
/// runtime to an order it caused (the last 10,000 of each).
#[derive(Debug, Clone, Default)]
pub struct TickLatency {
    /// ... until the place command is handed to the bot's exchange: the
    /// intent is written ahead and the request leaves the runtime.
    pub sent: VecDeque<std::time::Duration>,
    /// ... until the exchange has accepted the order (for the simulated
    /// exchange: matched and recorded it).
    pub accepted: VecDeque<std::time::Duration>,
}

impl TickLatency {
    fn push(samples: &mut VecDeque<std::time::Duration>, d: std::time::Duration) {
        if samples.len() == LATENCY_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(d);
    }
}

/// The API's and the market's way into the runtime.
#[derive(Clone)]
pub struct RuntimeHandle {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for RuntimeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHandle").finish_non_exhaustive()
    }
}

macro_rules! ask {
    ($self:ident, $variant:ident $(, $arg:expr)*) => {{
        let (reply, rx) = oneshot::channel();
        $self
            .tx
            .send(Request::$variant($($arg,)* reply))
            .await
            .map_err(|_| ServiceError::ShuttingDown)?;
        rx.await.map_err(|_| ServiceError::ShuttingDown)?
    }};
}

impl RuntimeHandle {
    /// Feeds market data to the simulated exchanges.
    pub async fn market(&self, input: Input) {
        let _ = self.tx.send(Request::Market(input)).await;
    }

    /// Creates a bot.
    pub async fn create(
        &self,
        req: pb::CreateBotRequest,
    ) -> Result<pb::CreateBotResponse, ServiceError> {
        ask!(self, Create, req)
    }

    /// Duplicates a bot.
    pub async fn duplicate(
        &self,
        req: pb::DuplicateBotRequest,
    ) -> Result<pb::CreateBotResponse, ServiceError> {
        ask!(self, Duplicate, req)
    }

    /// Lists bots.
    pub async fn list(&self, req: pb::ListBotsRequest) -> Result<Vec<pb::Bot>, ServiceError> {
        ask!(self, List, req)
    }

    /// One bot with its history.
    pub async fn get(&self, bot: String) -> Result<pb::Bot, ServiceError> {
        ask!(self, Get, bot)
    }

    /// Stops, pauses, resumes or deletes a bot.
    pub async fn control(&self, bot: String, action: Action) -> Result<pb::Bot, ServiceError> {
        ask!(self, Control, bot, action)
    }

    /// Stops every running or paused bot.
    pub async fn stop_all(&self) -> Result<Vec<pb::Bot>, ServiceError> {
        ask!(self, StopAll)
    }

    /// Places a manual order.
    pub async fn place(&self, req: pb::PlaceOrderRequest) -> Result<pb::Order, ServiceError> {
        ask!(self, Place, req)
    }

    /// Cancels an order.
    pub async fn cancel(
        &self,
        exchange: String,
        target: Target,
    ) -> Result<pb::Order, ServiceError> {
        ask!(self, Cancel, exchange, target)
    }

    /// Gets an order.
    pub async fn order(&self, exchange: String, target: Target) -> Result<pb::Order, ServiceError> {
        ask!(self, GetOrder, exchange, target)
    }

    /// Lists orders.
    pub async fn orders(&self, req: pb::ListOrdersRequest) -> Result<Vec<pb::Order>, ServiceError> {
        ask!(self, ListOrders, req)
    }

    /// Balances of one exchange.
    pub async fn balances(&self, exchange: String) -> Result<pb::BalancesResponse, ServiceError> {
        ask!(self, Balances, exchange)
    }

    /// Fills.
    pub async fn fills(&self, req: pb::FillsRequest) -> Result<Vec<pb::Fill>, ServiceError> {
        ask!(self, Fills, req)
    }

    /// The exchange connections.
    pub async fn exchanges(&self) -> Vec<pb::ExchangeInfo> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request::Exchanges(reply)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Rebuilds the bots' view of a product from recorded trades (at start,
    /// before live input; the simulated exchanges do not see them).
    pub async fn backfill(&self, product: String, trades: Vec<crate::recorder::Recorded>) {
        let _ = self.tx.send(Request::Backfill(product, trades)).await;
    }

    /// Passes on what a remote venue's feed says (see [`Signal`]).
    pub async fn venue_signal(&self, exchange: String, signal: Signal) {
        let _ = self.tx.send(Request::Venue(exchange, signal)).await;
    }

    /// Evaluates a rule against the market as the bots see it.
    pub async fn check_rule(
        &self,
        req: pb::CheckRuleRequest,
    ) -> Result<pb::CheckRuleResponse, ServiceError> {
        ask!(self, CheckRule, req)
    }

    /// Recent tick-to-command latencies (see [`TickLatency`]).
    pub async fn tick_latency(&self) -> TickLatency {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request::TickLatency(reply)).await.is_err() {
            return TickLatency::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Number of bots per status name.
    pub async fn counts(&self) -> BTreeMap<&'static str, u32> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request::Counts(reply)).await.is_err() {
            return BTreeMap::new();
        }
        rx.await.unwrap_or_default()
    }
}

/// A configured exchange connection.
#[derive(Debug)]
pub struct Venue {
    /// The exchange.
    pub exchange: Connector,
    /// What it simulates on, for `virc exchanges`.
    pub endpoint: String,
}

/// The runtime actor.
pub struct Runtime {
    rx: mpsc::Receiver<Request>,
    venues: BTreeMap<String, Venue>,
    default_exchange: String,
    bots: BTreeMap<BotId, BotRecord>,
    names: BTreeMap<String, BotId>,
    /// By product, the bots that may want each of its trades (every kind
    /// but range): a trade visits these, not all bots, so its cost does not
    /// grow with the number of range bots.
    watchers: BTreeMap<String, BTreeSet<BotId>>,
    markets: BTreeMap<String, Mirror>,
    store: Store,
    records: Records,
    history: Records,
    events: EventsHandle,
    clock: Arc<dyn Clock>,
    /// When the market input being handled arrived, for tick-to-command figures.
    tick_started: Option<std::time::Instant>,
    tick_latency: TickLatency,
    /// The last `connection` event's state per remote venue.
    connection_states: BTreeMap<String, &'static str>,
    /// List views by bot, valid until the bot next changes (a lock only
    /// because the runtime's futures must be `Send`; it is never contended).
    list_views: std::sync::Mutex<std::collections::HashMap<BotId, pb::Bot>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("bots", &self.bots.len())
            .finish_non_exhaustive()
    }
}

/// Adds `rec` to the bots that see every trade of its product, if its kind may want them.
fn watch(watchers: &mut BTreeMap<String, BTreeSet<BotId>>, rec: &BotRecord) {
    if rec.machine.may_want_market() {
        watchers
            .entry(rec.machine.product_id().to_owned())
            .or_default()
            .insert(rec.id);
    }
}

/// What the runtime failed at while starting.
pub type StartError = crate::store::StoreError;

impl Runtime {
    /// Loads every bot from the store; [`Runtime::run`] reconciles them first.
    pub fn new(
        venues: BTreeMap<String, Venue>,
        default_exchange: String,
        store: Store,
        events: EventsHandle,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, RuntimeHandle), StartError> {
        // Through the journal: a bot's record is on its tick-to-order path,
        // and shares the journal's order with its exchange's records.
        let records = store.journaled("bots")?;
        let history = store.records("bot_history")?;
        let mut bots = BTreeMap::new();
        let mut names = BTreeMap::new();
        let mut watchers = BTreeMap::new();
        for (_, rec) in records.all::<BotRecord>()? {
            names.insert(rec.name.clone(), rec.id);
            watch(&mut watchers, &rec);
            bots.insert(rec.id, rec);
        }
        let (tx, rx) = mpsc::channel(1024);
        Ok((
            Self {
                rx,
                venues,
                default_exchange,
                bots,
                names,
                watchers,
                markets: BTreeMap::new(),
                store,
                records,
                history,
                events,
                clock,
                tick_started: None,
                tick_latency: TickLatency::default(),
                connection_states: BTreeMap::new(),
                list_views: std::sync::Mutex::default(),
            },
            RuntimeHandle { tx },
        ))
    }

    /// Reconciles every bot with its exchange, then serves requests until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let started = std::time::Instant::now();
        let n = self.reconcile_all().await;
        tracing::info!(
            bots = n,
            elapsed_ms = started.elapsed().as_millis(),
            "Bots reconciled"
        );
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                req = self.rx.recv() => match req {
                    // The journal's own thread copies writes into the trees.
                    Some(req) => self.handle(req).await,
                    None => break,
                },
            }
        }
        if let Err(e) = self.store.journal().settle() {
            tracing::error!(error = %e, "Cannot settle the journal at shutdown; it is replayed at the next start");
        }
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %e, "Cannot flush the bot store at shutdown");
        }
    }

    async fn handle(&mut self, req: Request) {
        match req {
            Request::Market(input) => self.on_market(input).await,
            Request::Create(req, reply) => {
                let _ = reply.send(self.create(req).await);
            }
            Request::Duplicate(req, reply) => {
                let r = self.duplicate(req).await;
                let _ = reply.send(r);
            }
            Request::List(req, reply) => {
                let _ = reply.send(Ok(self.list(&req)));
            }
            Request::Get(bot, reply) => {
                let r = self.find(&bot).map(|id| self.bot_view(id, View::Full));
                let _ = reply.send(r);
            }
            Request::Control(bot, action, reply) => {
                let r = self.control(&bot, action).await;
                let _ = reply.send(r);
            }
            Request::StopAll(reply) => {
                let ids = self.unfinished();
                let mut out = Vec::new();
                for id in ids {
                    if let Err(e) = self.drive(id, BotInput::Stop).await {
                        let _ = reply.send(Err(e));
                        return;
                    }
                    out.push(self.bot_view(id, View::One));
                }
                let r = self.store.flush().await.map(|()| out).map_err(Into::into);
                let _ = reply.send(r);
            }
            Request::Place(req, reply) => {
                let _ = reply.send(self.place_manual(req).await);
            }
            Request::Cancel(exchange, target, reply) => {
                let _ = reply.send(self.cancel_manual(&exchange, target).await);
            }
            Request::GetOrder(exchange, target, reply) => {
                let _ = reply.send(self.get_order(&exchange, target).await);
            }
            Request::ListOrders(req, reply) => {
                let _ = reply.send(self.list_orders(&req).await);
            }
            Request::Balances(exchange, reply) => {
                let _ = reply.send(self.balances(&exchange));
            }
            Request::Fills(req, reply) => {
                let _ = reply.send(self.fills(&req).await);
            }
            Request::Exchanges(reply) => {
                let out = self
                    .venues
                    .iter()
                    .map(|(name, v)| {
                        let (state, what) = match &v.exchange {
                            Connector::Sim(_) => ("up".to_owned(), "paper trading"),
                            Connector::Coinbase(x) => (
                                match x.link() {
                                    Link::Connecting => "connecting".to_owned(),
                                    Link::Up => "up".to_owned(),
                                    Link::Down(why) => format!("down: {why}"),
                                },
                                "live trading",
                            ),
                        };
                        pb::ExchangeInfo {
                            name: name.clone(),
                            kind: v.exchange.kind().into(),
                            endpoint: v.endpoint.clone(),
                            state,
                            detail: format!(
                                "{what}; fees maker {} / taker {}",
                                dec(v.exchange.rates().maker),
                                dec(v.exchange.rates().taker)
                            ),
                            is_default: *name == self.default_exchange,
                        }
                    })
                    .collect();
                let _ = reply.send(out);
            }
            Request::TickLatency(reply) => {
                let _ = reply.send(self.tick_latency.clone());
            }
            Request::Backfill(product, trades) => {
                let mirror = self.markets.entry(product).or_default();
                for (t, _) in &trades {
                    mirror.analyst.on_trade(t);
                }
            }
            Request::CheckRule(req, reply) => {
                let _ = reply.send(self.check_rule(&req));
            }
            Request::Venue(name, signal) => self.on_venue(&name, signal).await,
            Request::Counts(reply) => {
                let mut counts = BTreeMap::new();
                for b in self.bots.values() {
                    *counts.entry(b.machine.status().name()).or_insert(0) += 1;
                }
                let _ = reply.send(counts);
            }
        }
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The configured exchange called `name` (empty: the default).
    fn venue_name(&self, name: &str) -> Result<String, ServiceError> {
        let name = if name.is_empty() {
            &self.default_exchange
        } else {
            name
        };
        if self.venues.contains_key(name) {
            Ok(name.to_owned())
        } else {
            Err(ServiceError::NotFound(format!(
                "no exchange named `{name}`; configured: {} (see `virc exchanges`)",
                self.venues.keys().cloned().collect::<Vec<_>>().join(", ")
            )))
        }
    }

    /// A bot by id or name.
    fn find(&self, bot: &str) -> Result<BotId, ServiceError> {
        if let Some(id) = self.names.get(bot) {
            return Ok(*id);
        }
        if let Ok(id) = BotId::parse(bot)
            && self.bots.contains_key(&id)
        {
            return Ok(id);
        }
        Err(ServiceError::NotFound(format!(
            "no bot with id or name `{bot}` (see `virc bot list`)"
        )))
    }

    fn save(&self, id: BotId) -> Result<(), ServiceError> {
        self.forget_view(id);
        if let Some(rec) = self.bots.get(&id) {
            self.records.put(id.0.as_bytes(), rec)?;
            self.store.journal().commit()?;
        }
        Ok(())
    }

    async fn on_market(&mut self, input: Input) {
        self.tick_started = Some(std::time::Instant::now());
        self.on_market_inner(input).await;
        self.tick_started = None;
    }

    async fn on_market_inner(&mut self, input: Input) {
        let mirror = self.markets.entry(input.product().to_owned()).or_default();
        match &input {
            Input::Trade(_, t, _) => {
                mirror.analyst.on_trade(t);
            }
            Input::L2(_, changes) => {
                for (side, price, size) in changes {
                    mirror.book.apply(*side, *price, *size);
                }
            }
            Input::Snapshot(_, book) => mirror.book = book.clone(),
        }
        let mut all = Vec::new();
        for venue in self.venues.values_mut() {
            let Some(x) = venue.exchange.sim_mut() else {
                continue;
            };
            let r = match &input {
                Input::Trade(p, t, side) => x.on_trade(p, t, *side),
                Input::L2(p, changes) => x.on_l2(p, changes),
                Input::Snapshot(p, book) => x.on_snapshot(p, book.clone()),
            };
            match r {
                Ok(updates) => all.push((x.name().to_owned(), updates)),
                Err(e) => {
                    tracing::error!(error = %e, "Simulated exchange cannot record market effects");
                }
            }
        }
        for (name, updates) in all {
            if updates.is_empty() {
                continue;
            }
            let mut queue = VecDeque::new();
            self.route(&name, updates, &mut queue).await;
            if let Err(e) = self.run_queue(queue).await {
                tracing::error!(error = %e, "Bot step failed");
            }
        }
        // Then the bots that watch the market see the trade, after its fills.
        if let Input::Trade(product, t, _) = &input {
            let queue: VecDeque<_> = self
                .watchers
                .get(product.as_str())
                .into_iter()
                .flatten()
                .filter_map(|id| self.bots.get(id))
                .filter(|b| b.machine.status() == BotStatus::Running && b.machine.wants_market())
                .map(|b| (b.id, BotInput::Market { price: t.price }))
                .collect();
            if !queue.is_empty()
                && let Err(e) = self.run_queue(queue).await
            {
                tracing::error!(error = %e, "Bot step failed");
            }
        }
    }

    fn check_rule(
        &self,
        req: &pb::CheckRuleRequest,
    ) -> Result<pb::CheckRuleResponse, ServiceError> {
        let syntax = rule_syntax(req.syntax);
        let rule = Rule::parse(&req.rule, syntax)
            .map_err(|e| ServiceError::Invalid(format!("rule `{}`: {e}", req.rule)))?;
        let known = self
            .venues
            .values()
            .any(|v| v.exchange.catalogue().get(&req.product_id).is_some());
        if !known {
            return Err(ServiceError::NotFound(format!(
                "unknown product `{}`; `virc products` lists what the daemon trades",
                req.product_id
            )));
        }
        let mirror = self.markets.get(&req.product_id);
        let empty = Mirror::default();
        let view = mirror.unwrap_or(&empty).view();
        Ok(pb::CheckRuleResponse {
            value: rule.eval(&view) == Some(true),
            variables: rule.readings(&view).into_iter().collect(),
        })
    }

    /// The bot working on the order placed under `cid`: the runtime's own
    /// record, for a venue that lost the attribution (an order placed just
    /// before a crash).
    fn owner_of(&self, cid: Option<virc_core::ids::ClientOid>) -> Option<BotId> {
        let cid = cid?;
        self.bots
            .values()
            .find(|b| b.machine.working_for(cid).is_some())
            .map(|b| b.id)
    }

    /// Publishes order and fill events and queues the owning bots' inputs.
    async fn route(
        &mut self,
        exchange: &str,
        updates: Vec<Update>,
        queue: &mut VecDeque<(BotId, BotInput)>,
    ) {
        for u in updates {
            match u {
                Update::Order { view, change } => {
                    let bot = view.bot.or_else(|| self.owner_of(view.client_oid()));
                    let (cid, status) = (view.client_oid(), view.order.status);
                    let venue = exchange.to_owned();
                    self.events
                        .emit_with(move || Draft {
                            bot_id: bot.map(|b| b.to_string()).unwrap_or_default(),
                            product_id: view.order.product_id.clone(),
                            payload: Payload::Order(pb::OrderUpdate {
                                order: Some(convert::order(&view, &venue)),
                                change: change.into(),
                            }),
                        })
                        .await;
                    if let (Some(bot), Some(cid), OrderStatus::Done(reason)) = (bot, cid, status)
                        && change == "done"
                    {
                        queue.push_back((
                            bot,
                            BotInput::Done {
                                client_oid: cid,
                                reason,
                            },
                        ));
                    }
                }
                Update::Fill(mut f) => {
                    f.bot = f.bot.or_else(|| self.owner_of(f.client_oid));
                    if let (Some(bot), Some(cid)) = (f.bot, f.client_oid) {
                        queue.push_back((
                            bot,
                            BotInput::Fill {
                                client_oid: cid,
                                price: f.price,
                                size: f.size,
                                fee: f.fee,
                            },
                        ));
                    }
                    let venue = exchange.to_owned();
                    self.events
                        .emit_with(move || Draft {
                            bot_id: f.bot.map(|b| b.to_string()).unwrap_or_default(),
                            product_id: f.product_id.clone(),
                            payload: Payload::Fill(convert::fill(&f, &venue)),
                        })
                        .await;
                }
            }
        }
    }

    /// Steps one bot with one input, and everything that follows from it.
    async fn drive(&mut self, bot: BotId, input: BotInput) -> Result<(), ServiceError> {
        self.run_queue(VecDeque::from([(bot, input)])).await
    }

    async fn run_queue(
        &mut self,
        mut queue: VecDeque<(BotId, BotInput)>,
    ) -> Result<(), ServiceError> {
        while let Some((id, input)) = queue.pop_front() {
            let now = self.now();
            let Some(rec) = self.bots.get_mut(&id) else {
                continue;
            };
            let before = rec.machine.status();
            let commands = {
                let view = self.markets.get(rec.machine.product_id()).map(Mirror::view);
                let env = Env {
                    now,
                    market: view.as_ref().map(|v| v as &dyn virc_core::rule::Values),
                };
                rec.machine.step(input, &env)
            };
            rec.updated_at = now;
            if commands.is_empty() {
                // The next input is this bot's too (a fill, then its order's
                // `done`): one write after both. Nothing left the process in
                // between, and a crash before it is the crash after the
                // exchange recorded them, which reconciliation already heals.
                if queue.front().is_none_or(|(next, _)| *next != id) {
                    self.save(id)?;
                }
                continue;
            }
            self.save(id)?;
            // Write ahead: the intents are durable before anything leaves the
            // process. A venue keeping its record in our store needs no flush:
            // it writes through the same journal, which recovers a prefix of
            // its groups, so after a crash its record never runs ahead of the
            // intents committed before it.
            let leaves = commands
                .iter()
                .any(|c| matches!(c, Command::Place(_) | Command::Cancel(_)))
                && self
                    .bots
                    .get(&id)
                    .and_then(|b| self.venues.get(&b.exchange))
                    .is_some_and(|v| !v.exchange.shares_store());
            if leaves {
                self.store.flush().await?;
            }
            let mut status_from = before;
            // Act first, then tell: orders leave before the history lines and
            // status events are written (the intent is already recorded), so
            // the event bus round trip is not on the tick-to-order path.
            let mut commands = commands;
            commands.sort_by_key(|c| !matches!(c, Command::Place(_) | Command::Cancel(_)));
            for cmd in commands {
                self.perform(id, cmd, &mut status_from, &mut queue).await?;
            }
        }
        Ok(())
    }

    async fn perform(
        &mut self,
        id: BotId,
        cmd: Command,
        status_from: &mut BotStatus,
        queue: &mut VecDeque<(BotId, BotInput)>,
    ) -> Result<(), ServiceError> {
        let Some(rec) = self.bots.get(&id) else {
            return Ok(());
        };
        let exchange = rec.exchange.clone();
        let product = rec.machine.product_id().to_owned();
        let now = self.now();
        match cmd {
            Command::Place(intent) => {
                let req = order_request(&intent, product);
                let Some(venue) = self.venues.get_mut(&exchange) else {
                    tracing::error!(bot = %id, exchange, "The bot's exchange is not configured any more; it waits");
                    return Ok(());
                };
                if let Some(t0) = self.tick_started {
                    TickLatency::push(&mut self.tick_latency.sent, t0.elapsed());
                }
                match venue.exchange.place(&req, Some(id), now).await {
                    Ok((view, updates)) => {
                        if let Some(t0) = self.tick_started {
                            TickLatency::push(&mut self.tick_latency.accepted, t0.elapsed());
                        }
                        queue.push_back((
                            id,
                            BotInput::Accepted {
                                client_oid: intent.client_oid,
                                order_id: view.order.id,
                            },
                        ));
                        self.route(&exchange, updates, queue).await;
                    }
                    Err(ExchangeError::Rejected(r)) => {
                        queue.push_back((
                            id,
                            BotInput::Rejected {
                                client_oid: intent.client_oid,
                                reason: r.message,
                            },
                        ));
                    }
                    Err(e @ ExchangeError::Unavailable(_)) => {
                        // The intent stays outstanding; reconciliation places it later.
                        tracing::error!(bot = %id, error = %e, "Cannot place a bot's order now");
                    }
                }
            }
            Command::Cancel(cid) => {
                let Some(venue) = self.venues.get_mut(&exchange) else {
                    tracing::error!(bot = %id, exchange, "The bot's exchange is not configured any more; it waits");
                    return Ok(());
                };
                match venue.exchange.cancel(Target::Client(cid), now).await {
                    Ok((view, updates)) => {
                        let caught_up = updates.is_empty();
                        self.route(&exchange, updates, queue).await;
                        if caught_up {
                            // Already done before our cancel: tell the bot what it missed.
                            self.catch_up(id, &view, queue).await;
                        }
                    }
                    Err(ExchangeError::Rejected(r)) if r.status == 404 => {
                        // The intent never reached the exchange: nothing to cancel.
                        queue.push_back((
                            id,
                            BotInput::Done {
                                client_oid: cid,
                                reason: DoneReason::Canceled(CancelReason::User),
                            },
                        ));
                    }
                    Err(e) => {
                        tracing::error!(bot = %id, error = %e, "Cannot cancel a bot's order now");
                    }
                }
            }
            Command::Status { status, reason } => {
                let from = std::mem::replace(status_from, status);
                if status.is_final() {
                    self.hand_over(id, &exchange, queue)?;
                }
                self.events
                    .emit(Draft {
                        bot_id: id.to_string(),
                        product_id: product,
                        payload: Payload::BotStatus(pb::BotStatusChanged {
                            from: wire_status(from),
                            to: wire_status(status),
                            reason: reason.clone(),
                        }),
                    })
                    .await;
                self.note(
                    id,
                    format!("{} → {}: {reason}", from.name(), status.name()),
                    false,
                )
                .await?;
            }
            Command::Note(text) => self.note(id, text, true).await?,
            Command::Fired { text, values } => {
                self.note_with(id, text, values.into_iter().collect(), true)
                    .await?;
            }
            Command::StopBot(target) => self.stop_guarded(id, target, queue).await?,
            Command::StopProduct => self.stop_product(id, queue).await?,
        }
        Ok(())
    }

    /// A stop-loss stops the bot it guards; the guard hears back when it has stopped.
    async fn stop_guarded(
        &mut self,
        guard: BotId,
        target: BotId,
        queue: &mut VecDeque<(BotId, BotInput)>,
    ) -> Result<(), ServiceError> {
        let guard_name = self
            .bots
            .get(&guard)
            .map(|b| b.name.clone())
            .unwrap_or_default();
        match self.bots.get(&target).map(|b| b.machine.status()) {
            Some(s) if !s.is_final() => {
                self.note(
                    target,
                    format!("stop-loss bot {guard_name} triggered: stopping"),
                    true,
                )
                .await?;
                queue.push_back((target, BotInput::Stop));
            }
            // Gone or already final: it holds nothing any more.
            _ => queue.push_back((
                guard,
                BotInput::GuardStopped {
                    holdings: rust_decimal::Decimal::ZERO,
                },
            )),
        }
        Ok(())
    }

    /// A stop-loss guarding its product: every other bot on the product
    /// and exchange is stopped, the manual resting sells above the market
    /// are canceled, then the guard hears back.
    async fn stop_product(
        &mut self,
        guard: BotId,
        queue: &mut VecDeque<(BotId, BotInput)>,
    ) -> Result<(), ServiceError> {
        let Some(rec) = self.bots.get(&guard) else {
            return Ok(());
        };
        let (exchange, product, name) = (
            rec.exchange.clone(),
            rec.machine.product_id().to_owned(),
            rec.name.clone(),
        );
        let others: Vec<BotId> = self
            .bots
            .values()
            .filter(|b| {
                b.id != guard
                    && b.exchange == exchange
                    && b.machine.product_id() == product
                    && !b.machine.status().is_final()
                    && b.machine.kind() != "stop-loss"
            })
            .map(|b| b.id)
            .collect();
        for other in &others {
            self.note(
                *other,
                format!("stop-loss bot {name} triggered: stopping"),
                true,
            )
            .await?;
            queue.push_back((*other, BotInput::Stop));
        }
        let last = self
            .markets
            .get(&product)
            .and_then(|m| m.analyst.last())
            .map(|t| t.price);
        let now = self.now();
        let mut canceled = 0;
        if let Some(v) = self.venues.get_mut(&exchange) {
            let manual: Vec<_> = v
                .exchange
                .live_orders()
                .into_iter()
                .filter(|o| {
                    o.bot.is_none()
                        && o.order.product_id == product
                        && o.order.new.side == Side::Sell
                        && matches!(
                            (o.order.new.kind, last),
                            (virc_core::order::OrderKind::Limit { price, .. }, Some(l)) if price > l
                        )
                })
                .map(|o| o.order.id)
                .collect();
            let mut all = Vec::new();
            for order in manual {
                match v.exchange.cancel(Target::Id(order), now).await {
                    Ok((_, updates)) => {
                        canceled += 1;
                        all.extend(updates);
                    }
                    Err(e) => {
                        tracing::error!(order = %order, error = %e, "Cannot cancel a manual sell for a stop-loss");
                    }
                }
            }
            self.route(&exchange, all, queue).await;
        }
        self.note(
            guard,
            format!(
                "guarding {product}: stopping {} other bot(s), canceled {canceled} manual sell(s)",
                others.len()
            ),
            true,
        )
        .await?;
        queue.push_back((
            guard,
            BotInput::GuardStopped {
                holdings: rust_decimal::Decimal::ZERO,
            },
        ));
        Ok(())
    }

    /// When a bot is final: its reservations go back, except the base it
    /// holds, which passes to a stop-loss waiting on it.
    fn hand_over(
        &mut self,
        id: BotId,
        exchange: &str,
        queue: &mut VecDeque<(BotId, BotInput)>,
    ) -> Result<(), ServiceError> {
        let guard = self.bots.values().find_map(|b| match &b.machine {
            Machine::StopLoss(s)
                if s.params().guard == Some(id)
                    && s.phase() == virc_core::bot::stop_loss::Phase::Guarding =>
            {
                Some((b.id, s.params().base.clone()))
            }
            _ => None,
        });
        let Some(v) = self.venues.get_mut(exchange) else {
            return Ok(());
        };
        let held = guard
            .as_ref()
            .map(|(_, base)| v.exchange.wallet().reserved(id, base))
            .unwrap_or_default();
        v.exchange.release(id)?;
        if let Some((guard, base)) = guard {
            if !held.is_zero() {
                v.exchange
                    .reserve(guard, &base, held)
                    .map_err(|e| ServiceError::Internal(format!("handing holdings over: {e}")))?;
            }
            queue.push_back((guard, BotInput::GuardStopped { holdings: held }));
        }
        Ok(())
    }

    /// Records a history line (and, with `event`, a `bot_step` event).
    async fn note(&mut self, id: BotId, text: String, event: bool) -> Result<(), ServiceError> {
        self.note_with(id, text, std::collections::HashMap::default(), event)
            .await
    }

    /// Records a history line with the values behind it (a rule that fired).
    async fn note_with(
        &mut self,
        id: BotId,
        text: String,
        values: std::collections::HashMap<String, String>,
        event: bool,
    ) -> Result<(), ServiceError> {
        let product = self
            .bots
            .get(&id)
            .map(|b| b.machine.product_id().to_owned())
            .unwrap_or_default();
        let seq = if event {
            self.events
                .stamp(Draft {
                    bot_id: id.to_string(),
                    product_id: product,
                    payload: Payload::BotStep(pb::BotStep {
                        description: text.clone(),
                        values: values.clone(),
                    }),
                })
                .await
                .unwrap_or(0)
        } else {
            self.events.bounds().await.map_or(0, |(_, head)| head)
        };
        let now = self.now();
        let description = if values.is_empty() {
            text
        } else {
            let mut v: Vec<_> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            v.sort();
            format!("{text} ({})", v.join(", "))
        };
        if let Some(rec) = self.bots.get_mut(&id) {
            rec.history_len += 1;
            let key = [id.0.as_bytes().as_slice(), &rec.history_len.to_be_bytes()].concat();
            self.history.put(
                &key,
                &HistoryEntry {
                    time: now,
                    description,
                    seq,
                },
            )?;
        }
        self.save(id)
    }

    /// Queues the inputs a bot missed about `view`: acceptance, unseen fills, done.
    async fn catch_up(
        &mut self,
        id: BotId,
        view: &OrderView,
        queue: &mut VecDeque<(BotId, BotInput)>,
    ) {
        let (Some(rec), Some(cid)) = (self.bots.get(&id), view.client_oid()) else {
            return;
        };
        let Some(w) = rec.machine.working_for(cid) else {
            return;
        };
        if w.order_id.is_none() {
            queue.push_back((
                id,
                BotInput::Accepted {
                    client_oid: cid,
                    order_id: view.order.id,
                },
            ));
        }
        let (filled, exchange) = (w.filled, rec.exchange.clone());
        let fills = match self.venues.get_mut(&exchange) {
            Some(v) => v
                .exchange
                .fills_of(view.order.id)
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(bot = %id, error = %e, "Cannot read fills to reconcile");
                    Vec::new()
                }),
            None => Vec::new(),
        };
        let mut seen = rust_decimal::Decimal::ZERO;
        for f in fills {
            seen += f.size.get();
            if seen > filled {
                queue.push_back((
                    id,
                    BotInput::Fill {
                        client_oid: cid,
                        price: f.price,
                        size: f.size,
                        fee: f.fee,
                    },
                ));
            }
        }
        if let OrderStatus::Done(reason) = view.order.status {
            queue.push_back((
                id,
                BotInput::Done {
                    client_oid: cid,
                    reason,
                },
            ));
        }
    }

    /// Bots that are running or paused.
    fn unfinished(&self) -> Vec<BotId> {
        self.bots
            .values()
            .filter(|b| !b.machine.status().is_final())
            .map(|b| b.id)
            .collect()
    }

    /// What a remote venue's feed says: reconcile after a (re)connect, read
    /// an order back when a message names it, read everything back on a poll.
    async fn on_venue(&mut self, name: &str, signal: Signal) {
        let Some(Connector::Coinbase(x)) = self.venues.get_mut(name).map(|v| &mut v.exchange)
        else {
            return;
        };
        let mut news = Vec::new();
        let targets: Vec<virc_core::ids::OrderId> = match &signal {
            Signal::Lost(why) => {
                x.set_down(why.clone());
                tracing::warn!(exchange = name, reason = %why, "Coinbase connection down");
                self.connection_event(name, "down", why).await;
                return;
            }
            Signal::Connected => {
                match x.connect().await {
                    Ok(skew) => {
                        news.push(("up", String::new()));
                        if skew.is_large() {
                            news.push((
                                "skew",
                                format!(
                                    "Coinbase's clock is {} ms from ours; virc signs with the corrected time, but check the system clock (NTP)",
                                    skew.offset_ns / 1_000_000
                                ),
                            ));
                        }
                    }
                    Err(e) => {
                        tracing::error!(exchange = name, error = %e, "Cannot read Coinbase balances and fees");
                        news.push(("down", e.to_string()));
                    }
                }
                x.open_orders()
            }
            Signal::Poll => {
                if let Err(e) = x.balances().await {
                    tracing::warn!(exchange = name, error = %e, "Cannot read Coinbase balances");
                }
                x.open_orders()
            }
            // Only orders of ours are read back; a match names the other side too.
            Signal::Order(id) if x.cached(Target::Id(*id)).is_some() => vec![*id],
            Signal::Order(_) => return,
        };
        let mut updates = Vec::new();
        for id in targets {
            match x.refresh(Target::Id(id)).await {
                Ok(Some((_, u))) => updates.extend(u),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(exchange = name, order = %id, error = %e, "Cannot read an order back from Coinbase");
                }
            }
        }
        for (state, detail) in news {
            if state == "skew" {
                self.events
                    .emit(Draft::new(Payload::Warning(pb::Warning {
                        source: format!("exchange.{name}"),
                        message: detail,
                    })))
                    .await;
            } else {
                self.connection_event(name, state, &detail).await;
            }
        }
        let mut queue = VecDeque::new();
        self.route(name, updates, &mut queue).await;
        if let Err(e) = self.run_queue(queue).await {
            tracing::error!(error = %e, "Bot step failed");
        }
        if signal == Signal::Connected {
            let ids: Vec<BotId> = self
                .unfinished()
                .into_iter()
                .filter(|id| self.bots.get(id).is_some_and(|b| b.exchange == name))
                .collect();
            for id in ids {
                if let Err(e) = self.reconcile(id).await {
                    tracing::error!(bot = %id, error = %e, "Cannot reconcile bot");
                }
            }
        }
    }

    /// A `connection` event when an exchange connection's state changed
    /// (a reconnect loop that keeps failing says "down" once).
    async fn connection_event(&mut self, exchange: &str, state: &'static str, detail: &str) {
        if self.connection_states.insert(exchange.to_owned(), state) == Some(state) {
            return;
        }
        self.events
            .emit(Draft::new(Payload::Connection(pb::ConnectionChanged {
                exchange: exchange.to_owned(),
                state: state.to_owned(),
                detail: detail.to_owned(),
            })))
            .await;
    }

    /// Reconciles every unfinished bot on a local venue; returns how many.
    /// Bots on a remote venue reconcile when its feed connects.
    async fn reconcile_all(&mut self) -> usize {
        let ids: Vec<BotId> = self
            .unfinished()
            .into_iter()
            .filter(|id| {
                self.bots
                    .get(id)
                    .and_then(|b| self.venues.get(&b.exchange))
                    .is_none_or(|v| v.exchange.shares_store())
            })
            .collect();
        for id in &ids {
            if let Err(e) = self.reconcile(*id).await {
                tracing::error!(bot = %id, error = %e, "Cannot reconcile bot");
            }
        }
        ids.len()
    }

    async fn reconcile(&mut self, id: BotId) -> Result<(), ServiceError> {
        let Some(rec) = self.bots.get(&id) else {
            return Ok(());
        };
        let mut queue = VecDeque::new();
        let working: Vec<_> = rec.machine.working().into_iter().cloned().collect();
        let exchange = rec.exchange.clone();
        for w in working {
            let found = match self.venues.get_mut(&exchange) {
                Some(v) => {
                    v.exchange
                        .order(Target::Client(w.intent.client_oid))
                        .await?
                }
                None => None,
            };
            match found {
                // Its cancel was decided, maybe never sent: send it (again).
                Some(view) if w.cancel_requested && !view.order.status.is_terminal() => {
                    self.catch_up(id, &view, &mut queue).await;
                    let mut status = self.bots[&id].machine.status();
                    self.perform(
                        id,
                        Command::Cancel(w.intent.client_oid),
                        &mut status,
                        &mut queue,
                    )
                    .await?;
                }
                Some(view) => self.catch_up(id, &view, &mut queue).await,
                None if w.cancel_requested => queue.push_back((
                    id,
                    BotInput::Done {
                        client_oid: w.intent.client_oid,
                        reason: DoneReason::Canceled(CancelReason::User),
                    },
                )),
                None => {
                    // Written ahead but never sent: send it now, under the same id.
                    let mut status = self.bots[&id].machine.status();
                    self.note(
                        id,
                        format!(
                            "restart: placing the order it had decided on ({})",
                            w.intent.client_oid
                        ),
                        true,
                    )
                    .await?;
                    self.perform(id, Command::Place(w.intent), &mut status, &mut queue)
                        .await?;
                }
            }
        }
        // Then the bot itself picks up where it was (a first order, owed orders, an exit).
        queue.push_back((id, BotInput::Started));
        self.run_queue(queue).await
    }

    async fn control(&mut self, bot: &str, action: Action) -> Result<pb::Bot, ServiceError> {
        let id = self.find(bot)?;
        let status = self.bots[&id].machine.status();
        let name = self.bots[&id].name.clone();
        match action {
            Action::Stop | Action::Pause if status.is_final() => {
                return Err(ServiceError::Refused(format!(
                    "bot {name} is already {}",
                    status.name()
                )));
            }
            Action::Resume if status != BotStatus::Paused => {
                return Err(ServiceError::Refused(format!(
                    "bot {name} is {}, not paused; only a paused bot can be resumed",
                    status.name()
                )));
            }
            Action::Delete if !status.is_final() => {
                return Err(ServiceError::Refused(format!(
                    "bot {name} is {}; stop it first (`virc bot stop {name}`), then delete it",
                    status.name()
                )));
            }
            Action::Delete => {
                let view = self.bot_view(id, View::One);
                self.records.remove(id.0.as_bytes())?;
                self.store.journal().commit()?;
                self.forget_view(id);
                self.history.remove_prefix(id.0.as_bytes())?;
                self.store.flush().await?;
                let rec = self.bots.remove(&id);
                self.names.remove(&name);
                if let Some(r) = &rec
                    && let Some(set) = self.watchers.get_mut(r.machine.product_id())
                {
                    set.remove(&id);
                }
                self.events
                    .emit(Draft {
                        bot_id: id.to_string(),
                        product_id: rec
                            .map(|r| r.machine.product_id().to_owned())
                            .unwrap_or_default(),
                        payload: Payload::BotDeleted(pb::BotDeleted { name }),
                    })
                    .await;
                return Ok(view);
            }
            _ => {}
        }
        let input = match action {
            Action::Stop => BotInput::Stop,
            Action::Pause => BotInput::Pause,
            Action::Resume | Action::Delete => BotInput::Resume,
        };
        self.drive(id, input).await?;
        // The user is told only what will survive a crash.
        self.store.flush().await?;
        Ok(self.bot_view(id, View::One))
    }

    /// Drops a bot's cached list view; every change to a bot goes through
    /// [`Self::save`], which calls this.
    fn forget_view(&self, id: BotId) {
        if let Ok(mut cache) = self.list_views.lock() {
            cache.remove(&id);
        }
    }

    fn list(&self, req: &pb::ListBotsRequest) -> Vec<pb::Bot> {
        let mut out: Vec<&BotRecord> = self
            .bots
            .values()
            .filter(|b| req.product_id.is_empty() || b.machine.product_id() == req.product_id)
            .filter(|b| {
                req.statuses.is_empty() || req.statuses.contains(&wire_status(b.machine.status()))
            })
            .collect();
        out.sort_by_key(|b| (b.created_at, b.id));
        // Views are cached between changes: listing 1,000 bots then costs a
        // clone each, not their figures recomputed.
        let Ok(mut cache) = self.list_views.lock() else {
            return out
                .into_iter()
                .map(|b| self.bot_view(b.id, View::List))
                .collect();
        };
        out.into_iter()
            .map(|b| {
                cache
                    .entry(b.id)
                    .or_insert_with(|| self.bot_view(b.id, View::List))
                    .clone()
            })
            .collect()
    }

    fn bot_view(&self, id: BotId, view: View) -> pb::Bot {
        let Some(rec) = self.bots.get(&id) else {
            return pb::Bot::default();
        };
        let venue = self.venues.get(&rec.exchange);
        let m = &rec.machine;
        let working = m.working();
        let current_order = working
            .first()
            .filter(|_| view != View::List)
            .and_then(|w| {
                let x = &venue?.exchange;
                // By id when known: open orders are in memory, not in the store.
                let target = w
                    .order_id
                    .map_or(Target::Client(w.intent.client_oid), Target::Id);
                x.cached_order(target)
                    .map(|o| convert::order(&o, &rec.exchange))
            });
        let theo = venue.and_then(|v| m.theoretical_cycle_profit(v.exchange.rates()));
        let quote = m.quote();
        // What is set aside for the bot in quote: its free reservation plus
        // what its open orders hold.
        let reserved = venue
            .map(|v| {
                let w = v.exchange.wallet();
                let held: rust_decimal::Decimal = working
                    .iter()
                    .filter_map(|wk| wk.order_id)
                    .filter_map(|o| w.hold(o))
                    .filter(|h| h.currency == quote)
                    .map(|h| h.amount)
                    .sum();
                w.reserved(id, quote) + held
            })
            .unwrap_or_default();
        let a = m.account();
        pb::Bot {
            id: id.to_string(),
            name: rec.name.clone(),
            spec: (view != View::List).then(|| create::spec_of(rec)),
            status: wire_status(m.status()),
            status_reason: m.reason().to_owned(),
            exchange: rec.exchange.clone(),
            product_id: m.product_id().to_owned(),
            current_step: m.describe_step(),
            current_order,
            pnl: Some(pb::BotPnl {
                currency: quote.to_owned(),
                reserved: dec(reserved),
                fees_paid: dec(a.fees_paid),
                realized_profit: dec(a.realized),
                theoretical_cycle_profit: theo.map(|t| dec(t.0)).unwrap_or_default(),
                theoretical_cycle_profit_pct: theo.map(|t| dec(t.1)).unwrap_or_default(),
                cycles: a.cycles,
            }),
            created_at: Some(to_timestamp(rec.created_at)),
            updated_at: Some(to_timestamp(rec.updated_at)),
            history: if view == View::Full {
                self.history
                    .scan_prefix_rev::<HistoryEntry>(id.0.as_bytes(), HISTORY)
                    .unwrap_or_else(|e| {
                        tracing::error!(bot = %id, error = %e, "Cannot read bot history");
                        Vec::new()
                    })
                    .iter()
                    .map(|h| pb::BotHistoryEntry {
                        time: Some(to_timestamp(h.time)),
                        description: h.description.clone(),
                        seq: h.seq,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            kind: rec.machine.kind().into(),
        }
    }

    async fn place_manual(
        &mut self,
        req: pb::PlaceOrderRequest,
    ) -> Result<pb::Order, ServiceError> {
        let name = self.venue_name(&req.exchange)?;
        let order = convert::place_request(&req)?;
        let now = self.now();
        let venue = self
            .venues
            .get_mut(&name)
            .ok_or_else(|| ServiceError::NotFound(name.clone()))?;
        let (view, updates) = venue.exchange.place(&order, None, now).await?;
        self.store.flush().await?;
        let mut queue = VecDeque::new();
        self.route(&name, updates, &mut queue).await;
        self.run_queue(queue).await?;
        // The order as it is after its immediate effects.
        let view = self
            .venues
            .get(&name)
            .and_then(|v| v.exchange.cached_order(Target::Id(view.order.id)))
            .unwrap_or(view);
        Ok(convert::order(&view, &name))
    }

    async fn cancel_manual(
        &mut self,
        exchange: &str,
        target: Target,
    ) -> Result<pb::Order, ServiceError> {
        let name = self.venue_name(exchange)?;
        let now = self.now();
        let venue = self
            .venues
            .get_mut(&name)
            .ok_or_else(|| ServiceError::NotFound(name.clone()))?;
        let (view, updates) = venue
            .exchange
            .cancel(target, now)
            .await
            .map_err(|e| match e {
                ExchangeError::Rejected(r) if r.status == 404 => ServiceError::NotFound(format!(
                    "no order {} on exchange {name} ({})",
                    target_text(target),
                    r.message
                )),
                e => e.into(),
            })?;
        self.store.flush().await?;
        let mut queue = VecDeque::new();
        // A bot's order canceled here is "canceled outside" the bot: it fails, as it would live.
        self.route(&name, updates, &mut queue).await;
        self.run_queue(queue).await?;
        Ok(convert::order(&view, &name))
    }

    /// A list request's limit (0 means 100) and its bot filter (id or name).
    fn limit_and_bot(&self, limit: u32, bot: &str) -> Result<(usize, Option<BotId>), ServiceError> {
        let limit = if limit == 0 { 100 } else { limit as usize };
        let bot = if bot.is_empty() {
            None
        } else {
            Some(self.find(bot)?)
        };
        Ok((limit, bot))
    }

    async fn get_order(
        &mut self,
        exchange: &str,
        target: Target,
    ) -> Result<pb::Order, ServiceError> {
        let name = self.venue_name(exchange)?;
        let found = match self.venues.get_mut(&name) {
            Some(v) => v.exchange.order(target).await?,
            None => None,
        };
        found.map(|o| convert::order(&o, &name)).ok_or_else(|| {
            ServiceError::NotFound(format!(
                "no order {} on exchange {name}",
                target_text(target)
            ))
        })
    }

    async fn list_orders(
        &mut self,
        req: &pb::ListOrdersRequest,
    ) -> Result<Vec<pb::Order>, ServiceError> {
        let (limit, bot) = self.limit_and_bot(req.limit, &req.bot_id)?;
        let mut out = Vec::new();
        let product = (!req.product_id.is_empty()).then_some(req.product_id.as_str());
        for (name, v) in &mut self.venues {
            if !req.exchange.is_empty() && req.exchange != *name {
                continue;
            }
            let found = v
                .exchange
                .orders(
                    |o| {
                        (req.product_id.is_empty() || o.order.product_id == req.product_id)
                            && bot.is_none_or(|b| o.bot == Some(b))
                            && convert::status_matches(&req.statuses, o.order.status)
                    },
                    product,
                    limit,
                )
                .await?;
            out.extend(found.iter().map(|o| convert::order(o, name)));
        }
        if !req.exchange.is_empty() && !self.venues.contains_key(&req.exchange) {
            self.venue_name(&req.exchange)?;
        }
        out.sort_by(|a, b| {
            let t = |o: &pb::Order| o.created_at.map(|t| (t.seconds, t.nanos));
            t(b).cmp(&t(a))
        });
        out.truncate(limit);
        Ok(out)
    }

    fn balances(&self, exchange: &str) -> Result<pb::BalancesResponse, ServiceError> {
        let name = self.venue_name(exchange)?;
        let w = self.venues[&name].exchange.wallet();
        Ok(pb::BalancesResponse {
            exchange: name.clone(),
            balances: w
                .balances()
                .map(|(c, b)| pb::Balance {
                    currency: c.to_string(),
                    balance: dec(b.balance),
                    hold: dec(b.hold),
                    available: dec(b.available()),
                })
                .collect(),
            reservations: w
                .reservations()
                .filter(|(_, _, a)| !a.is_zero())
                .map(|(bot, c, a)| pb::Reservation {
                    bot_id: bot.to_string(),
                    bot_name: self
                        .bots
                        .get(&bot)
                        .map(|b| b.name.clone())
                        .unwrap_or_default(),
                    currency: c.to_string(),
                    amount: dec(a),
                })
                .collect(),
        })
    }

    async fn fills(&mut self, req: &pb::FillsRequest) -> Result<Vec<pb::Fill>, ServiceError> {
        let name = self.venue_name(&req.exchange)?;
        let (limit, bot) = self.limit_and_bot(req.limit, &req.bot_id)?;
        // A bot's fills are on its product (Coinbase lists fills per product).
        let product = if req.product_id.is_empty() {
            bot.and_then(|b| self.bots.get(&b))
                .map(|r| r.machine.product_id().to_owned())
        } else {
            Some(req.product_id.clone())
        };
        let product = product.as_deref();
        let Some(v) = self.venues.get_mut(&name) else {
            return Err(ServiceError::NotFound(name));
        };
        let fills = v
            .exchange
            .fills(
                |f| {
                    bot.is_none_or(|b| f.bot == Some(b))
                        && (req.product_id.is_empty() || f.product_id == req.product_id)
                        && (req.order_id.is_empty() || f.order_id.to_string() == req.order_id)
                },
                product,
                limit,
            )
            .await?;
        Ok(fills.iter().map(|f| convert::fill(f, &name)).collect())
    }
}

/// The exchange request for a bot's order intent.
fn order_request(intent: &OrderIntent, product_id: String) -> OrderRequest {
    let side = match intent.side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    };
    let mut req = OrderRequest {
        client_oid: Some(intent.client_oid),
        order_type: Some("limit".into()),
        side: Some(side.into()),
        product_id,
        price: Some(intent.price.to_string()),
        size: Some(intent.size.to_string()),
        ..OrderRequest::default()
    };
    match intent.kind {
        OrderKind::Limit => {}
        OrderKind::Market => {
            req.order_type = Some("market".into());
            req.price = None;
        }
        OrderKind::StopLoss { stop } => {
            req.stop = Some("loss".into());
            req.stop_price = Some(stop.to_string());
        }
    }
    req
}

/// The rule syntax a request asks for (unset: infix).
pub fn rule_syntax(wire: i32) -> Syntax {
    if wire == pb::RuleSyntax::Jsonlogic as i32 {
        Syntax::JsonLogic
    } else {
        Syntax::Infix
    }
}

fn target_text(t: Target) -> String {
    match t {
        Target::Id(id) => id.to_string(),
        Target::Client(c) => format!("with client_oid {c}"),
    }
}

/// The wire status of a bot.
pub fn wire_status(s: BotStatus) -> i32 {
    let wire = match s {
        BotStatus::Running => pb::BotStatus::Running,
        BotStatus::Paused => pb::BotStatus::Paused,
        BotStatus::Stopped => pb::BotStatus::Stopped,
        BotStatus::Ended => pb::BotStatus::Ended,
        BotStatus::Failed => pb::BotStatus::Failed,
    };
    wire as i32
}
