//! Between the wire (`virc.v1`) and the domain: orders, fills, requests.

use rust_decimal::Decimal;
use virc_core::{
    ids::ClientOid,
    order::{
        CancelAfter, DoneReason, MarketAmount, OrderKind, OrderRequest, OrderStatus, Side,
        StopKind, Stp, TimeInForce,
    },
    paper::Liquidity,
};
use virc_proto::v1 as pb;

use crate::{
    api::ServiceError,
    clock::to_timestamp,
    exchange::{FillView, OrderView},
};

/// A decimal as the API writes it: normalised, no exponent.
pub fn dec(v: Decimal) -> String {
    v.normalize().to_string()
}

/// The wire side.
pub fn side(s: Side) -> i32 {
    match s {
        Side::Buy => pb::Side::Buy as i32,
        Side::Sell => pb::Side::Sell as i32,
    }
}

/// An order as the API shows it.
pub fn order(v: &OrderView, exchange: &str) -> pb::Order {
    let o = &v.order;
    let mut out = pb::Order {
        id: o.id.to_string(),
        client_oid: o.new.client_oid.map(|c| c.to_string()).unwrap_or_default(),
        exchange: exchange.to_owned(),
        product_id: o.product_id.clone(),
        side: side(o.new.side),
        filled_size: dec(o.filled_size.get()),
        executed_value: dec(o.executed_value.get()),
        fill_fees: dec(o.fill_fees.get()),
        created_at: Some(to_timestamp(o.created_at)),
        done_at: o.done_at.map(to_timestamp),
        bot_id: v.bot.map(|b| b.to_string()).unwrap_or_default(),
        reason: v.reason.clone(),
        stp: match o.new.stp {
            Stp::Dc => pb::SelfTradePrevention::Dc,
            Stp::Co => pb::SelfTradePrevention::Co,
            Stp::Cn => pb::SelfTradePrevention::Cn,
            Stp::Cb => pb::SelfTradePrevention::Cb,
        } as i32,
        ..pb::Order::default()
    };
    (out.status, out.done_reason) = match o.status {
        OrderStatus::Pending => (pb::OrderStatus::Pending, pb::DoneReason::Unspecified),
        OrderStatus::Active => (pb::OrderStatus::Active, pb::DoneReason::Unspecified),
        OrderStatus::Open => (pb::OrderStatus::Open, pb::DoneReason::Unspecified),
        OrderStatus::Done(DoneReason::Filled) => (pb::OrderStatus::Done, pb::DoneReason::Filled),
        OrderStatus::Done(DoneReason::Canceled(_)) => {
            (pb::OrderStatus::Done, pb::DoneReason::Canceled)
        }
        OrderStatus::Rejected => (pb::OrderStatus::Rejected, pb::DoneReason::Unspecified),
    }
    .map_pair(|s| s as i32, |d| d as i32);
    match o.new.kind {
        OrderKind::Limit {
            price,
            size,
            tif,
            post_only,
            stop,
        } => {
            out.order_type = pb::OrderType::Limit as i32;
            out.price = price.to_string();
            out.size = size.to_string();
            out.post_only = post_only;
            (out.time_in_force, out.cancel_after) = match tif {
                TimeInForce::Gtc => (pb::TimeInForce::Gtc, pb::CancelAfter::Unspecified),
                TimeInForce::Gtt(after) => (
                    pb::TimeInForce::Gtt,
                    match after {
                        CancelAfter::Min => pb::CancelAfter::Min,
                        CancelAfter::Hour => pb::CancelAfter::Hour,
                        CancelAfter::Day => pb::CancelAfter::Day,
                    },
                ),
                TimeInForce::Ioc => (pb::TimeInForce::Ioc, pb::CancelAfter::Unspecified),
                TimeInForce::Fok => (pb::TimeInForce::Fok, pb::CancelAfter::Unspecified),
            }
            .map_pair(|t| t as i32, |c| c as i32);
            if let Some((kind, stop_price)) = stop {
                out.stop = match kind {
                    StopKind::Loss => pb::StopKind::Loss,
                    StopKind::Entry => pb::StopKind::Entry,
                } as i32;
                out.stop_price = stop_price.to_string();
            }
        }
        OrderKind::Market(amount) => {
            out.order_type = pb::OrderType::Market as i32;
            match amount {
                MarketAmount::Size(s) => out.size = s.to_string(),
                MarketAmount::Funds(f) => out.specified_funds = f.to_string(),
            }
        }
    }
    out
}

/// Applies one function to each half of a pair.
trait MapPair<A, B> {
    fn map_pair<X, Y>(self, f: impl FnOnce(A) -> X, g: impl FnOnce(B) -> Y) -> (X, Y);
}

impl<A, B> MapPair<A, B> for (A, B) {
    fn map_pair<X, Y>(self, f: impl FnOnce(A) -> X, g: impl FnOnce(B) -> Y) -> (X, Y) {
        (f(self.0), g(self.1))
    }
}

/// A fill as the API shows it.
pub fn fill(f: &FillView, exchange: &str) -> pb::Fill {
    pb::Fill {
        trade_id: f.trade_id,
        order_id: f.order_id.to_string(),
        client_oid: f.client_oid.map(|c| c.to_string()).unwrap_or_default(),
        bot_id: f.bot.map(|b| b.to_string()).unwrap_or_default(),
        product_id: f.product_id.clone(),
        side: side(f.side),
        price: f.price.to_string(),
        size: f.size.to_string(),
        fee: dec(f.fee),
        liquidity: match f.liquidity {
            Liquidity::Maker => pb::Liquidity::Maker,
            Liquidity::Taker => pb::Liquidity::Taker,
        } as i32,
        time: Some(to_timestamp(f.time)),
        exchange: exchange.to_owned(),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// A wire order request in the exchange's `POST /orders` shape, so that
/// validation answers in the exchange's words.
pub fn place_request(r: &pb::PlaceOrderRequest) -> Result<OrderRequest, ServiceError> {
    let enum_err =
        |field: &str, v: i32| ServiceError::Invalid(format!("unknown {field} value {v}"));
    let side = match pb::Side::try_from(r.side).map_err(|_| enum_err("side", r.side))? {
        pb::Side::Buy => "buy",
        pb::Side::Sell => "sell",
        pb::Side::Unspecified => {
            return Err(ServiceError::Invalid(
                "side is required: buy or sell".into(),
            ));
        }
    };
    let order_type = match pb::OrderType::try_from(r.order_type)
        .map_err(|_| enum_err("order_type", r.order_type))?
    {
        pb::OrderType::Market => Some("market"),
        pb::OrderType::Limit => Some("limit"),
        pb::OrderType::Unspecified => None,
    };
    let tif = match pb::TimeInForce::try_from(r.time_in_force)
        .map_err(|_| enum_err("time_in_force", r.time_in_force))?
    {
        pb::TimeInForce::Unspecified => None,
        pb::TimeInForce::Gtc => Some("GTC"),
        pb::TimeInForce::Gtt => Some("GTT"),
        pb::TimeInForce::Ioc => Some("IOC"),
        pb::TimeInForce::Fok => Some("FOK"),
    };
    let cancel_after = match pb::CancelAfter::try_from(r.cancel_after)
        .map_err(|_| enum_err("cancel_after", r.cancel_after))?
    {
        pb::CancelAfter::Unspecified => None,
        pb::CancelAfter::Min => Some("min"),
        pb::CancelAfter::Hour => Some("hour"),
        pb::CancelAfter::Day => Some("day"),
    };
    let stp = match pb::SelfTradePrevention::try_from(r.stp).map_err(|_| enum_err("stp", r.stp))? {
        pb::SelfTradePrevention::Unspecified => None,
        pb::SelfTradePrevention::Dc => Some("dc"),
        pb::SelfTradePrevention::Co => Some("co"),
        pb::SelfTradePrevention::Cn => Some("cn"),
        pb::SelfTradePrevention::Cb => Some("cb"),
    };
    let stop = match pb::StopKind::try_from(r.stop).map_err(|_| enum_err("stop", r.stop))? {
        pb::StopKind::Unspecified => None,
        pb::StopKind::Loss => Some("loss"),
        pb::StopKind::Entry => Some("entry"),
    };
    let client_oid = if r.client_oid.is_empty() {
        ClientOid(uuid::Uuid::new_v4())
    } else {
        ClientOid::parse(&r.client_oid)
            .map_err(|e| ServiceError::Invalid(format!("client_oid: {e}")))?
    };
    Ok(OrderRequest {
        client_oid: Some(client_oid),
        order_type: order_type.map(str::to_owned),
        side: Some(side.to_owned()),
        product_id: r.product_id.clone(),
        price: non_empty(&r.price),
        size: non_empty(&r.size),
        funds: non_empty(&r.funds),
        time_in_force: tif.map(str::to_owned),
        cancel_after: cancel_after.map(str::to_owned),
        post_only: r.post_only.then_some(true),
        stp: stp.map(str::to_owned),
        stop: stop.map(str::to_owned),
        stop_price: non_empty(&r.stop_price),
    })
}

/// The wire order status, for list filters.
pub fn status_matches(filter: &[i32], s: OrderStatus) -> bool {
    let wire = match s {
        OrderStatus::Pending => pb::OrderStatus::Pending,
        OrderStatus::Active => pb::OrderStatus::Active,
        OrderStatus::Open => pb::OrderStatus::Open,
        OrderStatus::Done(_) => pb::OrderStatus::Done,
        OrderStatus::Rejected => pb::OrderStatus::Rejected,
    } as i32;
    if filter.is_empty() {
        !s.is_terminal()
    } else {
        filter.contains(&wire)
    }
}
