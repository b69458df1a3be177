//! Balances, holds, fees and per-bot reservations of one account.
//!
//! # Holds, as Coinbase takes them at acceptance
//! | order                       | hold                                   |
//! |-----------------------------|----------------------------------------|
//! | limit buy                   | `price × size × (1 + taker)` in quote  |
//! | limit sell                  | `size` in base                         |
//! | market buy with `funds`     | `funds` in quote                       |
//! | market buy with only `size` | the whole available quote              |
//! | market sell with `size`     | `size` in base                         |
//! | market sell with only `funds` | the whole available base             |
//!
//! A fill consumes its cost from the hold; what is left is released when the
//! order is done. Stops take their hold when they trigger (the caller calls
//! [`Ledger::place_hold`] then). Fees are charged in quote per fill.
//!
//! # Reservations
//! A bot's reservation is money set aside for it inside `available`. A
//! bot's order can hold only from its own reservation; a manual order only
//! from what no bot has reserved. What a bot's fill brings in is added to
//! its reservation, so two bots can never spend the same money.
//!
//! # Invariants
//! `0 ≤ hold ≤ balance` per currency; `Σ reservations ≤ available`.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde::{Deserialize, Serialize};

use crate::{
    ids::{BotId, Currency, IdError, IdMap, OrderId},
    money::{Funds, Price, Size, cmp},
    order::{INSUFFICIENT_FUNDS, MarketAmount, NewOrder, OrderKind, Rejection, Side},
    product::Product,
};

/// Maker and taker fee rates (0.004 = 0.40 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeRates {
    /// Rate for fills that rested on the book.
    pub maker: Decimal,
    /// Rate for fills that took liquidity.
    pub taker: Decimal,
}

/// One row of a volume-tiered fee table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeTier {
    /// 30-day USD volume from which the tier applies.
    pub min_volume: Decimal,
    /// The tier's rates.
    pub rates: FeeRates,
}

/// A volume-tiered fee table; the tier at placement time applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeSchedule {
    tiers: Vec<FeeTier>,
}

impl Default for FeeSchedule {
    /// Coinbase Exchange's published table (0–10K: taker 0.60 %, maker 0.40 %).
    fn default() -> Self {
        let t = |min: Decimal, taker_bps: i64, maker_bps: i64| FeeTier {
            min_volume: min,
            rates: FeeRates {
                maker: Decimal::new(maker_bps, 4),
                taker: Decimal::new(taker_bps, 4),
            },
        };
        Self::new(vec![
            t(dec!(0), 60, 40),
            t(dec!(10_000), 40, 25),
            t(dec!(50_000), 25, 15),
            t(dec!(100_000), 20, 10),
            t(dec!(1_000_000), 18, 8),
            t(dec!(15_000_000), 16, 6),
            t(dec!(75_000_000), 12, 3),
            t(dec!(250_000_000), 8, 0),
            t(dec!(400_000_000), 5, 0),
        ])
    }
}

impl FeeSchedule {
    /// A table from tiers (any order).
    pub fn new(mut tiers: Vec<FeeTier>) -> Self {
        tiers.sort_by_key(|t| t.min_volume);
        Self { tiers }
    }

    /// One flat rate pair for every volume.
    pub fn flat(rates: FeeRates) -> Self {
        Self::new(vec![FeeTier {
            min_volume: Decimal::ZERO,
            rates,
        }])
    }

    /// The rates for a 30-day volume.
    pub fn rates_for(&self, volume_30d: Decimal) -> FeeRates {
        self.tiers
            .iter()
            .rev()
            .find(|t| volume_30d >= t.min_volume)
            .or_else(|| self.tiers.first())
            .map_or(
                FeeRates {
                    maker: Decimal::ZERO,
                    taker: Decimal::ZERO,
                },
                |t| t.rates,
            )
    }
}

/// The funds a market buy by `funds` really trades: `specified / (1 + taker)`,
/// truncated to 8 decimals, as Coinbase reserves the fee out of the funds.
pub fn market_buy_net_funds(specified: Funds, taker: Decimal) -> Funds {
    let net = specified
        .get()
        .checked_div(Decimal::ONE + taker)
        .unwrap_or(Decimal::ZERO);
    Funds::new(net).unwrap_or(Funds::ZERO).truncate_dp(8)
}

/// The fee of one fill: `price × size × rate`, unrounded, in quote.
pub fn fill_fee(price: Price, size: Size, rate: Decimal) -> Decimal {
    price.get() * size.get() * rate
}

/// One currency's balance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Total.
    #[serde(with = "crate::compact::decimal")]
    pub balance: Decimal,
    /// Held by open orders.
    #[serde(with = "crate::compact::decimal")]
    pub hold: Decimal,
}

impl Balance {
    /// `balance − hold`.
    pub fn available(&self) -> Decimal {
        self.balance - self.hold
    }
}

/// A hold taken for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Currency held.
    pub currency: Currency,
    /// Amount still held.
    #[serde(with = "crate::compact::decimal")]
    pub amount: Decimal,
    /// The bot whose reservation it came from.
    pub bot: Option<BotId>,
}

/// Why a ledger operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The exchange's "Insufficient funds".
    #[error("Insufficient funds")]
    InsufficientFunds,
    /// A reservation larger than what is free.
    #[error(
        "cannot reserve {amount} {currency} for the bot: only {free} {currency} is available and not reserved by other bots"
    )]
    CannotReserve {
        /// Currency.
        currency: String,
        /// Asked.
        amount: Decimal,
        /// Free.
        free: Decimal,
    },
    /// The order already has a hold.
    #[error("order {0} already has a hold")]
    DuplicateHold(OrderId),
    /// The order has no hold.
    #[error("order {0} has no hold")]
    NoHold(OrderId),
    /// Negative or zero amount where a positive one is needed.
    #[error("amount must be greater than zero, got {0}")]
    NotPositive(Decimal),
    /// Not a currency code.
    #[error(transparent)]
    Currency(#[from] IdError),
}

impl From<LedgerError> for Rejection {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::InsufficientFunds => Rejection::bad_request(INSUFFICIENT_FUNDS),
            other => Rejection::bad_request(other.to_string()),
        }
    }
}

/// Serialises a map with composite keys as a list of pairs, since JSON
/// object keys can only be strings.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// Serialises a hashed map in key order, so the same ledger always gives
/// the same bytes.
mod sorted {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Hold, IdMap, OrderId};

    pub fn serialize<S: Serializer>(map: &IdMap<Hold>, s: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(&OrderId, &Hold)> = map.iter().collect();
        entries.sort_unstable_by_key(|(k, _)| **k);
        s.collect_map(entries)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IdMap<Hold>, D::Error> {
        Ok(std::collections::BTreeMap::<OrderId, Hold>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

/// Per-currency values of one account, sorted by currency: an account
/// holds two or three currencies, and a linear scan comparing them as two
/// words beat a `BTreeMap`'s entry and search code, which ran three or
/// four times per order (5 % of a matcher operation). Serialised as the
/// map it replaced, so stored ledgers read unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CurrencyMap<V>(Vec<(Currency, V)>);

impl<V> Default for CurrencyMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V: Default> CurrencyMap<V> {
    fn get(&self, currency: Currency) -> Option<&V> {
        self.0.iter().find(|(c, _)| *c == currency).map(|(_, v)| v)
    }

    fn get_str(&self, currency: &str) -> Option<&V> {
        self.0
            .iter()
            .find(|(c, _)| c.as_str() == currency)
            .map(|(_, v)| v)
    }

    fn get_mut(&mut self, currency: Currency) -> Option<&mut V> {
        self.0
            .iter_mut()
            .find(|(c, _)| *c == currency)
            .map(|(_, v)| v)
    }

    /// The value for `currency`, created at its sorted place on first use.
    fn entry(&mut self, currency: Currency) -> &mut V {
        let i = match self.0.iter().position(|(c, _)| *c == currency) {
            Some(i) => i,
            None => {
                let at = self.0.partition_point(|(c, _)| *c < currency);
                self.0.insert(at, (currency, V::default()));
                at
            }
        };
        &mut self.0[i].1
    }
}

impl<V: Default> FromIterator<(Currency, V)> for CurrencyMap<V> {
    fn from_iter<I: IntoIterator<Item = (Currency, V)>>(iter: I) -> Self {
        // Through a map: sorted, and the last value of a repeated key wins.
        Self(
            iter.into_iter()
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
        )
    }
}

impl<V: Serialize> Serialize for CurrencyMap<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(c, v)| (c, v)))
    }
}

impl<'de, V: Deserialize<'de> + Default> Deserialize<'de> for CurrencyMap<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<Currency, V>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

/// What no bot has reserved in `currency`: `available − Σ reservations`,
/// without summing (or subtracting a zero) when no bot reserves anything,
/// a manual trader's usual case; it runs on every manual hold.
fn free(
    balances: &CurrencyMap<Balance>,
    reservations: &BTreeMap<(BotId, Currency), Decimal>,
    currency: Currency,
) -> Decimal {
    let available = balances
        .get(currency)
        .copied()
        .unwrap_or_default()
        .available();
    if reservations.is_empty() {
        return available;
    }
    let reserved: Decimal = reservations
        .iter()
        .filter(|((_, c), _)| *c == currency)
        .map(|(_, a)| *a)
        .sum();
    available - reserved
}

/// One account's money.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    balances: CurrencyMap<Balance>,
    /// Hashed, not ordered: a matcher takes and releases one hold per order,
    /// and a `BTreeMap` of 16-byte ids was a tenth of its time.
    #[serde(with = "sorted")]
    holds: IdMap<Hold>,
    #[serde(with = "pairs")]
    reservations: BTreeMap<(BotId, Currency), Decimal>,
    fees_paid: CurrencyMap<Decimal>,
}

impl Ledger {
    /// Adds funds (a paper wallet, a deposit).
    pub fn deposit(&mut self, currency: &str, amount: Decimal) -> Result<(), LedgerError> {
        if amount <= Decimal::ZERO {
            return Err(LedgerError::NotPositive(amount));
        }
        self.balances.entry(Currency::new(currency)?).balance += amount;
        Ok(())
    }

    /// A ledger from its persisted parts (see the accessors below).
    pub fn restore(
        balances: impl IntoIterator<Item = (Currency, Balance)>,
        holds: impl IntoIterator<Item = (OrderId, Hold)>,
        reservations: impl IntoIterator<Item = (BotId, Currency, Decimal)>,
        fees_paid: impl IntoIterator<Item = (Currency, Decimal)>,
    ) -> Self {
        Self {
            balances: balances.into_iter().collect(),
            holds: holds.into_iter().collect(),
            reservations: reservations
                .into_iter()
                .map(|(b, c, a)| ((b, c), a))
                .collect(),
            fees_paid: fees_paid.into_iter().collect(),
        }
    }

    /// A currency's balance (zero if never seen).
    pub fn balance(&self, currency: &str) -> Balance {
        self.balances.get_str(currency).copied().unwrap_or_default()
    }

    /// [`Ledger::balance`] by code, without comparing text.
    pub fn balance_in(&self, currency: Currency) -> Balance {
        self.balances.get(currency).copied().unwrap_or_default()
    }

    /// All balances, by currency.
    pub fn balances(&self) -> impl Iterator<Item = (Currency, &Balance)> {
        self.balances.0.iter().map(|(c, b)| (*c, b))
    }

    /// Fees paid so far, in `currency`.
    pub fn fees_paid(&self, currency: &str) -> Decimal {
        self.fees_paid
            .get_str(currency)
            .copied()
            .unwrap_or_default()
    }

    /// [`Ledger::fees_paid`] by code, without comparing text; `None` if no
    /// fee was ever charged in it (a record of it would restore as a zero).
    pub fn fees_paid_in(&self, currency: Currency) -> Option<Decimal> {
        self.fees_paid.get(currency).copied()
    }

    /// The hold of an order, if any.
    pub fn hold(&self, order: OrderId) -> Option<&Hold> {
        self.holds.get(&order)
    }

    /// A bot's reservation in `currency`.
    pub fn reserved(&self, bot: BotId, currency: &str) -> Decimal {
        Currency::new(currency).map_or(Decimal::ZERO, |c| self.reserved_in(bot, c))
    }

    /// [`Ledger::reserved`] by code.
    pub fn reserved_in(&self, bot: BotId, currency: Currency) -> Decimal {
        self.reservations
            .get(&(bot, currency))
            .copied()
            .unwrap_or_default()
    }

    /// All reservations: (bot, currency, amount).
    pub fn reservations(&self) -> impl Iterator<Item = (BotId, Currency, Decimal)> {
        self.reservations.iter().map(|((b, c), a)| (*b, *c, *a))
    }

    /// What no bot has reserved in `currency`: `available − Σ reservations`.
    pub fn free(&self, currency: &str) -> Decimal {
        Currency::new(currency).map_or(Decimal::ZERO, |c| self.free_in(c))
    }

    fn free_in(&self, currency: Currency) -> Decimal {
        free(&self.balances, &self.reservations, currency)
    }

    /// Sets aside `amount` of `currency` for `bot`.
    pub fn reserve(
        &mut self,
        bot: BotId,
        currency: &str,
        amount: Decimal,
    ) -> Result<(), LedgerError> {
        if amount <= Decimal::ZERO {
            return Err(LedgerError::NotPositive(amount));
        }
        let code = Currency::new(currency)?;
        let free = self.free(currency);
        if amount > free {
            return Err(LedgerError::CannotReserve {
                currency: currency.to_owned(),
                amount,
                free,
            });
        }
        *self.reservations.entry((bot, code)).or_default() += amount;
        Ok(())
    }

    /// Returns all of a bot's reservations to the free pool.
    pub fn release_reservations(&mut self, bot: BotId) {
        self.reservations.retain(|(b, _), _| *b != bot);
    }

    /// The currency and amount Coinbase would hold for `order` now.
    pub fn hold_needed(
        &self,
        product: &Product,
        order: &NewOrder,
        rates: FeeRates,
        bot: Option<BotId>,
    ) -> (Currency, Decimal) {
        let (base, quote) = (product.base_currency, product.quote_currency);
        let spendable = |c: Currency| match bot {
            Some(b) => self.reserved_in(b, c),
            None => self.free_in(c),
        };
        match (order.side, order.kind) {
            // Checked: a validated order can still be near Decimal's range;
            // what no wallet can hold is simply more than any balance.
            (Side::Buy, OrderKind::Limit { price, size, .. }) => (
                quote,
                price
                    .get()
                    .checked_mul(size.get())
                    .and_then(|v| v.checked_mul(Decimal::ONE + rates.taker))
                    .unwrap_or(Decimal::MAX),
            ),
            (
                Side::Sell,
                OrderKind::Limit { size, .. } | OrderKind::Market(MarketAmount::Size(size)),
            ) => (base, size.get()),
            (Side::Buy, OrderKind::Market(MarketAmount::Funds(funds))) => (quote, funds.get()),
            (Side::Buy, OrderKind::Market(MarketAmount::Size(_))) => (quote, spendable(quote)),
            (Side::Sell, OrderKind::Market(MarketAmount::Funds(_))) => (base, spendable(base)),
        }
    }

    /// Takes a hold for an order, from the bot's reservation or from free funds.
    pub fn place_hold(
        &mut self,
        order: OrderId,
        currency: Currency,
        amount: Decimal,
        bot: Option<BotId>,
    ) -> Result<(), LedgerError> {
        // One probe of the holds for the duplicate check and the insert.
        let std::collections::hash_map::Entry::Vacant(slot) = self.holds.entry(order) else {
            return Err(LedgerError::DuplicateHold(order));
        };
        if amount.is_zero() || amount.is_sign_negative() {
            return Err(LedgerError::InsufficientFunds);
        }
        match bot {
            Some(b) => match self.reservations.get_mut(&(b, currency)) {
                Some(reserved) if cmp(amount, *reserved).is_le() => *reserved -= amount,
                _ => return Err(LedgerError::InsufficientFunds),
            },
            None => {
                // The holds' entry is borrowed, so the free amount comes
                // from the other maps directly.
                if cmp(amount, free(&self.balances, &self.reservations, currency)).is_gt() {
                    return Err(LedgerError::InsufficientFunds);
                }
            }
        }
        slot.insert(Hold {
            currency,
            amount,
            bot,
        });
        self.balances.entry(currency).hold += amount;
        Ok(())
    }

    /// Settles one fill of `order`: moves base and quote, charges the fee in
    /// quote, and consumes the order's hold by what the fill cost.
    #[expect(
        clippy::too_many_arguments,
        reason = "a fill is these facts; a struct would only rename them"
    )]
    pub fn settle_fill(
        &mut self,
        order: OrderId,
        product: &Product,
        side: Side,
        price: Price,
        size: Size,
        fee: Decimal,
        bot: Option<BotId>,
    ) {
        self.settle(
            order,
            product,
            side,
            price.get() * size.get(),
            size,
            fee,
            bot,
        );
    }

    /// [`Ledger::settle_fill`] with the fill's value (`price × size`)
    /// already computed, as the matcher has it for both sides' fees.
    #[expect(clippy::too_many_arguments, reason = "as settle_fill")]
    pub(crate) fn settle(
        &mut self,
        order: OrderId,
        product: &Product,
        side: Side,
        value: Decimal,
        size: Size,
        fee: Decimal,
        bot: Option<BotId>,
    ) {
        let (base, quote) = (product.base_currency, product.quote_currency);
        let (out_currency, out_amount, in_currency, in_amount) = match side {
            Side::Buy => (quote, value + fee, base, size.get()),
            Side::Sell => (base, size.get(), quote, value - fee),
        };
        let used = match self.holds.get_mut(&order) {
            Some(h) => {
                let used = if cmp(out_amount, h.amount).is_le() {
                    out_amount
                } else {
                    h.amount
                };
                h.amount -= used;
                used
            }
            None => Decimal::ZERO,
        };
        let out = self.balances.entry(out_currency);
        out.balance -= out_amount;
        out.hold -= used;
        self.balances.entry(in_currency).balance += in_amount;
        if let Some(b) = bot {
            *self.reservations.entry((b, in_currency)).or_default() += in_amount;
        }
        *self.fees_paid.entry(quote) += fee;
    }

    /// Releases what is left of an order's hold (the order is done); the
    /// rest goes back to the bot's reservation it came from.
    pub fn release_hold(&mut self, order: OrderId) -> Result<Decimal, LedgerError> {
        let hold = self
            .holds
            .remove(&order)
            .ok_or(LedgerError::NoHold(order))?;
        if let Some(b) = self.balances.get_mut(hold.currency) {
            b.hold -= hold.amount;
        }
        if let Some(bot) = hold.bot {
            *self.reservations.entry((bot, hold.currency)).or_default() += hold.amount;
        }
        Ok(hold.amount)
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;
    use uuid::Uuid;

    use super::*;
    use crate::order::OrderRequest;
    use crate::testkit::{btc_usd, limit, order};

    fn usd() -> Currency {
        Currency::new("USD").unwrap()
    }

    fn oid(n: u128) -> OrderId {
        OrderId(Uuid::from_u128(n))
    }

    const RATES: FeeRates = FeeRates {
        maker: dec!(0.004),
        taker: dec!(0.006),
    };

    #[test]
    fn default_fee_table_is_coinbase_published_tiers() {
        let s = FeeSchedule::default();
        assert_eq!(s.rates_for(dec!(0)), RATES);
        assert_eq!(s.rates_for(dec!(9_999.99)), RATES);
        assert_eq!(
            s.rates_for(dec!(10_000)),
            FeeRates {
                maker: dec!(0.0025),
                taker: dec!(0.004)
            }
        );
        assert_eq!(
            s.rates_for(dec!(500_000_000)),
            FeeRates {
                maker: dec!(0),
                taker: dec!(0.0005)
            }
        );
    }

    #[test]
    fn market_buy_funds_match_the_documented_examples() {
        let f = |s: &str| Funds::parse(s).unwrap();
        assert_eq!(
            market_buy_net_funds(f("10"), dec!(0.005)).get(),
            dec!(9.95024875)
        );
        assert_eq!(
            market_buy_net_funds(f("10"), dec!(0.0025)).get(),
            dec!(9.97506234)
        );
        assert_eq!(dec!(9.9502400055) * dec!(0.005), dec!(0.0497512000275));
        assert_eq!(dec!(9.975055662) * dec!(0.0025), dec!(0.024937639155));
    }

    #[test]
    fn holds_follow_coinbase_for_every_order_kind() {
        let p = btc_usd();
        let mut l = Ledger::default();
        l.deposit("USD", dec!(1000)).unwrap();
        l.deposit("BTC", dec!(2)).unwrap();
        let cases = [
            (limit("buy", "20000.00", "0.01"), ("USD", dec!(201.2000))),
            (limit("sell", "20000.00", "0.5"), ("BTC", dec!(0.5))),
            (
                order(OrderRequest {
                    order_type: Some("market".into()),
                    side: Some("buy".into()),
                    funds: Some("10.00".into()),
                    ..OrderRequest::default()
                }),
                ("USD", dec!(10.00)),
            ),
            (
                order(OrderRequest {
                    order_type: Some("market".into()),
                    side: Some("buy".into()),
                    size: Some("0.01".into()),
                    ..OrderRequest::default()
                }),
                ("USD", dec!(1000)),
            ),
            (
                order(OrderRequest {
                    order_type: Some("market".into()),
                    side: Some("sell".into()),
                    size: Some("0.3".into()),
                    ..OrderRequest::default()
                }),
                ("BTC", dec!(0.3)),
            ),
            (
                order(OrderRequest {
                    order_type: Some("market".into()),
                    side: Some("sell".into()),
                    funds: Some("100.00".into()),
                    ..OrderRequest::default()
                }),
                ("BTC", dec!(2)),
            ),
        ];
        for (o, (cur, amount)) in cases {
            let (held, how_much) = l.hold_needed(&p, &o, RATES, None);
            assert_eq!((held.as_str(), how_much), (cur, amount), "{o:?}");
        }
    }

    #[test]
    fn hold_fill_and_release_keep_balance_equal_available_plus_hold() {
        let p = btc_usd();
        let mut l = Ledger::default();
        l.deposit("USD", dec!(1000)).unwrap();
        let o = limit("buy", "20000.00", "0.01");
        let (cur, amount) = l.hold_needed(&p, &o, RATES, None);
        l.place_hold(oid(1), cur, amount, None).unwrap();
        assert_eq!(
            l.balance("USD"),
            Balance {
                balance: dec!(1000),
                hold: dec!(201.2)
            }
        );
        assert_eq!(l.balance("USD").available(), dec!(798.8));

        // Half fills as maker at the limit price.
        let (price, half) = (
            Price::parse("20000.00").unwrap(),
            Size::parse("0.005").unwrap(),
        );
        let fee = fill_fee(price, half, RATES.maker);
        assert_eq!(fee, dec!(0.4));
        l.settle_fill(oid(1), &p, Side::Buy, price, half, fee, None);
        assert_eq!(
            l.balance("USD"),
            Balance {
                balance: dec!(899.6),
                hold: dec!(100.8)
            }
        );
        assert_eq!(l.balance("BTC").balance, dec!(0.005));
        assert_eq!(l.fees_paid("USD"), dec!(0.4));

        // Canceled: the rest of the hold comes back.
        assert_eq!(l.release_hold(oid(1)).unwrap(), dec!(100.8));
        assert_eq!(
            l.balance("USD"),
            Balance {
                balance: dec!(899.6),
                hold: dec!(0)
            }
        );
        assert!(l.release_hold(oid(1)).is_err());
    }

    #[test]
    fn a_notional_at_the_edge_of_decimal_is_insufficient_funds_not_a_panic() {
        let p = btc_usd();
        let mut l = Ledger::default();
        l.deposit("USD", dec!(100)).unwrap();
        let o = limit("buy", "79000000000000.00", "1000000000000000");
        let (cur, amount) = l.hold_needed(&p, &o, RATES, None);
        assert_eq!(amount, Decimal::MAX);
        let err = l.place_hold(oid(1), cur, amount, None).unwrap_err();
        assert_eq!(Rejection::from(err).message, "Insufficient funds");
    }

    #[test]
    fn the_same_holds_serialise_to_the_same_bytes_in_any_insertion_order() {
        let mut a = Ledger::default();
        let mut b = Ledger::default();
        a.deposit("USD", dec!(1000)).unwrap();
        b.deposit("USD", dec!(1000)).unwrap();
        let ids: Vec<u128> = (1..=40).map(|n| n * 0x9E37_79B9_7F4A_7C15).collect();
        for &n in &ids {
            a.place_hold(oid(n), usd(), dec!(1), None).unwrap();
        }
        for &n in ids.iter().rev() {
            b.place_hold(oid(n), usd(), dec!(1), None).unwrap();
        }
        let (ja, jb) = (
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap(),
        );
        assert_eq!(ja, jb);
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        let at: Vec<usize> = sorted
            .iter()
            .map(|&n| ja.find(&oid(n).to_string()).unwrap())
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "holds in id order: {ja}"
        );
        let back: Ledger = serde_json::from_str(&ja).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn balances_and_fees_serialise_as_the_maps_they_were_sorted_by_currency() {
        let mut l = Ledger::default();
        // Deposited out of order: stored (and written) in currency order.
        for c in ["USD", "BTC", "ETH"] {
            l.deposit(c, dec!(1)).unwrap();
        }
        let size = Size::new(dec!(0.01)).unwrap();
        l.settle(
            oid(1),
            &btc_usd(),
            Side::Buy,
            dec!(0.5),
            size,
            dec!(0.002),
            None,
        );
        let json = serde_json::to_value(&l).unwrap();
        let balances = json["balances"].as_object().unwrap();
        assert_eq!(
            balances.keys().collect::<Vec<_>>(),
            ["BTC", "ETH", "USD"],
            "{json}"
        );
        // 1 − 0.5 paid − 0.002 fee.
        assert_eq!(json["balances"]["USD"]["balance"], "0.498");
        assert_eq!(json["fees_paid"], serde_json::json!({"USD": "0.002"}));
        let back: Ledger = serde_json::from_value(json).unwrap();
        assert_eq!(back, l);
        assert_eq!(
            l.balances().map(|(c, _)| c.to_string()).collect::<Vec<_>>(),
            ["BTC", "ETH", "USD"]
        );
    }

    #[test]
    fn insufficient_funds_is_the_exchange_text() {
        let p = btc_usd();
        let mut l = Ledger::default();
        l.deposit("USD", dec!(100)).unwrap();
        let o = limit("buy", "20000.00", "0.01");
        let (cur, amount) = l.hold_needed(&p, &o, RATES, None);
        let err = l.place_hold(oid(1), cur, amount, None).unwrap_err();
        assert_eq!(Rejection::from(err).message, "Insufficient funds");
        assert_eq!(l.balance("USD").hold, dec!(0));
    }

    #[test]
    fn two_bots_never_spend_the_same_money() {
        let p = btc_usd();
        let (a, b) = (BotId(Uuid::from_u128(1)), BotId(Uuid::from_u128(2)));
        let mut l = Ledger::default();
        l.deposit("USD", dec!(300)).unwrap();
        l.reserve(a, "USD", dec!(250)).unwrap();
        let err = l.reserve(b, "USD", dec!(100)).unwrap_err().to_string();
        assert!(err.contains("only 50"), "{err}");
        l.reserve(b, "USD", dec!(50)).unwrap();
        // Bot b cannot hold beyond its own reservation, and a manual order finds nothing free.
        let o = limit("buy", "20000.00", "0.01");
        let (cur, amount) = l.hold_needed(&p, &o, RATES, Some(b));
        assert_eq!(
            l.place_hold(oid(1), cur, amount, Some(b)),
            Err(LedgerError::InsufficientFunds)
        );
        assert_eq!(
            l.place_hold(oid(2), cur, amount, None),
            Err(LedgerError::InsufficientFunds)
        );
        l.place_hold(oid(3), cur, amount, Some(a)).unwrap();
        assert_eq!(l.reserved(a, "USD"), dec!(48.8));
        // Bot a's buy fills: the BTC is a's, and the unused hold returns to a.
        let price = Price::parse("20000.00").unwrap();
        let size = Size::parse("0.01").unwrap();
        l.settle_fill(
            oid(3),
            &p,
            Side::Buy,
            price,
            size,
            fill_fee(price, size, RATES.maker),
            Some(a),
        );
        l.release_hold(oid(3)).unwrap();
        assert_eq!(l.reserved(a, "BTC"), dec!(0.01));
        assert_eq!(l.reserved(a, "USD"), dec!(48.8) + dec!(201.2) - dec!(200.8));
        assert_eq!(l.reserved(b, "USD"), dec!(50));
        assert_eq!(l.free("USD"), dec!(0));
    }
}

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::product::Catalogue;

    proptest! {
        /// Random holds, fills and releases keep `0 ≤ hold ≤ balance`, and
        /// money only moves between currencies and fees.
        #[test]
        fn prop_hold_never_exceeds_balance(ops in proptest::collection::vec((1u32..500, 1u32..100, any::<bool>(), any::<bool>()), 1..60)) {
            let p = Catalogue::from_json(include_str!("../tests/fixtures/cryptofeed/products-2021-04-17.json")).unwrap().get("BTC-USD").unwrap().clone();
            let mut l = Ledger::default();
            l.deposit("USD", Decimal::from(10_000)).unwrap();
            l.deposit("BTC", Decimal::from(1)).unwrap();
            for (i, (price, cents, buy, fill)) in ops.into_iter().enumerate() {
                let id = OrderId(Uuid::from_u128(i as u128));
                let price = Price::new(Decimal::from(price)).unwrap();
                let size = Size::new(Decimal::new(i64::from(cents), 3)).unwrap();
                let (side, cur, amount) = if buy {
                    (Side::Buy, "USD", price.get() * size.get() * Decimal::new(1006, 3))
                } else {
                    (Side::Sell, "BTC", size.get())
                };
                if l.place_hold(id, Currency::new(cur).unwrap(), amount, None).is_ok() && fill {
                    l.settle_fill(id, &p, side, price, size, fill_fee(price, size, Decimal::new(4, 3)), None);
                }
                let _ = l.release_hold(id);
                for (_, b) in l.balances() {
                    prop_assert!(b.hold >= Decimal::ZERO);
                    prop_assert!(b.hold <= b.balance);
                }
            }
            prop_assert_eq!(l.balance("USD").hold, Decimal::ZERO);
        }
    }
}
