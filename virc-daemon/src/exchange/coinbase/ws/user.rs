//! The authenticated `user` channel of one Coinbase connection: not a
//! source of truth (its messages carry no sequence, so a lost one cannot be
//! noticed) but the prompt to read an order back. The venue's owner (the
//! bot runtime) is told:
//!
//! - [`Signal::Connected`] on every (re)connection: reconcile everything;
//! - [`Signal::Order`] for each message about one of our orders: read it
//!   back;
//! - [`Signal::Poll`] every `poll` interval: read balances and every open
//!   order back, which also heals what a lost message would have said;
//! - [`Signal::Lost`] when the connection drops or stalls (no heartbeat
//!   for `stall`); it reconnects with jittered exponential back-off.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use virc_core::ids::OrderId;

use super::client::backoff_pause;
use crate::exchange::coinbase::http::client::RestClient;

/// What the feed tells the venue's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Connected and subscribed (again): reconcile.
    Connected,
    /// A message named this order.
    Order(OrderId),
    /// Time to read balances and open orders back.
    Poll,
    /// The connection is gone, and why.
    Lost(String),
}

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct UserFeedConfig {
    /// WebSocket URL.
    pub url: String,
    /// Products whose orders to hear about.
    pub products: Vec<String>,
    /// Reconnect when nothing (not even a heartbeat) arrives for this long.
    pub stall: Duration,
    /// Longest pause between reconnects.
    pub max_backoff: Duration,
    /// Interval of [`Signal::Poll`].
    pub poll: Duration,
}

/// Why a session ended.
enum End {
    Stopped,
    Lost(String),
}

/// Runs until `stop` (or until nobody listens to `signals`).
pub async fn run(
    config: UserFeedConfig,
    rest: RestClient,
    signals: mpsc::Sender<Signal>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(500);
    let mut attempt: u64 = 0;
    loop {
        attempt += 1;
        // Re-measure the clock first: the subscribe is signed like a request.
        let _ = rest.sync_time().await;
        let connect = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(config.url.as_str()),
        );
        let end = tokio::select! {
            () = stop.cancelled() => return,
            r = connect => match r {
                Ok(Ok((ws, _))) => session(ws, &config, &rest, &signals, &stop, &mut backoff).await,
                Ok(Err(e)) => End::Lost(format!("cannot connect to {}: {e}", config.url)),
                Err(_) => End::Lost(format!("cannot connect to {}: no answer within 10 s", config.url)),
            },
        };
        match end {
            End::Stopped => return,
            End::Lost(why) => {
                if signals.send(Signal::Lost(why.clone())).await.is_err() {
                    return;
                }
                let pause = backoff_pause(backoff, attempt);
                tracing::warn!(url = %config.url, reason = %why, retry_in_ms = pause.as_millis(), "Coinbase user feed lost; reconnecting");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

/// The order ids a `user`-channel message names.
fn order_ids(v: &Value) -> Vec<OrderId> {
    ["order_id", "maker_order_id", "taker_order_id"]
        .iter()
        .filter_map(|f| v.get(*f).and_then(Value::as_str))
        .filter_map(|s| OrderId::parse(s).ok())
        .collect()
}

async fn session<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    config: &UserFeedConfig,
    rest: &RestClient,
    signals: &mpsc::Sender<Signal>,
    stop: &CancellationToken,
    backoff: &mut Duration,
) -> End
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Some(auth) = rest.ws_auth() else {
        return End::Lost("no API credentials for the user channel".into());
    };
    let mut sub: Map<String, Value> = json!({
        "type": "subscribe",
        "product_ids": config.products,
        "channels": ["user", "heartbeat"],
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    for (k, v) in auth {
        sub.insert(k.into(), Value::String(v));
    }
    if let Err(e) = ws.send(Message::text(Value::Object(sub).to_string())).await {
        return End::Lost(format!("cannot subscribe: {e}"));
    }
    let mut poll = tokio::time::interval(config.poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    poll.tick().await;
    let mut subscribed = false;
    // Silence is measured from the last frame, whatever else wakes the loop.
    let mut last_frame = tokio::time::Instant::now();
    loop {
        let frame = tokio::select! {
            () = stop.cancelled() => {
                let _ = ws.close(None).await;
                return End::Stopped;
            }
            _ = poll.tick(), if subscribed => {
                if signals.send(Signal::Poll).await.is_err() {
                    return End::Stopped;
                }
                continue;
            }
            () = tokio::time::sleep_until(last_frame + config.stall) => {
                return End::Lost(format!(
                    "no message for {} ms (stalled)",
                    config.stall.as_millis()
                ));
            }
            f = ws.next() => f,
        };
        last_frame = tokio::time::Instant::now();
        let text = match frame {
            None | Some(Ok(Message::Close(_))) => {
                return End::Lost("the server closed the connection".into());
            }
            Some(Err(e)) => return End::Lost(format!("read error: {e}")),
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            tracing::debug!("Coinbase user feed: a frame that is not JSON, skipped");
            continue;
        };
        match v["type"].as_str().unwrap_or_default() {
            "subscriptions" if !subscribed => {
                subscribed = true;
                *backoff = Duration::from_millis(500);
                tracing::info!(url = %config.url, "Coinbase user feed subscribed");
                if signals.send(Signal::Connected).await.is_err() {
                    return End::Stopped;
                }
            }
            "error" => {
                return End::Lost(format!(
                    "Coinbase refused the subscription: {} ({})",
                    v["message"].as_str().unwrap_or_default(),
                    v["reason"].as_str().unwrap_or_default()
                ));
            }
            "received" | "open" | "done" | "match" | "change" | "activate" => {
                for id in order_ids(&v) {
                    if signals.send(Signal::Order(id)).await.is_err() {
                        return End::Stopped;
                    }
                }
            }
            _ => {}
        }
    }
}
