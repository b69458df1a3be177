//! The Coinbase emulator against virc's own REST client and feed parser:
//! signed requests are checked the way Coinbase checks them, orders rest,
//! fill and cancel with the exchange's holds, fees and texts, and every
//! message the WebSocket front sends parses as a Coinbase message.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use virc_core::{ids::ClientOid, matcher::UserId};
use virc_daemon::{
    clock::SystemClock,
    config::{ExchangeCredentials, Secret},
    emulator::Emulator,
    exchange::coinbase::{
        http::{
            client::{Method, RestClient},
            error::RestError,
            limiter::{Class, Priority, RateLimits},
            signer::Signer,
        },
        wire::{fill_from_json, order_from_json},
        ws::messages::parse,
    },
};

mod common;

use common::{emulator_account as account, start_emulator as start};

fn client(em: &Emulator, creds: &ExchangeCredentials) -> RestClient {
    RestClient::new(
        &em.rest_url,
        Some(Signer::new(creds).unwrap()),
        RateLimits::default(),
        Duration::from_secs(1),
        Arc::new(SystemClock),
    )
    .unwrap()
}

fn buy(cid: ClientOid, price: &str, size: &str, post_only: bool) -> String {
    json!({"client_oid": cid.to_string(), "type": "limit", "side": "buy", "product_id": "BTC-USD",
           "price": price, "size": size, "post_only": post_only})
    .to_string()
}

fn usd(accounts: &[Value]) -> (Decimal, Decimal) {
    let a = accounts.iter().find(|a| a["currency"] == "USD").unwrap();
    let d = |f: &str| a[f].as_str().unwrap().parse::<Decimal>().unwrap();
    (d("balance"), d("hold"))
}

#[tokio::test]
async fn orders_rest_fill_and_cancel_with_coinbase_holds_and_fees() {
    let em = start().await;
    let rest = client(&em, &account().credentials());
    rest.sync_time().await.unwrap();
    let cid = ClientOid(uuid::Uuid::from_u128(11));
    let placed = rest
        .place_order(
            &buy(cid, "450.00", "2", false),
            &cid.to_string(),
            Priority::Normal,
        )
        .await
        .unwrap();
    assert_eq!(placed["status"], "pending");
    let accounts: Vec<Value> = rest.get("/accounts", Class::Private).await.unwrap();
    // Hold: price × size × (1 + taker).
    assert_eq!(usd(&accounts), (dec!(10000), dec!(905.4)));
    let open = order_from_json(
        &rest
            .get::<Value>(&format!("/orders/client:{cid}"), Class::Private)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(open.status, virc_core::order::OrderStatus::Open);

    // The market trades down through it: 0.5 fills at our price, as maker.
    em.take("BTC-USD", false, dec!(449.00), dec!(0.5)).unwrap();
    let fills: Vec<Value> = rest
        .get(&format!("/fills?order_id={}", open.id), Class::Fills)
        .await
        .unwrap();
    let f = fill_from_json(&fills[0]).unwrap();
    assert_eq!(
        (f.price.get(), f.size.get(), f.fee),
        (dec!(450.00), dec!(0.5), dec!(0.9))
    );
    let accounts: Vec<Value> = rest.get("/accounts", Class::Private).await.unwrap();
    assert_eq!(usd(&accounts).0, dec!(10000) - dec!(225) - dec!(0.9));

    // Cancel by client id echoes it; a second cancel is "Order already done".
    let (text, _) = rest
        .send(
            Method::Delete,
            &format!("/orders/client:{cid}"),
            None,
            Class::Private,
            Priority::Protective,
        )
        .await
        .unwrap();
    assert_eq!(text, format!("\"{cid}\""));
    let again = rest
        .send(
            Method::Delete,
            &format!("/orders/client:{cid}"),
            None,
            Class::Private,
            Priority::Protective,
        )
        .await
        .unwrap_err();
    assert_eq!(again.message(), "Order already done");
    let accounts: Vec<Value> = rest.get("/accounts", Class::Private).await.unwrap();
    assert_eq!(usd(&accounts).1, Decimal::ZERO, "the hold is released");

    // Post-only that would take is refused with Coinbase's text.
    em.rest("BTC-USD", false, dec!(451.00), dec!(1)).unwrap();
    let cid2 = ClientOid(uuid::Uuid::from_u128(12));
    let refused = rest
        .place_order(
            &buy(cid2, "452.00", "0.1", true),
            &cid2.to_string(),
            Priority::Normal,
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, RestError::Rejected { .. }), "{refused:?}");
    assert_eq!(refused.message(), "Post only mode");
}

#[tokio::test]
async fn bad_credentials_get_coinbase_texts() {
    let em = start().await;
    let good = account().credentials();
    let cases = [
        (
            ExchangeCredentials {
                key: "nope".into(),
                ..good.clone()
            },
            "Invalid API Key",
        ),
        (
            ExchangeCredentials {
                passphrase: Secret::new("wrong"),
                ..good.clone()
            },
            "Invalid Passphrase",
        ),
        (
            ExchangeCredentials {
                secret: Secret::new("b3RoZXItc2VjcmV0"),
                ..good.clone()
            },
            "invalid signature",
        ),
    ];
    for (creds, text) in cases {
        let e = client(&em, &creds)
            .get::<Value>("/accounts", Class::Private)
            .await
            .unwrap_err();
        assert_eq!(e.message(), text);
    }
}

#[tokio::test]
async fn skew_429s_and_lost_answers_heal() {
    let em = start().await;
    let rest = client(&em, &account().credentials());
    // The exchange's clock jumps 2 minutes ahead: the first signed request
    // is refused, the client measures again and the retry passes.
    em.faults().set_skew(120_000_000_000);
    let _: Vec<Value> = rest.get("/accounts", Class::Private).await.unwrap();
    // A burst of 429s slows the client down; nothing fails.
    em.faults().fail_next(4, 429);
    let _: Vec<Value> = rest.get("/accounts", Class::Private).await.unwrap();
    // The order reaches the book but its answer is lost: the client looks it
    // up by client_oid and never places it twice.
    let cid = ClientOid(uuid::Uuid::from_u128(21));
    em.faults().lose_next_posts(1);
    let placed = rest
        .place_order(
            &buy(cid, "400.00", "0.1", false),
            &cid.to_string(),
            Priority::Normal,
        )
        .await
        .unwrap();
    assert_eq!(placed["client_oid"], cid.to_string());
    assert_eq!(
        em.shared
            .with_engine(|e| e.count_client_oid(UserId(1), cid)),
        1
    );
    // Same with an answer that comes too late.
    let cid = ClientOid(uuid::Uuid::from_u128(22));
    em.faults().slow_next(1, Duration::from_secs(3));
    rest.place_order(
        &buy(cid, "400.00", "0.1", false),
        &cid.to_string(),
        Priority::Normal,
    )
    .await
    .unwrap();
    assert_eq!(
        em.shared
            .with_engine(|e| e.count_client_oid(UserId(1), cid)),
        1
    );
}

#[tokio::test]
async fn every_feed_message_parses_and_sequences_are_contiguous() {
    let em = start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&em.ws_url).await.unwrap();
    let signer = Signer::new(&account().credentials()).unwrap();
    let ts = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let sub = json!({"type": "subscribe", "product_ids": ["BTC-USD"],
        "channels": ["full", "user", "heartbeat", "ticker", "level2", "matches"],
        "key": "key-1", "passphrase": "pass phrase", "timestamp": ts, "signature": signer.sign_ws(&ts)});
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .unwrap();
    let Some(Ok(Message::Text(ack))) = ws.next().await else {
        panic!("no answer to subscribe")
    };
    assert!(ack.contains("subscriptions"), "{ack}");
    em.rest("BTC-USD", false, dec!(451.00), dec!(1)).unwrap();
    em.rest("BTC-USD", true, dec!(449.00), dec!(1)).unwrap();
    em.take("BTC-USD", true, dec!(451.00), dec!(0.25)).unwrap();
    em.take("BTC-USD", false, dec!(449.00), dec!(2)).unwrap();
    let wanted = [
        "snapshot",
        "received",
        "open",
        "match",
        "done",
        "ticker",
        "l2update",
        "heartbeat",
    ];
    let mut types: Vec<String> = Vec::new();
    let mut last_seq = 0;
    while !wanted.iter().all(|w| types.iter().any(|t| t == w)) {
        let msg = tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Message::Text(t) = msg else { continue };
        parse(&t).unwrap_or_else(|e| panic!("{t}: {e}"));
        let v: Value = serde_json::from_str(&t).unwrap();
        let kind = v["type"].as_str().unwrap().to_owned();
        if ["received", "open", "match", "done", "change"].contains(&kind.as_str()) {
            let seq = v["sequence"].as_u64().unwrap();
            assert!(
                seq == last_seq + 1 || last_seq == 0,
                "{seq} after {last_seq}"
            );
            last_seq = seq;
        }
        types.push(kind);
    }
    // Without auth, `full` is refused with Coinbase's reason.
    let (mut ws, _) = tokio_tungstenite::connect_async(&em.ws_url).await.unwrap();
    ws.send(Message::Text(
        json!({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["full"]})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("no answer")
    };
    let v: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v["type"], "error");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("require authentication")
    );
}
