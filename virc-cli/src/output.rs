//! Rendering: every result as an aligned table for people and as stable JSON
//! for scripts, from one place so the two cannot drift. The JSON shapes are
//! documented in the README ("JSON output").

use std::io::Write;

use serde_json::{Value, json};
use virc_core::time::civil_from_days;
use virc_proto::v1::{self as pb, event::Payload};

/// Formats a protobuf timestamp as RFC 3339 UTC with milliseconds.
pub fn time(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = ts else { return String::new() };
    let days = ts.seconds.div_euclid(86_400);
    let secs = ts.seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        ts.nanos.max(0) / 1_000_000
    )
}

/// A duration in seconds as "3d 4h", "5m 12s" or "42s".
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// A proto enum's name without its prefix, lowercased: `SIDE_BUY` -> `buy`.
pub fn enum_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix)
        .unwrap_or(full)
        .to_ascii_lowercase()
}

fn opt(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_owned())
    }
}

/// Prints rows as columns separated by two spaces; columns whose index is in
/// `right` are right-aligned (numbers), the rest left-aligned.
pub fn table(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
    right: &[usize],
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| visible_width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(visible_width(cell));
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                // Pad by what shows: colour codes take no room on the screen.
                let pad = " ".repeat(widths[i].saturating_sub(visible_width(c)));
                if right.contains(&i) {
                    format!("{pad}{c}")
                } else if i == last {
                    (*c).to_owned()
                } else {
                    format!("{c}{pad}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// Characters a cell shows: ANSI colour sequences (`ESC [ ... m`) take no room.
fn visible_width(s: &str) -> usize {
    let mut n = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            n += 1;
        }
    }
    n
}

/// Whether to colour: standard output is a terminal and `NO_COLOR` is unset.
pub fn colour() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `text` in green when `up`, red when `down`, as is otherwise (or without colour).
pub fn paint(text: String, up: bool, down: bool, colour: bool) -> String {
    match (colour, up, down) {
        (true, true, _) => format!("\x1b[32m{text}\x1b[0m"),
        (true, _, true) => format!("\x1b[31m{text}\x1b[0m"),
        _ => text,
    }
}

/// The value, or "-" when it is empty.
pub fn or_dash(v: &str) -> String {
    if v.is_empty() {
        "-".to_owned()
    } else {
        v.to_owned()
    }
}

/// A percentage with an explicit sign and a % mark: "+1.25%", "-0.40%".
pub fn signed_pct(v: &str) -> String {
    if v.is_empty() {
        return String::new();
    }
    if v.starts_with('-') {
        format!("{v}%")
    } else {
        format!("+{v}%")
    }
}

/// How a price moved since the one shown before: up, down or neither.
/// Compared as exact decimals, never floats.
pub fn movement(previous: Option<&str>, now: &str) -> std::cmp::Ordering {
    let parse = |s: &str| s.parse::<rust_decimal::Decimal>().ok();
    match (previous.and_then(parse), parse(now)) {
        (Some(a), Some(b)) => b.cmp(&a),
        _ => std::cmp::Ordering::Equal,
    }
}

/// The mark for a movement: ▲, ▼ or a space.
pub fn move_mark(m: std::cmp::Ordering) -> &'static str {
    match m {
        std::cmp::Ordering::Greater => "▲",
        std::cmp::Ordering::Less => "▼",
        std::cmp::Ordering::Equal => " ",
    }
}

/// A ticker as JSON.
pub fn ticker_json(t: &pb::Ticker) -> Value {
    json!({
        "product_id": t.product_id, "price": t.price, "best_bid": opt(&t.best_bid), "best_ask": opt(&t.best_ask),
        "change_24h_pct": opt(&t.change_24h_pct), "volume_24h": opt(&t.volume_24h), "time": time(t.time.as_ref()), "trade_id": t.trade_id,
    })
}

/// One rolling window as JSON.
pub fn window_json(w: &pb::WindowStats) -> Value {
    json!({
        "window": w.window, "low": opt(&w.low), "high": opt(&w.high), "volume": opt(&w.volume), "range": opt(&w.range),
        "change_pct": opt(&w.change_pct), "vwap": opt(&w.vwap), "trades": w.trade_count,
    })
}

/// Indicators as JSON.
pub fn indicators_json(i: &pb::Indicators) -> Value {
    json!({
        "sma20": opt(&i.sma20), "ema20": opt(&i.ema20), "rsi7": opt(&i.rsi7), "rsi14": opt(&i.rsi14),
        "bb_mid": opt(&i.bb_mid), "bb_up": opt(&i.bb_up), "bb_low": opt(&i.bb_low), "vwap": opt(&i.vwap),
    })
}

/// One candle as JSON.
pub fn candle_json(c: &pb::Candle) -> Value {
    json!({
        "start": time(c.start.as_ref()), "open": c.open, "high": c.high, "low": c.low, "close": c.close, "volume": c.volume,
        "change_pct": c.change_pct, "trades": c.trade_count, "indicators": c.indicators.as_ref().map(indicators_json),
    })
}

/// One product as JSON.
pub fn product_json(p: &pb::Product) -> Value {
    json!({
        "id": p.id, "base_currency": p.base_currency, "quote_currency": p.quote_currency, "quote_increment": p.quote_increment,
        "base_increment": p.base_increment, "min_market_funds": p.min_market_funds, "max_market_funds": opt(&p.max_market_funds),
        "status": p.status, "post_only": p.post_only, "limit_only": p.limit_only, "cancel_only": p.cancel_only,
        "trading_disabled": p.trading_disabled,
    })
}

/// Prints `key  value` pairs with the keys aligned.
pub fn pairs(out: &mut impl Write, rows: &[(&str, String)]) -> std::io::Result<()> {
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        writeln!(out, "{k:<w$}  {v}")?;
    }
    Ok(())
}

/// `System.Status` as JSON.
pub fn status_json(s: &pb::StatusResponse) -> Value {
    json!({
        "version": s.version,
        "pid": s.pid,
        "started_at": time(s.started_at.as_ref()),
        "uptime_seconds": s.uptime_seconds,
        "data_dir": s.data_dir,
        "listeners": s.listeners,
        "events": { "head": s.event_head, "tail": s.event_tail },
        "bots": s.bots.iter().map(|b| (b.status.clone(), json!(b.count))).collect::<serde_json::Map<_, _>>(),
        "exchanges": s.exchanges.iter().map(exchange_json).collect::<Vec<_>>(),
    })
}

/// One exchange connection as JSON.
pub fn exchange_json(e: &pb::ExchangeInfo) -> Value {
    json!({ "name": e.name, "kind": e.kind, "endpoint": e.endpoint, "state": e.state, "detail": opt(&e.detail), "default": e.is_default })
}

/// `System.Status` for people.
pub fn status_human(out: &mut impl Write, s: &pb::StatusResponse) -> std::io::Result<()> {
    let events = if s.event_head == 0 {
        "empty".to_owned()
    } else {
        format!(
            "seq {}..{} ({} kept)",
            s.event_tail,
            s.event_head,
            s.event_head - s.event_tail + 1
        )
    };
    let bots = s
        .bots
        .iter()
        .map(|b| format!("{} {}", b.count, b.status))
        .collect::<Vec<_>>()
        .join(", ");
    let exchanges = if s.exchanges.is_empty() {
        "none configured".to_owned()
    } else {
        s.exchanges
            .iter()
            .map(|e| format!("{} ({}, {})", e.name, e.kind, e.state))
            .collect::<Vec<_>>()
            .join(", ")
    };
    pairs(
        out,
        &[
            (
                "daemon",
                format!("virc-daemon {} (pid {})", s.version, s.pid),
            ),
            (
                "up",
                format!(
                    "{} since {}",
                    duration(s.uptime_seconds),
                    time(s.started_at.as_ref())
                ),
            ),
            ("data dir", s.data_dir.clone()),
            ("listening", s.listeners.join(", ")),
            ("event log", events),
            ("bots", bots),
            ("exchanges", exchanges),
        ],
    )
}

/// The short name of an event's kind: "daemon_started", "order", ...
pub fn event_kind(e: &pb::Event) -> &'static str {
    match &e.payload {
        None => "unknown",
        Some(p) => match p {
            Payload::DaemonStarted(_) => "daemon_started",
            Payload::DaemonStopping(_) => "daemon_stopping",
            Payload::BotCreated(_) => "bot_created",
            Payload::BotStatus(_) => "bot_status",
            Payload::BotStep(_) => "bot_step",
            Payload::BotDeleted(_) => "bot_deleted",
            Payload::Order(_) => "order",
            Payload::Fill(_) => "fill",
            Payload::MarketUpdate(_) => "market_update",
            Payload::Connection(_) => "connection",
            Payload::FeedGap(_) => "feed_gap",
            Payload::Warning(_) => "warning",
            Payload::ConfigReloaded(_) => "config_reloaded",
        },
    }
}

/// A side as text: "buy" or "sell".
pub fn side(v: i32) -> String {
    pb::Side::try_from(v).map_or_else(|_| v.to_string(), |s| enum_name(s.as_str_name(), "SIDE_"))
}

/// A bot status as text: "running", ...
pub fn bot_status(v: i32) -> String {
    pb::BotStatus::try_from(v).map_or_else(
        |_| v.to_string(),
        |s| enum_name(s.as_str_name(), "BOT_STATUS_"),
    )
}

/// An order status as text: "open", "done", ...
pub fn order_status(v: i32) -> String {
    pb::OrderStatus::try_from(v).map_or_else(
        |_| v.to_string(),
        |s| enum_name(s.as_str_name(), "ORDER_STATUS_"),
    )
}

/// An order as JSON.
pub fn order_json(o: &pb::Order) -> Value {
    json!({
        "id": opt(&o.id), "client_oid": o.client_oid, "exchange": o.exchange, "product_id": o.product_id,
        "side": side(o.side),
        "type": pb::OrderType::try_from(o.order_type).map_or_else(|_| o.order_type.to_string(), |t| enum_name(t.as_str_name(), "ORDER_TYPE_")),
        "price": opt(&o.price), "size": opt(&o.size), "funds": opt(&o.funds), "stop_price": opt(&o.stop_price),
        "status": order_status(o.status),
        "done_reason": pb::DoneReason::try_from(o.done_reason).ok().filter(|d| *d != pb::DoneReason::Unspecified).map(|d| enum_name(d.as_str_name(), "DONE_REASON_")),
        "reason": opt(&o.reason), "filled_size": opt(&o.filled_size), "executed_value": opt(&o.executed_value),
        "fill_fees": opt(&o.fill_fees), "created_at": opt(&time(o.created_at.as_ref())), "done_at": opt(&time(o.done_at.as_ref())),
        "bot_id": opt(&o.bot_id),
    })
}

/// A fill as JSON.
pub fn fill_json(f: &pb::Fill) -> Value {
    json!({
        "trade_id": f.trade_id, "order_id": f.order_id, "client_oid": f.client_oid, "bot_id": opt(&f.bot_id),
        "product_id": f.product_id, "side": side(f.side), "price": f.price, "size": f.size, "fee": f.fee,
        "liquidity": pb::Liquidity::try_from(f.liquidity).map_or_else(|_| f.liquidity.to_string(), |l| enum_name(l.as_str_name(), "LIQUIDITY_")),
        "time": time(f.time.as_ref()), "exchange": f.exchange,
    })
}

/// A bot as JSON (summary fields; history when present).
pub fn bot_json(b: &pb::Bot) -> Value {
    json!({
        "id": b.id, "name": b.name, "kind": b.kind, "status": bot_status(b.status), "status_reason": opt(&b.status_reason),
        "exchange": b.exchange, "product_id": b.product_id, "current_step": opt(&b.current_step),
        "created_at": time(b.created_at.as_ref()), "updated_at": time(b.updated_at.as_ref()),
        "pnl": b.pnl.as_ref().map(|p| json!({
            "currency": p.currency, "reserved": p.reserved, "fees_paid": p.fees_paid, "realized_profit": p.realized_profit,
            "theoretical_cycle_profit": opt(&p.theoretical_cycle_profit), "theoretical_cycle_profit_pct": opt(&p.theoretical_cycle_profit_pct),
            "cycles": p.cycles,
        })),
        "history": b.history.iter().map(|h| json!({"time": time(h.time.as_ref()), "description": h.description, "seq": h.seq})).collect::<Vec<_>>(),
    })
}

/// An event as one JSON object: `{seq, time, kind, bot_id, product_id, data}`.
pub fn event_json(e: &pb::Event) -> Value {
    let data = match &e.payload {
        None => Value::Null,
        Some(p) => match p {
            Payload::DaemonStarted(d) => json!({"version": d.version, "data_dir": d.data_dir}),
            Payload::DaemonStopping(d) => json!({"reason": d.reason}),
            Payload::BotCreated(d) => d.bot.as_ref().map_or(Value::Null, bot_json),
            Payload::BotStatus(d) => {
                json!({"from": bot_status(d.from), "to": bot_status(d.to), "reason": opt(&d.reason)})
            }
            Payload::BotStep(d) => json!({"description": d.description, "values": d.values}),
            Payload::BotDeleted(d) => json!({"name": d.name}),
            Payload::Order(d) => {
                json!({"change": d.change, "order": d.order.as_ref().map_or(Value::Null, order_json)})
            }
            Payload::Fill(d) => fill_json(d),
            Payload::MarketUpdate(d) => json!({
                "ticker": d.ticker.as_ref().map(ticker_json),
                "windows": d.windows.iter().map(window_json).collect::<Vec<_>>(),
                "indicators": d.indicators.iter().map(|(k, v)| (k.clone(), indicators_json(v))).collect::<serde_json::Map<_, _>>(),
            }),
            Payload::Connection(d) => {
                json!({"exchange": d.exchange, "state": d.state, "detail": opt(&d.detail)})
            }
            Payload::FeedGap(d) => {
                json!({"exchange": d.exchange, "channel": d.channel, "expected": d.expected, "received": d.received})
            }
            Payload::Warning(d) => json!({"source": d.source, "message": d.message}),
            Payload::ConfigReloaded(d) => {
                json!({"applied": d.applied, "needs_restart": d.needs_restart})
            }
        },
    };
    json!({
        "seq": e.seq, "time": time(e.time.as_ref()), "kind": event_kind(e),
        "bot_id": opt(&e.bot_id), "product_id": opt(&e.product_id), "data": data,
    })
}

/// An event as one readable line: what happened, in words.
pub fn event_summary(e: &pb::Event) -> String {
    let Some(p) = &e.payload else {
        return String::new();
    };
    match p {
        Payload::DaemonStarted(d) => {
            format!("virc-daemon {} started, data dir {}", d.version, d.data_dir)
        }
        Payload::DaemonStopping(d) => format!("daemon stopping: {}", d.reason),
        Payload::BotCreated(d) => d.bot.as_ref().map_or_else(String::new, |b| {
            format!("bot {} ({}) created on {}", b.name, b.kind, b.product_id)
        }),
        Payload::BotStatus(d) => {
            let reason = if d.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", d.reason)
            };
            format!("bot {} -> {}{reason}", bot_status(d.from), bot_status(d.to))
        }
        Payload::BotStep(d) => d.description.clone(),
        Payload::BotDeleted(d) => format!("bot {} deleted", d.name),
        Payload::Order(d) => d.order.as_ref().map_or_else(String::new, |o| {
            format!(
                "{} {} {} {} @ {} ({})",
                d.change,
                side(o.side),
                o.size,
                o.product_id,
                o.price,
                order_status(o.status)
            )
        }),
        Payload::Fill(f) => format!(
            "fill {} {} {} @ {} fee {}",
            side(f.side),
            f.size,
            f.product_id,
            f.price,
            f.fee
        ),
        Payload::MarketUpdate(d) => d.ticker.as_ref().map_or_else(String::new, |t| {
            format!("{} {} ({}% 24h)", t.product_id, t.price, t.change_24h_pct)
        }),
        Payload::Connection(d) => format!(
            "{} {}{}",
            d.exchange,
            d.state,
            if d.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", d.detail)
            }
        ),
        Payload::FeedGap(d) => format!(
            "{} {} gap: expected {}, got {} (resynced)",
            d.exchange, d.channel, d.expected, d.received
        ),
        Payload::Warning(d) => format!("[{}] {}", d.source, d.message),
        Payload::ConfigReloaded(d) => format!(
            "config reloaded; applied: {}; needs restart: {}",
            d.applied.join(", "),
            d.needs_restart.join(", ")
        ),
    }
}

/// One event line for people: `seq  time  kind  summary`.
pub fn event_line(e: &pb::Event) -> String {
    format!(
        "{:>8}  {}  {:<15}  {}",
        e.seq,
        time(e.time.as_ref()),
        event_kind(e),
        event_summary(e)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let ts = prost_types::Timestamp {
            seconds: 1_618_677_817,
            nanos: 123_456_789,
        };
        assert_eq!(time(Some(&ts)), "2021-04-17T16:43:37.123Z");
        assert_eq!(
            time(Some(&prost_types::Timestamp {
                seconds: 0,
                nanos: 0
            })),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            time(Some(&prost_types::Timestamp {
                seconds: 951_782_400,
                nanos: 0
            })),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(3 * 3600 + 120), "3h 2m");
        assert_eq!(duration(2 * 86_400 + 3600), "2d 1h");
    }
}
