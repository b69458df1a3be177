//! The REST JSON shapes of orders and fills (coinbase-exchange.md §8.2,
//! §8.3), both ways: the emulator writes them, the connector reads them.
//! One module for both, so that a field the connector expects is a field
//! the emulator sends, and the round-trip tests below keep them honest.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use virc_core::{
    ids::{ClientOid, OrderId},
    money::{Funds, Price, Size, format_8dp},
    order::{
        CancelAfter, DoneReason, MarketAmount, NewOrder, Order, OrderKind, OrderStatus, Side,
        StopKind, Stp, TimeInForce,
    },
    paper::Liquidity,
    time::{format_rfc3339_micros, parse_rfc3339},
};

/// `buy` / `sell`.
pub fn side_text(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

fn stp_text(stp: Stp) -> &'static str {
    match stp {
        Stp::Dc => "dc",
        Stp::Co => "co",
        Stp::Cn => "cn",
        Stp::Cb => "cb",
    }
}

fn tif_text(tif: TimeInForce) -> &'static str {
    match tif {
        TimeInForce::Gtc => "GTC",
        TimeInForce::Gtt(_) => "GTT",
        TimeInForce::Ioc => "IOC",
        TimeInForce::Fok => "FOK",
    }
}

/// `loss` / `entry`.
pub fn stop_text(stop: StopKind) -> &'static str {
    match stop {
        StopKind::Loss => "loss",
        StopKind::Entry => "entry",
    }
}

/// A decimal as the exchange writes sizes and funds: 8 decimals.
fn d8(value: Decimal) -> String {
    format_8dp(value)
}

/// The order object of `POST /orders` and `GET /orders/…`. A `pending`
/// order omits what §8.2 says it omits (its TIF, post-only and STP flags;
/// for a market order its amounts; for a stop its trigger).
pub fn order_json(order: &Order, specified_funds: Option<Funds>, profile_id: &str) -> Value {
    let o = &order.new;
    let pending = order.status == OrderStatus::Pending;
    let mut m = Map::new();
    m.insert("id".into(), json!(order.id.to_string()));
    m.insert("product_id".into(), json!(order.product_id));
    m.insert("profile_id".into(), json!(profile_id));
    m.insert("side".into(), json!(side_text(o.side)));
    match o.kind {
        OrderKind::Limit {
            price,
            size,
            tif,
            post_only,
            stop,
        } => {
            m.insert("type".into(), json!("limit"));
            m.insert("price".into(), json!(price.to_string()));
            m.insert("size".into(), json!(d8(size.get())));
            if !pending {
                m.insert("time_in_force".into(), json!(tif_text(tif)));
                m.insert("post_only".into(), json!(post_only));
                if let TimeInForce::Gtt(after) = tif {
                    m.insert(
                        "cancel_after".into(),
                        json!(match after {
                            CancelAfter::Min => "min",
                            CancelAfter::Hour => "hour",
                            CancelAfter::Day => "day",
                        }),
                    );
                }
            }
            if let (Some((kind, stop_price)), false) = (stop, pending) {
                m.insert("stop".into(), json!(stop_text(kind)));
                m.insert("stop_price".into(), json!(stop_price.to_string()));
            }
        }
        OrderKind::Market(amount) => {
            m.insert("type".into(), json!("market"));
            if !pending {
                match amount {
                    MarketAmount::Size(s) => {
                        m.insert("size".into(), json!(d8(s.get())));
                    }
                    MarketAmount::Funds(f) => {
                        m.insert("funds".into(), json!(d8(f.get())));
                        if let Some(sf) = specified_funds {
                            m.insert("specified_funds".into(), json!(d8(sf.get())));
                        }
                    }
                }
            }
        }
    }
    if !pending {
        m.insert("stp".into(), json!(stp_text(o.stp)));
    }
    if let Some(cid) = o.client_oid {
        m.insert("client_oid".into(), json!(cid.to_string()));
    }
    m.insert(
        "created_at".into(),
        json!(format_rfc3339_micros(order.created_at)),
    );
    if let Some(at) = order.expire_at {
        m.insert("expire_time".into(), json!(format_rfc3339_micros(at)));
    }
    m.insert("fill_fees".into(), json!(order.fill_fees.get().to_string()));
    m.insert("filled_size".into(), json!(d8(order.filled_size.get())));
    m.insert(
        "executed_value".into(),
        json!(order.executed_value.get().to_string()),
    );
    let status = match order.status {
        OrderStatus::Pending => "pending",
        OrderStatus::Active => "active",
        OrderStatus::Open => "open",
        OrderStatus::Done(_) => "done",
        OrderStatus::Rejected => "rejected",
    };
    m.insert("status".into(), json!(status));
    if let OrderStatus::Done(reason) = order.status {
        m.insert(
            "done_reason".into(),
            json!(match reason {
                DoneReason::Filled => "filled",
                DoneReason::Canceled(_) => "canceled",
            }),
        );
        if let DoneReason::Canceled(r) = reason
            && let Some(code) = r.code()
        {
            m.insert("cancel_reason".into(), json!(code));
        }
        if let Some(at) = order.done_at {
            m.insert("done_at".into(), json!(format_rfc3339_micros(at)));
        }
    }
    m.insert(
        "settled".into(),
        json!(matches!(order.status, OrderStatus::Done(_))),
    );
    Value::Object(m)
}

/// Why an exchange answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected {what} from the exchange: {detail}")]
pub struct WireError {
    /// What was being read ("order", "fill").
    pub what: &'static str,
    /// What was wrong with it.
    pub detail: String,
}

struct Reader<'a> {
    what: &'static str,
    v: &'a Value,
}

impl Reader<'_> {
    fn err(&self, detail: String) -> WireError {
        WireError {
            what: self.what,
            detail,
        }
    }

    fn str(&self, field: &str) -> Result<&str, WireError> {
        self.opt(field)
            .ok_or_else(|| self.err(format!("field `{field}` is missing")))
    }

    fn opt(&self, field: &str) -> Option<&str> {
        self.v.get(field).and_then(Value::as_str)
    }

    fn dec(&self, field: &str) -> Result<Decimal, WireError> {
        let text = self.str(field)?;
        text.parse()
            .map_err(|_| self.err(format!("`{field}` = `{text}` is not a decimal")))
    }

    fn opt_dec(&self, field: &str) -> Result<Option<Decimal>, WireError> {
        self.opt(field).map(|_| self.dec(field)).transpose()
    }

    fn money<T>(
        &self,
        field: &str,
        make: fn(Decimal) -> Result<T, virc_core::money::MoneyError>,
    ) -> Result<T, WireError> {
        make(self.dec(field)?).map_err(|e| self.err(format!("`{field}`: {e}")))
    }

    fn time(&self, field: &str) -> Result<Option<i64>, WireError> {
        self.opt(field)
            .map(|t| parse_rfc3339(t).map_err(|e| self.err(e.to_string())))
            .transpose()
    }

    fn side(&self) -> Result<Side, WireError> {
        match self.str("side")? {
            "buy" => Ok(Side::Buy),
            "sell" => Ok(Side::Sell),
            other => Err(self.err(format!("side `{other}`"))),
        }
    }
}

/// Reads an order object (any status) back into virc-core's [`Order`].
pub fn order_from_json(v: &Value) -> Result<Order, WireError> {
    let r = Reader { what: "order", v };
    let id = OrderId::parse(r.str("id")?).map_err(|e| r.err(e.to_string()))?;
    let client_oid = r
        .opt("client_oid")
        .filter(|s| !s.is_empty())
        .map(|s| ClientOid::parse(s).map_err(|e| r.err(e.to_string())))
        .transpose()?;
    let side = r.side()?;
    let stp = match r.opt("stp") {
        None | Some("dc") => Stp::Dc,
        Some("co") => Stp::Co,
        Some("cn") => Stp::Cn,
        Some("cb") => Stp::Cb,
        Some(other) => return Err(r.err(format!("stp `{other}`"))),
    };
    let kind = match r.opt("type").unwrap_or("limit") {
        "market" => {
            let amount = if let Some(f) = r.opt_dec("funds")? {
                MarketAmount::Funds(Funds::new(f).map_err(|e| r.err(e.to_string()))?)
            } else if r.opt("size").is_some() {
                MarketAmount::Size(r.money("size", Size::new)?)
            } else {
                // A pending market order carries no amount (§8.2); what it
                // traded is in its progress fields.
                MarketAmount::Size(Size::ZERO)
            };
            OrderKind::Market(amount)
        }
        "limit" => {
            let tif = match r.opt("time_in_force") {
                None | Some("GTC") => TimeInForce::Gtc,
                Some("IOC") => TimeInForce::Ioc,
                Some("FOK") => TimeInForce::Fok,
                Some("GTT") => TimeInForce::Gtt(match r.opt("cancel_after") {
                    Some("min") => CancelAfter::Min,
                    Some("hour") => CancelAfter::Hour,
                    _ => CancelAfter::Day,
                }),
                Some(other) => return Err(r.err(format!("time_in_force `{other}`"))),
            };
            let stop = match r.opt("stop") {
                Some(s) => {
                    let kind = match s {
                        "loss" => StopKind::Loss,
                        "entry" => StopKind::Entry,
                        other => return Err(r.err(format!("stop `{other}`"))),
                    };
                    Some((kind, r.money("stop_price", Price::new)?))
                }
                None => None,
            };
            OrderKind::Limit {
                price: r.money("price", Price::new)?,
                size: r.money("size", Size::new)?,
                tif,
                post_only: v.get("post_only").and_then(Value::as_bool).unwrap_or(false),
                stop,
            }
        }
        other => return Err(r.err(format!("type `{other}`"))),
    };
    let status = match r.str("status")? {
        "pending" | "received" => OrderStatus::Pending,
        "active" => OrderStatus::Active,
        "open" => OrderStatus::Open,
        "rejected" => OrderStatus::Rejected,
        "done" => OrderStatus::Done(match r.opt("done_reason") {
            Some("filled") => DoneReason::Filled,
            _ => DoneReason::Canceled(cancel_reason(r.opt("cancel_reason"))),
        }),
        other => return Err(r.err(format!("status `{other}`"))),
    };
    let zero = |d: Option<Decimal>| d.unwrap_or(Decimal::ZERO);
    Ok(Order {
        id,
        new: NewOrder {
            client_oid,
            side,
            kind,
            stp,
        },
        product_id: r.str("product_id")?.to_owned(),
        status,
        filled_size: Size::new(zero(r.opt_dec("filled_size")?))
            .map_err(|e| r.err(e.to_string()))?,
        executed_value: Funds::new(zero(r.opt_dec("executed_value")?))
            .map_err(|e| r.err(e.to_string()))?,
        fill_fees: Funds::new(zero(r.opt_dec("fill_fees")?)).map_err(|e| r.err(e.to_string()))?,
        created_at: r.time("created_at")?.unwrap_or_default(),
        expire_at: r.time("expire_time")?,
        done_at: r.time("done_at")?,
    })
}

/// A `cancel_reason` code ("101", "101:Time In Force") as virc's reason.
pub fn cancel_reason(code: Option<&str>) -> virc_core::order::CancelReason {
    use virc_core::order::CancelReason as C;
    match code.map(|c| c.split(':').next().unwrap_or(c)) {
        Some("101") => C::TimeInForce,
        Some("102") => C::SelfTrade,
        Some("105") => C::InsufficientFunds,
        _ => C::User,
    }
}

/// One fill as `GET /fills` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    /// Trade id (per product).
    pub trade_id: u64,
    /// Product.
    pub product_id: String,
    /// Our order.
    pub order_id: OrderId,
    /// Our side.
    pub side: Side,
    /// Price.
    pub price: Price,
    /// Size.
    pub size: Size,
    /// Fee in quote.
    pub fee: Decimal,
    /// Maker or taker.
    pub liquidity: Liquidity,
    /// Exchange time (ns).
    pub time: i64,
}

/// A fill object of `GET /fills`.
pub fn fill_json(f: &Fill, profile_id: &str) -> Value {
    json!({
        "trade_id": f.trade_id,
        "product_id": f.product_id,
        "order_id": f.order_id.to_string(),
        "profile_id": profile_id,
        "side": side_text(f.side),
        "price": f.price.to_string(),
        "size": d8(f.size.get()),
        "fee": f.fee.normalize().to_string(),
        "liquidity": match f.liquidity { Liquidity::Maker => "M", Liquidity::Taker => "T" },
        "created_at": format_rfc3339_micros(f.time),
        "settled": true,
        "market_type": "spot",
    })
}

/// Reads a fill object.
pub fn fill_from_json(v: &Value) -> Result<Fill, WireError> {
    let r = Reader { what: "fill", v };
    Ok(Fill {
        trade_id: v
            .get("trade_id")
            .and_then(Value::as_u64)
            .ok_or_else(|| r.err("`trade_id` is missing or not an integer".into()))?,
        product_id: r.str("product_id")?.to_owned(),
        order_id: OrderId::parse(r.str("order_id")?).map_err(|e| r.err(e.to_string()))?,
        side: r.side()?,
        price: r.money("price", Price::new)?,
        size: r.money("size", Size::new)?,
        fee: r.dec("fee")?,
        liquidity: match r.opt("liquidity") {
            Some("M") => Liquidity::Maker,
            _ => Liquidity::Taker,
        },
        time: r.time("created_at")?.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use rust_decimal_macros::dec;
    use uuid::Uuid;

    use super::*;

    fn limit_order(status: OrderStatus) -> Order {
        Order {
            id: OrderId(Uuid::from_u128(7)),
            new: NewOrder {
                client_oid: Some(ClientOid(Uuid::from_u128(9))),
                side: Side::Sell,
                kind: OrderKind::Limit {
                    price: Price::new(dec!(25900.00)).unwrap(),
                    size: Size::new(dec!(0.01)).unwrap(),
                    tif: TimeInForce::Gtt(CancelAfter::Hour),
                    post_only: true,
                    stop: Some((StopKind::Loss, Price::new(dec!(26000.00)).unwrap())),
                },
                stp: Stp::Co,
            },
            product_id: "BTC-USD".into(),
            status,
            filled_size: Size::new(dec!(0.004)).unwrap(),
            executed_value: Funds::new(dec!(103.6)).unwrap(),
            fill_fees: Funds::new(dec!(0.4144)).unwrap(),
            created_at: 1_682_942_400_123_456_000,
            expire_at: Some(1_682_946_000_123_456_000),
            done_at: None,
        }
    }

    #[test]
    fn orders_round_trip_in_every_status() {
        for status in [
            OrderStatus::Active,
            OrderStatus::Open,
            OrderStatus::Done(DoneReason::Filled),
            OrderStatus::Done(DoneReason::Canceled(
                virc_core::order::CancelReason::TimeInForce,
            )),
        ] {
            let mut o = limit_order(status);
            if matches!(status, OrderStatus::Done(_)) {
                o.done_at = Some(1_682_942_500_000_000_000);
            }
            let back = order_from_json(&order_json(&o, None, "p")).unwrap();
            assert_eq!(back, o, "{status:?}");
        }
    }

    #[test]
    fn a_pending_order_omits_its_flags_as_coinbase_does() {
        let v = order_json(&limit_order(OrderStatus::Pending), None, "p");
        for absent in ["time_in_force", "post_only", "stp", "stop", "stop_price"] {
            assert!(v.get(absent).is_none(), "{absent}");
        }
        assert_eq!(v["status"], "pending");
        assert_eq!(v["size"], "0.01000000");
        let back = order_from_json(&v).unwrap();
        assert_eq!(back.status, OrderStatus::Pending);
    }

    #[test]
    fn market_funds_orders_keep_both_amounts() {
        let mut o = limit_order(OrderStatus::Done(DoneReason::Filled));
        o.new.kind = OrderKind::Market(MarketAmount::Funds(Funds::new(dec!(9.94035785)).unwrap()));
        let v = order_json(&o, Some(Funds::new(dec!(10)).unwrap()), "p");
        assert_eq!(v["specified_funds"], "10.00000000");
        assert!(v.get("price").is_none());
        assert_eq!(order_from_json(&v).unwrap().new.kind, o.new.kind);
    }

    #[test]
    fn fills_round_trip() {
        let f = Fill {
            trade_id: 42,
            product_id: "BTC-USD".into(),
            order_id: OrderId(Uuid::from_u128(7)),
            side: Side::Buy,
            price: Price::new(dec!(27000.00)).unwrap(),
            size: Size::new(dec!(0.01)).unwrap(),
            fee: dec!(1.08),
            liquidity: Liquidity::Maker,
            time: 1_682_942_400_000_001_000,
        };
        assert_eq!(fill_from_json(&fill_json(&f, "p")).unwrap(), f);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for v in [
            json!({}),
            json!({"id": "x"}),
            json!({"id": Uuid::from_u128(1).to_string(), "side": "up", "status": "open"}),
            json!([1, 2]),
        ] {
            assert!(order_from_json(&v).is_err());
            assert!(fill_from_json(&v).is_err());
        }
    }
}
