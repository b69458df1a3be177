//! Every Coinbase WebSocket feed message, parsed from its JSON text into
//! virc-core types (exact decimals, ids, nanosecond times).
//!
//! [`parse`] never panics on input: a frame that is not JSON, lacks a field
//! or carries a malformed value is a [`ParseError`] naming the field (the
//! caller counts and skips it); a well-formed frame of a type we do not
//! know is [`ParseError::UnknownType`], so the caller can log it once and
//! skip it.

use rust_decimal::Decimal;
use serde::Deserialize;
use virc_core::{
    ids::{ClientOid, OrderId, ProductId},
    money::{Funds, MoneyError, Price, Size, parse_decimal},
    order::Side,
    time::parse_rfc3339,
};

mod scan;

/// Coinbase's "no time" value, seen on some `l2update` frames.
const ZERO_TIME: &str = "0001-01-01T00:00:00.000000Z";

/// Why a frame could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or not the shape of its type.
    #[error("malformed frame: {0}")]
    Json(#[from] serde_json::Error),
    /// A field has a malformed value.
    #[error("malformed frame: field `{field}`: {why}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A well-formed frame of a type this version does not know.
    #[error("unknown message type `{0}`")]
    UnknownType(String),
}

/// One level-2 change: side, price, new total size (zero removes the level).
pub type L2Change = (Side, Price, Size);

/// The changes of one `l2update`, inline up to two: nearly every frame
/// carries one, and an allocation and a free per frame were a sixth of
/// reading and applying it.
pub type L2Changes = smallvec::SmallVec<[L2Change; 2]>;

/// A parsed feed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// The subscriptions now active: channel name and products.
    Subscriptions(Vec<(String, Vec<String>)>),
    /// Heartbeat: the product's sequence and last trade id.
    Heartbeat {
        /// Product.
        product_id: ProductId,
        /// Sequence.
        sequence: u64,
        /// Last trade id.
        last_trade_id: u64,
        /// Exchange time (ns).
        time: Option<i64>,
    },
    /// Ticker.
    Ticker(Ticker),
    /// Full level-2 snapshot.
    Snapshot {
        /// Product.
        product_id: ProductId,
        /// Bids, as sent (best first).
        bids: Vec<(Price, Size)>,
        /// Asks, as sent (best first).
        asks: Vec<(Price, Size)>,
    },
    /// Level-2 changes.
    L2Update {
        /// Product.
        product_id: ProductId,
        /// Exchange time (ns); `None` for Coinbase's zero time.
        time: Option<i64>,
        /// Changes.
        changes: L2Changes,
    },
    /// A trade (`match`, or `last_match` on subscribe).
    Match(Match),
    /// An order entered the engine (full / user channel).
    Received(Received),
    /// An order rests on the book.
    Open {
        /// Product.
        product_id: ProductId,
        /// Sequence.
        sequence: Option<u64>,
        /// Order.
        order_id: OrderId,
        /// Side.
        side: Side,
        /// Price.
        price: Price,
        /// Size left.
        remaining_size: Size,
        /// Exchange time (ns).
        time: i64,
    },
    /// An order is done.
    Done(Done),
    /// An order's size or funds changed.
    Change(Change),
    /// A stop order was activated (private).
    Activate {
        /// Product.
        product_id: ProductId,
        /// Order.
        order_id: OrderId,
        /// Side.
        side: Side,
        /// `loss` or `entry`.
        stop_type: String,
        /// Trigger price.
        stop_price: Price,
        /// Size, if given.
        size: Option<Size>,
        /// Funds, if given.
        funds: Option<Funds>,
    },
    /// The `status` channel: products and currencies listed.
    Status {
        /// Number of products.
        products: usize,
        /// Number of currencies.
        currencies: usize,
    },
    /// An error reply from the feed.
    Error {
        /// Message.
        message: String,
        /// Reason, if given.
        reason: String,
    },
}

/// A `ticker` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticker {
    /// Product.
    pub product_id: ProductId,
    /// Sequence.
    pub sequence: Option<u64>,
    /// Last trade id.
    pub trade_id: Option<u64>,
    /// Last price.
    pub price: Price,
    /// Best bid.
    pub best_bid: Option<Price>,
    /// Best ask.
    pub best_ask: Option<Price>,
    /// 24 h open.
    pub open_24h: Option<Decimal>,
    /// 24 h volume.
    pub volume_24h: Option<Decimal>,
    /// Exchange time (ns).
    pub time: Option<i64>,
}

/// A `match` or `last_match` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Product.
    pub product_id: ProductId,
    /// Trade id.
    pub trade_id: u64,
    /// Sequence.
    pub sequence: Option<u64>,
    /// Resting order.
    pub maker_order_id: OrderId,
    /// Incoming order.
    pub taker_order_id: OrderId,
    /// The maker's side.
    pub side: Side,
    /// Price.
    pub price: Price,
    /// Size.
    pub size: Size,
    /// Exchange time (ns).
    pub time: i64,
    /// True for `last_match` (sent once on subscribe).
    pub last: bool,
}

/// A `received` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Product.
    pub product_id: ProductId,
    /// Sequence.
    pub sequence: Option<u64>,
    /// Order.
    pub order_id: OrderId,
    /// Our client id (own orders on the user channel only).
    pub client_oid: Option<ClientOid>,
    /// `limit` or `market`.
    pub order_type: String,
    /// Side.
    pub side: Side,
    /// Limit price.
    pub price: Option<Price>,
    /// Size.
    pub size: Option<Size>,
    /// Funds (market orders).
    pub funds: Option<Funds>,
    /// Exchange time (ns).
    pub time: i64,
}

/// A `done` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// Product.
    pub product_id: ProductId,
    /// Sequence.
    pub sequence: Option<u64>,
    /// Order.
    pub order_id: OrderId,
    /// Side.
    pub side: Side,
    /// Price (absent for market orders).
    pub price: Option<Price>,
    /// Size left (absent for market orders).
    pub remaining_size: Option<Size>,
    /// `filled` or `canceled`.
    pub reason: String,
    /// Coinbase's cancel reason code, if given.
    pub cancel_reason: Option<String>,
    /// Exchange time (ns).
    pub time: i64,
}

/// A `change` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Product.
    pub product_id: ProductId,
    /// Sequence.
    pub sequence: Option<u64>,
    /// Order.
    pub order_id: OrderId,
    /// Side.
    pub side: Side,
    /// Price (absent for market orders).
    pub price: Option<Price>,
    /// Size before.
    pub old_size: Option<Size>,
    /// Size after.
    pub new_size: Option<Size>,
    /// Why (`STP`, ...), if given.
    pub reason: Option<String>,
    /// Exchange time (ns).
    pub time: i64,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "snake_case")]
struct RawFields<'a> {
    #[serde(borrow, default)]
    product_id: Option<&'a str>,
    #[serde(default)]
    sequence: Option<u64>,
    #[serde(default)]
    trade_id: Option<u64>,
    #[serde(default)]
    last_trade_id: Option<u64>,
    #[serde(borrow, default)]
    time: Option<&'a str>,
    #[serde(borrow, default)]
    side: Option<&'a str>,
    #[serde(borrow, default)]
    price: Option<&'a str>,
    #[serde(borrow, default)]
    size: Option<&'a str>,
    #[serde(borrow, default)]
    funds: Option<&'a str>,
    #[serde(borrow, default)]
    order_id: Option<&'a str>,
    #[serde(borrow, default)]
    client_oid: Option<&'a str>,
    #[serde(borrow, default)]
    order_type: Option<&'a str>,
    #[serde(borrow, default)]
    maker_order_id: Option<&'a str>,
    #[serde(borrow, default)]
    taker_order_id: Option<&'a str>,
    #[serde(borrow, default)]
    remaining_size: Option<&'a str>,
    #[serde(borrow, default)]
    reason: Option<&'a str>,
    #[serde(borrow, default)]
    cancel_reason: Option<&'a str>,
    #[serde(borrow, default)]
    old_size: Option<&'a str>,
    #[serde(borrow, default)]
    new_size: Option<&'a str>,
    #[serde(borrow, default)]
    best_bid: Option<&'a str>,
    #[serde(borrow, default)]
    best_ask: Option<&'a str>,
    #[serde(borrow, default)]
    open_24h: Option<&'a str>,
    #[serde(borrow, default)]
    volume_24h: Option<&'a str>,
    #[serde(borrow, default)]
    stop_type: Option<&'a str>,
    #[serde(borrow, default)]
    stop_price: Option<&'a str>,
    #[serde(borrow, default)]
    message: Option<&'a str>,
    #[serde(default)]
    changes: Option<Vec<[&'a str; 3]>>,
    /// The scanner's `changes`, already typed (it leaves any it cannot
    /// type to serde, whose conversion below names the error).
    #[serde(skip)]
    typed_changes: Option<L2Changes>,
    #[serde(default)]
    bids: Option<Vec<[&'a str; 2]>>,
    #[serde(default)]
    asks: Option<Vec<[&'a str; 2]>>,
    #[serde(default)]
    channels: Option<Vec<RawChannel>>,
    #[serde(default)]
    products: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    currencies: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
struct RawChannel {
    name: String,
    #[serde(default)]
    product_ids: Vec<String>,
}

fn field<T>(name: &'static str, v: Option<T>) -> Result<T, ParseError> {
    // Lazily: an eager error built (and dropped) a String per field read.
    v.ok_or_else(|| ParseError::Field {
        field: name,
        why: "missing".into(),
    })
}

fn money<T>(name: &'static str, r: Result<T, MoneyError>) -> Result<T, ParseError> {
    r.map_err(|e| ParseError::Field {
        field: name,
        why: e.to_string(),
    })
}

fn price(name: &'static str, s: &str) -> Result<Price, ParseError> {
    money(name, Price::parse(s))
}

fn size(name: &'static str, s: &str) -> Result<Size, ParseError> {
    money(name, Size::parse(s))
}

fn opt<T>(
    v: Option<&str>,
    f: impl Fn(&str) -> Result<T, ParseError>,
) -> Result<Option<T>, ParseError> {
    v.map(f).transpose()
}

fn side(v: Option<&str>) -> Result<Side, ParseError> {
    match field("side", v)? {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        other => Err(ParseError::Field {
            field: "side",
            why: format!("`{other}` is neither buy nor sell"),
        }),
    }
}

fn order_id(name: &'static str, v: Option<&str>) -> Result<OrderId, ParseError> {
    OrderId::parse(field(name, v)?).map_err(|e| ParseError::Field {
        field: name,
        why: e.to_string(),
    })
}

fn time(v: Option<&str>) -> Result<Option<i64>, ParseError> {
    match v {
        None | Some(ZERO_TIME) => Ok(None),
        Some(t) => parse_rfc3339(t).map(Some).map_err(|e| ParseError::Field {
            field: "time",
            why: e.to_string(),
        }),
    }
}

fn required_time(v: Option<&str>) -> Result<i64, ParseError> {
    time(v)?.ok_or_else(|| ParseError::Field {
        field: "time",
        why: "missing".into(),
    })
}

fn levels(name: &'static str, v: Option<Vec<[&str; 2]>>) -> Result<Vec<(Price, Size)>, ParseError> {
    field(name, v)?
        .into_iter()
        .map(|[p, s]| Ok((price(name, p)?, size(name, s)?)))
        .collect()
}

impl WsMessage {
    /// The product and sequence number of a `full`-channel message
    /// (`received`, `open`, `done`, `change`, `match`), where sequences are
    /// contiguous per product and a jump means lost messages.
    pub fn full_sequence(&self) -> Option<(ProductId, u64)> {
        let (product, seq) = match self {
            Self::Received(m) => (&m.product_id, m.sequence),
            Self::Open {
                product_id,
                sequence,
                ..
            } => (product_id, *sequence),
            Self::Done(m) => (&m.product_id, m.sequence),
            Self::Change(m) => (&m.product_id, m.sequence),
            Self::Match(m) => (&m.product_id, m.sequence),
            _ => return None,
        };
        Some((*product, seq?))
    }
}

/// Parses one feed frame.
pub fn parse(text: &str) -> Result<WsMessage, ParseError> {
    // The common frames take the one-pass scanner; anything it does not
    // take (escapes, nesting, odd types, bad JSON) goes through serde,
    // which gives the same result or the precise error.
    if let Some((product_id, time, changes)) = scan::l2update(text) {
        return Ok(WsMessage::L2Update {
            product_id,
            time,
            changes,
        });
    }
    if let Some(m) = scan::matched(text) {
        return Ok(WsMessage::Match(m));
    }
    if let Some(t) = scan::ticker(text) {
        return Ok(WsMessage::Ticker(t));
    }
    let mut r = RawFields::default();
    match scan::fields(text, &mut r) {
        Some(kind) => build(kind, r),
        None => parse_serde(text),
    }
}

/// [`parse`] through serde alone (the scanner's reference).
fn parse_serde(text: &str) -> Result<WsMessage, ParseError> {
    let kind = serde_json::from_str::<Raw<'_>>(text)?.kind;
    build(kind, serde_json::from_str::<RawFields<'_>>(text)?)
}

/// The message of type `kind` from its fields.
fn build(kind: &str, r: RawFields<'_>) -> Result<WsMessage, ParseError> {
    let product = || {
        ProductId::parse(field("product_id", r.product_id)?).map_err(|e| ParseError::Field {
            field: "product_id",
            why: e.to_string(),
        })
    };
    Ok(match kind {
        "subscriptions" => WsMessage::Subscriptions(
            r.channels
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c.name, c.product_ids))
                .collect(),
        ),
        "heartbeat" => WsMessage::Heartbeat {
            product_id: product()?,
            sequence: field("sequence", r.sequence)?,
            last_trade_id: r.last_trade_id.unwrap_or(0),
            time: time(r.time)?,
        },
        "ticker" => WsMessage::Ticker(Ticker {
            product_id: product()?,
            sequence: r.sequence,
            trade_id: r.trade_id,
            price: price("price", field("price", r.price)?)?,
            best_bid: opt(r.best_bid, |s| price("best_bid", s))?,
            best_ask: opt(r.best_ask, |s| price("best_ask", s))?,
            open_24h: opt(r.open_24h, |s| {
                money("open_24h", parse_decimal("open_24h", s))
            })?,
            volume_24h: opt(r.volume_24h, |s| {
                money("volume_24h", parse_decimal("volume_24h", s))
            })?,
            time: time(r.time)?,
        }),
        "snapshot" => WsMessage::Snapshot {
            product_id: product()?,
            bids: levels("bids", r.bids)?,
            asks: levels("asks", r.asks)?,
        },
        "l2update" => WsMessage::L2Update {
            product_id: product()?,
            time: time(r.time)?,
            changes: match r.typed_changes {
                Some(c) => c,
                None => field("changes", r.changes)?
                    .into_iter()
                    .map(|[s, p, q]| {
                        Ok((side(Some(s))?, price("changes", p)?, size("changes", q)?))
                    })
                    .collect::<Result<_, ParseError>>()?,
            },
        },
        "match" | "last_match" => WsMessage::Match(Match {
            product_id: product()?,
            trade_id: field("trade_id", r.trade_id)?,
            sequence: r.sequence,
            maker_order_id: order_id("maker_order_id", r.maker_order_id)?,
            taker_order_id: order_id("taker_order_id", r.taker_order_id)?,
            side: side(r.side)?,
            price: price("price", field("price", r.price)?)?,
            size: size("size", field("size", r.size)?)?,
            time: required_time(r.time)?,
            last: kind == "last_match",
        }),
        "received" => WsMessage::Received(Received {
            product_id: product()?,
            sequence: r.sequence,
            order_id: order_id("order_id", r.order_id)?,
            client_oid: opt(r.client_oid, |s| {
                ClientOid::parse(s).map_err(|e| ParseError::Field {
                    field: "client_oid",
                    why: e.to_string(),
                })
            })?,
            order_type: field("order_type", r.order_type)?.to_owned(),
            side: side(r.side)?,
            price: opt(r.price, |s| price("price", s))?,
            size: opt(r.size, |s| size("size", s))?,
            funds: opt(r.funds, |s| money("funds", Funds::parse(s)))?,
            time: required_time(r.time)?,
        }),
        "open" => WsMessage::Open {
            product_id: product()?,
            sequence: r.sequence,
            order_id: order_id("order_id", r.order_id)?,
            side: side(r.side)?,
            price: price("price", field("price", r.price)?)?,
            remaining_size: size("remaining_size", field("remaining_size", r.remaining_size)?)?,
            time: required_time(r.time)?,
        },
        "done" => WsMessage::Done(Done {
            product_id: product()?,
            sequence: r.sequence,
            order_id: order_id("order_id", r.order_id)?,
            side: side(r.side)?,
            price: opt(r.price, |s| price("price", s))?,
            remaining_size: opt(r.remaining_size, |s| size("remaining_size", s))?,
            reason: field("reason", r.reason)?.to_owned(),
            cancel_reason: r.cancel_reason.map(str::to_owned),
            time: required_time(r.time)?,
        }),
        "change" => WsMessage::Change(Change {
            product_id: product()?,
            sequence: r.sequence,
            order_id: order_id("order_id", r.order_id)?,
            side: side(r.side)?,
            price: opt(r.price, |s| price("price", s))?,
            old_size: opt(r.old_size, |s| size("old_size", s))?,
            new_size: opt(r.new_size, |s| size("new_size", s))?,
            reason: r.reason.map(str::to_owned),
            time: required_time(r.time)?,
        }),
        "activate" => WsMessage::Activate {
            product_id: product()?,
            order_id: order_id("order_id", r.order_id)?,
            side: side(r.side)?,
            stop_type: field("stop_type", r.stop_type)?.to_owned(),
            stop_price: price("stop_price", field("stop_price", r.stop_price)?)?,
            size: opt(r.size, |s| size("size", s))?,
            funds: opt(r.funds, |s| money("funds", Funds::parse(s)))?,
        },
        "status" => WsMessage::Status {
            products: r.products.map_or(0, |p| p.len()),
            currencies: r.currencies.map_or(0, |c| c.len()),
        },
        "error" => WsMessage::Error {
            message: r.message.unwrap_or_default().to_owned(),
            reason: r.reason.unwrap_or_default().to_owned(),
        },
        other => return Err(ParseError::UnknownType(other.to_owned())),
    })
}
