//! Bots and manual orders end to end on the simulated exchange: a looping
//! range bot's profit equals its fills minus fees, control actions behave as
//! specified, and the exchange's refusals and outside cancels fail a bot
//! with the right words.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

use std::{path::Path, time::Duration};

use rust_decimal::Decimal;
use tonic::Code;
use virc_core::ids::{BotId, ClientOid};
use virc_daemon::config::Credentials;
use virc_proto::v1::{
    self as pb, account_client::AccountClient, bot_spec::Kind, bots_client::BotsClient,
    orders_client::OrdersClient,
};
use virc_tests::{TestDaemon, market_config, test_config, wait_for_bot, write_market};

/// Down to 94 (through a 95 bid), back, up to 106 (through a 105 ask), back.
const SWING: [&str; 4] = ["100.00", "94.00", "100.00", "106.00"];

fn range(name: &str, size: &str, buy: &str, sell: &str, looping: bool) -> pb::CreateBotRequest {
    pb::CreateBotRequest {
        spec: Some(pb::BotSpec {
            name: name.into(),
            exchange: String::new(),
            kind: Some(Kind::Range(pb::RangeSpec {
                product_id: "BTC-USD".into(),
                size: size.into(),
                buy_price: buy.into(),
                sell_price: sell.into(),
                r#loop: looping,
                begin_with_sell: false,
                force: false,
            })),
        }),
        if_absent: false,
    }
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

async fn swinging_daemon(dir: &Path, speed: &str) -> TestDaemon {
    let rec = dir.join("swing.jsonl");
    let prices: Vec<&str> = SWING.iter().copied().cycle().take(40).collect();
    write_market(&rec, "BTC-USD", &prices, 100.0, "1.0");
    TestDaemon::start(
        market_config(dir, &rec, speed),
        Credentials::default(),
        vec![],
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_range_bot_profit_is_its_fills_minus_fees_to_the_last_decimal() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = swinging_daemon(dir.path(), "40x").await;
    let ch = daemon.channel().await;
    let mut bots = BotsClient::new(ch.clone());
    let created = bots
        .create(range("looper", "0.37", "95.00", "105.00", true))
        .await
        .unwrap()
        .into_inner();
    assert!(
        created.created && created.warnings.is_empty(),
        "{created:?}"
    );
    let id = created.bot.unwrap().id;
    wait_for_bot(&mut bots, "looper", "3 cycles", |b| {
        b.pnl.as_ref().unwrap().cycles >= 3
    })
    .await;
    let stopped = bots
        .stop(pb::StopBotRequest {
            bot: "looper".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopped.status, pb::BotStatus::Stopped as i32, "{stopped:?}");
    let pnl = stopped.pnl.unwrap();

    // The exchange's record: the bot's orders by intent, step by step.
    let bot_id = BotId::parse(&id).unwrap();
    let mut orders = OrdersClient::new(ch.clone());
    let mut account = AccountClient::new(ch.clone());
    let all = orders
        .list(pb::ListOrdersRequest {
            bot_id: id.clone(),
            statuses: vec![pb::OrderStatus::Done as i32, pb::OrderStatus::Open as i32],
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .orders;
    let fills = account
        .fills(pb::FillsRequest {
            bot_id: id.clone(),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .fills;
    let mut realized = Decimal::ZERO;
    let mut fees = Decimal::ZERO;
    let mut cycles = 0;
    let (mut buy_value, mut cycle_fees) = (Decimal::ZERO, Decimal::ZERO);
    for step in 1..=all.len() as u64 {
        let cid = ClientOid::for_intent(bot_id, step, 0).to_string();
        let matching: Vec<&pb::Order> = all.iter().filter(|o| o.client_oid == cid).collect();
        assert_eq!(
            matching.len(),
            1,
            "step {step}: exactly one order per intent"
        );
        let o = matching[0];
        let mine: Vec<&pb::Fill> = fills.iter().filter(|f| f.order_id == o.id).collect();
        let value: Decimal = mine.iter().map(|f| d(&f.price) * d(&f.size)).sum();
        let fee: Decimal = mine.iter().map(|f| d(&f.fee)).sum();
        fees += fee;
        cycle_fees += fee;
        let filled = o.done_reason == pb::DoneReason::Filled as i32;
        match (pb::Side::try_from(o.side).unwrap(), filled) {
            (pb::Side::Buy, _) => buy_value += value,
            (pb::Side::Sell, true) => {
                realized += value - buy_value - cycle_fees;
                cycles += 1;
                buy_value = Decimal::ZERO;
                cycle_fees = Decimal::ZERO;
            }
            (pb::Side::Sell, false) => {}
            _ => unreachable!(),
        }
    }
    assert!(cycles >= 3);
    assert_eq!(pnl.cycles, cycles);
    assert_eq!(d(&pnl.realized_profit), realized);
    assert_eq!(d(&pnl.fees_paid), fees);
    // (105 − 95) × 0.37 − (35.15 + 38.85) × 0.004 per cycle, all maker.
    assert_eq!(realized, d("3.404") * Decimal::from(cycles));
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_duplicate_stop_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = swinging_daemon(dir.path(), "1x").await;
    let ch = daemon.channel().await;
    let mut bots = BotsClient::new(ch.clone());
    // Far below the market: its buy rests.
    bots.create(range("patient", "0.1", "50.00", "60.00", true))
        .await
        .unwrap();
    let b = wait_for_bot(&mut bots, "patient", "an open order", |b| {
        b.current_order
            .as_ref()
            .is_some_and(|o| o.status == pb::OrderStatus::Open as i32)
    })
    .await;
    assert_eq!(b.current_step, "buy 0.1 BTC @ 50.00 USD");
    let order_id = b.current_order.unwrap().id;

    let p = bots
        .pause(pb::PauseBotRequest {
            bot: "patient".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.status, pb::BotStatus::Paused as i32);
    assert_eq!(
        p.current_order.unwrap().id,
        order_id,
        "pause leaves the order"
    );
    let err = bots
        .pause(pb::PauseBotRequest {
            bot: "patient".into(),
        })
        .await;
    assert!(err.is_ok(), "pausing a paused bot is harmless");
    let r = bots
        .resume(pb::ResumeBotRequest {
            bot: "patient".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status, pb::BotStatus::Running as i32);
    assert_eq!(r.current_order.unwrap().id, order_id, "resume adopts it");
    let err = bots
        .resume(pb::ResumeBotRequest {
            bot: "patient".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // Cron-friendly: the same name with if_absent finds it.
    let again = bots
        .create(pb::CreateBotRequest {
            if_absent: true,
            ..range("patient", "0.1", "50.00", "60.00", true)
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    let dup_name = bots
        .create(range("patient", "0.1", "50.00", "60.00", true))
        .await
        .unwrap_err();
    assert_eq!(dup_name.code(), Code::AlreadyExists);

    let copy = bots
        .duplicate(pb::DuplicateBotRequest {
            bot: "patient".into(),
            name: "copy".into(),
            overrides: [("size".to_owned(), "0.2".to_owned())].into(),
        })
        .await
        .unwrap()
        .into_inner()
        .bot
        .unwrap();
    assert_eq!(copy.current_step, "buy 0.2 BTC @ 50.00 USD");
    let err = bots
        .delete(pb::DeleteBotRequest { bot: "copy".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("stop it first"), "{}", err.message());

    let all = bots
        .stop_all(pb::StopAllBotsRequest {})
        .await
        .unwrap()
        .into_inner()
        .bots;
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .all(|b| b.status == pb::BotStatus::Stopped as i32)
    );
    let mut orders = OrdersClient::new(ch.clone());
    let o = orders
        .get(pb::GetOrderRequest {
            exchange: String::new(),
            target: Some(pb::get_order_request::Target::OrderId(order_id)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        o.done_reason,
        pb::DoneReason::Canceled as i32,
        "stop cancels"
    );
    // Every reservation went back to the free pool.
    let balances = AccountClient::new(ch.clone())
        .balances(pb::BalancesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(balances.reservations.is_empty(), "{balances:?}");
    let usd = balances
        .balances
        .iter()
        .find(|b| b.currency == "USD")
        .unwrap();
    assert_eq!((d(&usd.hold), d(&usd.balance)), (d("0"), d("10000")));

    bots.delete(pb::DeleteBotRequest { bot: "copy".into() })
        .await
        .unwrap();
    let gone = bots
        .get(pb::GetBotRequest { bot: "copy".into() })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let left = bots
        .list(pb::ListBotsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .bots;
    assert_eq!(left.len(), 1);
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_canceled_outside_virc_fails_its_bot() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = swinging_daemon(dir.path(), "1x").await;
    let ch = daemon.channel().await;
    let mut bots = BotsClient::new(ch.clone());
    bots.create(range("victim", "0.1", "50.00", "60.00", false))
        .await
        .unwrap();
    let b = wait_for_bot(&mut bots, "victim", "an order", |b| {
        b.current_order.is_some()
    })
    .await;
    let cid = b.current_order.unwrap().client_oid;
    OrdersClient::new(ch.clone())
        .cancel(pb::CancelOrderRequest {
            exchange: String::new(),
            target: Some(pb::cancel_order_request::Target::ClientOid(cid)),
        })
        .await
        .unwrap();
    let b = wait_for_bot(&mut bots, "victim", "failed", |b| {
        b.status == pb::BotStatus::Failed as i32
    })
    .await;
    assert_eq!(b.status_reason, "order canceled outside virc");
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_order_fails_its_bot_with_the_exchange_text() {
    let dir = tempfile::tempdir().unwrap();
    // The product is in post-only mode, as Coinbase sometimes sets it.
    let products = dir.path().join("products.json");
    std::fs::write(
        &products,
        r#"[{"id":"BTC-USD","base_currency":"BTC","quote_currency":"USD","quote_increment":"0.01",
            "base_increment":"0.00000001","display_name":"BTC/USD","min_market_funds":"5",
            "post_only":true,"limit_only":false,"cancel_only":false,"trading_disabled":false,
            "status":"online"}]"#,
    )
    .unwrap();
    let rec = dir.path().join("flat.jsonl");
    write_market(&rec, "BTC-USD", &["100.00"; 30], 100.0, "1.0");
    let mut config = market_config(dir.path(), &rec, "1x");
    config.market.products_file = Some(products);
    let daemon = TestDaemon::start(config, Credentials::default(), vec![])
        .await
        .unwrap();
    let ch = daemon.channel().await;
    // Wait for the first trade, so that a buy at 120 crosses the market.
    let mut market = pb::market_client::MarketClient::new(ch.clone());
    for _ in 0..200 {
        let t = market
            .ticker(pb::TickerRequest::default())
            .await
            .unwrap()
            .into_inner();
        if !t.tickers.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut bots = BotsClient::new(ch.clone());
    bots.create(range("eager", "0.1", "120.00", "130.00", false))
        .await
        .unwrap();
    let b = wait_for_bot(&mut bots, "eager", "failed", |b| {
        b.status == pb::BotStatus::Failed as i32
    })
    .await;
    assert_eq!(b.status_reason, "order refused: Post only mode");
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bot_specs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = TestDaemon::start(test_config(dir.path()), Credentials::default(), vec![])
        .await
        .unwrap();
    let mut bots = BotsClient::new(daemon.channel().await);
    let cases: Vec<(pb::CreateBotRequest, Code, &str)> = vec![
        (
            {
                let mut r = range("", "0.1", "100", "110", false);
                if let Some(Kind::Range(x)) = r.spec.as_mut().unwrap().kind.as_mut() {
                    x.product_id = "DOGE-EUR".into();
                }
                r
            },
            Code::NotFound,
            "unknown product `DOGE-EUR`",
        ),
        (
            range("", "0.1", "110", "100", false),
            Code::InvalidArgument,
            "sell price 100 is not above buy price 110",
        ),
        (
            range("", "0.000000001", "100", "110", false),
            Code::FailedPrecondition,
            "size is too accurate. Smallest unit is 0.00000001",
        ),
        (
            range("", "0.01", "100", "110", false),
            Code::FailedPrecondition,
            "notional is too small. Minimum is 5.00000000",
        ),
        (
            range("", "1000", "100", "110", false),
            Code::FailedPrecondition,
            "cannot start bot range-1",
        ),
        (
            range("", "abc", "100", "110", false),
            Code::InvalidArgument,
            "size `abc`",
        ),
        (
            range(
                "",
                "1000000000000000",
                "79000000000000",
                "79000000000001",
                false,
            ),
            Code::InvalidArgument,
            "out of range",
        ),
    ];
    for (req, code, text) in cases {
        let err = bots.create(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{}", err.message());
        assert!(
            err.message().contains(text),
            "{} lacks {text}",
            err.message()
        );
    }
    // A price off the tick is rounded, with a warning.
    let ok = bots
        .create(range("", "0.1", "100.004", "110", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ok.warnings,
        vec!["buy price 100.004 rounded to 100.00 (BTC-USD's quote increment is 0.01)"]
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_orders_are_idempotent_by_client_oid_and_hold_funds() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = swinging_daemon(dir.path(), "1x").await;
    let ch = daemon.channel().await;
    let mut orders = OrdersClient::new(ch.clone());
    let cid = "7f1e6a52-3a57-4bb4-9b0b-6f2b0f5f9c11".to_owned();
    let req = pb::PlaceOrderRequest {
        product_id: "BTC-USD".into(),
        side: pb::Side::Buy as i32,
        order_type: pb::OrderType::Limit as i32,
        price: "50.00".into(),
        size: "1".into(),
        client_oid: cid.clone(),
        ..Default::default()
    };
    let first = orders.place(req.clone()).await.unwrap().into_inner();
    let second = orders.place(req).await.unwrap().into_inner();
    assert_eq!(first.id, second.id, "the same client_oid is the same order");
    assert_eq!(first.status, pb::OrderStatus::Open as i32);
    let usd = |b: pb::BalancesResponse| {
        b.balances
            .into_iter()
            .find(|b| b.currency == "USD")
            .unwrap()
    };
    let mut account = AccountClient::new(ch.clone());
    let b = usd(account
        .balances(pb::BalancesRequest::default())
        .await
        .unwrap()
        .into_inner());
    // price × size × (1 + taker 0.6 %)
    assert_eq!(d(&b.hold), d("50.30"));
    let listed = orders
        .list(pb::ListOrdersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .orders;
    assert_eq!(listed.len(), 1);
    let canceled = orders
        .cancel(pb::CancelOrderRequest {
            exchange: String::new(),
            target: Some(pb::cancel_order_request::Target::ClientOid(cid.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(canceled.done_reason, pb::DoneReason::Canceled as i32);
    // Canceling a done order returns it as it is.
    let again = orders
        .cancel(pb::CancelOrderRequest {
            exchange: String::new(),
            target: Some(pb::cancel_order_request::Target::OrderId(first.id.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.status, pb::OrderStatus::Done as i32);
    let b = usd(account
        .balances(pb::BalancesRequest::default())
        .await
        .unwrap()
        .into_inner());
    assert_eq!(d(&b.hold), d("0"));
    // The exchange's own words for bad orders.
    let err = orders
        .place(pb::PlaceOrderRequest {
            product_id: "BTC-USD".into(),
            side: pb::Side::Buy as i32,
            price: "50.001".into(),
            size: "1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "price is too accurate. Smallest unit is 0.01000000"
    );
    let err = orders
        .cancel(pb::CancelOrderRequest {
            exchange: String::new(),
            target: Some(pb::cancel_order_request::Target::OrderId(
                "6f09ee5e-bcb5-67b1-0000-0000000000ff".into(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = orders
        .place(pb::PlaceOrderRequest {
            exchange: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("configured: paper"),
        "{}",
        err.message()
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_brings_bots_back_running_with_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = swinging_daemon(dir.path(), "1x").await;
    let mut bots = BotsClient::new(daemon.channel().await);
    bots.create(range("survivor", "0.1", "50.00", "60.00", true))
        .await
        .unwrap();
    let before = wait_for_bot(&mut bots, "survivor", "an order", |b| {
        b.current_order.is_some()
    })
    .await;
    daemon.stop().await.unwrap();
    let daemon = swinging_daemon(dir.path(), "1x").await;
    let ch = daemon.channel().await;
    let mut bots = BotsClient::new(ch.clone());
    let after = bots
        .get(pb::GetBotRequest {
            bot: "survivor".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.status, pb::BotStatus::Running as i32);
    assert_eq!(
        after.current_order.unwrap().id,
        before.current_order.unwrap().id
    );
    let open = OrdersClient::new(ch)
        .list(pb::ListOrdersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .orders;
    assert_eq!(open.len(), 1, "no second order after the restart");
    daemon.stop().await.unwrap();
}
