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
//! itself; trades missed meanwhile show as a trade-id gap, which the
//! recorder records and announces as a `feed_gap` event.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::messages::{ParseError, WsMessage, parse};
use crate::market::{MarketHandle, input_of};

/// What to connect to and subscribe.
#[derive(Debug, Clone)]
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
}

/// What the feed has seen, for status and tests.
#[derive(Debug, Default)]
pub struct FeedStats {
    /// Frames received.
    pub frames: AtomicU64,
    /// Frames that did not parse.
    pub malformed: AtomicU64,
    /// Connections made (the first one included).
    pub connections: AtomicU64,
}

/// Why a session ended.
enum End {
    Stopped,
    Lost(String),
}

/// The subscribe message.
fn subscribe(config: &FeedConfig) -> String {
    serde_json::json!({
        "type": "subscribe",
        "product_ids": config.products,
        "channels": config.channels,
    })
    .to_string()
}

/// Runs the feed until `stop`, reconnecting as needed.
pub async fn run(
    config: FeedConfig,
    market: MarketHandle,
    stats: Arc<FeedStats>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(500);
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
                    session(ws, &config, &market, &stats, &stop).await
                }
                Ok(Err(e)) => End::Lost(format!("cannot connect: {e}")),
                Err(_) => End::Lost("cannot connect: no answer within 10 s".into()),
            },
        };
        match end {
            End::Stopped => return,
            End::Lost(why) => {
                // Jitter from the attempt count: no two daemons retry in step.
                let spread = u64::try_from(backoff.as_millis() / 4).unwrap_or(1).max(1);
                let pause = backoff + Duration::from_millis(attempt.wrapping_mul(7919) % spread);
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
    stop: &CancellationToken,
) -> End
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = ws.send(Message::text(subscribe(config))).await {
        return End::Lost(format!("cannot subscribe: {e}"));
    }
    let mut unknown: BTreeSet<String> = BTreeSet::new();
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
        match parse(text.as_str()) {
            Ok(WsMessage::Error { message, reason }) => {
                tracing::warn!(%message, %reason, "The market feed answered with an error");
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
