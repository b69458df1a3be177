//! The grid bot: resting buys below and sells above the price on a ladder
//! of fixed levels; each filled buy becomes a sell one level up, each
//! filled sell a buy one level down.
//!
//! # One order per level
//! The ladder is laid at the first price the bot sees: the level nearest the
//! price stays empty, buys go on every level below it and sells on every
//! level above. Each fill moves the empty level, so no two orders ever share
//! a level. When a fill's follow-up order belongs on a level that is still
//! busy (a partly filled order there), it is *owed* to that level and placed
//! when the level frees; while paused, follow-ups are owed too and placed on
//! resume.
//!
//! # Round trips
//! A sell placed for a filled buy carries that buy's cost (value + fees).
//! When the sell fills, the round trip's profit `sell value − sell fees −
//! buy cost` is realized. The opening sells have no buy behind them: their
//! fees are paid, no round trip is claimed.
//!
//! # Bounds and endings
//! A trade at or below the stop-loss price, or at or above the take-profit
//! price, cancels every order and sells what the grid bought and still holds
//! at market, then ends the bot. Stop cancels every order and stops. A
//! refused order, or one canceled outside virc, cancels the others and fails
//! the bot. In every case the final status is taken only once no order is
//! left on the book.

use rust_decimal::{Decimal, MathematicalOps};
use serde::{Deserialize, Serialize};

use super::{
    BotAccount, BotInput, BotStatus, Command, Env, OrderIntent, OrderKind, Working,
    outside_cancel_text, pause, record, resume,
};
use crate::{
    ids::{BotId, ClientOid},
    money::{Price, Size},
    order::{DoneReason, Side},
};

/// Parameters of a grid bot, checked and on the product's increments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridParams {
    /// Product id ("BTC-USD").
    pub product_id: String,
    /// Base currency ("BTC").
    pub base: String,
    /// Quote currency ("USD").
    pub quote: String,
    /// Level prices, ascending, at least two.
    pub levels: Vec<Price>,
    /// Equal ratios between levels (else equal differences), as created.
    #[serde(default)]
    pub geometric: bool,
    /// Base size of each level's order.
    pub size: Size,
    /// End the bot when a trade is at or below this.
    pub stop_loss: Option<Price>,
    /// End the bot when a trade is at or above this.
    pub take_profit: Option<Price>,
    /// The product's base increment, for the exit sell.
    pub base_increment: Decimal,
}

/// The level prices from `lower` to `upper`: `n` levels, equal differences
/// (arithmetic) or equal ratios (geometric), rounded to `increment`.
pub fn ladder(
    lower: Price,
    upper: Price,
    n: u32,
    geometric: bool,
    increment: Decimal,
) -> Result<Vec<Price>, String> {
    if n < 2 {
        return Err(format!("a grid needs at least 2 levels, not {n}"));
    }
    if n > 200 {
        return Err(format!(
            "{n} levels is more than a grid may rest (200); widen the spacing"
        ));
    }
    if upper <= lower {
        return Err(format!(
            "the upper price {upper} must be above the lower price {lower}"
        ));
    }
    let (lo, hi) = (lower.get(), upper.get());
    let steps = Decimal::from(n - 1);
    let ratio = if geometric {
        (hi / lo)
            .checked_powd(Decimal::ONE / steps)
            .ok_or_else(|| {
                format!("cannot space {n} levels geometrically between {lower} and {upper}")
            })?
    } else {
        Decimal::ZERO
    };
    let mut out: Vec<Price> = Vec::with_capacity(n as usize);
    for i in 0..n {
        let raw = if i == n - 1 {
            hi
        } else if geometric {
            lo * ratio.powu(u64::from(i))
        } else {
            lo + (hi - lo) * Decimal::from(i) / steps
        };
        let p = Price::new(raw)
            .map(|p| p.round_to(increment))
            .and_then(Price::new)
            .map_err(|_| format!("level {} ({raw}) is not a price", i + 1))?;
        if out.last().is_some_and(|last| *last >= p) {
            return Err(format!(
                "{n} levels between {lower} and {upper} are closer than the quote increment {}; use fewer levels",
                increment.normalize()
            ));
        }
        out.push(p);
    }
    Ok(out)
}

/// A level's order, with the cost of the buy a sell closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LevelOrder {
    working: Working,
    /// Value + fees of the buy whose base this sell sells; `None` for buys
    /// and opening sells.
    basis: Option<Decimal>,
}

/// An order a level is waiting to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Owed {
    side: Side,
    size: Size,
    basis: Option<Decimal>,
}

/// The final status to take once no order is left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Closing {
    status: BotStatus,
    reason: String,
    /// Sell what the grid holds at market first (a bound was hit).
    sell_holdings: bool,
}

/// The grid bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridBot {
    id: BotId,
    params: GridParams,
    status: BotStatus,
    reason: String,
    /// Intents so far; the next one is `step + 1`.
    step: u64,
    /// The ladder has been laid.
    laid: bool,
    slots: Vec<Option<LevelOrder>>,
    owed: Vec<Option<Owed>>,
    closing: Option<Closing>,
    /// The market sell of the holdings, when a bound was hit.
    exit: Option<Working>,
    /// Base bought minus base sold by the grid.
    holdings: Decimal,
    /// Base the opening sells were given.
    opening_base: Decimal,
    account: BotAccount,
}

impl GridBot {
    /// A new grid bot; it lays its ladder at the first price it sees.
    pub fn new(id: BotId, params: GridParams) -> Self {
        let n = params.levels.len();
        Self {
            id,
            params,
            status: BotStatus::Running,
            reason: String::new(),
            step: 0,
            laid: false,
            slots: vec![None; n],
            owed: vec![None; n],
            closing: None,
            exit: None,
            holdings: Decimal::ZERO,
            opening_base: Decimal::ZERO,
            account: BotAccount::default(),
        }
    }

    common_accessors!(GridParams);

    /// Base the grid bought and still holds.
    pub fn holdings(&self) -> Decimal {
        self.holdings
    }

    /// Base given to the opening sells.
    pub fn opening_base(&self) -> Decimal {
        self.opening_base
    }

    /// Whether it needs every trade: to lay its ladder, or to watch its bounds.
    pub fn wants_market(&self) -> bool {
        !self.laid || self.params.stop_loss.is_some() || self.params.take_profit.is_some()
    }

    /// Which buys and sells the ladder gets at `price`: buys below the
    /// level nearest the price, sells above it. Returns the empty level.
    pub fn split(levels: &[Price], price: Price) -> usize {
        levels
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| (l.get() - price.get()).abs())
            .map_or(0, |(i, _)| i)
    }

    /// Orders on the book or on their way, with the level each is on.
    pub fn level_orders(&self) -> impl Iterator<Item = (usize, &Working)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|o| (i, &o.working)))
    }

    /// Every order not seen done.
    pub fn working(&self) -> Vec<&Working> {
        self.level_orders()
            .map(|(_, w)| w)
            .chain(self.exit.as_ref())
            .collect()
    }

    /// The current step in words.
    pub fn describe_step(&self) -> String {
        if self.status.is_final() {
            return format!("{} ({})", self.status.name(), self.reason);
        }
        let p = &self.params;
        let (lo, hi) = (p.levels[0], p.levels[p.levels.len() - 1]);
        if let Some(x) = &self.exit {
            return format!("selling {} {} at market to exit", x.intent.size, p.base);
        }
        if let Some(c) = &self.closing {
            return format!(
                "{}: canceling {} orders",
                c.reason,
                self.level_orders().count()
            );
        }
        if !self.laid {
            return format!(
                "waiting for a first trade to lay {} levels {lo}–{hi} {}",
                p.levels.len(),
                p.quote
            );
        }
        let (mut buys, mut sells) = (0, 0);
        for (_, w) in self.level_orders() {
            match w.intent.side {
                Side::Buy => buys += 1,
                Side::Sell => sells += 1,
            }
        }
        format!(
            "{buys} buys and {sells} sells of {} {} on {} levels {lo}–{hi} {}",
            p.size,
            p.base,
            p.levels.len(),
            p.quote
        )
    }

    fn next_intent(
        &mut self,
        side: Side,
        price: Price,
        size: Size,
        kind: OrderKind,
    ) -> OrderIntent {
        self.step += 1;
        OrderIntent {
            client_oid: ClientOid::for_intent(self.id, self.step, 0),
            side,
            price,
            size,
            kind,
        }
    }

    /// Places `owed` on `level` now, or keeps it owed while the level is busy or the bot paused.
    fn place_or_owe(&mut self, level: usize, owed: Owed, out: &mut Vec<Command>) {
        if self.slots[level].is_some() || self.status != BotStatus::Running {
            self.owed[level] = Some(owed);
            return;
        }
        let intent = self.next_intent(
            owed.side,
            self.params.levels[level],
            owed.size,
            OrderKind::Limit,
        );
        self.slots[level] = Some(LevelOrder {
            working: Working::new(intent),
            basis: owed.basis,
        });
        out.push(Command::Place(intent));
    }

    fn place_owed(&mut self, out: &mut Vec<Command>) {
        for level in 0..self.owed.len() {
            if self.slots[level].is_none()
                && let Some(o) = self.owed[level].take()
            {
                self.place_or_owe(level, o, out);
            }
        }
    }

    fn lay(&mut self, price: Price, out: &mut Vec<Command>) {
        let empty = Self::split(&self.params.levels, price);
        self.laid = true;
        let size = self.params.size;
        for level in 0..self.params.levels.len() {
            let side = match level.cmp(&empty) {
                std::cmp::Ordering::Less => Side::Buy,
                std::cmp::Ordering::Equal => continue,
                std::cmp::Ordering::Greater => {
                    self.opening_base += size.get();
                    Side::Sell
                }
            };
            self.place_or_owe(
                level,
                Owed {
                    side,
                    size,
                    basis: None,
                },
                out,
            );
        }
        out.push(Command::Note(format!(
            "grid laid at {}: {}",
            price.get().normalize(),
            self.describe_step()
        )));
    }

    fn finish(&mut self, status: BotStatus, reason: String, out: &mut Vec<Command>) {
        self.status = status;
        self.reason.clone_from(&reason);
        self.owed.iter_mut().for_each(|o| *o = None);
        out.push(Command::Status { status, reason });
    }

    /// Cancels every order; the bot takes `status` once none is left.
    fn close(&mut self, closing: Closing, out: &mut Vec<Command>) {
        if self.closing.is_some() {
            return;
        }
        out.push(Command::Note(format!(
            "{}: canceling every order",
            closing.reason
        )));
        self.closing = Some(closing);
        self.owed.iter_mut().for_each(|o| *o = None);
        for slot in self.slots.iter_mut().flatten() {
            if !slot.working.cancel_requested {
                slot.working.cancel_requested = true;
                out.push(Command::Cancel(slot.working.intent.client_oid));
            }
        }
        self.settle(out);
    }

    /// Takes the closing status once no order is left (after the exit sell, if one is due).
    fn settle(&mut self, out: &mut Vec<Command>) {
        if self.slots.iter().any(Option::is_some) || self.exit.is_some() {
            return;
        }
        let Some(c) = self.closing.clone() else {
            return;
        };
        let sell = Size::new(self.holdings.max(Decimal::ZERO))
            .map(|s| Size::new(s.floor_to(self.params.base_increment)).unwrap_or(s))
            .ok()
            .filter(|s| !s.is_zero());
        if c.sell_holdings
            && let Some(size) = sell
        {
            // The reference price for the record is the level the bound is nearest.
            let reference = self
                .params
                .stop_loss
                .or(self.params.take_profit)
                .unwrap_or(self.params.levels[0]);
            let intent = self.next_intent(Side::Sell, reference, size, OrderKind::Market);
            self.exit = Some(Working::new(intent));
            self.closing = Some(Closing {
                sell_holdings: false,
                ..c
            });
            out.push(Command::Place(intent));
            return;
        }
        self.closing = None;
        self.finish(c.status, c.reason, out);
    }

    fn find(&mut self, cid: ClientOid) -> Option<&mut Working> {
        if let Some(x) = self.exit.as_mut().filter(|x| x.intent.client_oid == cid) {
            return Some(x);
        }
        self.slots
            .iter_mut()
            .flatten()
            .map(|o| &mut o.working)
            .find(|w| w.intent.client_oid == cid)
    }

    fn level_of(&self, cid: ClientOid) -> Option<usize> {
        self.slots.iter().position(|s| {
            s.as_ref()
                .is_some_and(|o| o.working.intent.client_oid == cid)
        })
    }

    fn words(&self, w: &Working) -> String {
        w.intent.words(&self.params.base, &self.params.quote)
    }

    /// Advances the bot by one input. Returns the commands to perform, in order.
    pub fn step(&mut self, input: BotInput, env: &Env<'_>) -> Vec<Command> {
        let mut out = Vec::new();
        if self.status.is_final() {
            return out;
        }
        match input {
            BotInput::Started => {
                if self.closing.is_some() {
                    self.settle(&mut out);
                } else if !self.laid {
                    if let (Some(price), BotStatus::Running) = (env.price(), self.status) {
                        self.lay(price, &mut out);
                    }
                } else if self.status == BotStatus::Running {
                    self.place_owed(&mut out);
                }
            }
            BotInput::Market { price } => self.on_price(price, &mut out),
            input @ (BotInput::Accepted { client_oid, .. } | BotInput::Fill { client_oid, .. }) => {
                if let Some(w) = self.find(client_oid) {
                    let fee = record(w, &input);
                    self.account.fees_paid += fee;
                }
            }
            BotInput::Rejected { client_oid, reason } => {
                if self
                    .exit
                    .as_ref()
                    .is_some_and(|x| x.intent.client_oid == client_oid)
                {
                    let x = self.exit.take();
                    let what = x.map(|x| self.words(&x)).unwrap_or_default();
                    out.push(Command::Note(format!("{what} refused: {reason}")));
                    self.closing = None;
                    self.finish(
                        BotStatus::Failed,
                        format!("exit sell refused: {reason}"),
                        &mut out,
                    );
                } else if let Some(level) = self.level_of(client_oid) {
                    let o = self.slots[level].take();
                    let what = o.map(|o| self.words(&o.working)).unwrap_or_default();
                    out.push(Command::Note(format!("{what} refused: {reason}")));
                    self.close(
                        Closing {
                            status: BotStatus::Failed,
                            reason: format!("order refused: {reason}"),
                            sell_holdings: false,
                        },
                        &mut out,
                    );
                }
            }
            BotInput::Done { client_oid, reason } => self.on_done(client_oid, reason, &mut out),
            BotInput::Stop => {
                if self.exit.is_none() {
                    self.close(
                        Closing {
                            status: BotStatus::Stopped,
                            reason: "stopped by the user".into(),
                            sell_holdings: false,
                        },
                        &mut out,
                    );
                }
            }
            BotInput::Pause => {
                pause(&mut self.status, "paused by the user", &mut out);
            }
            BotInput::Resume => {
                if resume(&mut self.status, &mut out) {
                    if self.laid {
                        self.place_owed(&mut out);
                    } else if let Some(price) = env.price() {
                        self.lay(price, &mut out);
                    }
                }
            }
            BotInput::GuardStopped { .. } => {}
        }
        out
    }

    fn on_price(&mut self, price: Price, out: &mut Vec<Command>) {
        if !self.laid {
            if self.status == BotStatus::Running {
                self.lay(price, out);
            }
            return;
        }
        if self.closing.is_some() {
            return;
        }
        let hit = match (self.params.stop_loss, self.params.take_profit) {
            (Some(sl), _) if price <= sl => Some(format!(
                "stop-loss {sl} reached (trade at {})",
                price.get().normalize()
            )),
            (_, Some(tp)) if price >= tp => Some(format!(
                "take-profit {tp} reached (trade at {})",
                price.get().normalize()
            )),
            _ => None,
        };
        if let Some(reason) = hit {
            self.close(
                Closing {
                    status: BotStatus::Ended,
                    reason,
                    sell_holdings: true,
                },
                out,
            );
        }
    }

    fn on_done(&mut self, cid: ClientOid, reason: DoneReason, out: &mut Vec<Command>) {
        if let Some(x) = self.exit.as_ref().filter(|x| x.intent.client_oid == cid) {
            let x = x.clone();
            self.exit = None;
            self.holdings -= x.filled;
            out.push(Command::Note(format!(
                "{} done: {} sold for {} {}",
                self.words(&x),
                x.filled.normalize(),
                x.value.normalize(),
                self.params.quote
            )));
            self.settle(out);
            return;
        }
        let Some(level) = self.level_of(cid) else {
            return;
        };
        let Some(o) = self.slots[level].take() else {
            return;
        };
        let w = &o.working;
        match w.intent.side {
            Side::Buy => self.holdings += w.filled,
            Side::Sell => self.holdings -= w.filled,
        }
        let what = self.words(w);
        match reason {
            DoneReason::Filled => {
                out.push(Command::Note(format!(
                    "{what} filled (level {})",
                    level + 1
                )));
                let follow = match w.intent.side {
                    Side::Buy => Size::new(w.filled.normalize()).ok().map(|size| {
                        (
                            level + 1,
                            Owed {
                                side: Side::Sell,
                                size,
                                basis: Some(w.value + w.fees),
                            },
                        )
                    }),
                    Side::Sell => {
                        if let Some(basis) = o.basis {
                            let a = &mut self.account;
                            a.last_cycle = w.value - w.fees - basis;
                            a.realized += a.last_cycle;
                            a.cycles += 1;
                            out.push(Command::Note(a.cycle_note(&self.params.quote)));
                        }
                        level.checked_sub(1).map(|below| {
                            (
                                below,
                                Owed {
                                    side: Side::Buy,
                                    size: self.params.size,
                                    basis: None,
                                },
                            )
                        })
                    }
                };
                if self.closing.is_none()
                    && let Some((to, owed)) = follow.filter(|(to, _)| *to < self.slots.len())
                {
                    self.place_or_owe(to, owed, out);
                }
            }
            DoneReason::Canceled(_) if w.cancel_requested => {
                out.push(Command::Note(format!(
                    "{what} canceled ({} filled)",
                    w.filled.normalize()
                )));
            }
            DoneReason::Canceled(why) => {
                let text = outside_cancel_text(why);
                out.push(Command::Note(format!("{what} canceled: {text}")));
                self.close(
                    Closing {
                        status: BotStatus::Failed,
                        reason: text.into(),
                        sell_holdings: false,
                    },
                    out,
                );
            }
        }
        if self.closing.is_some() {
            self.settle(out);
        } else if self.status == BotStatus::Running
            && let Some(owed) = self.owed[level].take()
        {
            self.place_or_owe(level, owed, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use rust_decimal_macros::dec;
    use uuid::Uuid;

    use super::*;
    use crate::{ids::OrderId, order::CancelReason, rule::Values};

    struct Last(Decimal);

    impl Values for Last {
        fn value(&self, var: &crate::rule::Var) -> Option<Decimal> {
            (*var == super::super::LAST_PRICE).then_some(self.0)
        }
    }

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    fn params(sl: Option<&str>, tp: Option<&str>) -> GridParams {
        GridParams {
            product_id: "BTC-USD".into(),
            base: "BTC".into(),
            quote: "USD".into(),
            levels: ladder(p("440"), p("460"), 5, false, dec!(0.01)).unwrap(),
            geometric: false,
            size: Size::parse("0.01").unwrap(),
            stop_loss: sl.map(p),
            take_profit: tp.map(p),
            base_increment: dec!(0.00000001),
        }
    }

    fn started_at(b: &mut GridBot, price: Decimal) -> Vec<Command> {
        let m = Last(price);
        b.step(
            BotInput::Started,
            &Env {
                now: 0,
                market: Some(&m),
            },
        )
    }

    fn places(cmds: &[Command]) -> Vec<OrderIntent> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Place(i) => Some(*i),
                _ => None,
            })
            .collect()
    }

    fn fill_all(b: &mut GridBot, i: OrderIntent, fee: Decimal) -> Vec<Command> {
        let env = Env::at(0);
        b.step(
            BotInput::Fill {
                client_oid: i.client_oid,
                price: i.price,
                size: i.size,
                fee,
            },
            &env,
        );
        b.step(
            BotInput::Done {
                client_oid: i.client_oid,
                reason: DoneReason::Filled,
            },
            &env,
        )
    }

    #[test]
    fn ladders_are_spaced_and_checked() {
        let a = ladder(p("440"), p("460"), 5, false, dec!(0.01)).unwrap();
        assert_eq!(
            a.iter().map(|p| p.get()).collect::<Vec<_>>(),
            [dec!(440), dec!(445), dec!(450), dec!(455), dec!(460)]
        );
        let g = ladder(p("100"), p("400"), 3, true, dec!(0.01)).unwrap();
        assert_eq!(
            g.iter().map(|p| p.get()).collect::<Vec<_>>(),
            [dec!(100), dec!(200), dec!(400)]
        );
        assert!(
            ladder(p("450"), p("450.02"), 5, false, dec!(0.01))
                .unwrap_err()
                .contains("closer than the quote increment")
        );
        assert!(ladder(p("460"), p("440"), 5, false, dec!(0.01)).is_err());
        assert!(ladder(p("440"), p("460"), 1, false, dec!(0.01)).is_err());
    }

    #[test]
    fn lays_buys_below_and_sells_above_leaving_the_nearest_level_empty() {
        let mut b = GridBot::new(BotId(Uuid::from_u128(3)), params(None, None));
        assert!(
            b.step(BotInput::Started, &Env::at(0)).is_empty(),
            "no price yet"
        );
        assert!(b.describe_step().starts_with("waiting for a first trade"));
        let cmds = b.step(BotInput::Market { price: p("451") }, &Env::at(0));
        let placed = places(&cmds);
        let sides: Vec<_> = placed.iter().map(|i| (i.side, i.price.get())).collect();
        assert_eq!(
            sides,
            [
                (Side::Buy, dec!(440)),
                (Side::Buy, dec!(445)),
                (Side::Sell, dec!(455)),
                (Side::Sell, dec!(460))
            ]
        );
        assert_eq!(b.opening_base(), dec!(0.02));
        assert_eq!(
            b.describe_step(),
            "2 buys and 2 sells of 0.01 BTC on 5 levels 440.00–460.00 USD"
        );
        // Distinct, deterministic ids.
        let ids: HashSet<_> = placed.iter().map(|i| i.client_oid).collect();
        assert_eq!(ids.len(), 4);
    }

    #[test]
    fn a_filled_buy_sells_one_level_up_and_the_round_trip_is_net_of_fees() {
        let mut b = GridBot::new(BotId(Uuid::from_u128(3)), params(None, None));
        let placed = places(&started_at(&mut b, dec!(451)));
        let buy445 = placed[1];
        let cmds = fill_all(&mut b, buy445, dec!(0.01));
        let sell = places(&cmds)[0];
        assert_eq!(
            (sell.side, sell.price.get(), sell.size.get()),
            (Side::Sell, dec!(450), dec!(0.01))
        );
        let cmds = fill_all(&mut b, sell, dec!(0.02));
        let rebuy = places(&cmds)[0];
        assert_eq!((rebuy.side, rebuy.price.get()), (Side::Buy, dec!(445)));
        // 4.50 − 0.02 − (4.45 + 0.01)
        assert_eq!(b.account().realized, dec!(0.02));
        assert_eq!(b.account().cycles, 1);
        assert_eq!(b.account().fees_paid, dec!(0.03));
        assert_eq!(b.holdings(), dec!(0));
        // An opening sell filling claims no round trip.
        let cmds = fill_all(&mut b, placed[2], dec!(0.01));
        assert_eq!(places(&cmds)[0].price.get(), dec!(450));
        assert_eq!(b.account().cycles, 1);
    }

    #[test]
    fn a_busy_level_is_owed_its_order_until_it_frees() {
        let mut b = GridBot::new(BotId(Uuid::from_u128(3)), params(None, None));
        let placed = places(&started_at(&mut b, dec!(451)));
        let (buy440, buy445, sell455) = (placed[0], placed[1], placed[2]);
        let env = Env::at(0);
        // 455 sells: a buy goes to the empty 450.
        let buy450 = places(&fill_all(&mut b, sell455, dec!(0)))[0];
        assert_eq!(buy450.price.get(), dec!(450));
        // 445 fills: its sell belongs on 450, which holds a buy: owed.
        assert!(places(&fill_all(&mut b, buy445, dec!(0))).is_empty());
        // 450's buy fills: its sell goes to 455, and the owed sell takes 450.
        let cmds = fill_all(&mut b, buy450, dec!(0));
        let prices: Vec<_> = places(&cmds)
            .iter()
            .map(|i| (i.side, i.price.get()))
            .collect();
        assert_eq!(prices, [(Side::Sell, dec!(455)), (Side::Sell, dec!(450))]);
        assert!(
            b.step(
                BotInput::Done {
                    client_oid: buy440.client_oid,
                    reason: DoneReason::Canceled(CancelReason::User)
                },
                &env
            )
            .contains(&Command::Cancel(placed[3].client_oid))
        );
        assert_eq!(
            b.status(),
            BotStatus::Running,
            "fails only once every order is gone"
        );
    }

    #[test]
    fn stop_loss_cancels_everything_sells_the_holdings_and_ends() {
        let mut b = GridBot::new(BotId(Uuid::from_u128(3)), params(Some("438"), None));
        let placed = places(&started_at(&mut b, dec!(451)));
        fill_all(&mut b, placed[1], dec!(0));
        let env = Env::at(0);
        let cmds = b.step(BotInput::Market { price: p("437.50") }, &env);
        let cancels = cmds
            .iter()
            .filter(|c| matches!(c, Command::Cancel(_)))
            .count();
        assert_eq!(cancels, 4, "three ladder orders and the new sell");
        for c in &cmds {
            if let Command::Cancel(cid) = c {
                let out = b.step(
                    BotInput::Done {
                        client_oid: *cid,
                        reason: DoneReason::Canceled(CancelReason::User),
                    },
                    &env,
                );
                if let Some(exit) = places(&out).first() {
                    assert_eq!(
                        (exit.kind, exit.side, exit.size.get()),
                        (OrderKind::Market, Side::Sell, dec!(0.01))
                    );
                    assert!(b.describe_step().contains("at market"));
                    let out = fill_all(&mut b, *exit, dec!(0.03));
                    assert!(out.iter().any(|c| matches!(
                        c,
                        Command::Status {
                            status: BotStatus::Ended,
                            ..
                        }
                    )));
                }
            }
        }
        assert_eq!(b.status(), BotStatus::Ended);
        assert!(
            b.reason().starts_with("stop-loss 438 reached"),
            "{}",
            b.reason()
        );
        assert!(b.working().is_empty());
    }

    #[test]
    fn paused_grids_owe_their_follow_ups_until_resumed() {
        let mut b = GridBot::new(BotId(Uuid::from_u128(3)), params(None, None));
        let placed = places(&started_at(&mut b, dec!(451)));
        let env = Env::at(0);
        b.step(BotInput::Pause, &env);
        assert!(places(&fill_all(&mut b, placed[1], dec!(0))).is_empty());
        let cmds = b.step(BotInput::Resume, &env);
        assert_eq!(places(&cmds)[0].price.get(), dec!(450));
        let cmds = b.step(BotInput::Stop, &env);
        assert_eq!(
            cmds.iter()
                .filter(|c| matches!(c, Command::Cancel(_)))
                .count(),
            4
        );
        assert_eq!(b.status(), BotStatus::Running);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut b = GridBot::new(BotId(Uuid::from_u128(3)), params(Some("430"), Some("470")));
        started_at(&mut b, dec!(451));
        let text = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<GridBot>(&text).unwrap(), b);
    }

    /// Arbitrary fills, cancels, refusals, prices, pauses and stops: never two
    /// orders on one level, never more sold than the opening base plus what
    /// was bought, never a reused client_oid, no orders left once final.
    mod invariants {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn hold(ops in proptest::collection::vec((0u8..9, 0usize..8, 0u8..4), 1..120)) {
                let mut b = GridBot::new(BotId(Uuid::from_u128(5)), params(Some("436"), Some("466")));
                let env = Env::at(0);
                let mut live: HashMap<ClientOid, OrderIntent> = HashMap::new();
                let mut filled: HashMap<ClientOid, Decimal> = HashMap::new();
                let mut seen = HashSet::new();
                let (mut bought, mut sold) = (Decimal::ZERO, Decimal::ZERO);
                let mut track = |cmds: &[Command], live: &mut HashMap<ClientOid, OrderIntent>| -> Result<(), TestCaseError> {
                    for i in places(cmds) {
                        prop_assert!(seen.insert(i.client_oid), "client_oid reused");
                        if i.kind == OrderKind::Limit {
                            prop_assert!(!live.values().any(|o| o.kind == OrderKind::Limit && o.price == i.price), "two orders at {}", i.price);
                        }
                        live.insert(i.client_oid, i);
                    }
                    Ok(())
                };
                let cmds = started_at(&mut b, dec!(451));
                track(&cmds, &mut live)?;
                for (op, pick, part) in ops {
                    let mut ids: Vec<_> = live.keys().copied().collect();
                    ids.sort();
                    let target = ids.get(pick % ids.len().max(1)).copied();
                    let cmds = match (op, target) {
                        (0 | 1, Some(cid)) => {
                            let i = live[&cid];
                            let done = filled.get(&cid).copied().unwrap_or_default();
                            let left = i.size.get() - done;
                            let size = if part == 0 { left } else { (left / Decimal::TWO).round_dp(8) };
                            if size.is_zero() { continue; }
                            *filled.entry(cid).or_default() += size;
                            match i.side { Side::Buy => bought += size, Side::Sell => sold += size }
                            b.step(BotInput::Fill { client_oid: cid, price: i.price, size: Size::new(size).unwrap(), fee: dec!(0.001) }, &env)
                        }
                        (2, Some(cid)) => {
                            let full = filled.get(&cid).copied().unwrap_or_default() == live[&cid].size.get();
                            live.remove(&cid);
                            let reason = if full { DoneReason::Filled } else { DoneReason::Canceled(CancelReason::User) };
                            b.step(BotInput::Done { client_oid: cid, reason }, &env)
                        }
                        (3, Some(cid)) if !filled.contains_key(&cid) => {
                            live.remove(&cid);
                            b.step(BotInput::Rejected { client_oid: cid, reason: "Insufficient funds".into() }, &env)
                        }
                        (4, _) => b.step(BotInput::Market { price: p(["437", "450", "465", "470"][usize::from(part)]) }, &env),
                        (5, _) => b.step(BotInput::Pause, &env),
                        (6, _) => b.step(BotInput::Resume, &env),
                        (7, _) => b.step(BotInput::Stop, &env),
                        (_, Some(cid)) => b.step(BotInput::Accepted { client_oid: cid, order_id: OrderId(Uuid::from_u128(9)) }, &env),
                        _ => b.step(BotInput::Started, &env),
                    };
                    track(&cmds, &mut live)?;
                    prop_assert!(sold <= b.opening_base() + bought, "sold {sold} > opening {} + bought {bought}", b.opening_base());
                    let working: HashSet<_> = b.working().iter().map(|w| w.intent.client_oid).collect();
                    let outstanding: HashSet<_> = live.keys().copied().collect();
                    prop_assert_eq!(&working, &outstanding);
                    if b.status().is_final() {
                        prop_assert!(working.is_empty());
                    }
                }
            }
        }
    }
}
