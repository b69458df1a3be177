//! The live market feed: Coinbase's WebSocket into the market actor.
//!
//! One connection subscribes to the configured products and channels
//! (public ones need no key: `heartbeat`, `ticker`, `matches`,
//! `level2_batch`). Every frame is parsed into the same inputs a replay
//! produces. A frame that does not parse is counted and skipped, an unknown
//! message type is logged once and skipped; nothing on the wire can stop
//! the feed.
//!
//! # Stalls, reconnects, resync
//! With no frame for `stall` (heartbeats arrive every second when
//! subscribed), the connection is dropped and a new one made, after a
//! jittered exponential back-off (from 0.5 s up to `max_backoff`) that
//! starts again once a connection is up. Subscribing again brings a fresh
//! level-2 snapshot, which replaces the book, so the book resyncs by
//! itself.
//!
//! # Sequence gaps
//! Channels that need auth (`full`, `level2`) are subscribed with a signed
//! subscribe when the REST client has credentials. On `full`, sequence
//! numbers are contiguous per product: a late or repeated message is
//! dropped, and a jump (lost messages) fetches the level-2 book from
//! `GET /products/{id}/book?level=2` as the new book and emits a
//! `feed_gap` event; the trades lost with it come back as below.
//!
//! # Missed trades
//! Trade ids are contiguous per product. When a match arrives more than one
//! id after the last one seen, or a heartbeat names a last trade id the feed
//! never delivered (dropped messages, or a reconnect), the trades
//! in between are fetched from `GET /products/{id}/trades` (newest first,
//! paged with `after`) and fed in order before it, and a `feed_gap` event
//! says so. If they cannot be fetched, the match goes on alone and the
//! recorder records the gap.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use virc_core::{
    book::L2Book,
    ids::ProductId,
    market::Trade,
    money::{Price, Size},
    order::Side,
    time::parse_rfc3339,
};
use virc_proto::v1::{self as pb, event::Payload};

use super::messages::{ParseError, WsMessage, parse};
use crate::{
    events::{Draft, EventsHandle},
    exchange::coinbase::http::{client::RestClient, limiter::Class},
    market::{Input, MarketHandle, input_of},
};

/// What to connect to and subscribe.
#[derive(Clone)]
pub struct FeedConfig {
    /// WebSocket URL ("wss://ws-feed.exchange.coinbase.com").
    pub url: String,
    /// Products to subscribe.
    pub products: Vec<String>,
    /// Channels to subscribe.
    pub channels: Vec<String>,
    /// Reconnect when nothing arrives for this long.
    pub stall: Duration,
    /// Longest pause between reconnect attempts.
    pub max_backoff: Duration,
    /// Coinbase's REST API, to back-fill missed trades; `None` leaves gaps to the recorder.
    pub rest: Option<RestClient>,
    /// Where `feed_gap` events go.
    pub events: Option<EventsHandle>,
}

impl std::fmt::Debug for FeedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedConfig")
            .field("url", &self.url)
            .field("products", &self.products)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

/// At most this many missed trades are back-filled for one gap.
const BACKFILL_MAX: usize = 10_000;

/// What the feed has seen, for status and tests.
#[derive(Debug, Default)]
pub struct FeedStats {
    /// Frames received.
    pub frames: AtomicU64,
    /// Frames that did not parse.
    pub malformed: AtomicU64,
    /// Connections made (the first one included).
    pub connections: AtomicU64,
    /// Missed trades fetched from REST and fed in order.
    pub backfilled: AtomicU64,
    /// `full`-channel sequence gaps, each followed by a fresh book.
    pub resyncs: AtomicU64,
}

/// Why a session ended.
enum End {
    Stopped,
    Lost(String),
}

/// Channels Coinbase serves only to a signed subscribe.
const AUTH_CHANNELS: [&str; 4] = ["full", "level2", "level3", "user"];

/// The subscribe message, signed (coinbase-exchange.md §3.7) when a channel
/// needs it and the REST client has credentials.
fn subscribe(config: &FeedConfig) -> String {
    let mut sub = serde_json::json!({
        "type": "subscribe",
        "product_ids": config.products,
        "channels": config.channels,
    });
    let needs_auth = config
        .channels
        .iter()
        .any(|c| AUTH_CHANNELS.contains(&c.as_str()));
    if needs_auth
        && let Some(fields) = config.rest.as_ref().and_then(RestClient::ws_auth)
        && let Some(m) = sub.as_object_mut()
    {
        for (k, v) in fields {
            m.insert(k.into(), serde_json::Value::String(v));
        }
    }
    sub.to_string()
}

/// The pause before reconnect attempt `attempt`: `backoff` plus up to a
/// quarter of it, spread by the attempt count so that no two daemons retry
/// in step.
pub(crate) fn backoff_pause(backoff: Duration, attempt: u64) -> Duration {
    let spread = u64::try_from(backoff.as_millis() / 4).unwrap_or(1).max(1);
    backoff + Duration::from_millis(attempt.wrapping_mul(7919) % spread)
}

/// Runs the feed until `stop`, reconnecting as needed.
pub async fn run(
    config: FeedConfig,
    market: MarketHandle,
    stats: Arc<FeedStats>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(500);
    // Last trade id per product, kept across connections: a reconnect's gap is seen too.
    let mut last: HashMap<ProductId, u64> = HashMap::new();
    let mut attempt: u64 = 0;
    loop {
        attempt += 1;
        let connect = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(config.url.as_str()),
        );
        let end = tokio::select! {
            () = stop.cancelled() => return,
            r = connect => match r {
                Ok(Ok((ws, _))) => {
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    backoff = Duration::from_millis(500);
                    tracing::info!(url = %config.url, "Market feed connected");
                    session(ws, &config, &market, &stats, &mut last, &stop).await
                }
                Ok(Err(e)) => End::Lost(format!("cannot connect: {e}")),
                Err(_) => End::Lost("cannot connect: no answer within 10 s".into()),
            },
        };
        match end {
            End::Stopped => return,
            End::Lost(why) => {
                let pause = backoff_pause(backoff, attempt);
                tracing::warn!(url = %config.url, reason = %why, retry_in_ms = pause.as_millis(), "Market feed lost; reconnecting");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

async fn session<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    config: &FeedConfig,
    market: &MarketHandle,
    stats: &FeedStats,
    last: &mut HashMap<ProductId, u64>,
    stop: &CancellationToken,
) -> End
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = ws.send(Message::text(subscribe(config))).await {
        return End::Lost(format!("cannot subscribe: {e}"));
    }
    let mut unknown: BTreeSet<String> = BTreeSet::new();
    // Per connection: a new subscription starts a new count. Only `full`
    // numbers its messages without holes (`matches` and `ticker` share the
    // counter, so they skip numbers by design).
    let mut sequences: HashMap<ProductId, u64> = HashMap::new();
    let track_full = config.channels.iter().any(|c| c == "full");
    loop {
        let frame = tokio::select! {
            () = stop.cancelled() => {
                let _ = ws.close(None).await;
                return End::Stopped;
            }
            f = tokio::time::timeout(config.stall, ws.next()) => f,
        };
        let msg = match frame {
            Err(_) => {
                return End::Lost(format!(
                    "no message for {} ms (stalled)",
                    config.stall.as_millis()
                ));
            }
            Ok(None) => return End::Lost("the server closed the connection".into()),
            Ok(Some(Err(e))) => return End::Lost(format!("read error: {e}")),
            Ok(Some(Ok(m))) => m,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => return End::Lost("the server closed the connection".into()),
            // Pongs to pings are queued by tungstenite and sent with the next write.
            Message::Ping(_) => {
                let _ = ws.flush().await;
                continue;
            }
            _ => continue,
        };
        stats.frames.fetch_add(1, Ordering::Relaxed);
        let parsed = parse(text.as_str());
        // `full` messages are numbered per product without a hole: a late
        // or repeated one is dropped, a jump means lost messages and the
        // book is fetched again (the lost trades come back by trade id).
        if track_full
            && let Ok(m) = &parsed
            && let Some((product, seq)) = m.full_sequence()
        {
            match sequences.get(&product).copied() {
                Some(l) if seq <= l => continue,
                Some(l) if seq > l + 1 => {
                    sequences.insert(product, seq);
                    resync(config, market, stats, product, "full", l + 1, seq).await;
                }
                _ => {
                    sequences.insert(product, seq);
                }
            }
        }
        match parsed {
            Ok(WsMessage::Error { message, reason }) => {
                tracing::warn!(%message, %reason, "The market feed answered with an error");
            }
            Ok(WsMessage::Match(m)) => {
                let product = m.product_id;
                match last.get(&product).copied() {
                    Some(l) if m.trade_id > l + 1 => {
                        backfill(config, market, stats, product, l, m.trade_id).await;
                    }
                    _ => {}
                }
                let seen = last.entry(product).or_insert(m.trade_id);
                *seen = (*seen).max(m.trade_id);
                if let Some(input) = input_of(WsMessage::Match(m)) {
                    market.feed(input).await;
                }
            }
            // A heartbeat names the product's last trade: one we never saw means missed trades.
            Ok(WsMessage::Heartbeat {
                product_id,
                last_trade_id,
                ..
            }) => {
                if let Some(l) = last.get(&product_id).copied()
                    && last_trade_id > l
                {
                    backfill(config, market, stats, product_id, l, last_trade_id + 1).await;
                    last.insert(product_id, last_trade_id);
                }
            }
            Ok(m) => {
                if let Some(input) = input_of(m) {
                    market.feed(input).await;
                }
            }
            Err(ParseError::UnknownType(t)) => {
                if unknown.insert(t.clone()) {
                    tracing::info!(kind = %t, "Skipping feed messages of an unknown type");
                }
            }
            Err(e) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "Skipping a malformed feed frame");
            }
        }
    }
}

/// A `full`-channel gap: the book is fetched again from REST (level 2), and
/// a `feed_gap` event names the sequence numbers lost.
async fn resync(
    config: &FeedConfig,
    market: &MarketHandle,
    stats: &FeedStats,
    product: ProductId,
    channel: &str,
    expected: u64,
    received: u64,
) {
    stats.resyncs.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        %product,
        expected,
        received,
        "Feed sequence gap; fetching the book again"
    );
    if let Some(rest) = &config.rest {
        match rest
            .get::<serde_json::Value>(&format!("/products/{product}/book?level=2"), Class::Public)
            .await
            .map_err(|e| e.to_string())
            .and_then(|v| rest_book(&v))
        {
            Ok(book) => market.feed(Input::Snapshot(product, book)).await,
            Err(e) => {
                tracing::warn!(%product, error = %e, "Cannot fetch the book after a gap; the next snapshot will fix it");
            }
        }
    }
    gap_event(config, &product, channel, expected, received).await;
}

/// A `feed_gap` event: what was expected on `channel`, and what came.
async fn gap_event(
    config: &FeedConfig,
    product: &str,
    channel: &str,
    expected: u64,
    received: u64,
) {
    if let Some(events) = &config.events {
        events
            .emit(Draft {
                bot_id: String::new(),
                product_id: product.to_owned(),
                payload: Payload::FeedGap(pb::FeedGap {
                    exchange: String::new(),
                    channel: channel.into(),
                    expected,
                    received,
                }),
            })
            .await;
    }
}

/// A `GET /products/{id}/book?level=2` body as a level-2 book.
fn rest_book(v: &serde_json::Value) -> Result<L2Book, String> {
    let side = |k: &str| -> Result<Vec<(Price, Size)>, String> {
        v[k].as_array()
            .ok_or_else(|| format!("book without `{k}`"))?
            .iter()
            .map(|l| {
                let f = |i: usize| {
                    l.get(i)
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                };
                Ok((
                    Price::parse(f(0)).map_err(|e| e.to_string())?,
                    Size::parse(f(1)).map_err(|e| e.to_string())?,
                ))
            })
            .collect()
    };
    Ok(L2Book::from_snapshot(side("bids")?, side("asks")?))
}

/// Fetches the trades of `product` strictly between `after` and `before`
/// and feeds them oldest first; announces the gap. Failures leave it to the recorder.
async fn backfill(
    config: &FeedConfig,
    market: &MarketHandle,
    stats: &FeedStats,
    product: ProductId,
    after: u64,
    before: u64,
) {
    let Some(rest) = &config.rest else {
        return;
    };
    let path = format!("/products/{product}/trades");
    let mut missed: Vec<(Trade, Side)> = Vec::new();
    let mut cursor = Some(before.to_string());
    let outcome: Result<(), String> = async {
        while let Some(c) = cursor.take() {
            let page = rest
                .page(&path, Class::Public, Some(&c))
                .await
                .map_err(|e| e.to_string())?;
            let mut older = false;
            for v in &page.items {
                let t = rest_trade(v)?;
                if t.0.trade_id <= after {
                    older = true;
                } else if t.0.trade_id < before {
                    missed.push(t);
                }
            }
            if missed.len() > BACKFILL_MAX {
                return Err(format!("more than {BACKFILL_MAX} trades missed"));
            }
            if !older {
                cursor = page.after;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        tracing::warn!(%product, after, before, error = %e, "Cannot back-fill missed trades; the recorder marks the gap");
        return;
    }
    missed.sort_by_key(|(t, _)| t.trade_id);
    missed.dedup_by_key(|(t, _)| t.trade_id);
    let n = missed.len();
    for (t, side) in missed {
        market.feed(Input::Trade(product, t, side)).await;
    }
    stats
        .backfilled
        .fetch_add(u64::try_from(n).unwrap_or(0), Ordering::Relaxed);
    tracing::info!(
        %product,
        after,
        before,
        backfilled = n,
        "Missed trades back-filled from REST"
    );
    gap_event(config, &product, "matches", after + 1, before).await;
}

/// A trade of `GET /products/{id}/trades`.
fn rest_trade(v: &serde_json::Value) -> Result<(Trade, Side), String> {
    let text = |k: &str| {
        v[k].as_str()
            .ok_or_else(|| format!("trade without `{k}`: {v}"))
    };
    let side = match text("side")? {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        other => return Err(format!("trade side `{other}`")),
    };
    Ok((
        Trade {
            time: parse_rfc3339(text("time")?).map_err(|e| e.to_string())?,
            trade_id: v["trade_id"]
                .as_u64()
                .ok_or_else(|| format!("trade without `trade_id`: {v}"))?,
            price: Price::parse(text("price")?).map_err(|e| e.to_string())?,
            size: Size::parse(text("size")?).map_err(|e| e.to_string())?,
        },
        side,
    ))
}
