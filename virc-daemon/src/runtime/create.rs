//! Creating bots: checking a spec against the product, the market and the
//! wallet, reserving the bot's money, and the spec of an existing bot (for
//! show and duplicate). Every refusal names the field and what to give.

use rust_decimal::Decimal;
use virc_core::{
    bot::{
        BotInput, ConditionalBot, GridBot, Machine, RangeBot, StopLossBot,
        conditional::{ConditionalParams, PriceSpec, Step},
        grid::{GridParams, ladder},
        range::RangeParams,
        stop_loss::{Amount, StopLossParams, Trigger},
    },
    ids::BotId,
    ledger::FeeRates,
    money::{Price, Size},
    order::{OrderRequest, Side, validate_for},
    product::Product,
    rule::{Rule, Syntax},
};
use virc_proto::v1::{self as pb, bot_spec::Kind, event::Payload};

use super::{BotRecord, Runtime, dec};
use crate::{api::ServiceError, events::Draft, exchange::Exchange};

/// The spec a bot was created with, rebuilt from its (normalised) parameters.
pub fn spec_of(rec: &BotRecord) -> pb::BotSpec {
    use pb::stop_loss_spec::{Amount as A, Trigger as T};
    let kind = match &rec.machine {
        Machine::Range(b) => {
            let p = b.params();
            Kind::Range(pb::RangeSpec {
                product_id: p.product_id.clone(),
                size: p.size.to_string(),
                buy_price: p.buy.to_string(),
                sell_price: p.sell.to_string(),
                r#loop: p.looping,
                begin_with_sell: p.begin_with_sell,
                force: rec.force,
            })
        }
        Machine::Grid(b) => {
            let p = b.params();
            let text = |x: Option<Price>| x.map(|p| p.to_string()).unwrap_or_default();
            Kind::Grid(pb::GridSpec {
                product_id: p.product_id.clone(),
                lower_price: text(p.levels.first().copied()),
                upper_price: text(p.levels.last().copied()),
                levels: u32::try_from(p.levels.len()).unwrap_or(u32::MAX),
                spacing: if p.geometric {
                    pb::GridSpacing::Geometric
                } else {
                    pb::GridSpacing::Arithmetic
                } as i32,
                sizing: Some(pb::grid_spec::Sizing::SizePerLevel(p.size.to_string())),
                stop_loss_price: text(p.stop_loss),
                take_profit_price: text(p.take_profit),
            })
        }
        Machine::Conditional(b) => {
            let p = b.params();
            Kind::Conditional(pb::ConditionalSpec {
                steps: p.steps.iter().map(step_spec).collect(),
                r#loop: p.looping,
                product_id: p.product_id.clone(),
            })
        }
        Machine::StopLoss(b) => {
            let p = b.params();
            Kind::StopLoss(pb::StopLossSpec {
                product_id: p.product_id.clone(),
                amount: Some(match p.amount {
                    Amount::Size(s) => A::Size(s.to_string()),
                    Amount::Guarded => A::GuardedHoldings(true),
                }),
                trigger: Some(match p.trigger {
                    Trigger::Fixed(x) => T::StopPrice(x.to_string()),
                    Trigger::Trail(d) => T::TrailingDistance(dec(d)),
                    Trigger::TrailPercent(d) => T::TrailingPercent(dec(d)),
                }),
                limit_offset: p.limit_offset.map(dec).unwrap_or_default(),
                guard_bot_id: p.guard.map(|g| g.to_string()).unwrap_or_default(),
                guard_product: p.guard_product,
            })
        }
    };
    pb::BotSpec {
        name: rec.name.clone(),
        exchange: rec.exchange.clone(),
        kind: Some(kind),
    }
}

fn step_spec(s: &Step) -> pb::ConditionalStep {
    use pb::conditional_step::Step as S;
    let step = match s {
        Step::When(r) => S::When(pb::RuleCondition {
            rule: r.source.clone(),
            syntax: match r.syntax {
                Syntax::Infix => pb::RuleSyntax::Infix,
                Syntax::JsonLogic => pb::RuleSyntax::Jsonlogic,
            } as i32,
        }),
        Step::Order { side, size, price } => S::Order(pb::ConditionalOrder {
            side: super::convert::side(*side),
            size: size.to_string(),
            price: price.to_string(),
        }),
    };
    pb::ConditionalStep { step: Some(step) }
}

fn size(field: &str, text: &str) -> Result<Size, ServiceError> {
    let s = Size::parse(text).map_err(|e| {
        ServiceError::Invalid(format!("{field} `{text}`: {e}; give a decimal like 0.01"))
    })?;
    if s.is_zero() {
        return Err(ServiceError::Invalid(format!("{field} must be above zero")));
    }
    Ok(s)
}

/// A non-negative amount of quote (an offset, a distance).
fn amount(field: &str, text: &str) -> Result<Decimal, ServiceError> {
    virc_core::money::parse_decimal("amount", text)
        .ok()
        .filter(|d| *d >= Decimal::ZERO)
        .ok_or_else(|| {
            ServiceError::Invalid(format!(
                "{field} `{text}` is not a non-negative decimal; give one like 5 or 0.5"
            ))
        })
}

/// The exchange's own check of one order the bot would place, in its words.
fn check_order(
    product: &Product,
    what: &str,
    side: Side,
    price: Option<Price>,
    size: Size,
) -> Result<(), ServiceError> {
    let req = OrderRequest {
        product_id: product.id.as_str().to_owned(),
        order_type: Some(if price.is_some() { "limit" } else { "market" }.into()),
        side: Some(
            match side {
                Side::Buy => "buy",
                Side::Sell => "sell",
            }
            .into(),
        ),
        price: price.map(|p| p.to_string()),
        size: Some(size.to_string()),
        ..OrderRequest::default()
    };
    validate_for(product, &req).map(|_| ()).map_err(|r| {
        ServiceError::Refused(format!("the bot's {what} would be refused: {}", r.message))
    })
}

/// What a bot needs set aside: (currency, amount) pairs.
type Reservations = Vec<(String, Decimal)>;

/// A checked bot, ready to be stored and started.
struct Checked {
    machine: Machine,
    reservations: Reservations,
    force: bool,
}

fn price(
    field: &str,
    text: &str,
    product: &Product,
    warnings: &mut Vec<String>,
) -> Result<Price, ServiceError> {
    let p = Price::parse(text).map_err(|e| {
        ServiceError::Invalid(format!(
            "{field} `{text}`: {e}; give a positive decimal like 450.25"
        ))
    })?;
    if p.is_multiple_of(product.quote_increment) {
        return Ok(p);
    }
    let rounded = Price::new(p.round_to(product.quote_increment)).map_err(|_| {
        ServiceError::Invalid(format!(
            "{field} {text} rounds to zero on {}'s quote increment {}",
            product.id,
            dec(product.quote_increment)
        ))
    })?;
    warnings.push(format!(
        "{field} {text} rounded to {rounded} ({}'s quote increment is {})",
        product.id,
        dec(product.quote_increment)
    ));
    Ok(rounded)
}

fn range_params(
    spec: &pb::RangeSpec,
    product: &Product,
    warnings: &mut Vec<String>,
) -> Result<RangeParams, ServiceError> {
    let size = size("size", &spec.size)?;
    let buy = price("buy price", &spec.buy_price, product, warnings)?;
    let sell = price("sell price", &spec.sell_price, product, warnings)?;
    // Beyond any wallet, and beyond what the profit arithmetic can hold.
    let huge = |p: Price| {
        p.get()
            .checked_mul(size.get())
            .and_then(|v| v.checked_mul(Decimal::TEN))
            .is_none()
    };
    if huge(buy) || huge(sell) {
        return Err(ServiceError::Invalid(format!(
            "size {size} at these prices is out of range; no wallet holds that much"
        )));
    }
    if sell <= buy && !spec.force {
        return Err(ServiceError::Invalid(format!(
            "sell price {sell} is not above buy price {buy}: every cycle would lose money; pass --force if that is what you want"
        )));
    }
    // Both orders must pass the exchange's own checks, in its words.
    check_order(product, "buy order", Side::Buy, Some(buy), size)?;
    check_order(product, "sell order", Side::Sell, Some(sell), size)?;
    Ok(RangeParams {
        product_id: spec.product_id.clone(),
        base: product.base_currency.to_string(),
        quote: product.quote_currency.to_string(),
        size,
        buy,
        sell,
        looping: spec.r#loop,
        begin_with_sell: spec.begin_with_sell,
    })
}

/// What a spec is checked against besides itself.
struct Market<'a> {
    product: &'a Product,
    /// The last trade price, if the daemon has seen one.
    last: Option<Price>,
    rates: FeeRates,
}

impl Market<'_> {
    fn last(&self, why: &str) -> Result<Price, ServiceError> {
        self.last.ok_or_else(|| {
            ServiceError::Refused(format!(
                "no trade seen on {} yet, and {why}; wait for the market (`virc ticker {}`) and try again",
                self.product.id, self.product.id
            ))
        })
    }

    /// Quote a buy of `size` at `price` may hold, fee included.
    fn buy_cost(&self, price: Price, size: Size) -> Decimal {
        price.get() * size.get() * (Decimal::ONE + self.rates.taker)
    }
}

fn range_checked(
    spec: &pb::RangeSpec,
    m: &Market<'_>,
    id: BotId,
    warnings: &mut Vec<String>,
) -> Result<Checked, ServiceError> {
    let params = range_params(spec, m.product, warnings)?;
    let probe = RangeBot::new(id, params.clone());
    let (per_cycle, _) = probe.theoretical_cycle_profit(m.rates);
    if per_cycle <= Decimal::ZERO && params.sell > params.buy {
        warnings.push(format!(
            "each cycle loses {} {} after fees (maker {} on both orders); widen the range to profit",
            dec(-per_cycle),
            params.quote,
            dec(m.rates.maker)
        ));
    }
    // The first order is paid from the reservation; the rest from what it earns.
    let reservation = if params.begin_with_sell {
        (params.base.clone(), params.size.get())
    } else {
        (params.quote.clone(), m.buy_cost(params.buy, params.size))
    };
    Ok(Checked {
        machine: Machine::Range(probe),
        reservations: vec![reservation],
        force: spec.force,
    })
}

fn grid_checked(
    spec: &pb::GridSpec,
    m: &Market<'_>,
    id: BotId,
    warnings: &mut Vec<String>,
) -> Result<Checked, ServiceError> {
    let product = m.product;
    let lower = price("lower price", &spec.lower_price, product, warnings)?;
    let upper = price("upper price", &spec.upper_price, product, warnings)?;
    let geometric = spec.spacing == pb::GridSpacing::Geometric as i32;
    let levels = ladder(
        lower,
        upper,
        spec.levels,
        geometric,
        product.quote_increment,
    )
    .map_err(ServiceError::Invalid)?;
    let last = m.last("a grid is laid around the current price")?;
    let empty = GridBot::split(&levels, last);
    let buys: Vec<Price> = levels[..empty].to_vec();
    let sells = levels.len() - empty - 1;
    let size = match &spec.sizing {
        Some(pb::grid_spec::Sizing::SizePerLevel(t)) => size("size per level", t)?,
        Some(pb::grid_spec::Sizing::QuoteBudget(t)) => {
            let budget = amount("quote budget", t)?;
            let per_unit: Decimal =
                buys.iter().map(|p| p.get()).sum::<Decimal>() * (Decimal::ONE + m.rates.taker);
            if per_unit.is_zero() {
                return Err(ServiceError::Invalid(format!(
                    "the market ({last}) is at or below the lowest level: a quote budget buys nothing; give --size-per-level"
                )));
            }
            let raw = Size::new(budget / per_unit)
                .map(|s| s.floor_to(product.base_increment))
                .unwrap_or_default();
            let s = Size::new(raw)
                .ok()
                .filter(|s| !s.is_zero())
                .ok_or_else(|| {
                    ServiceError::Invalid(format!(
                        "a budget of {budget} {} is too small for {} buy levels",
                        product.quote_currency,
                        buys.len()
                    ))
                })?;
            warnings.push(format!(
                "a budget of {} {} over {} buy levels is {s} {} per level",
                dec(budget),
                product.quote_currency,
                buys.len(),
                product.base_currency
            ));
            s
        }
        None => {
            return Err(ServiceError::Invalid(
                "give the size per level or the quote budget".into(),
            ));
        }
    };
    let bound =
        |field: &str, text: &str, w: &mut Vec<String>| -> Result<Option<Price>, ServiceError> {
            if text.is_empty() {
                return Ok(None);
            }
            price(field, text, product, w).map(Some)
        };
    let stop_loss = bound("stop-loss price", &spec.stop_loss_price, warnings)?;
    let take_profit = bound("take-profit price", &spec.take_profit_price, warnings)?;
    if let Some(sl) = stop_loss.filter(|sl| *sl >= last) {
        return Err(ServiceError::Invalid(format!(
            "stop-loss price {sl} is not below the market ({last}): the grid would exit at once"
        )));
    }
    if let Some(tp) = take_profit.filter(|tp| *tp <= last) {
        return Err(ServiceError::Invalid(format!(
            "take-profit price {tp} is not above the market ({last}): the grid would exit at once"
        )));
    }
    check_order(
        product,
        "lowest buy",
        Side::Buy,
        levels.first().copied(),
        size,
    )?;
    check_order(
        product,
        "highest sell",
        Side::Sell,
        levels.last().copied(),
        size,
    )?;
    let params = GridParams {
        product_id: product.id.as_str().to_owned(),
        base: product.base_currency.to_string(),
        quote: product.quote_currency.to_string(),
        levels,
        geometric,
        size,
        stop_loss,
        take_profit,
        base_increment: product.base_increment,
    };
    let machine = Machine::Grid(GridBot::new(id, params.clone()));
    if let Some((profit, _)) = machine.theoretical_cycle_profit(m.rates)
        && profit <= Decimal::ZERO
    {
        warnings.push(format!(
            "a round trip between the two lowest levels loses {} {} after fees (maker {}); use fewer levels",
            dec(-profit),
            params.quote,
            dec(m.rates.maker)
        ));
    }
    let quote: Decimal = buys.iter().map(|p| m.buy_cost(*p, size)).sum();
    let base = size.get() * Decimal::from(sells);
    let reservations = [(params.quote.clone(), quote), (params.base.clone(), base)]
        .into_iter()
        .filter(|(_, a)| !a.is_zero())
        .collect();
    Ok(Checked {
        machine,
        reservations,
        force: false,
    })
}

/// Estimated headroom on market-relative buys: the market moves between
/// creation and the order.
const BUY_HEADROOM_PCT: Decimal = Decimal::TWO;

fn conditional_checked(
    spec: &pb::ConditionalSpec,
    m: &Market<'_>,
    id: BotId,
    warnings: &mut Vec<String>,
) -> Result<Checked, ServiceError> {
    use pb::conditional_step::Step as S;
    let product = m.product;
    let mut steps = Vec::new();
    for (i, s) in spec.steps.iter().enumerate() {
        let n = i + 1;
        let step = match &s.step {
            Some(S::When(c)) => {
                let syntax = super::rule_syntax(c.syntax);
                let rule = Rule::parse(&c.rule, syntax).map_err(|e| {
                    ServiceError::Invalid(format!("step {n}: rule `{}`: {e}", c.rule))
                })?;
                Step::When(rule)
            }
            Some(S::Order(o)) => {
                let side = match pb::Side::try_from(o.side) {
                    Ok(pb::Side::Buy) => Side::Buy,
                    Ok(pb::Side::Sell) => Side::Sell,
                    _ => {
                        return Err(ServiceError::Invalid(format!(
                            "step {n}: an order step needs a side, buy or sell"
                        )));
                    }
                };
                let size = size(&format!("step {n}: size"), &o.size)?;
                let price = PriceSpec::parse(&o.price)
                    .map_err(|e| ServiceError::Invalid(format!("step {n}: {e}")))?;
                if let PriceSpec::Absolute(p) = price
                    && !p.is_multiple_of(product.quote_increment)
                {
                    return Err(ServiceError::Invalid(format!(
                        "step {n}: price {p} is not on {}'s quote increment {}",
                        product.id,
                        dec(product.quote_increment)
                    )));
                }
                Step::Order { side, size, price }
            }
            None => {
                return Err(ServiceError::Invalid(format!(
                    "step {n} is empty: give a condition (when) or an order (buy/sell)"
                )));
            }
        };
        steps.push(step);
    }
    let params = ConditionalParams {
        product_id: product.id.as_str().to_owned(),
        base: product.base_currency.to_string(),
        quote: product.quote_currency.to_string(),
        quote_increment: product.quote_increment,
        steps,
        looping: spec.r#loop,
    };
    params.check().map_err(ServiceError::Invalid)?;
    // Walk one lap with prices estimated now: the deepest the bot goes into
    // each currency is what it needs reserved.
    let (mut quote, mut base) = (Decimal::ZERO, Decimal::ZERO);
    let (mut need_quote, mut need_base) = (Decimal::ZERO, Decimal::ZERO);
    for (i, step) in params.steps.iter().enumerate() {
        let Step::Order { side, size, price } = step else {
            continue;
        };
        // The price the order would get now, and for a buy's reservation a
        // little headroom when the price follows the market.
        let (now, est) = match price {
            PriceSpec::Absolute(p) => (Some(*p), *p),
            spec => {
                let last = m.last("market-relative prices need one to estimate what to reserve")?;
                let now = spec
                    .resolve(last, product.quote_increment)
                    .map_err(|e| ServiceError::Invalid(format!("step {}: {e}", i + 1)))?;
                let p = now.unwrap_or(last);
                let est = match side {
                    Side::Buy => Price::new(
                        p.get() * (Decimal::ONE + BUY_HEADROOM_PCT / Decimal::ONE_HUNDRED),
                    )
                    .unwrap_or(p),
                    Side::Sell => p,
                };
                (now, est)
            }
        };
        check_order(product, &format!("step {} order", i + 1), *side, now, *size)?;
        match side {
            Side::Buy => {
                quote -= m.buy_cost(est, *size);
                base += size.get();
            }
            Side::Sell => {
                base -= size.get();
                quote += est.get() * size.get() * (Decimal::ONE - m.rates.taker);
            }
        }
        need_quote = need_quote.max(-quote);
        need_base = need_base.max(-base);
    }
    let reservations: Reservations = [
        (params.quote.clone(), need_quote),
        (params.base.clone(), need_base),
    ]
    .into_iter()
    .filter(|(_, a)| *a > Decimal::ZERO)
    .collect();
    for (c, a) in &reservations {
        warnings.push(format!(
            "reserved {} {c} for its orders (market-relative buys estimated {}% above the market)",
            dec(a.round_dp(8)),
            dec(BUY_HEADROOM_PCT)
        ));
    }
    Ok(Checked {
        machine: Machine::Conditional(ConditionalBot::new(id, params)),
        reservations,
        force: false,
    })
}

impl Runtime {
    fn stop_loss_checked(
        &self,
        spec: &pb::StopLossSpec,
        m: &Market<'_>,
        exchange: &str,
        id: BotId,
        warnings: &mut Vec<String>,
    ) -> Result<Checked, ServiceError> {
        use pb::stop_loss_spec::{Amount as A, Trigger as T};
        let product = m.product;
        if spec.guard_product && !spec.guard_bot_id.is_empty() {
            return Err(ServiceError::Invalid(
                "guard one bot (--guard) or the whole product (--guard-product), not both".into(),
            ));
        }
        let guard = if spec.guard_bot_id.is_empty() {
            None
        } else {
            let g = self.find(&spec.guard_bot_id)?;
            let rec = &self.bots[&g];
            if rec.machine.status().is_final() {
                return Err(ServiceError::Refused(format!(
                    "bot {} is already {}; there is nothing to guard",
                    rec.name,
                    rec.machine.status().name()
                )));
            }
            if rec.machine.product_id() != product.id.as_str() || rec.exchange != exchange {
                return Err(ServiceError::Invalid(format!(
                    "bot {} trades {} on {}; a stop-loss guarding it must be on the same product and exchange",
                    rec.name,
                    rec.machine.product_id(),
                    rec.exchange
                )));
            }
            Some(g)
        };
        let free = self.venues[exchange]
            .exchange
            .wallet()
            .free(&product.base_currency);
        let what = match &spec.amount {
            Some(A::Size(t)) => Amount::Size(size("size", t)?),
            Some(A::AllAvailable(true)) => {
                let s = Size::new(free)
                    .map(|s| s.floor_to(product.base_increment))
                    .ok()
                    .and_then(|d| Size::new(d).ok())
                    .filter(|s| !s.is_zero())
                    .ok_or_else(|| {
                        ServiceError::Refused(format!(
                            "nothing to protect: no {} is available and not reserved by other bots",
                            product.base_currency
                        ))
                    })?;
                warnings.push(format!(
                    "protects all {s} {} available now; it is reserved for the exit",
                    product.base_currency
                ));
                Amount::Size(s)
            }
            Some(A::GuardedHoldings(true)) if guard.is_some() => Amount::Guarded,
            Some(A::GuardedHoldings(true)) => {
                return Err(ServiceError::Invalid(
                    "selling the guarded bot's holdings needs a bot to guard (--guard BOT)".into(),
                ));
            }
            _ if guard.is_some() => Amount::Guarded,
            _ => {
                return Err(ServiceError::Invalid(
                    "say what to sell: --size, --all-available, or --guard BOT (its holdings)"
                        .into(),
                ));
            }
        };
        let trigger = match &spec.trigger {
            Some(T::StopPrice(t)) => Trigger::Fixed(price("stop price", t, product, warnings)?),
            Some(T::TrailingDistance(t)) => {
                let d = amount("trailing distance", t)?;
                if d.is_zero() {
                    return Err(ServiceError::Invalid(
                        "trailing distance must be above zero".into(),
                    ));
                }
                Trigger::Trail(d)
            }
            Some(T::TrailingPercent(t)) => {
                let d = amount("trailing percent", t)?;
                if d.is_zero() || d >= Decimal::ONE_HUNDRED {
                    return Err(ServiceError::Invalid(format!(
                        "trailing percent {t} must be above 0 and below 100"
                    )));
                }
                Trigger::TrailPercent(d)
            }
            None => {
                return Err(ServiceError::Invalid(
                    "give a stop price, a trailing distance or a trailing percent".into(),
                ));
            }
        };
        let limit_offset = if spec.limit_offset.is_empty() {
            None
        } else {
            let d = amount("limit offset", &spec.limit_offset)?;
            if !(d / product.quote_increment).fract().is_zero() {
                return Err(ServiceError::Invalid(format!(
                    "limit offset {d} is not on {}'s quote increment {}",
                    product.id,
                    dec(product.quote_increment)
                )));
            }
            Some(d)
        };
        if let (Trigger::Fixed(stop), Some(last)) = (trigger, m.last)
            && stop >= last
        {
            return Err(ServiceError::Invalid(format!(
                "stop price {stop} is not below the market ({last}): it would trigger at once"
            )));
        }
        if let (Amount::Size(s), Trigger::Fixed(stop)) = (what, trigger) {
            let limit = limit_offset.and_then(|o| Price::new(stop.get() - o).ok());
            check_order(product, "exit sell", Side::Sell, limit.or(Some(stop)), s)?;
        }
        let params = StopLossParams {
            product_id: product.id.as_str().to_owned(),
            base: product.base_currency.to_string(),
            quote: product.quote_currency.to_string(),
            quote_increment: product.quote_increment,
            base_increment: product.base_increment,
            amount: what,
            trigger,
            limit_offset,
            guard,
            guard_product: spec.guard_product,
        };
        if params.guard_product {
            warnings.push(format!(
                "on trigger it stops every other bot trading {} on {exchange} and cancels the manual sells resting above the market",
                product.id
            ));
        }
        if !params.on_exchange() {
            warnings.push(
                "the stop is watched by the daemon (a guarded bot, or a market exit): it protects only while virc-daemon runs; give --limit-offset without --guard for a stop resting on the exchange"
                    .into(),
            );
        }
        let reservations = match what {
            Amount::Size(s) => vec![(product.base_currency.to_string(), s.get())],
            Amount::Guarded => Vec::new(),
        };
        Ok(Checked {
            machine: Machine::StopLoss(StopLossBot::new(id, params)),
            reservations,
            force: false,
        })
    }

    /// Creates (or with `if_absent`, finds) a bot, reserves its money and starts it.
    pub(super) async fn create(
        &mut self,
        req: pb::CreateBotRequest,
    ) -> Result<pb::CreateBotResponse, ServiceError> {
        let spec = req
            .spec
            .ok_or_else(|| ServiceError::Invalid("spec is required".into()))?;
        if !spec.name.is_empty()
            && let Some(id) = self.names.get(&spec.name).copied()
        {
            if req.if_absent {
                return Ok(pb::CreateBotResponse {
                    bot: Some(self.bot_view(id, super::View::One)),
                    created: false,
                    warnings: Vec::new(),
                });
            }
            return Err(ServiceError::Exists(format!(
                "a bot named `{}` exists (id {id}); choose another --name, or pass --if-absent to reuse it",
                spec.name
            )));
        }
        let exchange = self.venue_name(&spec.exchange)?;
        let kind = spec
            .kind
            .as_ref()
            .ok_or_else(|| ServiceError::Invalid("the spec names no bot kind".into()))?;
        let product_id = match kind {
            Kind::Range(r) => &r.product_id,
            Kind::Grid(g) => &g.product_id,
            Kind::StopLoss(s) => &s.product_id,
            Kind::Conditional(c) => &c.product_id,
        };
        let venue = &self.venues[&exchange];
        // A live connection reads its products, fees and balances when it
        // comes up; before that there is nothing to check a bot against.
        if let crate::exchange::Connector::Coinbase(x) = &venue.exchange
            && *x.link() != crate::exchange::coinbase::venue::Link::Up
        {
            return Err(ServiceError::Unavailable(format!(
                "exchange {exchange} is not connected ({}); its balances are read when it is: try again in a moment (`virc exchanges` shows its state)",
                match x.link() {
                    crate::exchange::coinbase::venue::Link::Down(why) => why.as_str(),
                    _ => "connecting",
                }
            )));
        }
        let product = venue.exchange.catalogue().get(product_id).cloned().ok_or_else(|| {
            ServiceError::NotFound(format!(
                "unknown product `{product_id}` on exchange {exchange}; `virc products` lists what it trades"
            ))
        })?;
        let market = Market {
            product: &product,
            last: self
                .markets
                .get(product.id.as_str())
                .and_then(|m| m.analyst.last())
                // The feed's "453.07000000" reads better as 453.07 in messages.
                .and_then(|t| Price::new(t.price.get().normalize()).ok()),
            rates: venue.exchange.rates(),
        };
        let id = BotId(uuid::Uuid::new_v4());
        let mut warnings = Vec::new();
        let checked = match kind {
            Kind::Range(r) => range_checked(r, &market, id, &mut warnings)?,
            Kind::Grid(g) => grid_checked(g, &market, id, &mut warnings)?,
            Kind::Conditional(c) => conditional_checked(c, &market, id, &mut warnings)?,
            Kind::StopLoss(s) => {
                self.stop_loss_checked(s, &market, &exchange, id, &mut warnings)?
            }
        };
        let prefix = checked.machine.kind();
        let name = if spec.name.is_empty() {
            // At most `bots + 1` tries: one of those names is free.
            (1..=self.bots.len() + 1)
                .map(|n| format!("{prefix}-{n}"))
                .find(|n| !self.names.contains_key(n))
                .unwrap_or_else(|| id.to_string())
        } else {
            spec.name.clone()
        };
        let venue = self
            .venues
            .get_mut(&exchange)
            .ok_or_else(|| ServiceError::NotFound(exchange.clone()))?;
        for (currency, amount) in &checked.reservations {
            if let Err(e) = venue.exchange.reserve(id, currency, *amount) {
                // All or nothing.
                venue.exchange.release(id)?;
                return Err(ServiceError::Refused(format!(
                    "cannot start bot {name}: {e}"
                )));
            }
        }
        let now = self.now();
        let rec = BotRecord {
            id,
            name: name.clone(),
            exchange,
            created_at: now,
            updated_at: now,
            force: checked.force,
            machine: checked.machine,
            history_len: 0,
        };
        super::watch(&mut self.watchers, &rec);
        self.bots.insert(id, rec);
        self.names.insert(name, id);
        self.save(id)?;
        self.store.flush().await?;
        let view = self.bot_view(id, super::View::One);
        self.events
            .emit(Draft {
                bot_id: id.to_string(),
                product_id: product.id.as_str().to_owned(),
                payload: Payload::BotCreated(pb::BotCreated { bot: Some(view) }),
            })
            .await;
        for w in &warnings {
            self.note(id, format!("warning: {w}"), true).await?;
        }
        self.drive(id, BotInput::Started).await?;
        self.store.flush().await?;
        Ok(pb::CreateBotResponse {
            bot: Some(self.bot_view(id, super::View::One)),
            created: true,
            warnings,
        })
    }

    /// Creates a bot with another's spec and the given field overrides.
    pub(super) async fn duplicate(
        &mut self,
        req: pb::DuplicateBotRequest,
    ) -> Result<pb::CreateBotResponse, ServiceError> {
        let id = self.find(&req.bot)?;
        let mut spec = spec_of(&self.bots[&id]);
        spec.name.clone_from(&req.name);
        for (k, v) in &req.overrides {
            if k == "exchange" {
                spec.exchange.clone_from(v);
                continue;
            }
            let kind = spec
                .kind
                .as_mut()
                .ok_or_else(|| ServiceError::Internal("bot without a kind".into()))?;
            override_field(kind, k, v)?;
        }
        self.create(pb::CreateBotRequest {
            spec: Some(spec),
            if_absent: false,
        })
        .await
    }
}

/// Sets one field of a spec from `virc bot dup --set KEY=VALUE`.
fn override_field(kind: &mut Kind, k: &str, v: &str) -> Result<(), ServiceError> {
    use pb::{grid_spec::Sizing, stop_loss_spec::Trigger as T};
    let flag = |v: &str| -> Result<bool, ServiceError> {
        v.parse()
            .map_err(|_| ServiceError::Invalid(format!("override {k}={v}: expected true or false")))
    };
    let unknown = |fields: &str| {
        Err(ServiceError::Invalid(format!(
            "cannot override `{k}`: this bot has {fields}, exchange"
        )))
    };
    match kind {
        Kind::Range(r) => match k {
            "size" => r.size = v.into(),
            "buy_price" | "buy" => r.buy_price = v.into(),
            "sell_price" | "sell" => r.sell_price = v.into(),
            "product_id" | "product" => r.product_id = v.into(),
            "loop" => r.r#loop = flag(v)?,
            "begin_with_sell" => r.begin_with_sell = flag(v)?,
            "force" => r.force = flag(v)?,
            _ => {
                return unknown(
                    "size, buy_price, sell_price, product_id, loop, begin_with_sell, force",
                );
            }
        },
        Kind::Grid(g) => match k {
            "product_id" | "product" => g.product_id = v.into(),
            "lower_price" | "lower" => g.lower_price = v.into(),
            "upper_price" | "upper" => g.upper_price = v.into(),
            "levels" => {
                g.levels = v.parse().map_err(|_| {
                    ServiceError::Invalid(format!("override levels={v}: expected a whole number"))
                })?;
            }
            "size_per_level" | "size" => g.sizing = Some(Sizing::SizePerLevel(v.into())),
            "quote_budget" | "budget" => g.sizing = Some(Sizing::QuoteBudget(v.into())),
            "stop_loss_price" | "stop_loss" => g.stop_loss_price = v.into(),
            "take_profit_price" | "take_profit" => g.take_profit_price = v.into(),
            _ => {
                return unknown(
                    "product_id, lower_price, upper_price, levels, size_per_level, quote_budget, stop_loss_price, take_profit_price",
                );
            }
        },
        Kind::StopLoss(s) => match k {
            "product_id" | "product" => s.product_id = v.into(),
            "size" => s.amount = Some(pb::stop_loss_spec::Amount::Size(v.into())),
            "stop_price" | "stop" => s.trigger = Some(T::StopPrice(v.into())),
            "trailing_distance" => s.trigger = Some(T::TrailingDistance(v.into())),
            "trailing_percent" => s.trigger = Some(T::TrailingPercent(v.into())),
            "limit_offset" => s.limit_offset = v.into(),
            "guard_bot_id" | "guard" => s.guard_bot_id = v.into(),
            "guard_product" => s.guard_product = flag(v)?,
            _ => {
                return unknown(
                    "product_id, size, stop_price, trailing_distance, trailing_percent, limit_offset, guard, guard_product",
                );
            }
        },
        Kind::Conditional(c) => match k {
            "product_id" | "product" => c.product_id = v.into(),
            "loop" => c.r#loop = flag(v)?,
            _ => return unknown("product_id, loop (steps: create it from a spec file)"),
        },
    }
    Ok(())
}
