//! Grid, stop-loss and conditional bots end to end on the simulated
//! exchange: a grid completes round trips with one order per level, a
//! stop-loss fires on a falling tape, stops the range bot it guards and
//! sells what that bot held, and a conditional bot's RSI rule fires at the
//! candle a straightforward reference computation names.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

use std::{collections::HashMap, time::Duration};

use rust_decimal::Decimal;
use tonic::transport::Channel;
use virc_daemon::config::Credentials;
use virc_proto::v1::{
    self as pb, account_client::AccountClient, bot_spec::Kind, bots_client::BotsClient,
    market_client::MarketClient, orders_client::OrdersClient,
};
use virc_tests::{TestDaemon, market_config, wait_for_bot, write_market};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn spec(name: &str, kind: Kind) -> pb::CreateBotRequest {
    pb::CreateBotRequest {
        spec: Some(pb::BotSpec {
            name: name.into(),
            exchange: String::new(),
            kind: Some(kind),
        }),
        if_absent: false,
    }
}

/// A one-shot conditional bot on BTC-USD: when the JsonLogic `rule` holds,
/// buy 0.1 at `price` (`mkt` for a market order).
fn when_then_buy(rule: &str, price: &str) -> Kind {
    let step = |s: pb::conditional_step::Step| pb::ConditionalStep { step: Some(s) };
    Kind::Conditional(pb::ConditionalSpec {
        steps: vec![
            step(pb::conditional_step::Step::When(pb::RuleCondition {
                rule: rule.into(),
                syntax: pb::RuleSyntax::Jsonlogic as i32,
            })),
            step(pb::conditional_step::Step::Order(pb::ConditionalOrder {
                side: pb::Side::Buy as i32,
                size: "0.1".into(),
                price: price.into(),
            })),
        ],
        r#loop: false,
        product_id: "BTC-USD".into(),
    })
}

/// Waits until the last trade of BTC-USD is `price`.
async fn wait_price(ch: &Channel, price: &str) {
    let mut market = MarketClient::new(ch.clone());
    for _ in 0..400 {
        let t = market
            .ticker(pb::TickerRequest {
                product_ids: vec!["BTC-USD".into()],
            })
            .await
            .unwrap()
            .into_inner()
            .tickers;
        if t.first().is_some_and(|t| d(&t.price) == d(price)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the market never traded at {price}");
}

async fn orders_of(ch: &Channel, bot: &str) -> Vec<pb::Order> {
    OrdersClient::new(ch.clone())
        .list(pb::ListOrdersRequest {
            bot_id: bot.into(),
            statuses: vec![
                pb::OrderStatus::Pending as i32,
                pb::OrderStatus::Open as i32,
                pb::OrderStatus::Done as i32,
                pb::OrderStatus::Rejected as i32,
            ],
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .orders
}

async fn fills_of(ch: &Channel, bot: &str) -> Vec<pb::Fill> {
    AccountClient::new(ch.clone())
        .fills(pb::FillsRequest {
            bot_id: bot.into(),
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .fills
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_completes_round_trips_with_one_order_per_level() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("swing.jsonl");
    let swing = ["100.00", "94.00", "100.00", "106.00"];
    let prices: Vec<&str> = swing.iter().copied().cycle().take(40).collect();
    write_market(&rec, "BTC-USD", &prices, 100.0, "1.0");
    let daemon = TestDaemon::start(
        market_config(dir.path(), &rec, "40x"),
        Credentials::default(),
        vec![],
    )
    .await
    .unwrap();
    let ch = daemon.channel().await;
    let mut bots = BotsClient::new(ch.clone());
    wait_price(&ch, "100.00").await;
    let created = bots
        .create(spec(
            "ladder",
            Kind::Grid(pb::GridSpec {
                product_id: "BTC-USD".into(),
                lower_price: "95".into(),
                upper_price: "105".into(),
                levels: 5,
                spacing: pb::GridSpacing::Arithmetic as i32,
                sizing: Some(pb::grid_spec::Sizing::SizePerLevel("0.1".into())),
                stop_loss_price: String::new(),
                take_profit_price: String::new(),
            }),
        ))
        .await
        .unwrap()
        .into_inner();
    let bot = created.bot.unwrap();
    assert_eq!(bot.kind, "grid");
    let id = bot.id;
    // While it trades, its open orders never share a price.
    let mut seen_open = 0;
    for _ in 0..200 {
        let open: Vec<pb::Order> = orders_of(&ch, &id)
            .await
            .into_iter()
            .filter(|o| o.status == pb::OrderStatus::Open as i32)
            .collect();
        let mut prices: Vec<&str> = open.iter().map(|o| o.price.as_str()).collect();
        prices.sort_unstable();
        let n = prices.len();
        prices.dedup();
        assert_eq!(prices.len(), n, "two open orders at one level: {open:?}");
        seen_open = seen_open.max(n);
        let b = bots
            .get(pb::GetBotRequest { bot: id.clone() })
            .await
            .unwrap()
            .into_inner();
        if b.pnl.unwrap().cycles >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen_open >= 3, "the ladder rests several orders");
    let b = wait_for_bot(&mut bots, "ladder", "3 round trips", |b| {
        b.pnl.as_ref().unwrap().cycles >= 3
    })
    .await;
    let stopped = bots
        .stop(pb::StopBotRequest { bot: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopped.status, pb::BotStatus::Stopped as i32, "{stopped:?}");
    let pnl = stopped.pnl.unwrap();
    let cycles = Decimal::from(pnl.cycles);
    assert!(pnl.cycles >= b.pnl.unwrap().cycles);
    // A round trip between neighbours 2.50 apart, size 0.1, maker 0.4 % on
    // both orders, earns 0.167 (top pair) to 0.173 (bottom pair).
    let realized = d(&pnl.realized_profit);
    assert!(
        realized >= d("0.167") * cycles && realized <= d("0.173") * cycles,
        "{realized} over {cycles} round trips"
    );
    // Fees are the fills' fees to the last decimal; every intent is one order.
    let fills = fills_of(&ch, &id).await;
    let fees: Decimal = fills.iter().map(|f| d(&f.fee)).sum();
    assert_eq!(d(&pnl.fees_paid), fees);
    let orders = orders_of(&ch, &id).await;
    let mut cids: Vec<&str> = orders.iter().map(|o| o.client_oid.as_str()).collect();
    cids.sort_unstable();
    cids.dedup();
    assert_eq!(cids.len(), orders.len(), "one order per intent");
    assert!(
        orders
            .iter()
            .all(|o| o.status == pb::OrderStatus::Done as i32),
        "stop left nothing on the book"
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_loss_on_a_falling_tape_stops_the_guarded_bot_and_sells_its_holdings() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("fall.jsonl");
    // A plateau to create the bots on, a fall from 99 to 80, then quiet.
    let fall: Vec<String> = (80..=99).rev().map(|p| format!("{p}.00")).collect();
    let mut prices: Vec<&str> = vec!["100.00"; 40];
    prices.extend(fall.iter().map(String::as_str));
    prices.extend(["80.00"; 20]);
    write_market(&rec, "BTC-USD", &prices, 100.0, "1.0");
    let mut config = market_config(dir.path(), &rec, "10x");
    config.market.looping = false;
    let daemon = TestDaemon::start(config, Credentials::default(), vec![])
        .await
        .unwrap();
    let ch = daemon.channel().await;
    let mut bots = BotsClient::new(ch.clone());
    wait_price(&ch, "100.00").await;
    bots.create(spec(
        "holder",
        Kind::Range(pb::RangeSpec {
            product_id: "BTC-USD".into(),
            size: "0.2".into(),
            buy_price: "97.00".into(),
            sell_price: "110.00".into(),
            r#loop: false,
            begin_with_sell: false,
            force: false,
        }),
    ))
    .await
    .unwrap();
    let guard = bots
        .create(spec(
            "guard",
            Kind::StopLoss(pb::StopLossSpec {
                product_id: "BTC-USD".into(),
                amount: Some(pb::stop_loss_spec::Amount::GuardedHoldings(true)),
                trigger: Some(pb::stop_loss_spec::Trigger::StopPrice("90.00".into())),
                limit_offset: String::new(),
                guard_bot_id: "holder".into(),
                guard_product: false,
            }),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        guard
            .warnings
            .iter()
            .any(|w| w.contains("watched by the daemon")),
        "{:?}",
        guard.warnings
    );
    // A stop that rests on the exchange, for a position of its own.
    bots.create(spec(
        "resting",
        Kind::StopLoss(pb::StopLossSpec {
            product_id: "BTC-USD".into(),
            amount: Some(pb::stop_loss_spec::Amount::Size("0.1".into())),
            trigger: Some(pb::stop_loss_spec::Trigger::StopPrice("70.00".into())),
            limit_offset: "0.50".into(),
            guard_bot_id: String::new(),
            guard_product: false,
        }),
    ))
    .await
    .unwrap();
    // A bot far below the market and a manual sell far above it, both on the
    // product a third stop-loss guards as a whole.
    bots.create(spec(
        "bystander",
        Kind::Range(pb::RangeSpec {
            product_id: "BTC-USD".into(),
            size: "0.1".into(),
            buy_price: "60.00".into(),
            sell_price: "70.00".into(),
            r#loop: true,
            begin_with_sell: false,
            force: false,
        }),
    ))
    .await
    .unwrap();
    let manual = OrdersClient::new(ch.clone())
        .place(pb::PlaceOrderRequest {
            product_id: "BTC-USD".into(),
            side: pb::Side::Sell as i32,
            order_type: pb::OrderType::Limit as i32,
            price: "120.00".into(),
            size: "0.3".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let pair = bots
        .create(spec(
            "pair",
            Kind::StopLoss(pb::StopLossSpec {
                product_id: "BTC-USD".into(),
                amount: Some(pb::stop_loss_spec::Amount::Size("0.1".into())),
                trigger: Some(pb::stop_loss_spec::Trigger::StopPrice("85.00".into())),
                limit_offset: String::new(),
                guard_bot_id: String::new(),
                guard_product: true,
            }),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        pair.warnings
            .iter()
            .any(|w| w.contains("stops every other bot trading BTC-USD")),
        "{:?}",
        pair.warnings
    );
    let g = wait_for_bot(&mut bots, "guard", "executed", |b| {
        b.status == pb::BotStatus::Ended as i32
    })
    .await;
    assert_eq!(g.status_reason, "stop-loss executed");
    let h = bots
        .get(pb::GetBotRequest {
            bot: "holder".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.status, pb::BotStatus::Stopped as i32, "{h:?}");
    assert!(
        h.history
            .iter()
            .any(|e| e.description.contains("stop-loss bot guard triggered")),
        "{:?}",
        h.history
    );
    // The holder bought 0.2 at 97; its sell at 110 was canceled; the guard sold the 0.2.
    let holder_orders = orders_of(&ch, &h.id).await;
    let sell = holder_orders
        .iter()
        .find(|o| o.side == pb::Side::Sell as i32)
        .unwrap();
    assert_eq!(
        sell.done_reason,
        pb::DoneReason::Canceled as i32,
        "{sell:?}"
    );
    let guard_fills = fills_of(&ch, &g.id).await;
    let sold: Decimal = guard_fills.iter().map(|f| d(&f.size)).sum();
    assert_eq!(sold, d("0.2"));
    assert!(guard_fills.iter().all(|f| d(&f.price) <= d("90")));
    let words: Vec<&str> = g.history.iter().map(|e| e.description.as_str()).collect();
    for phase in [
        "armed at 90",
        "triggered at",
        "guarded bot stopped",
        "executed:",
    ] {
        assert!(
            words.iter().any(|w| w.contains(phase)),
            "no `{phase}` in {words:?}"
        );
    }
    // The product guard stopped the bystander, canceled the manual sell, then sold its own 0.1.
    let p = wait_for_bot(&mut bots, "pair", "executed", |b| {
        b.status == pb::BotStatus::Ended as i32
    })
    .await;
    let by = bots
        .get(pb::GetBotRequest {
            bot: "bystander".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by.status, pb::BotStatus::Stopped as i32, "{by:?}");
    let m = OrdersClient::new(ch.clone())
        .get(pb::GetOrderRequest {
            exchange: String::new(),
            target: Some(pb::get_order_request::Target::OrderId(manual.id.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.done_reason, pb::DoneReason::Canceled as i32, "{m:?}");
    let sold: Decimal = fills_of(&ch, &p.id).await.iter().map(|f| d(&f.size)).sum();
    assert_eq!(sold, d("0.1"));
    assert!(
        p.history.iter().any(|h| h.description
            == "guarding BTC-USD: stopping 1 other bot(s), canceled 1 manual sell(s)"),
        "{:?}",
        p.history
    );
    // Nothing is reserved for either any more.
    let balances = AccountClient::new(ch.clone())
        .balances(pb::BalancesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        !balances
            .reservations
            .iter()
            .any(|r| r.bot_name == "guard" || r.bot_name == "holder"),
        "{:?}",
        balances.reservations
    );
    // The other stop rests on the exchange as a stop order, below the market.
    let resting = bots
        .get(pb::GetBotRequest {
            bot: "resting".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let order = resting.current_order.unwrap();
    assert_eq!(
        (order.stop, order.stop_price.as_str(), order.price.as_str()),
        (pb::StopKind::Loss as i32, "70.00", "69.50")
    );
    daemon.stop().await.unwrap();
}

/// Wilder's RSI-14 over closes, written the plain way: seed with the simple
/// average of the first 14 changes, then smooth.
fn reference_rsi14(closes: &[Decimal]) -> Vec<Option<Decimal>> {
    let n = Decimal::from(14);
    let mut out = vec![None; closes.len()];
    let (mut gain, mut loss) = (Decimal::ZERO, Decimal::ZERO);
    for i in 1..closes.len() {
        let change = closes[i] - closes[i - 1];
        let (g, l) = if change > Decimal::ZERO {
            (change, Decimal::ZERO)
        } else {
            (Decimal::ZERO, -change)
        };
        if i <= 14 {
            gain += g;
            loss += l;
            if i < 14 {
                continue;
            }
            gain /= n;
            loss /= n;
        } else {
            gain = (gain * Decimal::from(13) + g) / n;
            loss = (loss * Decimal::from(13) + l) / n;
        }
        let rsi = if loss.is_zero() {
            Decimal::ONE_HUNDRED
        } else {
            Decimal::ONE_HUNDRED - Decimal::ONE_HUNDRED / (Decimal::ONE + gain / loss)
        };
        out[i] = Some(rsi.round_dp(4));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_bot_fires_at_the_candle_the_reference_rsi_names() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rsi.jsonl");
    // One trade a second. Thirty minutes see-sawing (RSI 50), then a climb
    // with a dip, so RSI-14 crosses 70 at one particular candle.
    let minute_price = |m: usize| -> Decimal {
        if m < 30 {
            Decimal::from(100 + m % 2)
        } else {
            let up = Decimal::from(m - 29);
            let dip = if m == 33 { Decimal::TWO } else { Decimal::ZERO };
            Decimal::from(100) + up - dip
        }
    };
    let minutes = 45;
    let texts: Vec<String> = (0..minutes * 60)
        .map(|i| format!("{:.2}", minute_price(i / 60)))
        .collect();
    let prices: Vec<&str> = texts.iter().map(String::as_str).collect();
    write_market(&rec, "BTC-USD", &prices, 100.0, "0.5");
    let closes: Vec<Decimal> = (0..minutes).map(minute_price).collect();
    let rsi = reference_rsi14(&closes);
    let fire = rsi
        .iter()
        .position(|r| r.is_some_and(|r| r >= Decimal::from(70)))
        .unwrap();
    // The candle of minute `fire` closes at the first trade of the next minute.
    let expected_price = minute_price(fire + 1);

    let mut config = market_config(dir.path(), &rec, "1000x");
    config.market.looping = false;
    let daemon = TestDaemon::start(config, Credentials::default(), vec![])
        .await
        .unwrap();
    let ch = daemon.channel().await;
    let mut bots = BotsClient::new(ch.clone());
    let created = bots
        .create(spec(
            "rsi",
            when_then_buy(r#"{">=": [{"var": "p60.rsi14"}, 70]}"#, "mkt"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        created.bot.unwrap().status,
        pb::BotStatus::Running as i32,
        "created before the climb"
    );
    let b = wait_for_bot(&mut bots, "rsi", "the program ends", |b| {
        b.status == pb::BotStatus::Ended as i32
    })
    .await;
    let fills = fills_of(&ch, &b.id).await;
    assert_eq!(fills.len(), 1, "{fills:?}");
    assert_eq!(
        d(&fills[0].price),
        expected_price,
        "fired at the close of minute {fire} (reference RSI {:?})",
        rsi[fire]
    );
    let fired = b
        .history
        .iter()
        .find(|h| h.description.contains("fired"))
        .unwrap();
    let expected_rsi = rsi[fire].unwrap().normalize();
    assert!(
        fired
            .description
            .contains(&format!("p60.rsi14={expected_rsi}")),
        "{} vs {expected_rsi}",
        fired.description
    );
    // The bot_step event carries the values too.
    let mut events = virc_proto::v1::events_client::EventsClient::new(ch.clone());
    let mut stream = events
        .subscribe(pb::SubscribeRequest {
            from_seq: Some(1),
            bot_ids: vec![b.id.clone()],
            stop_at_head: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut values: Option<HashMap<String, String>> = None;
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_secs(2), stream.message())
        .await
        .map(Result::transpose)
    {
        if let Some(pb::event::Payload::BotStep(s)) = e.payload
            && s.description.contains("fired")
        {
            values = Some(s.values);
            break;
        }
    }
    let values = values.expect("a bot_step event for the rule");
    assert_eq!(
        values.get("p60.rsi14").map(|v| d(v)),
        Some(rsi[fire].unwrap())
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_bot_loaded_at_a_restart_still_sees_every_trade() {
    let dir = tempfile::tempdir().unwrap();
    // Created while no market trades, so it cannot fire before the restart.
    let daemon = TestDaemon::start(
        virc_tests::test_config(dir.path()),
        Credentials::default(),
        vec![],
    )
    .await
    .unwrap();
    let mut bots = BotsClient::new(daemon.channel().await);
    bots.create(spec(
        "watcher",
        when_then_buy(r#"{">=": [{"var": "ticker.price"}, 1]}"#, "100.00"),
    ))
    .await
    .unwrap();
    daemon.stop().await.unwrap();

    // Restarted on a market: the bot, loaded from the store, fires.
    let rec = dir.path().join("flat.jsonl");
    write_market(&rec, "BTC-USD", &["100.00"; 30], 100.0, "0.5");
    let daemon = TestDaemon::start(
        market_config(dir.path(), &rec, "1000x"),
        Credentials::default(),
        vec![],
    )
    .await
    .unwrap();
    let mut bots = BotsClient::new(daemon.channel().await);
    let b = wait_for_bot(&mut bots, "watcher", "the program ends", |b| {
        b.status == pb::BotStatus::Ended as i32
    })
    .await;
    assert_eq!(fills_of(&daemon.channel().await, &b.id).await.len(), 1);
    daemon.stop().await.unwrap();
}
