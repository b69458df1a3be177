//! Rules over live market data: the conditions of conditional bots and of
//! `virc rule check`.
//!
//! Two syntaxes parse to one [`Expr`]:
//! - infix, for the shell: `p60.rsi14 >= 70 and ticker.price > p60.bb_up`
//!   (`and`/`&&`, `or`/`||`, `not`/`!`, `== != < <= > >=`, `+ - * /`,
//!   parentheses, numbers, `true`/`false`);
//! - JsonLogic, as the seed virc stored its rules:
//!   `{"and":[{">=":[{"var":"p60.rsi14"},70]}]}`.
//!
//! Both are checked when parsed: unknown variables, a number where a
//! condition is expected (or the reverse) and syntax errors name the column
//! (infix) or the JSON path (JsonLogic). A parsed rule cannot fail to
//! evaluate.
//!
//! # Variables
//! `ticker.price|bid|ask|spread|change_24h`; each candle period by its length
//! in seconds, as the seed named them (`p60`, `p300`, `p900`, `p3600`,
//! `p21600`, `p86400`) with the fields of its last *closed* candle
//! (`open high low close volume change sma20 ema20 rsi7 rsi14 bb_mid bb_up
//! bb_low vwap`); each rolling window (`w1m w5m w15m w30m w1h w6h w24h w7d`)
//! with `low high volume range change vwap trades`.
//!
//! # Unknown values
//! A variable can be known to the language yet have no value now (RSI-14 of
//! the 1 h candles after ten minutes of data). Evaluation is three-valued:
//! a comparison with a missing value is unknown, `not unknown` is unknown,
//! `false and unknown` is false, `true or unknown` is true; a rule fires
//! only when it is known to be true, so missing data never triggers an order.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::market::{Period, Window};

/// Where a variable's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Source {
    /// The ticker: last trade and best quotes.
    Ticker,
    /// The last closed candle of a period, with its indicators.
    Candle(Period),
    /// A rolling window ending at the last trade.
    Window(Window),
}

/// A market variable: a source and one of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Var {
    /// Ticker, candle period or window.
    pub source: Source,
    /// Field name, one of the source's [`Var::fields`].
    pub field: &'static str,
}

const TICKER_FIELDS: [&str; 5] = ["price", "bid", "ask", "spread", "change_24h"];
const CANDLE_FIELDS: [&str; 14] = [
    "open", "high", "low", "close", "volume", "change", "sma20", "ema20", "rsi7", "rsi14",
    "bb_mid", "bb_up", "bb_low", "vwap",
];
const WINDOW_FIELDS: [&str; 7] = ["low", "high", "volume", "range", "change", "vwap", "trades"];

impl Var {
    /// The fields a source has.
    pub fn fields(source: Source) -> &'static [&'static str] {
        match source {
            Source::Ticker => &TICKER_FIELDS,
            Source::Candle(_) => &CANDLE_FIELDS,
            Source::Window(_) => &WINDOW_FIELDS,
        }
    }

    /// Every variable of the language, ticker first.
    pub fn all() -> Vec<Var> {
        let sources = std::iter::once(Source::Ticker)
            .chain(Period::ALL.iter().map(|p| Source::Candle(*p)))
            .chain(Window::ALL.iter().map(|w| Source::Window(*w)));
        sources
            .flat_map(|source| {
                Self::fields(source)
                    .iter()
                    .map(move |field| Var { source, field })
            })
            .collect()
    }

    /// Parses `ticker.price`, `p60.rsi14`, `w24h.change`; the error says what exists.
    pub fn parse(name: &str) -> Result<Var, String> {
        let Some((head, field)) = name.split_once('.') else {
            return Err(format!(
                "unknown variable `{name}`: variables look like ticker.price, p60.rsi14 or w24h.change"
            ));
        };
        let source = if head == "ticker" {
            Source::Ticker
        } else if let Some(p) = Period::ALL.iter().find(|p| period_name(**p) == head) {
            Source::Candle(*p)
        } else if let Some(w) = Window::ALL.iter().find(|w| window_name(**w) == head) {
            Source::Window(*w)
        } else {
            let periods: Vec<String> = Period::ALL.iter().map(|p| period_name(*p)).collect();
            let windows: Vec<String> = Window::ALL.iter().map(|w| window_name(*w)).collect();
            return Err(format!(
                "unknown source `{head}` in `{name}`: use ticker, a candle period ({}) or a window ({})",
                periods.join(" "),
                windows.join(" ")
            ));
        };
        let fields = Self::fields(source);
        match fields.iter().find(|f| **f == field) {
            Some(field) => Ok(Var { source, field }),
            None => Err(format!(
                "unknown field `{field}` in `{name}`: {head} has {}",
                fields.join(" ")
            )),
        }
    }
}

/// `p60` for the 1-minute candles: the period in seconds, as the seed named it.
fn period_name(p: Period) -> String {
    format!("p{}", p.nanos() / 1_000_000_000)
}

fn window_name(w: Window) -> String {
    format!("w{}", w.name())
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Source::Ticker => write!(f, "ticker.{}", self.field),
            Source::Candle(p) => write!(f, "{}.{}", period_name(p), self.field),
            Source::Window(w) => write!(f, "{}.{}", window_name(w), self.field),
        }
    }
}

// `Var` is stored by name: `&'static str` cannot be deserialized in place.
impl Serialize for Var {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Var {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Var::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// Where variable values come from when a rule is evaluated.
pub trait Values {
    /// The variable's current value, if it has one.
    fn value(&self, var: &Var) -> Option<Decimal>;
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `and`
    And,
    /// `or`
    Or,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::And => "and",
            Self::Or => "or",
        }
    }

    fn is_arithmetic(self) -> bool {
        matches!(self, Self::Add | Self::Sub | Self::Mul | Self::Div)
    }

    fn is_logic(self) -> bool {
        matches!(self, Self::And | Self::Or)
    }

    /// Binding strength for printing: or < and < comparison < sum < product.
    fn precedence(self) -> u8 {
        match self {
            Self::Or => 1,
            Self::And => 2,
            Self::Eq | Self::Ne | Self::Lt | Self::Le | Self::Gt | Self::Ge => 3,
            Self::Add | Self::Sub => 4,
            Self::Mul | Self::Div => 5,
        }
    }
}

/// A parsed, type-checked rule expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expr {
    /// A number.
    Num(Decimal),
    /// `true` or `false`.
    Bool(bool),
    /// A market variable.
    Var(Var),
    /// Arithmetic negation.
    Neg(Box<Expr>),
    /// Logical negation.
    Not(Box<Expr>),
    /// A binary operation.
    Bin(Op, Box<Expr>, Box<Expr>),
}

/// What an expression yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Condition,
}

impl Expr {
    fn kind(&self) -> Kind {
        match self {
            Self::Num(_) | Self::Var(_) | Self::Neg(_) => Kind::Number,
            Self::Bin(op, ..) if op.is_arithmetic() => Kind::Number,
            Self::Bool(_) | Self::Not(_) | Self::Bin(..) => Kind::Condition,
        }
    }

    fn number(&self, values: &dyn Values) -> Option<Decimal> {
        match self {
            Self::Num(n) => Some(*n),
            Self::Var(v) => values.value(v),
            Self::Neg(e) => e.number(values).map(|n| -n),
            Self::Bin(op, a, b) => {
                let (a, b) = (a.number(values)?, b.number(values)?);
                match op {
                    Op::Add => a.checked_add(b),
                    Op::Sub => a.checked_sub(b),
                    Op::Mul => a.checked_mul(b),
                    // Division by zero has no value: the comparison is unknown.
                    Op::Div => a.checked_div(b),
                    _ => None,
                }
            }
            Self::Bool(_) | Self::Not(_) => None,
        }
    }

    /// Three-valued truth: `None` when a value it needs is missing.
    fn truth(&self, values: &dyn Values) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            Self::Not(e) => e.truth(values).map(|b| !b),
            Self::Bin(Op::And, a, b) => match (a.truth(values), b.truth(values)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Self::Bin(Op::Or, a, b) => match (a.truth(values), b.truth(values)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Self::Bin(op, a, b) => {
                let (a, b) = (a.number(values)?, b.number(values)?);
                Some(match op {
                    Op::Eq => a == b,
                    Op::Ne => a != b,
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    Op::Gt => a > b,
                    Op::Ge => a >= b,
                    _ => return None,
                })
            }
            Self::Num(_) | Self::Var(_) | Self::Neg(_) => None,
        }
    }

    fn collect_vars(&self, out: &mut Vec<Var>) {
        match self {
            Self::Var(v) if !out.contains(v) => out.push(*v),
            Self::Neg(e) | Self::Not(e) => e.collect_vars(out),
            Self::Bin(_, a, b) => {
                a.collect_vars(out);
                b.collect_vars(out);
            }
            _ => {}
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, outer: u8) -> fmt::Result {
        match self {
            Self::Num(n) => write!(f, "{}", n.normalize()),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Var(v) => write!(f, "{v}"),
            Self::Neg(e) => {
                f.write_str("-")?;
                e.write(f, 6)
            }
            Self::Not(e) => {
                f.write_str("not ")?;
                e.write(f, 3)
            }
            Self::Bin(op, a, b) => {
                let p = op.precedence();
                if p < outer {
                    f.write_str("(")?;
                }
                a.write(f, p)?;
                write!(f, " {} ", op.symbol())?;
                // Left-associative: a right operand of equal strength needs parentheses.
                b.write(f, p + 1)?;
                if p < outer {
                    f.write_str(")")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)
    }
}

/// A rule's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Syntax {
    /// `p60.rsi14 >= 70 and ticker.price > p60.bb_up`
    Infix,
    /// `{"and":[{">=":[{"var":"p60.rsi14"},70]}]}`
    JsonLogic,
}

/// A rule: its source text and the checked expression it parses to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// The text as the user wrote it.
    pub source: String,
    /// Its syntax.
    pub syntax: Syntax,
    /// The expression.
    pub expr: Expr,
}

/// Why a rule does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// In the infix form, at a 1-based column.
    #[error("column {column}: {message}")]
    At {
        /// 1-based column of the offending character.
        column: usize,
        /// What is wrong there.
        message: String,
    },
    /// In the JsonLogic form, at a path like `and[0].>=[1]`.
    #[error("at {path}: {message}")]
    Json {
        /// Where in the JSON.
        path: String,
        /// What is wrong there.
        message: String,
    },
}

impl Rule {
    /// Parses `source` in `syntax`.
    pub fn parse(source: &str, syntax: Syntax) -> Result<Rule, RuleError> {
        let expr = match syntax {
            Syntax::Infix => parse_infix(source)?,
            Syntax::JsonLogic => parse_jsonlogic(source)?,
        };
        Ok(Rule {
            source: source.to_owned(),
            syntax,
            expr,
        })
    }

    /// Whether the rule is true now; `None` when a value it needs is missing.
    pub fn eval(&self, values: &dyn Values) -> Option<bool> {
        self.expr.truth(values)
    }

    /// The variables it reads, each once, in order of appearance.
    pub fn variables(&self) -> Vec<Var> {
        let mut out = Vec::new();
        self.expr.collect_vars(&mut out);
        out
    }

    /// The rule in the infix form (a JsonLogic rule, readable).
    pub fn to_string_infix(&self) -> String {
        self.expr.to_string()
    }

    /// Each variable it reads with its value now ("n/a" when it has none).
    pub fn readings(&self, values: &dyn Values) -> Vec<(String, String)> {
        self.variables()
            .into_iter()
            .map(|v| {
                let value = values
                    .value(&v)
                    .map_or_else(|| "n/a".to_owned(), |d| d.normalize().to_string());
                (v.to_string(), value)
            })
            .collect()
    }
}

// ---------------------------------------------------------------- infix

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(Decimal),
    Ident(String),
    Op(Op),
    Not,
    Minus,
    Open,
    Close,
    End,
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    /// 1-based column of a byte offset, counted in characters.
    fn column(&self, at: usize) -> usize {
        self.text[..at].chars().count() + 1
    }

    fn error(&self, at: usize, message: impl Into<String>) -> RuleError {
        RuleError::At {
            column: self.column(at),
            message: message.into(),
        }
    }

    /// The next token and its byte offset.
    fn next(&mut self) -> Result<(Tok, usize), RuleError> {
        let rest = &self.text[self.pos..];
        let trimmed = rest.trim_start();
        self.pos += rest.len() - trimmed.len();
        let at = self.pos;
        let Some(c) = trimmed.chars().next() else {
            return Ok((Tok::End, at));
        };
        let two = trimmed.get(..2).unwrap_or("");
        let (tok, len) = match two {
            "==" => (Tok::Op(Op::Eq), 2),
            "!=" => (Tok::Op(Op::Ne), 2),
            "<=" => (Tok::Op(Op::Le), 2),
            ">=" => (Tok::Op(Op::Ge), 2),
            "&&" => (Tok::Op(Op::And), 2),
            "||" => (Tok::Op(Op::Or), 2),
            _ => match c {
                '<' => (Tok::Op(Op::Lt), 1),
                '>' => (Tok::Op(Op::Gt), 1),
                '+' => (Tok::Op(Op::Add), 1),
                '-' => (Tok::Minus, 1),
                '*' => (Tok::Op(Op::Mul), 1),
                '/' => (Tok::Op(Op::Div), 1),
                '!' => (Tok::Not, 1),
                '(' => (Tok::Open, 1),
                ')' => (Tok::Close, 1),
                '=' => return Err(self.error(at, "`=` is not an operator; compare with `==`")),
                c if c.is_ascii_digit() || c == '.' => {
                    let len = trimmed
                        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                        .unwrap_or(trimmed.len());
                    let text = &trimmed[..len];
                    let n = text
                        .parse::<Decimal>()
                        .map_err(|_| self.error(at, format!("`{text}` is not a number")))?;
                    (Tok::Num(n), len)
                }
                c if c.is_ascii_alphabetic() || c == '_' => {
                    let len = trimmed
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                        .unwrap_or(trimmed.len());
                    let word = &trimmed[..len];
                    let tok = match word {
                        "and" => Tok::Op(Op::And),
                        "or" => Tok::Op(Op::Or),
                        "not" => Tok::Not,
                        _ => Tok::Ident(word.to_owned()),
                    };
                    (tok, len)
                }
                c => return Err(self.error(at, format!("unexpected character `{c}`"))),
            },
        };
        self.pos += len;
        Ok((tok, at))
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    tok: Tok,
    at: usize,
}

/// A sub-expression with where it starts, for type errors.
type Spanned = (Expr, usize);

impl Parser<'_> {
    fn bump(&mut self) -> Result<(), RuleError> {
        (self.tok, self.at) = self.lexer.next()?;
        Ok(())
    }

    fn expect_kind(&self, (e, at): &Spanned, want: Kind, role: &str) -> Result<(), RuleError> {
        if e.kind() == want {
            return Ok(());
        }
        let message = match want {
            Kind::Number => format!("{role} needs a number, found the condition `{e}`"),
            Kind::Condition => format!(
                "{role} needs a condition, found the number `{e}`; compare it, as in `{e} > 0`"
            ),
        };
        Err(self.lexer.error(*at, message))
    }

    fn binary(
        &mut self,
        ops: &[Op],
        operand: fn(&mut Self) -> Result<Spanned, RuleError>,
    ) -> Result<Spanned, RuleError> {
        let mut left = operand(self)?;
        loop {
            let op = match self.tok {
                Tok::Op(op) if ops.contains(&op) => op,
                Tok::Minus if ops.contains(&Op::Sub) => Op::Sub,
                _ => return Ok(left),
            };
            self.bump()?;
            let right = operand(self)?;
            let want = if op.is_logic() {
                Kind::Condition
            } else {
                Kind::Number
            };
            let role = format!("`{}`", op.symbol());
            self.expect_kind(&left, want, &role)?;
            self.expect_kind(&right, want, &role)?;
            left = (Expr::Bin(op, Box::new(left.0), Box::new(right.0)), left.1);
        }
    }

    fn or(&mut self) -> Result<Spanned, RuleError> {
        self.binary(&[Op::Or], Self::and)
    }

    fn and(&mut self) -> Result<Spanned, RuleError> {
        self.binary(&[Op::And], Self::not)
    }

    fn not(&mut self) -> Result<Spanned, RuleError> {
        if self.tok == Tok::Not {
            let at = self.at;
            self.bump()?;
            let e = self.not()?;
            self.expect_kind(&e, Kind::Condition, "`not`")?;
            return Ok((Expr::Not(Box::new(e.0)), at));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Spanned, RuleError> {
        let left = self.sum()?;
        let Tok::Op(op @ (Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge)) = self.tok else {
            return Ok(left);
        };
        self.bump()?;
        let right = self.sum()?;
        let role = format!("`{}`", op.symbol());
        self.expect_kind(&left, Kind::Number, &role)?;
        self.expect_kind(&right, Kind::Number, &role)?;
        if let Tok::Op(Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge) = self.tok {
            return Err(self
                .lexer
                .error(self.at, "comparisons do not chain; write `a < b and b < c`"));
        }
        Ok((Expr::Bin(op, Box::new(left.0), Box::new(right.0)), left.1))
    }

    fn sum(&mut self) -> Result<Spanned, RuleError> {
        self.binary(&[Op::Add, Op::Sub], Self::product)
    }

    fn product(&mut self) -> Result<Spanned, RuleError> {
        self.binary(&[Op::Mul, Op::Div], Self::unary)
    }

    fn unary(&mut self) -> Result<Spanned, RuleError> {
        if self.tok == Tok::Minus {
            let at = self.at;
            self.bump()?;
            let e = self.unary()?;
            self.expect_kind(&e, Kind::Number, "`-`")?;
            return Ok((Expr::Neg(Box::new(e.0)), at));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Spanned, RuleError> {
        let at = self.at;
        let e = match std::mem::replace(&mut self.tok, Tok::End) {
            Tok::Num(n) => Expr::Num(n),
            Tok::Ident(w) if w == "true" => Expr::Bool(true),
            Tok::Ident(w) if w == "false" => Expr::Bool(false),
            Tok::Ident(w) => Expr::Var(Var::parse(&w).map_err(|m| self.lexer.error(at, m))?),
            Tok::Open => {
                self.bump()?;
                let inner = self.or()?;
                if self.tok != Tok::Close {
                    return Err(self.lexer.error(self.at, "expected `)`"));
                }
                self.bump()?;
                return Ok((inner.0, at));
            }
            Tok::End => {
                return Err(self
                    .lexer
                    .error(at, "the rule ends where a value was expected"));
            }
            _ => {
                let text = self.lexer.text[at..].chars().take(4).collect::<String>();
                return Err(self
                    .lexer
                    .error(at, format!("expected a value, found `{text}`")));
            }
        };
        self.bump()?;
        Ok((e, at))
    }
}

/// Parses the infix form.
fn parse_infix(text: &str) -> Result<Expr, RuleError> {
    let mut p = Parser {
        lexer: Lexer { text, pos: 0 },
        tok: Tok::End,
        at: 0,
    };
    p.bump()?;
    let e = p.or()?;
    if p.tok != Tok::End {
        return Err(p.lexer.error(
            p.at,
            "unexpected text after the rule; join conditions with `and` or `or`",
        ));
    }
    p.expect_kind(&e, Kind::Condition, "a rule")?;
    Ok(e.0)
}

// ------------------------------------------------------------ JsonLogic

fn json_err(path: &str, message: impl Into<String>) -> RuleError {
    RuleError::Json {
        path: if path.is_empty() {
            "the top".into()
        } else {
            path.to_owned()
        },
        message: message.into(),
    }
}

fn json_number(path: &str, n: &serde_json::Number) -> Result<Decimal, RuleError> {
    let text = n.to_string();
    text.parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| json_err(path, format!("{text} is out of range")))
}

fn json_expr(v: &Value, path: &str) -> Result<Expr, RuleError> {
    match v {
        Value::Number(n) => Ok(Expr::Num(json_number(path, n)?)),
        Value::Bool(b) => Ok(Expr::Bool(*b)),
        // The seed sometimes quoted numbers.
        Value::String(s) => s.parse::<Decimal>().map(Expr::Num).map_err(|_| {
            json_err(
                path,
                format!("\"{s}\" is not a number; variables are {{\"var\": \"{s}\"}}"),
            )
        }),
        Value::Object(map) => {
            let mut entries = map.iter();
            let (Some((op, args)), None) = (entries.next(), entries.next()) else {
                return Err(json_err(
                    path,
                    "an operation is an object with exactly one key",
                ));
            };
            let here = if path.is_empty() {
                op.clone()
            } else {
                format!("{path}.{op}")
            };
            if op == "var" {
                let name = match args {
                    Value::String(s) => s.as_str(),
                    Value::Array(a) => match a.first() {
                        Some(Value::String(s)) => s.as_str(),
                        _ => return Err(json_err(&here, "var takes a variable name")),
                    },
                    _ => return Err(json_err(&here, "var takes a variable name")),
                };
                return Var::parse(name)
                    .map(Expr::Var)
                    .map_err(|m| json_err(&here, m));
            }
            let args: Vec<Expr> = match args {
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, x)| json_expr(x, &format!("{here}[{i}]")))
                    .collect::<Result<_, _>>()?,
                single => vec![json_expr(single, &format!("{here}[0]"))?],
            };
            json_op(op, args, &here)
        }
        Value::Null | Value::Array(_) => Err(json_err(
            path,
            "expected a number, a condition or an operation like {\">=\": [a, b]}",
        )),
    }
}

fn need(e: &Expr, want: Kind, path: &str, i: usize) -> Result<(), RuleError> {
    if e.kind() == want {
        return Ok(());
    }
    let what = match want {
        Kind::Number => "a number",
        Kind::Condition => "a condition",
    };
    Err(json_err(
        &format!("{path}[{i}]"),
        format!("expected {what}, found `{e}`"),
    ))
}

fn json_op(op: &str, args: Vec<Expr>, path: &str) -> Result<Expr, RuleError> {
    let bin = match op {
        "and" => Some(Op::And),
        "or" => Some(Op::Or),
        "==" | "===" => Some(Op::Eq),
        "!=" | "!==" => Some(Op::Ne),
        "<" => Some(Op::Lt),
        "<=" => Some(Op::Le),
        ">" => Some(Op::Gt),
        ">=" => Some(Op::Ge),
        "+" => Some(Op::Add),
        "-" => Some(Op::Sub),
        "*" => Some(Op::Mul),
        "/" => Some(Op::Div),
        "!" | "not" => None,
        _ => {
            return Err(json_err(
                path,
                format!("unknown operation `{op}`: use and or ! == != < <= > >= + - * / var"),
            ));
        }
    };
    let Some(bin) = bin else {
        let [e] = <[Expr; 1]>::try_from(args)
            .map_err(|_| json_err(path, format!("`{op}` takes one condition")))?;
        need(&e, Kind::Condition, path, 0)?;
        return Ok(Expr::Not(Box::new(e)));
    };
    let want = if bin.is_logic() {
        Kind::Condition
    } else {
        Kind::Number
    };
    for (i, e) in args.iter().enumerate() {
        need(e, want, path, i)?;
    }
    let n = args.len();
    let mut args = args.into_iter();
    match (bin, n) {
        (Op::Sub, 1) => Ok(Expr::Neg(Box::new(
            args.next().unwrap_or(Expr::Num(Decimal::ZERO)),
        ))),
        (Op::And | Op::Or | Op::Add | Op::Mul, 1..) => {
            let first = args.next().unwrap_or(Expr::Bool(true));
            Ok(args.fold(first, |a, b| Expr::Bin(bin, Box::new(a), Box::new(b))))
        }
        // JsonLogic's "between": {"<": [a, b, c]} is a < b and b < c.
        (Op::Lt | Op::Le, 3) => {
            let (Some(a), Some(b), Some(c)) = (args.next(), args.next(), args.next()) else {
                return Err(json_err(path, "between takes three values"));
            };
            Ok(Expr::Bin(
                Op::And,
                Box::new(Expr::Bin(bin, Box::new(a), Box::new(b.clone()))),
                Box::new(Expr::Bin(bin, Box::new(b), Box::new(c))),
            ))
        }
        (_, 2) => match (args.next(), args.next()) {
            (Some(a), Some(b)) => Ok(Expr::Bin(bin, Box::new(a), Box::new(b))),
            _ => Err(json_err(path, format!("`{op}` takes two values"))),
        },
        _ => Err(json_err(
            path,
            format!("`{op}` takes two values, found {n}"),
        )),
    }
}

/// Parses the JsonLogic form.
fn parse_jsonlogic(text: &str) -> Result<Expr, RuleError> {
    let v: Value = serde_json::from_str(text).map_err(|e| RuleError::At {
        column: e.column(),
        message: format!("not JSON: {e}"),
    })?;
    let e = json_expr(&v, "")?;
    if e.kind() != Kind::Condition {
        return Err(json_err(
            "",
            format!("a rule must be a condition, found `{e}`"),
        ));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rust_decimal_macros::dec;

    use super::*;

    struct Map(HashMap<String, Decimal>);

    impl Values for Map {
        fn value(&self, var: &Var) -> Option<Decimal> {
            self.0.get(&var.to_string()).copied()
        }
    }

    fn market() -> Map {
        Map(HashMap::from([
            ("ticker.price".into(), dec!(452.10)),
            ("p60.rsi14".into(), dec!(72.5)),
            ("p60.bb_up".into(), dec!(451.00)),
            ("w24h.change".into(), dec!(-1.5)),
        ]))
    }

    fn infix(text: &str) -> Rule {
        Rule::parse(text, Syntax::Infix).unwrap()
    }

    fn column(text: &str) -> (usize, String) {
        match Rule::parse(text, Syntax::Infix) {
            Err(RuleError::At { column, message }) => (column, message),
            other => panic!("expected a column error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn the_issue_example_parses_and_fires() {
        let r = infix("p60.rsi14 >= 70 and ticker.price > p60.bb_up");
        assert_eq!(r.eval(&market()), Some(true));
        assert_eq!(
            r.variables()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["p60.rsi14", "ticker.price", "p60.bb_up"]
        );
        assert_eq!(
            r.readings(&market()),
            [
                ("p60.rsi14".to_owned(), "72.5".to_owned()),
                ("ticker.price".to_owned(), "452.1".to_owned()),
                ("p60.bb_up".to_owned(), "451".to_owned())
            ]
        );
    }

    #[test]
    fn precedence_and_arithmetic() {
        let m = market();
        assert_eq!(infix("ticker.price - 2 * 0.05 > 452").eval(&m), Some(false));
        assert_eq!(infix("(ticker.price - 2) * 0.05 > 22").eval(&m), Some(true));
        assert_eq!(infix("-w24h.change == 1.5").eval(&m), Some(true));
        assert_eq!(infix("not p60.rsi14 < 70 && true").eval(&m), Some(true));
        assert_eq!(infix("false or 1 / 0 > 1").eval(&m), None);
        assert!(Rule::parse("a_or_b", Syntax::Infix).is_err());
    }

    #[test]
    fn missing_values_never_fire() {
        let m = market();
        assert_eq!(infix("p3600.rsi14 > 70").eval(&m), None);
        assert_eq!(infix("not p3600.rsi14 > 70").eval(&m), None);
        assert_eq!(infix("p3600.rsi14 > 70 and false").eval(&m), Some(false));
        assert_eq!(infix("p3600.rsi14 > 70 or true").eval(&m), Some(true));
        assert_eq!(
            infix("p3600.rsi14 > 70").readings(&m),
            [("p3600.rsi14".to_owned(), "n/a".to_owned())]
        );
    }

    #[test]
    fn errors_name_the_column() {
        assert_eq!(column("ticker.price >").0, 15);
        let (c, m) = column("ticker.price > 1 and p61.rsi14 < 3");
        assert_eq!(c, 22);
        assert!(m.contains("unknown source `p61`"), "{m}");
        let (c, m) = column("p60.rsi15 > 3");
        assert_eq!(c, 1);
        assert!(
            m.contains("unknown field `rsi15`") && m.contains("rsi14"),
            "{m}"
        );
        let (c, m) = column("ticker.price = 3");
        assert_eq!((c, m.contains("==")), (14, true));
        let (c, m) = column("ticker.price > 3 and 5");
        assert_eq!(c, 22);
        assert!(m.contains("needs a condition"), "{m}");
        assert_eq!(column("ticker.price").0, 1);
        assert_eq!(column("(ticker.price > 3").0, 18);
        assert_eq!(column("1 < 2 < 3").0, 7);
        assert_eq!(column("ticker.price > 3 )").0, 18);
        assert_eq!(column("ticker.price > 3 # x").0, 18);
        assert_eq!(column("é > 3").0, 1);
    }

    #[test]
    fn jsonlogic_as_the_seed_wrote_it() {
        let text = r#"{"and":[{">=":[{"var":"p60.rsi14"},70]},{">":[{"var":"ticker.price"},{"var":"p60.bb_up"}]}]}"#;
        let r = Rule::parse(text, Syntax::JsonLogic).unwrap();
        assert_eq!(
            r.expr,
            infix("p60.rsi14 >= 70 and ticker.price > p60.bb_up").expr
        );
        assert_eq!(r.eval(&market()), Some(true));
        let between = Rule::parse(
            r#"{"<":[450, {"var":["ticker.price"]}, 460]}"#,
            Syntax::JsonLogic,
        )
        .unwrap();
        assert_eq!(between.eval(&market()), Some(true));
        let not = Rule::parse(
            r#"{"!":{"<":[{"var":"p60.rsi14"},"70"]}}"#,
            Syntax::JsonLogic,
        )
        .unwrap();
        assert_eq!(not.to_string_infix(), "not p60.rsi14 < 70");
    }

    #[test]
    fn jsonlogic_errors_name_the_path() {
        let e = Rule::parse(
            r#"{"and":[{">=":[{"var":"p60.rsi99"},70]}]}"#,
            Syntax::JsonLogic,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("at and[0].>=[0].var: unknown field `rsi99`"),
            "{e}"
        );
        let e = Rule::parse(r#"{"xor":[1,2]}"#, Syntax::JsonLogic)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown operation `xor`"), "{e}");
        let e = Rule::parse(r#"{"+":[1,2]}"#, Syntax::JsonLogic)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be a condition"), "{e}");
        let e = Rule::parse(r#"{"and":[1,true]}"#, Syntax::JsonLogic)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("at and[0]: expected a condition"), "{e}");
        let e = Rule::parse(r#"{"and":["#, Syntax::JsonLogic).unwrap_err();
        assert!(matches!(e, RuleError::At { .. }), "{e}");
    }

    #[test]
    fn printing_round_trips() {
        for text in [
            "p60.rsi14 >= 70 and ticker.price > p60.bb_up",
            "(ticker.price > 1 or ticker.price < 0) and not w1h.change > 2",
            "ticker.price - (ticker.bid - 1) > 2 / (3 * ticker.ask)",
            "-ticker.price < -3",
        ] {
            let r = infix(text);
            assert_eq!(r.to_string_infix(), text);
            assert_eq!(infix(&r.to_string_infix()).expr, r.expr);
        }
    }

    #[test]
    fn every_variable_parses_back() {
        let all = Var::all();
        assert_eq!(all.len(), 5 + 6 * 14 + 8 * 7);
        for v in all {
            assert_eq!(Var::parse(&v.to_string()), Ok(v));
        }
        let r = infix("w7d.trades > 0");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), r);
    }

    mod never_panics {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn on_any_text(text in "[ -~]{0,60}") {
                let _ = Rule::parse(&text, Syntax::Infix);
                let _ = Rule::parse(&text, Syntax::JsonLogic);
            }

            #[test]
            fn on_rule_like_text(parts in proptest::collection::vec(
                prop_oneof![
                    Just("ticker.price"), Just("p60.rsi14"), Just(">"), Just("<="),
                    Just("and"), Just("or"), Just("not"), Just("("), Just(")"),
                    Just("-"), Just("*"), Just("3.5"), Just("=="),
                ], 0..12)) {
                let text = parts.join(" ");
                if let Ok(r) = Rule::parse(&text, Syntax::Infix) {
                    // What parses prints to text that parses to the same rule.
                    prop_assert_eq!(infix(&r.to_string_infix()).expr, r.expr.clone());
                    let _ = r.eval(&market());
                }
            }
        }
    }
}
