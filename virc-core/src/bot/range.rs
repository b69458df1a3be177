//! The range bot (the seed's "simple bot"): buy, wait for the whole size,
//! sell what was bought, and again when looping.
//!
//! # Profit, net of fees
//! A cycle is a buy fill set followed by the sell of what was bought. Its
//! realized profit is `Σ sell value − Σ buy value − Σ fees` over the fills of
//! both orders, so the bot's total equals the sum of its fills minus fees to
//! the last decimal. The theoretical profit of one cycle is
//! `(sell − buy) × size − fees` at the exchange's maker rate, both orders
//! being resting limit orders.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{
    BotAccount, BotInput, BotStatus, Command, OrderIntent, Working, cancel_to_stop, canceled,
    pause, resume,
};
use crate::{
    ids::{BotId, ClientOid},
    ledger::FeeRates,
    money::{Price, Size},
    order::{DoneReason, Side},
};

/// Parameters of a range bot, checked and on the product's increments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeParams {
    /// Product id ("BTC-USD").
    pub product_id: String,
    /// Base currency ("BTC").
    pub base: String,
    /// Quote currency ("USD").
    pub quote: String,
    /// Size of each buy.
    pub size: Size,
    /// Buy limit price.
    pub buy: Price,
    /// Sell limit price.
    pub sell: Price,
    /// Repeat cycles until stopped.
    pub looping: bool,
    /// Start with the sell (the base is already held).
    pub begin_with_sell: bool,
}

/// Which order of the cycle a range bot is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Leg {
    /// Buying `size` at the buy price.
    Buy,
    /// Selling what was bought at the sell price.
    Sell,
}

/// The range bot (the seed's "simple bot"): buy at `buy`, wait for the whole
/// size, sell what was bought at `sell`, and again if looping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeBot {
    id: BotId,
    params: RangeParams,
    status: BotStatus,
    reason: String,
    leg: Leg,
    /// Intents so far; the next one is `step + 1`.
    step: u64,
    working: Option<Working>,
    /// Size of the next sell (what the last buy filled).
    sell_size: Size,
    account: BotAccount,
}

impl RangeBot {
    /// A new range bot; it places nothing until [`BotInput::Started`].
    pub fn new(id: BotId, params: RangeParams) -> Self {
        let leg = if params.begin_with_sell {
            Leg::Sell
        } else {
            Leg::Buy
        };
        let sell_size = params.size;
        Self {
            id,
            params,
            status: BotStatus::Running,
            reason: String::new(),
            leg,
            step: 0,
            working: None,
            sell_size,
            account: BotAccount::default(),
        }
    }

    common_accessors!(RangeParams);

    /// The order the bot waits on, if any.
    pub fn working(&self) -> Option<&Working> {
        self.working.as_ref()
    }

    /// Which leg of the cycle the bot is at.
    pub fn leg(&self) -> Leg {
        self.leg
    }

    /// The current step in words: "buy 0.01 BTC @ 450.00 USD".
    pub fn describe_step(&self) -> String {
        if self.status.is_final() {
            return format!("{} ({})", self.status.name(), self.reason);
        }
        let (side, price, size) = match self.leg {
            Leg::Buy => ("buy", self.params.buy, self.params.size),
            Leg::Sell => ("sell", self.params.sell, self.sell_size),
        };
        let text = format!(
            "{side} {size} {} @ {price} {}",
            self.params.base, self.params.quote
        );
        match &self.working {
            Some(w) if w.filled > Decimal::ZERO => {
                format!("{text} ({} filled)", w.filled.normalize())
            }
            _ => text,
        }
    }

    /// Expected profit of one cycle at maker fees: `(sell − buy) × size − fees`, and
    /// that as a percentage of the buy cost.
    pub fn theoretical_cycle_profit(&self, rates: FeeRates) -> (Decimal, Decimal) {
        let p = &self.params;
        super::cycle_profit(p.buy.get(), p.sell.get(), p.size.get(), rates.maker)
    }

    /// The next order the bot would place on `leg`, from the current step.
    fn intent(&mut self) -> OrderIntent {
        self.step += 1;
        let (side, price, size) = match self.leg {
            Leg::Buy => (Side::Buy, self.params.buy, self.params.size),
            Leg::Sell => (Side::Sell, self.params.sell, self.sell_size),
        };
        OrderIntent::limit(
            ClientOid::for_intent(self.id, self.step, 0),
            side,
            price,
            size,
        )
    }

    fn place(&mut self, out: &mut Vec<Command>) {
        let intent = self.intent();
        self.working = Some(Working::new(intent));
        out.push(Command::Place(intent));
    }

    fn finish(&mut self, status: BotStatus, reason: String, out: &mut Vec<Command>) {
        self.status = status;
        self.reason.clone_from(&reason);
        out.push(Command::Status { status, reason });
    }

    fn is_mine(&self, cid: ClientOid) -> bool {
        self.working
            .as_ref()
            .is_some_and(|w| w.intent.client_oid == cid)
    }

    fn words(&self, w: &Working) -> String {
        w.intent.words(&self.params.base, &self.params.quote)
    }

    /// Advances the bot by one input. The caller persists the bot, then
    /// performs the returned commands in order. `_now` is the caller's
    /// clock, unused by the range bot (its decisions depend on fills only).
    pub fn step(&mut self, input: BotInput, _now: i64) -> Vec<Command> {
        let mut out = Vec::new();
        if self.status.is_final() {
            return out;
        }
        match input {
            BotInput::Started => {
                if self.working.is_none() && self.status == BotStatus::Running {
                    self.place(&mut out);
                }
            }
            BotInput::Accepted {
                client_oid,
                order_id,
            } => {
                if let Some(w) = self
                    .working
                    .as_mut()
                    .filter(|w| w.intent.client_oid == client_oid)
                {
                    w.order_id = Some(order_id);
                }
            }
            BotInput::Rejected { client_oid, reason } => {
                if self.is_mine(client_oid) {
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
            BotInput::Fill {
                client_oid,
                price,
                size,
                fee,
            } => {
                if let Some(w) = self
                    .working
                    .as_mut()
                    .filter(|w| w.intent.client_oid == client_oid)
                {
                    w.fill(price, size, fee);
                    self.account.fees_paid += fee;
                }
            }
            BotInput::Done { client_oid, reason } => {
                if self.is_mine(client_oid) {
                    self.on_done(reason, &mut out);
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
            // Its decisions depend on its own fills only.
            BotInput::Market { .. } | BotInput::GuardStopped { .. } => {}
            BotInput::Resume => {
                if resume(&mut self.status, &mut out) && self.working.is_none() {
                    self.place(&mut out);
                }
            }
        }
        out
    }

    fn on_done(&mut self, reason: DoneReason, out: &mut Vec<Command>) {
        let Some(w) = self.working.take() else {
            return;
        };
        // Whatever filled counts, even on a canceled order.
        self.account.add(&w);
        let what = self.words(&w);
        match reason {
            DoneReason::Filled => {
                out.push(Command::Note(format!("{what} filled")));
                self.next_leg(w.intent.side, out);
                // It filled before our cancel reached it: the user still wants it stopped.
                if w.cancel_requested && !self.status.is_final() {
                    if let Some(next) = self.working.take() {
                        self.step -= 1;
                        out.retain(|c| *c != Command::Place(next.intent));
                    }
                    self.finish(BotStatus::Stopped, "stopped by the user".into(), out);
                }
            }
            DoneReason::Canceled(why) => {
                let (note, status, reason) = canceled(&what, &w, why);
                out.push(note);
                self.finish(status, reason, out);
            }
        }
    }

    fn next_leg(&mut self, done: Side, out: &mut Vec<Command>) {
        match done {
            Side::Buy => {
                self.leg = Leg::Sell;
                self.sell_size =
                    Size::new(self.account.cycle_size.normalize()).unwrap_or(self.params.size);
            }
            Side::Sell => {
                // An opening sell (begin-with-sell) has no buy to measure against:
                // its fees are paid, but no cycle is complete.
                if self.account.close_if_flat() {
                    out.push(Command::Note(self.account.cycle_note(&self.params.quote)));
                }
                if !self.params.looping {
                    self.finish(BotStatus::Ended, "cycle complete".into(), out);
                    return;
                }
                self.leg = Leg::Buy;
            }
        }
        if self.status == BotStatus::Running {
            self.place(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;
    use uuid::Uuid;

    use super::*;
    use crate::{ids::OrderId, order::CancelReason};

    fn params(looping: bool, begin_with_sell: bool) -> RangeParams {
        RangeParams {
            product_id: "BTC-USD".into(),
            base: "BTC".into(),
            quote: "USD".into(),
            size: Size::parse("0.01").unwrap(),
            buy: Price::parse("450.00").unwrap(),
            sell: Price::parse("460.00").unwrap(),
            looping,
            begin_with_sell,
        }
    }

    fn bot(looping: bool) -> RangeBot {
        RangeBot::new(BotId(Uuid::from_u128(7)), params(looping, false))
    }

    fn placed(cmds: &[Command]) -> OrderIntent {
        cmds.iter()
            .find_map(|c| match c {
                Command::Place(i) => Some(*i),
                _ => None,
            })
            .expect("a place command")
    }

    fn fill(
        b: &mut RangeBot,
        cid: ClientOid,
        price: &str,
        size: &str,
        fee: Decimal,
    ) -> Vec<Command> {
        b.step(
            BotInput::Fill {
                client_oid: cid,
                price: Price::parse(price).unwrap(),
                size: Size::parse(size).unwrap(),
                fee,
            },
            0,
        )
    }

    fn done(b: &mut RangeBot, cid: ClientOid, reason: DoneReason) -> Vec<Command> {
        b.step(
            BotInput::Done {
                client_oid: cid,
                reason,
            },
            0,
        )
    }

    #[test]
    fn started_places_the_buy_with_a_deterministic_client_oid() {
        let mut b = bot(false);
        let cmds = b.step(BotInput::Started, 0);
        let i = placed(&cmds);
        assert_eq!(i.side, Side::Buy);
        assert_eq!(
            i.client_oid,
            ClientOid::for_intent(BotId(Uuid::from_u128(7)), 1, 0)
        );
        assert_eq!(b.describe_step(), "buy 0.01 BTC @ 450.00 USD");
        // A restart with the intent outstanding places nothing new: the runtime reconciles it.
        assert!(b.step(BotInput::Started, 0).is_empty());
    }

    #[test]
    fn partial_fills_accumulate_then_the_sell_takes_the_filled_size() {
        let mut b = bot(false);
        let buy = placed(&b.step(BotInput::Started, 0));
        b.step(
            BotInput::Accepted {
                client_oid: buy.client_oid,
                order_id: OrderId(Uuid::from_u128(1)),
            },
            0,
        );
        assert!(fill(&mut b, buy.client_oid, "450.00", "0.004", dec!(0.0072)).is_empty());
        assert_eq!(
            b.describe_step(),
            "buy 0.01 BTC @ 450.00 USD (0.004 filled)"
        );
        assert!(fill(&mut b, buy.client_oid, "450.00", "0.006", dec!(0.0108)).is_empty());
        let cmds = done(&mut b, buy.client_oid, DoneReason::Filled);
        let sell = placed(&cmds);
        assert_eq!((sell.side, sell.size.get()), (Side::Sell, dec!(0.010)));
        assert_ne!(sell.client_oid, buy.client_oid);
        fill(&mut b, sell.client_oid, "460.00", "0.01", dec!(0.0184));
        let cmds = done(&mut b, sell.client_oid, DoneReason::Filled);
        assert!(cmds.contains(&Command::Status {
            status: BotStatus::Ended,
            reason: "cycle complete".into()
        }));
        // 4.60 − 4.50 − (0.0072 + 0.0108 + 0.0184)
        assert_eq!(b.account().realized, dec!(0.0636));
        assert_eq!(b.account().fees_paid, dec!(0.0364));
        assert_eq!(b.account().cycles, 1);
        // A final bot ignores everything.
        assert!(b.step(BotInput::Started, 0).is_empty());
        assert!(b.step(BotInput::Resume, 0).is_empty());
    }

    #[test]
    fn looping_bot_cycles_with_fresh_intents() {
        let mut b = bot(true);
        let mut cid = placed(&b.step(BotInput::Started, 0)).client_oid;
        let mut seen = vec![cid];
        for round in 0..3 {
            for (price, side) in [("450.00", Side::Buy), ("460.00", Side::Sell)] {
                assert_eq!(b.working().unwrap().intent.side, side, "round {round}");
                fill(&mut b, cid, price, "0.01", dec!(0));
                cid = placed(&done(&mut b, cid, DoneReason::Filled)).client_oid;
                assert!(!seen.contains(&cid));
                seen.push(cid);
            }
        }
        assert_eq!(b.account().cycles, 3);
        assert_eq!(b.account().realized, dec!(0.30));
        assert_eq!(b.status(), BotStatus::Running);
    }

    #[test]
    fn refused_order_fails_the_bot_with_the_exchange_text() {
        let mut b = bot(true);
        let cid = placed(&b.step(BotInput::Started, 0)).client_oid;
        let cmds = b.step(
            BotInput::Rejected {
                client_oid: cid,
                reason: "Insufficient funds".into(),
            },
            0,
        );
        assert!(cmds.contains(&Command::Status {
            status: BotStatus::Failed,
            reason: "order refused: Insufficient funds".into()
        }));
        assert!(b.working().is_none());
    }

    #[test]
    fn cancel_outside_virc_fails_but_our_cancel_stops() {
        let mut b = bot(true);
        let cid = placed(&b.step(BotInput::Started, 0)).client_oid;
        done(&mut b, cid, DoneReason::Canceled(CancelReason::User));
        assert_eq!(b.status(), BotStatus::Failed);
        assert_eq!(b.reason(), "order canceled outside virc");

        let mut b = bot(true);
        let cid = placed(&b.step(BotInput::Started, 0)).client_oid;
        assert_eq!(b.step(BotInput::Stop, 0), vec![Command::Cancel(cid)]);
        // A second stop while the cancel is in flight asks for nothing more.
        assert!(b.step(BotInput::Stop, 0).is_empty());
        assert_eq!(b.status(), BotStatus::Running);
        done(&mut b, cid, DoneReason::Canceled(CancelReason::User));
        assert_eq!(b.status(), BotStatus::Stopped);
    }

    #[test]
    fn a_fill_racing_our_cancel_is_kept_and_the_bot_still_stops() {
        let mut b = bot(true);
        let cid = placed(&b.step(BotInput::Started, 0)).client_oid;
        b.step(BotInput::Stop, 0);
        fill(&mut b, cid, "450.00", "0.01", dec!(0));
        // The order filled before our cancel reached it.
        let cmds = done(&mut b, cid, DoneReason::Filled);
        assert!(!cmds.iter().any(|c| matches!(c, Command::Place(_))));
        assert_eq!(b.status(), BotStatus::Stopped);
        assert_eq!(b.leg(), Leg::Sell);
        assert_eq!(b.account().cycle_size, dec!(0.01));
    }

    #[test]
    fn pause_keeps_the_order_and_defers_the_next_leg_until_resume() {
        let mut b = bot(true);
        let cid = placed(&b.step(BotInput::Started, 0)).client_oid;
        let cmds = b.step(BotInput::Pause, 0);
        assert!(matches!(
            cmds[..],
            [Command::Status {
                status: BotStatus::Paused,
                ..
            }]
        ));
        assert!(b.step(BotInput::Pause, 0).is_empty());
        fill(&mut b, cid, "450.00", "0.01", dec!(0));
        let cmds = done(&mut b, cid, DoneReason::Filled);
        assert!(!cmds.iter().any(|c| matches!(c, Command::Place(_))));
        assert_eq!(b.leg(), Leg::Sell);
        // A restart while paused places nothing.
        assert!(b.step(BotInput::Started, 0).is_empty());
        let sell = placed(&b.step(BotInput::Resume, 0));
        assert_eq!(sell.side, Side::Sell);
        assert!(b.step(BotInput::Resume, 0).is_empty());
    }

    #[test]
    fn stop_without_an_order_stops_at_once() {
        let mut b = bot(true);
        let cid = placed(&b.step(BotInput::Started, 0)).client_oid;
        b.step(BotInput::Pause, 0);
        done(&mut b, cid, DoneReason::Filled);
        let cmds = b.step(BotInput::Stop, 0);
        assert!(matches!(
            cmds[..],
            [Command::Status {
                status: BotStatus::Stopped,
                ..
            }]
        ));
    }

    #[test]
    fn begin_with_sell_opens_without_claiming_a_cycle() {
        let mut b = RangeBot::new(BotId(Uuid::from_u128(8)), params(true, true));
        let sell = placed(&b.step(BotInput::Started, 0));
        assert_eq!(sell.side, Side::Sell);
        fill(&mut b, sell.client_oid, "460.00", "0.01", dec!(0.01));
        let buy = placed(&done(&mut b, sell.client_oid, DoneReason::Filled));
        assert_eq!(buy.side, Side::Buy);
        assert_eq!(b.account().cycles, 0);
        assert_eq!(b.account().realized, dec!(0));
        assert_eq!(b.account().fees_paid, dec!(0.01));
    }

    #[test]
    fn inputs_for_other_orders_are_ignored() {
        let mut b = bot(true);
        placed(&b.step(BotInput::Started, 0));
        let other = ClientOid(Uuid::from_u128(99));
        let before = b.clone();
        assert!(fill(&mut b, other, "450.00", "0.01", dec!(0)).is_empty());
        assert!(done(&mut b, other, DoneReason::Filled).is_empty());
        assert!(
            b.step(
                BotInput::Rejected {
                    client_oid: other,
                    reason: "x".into()
                },
                0
            )
            .is_empty()
        );
        assert_eq!(b, before);
    }

    #[test]
    fn theoretical_profit_is_net_of_maker_fees() {
        let b = bot(true);
        let rates = FeeRates {
            maker: dec!(0.004),
            taker: dec!(0.006),
        };
        let (abs, pct) = b.theoretical_cycle_profit(rates);
        // (460 − 450) × 0.01 − (4.50 + 4.60) × 0.004
        assert_eq!(abs, dec!(0.0636));
        assert_eq!(pct, dec!(1.4133));
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut b = bot(true);
        placed(&b.step(BotInput::Started, 0));
        let text = serde_json::to_string(&b).unwrap();
        let back: RangeBot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, b);
    }

    /// Any sequence of inputs, in any state: no panic, one order at a time,
    /// never a reused client_oid, and nothing at all once final.
    mod every_input_in_every_state {
        use std::collections::HashSet;

        use proptest::prelude::*;

        use super::*;

        fn input(code: u8, cid: ClientOid) -> BotInput {
            let other = ClientOid(Uuid::from_u128(12345));
            match code {
                0 => BotInput::Started,
                1 => BotInput::Accepted {
                    client_oid: cid,
                    order_id: OrderId(Uuid::from_u128(9)),
                },
                2 => BotInput::Fill {
                    client_oid: cid,
                    price: Price::parse("450.00").unwrap(),
                    size: Size::parse("0.004").unwrap(),
                    fee: dec!(0.01),
                },
                3 => BotInput::Done {
                    client_oid: cid,
                    reason: DoneReason::Filled,
                },
                4 => BotInput::Done {
                    client_oid: cid,
                    reason: DoneReason::Canceled(CancelReason::User),
                },
                5 => BotInput::Rejected {
                    client_oid: cid,
                    reason: "Insufficient funds".into(),
                },
                6 => BotInput::Stop,
                7 => BotInput::Pause,
                8 => BotInput::Resume,
                _ => BotInput::Done {
                    client_oid: other,
                    reason: DoneReason::Filled,
                },
            }
        }

        proptest! {
            #[test]
            fn invariants_hold(codes in proptest::collection::vec(0u8..10, 1..80), looping: bool) {
                let mut b = bot(looping);
                let mut seen = HashSet::new();
                for code in codes {
                    let cid = b
                        .working()
                        .map_or(ClientOid(Uuid::from_u128(1)), |w| w.intent.client_oid);
                    let was_final = b.status().is_final();
                    let cmds = b.step(input(code, cid), 0);
                    if was_final {
                        prop_assert!(cmds.is_empty());
                    }
                    let places: Vec<_> = cmds
                        .iter()
                        .filter_map(|c| match c {
                            Command::Place(i) => Some(*i),
                            _ => None,
                        })
                        .collect();
                    prop_assert!(places.len() <= 1);
                    for p in places {
                        prop_assert!(seen.insert(p.client_oid), "client_oid reused");
                        prop_assert_eq!(b.working().map(|w| w.intent), Some(p));
                    }
                    if b.status().is_final() {
                        prop_assert!(b.working().is_none());
                    }
                    prop_assert!(b.account().fees_paid >= Decimal::ZERO);
                }
            }
        }
    }
}
