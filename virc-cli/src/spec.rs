//! `virc bot create KIND`: the flags of each bot kind, spec files (TOML or
//! JSON), and how a spec is shown.
//!
//! A spec file names its kind and carries the same fields as the flags;
//! decimals are strings, so no float ever touches a price:
//!
//! ```toml
//! kind = "grid"
//! product = "BTC-USD"
//! lower = "440"
//! upper = "460"
//! levels = 9
//! size_per_level = "0.01"
//! ```

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};
use virc_proto::v1::{
    self as pb, bot_spec::Kind, conditional_step::Step as PbStep, grid_spec::Sizing,
    stop_loss_spec::Amount as SlAmount, stop_loss_spec::Trigger as SlTrigger,
};

use crate::error::CliError;

/// Bot kinds to create.
#[derive(Debug, Subcommand)]
pub enum CreateKind {
    /// Buy at one price, sell at a higher one, optionally looping.
    Range(RangeArgs),
    /// Resting buys below and sells above the price on a ladder of levels.
    Grid(GridArgs),
    /// Sell a position (or a guarded bot's) when the price falls to a stop.
    StopLoss(StopLossArgs),
    /// A program of rule conditions and orders, optionally looping.
    Conditional(ConditionalArgs),
}

/// Where a bot trades and what it is called.
#[derive(Debug, Args)]
pub struct Common {
    /// Unique name (default: generated, like range-1).
    #[arg(long)]
    name: Option<String>,
    /// Exchange connection (see `virc exchanges`; default: the daemon's default).
    #[arg(long, conflicts_with_all = ["paper", "live"])]
    exchange: Option<String>,
    /// Shorthand for --exchange paper.
    #[arg(long, conflicts_with = "live")]
    paper: bool,
    /// Shorthand for --exchange live.
    #[arg(long)]
    live: bool,
    /// If a bot with this --name exists, print it and succeed (for cron).
    #[arg(long, requires = "name")]
    if_absent: bool,
    /// Read the spec from a TOML or JSON file instead of the flags.
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
}

impl Common {
    fn exchange(&self) -> String {
        match (&self.exchange, self.paper, self.live) {
            (Some(x), _, _) => x.clone(),
            (None, true, _) => "paper".into(),
            (None, _, true) => "live".into(),
            _ => String::new(),
        }
    }

    /// The request for `kind`, from the spec file when one is given.
    fn request(&self, want: &str, from_flags: Kind) -> Result<pb::CreateBotRequest, CliError> {
        let (name, exchange, kind) = match &self.spec {
            Some(path) => read(path, want)?,
            None => (None, None, from_flags),
        };
        let flag_exchange = self.exchange();
        Ok(pb::CreateBotRequest {
            spec: Some(pb::BotSpec {
                name: self.name.clone().or(name).unwrap_or_default(),
                exchange: if flag_exchange.is_empty() {
                    exchange.unwrap_or_default()
                } else {
                    flag_exchange
                },
                kind: Some(kind),
            }),
            if_absent: self.if_absent,
        })
    }
}

/// `virc bot create range`
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// Product, for example BTC-USD.
    #[arg(long, required_unless_present = "spec")]
    product: Option<String>,
    /// Base size of each buy, for example 0.01.
    #[arg(long, required_unless_present = "spec")]
    size: Option<String>,
    /// Buy limit price.
    #[arg(long, required_unless_present = "spec")]
    buy: Option<String>,
    /// Sell limit price.
    #[arg(long, required_unless_present = "spec")]
    sell: Option<String>,
    /// Start again after each sell, until stopped.
    #[arg(long = "loop")]
    looping: bool,
    /// Start with the sell (you already hold the base currency).
    #[arg(long)]
    begin_sell: bool,
    /// Accept a sell price at or below the buy price.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    common: Common,
}

/// `virc bot create grid`
#[derive(Debug, Args)]
pub struct GridArgs {
    /// Product, for example BTC-USD.
    #[arg(long, required_unless_present = "spec")]
    product: Option<String>,
    /// Lowest level price.
    #[arg(long, required_unless_present = "spec")]
    lower: Option<String>,
    /// Highest level price.
    #[arg(long, required_unless_present = "spec")]
    upper: Option<String>,
    /// Number of levels (2 to 200).
    #[arg(long, required_unless_present = "spec")]
    levels: Option<u32>,
    /// Equal price ratios between levels (default: equal differences).
    #[arg(long)]
    geometric: bool,
    /// Base size of each level's order.
    #[arg(long, required_unless_present_any = ["budget", "spec"], conflicts_with = "budget")]
    size_per_level: Option<String>,
    /// Total quote to spread over the buy levels (instead of --size-per-level).
    #[arg(long)]
    budget: Option<String>,
    /// Cancel everything, sell what the grid holds and end when a trade is at or below this.
    #[arg(long)]
    stop_loss: Option<String>,
    /// Cancel everything, sell what the grid holds and end when a trade is at or above this.
    #[arg(long)]
    take_profit: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `virc bot create stop-loss`
#[derive(Debug, Args)]
pub struct StopLossArgs {
    /// Product, for example BTC-USD.
    #[arg(long, required_unless_present = "spec")]
    product: Option<String>,
    /// Base size to sell.
    #[arg(long, conflicts_with_all = ["all_available"])]
    size: Option<String>,
    /// Sell all the base currency available now (it is reserved for the exit).
    #[arg(long)]
    all_available: bool,
    /// Guard this bot: on trigger it is stopped (its resting sells canceled) and what it holds is sold.
    #[arg(long, value_name = "BOT", conflicts_with = "guard_product")]
    guard: Option<String>,
    /// Guard the whole product: on trigger, stop every other bot trading it and cancel the manual sells above the market, then sell.
    #[arg(long)]
    guard_product: bool,
    /// Stop price.
    #[arg(long, required_unless_present_any = ["trailing", "trailing_percent", "spec"], conflicts_with_all = ["trailing", "trailing_percent"])]
    stop: Option<String>,
    /// Trailing stop: this far below the highest price seen, in quote.
    #[arg(long, conflicts_with = "trailing_percent")]
    trailing: Option<String>,
    /// Trailing stop: this percentage below the highest price seen.
    #[arg(long)]
    trailing_percent: Option<String>,
    /// Exit with a limit this far below the stop (without --guard: a stop order resting on the exchange); default: a market exit.
    #[arg(long)]
    limit_offset: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `virc bot create conditional`
#[derive(Debug, Args)]
pub struct ConditionalArgs {
    /// Product whose market the rules read and the orders trade.
    #[arg(long, required_unless_present = "spec")]
    product: Option<String>,
    /// A step, in order (repeatable): 'when: p60.rsi14 <= 30', 'buy: 0.01 @ mkt-0.5%', 'sell: 0.01 @ mkt'.
    #[arg(long = "step", value_name = "STEP", required_unless_present = "spec")]
    steps: Vec<String>,
    /// Start again after the last step, until stopped.
    #[arg(long = "loop")]
    looping: bool,
    #[command(flatten)]
    common: Common,
}

impl CreateKind {
    /// The create request these flags (or spec file) describe.
    pub fn request(&self) -> Result<pb::CreateBotRequest, CliError> {
        match self {
            Self::Range(a) => a.common.request(
                "range",
                Kind::Range(pb::RangeSpec {
                    product_id: a.product.clone().unwrap_or_default(),
                    size: a.size.clone().unwrap_or_default(),
                    buy_price: a.buy.clone().unwrap_or_default(),
                    sell_price: a.sell.clone().unwrap_or_default(),
                    r#loop: a.looping,
                    begin_with_sell: a.begin_sell,
                    force: a.force,
                }),
            ),
            Self::Grid(a) => a.common.request(
                "grid",
                Kind::Grid(pb::GridSpec {
                    product_id: a.product.clone().unwrap_or_default(),
                    lower_price: a.lower.clone().unwrap_or_default(),
                    upper_price: a.upper.clone().unwrap_or_default(),
                    levels: a.levels.unwrap_or_default(),
                    spacing: spacing(a.geometric),
                    sizing: grid_sizing(a.size_per_level.clone(), a.budget.clone()),
                    stop_loss_price: a.stop_loss.clone().unwrap_or_default(),
                    take_profit_price: a.take_profit.clone().unwrap_or_default(),
                }),
            ),
            Self::StopLoss(a) => a.common.request(
                "stop-loss",
                Kind::StopLoss(pb::StopLossSpec {
                    product_id: a.product.clone().unwrap_or_default(),
                    amount: stop_amount(a.size.clone(), a.all_available, a.guard.is_some()),
                    trigger: stop_trigger(
                        a.stop.clone(),
                        a.trailing.clone(),
                        a.trailing_percent.clone(),
                    ),
                    limit_offset: a.limit_offset.clone().unwrap_or_default(),
                    guard_bot_id: a.guard.clone().unwrap_or_default(),
                    guard_product: a.guard_product,
                }),
            ),
            Self::Conditional(a) => {
                let steps = a
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        parse_step(s).map_err(|e| CliError::Usage(format!("--step {}: {e}", i + 1)))
                    })
                    .collect::<Result<_, _>>()?;
                a.common.request(
                    "conditional",
                    Kind::Conditional(pb::ConditionalSpec {
                        steps,
                        r#loop: a.looping,
                        product_id: a.product.clone().unwrap_or_default(),
                    }),
                )
            }
        }
    }
}

fn spacing(geometric: bool) -> i32 {
    if geometric {
        pb::GridSpacing::Geometric as i32
    } else {
        pb::GridSpacing::Arithmetic as i32
    }
}

fn grid_sizing(size: Option<String>, budget: Option<String>) -> Option<Sizing> {
    size.map(Sizing::SizePerLevel)
        .or_else(|| budget.map(Sizing::QuoteBudget))
}

fn stop_amount(size: Option<String>, all: bool, guarded: bool) -> Option<SlAmount> {
    match (size, all) {
        (Some(s), _) => Some(SlAmount::Size(s)),
        (None, true) => Some(SlAmount::AllAvailable(true)),
        (None, false) if guarded => Some(SlAmount::GuardedHoldings(true)),
        (None, false) => None,
    }
}

fn stop_trigger(
    stop: Option<String>,
    trailing: Option<String>,
    pct: Option<String>,
) -> Option<SlTrigger> {
    stop.map(SlTrigger::StopPrice)
        .or_else(|| trailing.map(SlTrigger::TrailingDistance))
        .or_else(|| pct.map(SlTrigger::TrailingPercent))
}

/// Parses a conditional step: `when: RULE` (JsonLogic when it starts with
/// `{`), `buy: SIZE [@ PRICE]`, `sell: SIZE [@ PRICE]`; no price is `mkt`.
pub fn parse_step(text: &str) -> Result<pb::ConditionalStep, String> {
    let Some((head, rest)) = text.split_once(':') else {
        return Err(format!(
            "`{text}` is not a step; write `when: RULE`, `buy: SIZE @ PRICE` or `sell: SIZE @ PRICE`"
        ));
    };
    let rest = rest.trim();
    let step = match head.trim() {
        "when" => {
            let syntax = if rest.starts_with('{') {
                pb::RuleSyntax::Jsonlogic
            } else {
                pb::RuleSyntax::Infix
            };
            PbStep::When(pb::RuleCondition {
                rule: rest.to_owned(),
                syntax: syntax as i32,
            })
        }
        side @ ("buy" | "sell") => {
            let (size, price) = match rest.split_once('@') {
                Some((s, p)) => (s.trim(), p.trim()),
                None => (rest, "mkt"),
            };
            if size.is_empty() {
                return Err(format!(
                    "`{text}`: give the size, as in `{side}: 0.01 @ mkt-10`"
                ));
            }
            PbStep::Order(pb::ConditionalOrder {
                side: if side == "buy" {
                    pb::Side::Buy
                } else {
                    pb::Side::Sell
                } as i32,
                size: size.to_owned(),
                price: price.to_owned(),
            })
        }
        other => {
            return Err(format!(
                "unknown step `{other}`: steps are when, buy and sell"
            ));
        }
    };
    Ok(pb::ConditionalStep { step: Some(step) })
}

/// A spec file, by kind.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum SpecFile {
    Range(RangeFile),
    Grid(GridFile),
    StopLoss(StopLossFile),
    Conditional(ConditionalFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeFile {
    name: Option<String>,
    exchange: Option<String>,
    product: String,
    size: String,
    buy: String,
    sell: String,
    #[serde(default, rename = "loop")]
    looping: bool,
    #[serde(default)]
    begin_with_sell: bool,
    #[serde(default)]
    force: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    name: Option<String>,
    exchange: Option<String>,
    product: String,
    lower: String,
    upper: String,
    levels: u32,
    #[serde(default)]
    geometric: bool,
    size_per_level: Option<String>,
    budget: Option<String>,
    stop_loss: Option<String>,
    take_profit: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopLossFile {
    name: Option<String>,
    exchange: Option<String>,
    product: String,
    size: Option<String>,
    #[serde(default)]
    all_available: bool,
    guard: Option<String>,
    #[serde(default)]
    guard_product: bool,
    stop: Option<String>,
    trailing: Option<String>,
    trailing_percent: Option<String>,
    limit_offset: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionalFile {
    name: Option<String>,
    exchange: Option<String>,
    product: String,
    #[serde(default, rename = "loop")]
    looping: bool,
    steps: Vec<StepFile>,
}

/// One step in a file: `when = "..."`, `when_jsonlogic = '{...}'`, `buy = "0.01 @ mkt-10"`, `sell = ...`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    when: Option<String>,
    when_jsonlogic: Option<Value>,
    buy: Option<String>,
    sell: Option<String>,
}

impl StepFile {
    fn to_step(&self) -> Result<pb::ConditionalStep, String> {
        let text = match (&self.when, &self.when_jsonlogic, &self.buy, &self.sell) {
            (Some(w), None, None, None) => format!("when: {w}"),
            (None, Some(j), None, None) => {
                // JsonLogic may be written as a TOML/JSON table or as a string of JSON.
                let json = match j {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                format!("when: {json}")
            }
            (None, None, Some(b), None) => format!("buy: {b}"),
            (None, None, None, Some(s)) => format!("sell: {s}"),
            _ => return Err("each step has exactly one of when, when_jsonlogic, buy, sell".into()),
        };
        parse_step(&text)
    }
}

type Named = (Option<String>, Option<String>, Kind);

fn read(path: &Path, want: &str) -> Result<Named, CliError> {
    let bad = |e: String| CliError::Usage(format!("invalid spec file {}: {e}", path.display()));
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read spec file {}: {e}", path.display())))?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let spec: SpecFile = if is_json {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        toml::from_str(&text).map_err(|e| e.to_string())
    }
    .map_err(bad)?;
    let named = match spec {
        SpecFile::Range(f) => (
            f.name,
            f.exchange,
            Kind::Range(pb::RangeSpec {
                product_id: f.product,
                size: f.size,
                buy_price: f.buy,
                sell_price: f.sell,
                r#loop: f.looping,
                begin_with_sell: f.begin_with_sell,
                force: f.force,
            }),
        ),
        SpecFile::Grid(f) => (
            f.name,
            f.exchange,
            Kind::Grid(pb::GridSpec {
                product_id: f.product,
                lower_price: f.lower,
                upper_price: f.upper,
                levels: f.levels,
                spacing: spacing(f.geometric),
                sizing: grid_sizing(f.size_per_level, f.budget),
                stop_loss_price: f.stop_loss.unwrap_or_default(),
                take_profit_price: f.take_profit.unwrap_or_default(),
            }),
        ),
        SpecFile::StopLoss(f) => (
            f.name,
            f.exchange,
            Kind::StopLoss(pb::StopLossSpec {
                product_id: f.product,
                amount: stop_amount(f.size, f.all_available, f.guard.is_some()),
                trigger: stop_trigger(f.stop, f.trailing, f.trailing_percent),
                limit_offset: f.limit_offset.unwrap_or_default(),
                guard_bot_id: f.guard.unwrap_or_default(),
                guard_product: f.guard_product,
            }),
        ),
        SpecFile::Conditional(f) => {
            let steps = f
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| s.to_step().map_err(|e| bad(format!("step {}: {e}", i + 1))))
                .collect::<Result<_, _>>()?;
            (
                f.name,
                f.exchange,
                Kind::Conditional(pb::ConditionalSpec {
                    steps,
                    r#loop: f.looping,
                    product_id: f.product,
                }),
            )
        }
    };
    let got = kind_name(&named.2);
    if got != want {
        return Err(CliError::Usage(format!(
            "spec file {} describes a {got} bot; use `virc bot create {got} --spec {}`",
            path.display(),
            path.display()
        )));
    }
    Ok(named)
}

fn kind_name(k: &Kind) -> &'static str {
    match k {
        Kind::Range(_) => "range",
        Kind::Grid(_) => "grid",
        Kind::StopLoss(_) => "stop-loss",
        Kind::Conditional(_) => "conditional",
    }
}

fn step_text(s: &pb::ConditionalStep) -> String {
    match &s.step {
        Some(PbStep::When(c)) => format!("when {}", c.rule),
        Some(PbStep::Order(o)) => {
            let side = if o.side == pb::Side::Buy as i32 {
                "buy"
            } else {
                "sell"
            };
            format!("{side} {} @ {}", o.size, o.price)
        }
        None => "-".into(),
    }
}

/// A spec in one line, for `virc bot show`.
pub fn describe(k: &Kind) -> String {
    match k {
        Kind::Range(r) => format!(
            "range {} size {} buy {} sell {}{}{}",
            r.product_id,
            r.size,
            r.buy_price,
            r.sell_price,
            if r.r#loop { ", looping" } else { ", one cycle" },
            if r.begin_with_sell {
                ", sell first"
            } else {
                ""
            }
        ),
        Kind::Grid(g) => {
            let size = match &g.sizing {
                Some(Sizing::SizePerLevel(s)) => format!("{s} per level"),
                Some(Sizing::QuoteBudget(b)) => format!("budget {b}"),
                None => String::new(),
            };
            let bounds: Vec<String> = [
                ("stop-loss", &g.stop_loss_price),
                ("take-profit", &g.take_profit_price),
            ]
            .iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(what, p)| format!(", {what} {p}"))
            .collect();
            let bounds = bounds.concat();
            format!(
                "grid {} {} levels {}–{} ({}), {size}{bounds}",
                g.product_id,
                g.levels,
                g.lower_price,
                g.upper_price,
                if g.spacing == pb::GridSpacing::Geometric as i32 {
                    "geometric"
                } else {
                    "arithmetic"
                }
            )
        }
        Kind::StopLoss(s) => {
            let what = match &s.amount {
                Some(SlAmount::Size(x)) => x.clone(),
                Some(SlAmount::AllAvailable(_)) => "all available".into(),
                Some(SlAmount::GuardedHoldings(_)) | None => "the guarded bot's holdings".into(),
            };
            let when = match &s.trigger {
                Some(SlTrigger::StopPrice(p)) => format!("at {p}"),
                Some(SlTrigger::TrailingDistance(d)) => format!("trailing {d} below the high"),
                Some(SlTrigger::TrailingPercent(d)) => format!("trailing {d}% below the high"),
                None => String::new(),
            };
            let exit = if s.limit_offset.is_empty() {
                "market exit".to_owned()
            } else {
                format!("limit {} below the stop", s.limit_offset)
            };
            let guard = if s.guard_product {
                format!(", guarding every bot on {}", s.product_id)
            } else if s.guard_bot_id.is_empty() {
                String::new()
            } else {
                format!(", guarding {}", s.guard_bot_id)
            };
            format!(
                "stop-loss {} sell {what} {when}, {exit}{guard}",
                s.product_id
            )
        }
        Kind::Conditional(c) => format!(
            "conditional {}: {}{}",
            c.product_id,
            c.steps.iter().map(step_text).collect::<Vec<_>>().join("; "),
            if c.r#loop { "; loop" } else { "" }
        ),
    }
}

/// A spec as JSON: `{"kind": ..., fields...}`, the spec file's shape.
pub fn to_json(s: &pb::BotSpec) -> Value {
    let Some(k) = &s.kind else {
        return Value::Null;
    };
    let opt = |t: &str| (!t.is_empty()).then(|| t.to_owned());
    let mut v = match k {
        Kind::Range(r) => json!({
            "product": r.product_id, "size": r.size, "buy": r.buy_price, "sell": r.sell_price,
            "loop": r.r#loop, "begin_with_sell": r.begin_with_sell, "force": r.force,
        }),
        Kind::Grid(g) => json!({
            "product": g.product_id, "lower": g.lower_price, "upper": g.upper_price, "levels": g.levels,
            "geometric": g.spacing == pb::GridSpacing::Geometric as i32,
            "size_per_level": match &g.sizing { Some(Sizing::SizePerLevel(x)) => Some(x.clone()), _ => None },
            "budget": match &g.sizing { Some(Sizing::QuoteBudget(x)) => Some(x.clone()), _ => None },
            "stop_loss": opt(&g.stop_loss_price), "take_profit": opt(&g.take_profit_price),
        }),
        Kind::StopLoss(s) => json!({
            "product": s.product_id,
            "size": match &s.amount { Some(SlAmount::Size(x)) => Some(x.clone()), _ => None },
            "all_available": matches!(s.amount, Some(SlAmount::AllAvailable(true))),
            "guard": opt(&s.guard_bot_id),
            "guard_product": s.guard_product,
            "stop": match &s.trigger { Some(SlTrigger::StopPrice(x)) => Some(x.clone()), _ => None },
            "trailing": match &s.trigger { Some(SlTrigger::TrailingDistance(x)) => Some(x.clone()), _ => None },
            "trailing_percent": match &s.trigger { Some(SlTrigger::TrailingPercent(x)) => Some(x.clone()), _ => None },
            "limit_offset": opt(&s.limit_offset),
        }),
        Kind::Conditional(c) => json!({
            "product": c.product_id, "loop": c.r#loop,
            "steps": c.steps.iter().map(|s| match &s.step {
                Some(PbStep::When(w)) if w.syntax == pb::RuleSyntax::Jsonlogic as i32 => json!({"when_jsonlogic": w.rule}),
                Some(PbStep::When(w)) => json!({"when": w.rule}),
                Some(PbStep::Order(o)) => {
                    let side = if o.side == pb::Side::Buy as i32 { "buy" } else { "sell" };
                    json!({side: format!("{} @ {}", o.size, o.price)})
                }
                None => Value::Null,
            }).collect::<Vec<_>>(),
        }),
    };
    v["kind"] = json!(kind_name(k));
    v["name"] = json!(s.name);
    v["exchange"] = json!(s.exchange);
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn steps_parse_from_the_shell_form() {
        let s = parse_step("when: p60.rsi14 >= 70 and ticker.price > p60.bb_up").unwrap();
        assert!(
            matches!(s.step, Some(PbStep::When(ref c)) if c.syntax == pb::RuleSyntax::Infix as i32)
        );
        let s = parse_step(r#"when: {"<=": [{"var": "p60.rsi14"}, 30]}"#).unwrap();
        assert!(
            matches!(s.step, Some(PbStep::When(ref c)) if c.syntax == pb::RuleSyntax::Jsonlogic as i32)
        );
        let s = parse_step("buy: 0.01 @ mkt-10").unwrap();
        assert!(
            matches!(s.step, Some(PbStep::Order(ref o)) if o.size == "0.01" && o.price == "mkt-10")
        );
        let s = parse_step("sell:0.5").unwrap();
        assert!(matches!(s.step, Some(PbStep::Order(ref o)) if o.price == "mkt"));
        assert!(
            parse_step("hold: 3")
                .unwrap_err()
                .contains("unknown step `hold`")
        );
        assert!(
            parse_step("buy 0.01")
                .unwrap_err()
                .contains("is not a step")
        );
        assert!(
            parse_step("buy: @ 3")
                .unwrap_err()
                .contains("give the size")
        );
    }

    #[test]
    fn spec_files_of_every_kind_read_and_name_their_kind() {
        let dir = std::env::temp_dir().join(format!("virc-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let grid = dir.join("g.toml");
        std::fs::write(&grid, "kind = \"grid\"\nproduct = \"BTC-USD\"\nlower = \"440\"\nupper = \"460\"\nlevels = 5\nbudget = \"100\"\n").unwrap();
        let (_, _, k) = read(&grid, "grid").unwrap();
        assert!(
            matches!(k, Kind::Grid(ref g) if g.levels == 5 && matches!(g.sizing, Some(Sizing::QuoteBudget(_))))
        );
        let e = read(&grid, "range").unwrap_err().to_string();
        assert!(e.contains("describes a grid bot"), "{e}");
        let cond = dir.join("c.toml");
        std::fs::write(&cond, "kind = \"conditional\"\nproduct = \"BTC-USD\"\nloop = true\n[[steps]]\nwhen = \"p60.rsi14 <= 30\"\n[[steps]]\nbuy = \"0.01 @ mkt-0.5%\"\n[[steps]]\nwhen_jsonlogic = { \">=\" = [{ var = \"p60.rsi14\" }, 70] }\n[[steps]]\nsell = \"0.01\"\n").unwrap();
        let (_, _, k) = read(&cond, "conditional").unwrap();
        let Kind::Conditional(c) = k else {
            panic!("not conditional")
        };
        assert_eq!(c.steps.len(), 4);
        assert!(
            describe(&Kind::Conditional(c.clone()))
                .contains("when p60.rsi14 <= 30; buy 0.01 @ mkt-0.5%")
        );
        let typo = dir.join("t.toml");
        std::fs::write(
            &typo,
            "kind = \"stop-loss\"\nproduct = \"BTC-USD\"\nstpo = \"3\"\n",
        )
        .unwrap();
        assert!(
            read(&typo, "stop-loss")
                .unwrap_err()
                .to_string()
                .contains("stpo")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
