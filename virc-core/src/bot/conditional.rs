//! The conditional bot: a program of steps, each a condition (wait until a
//! rule over live market data is true) or an order (wait until filled),
//! optionally looping, like the seed's condbot with any number of steps.
//!
//! Rules are evaluated on every trade of the product, with the market as of
//! that trade; when one fires, the values it read go into the bot's history.
//! A step's order price is absolute (`450.25`), relative to the last trade
//! (`mkt-10`, `mkt+0.5%`, rounded to the quote increment) or `mkt` for a
//! market order. One input advances the program by at most one lap, so a
//! loop whose conditions all hold cannot spin.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{
    BotAccount, BotInput, BotStatus, Command, Env, OrderIntent, OrderKind, Working, cancel_to_stop,
    canceled, pause, record, resume,
};
use crate::{
    ids::{BotId, ClientOid},
    money::{Price, Size},
    order::{DoneReason, Side},
    rule::Rule,
};

/// An order step's price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceSpec {
    /// A market order.
    Market,
    /// A limit at this price.
    Absolute(Price),
    /// A limit at the last trade price plus this (negative: below).
    Offset(Decimal),
    /// A limit at the last trade price plus this percentage of it.
    Percent(Decimal),
}

impl PriceSpec {
    /// Parses `mkt`, `mkt-10`, `mkt+0.5%`, `450.25`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let hint =
            "give a price (450.25), mkt, or a price relative to the market (mkt-10, mkt+0.5%)";
        let Some(rest) = t.strip_prefix("mkt") else {
            return Price::parse(t)
                .map(Self::Absolute)
                .map_err(|e| format!("price `{text}`: {e}; {hint}"));
        };
        if rest.is_empty() {
            return Ok(Self::Market);
        }
        let (sign, number) = match rest.as_bytes()[0] {
            b'+' => (Decimal::ONE, &rest[1..]),
            b'-' => (Decimal::NEGATIVE_ONE, &rest[1..]),
            _ => return Err(format!("price `{text}`: expected + or - after mkt; {hint}")),
        };
        let (number, percent) = match number.strip_suffix('%') {
            Some(n) => (n, true),
            None => (number, false),
        };
        let value = crate::money::parse_decimal("offset", number)
            .map_err(|e| format!("price `{text}`: {e}; {hint}"))?;
        Ok(if percent {
            Self::Percent(sign * value)
        } else {
            Self::Offset(sign * value)
        })
    }

    /// The limit price for a last trade at `last`, on `increment`; `None` for a market order.
    pub fn resolve(self, last: Price, increment: Decimal) -> Result<Option<Price>, String> {
        let raw = match self {
            Self::Market => return Ok(None),
            Self::Absolute(p) => return Ok(Some(p)),
            Self::Offset(d) => last.get() + d,
            Self::Percent(pct) => last.get() * (Decimal::ONE + pct / Decimal::ONE_HUNDRED),
        };
        Price::new(raw)
            .map(|p| p.round_to(increment))
            .and_then(Price::new)
            .ok()
            .filter(|p| !p.get().is_zero())
            .map(Some)
            .ok_or_else(|| format!("price {self} is not positive with the market at {last}"))
    }
}

impl fmt::Display for PriceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signed = |d: Decimal| {
            let d = d.normalize();
            if d.is_sign_negative() {
                format!("{d}")
            } else {
                format!("+{d}")
            }
        };
        match self {
            Self::Market => f.write_str("mkt"),
            Self::Absolute(p) => write!(f, "{p}"),
            Self::Offset(d) => write!(f, "mkt{}", signed(*d)),
            Self::Percent(d) => write!(f, "mkt{}%", signed(*d)),
        }
    }
}

/// One step of the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Wait until the rule is true.
    When(Rule),
    /// Place an order and wait until it is filled.
    Order {
        /// Buy or sell.
        side: Side,
        /// Base size.
        size: Size,
        /// How the price is set.
        price: PriceSpec,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::When(r) => write!(f, "when {}", r.to_string_infix()),
            Self::Order { side, size, price } => {
                let side = match side {
                    Side::Buy => "buy",
                    Side::Sell => "sell",
                };
                write!(f, "{side} {size} @ {price}")
            }
        }
    }
}

/// Parameters of a conditional bot, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionalParams {
    /// Product id ("BTC-USD").
    pub product_id: String,
    /// Base currency ("BTC").
    pub base: String,
    /// Quote currency ("USD").
    pub quote: String,
    /// The product's quote increment, for relative prices.
    pub quote_increment: Decimal,
    /// The program.
    pub steps: Vec<Step>,
    /// Start again after the last step.
    pub looping: bool,
}

impl ConditionalParams {
    /// Checks the program's shape: not empty, and a loop has an order to wait on.
    pub fn check(&self) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err("a conditional bot needs at least one step".into());
        }
        if self.looping && !self.steps.iter().any(|s| matches!(s, Step::Order { .. })) {
            return Err(
                "a looping program needs at least one order step; with conditions only it would do nothing forever"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The conditional bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionalBot {
    id: BotId,
    params: ConditionalParams,
    status: BotStatus,
    reason: String,
    /// The step the program is at.
    index: usize,
    /// Intents so far; the next one is `step + 1`.
    step: u64,
    working: Option<Working>,
    /// Completed passes over the program.
    laps: u64,
    account: BotAccount,
}

impl ConditionalBot {
    /// A new conditional bot at its first step.
    pub fn new(id: BotId, params: ConditionalParams) -> Self {
        Self {
            id,
            params,
            status: BotStatus::Running,
            reason: String::new(),
            index: 0,
            step: 0,
            working: None,
            laps: 0,
            account: BotAccount::default(),
        }
    }

    common_accessors!(ConditionalParams);

    /// The order the program waits on, if any.
    pub fn working(&self) -> Option<&Working> {
        self.working.as_ref()
    }

    /// The index of the current step.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Completed passes over the program.
    pub fn laps(&self) -> u64 {
        self.laps
    }

    /// The current step in words.
    pub fn describe_step(&self) -> String {
        if self.status.is_final() {
            return format!("{} ({})", self.status.name(), self.reason);
        }
        let n = self.params.steps.len();
        let Some(step) = self.params.steps.get(self.index) else {
            return String::new();
        };
        let head = format!("step {}/{n}: ", self.index + 1);
        match &self.working {
            Some(w) => {
                let mut text = head + &w.intent.words(&self.params.base, &self.params.quote);
                if w.filled > Decimal::ZERO {
                    use std::fmt::Write as _;
                    let _ = write!(text, " ({} filled)", w.filled.normalize());
                }
                text
            }
            None => head + &step.to_string(),
        }
    }

    fn finish(&mut self, status: BotStatus, reason: String, out: &mut Vec<Command>) {
        self.status = status;
        self.reason.clone_from(&reason);
        out.push(Command::Status { status, reason });
    }

    /// Moves past the current step; false when the program has ended.
    fn next(&mut self, out: &mut Vec<Command>) -> bool {
        self.index += 1;
        if self.index < self.params.steps.len() {
            return true;
        }
        if self.params.looping {
            self.index = 0;
            self.laps += 1;
            return true;
        }
        self.finish(BotStatus::Ended, "program complete".into(), out);
        false
    }

    /// Runs the program from the current step until it must wait: on a
    /// condition not (yet) true, an order, or a price it has not seen yet.
    fn run(&mut self, env: &Env<'_>, out: &mut Vec<Command>) {
        for _ in 0..self.params.steps.len() {
            if self.status != BotStatus::Running || self.working.is_some() {
                return;
            }
            match self.params.steps[self.index].clone() {
                Step::When(rule) => {
                    let Some(market) = env.market else { return };
                    if rule.eval(market) != Some(true) {
                        return;
                    }
                    out.push(Command::Fired {
                        text: format!(
                            "step {}: when {} fired",
                            self.index + 1,
                            rule.to_string_infix()
                        ),
                        values: rule.readings(market),
                    });
                    if !self.next(out) {
                        return;
                    }
                }
                Step::Order { side, size, price } => {
                    let last = env.price();
                    let limit = match (price, last) {
                        (PriceSpec::Absolute(p), _) => Some(p),
                        (_, None) => return,
                        (spec, Some(last)) => match spec.resolve(last, self.params.quote_increment)
                        {
                            Ok(p) => p,
                            Err(e) => {
                                self.finish(BotStatus::Failed, e, out);
                                return;
                            }
                        },
                    };
                    // A market order is recorded at the last price it was decided at.
                    let Some(reference) = limit.or(last) else {
                        return;
                    };
                    self.step += 1;
                    let cid = ClientOid::for_intent(self.id, self.step, 0);
                    let mut intent = OrderIntent::limit(cid, side, reference, size);
                    if limit.is_none() {
                        intent.kind = OrderKind::Market;
                    }
                    self.working = Some(Working::new(intent));
                    out.push(Command::Place(intent));
                    return;
                }
            }
        }
    }

    /// Advances the bot by one input. Returns the commands to perform, in order.
    pub fn step(&mut self, input: BotInput, env: &Env<'_>) -> Vec<Command> {
        let mut out = Vec::new();
        if self.status.is_final() {
            return out;
        }
        match input {
            BotInput::Started | BotInput::Market { .. } => self.run(env, &mut out),
            input @ (BotInput::Accepted { client_oid, .. } | BotInput::Fill { client_oid, .. }) => {
                if let Some(w) = self.mine(client_oid) {
                    let fee = record(w, &input);
                    self.account.fees_paid += fee;
                }
            }
            BotInput::Rejected { client_oid, reason } => {
                if self.mine(client_oid).is_some() {
                    let w = self.working.take();
                    let what = w.map(|w| self.words(&w)).unwrap_or_default();
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
                    self.on_done(reason, env, &mut out);
                }
            }
            BotInput::Stop => {
                if cancel_to_stop(self.working.as_mut(), &mut out) {
                    self.finish(BotStatus::Stopped, "stopped by the user".into(), &mut out);
                }
            }
            BotInput::Pause => {
                pause(&mut self.status, "paused by the user", &mut out);
            }
            BotInput::Resume => {
                if resume(&mut self.status, &mut out) {
                    self.run(env, &mut out);
                }
            }
            BotInput::GuardStopped { .. } => {}
        }
        out
    }

    fn mine(&mut self, cid: ClientOid) -> Option<&mut Working> {
        self.working.as_mut().filter(|w| w.intent.client_oid == cid)
    }

    fn words(&self, w: &Working) -> String {
        w.intent.words(&self.params.base, &self.params.quote)
    }

    fn on_done(&mut self, reason: DoneReason, env: &Env<'_>, out: &mut Vec<Command>) {
        let Some(w) = self.working.take() else {
            return;
        };
        self.account.add(&w);
        let what = self.words(&w);
        match reason {
            DoneReason::Filled => {
                out.push(Command::Note(format!(
                    "step {}: {what} filled ({} {} for {} {})",
                    self.index + 1,
                    w.filled.normalize(),
                    self.params.base,
                    w.value.normalize(),
                    self.params.quote
                )));
                if w.intent.side == Side::Sell && self.account.close_if_flat() {
                    out.push(Command::Note(self.account.cycle_note(&self.params.quote)));
                }
                if w.cancel_requested {
                    self.finish(BotStatus::Stopped, "stopped by the user".into(), out);
                } else if self.next(out) {
                    self.run(env, out);
                }
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
    use std::collections::HashMap;

    use rust_decimal_macros::dec;
    use uuid::Uuid;

    use super::*;
    use crate::rule::{Syntax, Values, Var};

    struct Market(HashMap<String, Decimal>);

    impl Values for Market {
        fn value(&self, var: &Var) -> Option<Decimal> {
            self.0.get(&var.to_string()).copied()
        }
    }

    fn market(price: Decimal, rsi: Option<Decimal>) -> Market {
        let mut m = HashMap::from([("ticker.price".to_owned(), price)]);
        if let Some(r) = rsi {
            m.insert("p60.rsi14".into(), r);
        }
        Market(m)
    }

    fn program(looping: bool) -> ConditionalParams {
        ConditionalParams {
            product_id: "BTC-USD".into(),
            base: "BTC".into(),
            quote: "USD".into(),
            quote_increment: dec!(0.01),
            steps: vec![
                Step::When(Rule::parse("p60.rsi14 <= 30", Syntax::Infix).unwrap()),
                Step::Order {
                    side: Side::Buy,
                    size: Size::parse("0.01").unwrap(),
                    price: PriceSpec::parse("mkt-0.5%").unwrap(),
                },
                Step::When(Rule::parse("p60.rsi14 >= 70", Syntax::Infix).unwrap()),
                Step::Order {
                    side: Side::Sell,
                    size: Size::parse("0.01").unwrap(),
                    price: PriceSpec::parse("mkt").unwrap(),
                },
            ],
            looping,
        }
    }

    fn at(m: &Market) -> Env<'_> {
        Env {
            now: 0,
            market: Some(m),
        }
    }

    fn tick(b: &mut ConditionalBot, price: Decimal, rsi: Option<Decimal>) -> Vec<Command> {
        let m = market(price, rsi);
        b.step(
            BotInput::Market {
                price: Price::new(price).unwrap(),
            },
            &at(&m),
        )
    }

    fn placed(cmds: &[Command]) -> Option<OrderIntent> {
        cmds.iter().find_map(|c| match c {
            Command::Place(i) => Some(*i),
            _ => None,
        })
    }

    fn fill(b: &mut ConditionalBot, i: OrderIntent, price: Decimal, rsi: Decimal) -> Vec<Command> {
        let m = market(price, Some(rsi));
        b.step(
            BotInput::Fill {
                client_oid: i.client_oid,
                price: Price::new(price).unwrap(),
                size: i.size,
                fee: dec!(0.01),
            },
            &at(&m),
        );
        b.step(
            BotInput::Done {
                client_oid: i.client_oid,
                reason: DoneReason::Filled,
            },
            &at(&m),
        )
    }

    #[test]
    fn prices_parse_resolve_and_print() {
        let last = Price::parse("450.00").unwrap();
        for (text, want) in [
            ("mkt", None),
            ("mkt-10", Some(dec!(440.00))),
            ("mkt+0.5%", Some(dec!(452.25))),
            ("mkt-0.333%", Some(dec!(448.50))),
            ("452.1", Some(dec!(452.1))),
        ] {
            let spec = PriceSpec::parse(text).unwrap();
            assert_eq!(spec.to_string(), text);
            let got = spec.resolve(last, dec!(0.01)).unwrap().map(Price::get);
            assert_eq!(got, want, "{text}");
        }
        for bad in ["mkt*2", "mkt-", "abc", "mkt-1e3", "-5"] {
            assert!(PriceSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(
            PriceSpec::parse("mkt-500")
                .unwrap()
                .resolve(last, dec!(0.01))
                .unwrap_err()
                .contains("not positive")
        );
    }

    #[test]
    fn waits_for_its_rule_then_orders_relative_to_the_market() {
        let mut b = ConditionalBot::new(BotId(Uuid::from_u128(1)), program(false));
        assert!(b.step(BotInput::Started, &Env::at(0)).is_empty());
        assert!(
            tick(&mut b, dec!(450), None).is_empty(),
            "no RSI yet: unknown never fires"
        );
        assert!(tick(&mut b, dec!(450), Some(dec!(45))).is_empty());
        let cmds = tick(&mut b, dec!(440), Some(dec!(28.5)));
        let Command::Fired { text, values } = &cmds[0] else {
            panic!("expected the rule to fire: {cmds:?}");
        };
        assert_eq!(text, "step 1: when p60.rsi14 <= 30 fired");
        assert_eq!(values, &[("p60.rsi14".to_owned(), "28.5".to_owned())]);
        let buy = placed(&cmds).unwrap();
        assert_eq!(
            (buy.side, buy.price.get(), buy.kind),
            (Side::Buy, dec!(437.80), OrderKind::Limit)
        );
        assert_eq!(b.describe_step(), "step 2/4: buy 0.01 BTC @ 437.80 USD");
        // Conditions are not evaluated while an order is working.
        assert!(tick(&mut b, dec!(440), Some(dec!(80))).is_empty());
        let cmds = fill(&mut b, buy, dec!(437.80), dec!(50));
        assert!(placed(&cmds).is_none());
        assert_eq!(b.index(), 2);
        let cmds = tick(&mut b, dec!(460), Some(dec!(71)));
        let sell = placed(&cmds).unwrap();
        assert_eq!(
            (sell.kind, sell.price.get()),
            (OrderKind::Market, dec!(460))
        );
        let cmds = fill(&mut b, sell, dec!(460), dec!(71));
        assert!(cmds.contains(&Command::Status {
            status: BotStatus::Ended,
            reason: "program complete".into()
        }));
        // 4.60 − 4.378 − 0.02
        assert_eq!(b.account().realized, dec!(0.2020));
        assert_eq!(b.account().cycles, 1);
    }

    #[test]
    fn a_looping_program_takes_at_most_one_lap_per_input() {
        let mut p = program(true);
        p.steps = vec![
            Step::When(Rule::parse("true", Syntax::Infix).unwrap()),
            Step::Order {
                side: Side::Buy,
                size: Size::parse("0.01").unwrap(),
                price: PriceSpec::Absolute(Price::parse("400").unwrap()),
            },
        ];
        let mut b = ConditionalBot::new(BotId(Uuid::from_u128(1)), p);
        let buy = placed(&tick(&mut b, dec!(450), None)).unwrap();
        let cmds = fill(&mut b, buy, dec!(400), dec!(50));
        let again = placed(&cmds).unwrap();
        assert_ne!(again.client_oid, buy.client_oid);
        assert_eq!(b.laps(), 1);
        let mut bad = program(true);
        bad.steps.retain(|s| matches!(s, Step::When(_)));
        assert!(bad.check().unwrap_err().contains("order step"));
    }

    #[test]
    fn stop_cancels_the_working_order_and_outside_cancels_fail() {
        let mut b = ConditionalBot::new(BotId(Uuid::from_u128(1)), program(false));
        let buy = placed(&tick(&mut b, dec!(440), Some(dec!(20)))).unwrap();
        assert_eq!(
            b.step(BotInput::Stop, &Env::at(0)),
            vec![Command::Cancel(buy.client_oid)]
        );
        b.step(
            BotInput::Done {
                client_oid: buy.client_oid,
                reason: DoneReason::Canceled(crate::order::CancelReason::User),
            },
            &Env::at(0),
        );
        assert_eq!(b.status(), BotStatus::Stopped);

        let mut b = ConditionalBot::new(BotId(Uuid::from_u128(2)), program(false));
        let buy = placed(&tick(&mut b, dec!(440), Some(dec!(20)))).unwrap();
        b.step(
            BotInput::Done {
                client_oid: buy.client_oid,
                reason: DoneReason::Canceled(crate::order::CancelReason::User),
            },
            &Env::at(0),
        );
        assert_eq!(
            (b.status(), b.reason()),
            (BotStatus::Failed, "order canceled outside virc")
        );
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut b = ConditionalBot::new(BotId(Uuid::from_u128(1)), program(true));
        tick(&mut b, dec!(440), Some(dec!(20)));
        let text = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<ConditionalBot>(&text).unwrap(), b);
    }
}
