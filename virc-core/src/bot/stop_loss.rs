//! The stop-loss bot: sells a position when the price falls to a stop,
//! fixed or trailing below the highest price seen; optionally guarding
//! another bot, whose resting orders are canceled (the guarded bot is
//! stopped) before its holdings are sold.
//!
//! # Where the protection lives
//! With a fixed size, no guarded bot and a limit offset, the stop is a
//! stop-limit order resting *on the exchange*: it protects the position
//! even while the daemon is down. A trailing stop re-pegs that order by
//! cancel and replace when the stop has risen by at least a re-peg step
//! (0.1 % of the stop, at least one quote increment), so a rising market
//! does not turn into a storm of cancels. Otherwise (a market exit, or a
//! guarded bot whose own sells hold the base) the daemon watches every
//! trade and acts on the first one at or below the stop.
//!
//! # Events
//! Every phase is a history line and a `bot_step` event: armed, moved
//! (trailing), triggered, and executed.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{
    BotAccount, BotInput, BotStatus, Command, Env, OrderIntent, OrderKind, Working, canceled,
    pause, record, resume,
};
use crate::{
    ids::{BotId, ClientOid},
    money::{Price, Size},
    order::{DoneReason, Side},
};

/// How much the exit sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    /// This base size (reserved for the bot at creation).
    Size(Size),
    /// What the guarded bot holds when it is stopped.
    Guarded,
}

/// When the stop triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// At this price.
    Fixed(Price),
    /// This far below the highest price seen, in quote.
    Trail(Decimal),
    /// This percentage below the highest price seen.
    TrailPercent(Decimal),
}

/// Parameters of a stop-loss bot, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopLossParams {
    /// Product id ("BTC-USD").
    pub product_id: String,
    /// Base currency ("BTC").
    pub base: String,
    /// Quote currency ("USD").
    pub quote: String,
    /// The product's quote increment.
    pub quote_increment: Decimal,
    /// The product's base increment.
    pub base_increment: Decimal,
    /// What to sell.
    pub amount: Amount,
    /// When.
    pub trigger: Trigger,
    /// Exit with a limit this far below the stop; `None` exits at market.
    pub limit_offset: Option<Decimal>,
    /// The bot to stop first.
    pub guard: Option<BotId>,
    /// On trigger, stop every other bot on the product and cancel manual
    /// resting sells above the market (the seed's "cancel our higher sell
    /// orders and set a stop loss").
    #[serde(default)]
    pub guard_product: bool,
}

impl StopLossParams {
    /// Whether the stop rests on the exchange (see the module docs).
    pub fn on_exchange(&self) -> bool {
        matches!(self.amount, Amount::Size(_))
            && self.guard.is_none()
            && self.limit_offset.is_some()
    }
}

/// Where the bot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Waiting for the first trade (a trailing stop needs a high).
    Waiting,
    /// Watching; the stop is set.
    Armed,
    /// Triggered; waiting for the guarded bot to stop.
    Guarding,
    /// Selling.
    Exiting,
}

/// The stop-loss bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopLossBot {
    id: BotId,
    params: StopLossParams,
    status: BotStatus,
    reason: String,
    phase: Phase,
    /// Intents so far; the next one is `step + 1`.
    step: u64,
    /// Highest trade price seen since armed.
    high: Option<Price>,
    /// The current stop price.
    stop: Option<Price>,
    /// The stop-limit resting on the exchange, or the exit order.
    working: Option<Working>,
    /// A re-peg is under way: the resting stop's cancel was asked for.
    repeg: bool,
    /// The base the exit sells, once known.
    size: Option<Size>,
    account: BotAccount,
}

impl StopLossBot {
    /// A new stop-loss bot; it arms on start.
    pub fn new(id: BotId, params: StopLossParams) -> Self {
        let size = match params.amount {
            Amount::Size(s) => Some(s),
            Amount::Guarded => None,
        };
        Self {
            id,
            params,
            status: BotStatus::Running,
            reason: String::new(),
            phase: Phase::Waiting,
            step: 0,
            high: None,
            stop: None,
            working: None,
            repeg: false,
            size,
            account: BotAccount::default(),
        }
    }

    common_accessors!(StopLossParams);

    /// The resting stop or the exit order.
    pub fn working(&self) -> Option<&Working> {
        self.working.as_ref()
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The current stop price.
    pub fn stop_price(&self) -> Option<Price> {
        self.stop
    }

    /// The current step in words.
    pub fn describe_step(&self) -> String {
        if self.status.is_final() {
            return format!("{} ({})", self.status.name(), self.reason);
        }
        let p = &self.params;
        let what = self.size.map_or_else(
            || "the guarded bot's holdings".to_owned(),
            |s| format!("{s} {}", p.base),
        );
        match (self.phase, self.stop) {
            (Phase::Waiting, _) => "waiting for a first trade to arm".into(),
            (Phase::Armed, Some(stop)) => {
                let place = if p.on_exchange() {
                    "stop order on the exchange"
                } else {
                    "watching every trade"
                };
                format!("armed: sell {what} at {stop} {} ({place})", p.quote)
            }
            (Phase::Guarding, _) if p.guard.is_some() => {
                "triggered: stopping the guarded bot".into()
            }
            (Phase::Guarding, _) => {
                format!("triggered: stopping the other bots on {}", p.product_id)
            }
            (Phase::Exiting, _) | (Phase::Armed, None) => match &self.working {
                Some(w) => format!("triggered: {}", w.intent.words(&p.base, &p.quote)),
                None => "triggered".into(),
            },
        }
    }

    /// The stop for a high of `high`, on the quote increment (rounded down).
    fn stop_for(&self, high: Price) -> Option<Price> {
        let raw = match self.params.trigger {
            Trigger::Fixed(p) => return Some(p),
            Trigger::Trail(d) => high.get() - d,
            Trigger::TrailPercent(pct) => high.get() * (Decimal::ONE - pct / Decimal::ONE_HUNDRED),
        };
        Price::new(raw)
            .ok()
            .map(|p| p.floor_to(self.params.quote_increment))
            .and_then(|d| Price::new(d).ok())
            .filter(|p| !p.get().is_zero())
    }

    /// The exit limit for a stop of `stop`.
    fn limit_for(&self, stop: Price) -> Option<Price> {
        let offset = self.params.limit_offset?;
        Price::new(stop.get() - offset)
            .ok()
            .filter(|p| !p.get().is_zero())
    }

    /// The smallest rise of the stop worth a cancel and replace.
    fn repeg_step(&self, stop: Price) -> Decimal {
        let inc = self.params.quote_increment;
        let step = stop.get() / Decimal::ONE_THOUSAND;
        if inc > Decimal::ZERO {
            ((step / inc).floor() * inc).max(inc)
        } else {
            step
        }
    }

    fn next_cid(&mut self) -> ClientOid {
        self.step += 1;
        ClientOid::for_intent(self.id, self.step, 0)
    }

    fn finish(&mut self, status: BotStatus, reason: String, out: &mut Vec<Command>) {
        self.status = status;
        self.reason.clone_from(&reason);
        out.push(Command::Status { status, reason });
    }

    /// Places the exchange-side stop at the current stop.
    fn place_stop(&mut self, out: &mut Vec<Command>) {
        let (Some(stop), Some(size)) = (self.stop, self.size) else {
            return;
        };
        let Some(limit) = self.limit_for(stop) else {
            return;
        };
        let cid = self.next_cid();
        let intent = OrderIntent {
            kind: OrderKind::StopLoss { stop },
            ..OrderIntent::limit(cid, Side::Sell, limit, size)
        };
        self.working = Some(Working::new(intent));
        out.push(Command::Place(intent));
    }

    fn arm(&mut self, price: Price, out: &mut Vec<Command>) {
        self.high = Some(price);
        self.stop = self.stop_for(price);
        let Some(stop) = self.stop else {
            self.finish(
                BotStatus::Failed,
                format!("the trailing distance puts the stop below zero at {price}"),
                out,
            );
            return;
        };
        self.phase = Phase::Armed;
        out.push(Command::Note(format!(
            "armed at {stop} {} (market {})",
            self.params.quote,
            price.get().normalize()
        )));
        if self.params.on_exchange() {
            self.place_stop(out);
        }
        // Already at or below the stop: the watching kinds act at once.
        self.on_price(price, out);
    }

    fn on_price(&mut self, price: Price, out: &mut Vec<Command>) {
        if self.phase != Phase::Armed {
            return;
        }
        if self.high.is_none_or(|h| price > h) {
            self.high = Some(price);
            if let (Some(new), Some(old)) = (self.stop_for(price), self.stop)
                && new > old
            {
                self.stop = Some(new);
                out.push(Command::Note(format!(
                    "stop moved to {new} {} (high {})",
                    self.params.quote,
                    price.get().normalize()
                )));
                self.maybe_repeg(out);
            }
        }
        let Some(stop) = self.stop else { return };
        if price > stop {
            return;
        }
        if self.params.on_exchange() {
            // The exchange's stop order does the selling; say so once.
            if self.working.as_ref().is_some_and(|w| w.filled.is_zero()) && !self.repeg {
                self.phase = Phase::Exiting;
                out.push(Command::Note(format!(
                    "triggered at {}: the exchange's stop order sells",
                    price.get().normalize()
                )));
                if self.params.guard_product {
                    out.push(Command::StopProduct);
                }
            }
            return;
        }
        out.push(Command::Note(format!("triggered at {price} (stop {stop})")));
        match self.params.guard {
            Some(guard) => {
                self.phase = Phase::Guarding;
                out.push(Command::StopBot(guard));
            }
            // The product's other sells are canceled first; the runtime
            // answers with `GuardStopped` once their stops are under way.
            None if self.params.guard_product => {
                self.phase = Phase::Guarding;
                out.push(Command::StopProduct);
            }
            None => self.exit(out),
        }
    }

    fn maybe_repeg(&mut self, out: &mut Vec<Command>) {
        let (Some(stop), Some(w)) = (self.stop, self.working.as_ref()) else {
            return;
        };
        let OrderKind::StopLoss { stop: resting } = w.intent.kind else {
            return;
        };
        if self.repeg || w.cancel_requested || !w.filled.is_zero() {
            return;
        }
        if stop.get() - resting.get() >= self.repeg_step(resting) {
            let cid = w.intent.client_oid;
            self.repeg = true;
            if let Some(w) = self.working.as_mut() {
                w.cancel_requested = true;
            }
            out.push(Command::Cancel(cid));
        }
    }

    fn exit(&mut self, out: &mut Vec<Command>) {
        self.phase = Phase::Exiting;
        let size = self
            .size
            .map(|s| s.floor_to(self.params.base_increment))
            .and_then(|s| Size::new(s).ok())
            .filter(|s| !s.is_zero());
        let Some(size) = size else {
            self.finish(
                BotStatus::Ended,
                "triggered with nothing to sell".into(),
                out,
            );
            return;
        };
        let Some(stop) = self.stop else {
            return;
        };
        let cid = self.next_cid();
        let intent = match self.limit_for(stop) {
            Some(limit) => OrderIntent::limit(cid, Side::Sell, limit, size),
            None => OrderIntent {
                kind: OrderKind::Market,
                ..OrderIntent::limit(cid, Side::Sell, stop, size)
            },
        };
        self.working = Some(Working::new(intent));
        out.push(Command::Place(intent));
    }

    /// Advances the bot by one input. Returns the commands to perform, in order.
    pub fn step(&mut self, input: BotInput, env: &Env<'_>) -> Vec<Command> {
        let mut out = Vec::new();
        if self.status.is_final() {
            return out;
        }
        match input {
            BotInput::Started => match (self.phase, env.price()) {
                (Phase::Waiting, Some(price)) if self.status == BotStatus::Running => {
                    self.arm(price, &mut out);
                }
                // A restart while re-pegging: the cancel was done, the new stop not placed.
                (Phase::Armed, _) if self.working.is_none() && self.params.on_exchange() => {
                    self.repeg = false;
                    self.place_stop(&mut out);
                }
                (Phase::Exiting, _) if self.working.is_none() => self.exit(&mut out),
                _ => {}
            },
            BotInput::Market { price } => {
                if self.status != BotStatus::Running {
                    return out;
                }
                if self.phase == Phase::Waiting {
                    self.arm(price, &mut out);
                } else {
                    self.on_price(price, &mut out);
                }
            }
            BotInput::GuardStopped { holdings } => {
                if self.phase == Phase::Guarding {
                    if self.params.amount == Amount::Guarded {
                        self.size = Size::new(holdings).ok();
                    }
                    out.push(Command::Note(if self.params.guard.is_some() {
                        format!(
                            "guarded bot stopped; it held {} {}",
                            holdings.normalize(),
                            self.params.base
                        )
                    } else {
                        format!("the other sells on {} are canceled", self.params.product_id)
                    }));
                    self.exit(&mut out);
                }
            }
            input @ (BotInput::Accepted { client_oid, .. } | BotInput::Fill { client_oid, .. }) => {
                if let Some(w) = self.mine(client_oid) {
                    let fee = record(w, &input);
                    self.account.fees_paid += fee;
                }
            }
            BotInput::Rejected { client_oid, reason } => {
                if let Some(w) = self.mine(client_oid).map(|w| w.intent) {
                    self.working = None;
                    let what = w.words(&self.params.base, &self.params.quote);
                    out.push(Command::Note(format!("{what} refused: {reason}")));
                    self.finish(
                        BotStatus::Failed,
                        format!("order refused: {reason}"),
                        &mut out,
                    );
                }
            }
            BotInput::Done { client_oid, reason } => {
                if self.mine(client_oid).is_some() {
                    self.on_done(reason, &mut out);
                }
            }
            BotInput::Stop => match self.working.as_mut() {
                Some(w) if !w.cancel_requested => {
                    w.cancel_requested = true;
                    self.repeg = false;
                    out.push(Command::Cancel(w.intent.client_oid));
                }
                Some(_) => self.repeg = false,
                None => self.finish(BotStatus::Stopped, "stopped by the user".into(), &mut out),
            },
            BotInput::Pause => {
                pause(
                    &mut self.status,
                    "paused by the user: an exchange-side stop stays on the book",
                    &mut out,
                );
            }
            BotInput::Resume => {
                if resume(&mut self.status, &mut out)
                    && let Some(price) = env.price()
                {
                    if self.phase == Phase::Waiting {
                        self.arm(price, &mut out);
                    } else {
                        self.on_price(price, &mut out);
                    }
                }
            }
        }
        out
    }

    fn mine(&mut self, cid: ClientOid) -> Option<&mut Working> {
        self.working.as_mut().filter(|w| w.intent.client_oid == cid)
    }

    fn on_done(&mut self, reason: DoneReason, out: &mut Vec<Command>) {
        let Some(w) = self.working.take() else {
            return;
        };
        self.account.add(&w);
        let what = w.intent.words(&self.params.base, &self.params.quote);
        match reason {
            DoneReason::Filled => {
                out.push(Command::Note(format!(
                    "executed: {what}: {} {} sold for {} {}",
                    w.filled.normalize(),
                    self.params.base,
                    w.value.normalize(),
                    self.params.quote
                )));
                self.finish(BotStatus::Ended, "stop-loss executed".into(), out);
            }
            DoneReason::Canceled(_) if self.repeg && w.filled.is_zero() => {
                // Our own re-peg: replace the stop at its new level.
                self.repeg = false;
                self.place_stop(out);
            }
            DoneReason::Canceled(why) => {
                let (note, status, reason) = canceled(&what, &w, why);
                out.push(note);
                self.finish(status, reason, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;
    use uuid::Uuid;

    use super::*;
    use crate::order::CancelReason;

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    fn params(trigger: Trigger, offset: Option<Decimal>, guard: Option<BotId>) -> StopLossParams {
        StopLossParams {
            product_id: "BTC-USD".into(),
            base: "BTC".into(),
            quote: "USD".into(),
            quote_increment: dec!(0.01),
            base_increment: dec!(0.00000001),
            amount: if guard.is_some() {
                Amount::Guarded
            } else {
                Amount::Size(Size::parse("0.5").unwrap())
            },
            trigger,
            limit_offset: offset,
            guard,
            guard_product: false,
        }
    }

    fn market(b: &mut StopLossBot, price: &str) -> Vec<Command> {
        b.step(BotInput::Market { price: p(price) }, &Env::at(0))
    }

    fn placed(cmds: &[Command]) -> Option<OrderIntent> {
        cmds.iter().find_map(|c| match c {
            Command::Place(i) => Some(*i),
            _ => None,
        })
    }

    fn done(b: &mut StopLossBot, i: OrderIntent, reason: DoneReason) -> Vec<Command> {
        b.step(
            BotInput::Done {
                client_oid: i.client_oid,
                reason,
            },
            &Env::at(0),
        )
    }

    #[test]
    fn a_fixed_stop_with_an_offset_rests_on_the_exchange() {
        let mut b = StopLossBot::new(
            BotId(Uuid::from_u128(1)),
            params(Trigger::Fixed(p("440")), Some(dec!(1)), None),
        );
        let cmds = market(&mut b, "452");
        let stop = placed(&cmds).unwrap();
        assert_eq!(stop.kind, OrderKind::StopLoss { stop: p("440") });
        assert_eq!(
            (stop.side, stop.price.get(), stop.size.get()),
            (Side::Sell, dec!(439), dec!(0.5))
        );
        assert!(b.describe_step().contains("stop order on the exchange"));
        let cmds = market(&mut b, "439.50");
        assert!(
            placed(&cmds).is_none(),
            "the exchange sells, not the daemon"
        );
        b.step(
            BotInput::Fill {
                client_oid: stop.client_oid,
                price: p("439"),
                size: stop.size,
                fee: dec!(1.3),
            },
            &Env::at(0),
        );
        done(&mut b, stop, DoneReason::Filled);
        assert_eq!(
            (b.status(), b.reason()),
            (BotStatus::Ended, "stop-loss executed")
        );
        assert_eq!(b.account().fees_paid, dec!(1.3));
    }

    #[test]
    fn a_trailing_stop_follows_the_high_and_repegs_by_cancel_and_replace() {
        let mut b = StopLossBot::new(
            BotId(Uuid::from_u128(1)),
            params(Trigger::TrailPercent(dec!(2)), Some(dec!(0.5)), None),
        );
        let first = placed(&market(&mut b, "450")).unwrap();
        assert_eq!(b.stop_price(), Some(p("441.00")));
        // A rise smaller than the re-peg step moves the stop but not the order.
        let cmds = market(&mut b, "450.20");
        assert_eq!(b.stop_price(), Some(p("441.19")));
        assert!(!cmds.iter().any(|c| matches!(c, Command::Cancel(_))));
        let cmds = market(&mut b, "460");
        assert_eq!(b.stop_price(), Some(p("450.80")));
        assert!(cmds.contains(&Command::Cancel(first.client_oid)));
        let cmds = done(&mut b, first, DoneReason::Canceled(CancelReason::User));
        let second = placed(&cmds).unwrap();
        assert_eq!(second.kind, OrderKind::StopLoss { stop: p("450.80") });
        assert_eq!(b.status(), BotStatus::Running);
        // Falling does not lower it.
        market(&mut b, "455");
        assert_eq!(b.stop_price(), Some(p("450.80")));
    }

    #[test]
    fn a_guard_stops_the_guarded_bot_then_sells_its_holdings_at_market() {
        let guarded = BotId(Uuid::from_u128(77));
        let mut b = StopLossBot::new(
            BotId(Uuid::from_u128(1)),
            params(Trigger::Fixed(p("440")), None, Some(guarded)),
        );
        assert!(
            placed(&market(&mut b, "452")).is_none(),
            "a guard watches from the daemon"
        );
        let cmds = market(&mut b, "439.99");
        assert!(cmds.contains(&Command::StopBot(guarded)));
        assert_eq!(b.phase(), Phase::Guarding);
        let cmds = b.step(
            BotInput::GuardStopped {
                holdings: dec!(0.05),
            },
            &Env::at(0),
        );
        let exit = placed(&cmds).unwrap();
        assert_eq!(
            (exit.kind, exit.size.get()),
            (OrderKind::Market, dec!(0.05))
        );
        done(&mut b, exit, DoneReason::Filled);
        assert_eq!(b.status(), BotStatus::Ended);
        // Nothing held: nothing to sell.
        let mut b = StopLossBot::new(
            BotId(Uuid::from_u128(2)),
            params(Trigger::Fixed(p("440")), None, Some(guarded)),
        );
        market(&mut b, "430");
        b.step(BotInput::GuardStopped { holdings: dec!(0) }, &Env::at(0));
        assert_eq!(
            (b.status(), b.reason()),
            (BotStatus::Ended, "triggered with nothing to sell")
        );
    }

    #[test]
    fn guarding_the_product_stops_the_others_before_selling_its_own() {
        let mut p = params(Trigger::Fixed(p("440")), None, None);
        p.guard_product = true;
        let mut b = StopLossBot::new(BotId(Uuid::from_u128(1)), p);
        market(&mut b, "452");
        let cmds = market(&mut b, "439");
        assert_eq!(cmds.last(), Some(&Command::StopProduct));
        assert!(placed(&cmds).is_none(), "the others' sells go first");
        let cmds = b.step(BotInput::GuardStopped { holdings: dec!(3) }, &Env::at(0));
        let exit = placed(&cmds).unwrap();
        assert_eq!((exit.kind, exit.size.get()), (OrderKind::Market, dec!(0.5)));
    }

    #[test]
    fn stop_cancels_the_resting_stop() {
        let mut b = StopLossBot::new(
            BotId(Uuid::from_u128(1)),
            params(Trigger::Fixed(p("440")), Some(dec!(1)), None),
        );
        let stop = placed(&market(&mut b, "452")).unwrap();
        assert_eq!(
            b.step(BotInput::Stop, &Env::at(0)),
            vec![Command::Cancel(stop.client_oid)]
        );
        done(&mut b, stop, DoneReason::Canceled(CancelReason::User));
        assert_eq!(b.status(), BotStatus::Stopped);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut b = StopLossBot::new(
            BotId(Uuid::from_u128(1)),
            params(Trigger::Trail(dec!(5)), Some(dec!(1)), None),
        );
        market(&mut b, "452");
        let text = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<StopLossBot>(&text).unwrap(), b);
    }
}
