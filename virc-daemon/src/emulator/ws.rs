//! The emulator's WebSocket front (coinbase-exchange.md §9, §14.15):
//! subscribe within 5 s, signed subscribes for the channels that need
//! them, cumulative `subscriptions` answers, `last_match` first on
//! `matches`, a level-2 `snapshot` first on `level2`/`level2_batch`,
//! heartbeats every second per product, and errors as
//! `{"type":"error","message","reason"}`.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use virc_core::{matcher::UserId, time::format_rfc3339_micros};

use super::{
    Shared,
    engine::{Outgoing, Stream},
};

/// Channels that refuse an unauthenticated subscribe.
const AUTH_CHANNELS: [&str; 4] = ["full", "level2", "level3", "user"];
const KNOWN_CHANNELS: [&str; 8] = [
    "heartbeat",
    "ticker",
    "matches",
    "level2",
    "level2_batch",
    "full",
    "user",
    "status",
];
const AUTH_REASON: &str = "level2, level3, and full channels now require authentication. https://docs.cdp.coinbase.com/exchange/docs/websocket-auth";

/// Serves WebSocket connections until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    loop {
        let sock = tokio::select! {
            () = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((sock, _)) => sock,
                Err(_) => continue,
            },
        };
        let (shared, stop) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            if let Ok(ws) = tokio_tungstenite::accept_async(sock).await {
                connection(ws, &shared, &stop).await;
            }
        });
    }
}

#[derive(Debug, Default)]
struct Subscription {
    channels: BTreeMap<String, BTreeSet<String>>,
    user: Option<UserId>,
}

impl Subscription {
    fn has(&self, channel: &str, product: &str) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|p| p.contains(product))
    }

    fn products(&self, channel: &str) -> impl Iterator<Item = &String> {
        self.channels.get(channel).into_iter().flatten()
    }

    fn ack(&self) -> Value {
        json!({
            "type": "subscriptions",
            "channels": self.channels.iter().filter(|(_, p)| !p.is_empty()).map(|(name, p)| {
                json!({"name": name, "product_ids": p})
            }).collect::<Vec<_>>(),
        })
    }

    /// What this subscriber receives of `out`, if anything.
    fn pick<'o>(&self, out: &'o Outgoing) -> Option<&'o Value> {
        let p = out.product.as_str();
        let mine = self.user.is_some_and(|u| out.users.contains(&u));
        match out.stream {
            Stream::Full if self.has("full", p) => {
                Some(if mine { &out.private } else { &out.public })
            }
            Stream::Full if mine && self.has("user", p) => Some(&out.private),
            Stream::Full if self.has("matches", p) && out.public["type"] == "match" => {
                Some(&out.public)
            }
            Stream::Private if mine && self.has("user", p) => Some(&out.private),
            Stream::Level2 if self.has("level2", p) || self.has("level2_batch", p) => {
                Some(&out.public)
            }
            Stream::Ticker if self.has("ticker", p) => Some(&out.public),
            _ => None,
        }
    }
}

fn error(message: &str, reason: &str) -> Value {
    json!({"type": "error", "message": message, "reason": reason})
}

/// Applies a (un)subscribe message; the messages to send back (error, or
/// the acknowledgement and the first snapshots), and whether to close.
fn subscribe(shared: &Shared, sub: &mut Subscription, msg: &Value) -> (Vec<Value>, bool) {
    let kind = msg["type"].as_str().unwrap_or_default();
    if kind != "subscribe" && kind != "unsubscribe" {
        return (
            vec![error(
                "Failed to subscribe",
                &format!("unknown message type `{kind}`"),
            )],
            false,
        );
    }
    let root: Vec<String> = msg["product_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    let mut wanted: Vec<(String, Vec<String>)> = Vec::new();
    for c in msg["channels"].as_array().into_iter().flatten() {
        match c {
            Value::String(name) => wanted.push((name.clone(), root.clone())),
            Value::Object(o) => wanted.push((
                o.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                o.get("product_ids").and_then(Value::as_array).map_or_else(
                    || root.clone(),
                    |a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(str::to_owned))
                            .collect()
                    },
                ),
            )),
            _ => {}
        }
    }
    if wanted.is_empty() {
        return (
            vec![error("Failed to subscribe", "No channels provided")],
            true,
        );
    }
    if msg.get("signature").is_some() {
        match verify(shared, msg) {
            Some(u) => sub.user = Some(u),
            None => {
                return (
                    vec![error(
                        "Sorry, you could not be authenticated: Bad Request",
                        "invalid signature",
                    )],
                    true,
                );
            }
        }
    }
    let now = shared.now();
    let mut first = Vec::new();
    for (name, products) in &wanted {
        if !KNOWN_CHANNELS.contains(&name.as_str()) {
            return (
                vec![error(
                    "Failed to subscribe",
                    &format!("{name} is not a valid channel"),
                )],
                true,
            );
        }
        if kind == "subscribe" && AUTH_CHANNELS.contains(&name.as_str()) && sub.user.is_none() {
            return (vec![error("Failed to subscribe", AUTH_REASON)], true);
        }
        if products.is_empty() && kind == "subscribe" && name != "status" {
            return (
                vec![error(
                    "Failed to subscribe",
                    &format!("You need to specify at least one product ID for channel {name}"),
                )],
                true,
            );
        }
        for p in products {
            if shared.with_engine(|e| e.catalogue().get(p).is_none()) {
                return (
                    vec![error(
                        "Failed to subscribe",
                        &format!("{p} is not a valid product"),
                    )],
                    true,
                );
            }
        }
        let set = sub.channels.entry(name.clone()).or_default();
        for p in products {
            if kind == "unsubscribe" {
                set.remove(p);
                continue;
            }
            if !set.insert(p.clone()) {
                continue;
            }
            match name.as_str() {
                "level2" | "level2_batch" => {
                    first.extend(shared.with_engine(|e| e.l2_snapshot(p, now)));
                }
                "matches" => first.extend(shared.with_engine(|e| e.last_match(p))),
                _ => {}
            }
        }
        if kind == "unsubscribe" && products.is_empty() {
            set.clear();
        }
    }
    let mut out = vec![sub.ack()];
    out.extend(first);
    (out, false)
}

/// The account a signed subscribe is from (§3.7), if its signature holds.
fn verify(shared: &Shared, msg: &Value) -> Option<UserId> {
    let field = |f: &str| msg.get(f).and_then(Value::as_str);
    let (account, signer) = shared.account(field("key")?)?;
    if field("passphrase")? != account.passphrase.expose() {
        return None;
    }
    let ts = field("timestamp")?;
    let t: rust_decimal::Decimal = ts.parse().ok()?;
    let skew = (t - rust_decimal::Decimal::from_i128_with_scale(i128::from(shared.now()), 9)).abs();
    if skew > rust_decimal::Decimal::from(30) || field("signature")? != signer.sign_ws(ts) {
        return None;
    }
    Some(account.user)
}

async fn connection<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    shared: &Shared,
    stop: &CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    let mut feed = shared.feed.subscribe();
    let mut drops = shared.faults.drops.subscribe();
    drops.borrow_and_update();
    let mut sub = Subscription::default();
    // Coinbase closes a connection that has not subscribed within 5 s.
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let subscribed = !sub.channels.is_empty();
        let send: Vec<Value> = tokio::select! {
            () = stop.cancelled() => return,
            _ = drops.changed() => {
                let _ = tx.send(Message::Close(None)).await;
                return;
            }
            () = &mut deadline, if !subscribed => {
                let _ = tx.send(Message::Text(error("Failed to subscribe", "no subscribe message within 5 s").to_string().into())).await;
                return;
            }
            got = feed.recv(), if subscribed => match got {
                Ok(out) if shared.faults.stalled().is_none() => sub.pick(&out).cloned().into_iter().collect(),
                Ok(_) => Vec::new(),
                Err(RecvError::Lagged(_)) => {
                    let _ = tx.send(Message::Text(error("ErrSlowConsume", "too many messages backed up").to_string().into())).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            _ = heartbeat.tick(), if subscribed => {
                if shared.faults.stalled().is_some() {
                    Vec::new()
                } else {
                    let now = format_rfc3339_micros(shared.now());
                    sub.products("heartbeat").map(|p| {
                        let (seq, last) = shared.with_engine(|e| (e.sequence(p), e.last_trade_id(p)));
                        json!({"type": "heartbeat", "sequence": seq, "last_trade_id": last, "product_id": p, "time": now})
                    }).collect()
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let (replies, close) = match serde_json::from_str::<Value>(&t) {
                        Ok(v) => subscribe(shared, &mut sub, &v),
                        Err(e) => (vec![error("Failed to subscribe", &format!("malformed JSON: {e}"))], false),
                    };
                    for r in replies {
                        if tx.send(Message::Text(r.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                    if close {
                        let _ = tx.send(Message::Close(None)).await;
                        return;
                    }
                    Vec::new()
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => Vec::new(),
            },
        };
        for v in send {
            if tx.send(Message::Text(v.to_string().into())).await.is_err() {
                return;
            }
        }
    }
}
