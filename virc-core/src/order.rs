//! The Coinbase order model: requests as `POST /orders` takes them, their
//! validation with the exchange's exact error texts, and the order lifecycle
//! as one transition function.
//!
//! Validation here is what the exchange checks before acceptance, without
//! the book or the balances. "Insufficient funds" (the ledger) and "Post
//! only mode" for an order that would take (the matcher) come later in the
//! same order as on Coinbase; their texts are the constants below.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{
    ids::{ClientOid, OrderId},
    money::{Funds, Price, Size, format_8dp, parse_decimal},
    product::{Catalogue, Product},
};

/// `Insufficient funds`: the hold would exceed the available balance.
pub const INSUFFICIENT_FUNDS: &str = "Insufficient funds";
/// `Post only mode`: a post-only order (or any order in a post-only product) would take.
pub const POST_ONLY_MODE: &str = "Post only mode";
/// `Limit only mode`: a market order in a limit-only product.
pub const LIMIT_ONLY_MODE: &str = "Limit only mode";
/// `Cancel only mode`: a new order in a cancel-only product.
pub const CANCEL_ONLY_MODE: &str = "Cancel only mode";
/// `Product not found`.
pub const PRODUCT_NOT_FOUND: &str = "Product not found";
/// `order not found`: unknown, purged or already done.
pub const ORDER_NOT_FOUND: &str = "order not found";

/// Order side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Buy base with quote.
    Buy,
    /// Sell base for quote.
    Sell,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Self {
        match self {
            Self::Buy => Self::Sell,
            Self::Sell => Self::Buy,
        }
    }
}

/// The lifetime of a GTT order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CancelAfter {
    /// One minute.
    Min,
    /// One hour.
    Hour,
    /// One day (24 h).
    Day,
}

impl CancelAfter {
    /// The lifetime in nanoseconds.
    pub fn nanos(self) -> i64 {
        match self {
            Self::Min => 60_000_000_000,
            Self::Hour => 3_600_000_000_000,
            Self::Day => 86_400_000_000_000,
        }
    }
}

/// Resting GTT orders by expiry time, soonest first, so expiring costs
/// O(expired) rather than a scan of every resting order. Order ids are
/// issued in arrival order, so ties at one instant expire in arrival order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Expiries(std::collections::BTreeSet<(i64, OrderId)>);

impl Expiries {
    /// Records that `id` expires at `at`.
    pub fn add(&mut self, at: i64, id: OrderId) {
        self.0.insert((at, id));
    }

    /// Forgets `id` (filled or canceled before its expiry).
    pub fn remove(&mut self, at: i64, id: OrderId) {
        self.0.remove(&(at, id));
    }

    /// The next order whose expiry is at or before `now`, removed from the set.
    pub fn pop_due(&mut self, now: i64) -> Option<OrderId> {
        let &(at, id) = self.0.first()?;
        (at <= now).then(|| {
            self.0.pop_first();
            id
        })
    }
}

/// Time in force of a limit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeInForce {
    /// Good till canceled.
    Gtc,
    /// Good till time: canceled after the given lifetime.
    Gtt(CancelAfter),
    /// Immediate or cancel.
    Ioc,
    /// Fill or kill.
    Fok,
}

/// Self-trade prevention flag; the taker's decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stp {
    /// Decrement and cancel (default).
    #[default]
    Dc,
    /// Cancel oldest (the resting order).
    Co,
    /// Cancel newest (the taker).
    Cn,
    /// Cancel both.
    Cb,
}

/// Stop trigger direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopKind {
    /// Last trade price ≤ stop price.
    Loss,
    /// Last trade price ≥ stop price.
    Entry,
}

impl StopKind {
    /// Whether a trade at `last` triggers a stop at `stop_price`.
    pub fn triggers(self, last: Price, stop_price: Price) -> bool {
        match self {
            Self::Loss => last <= stop_price,
            Self::Entry => last >= stop_price,
        }
    }
}

/// An order request in the shape of `POST /orders`: text fields exactly as
/// the client sent them, so validation can answer with the exchange's words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderRequest {
    /// Client order id.
    pub client_oid: Option<ClientOid>,
    /// `limit` (default) or `market`.
    #[serde(rename = "type")]
    pub order_type: Option<String>,
    /// `buy` or `sell`.
    pub side: Option<String>,
    /// Product id.
    pub product_id: String,
    /// Limit price.
    pub price: Option<String>,
    /// Base size.
    pub size: Option<String>,
    /// Quote funds (market orders).
    pub funds: Option<String>,
    /// `GTC`, `GTT`, `IOC`, `FOK`.
    pub time_in_force: Option<String>,
    /// `min`, `hour`, `day` (GTT only).
    pub cancel_after: Option<String>,
    /// Post-only flag.
    pub post_only: Option<bool>,
    /// `dc`, `co`, `cn`, `cb`.
    pub stp: Option<String>,
    /// `loss` or `entry`.
    pub stop: Option<String>,
    /// Stop trigger price.
    pub stop_price: Option<String>,
}

/// How much a market order trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarketAmount {
    /// A base size.
    Size(Size),
    /// Quote funds to spend (buy) or receive at most (sell).
    Funds(Funds),
}

/// What kind of order, with its checked parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderKind {
    /// A limit order, optionally a stop-limit.
    Limit {
        /// Limit price.
        price: Price,
        /// Base size.
        size: Size,
        /// Time in force.
        tif: TimeInForce,
        /// Only add liquidity.
        post_only: bool,
        /// Stop trigger, for a stop-limit order.
        stop: Option<(StopKind, Price)>,
    },
    /// A market order.
    Market(MarketAmount),
}

/// A validated order, ready for the ledger and the matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    /// Client order id, if the client chose one.
    pub client_oid: Option<ClientOid>,
    /// Side.
    pub side: Side,
    /// Kind and parameters.
    pub kind: OrderKind,
    /// Self-trade prevention.
    pub stp: Stp,
}

/// A refusal, with the exchange's exact message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// HTTP status Coinbase answers with (400 or 404).
    pub status: u16,
    /// The exchange's text, byte for byte.
    pub message: String,
}

impl Rejection {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
        }
    }

    /// A 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: 404,
            message: message.into(),
        }
    }
}

fn decimal_field(name: &'static str, text: &str) -> Result<Decimal, Rejection> {
    // Coinbase answers malformed numbers with "Invalid <Field>"; the reason is
    // appended so that a human sees what was wrong.
    parse_decimal(name, text).map_err(|e| {
        let mut field = name.to_owned();
        if let Some(first) = field.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        Rejection::bad_request(format!("Invalid {field}: {e}"))
    })
}

/// The exchange's refusal of an amount off its increment.
pub(crate) fn too_accurate(field: &str, unit: Decimal) -> Rejection {
    Rejection::bad_request(format!(
        "{field} is too accurate. Smallest unit is {}",
        format_8dp(unit)
    ))
}

/// Validates a request against its product, as the exchange does before
/// acceptance. Returns the product and the checked order.
pub fn validate<'c>(
    catalogue: &'c Catalogue,
    req: &OrderRequest,
) -> Result<(&'c Product, NewOrder), Rejection> {
    let product = catalogue
        .get(&req.product_id)
        .ok_or_else(|| Rejection::not_found(PRODUCT_NOT_FOUND))?;
    let order = validate_for(product, req)?;
    Ok((product, order))
}

/// Validates a request against a known product.
pub fn validate_for(product: &Product, req: &OrderRequest) -> Result<NewOrder, Rejection> {
    let order_type = req.order_type.as_deref().unwrap_or("limit");
    if !matches!(order_type, "limit" | "market") {
        return Err(Rejection::bad_request(format!(
            "Invalid order_type {order_type}"
        )));
    }
    let is_market = order_type == "market";
    if is_market && (req.stop.is_some() || req.stop_price.is_some()) {
        return Err(Rejection::bad_request("Invalid order_type market"));
    }
    let side = match req.side.as_deref() {
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        Some(other) => {
            return Err(Rejection::bad_request(format!(
                "Invalid side {other}: use buy or sell"
            )));
        }
        None => return Err(Rejection::bad_request("side is required: use buy or sell")),
    };
    let stp = match req.stp.as_deref() {
        None | Some("dc") => Stp::Dc,
        Some("co") => Stp::Co,
        Some("cn") => Stp::Cn,
        Some("cb") => Stp::Cb,
        Some(other) => {
            return Err(Rejection::bad_request(format!(
                "Invalid stp {other}: use dc, co, cn or cb"
            )));
        }
    };
    if product.trading_disabled {
        return Err(Rejection::bad_request("Trading disabled"));
    }
    if product.cancel_only {
        return Err(Rejection::bad_request(CANCEL_ONLY_MODE));
    }
    if is_market && product.limit_only {
        return Err(Rejection::bad_request(LIMIT_ONLY_MODE));
    }
    let kind = if is_market {
        market_kind(product, req)?
    } else {
        limit_kind(product, req)?
    };
    Ok(NewOrder {
        client_oid: req.client_oid,
        side,
        kind,
        stp,
    })
}

fn market_kind(product: &Product, req: &OrderRequest) -> Result<OrderKind, Rejection> {
    if req.time_in_force.is_some() || req.cancel_after.is_some() {
        return Err(Rejection::bad_request(
            "time_in_force is not allowed for market orders",
        ));
    }
    if req.post_only == Some(true) {
        return Err(Rejection::bad_request(
            "post_only is not allowed for market orders",
        ));
    }
    if req.price.is_some() {
        return Err(Rejection::bad_request(
            "price is not allowed for market orders: use size or funds",
        ));
    }
    match (&req.size, &req.funds) {
        (Some(_), Some(_)) => Err(Rejection::bad_request(
            "size and funds are mutually exclusive for market orders: send one",
        )),
        (None, None) => Err(Rejection::bad_request("market orders need size or funds")),
        (Some(size), None) => {
            let size = positive_size(product, size)?;
            Ok(OrderKind::Market(MarketAmount::Size(size)))
        }
        (None, Some(funds)) => {
            let funds = decimal_field("funds", funds)?;
            if funds <= Decimal::ZERO {
                return Err(Rejection::bad_request("funds must be greater than zero"));
            }
            if !(funds % product.quote_increment).is_zero() {
                return Err(too_accurate("funds", product.quote_increment));
            }
            let funds = Funds::new(funds).map_err(|e| Rejection::bad_request(e.to_string()))?;
            if funds < product.min_market_funds {
                return Err(Rejection::bad_request(format!(
                    "funds is too small. Minimum size is {}",
                    format_8dp(product.min_market_funds.get())
                )));
            }
            if let Some(max) = product.max_market_funds.filter(|max| funds > *max) {
                return Err(Rejection::bad_request(format!(
                    "funds is too large. Maximum size is {}",
                    format_8dp(max.get())
                )));
            }
            Ok(OrderKind::Market(MarketAmount::Funds(funds)))
        }
    }
}

fn positive_size(product: &Product, text: &str) -> Result<Size, Rejection> {
    let size = decimal_field("size", text)?;
    if size <= Decimal::ZERO {
        return Err(Rejection::bad_request("size must be greater than zero"));
    }
    if !(size % product.base_increment).is_zero() {
        return Err(too_accurate("size", product.base_increment));
    }
    Size::new(size).map_err(|e| Rejection::bad_request(e.to_string()))
}

fn positive_price(product: &Product, field: &'static str, text: &str) -> Result<Price, Rejection> {
    let price = decimal_field(field, text)?;
    if price <= Decimal::ZERO {
        return Err(Rejection::bad_request("Invalid Price"));
    }
    if !(price % product.quote_increment).is_zero() {
        return Err(too_accurate(field, product.quote_increment));
    }
    Price::new(price).map_err(|e| Rejection::bad_request(e.to_string()))
}

fn limit_kind(product: &Product, req: &OrderRequest) -> Result<OrderKind, Rejection> {
    if req.funds.is_some() {
        return Err(Rejection::bad_request(
            "funds is only allowed for market orders",
        ));
    }
    let price = positive_price(
        product,
        "price",
        req.price
            .as_deref()
            .ok_or_else(|| Rejection::bad_request("price is required for limit orders"))?,
    )?;
    let size = positive_size(
        product,
        req.size
            .as_deref()
            .ok_or_else(|| Rejection::bad_request("size is required for limit orders"))?,
    )?;
    let post_only = req.post_only.unwrap_or(false);
    let tif = match req.time_in_force.as_deref() {
        None | Some("GTC") => TimeInForce::Gtc,
        Some("GTT") => {
            let after = match req.cancel_after.as_deref() {
                Some("min") => CancelAfter::Min,
                Some("hour") => CancelAfter::Hour,
                Some("day") => CancelAfter::Day,
                Some(other) => {
                    return Err(Rejection::bad_request(format!(
                        "Invalid cancel_after {other}: use min, hour or day"
                    )));
                }
                None => {
                    return Err(Rejection::bad_request(
                        "cancel_after is required with time_in_force GTT",
                    ));
                }
            };
            TimeInForce::Gtt(after)
        }
        Some("IOC") => TimeInForce::Ioc,
        Some("FOK") => TimeInForce::Fok,
        Some(other) => {
            return Err(Rejection::bad_request(format!(
                "Invalid time_in_force {other}: use GTC, GTT, IOC or FOK"
            )));
        }
    };
    if req.cancel_after.is_some() && !matches!(tif, TimeInForce::Gtt(_)) {
        return Err(Rejection::bad_request(
            "cancel_after requires time_in_force GTT",
        ));
    }
    if post_only && matches!(tif, TimeInForce::Ioc | TimeInForce::Fok) {
        return Err(Rejection::bad_request(
            "post_only is invalid with time_in_force IOC or FOK",
        ));
    }
    let stop = match (req.stop.as_deref(), req.stop_price.as_deref()) {
        (None, None) => None,
        (Some(kind), Some(sp)) => {
            let kind = match kind {
                "loss" => StopKind::Loss,
                "entry" => StopKind::Entry,
                other => {
                    return Err(Rejection::bad_request(format!(
                        "Invalid stop {other}: use loss or entry"
                    )));
                }
            };
            Some((kind, positive_price(product, "stop_price", sp)?))
        }
        (Some(_), None) => return Err(Rejection::bad_request("stop_price is required with stop")),
        (None, Some(_)) => return Err(Rejection::bad_request("stop is required with stop_price")),
    };
    let notional = price
        .checked_mul(size)
        .map_err(|e| Rejection::bad_request(e.to_string()))?;
    if notional < product.min_market_funds {
        return Err(Rejection::bad_request(format!(
            "notional is too small. Minimum is {}",
            format_8dp(product.min_market_funds.get())
        )));
    }
    Ok(OrderKind::Limit {
        price,
        size,
        tif,
        post_only,
        stop,
    })
}

/// Why an order is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DoneReason {
    /// Completely filled.
    Filled,
    /// Canceled, for the given reason.
    Canceled(CancelReason),
}

/// Why an order was canceled; the numeric codes are Coinbase's `cancel_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// Canceled by the user (or a bot, or outside virc).
    User,
    /// IOC/FOK remainder, GTT expiry, or a market order that filled nothing (`101`).
    TimeInForce,
    /// Self-trade prevention (`102`).
    SelfTrade,
    /// Not enough funds when a stop triggered (`105`).
    InsufficientFunds,
}

impl CancelReason {
    /// Coinbase's numeric code, where it has one.
    pub fn code(self) -> Option<&'static str> {
        match self {
            Self::User => None,
            Self::TimeInForce => Some("101"),
            Self::SelfTrade => Some("102"),
            Self::InsufficientFunds => Some("105"),
        }
    }
}

/// An order's status, as REST reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Accepted, not yet on the book or done.
    Pending,
    /// A stop waiting for its trigger.
    Active,
    /// Resting on the book.
    Open,
    /// Finished.
    Done(DoneReason),
    /// Refused.
    Rejected,
}

impl OrderStatus {
    /// Whether no further change is possible.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done(_) | Self::Rejected)
    }
}

/// Something that happens to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// The engine received it (`received`).
    Received,
    /// A stop was accepted and waits for its trigger (`activate`).
    Activated,
    /// A stop's trigger price traded; it enters the book as a limit order.
    Triggered,
    /// It rests on the book (`open`).
    Opened,
    /// It traded (partly) (`match`).
    Matched,
    /// Its size changed (`change`, for example STP decrement).
    Changed,
    /// It finished (`done`).
    Done(DoneReason),
    /// It was refused.
    Rejected(String),
}

/// An event that cannot happen in the order's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order in state {from:?} cannot take event {event:?}")]
pub struct TransitionError {
    /// The state.
    pub from: OrderStatus,
    /// The event.
    pub event: OrderEvent,
}

impl OrderStatus {
    /// The only place an order's status changes.
    #[rustfmt::skip]
    pub fn transition(self, event: &OrderEvent) -> Result<Self, TransitionError> {
        use {OrderEvent as E, OrderStatus as S};
        Ok(match (self, event) {
            (S::Pending, E::Received)                          => S::Pending,
            (S::Pending, E::Activated)                         => S::Active,  // stop waits off-book
            (S::Active, E::Triggered)                          => S::Pending, // enters as a limit order
            (S::Pending | S::Open, E::Matched | E::Changed)    => self,       // a taker fills before opening
            (S::Pending, E::Opened)                            => S::Open,
            (S::Pending | S::Active | S::Open, E::Done(r))     => S::Done(*r),
            (S::Pending, E::Rejected(_))                       => S::Rejected,
            (from, _) => return Err(TransitionError { from, event: event.clone() }),
        })
    }
}

/// An order as the exchange tracks it, with its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Exchange id.
    pub id: OrderId,
    /// The validated request.
    pub new: NewOrder,
    /// Product id text.
    pub product_id: String,
    /// Status.
    pub status: OrderStatus,
    /// Base filled so far.
    pub filled_size: Size,
    /// Quote value filled so far (Σ price × size).
    pub executed_value: Funds,
    /// Fees paid so far.
    pub fill_fees: Funds,
    /// Acceptance time (ns since the epoch).
    pub created_at: i64,
    /// Expiry of a GTT order.
    pub expire_at: Option<i64>,
    /// When it became done.
    pub done_at: Option<i64>,
}

impl Order {
    /// An order just accepted: pending, nothing filled yet.
    pub fn accepted(
        id: OrderId,
        new: NewOrder,
        product_id: String,
        created_at: i64,
        expire_at: Option<i64>,
    ) -> Self {
        Self {
            id,
            new,
            product_id,
            status: OrderStatus::Pending,
            filled_size: Size::ZERO,
            executed_value: Funds::ZERO,
            fill_fees: Funds::ZERO,
            created_at,
            expire_at,
            done_at: None,
        }
    }

    /// Applies a lifecycle event, or explains why it cannot happen.
    pub fn apply(&mut self, event: &OrderEvent) -> Result<(), TransitionError> {
        self.status = self.status.transition(event)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::testkit::{catalogue, request as limit};

    fn market_funds(funds: &str) -> OrderRequest {
        OrderRequest {
            product_id: "BTC-USD".into(),
            order_type: Some("market".into()),
            side: Some("buy".into()),
            funds: Some(funds.into()),
            ..OrderRequest::default()
        }
    }

    fn reject(req: &OrderRequest) -> String {
        validate(&catalogue(), req).unwrap_err().message
    }

    #[test]
    fn validation_texts_match_the_exchange() {
        let cases: Vec<(OrderRequest, &str)> = vec![
            (
                limit("buy", "27000.001", "0.01"),
                "price is too accurate. Smallest unit is 0.01000000",
            ),
            (
                limit("buy", "27000.00", "0.000000001"),
                "size is too accurate. Smallest unit is 0.00000001",
            ),
            (
                market_funds("10.001"),
                "funds is too accurate. Smallest unit is 0.01000000",
            ),
            (
                limit("buy", "100.00", "0.01"),
                "notional is too small. Minimum is 5.00000000",
            ),
            (
                market_funds("4.99"),
                "funds is too small. Minimum size is 5.00000000",
            ),
            (
                OrderRequest {
                    product_id: "NOPE-USD".into(),
                    ..limit("buy", "1", "1")
                },
                "Product not found",
            ),
            (
                OrderRequest {
                    order_type: Some("stop".into()),
                    ..limit("buy", "27000", "0.01")
                },
                "Invalid order_type stop",
            ),
            (
                OrderRequest {
                    stop: Some("loss".into()),
                    stop_price: Some("26000".into()),
                    ..market_funds("10")
                },
                "Invalid order_type market",
            ),
        ];
        for (req, want) in cases {
            assert_eq!(reject(&req), want, "{req:?}");
        }
    }

    #[test]
    fn product_modes_refuse_with_their_texts() {
        let mut cat = catalogue();
        let mut p = cat.get("BTC-USD").unwrap().clone();
        p.limit_only = true;
        cat.insert(p.clone());
        assert_eq!(
            validate(&cat, &market_funds("10")).unwrap_err().message,
            "Limit only mode"
        );
        assert!(validate(&cat, &limit("buy", "27000", "0.01")).is_ok());
        p.cancel_only = true;
        cat.insert(p);
        assert_eq!(
            validate(&cat, &limit("buy", "27000", "0.01"))
                .unwrap_err()
                .message,
            "Cancel only mode"
        );
    }

    #[test]
    fn parameter_rules_are_enforced() {
        let tif = |t: &str| OrderRequest {
            time_in_force: Some(t.into()),
            ..limit("buy", "27000", "0.01")
        };
        let post_only_ioc = OrderRequest {
            post_only: Some(true),
            ..tif("IOC")
        };
        assert!(reject(&post_only_ioc).contains("post_only is invalid"));
        let post_only_fok = OrderRequest {
            post_only: Some(true),
            ..tif("FOK")
        };
        assert!(reject(&post_only_fok).contains("post_only is invalid"));
        let cancel_after_gtc = OrderRequest {
            cancel_after: Some("hour".into()),
            ..tif("GTC")
        };
        assert!(reject(&cancel_after_gtc).contains("cancel_after requires time_in_force GTT"));
        assert!(reject(&tif("GTT")).contains("cancel_after is required"));
        let gtt = OrderRequest {
            cancel_after: Some("hour".into()),
            ..tif("GTT")
        };
        let (_, o) = validate(&catalogue(), &gtt).unwrap();
        assert!(matches!(
            o.kind,
            OrderKind::Limit {
                tif: TimeInForce::Gtt(CancelAfter::Hour),
                ..
            }
        ));
        let market_tif = OrderRequest {
            time_in_force: Some("IOC".into()),
            ..market_funds("10")
        };
        assert!(reject(&market_tif).contains("time_in_force is not allowed for market orders"));
        let both = OrderRequest {
            size: Some("0.01".into()),
            ..market_funds("10")
        };
        assert!(reject(&both).contains("mutually exclusive"));
        let neither = OrderRequest {
            funds: None,
            ..market_funds("10")
        };
        assert!(reject(&neither).contains("need size or funds"));
        let no_stop_price = OrderRequest {
            stop: Some("loss".into()),
            ..limit("sell", "25900", "0.01")
        };
        assert!(reject(&no_stop_price).contains("stop_price is required"));
    }

    #[test]
    fn malformed_numbers_are_invalid_with_a_reason() {
        assert!(reject(&limit("buy", "0.-10000", "0.01")).starts_with("Invalid Price"));
        assert!(reject(&limit("buy", "1e5", "0.01")).starts_with("Invalid Price"));
        assert!(reject(&limit("buy", "NaN", "0.01")).starts_with("Invalid Price"));
        assert!(reject(&limit("buy", "-5", "0.01")).starts_with("Invalid Price"));
        assert!(reject(&limit("buy", "27000", "abc")).starts_with("Invalid Size"));
    }

    #[test]
    fn valid_orders_come_out_typed() {
        let req = OrderRequest {
            stop: Some("loss".into()),
            stop_price: Some("26000.00".into()),
            stp: Some("co".into()),
            ..limit("sell", "25900.00", "0.01")
        };
        let (_, o) = validate(&catalogue(), &req).unwrap();
        assert_eq!(o.side, Side::Sell);
        assert_eq!(o.stp, Stp::Co);
        let OrderKind::Limit {
            price,
            size,
            stop: Some((StopKind::Loss, sp)),
            ..
        } = o.kind
        else {
            panic!("{o:?}")
        };
        assert_eq!(
            (price.get(), size.get(), sp.get()),
            (dec!(25900.00), dec!(0.01), dec!(26000.00))
        );
        let (_, m) = validate(&catalogue(), &market_funds("10.00")).unwrap();
        assert_eq!(
            m.kind,
            OrderKind::Market(MarketAmount::Funds(Funds::new(dec!(10.00)).unwrap()))
        );
    }

    #[test]
    fn lifecycle_allows_exactly_the_exchange_paths() {
        use {OrderEvent as E, OrderStatus as S};
        let filled = E::Done(DoneReason::Filled);
        let s = S::Pending
            .transition(&E::Received)
            .unwrap()
            .transition(&E::Opened)
            .unwrap();
        assert_eq!(s, S::Open);
        assert_eq!(s.transition(&E::Matched).unwrap(), S::Open);
        assert_eq!(s.transition(&filled).unwrap(), S::Done(DoneReason::Filled));
        let stop = S::Pending.transition(&E::Activated).unwrap();
        assert_eq!(stop, S::Active);
        assert_eq!(stop.transition(&E::Triggered).unwrap(), S::Pending);
        assert!(
            stop.transition(&E::Matched).is_err(),
            "an untriggered stop cannot trade"
        );
        let done = S::Done(DoneReason::Filled);
        for e in [
            E::Received,
            E::Opened,
            E::Matched,
            filled.clone(),
            E::Rejected("x".into()),
        ] {
            assert!(done.transition(&e).is_err(), "done stays done: {e:?}");
            assert!(
                S::Rejected.transition(&e).is_err(),
                "rejected stays rejected: {e:?}"
            );
        }
        assert!(S::Open.transition(&E::Opened).is_err());
        assert!(S::Open.transition(&E::Rejected("x".into())).is_err());
    }

    #[test]
    fn stops_trigger_on_last_trade() {
        let p = |s: &str| Price::parse(s).unwrap();
        assert!(StopKind::Loss.triggers(p("99"), p("100")));
        assert!(StopKind::Loss.triggers(p("100"), p("100")));
        assert!(!StopKind::Loss.triggers(p("101"), p("100")));
        assert!(StopKind::Entry.triggers(p("100"), p("100")));
        assert!(!StopKind::Entry.triggers(p("99"), p("100")));
    }
}

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;

    use super::*;

    fn arb_event() -> impl Strategy<Value = OrderEvent> {
        prop_oneof![
            Just(OrderEvent::Received),
            Just(OrderEvent::Activated),
            Just(OrderEvent::Triggered),
            Just(OrderEvent::Opened),
            Just(OrderEvent::Matched),
            Just(OrderEvent::Changed),
            Just(OrderEvent::Done(DoneReason::Filled)),
            Just(OrderEvent::Done(DoneReason::Canceled(CancelReason::User))),
            Just(OrderEvent::Rejected("x".into())),
        ]
    }

    proptest! {
        #[test]
        fn prop_random_events_never_panic_and_terminal_stays_terminal(events in proptest::collection::vec(arb_event(), 0..40)) {
            let mut status = OrderStatus::Pending;
            for e in &events {
                let was_terminal = status.is_terminal();
                match status.transition(e) {
                    Ok(next) => { prop_assert!(!was_terminal); status = next; }
                    Err(err) => prop_assert_eq!(err.from, status),
                }
            }
        }
    }
}
