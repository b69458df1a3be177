//! Trading commands: `virc bot ...`, `virc order ...`, `virc balances`,
//! `virc fills`, `virc exchanges`.

use std::io::Write;

use crate::client::Conn as Channel;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use virc_proto::v1::{
    self as pb, account_client::AccountClient, bots_client::BotsClient,
    orders_client::OrdersClient, system_client::SystemClient,
};

use crate::{error::CliError, output, spec};

/// `virc bot ...`
#[derive(Debug, Subcommand)]
pub enum BotCommand {
    /// Create and start a bot.
    Create {
        #[command(subcommand)]
        kind: spec::CreateKind,
    },
    /// List bots: status, current step, cycles and realized profit.
    List {
        /// Only bots with this status (repeatable): running, paused, stopped, ended, failed.
        #[arg(long = "status", value_enum)]
        statuses: Vec<StatusArg>,
        /// Only bots trading this product.
        #[arg(long)]
        product: Option<String>,
    },
    /// Show one bot: spec, status, current order, profit and history.
    Show {
        /// Bot id or name.
        bot: String,
    },
    /// Cancel a bot's open order, then stop it (or every bot with --all).
    Stop {
        /// Bot id or name.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        bot: Option<String>,
        /// Stop every running or paused bot.
        #[arg(long)]
        all: bool,
    },
    /// Pause a bot: it takes no new step; its resting order stays on the book.
    Pause {
        /// Bot id or name.
        bot: String,
    },
    /// Resume a paused bot where it was.
    Resume {
        /// Bot id or name.
        bot: String,
    },
    /// Create a new bot with the spec of an existing one.
    Dup {
        /// Bot id or name to copy.
        bot: String,
        /// Name of the copy (default: generated).
        #[arg(long)]
        name: Option<String>,
        /// Change a spec field: size=0.02, buy=440, sell=470, loop=false, product=ETH-USD (repeatable).
        #[arg(long = "set", value_name = "FIELD=VALUE", value_parser = parse_override)]
        overrides: Vec<(String, String)>,
    },
    /// Delete a stopped, ended or failed bot (its history stays in the event log).
    Rm {
        /// Bot id or name.
        bot: String,
    },
}

/// Bot statuses, for filters.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    /// Trading.
    Running,
    /// Paused by the user.
    Paused,
    /// Stopped by the user.
    Stopped,
    /// Finished its program.
    Ended,
    /// Failed.
    Failed,
}

impl StatusArg {
    fn wire(self) -> i32 {
        (match self {
            Self::Running => pb::BotStatus::Running,
            Self::Paused => pb::BotStatus::Paused,
            Self::Stopped => pb::BotStatus::Stopped,
            Self::Ended => pb::BotStatus::Ended,
            Self::Failed => pb::BotStatus::Failed,
        }) as i32
    }
}

fn parse_override(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not FIELD=VALUE, for example size=0.02"))
}

fn money(v: &str, currency: &str) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        format!("{v} {currency}")
    }
}

fn bots_table(out: &mut impl Write, bots: &[pb::Bot]) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = bots
        .iter()
        .map(|b| {
            let pnl = b.pnl.clone().unwrap_or_default();
            vec![
                b.id.chars().take(8).collect(),
                b.name.clone(),
                b.kind.clone(),
                b.product_id.clone(),
                b.exchange.clone(),
                output::bot_status(b.status),
                pnl.cycles.to_string(),
                money(&pnl.realized_profit, &pnl.currency),
                b.current_step.clone(),
            ]
        })
        .collect();
    output::table(
        out,
        &[
            "ID", "NAME", "KIND", "PRODUCT", "EXCHANGE", "STATUS", "CYCLES", "REALIZED", "STEP",
        ],
        &rows,
        &[6, 7],
    )
}

fn order_line(o: &pb::Order) -> String {
    let what = if o.price.is_empty() {
        format!(
            "{} {} {} at market",
            output::side(o.side),
            if o.size.is_empty() {
                &o.specified_funds
            } else {
                &o.size
            },
            o.product_id
        )
    } else {
        format!(
            "{} {} {} @ {}",
            output::side(o.side),
            o.size,
            o.product_id,
            o.price
        )
    };
    format!(
        "{what}, {} (filled {}){}",
        output::order_status(o.status),
        o.filled_size,
        if o.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", o.reason)
        }
    )
}

fn bot_show(out: &mut impl Write, b: &pb::Bot) -> std::io::Result<()> {
    let pnl = b.pnl.clone().unwrap_or_default();
    let spec = b
        .spec
        .as_ref()
        .and_then(|s| s.kind.as_ref())
        .map_or_else(|| b.kind.clone(), spec::describe);
    let status = if b.status_reason.is_empty() {
        output::bot_status(b.status)
    } else {
        format!("{} ({})", output::bot_status(b.status), b.status_reason)
    };
    output::pairs(
        out,
        &[
            ("id", b.id.clone()),
            ("name", b.name.clone()),
            ("exchange", b.exchange.clone()),
            ("spec", spec),
            ("status", status),
            ("step", b.current_step.clone()),
            (
                "order",
                b.current_order
                    .as_ref()
                    .map_or_else(|| "-".into(), order_line),
            ),
            ("cycles", pnl.cycles.to_string()),
            ("realized", money(&pnl.realized_profit, &pnl.currency)),
            ("fees paid", money(&pnl.fees_paid, &pnl.currency)),
            (
                "per cycle",
                if pnl.theoretical_cycle_profit.is_empty() {
                    "-".into()
                } else {
                    format!(
                        "{} ({}%) expected, net of maker fees",
                        money(&pnl.theoretical_cycle_profit, &pnl.currency),
                        pnl.theoretical_cycle_profit_pct
                    )
                },
            ),
            ("reserved", money(&pnl.reserved, &pnl.currency)),
            ("created", output::time(b.created_at.as_ref())),
            ("updated", output::time(b.updated_at.as_ref())),
        ],
    )?;
    if !b.history.is_empty() {
        writeln!(out)?;
        let rows: Vec<Vec<String>> = b
            .history
            .iter()
            .map(|h| {
                vec![
                    output::time(h.time.as_ref()),
                    h.seq.to_string(),
                    h.description.clone(),
                ]
            })
            .collect();
        output::table(out, &["TIME", "SEQ", "HISTORY (NEWEST FIRST)"], &rows, &[1])?;
    }
    Ok(())
}

/// Runs `virc bot ...`.
pub async fn bot(
    conn: Channel,
    cmd: BotCommand,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let mut c = BotsClient::new(conn);
    match cmd {
        BotCommand::Create { kind } => {
            let r = c.create(kind.request()?).await?.into_inner();
            let bot = r.bot.unwrap_or_default();
            if json {
                let mut v = output::bot_json(&bot);
                v["created"] = json!(r.created);
                v["warnings"] = json!(r.warnings);
                writeln!(out, "{v}")?;
            } else {
                for w in &r.warnings {
                    eprintln!("virc: warning: {w}");
                }
                let verb = if r.created { "created" } else { "exists:" };
                writeln!(
                    out,
                    "bot {} {verb} {} on {} ({}), {}",
                    bot.name,
                    bot.id,
                    bot.exchange,
                    output::bot_status(bot.status),
                    bot.current_step
                )?;
            }
        }
        BotCommand::List { statuses, product } => {
            let bots = c
                .list(pb::ListBotsRequest {
                    statuses: statuses.iter().map(|s| s.wire()).collect(),
                    product_id: product.unwrap_or_default(),
                })
                .await?
                .into_inner()
                .bots;
            if json {
                writeln!(
                    out,
                    "{}",
                    Value::Array(bots.iter().map(output::bot_json).collect())
                )?;
            } else if bots.is_empty() {
                writeln!(
                    out,
                    "no bots; create one with `virc bot create range|grid|stop-loss|conditional ...`"
                )?;
            } else {
                bots_table(out, &bots)?;
            }
        }
        BotCommand::Show { bot } => {
            let b = c.get(pb::GetBotRequest { bot }).await?.into_inner();
            if json {
                let mut v = output::bot_json(&b);
                v["current_order"] = b
                    .current_order
                    .as_ref()
                    .map_or(Value::Null, output::order_json);
                v["spec"] = b.spec.as_ref().map_or(Value::Null, spec::to_json);
                writeln!(out, "{v}")?;
            } else {
                bot_show(out, &b)?;
            }
        }
        BotCommand::Stop { bot, all } => {
            let bots = if all {
                c.stop_all(pb::StopAllBotsRequest {})
                    .await?
                    .into_inner()
                    .bots
            } else {
                vec![
                    c.stop(pb::StopBotRequest {
                        bot: bot.unwrap_or_default(),
                    })
                    .await?
                    .into_inner(),
                ]
            };
            print_bots(out, &bots, json, "stop")?;
        }
        BotCommand::Pause { bot } => {
            let b = c.pause(pb::PauseBotRequest { bot }).await?.into_inner();
            print_bots(out, &[b], json, "pause")?;
        }
        BotCommand::Resume { bot } => {
            let b = c.resume(pb::ResumeBotRequest { bot }).await?.into_inner();
            print_bots(out, &[b], json, "resume")?;
        }
        BotCommand::Dup {
            bot,
            name,
            overrides,
        } => {
            let r = c
                .duplicate(pb::DuplicateBotRequest {
                    bot,
                    name: name.unwrap_or_default(),
                    overrides: overrides.into_iter().collect(),
                })
                .await?
                .into_inner();
            let b = r.bot.unwrap_or_default();
            if json {
                let mut v = output::bot_json(&b);
                v["created"] = json!(r.created);
                v["warnings"] = json!(r.warnings);
                writeln!(out, "{v}")?;
            } else {
                for w in &r.warnings {
                    eprintln!("virc: warning: {w}");
                }
                writeln!(out, "bot {} created {} ({})", b.name, b.id, b.current_step)?;
            }
        }
        BotCommand::Rm { bot } => {
            let r = c.delete(pb::DeleteBotRequest { bot }).await?.into_inner();
            if json {
                writeln!(out, "{}", json!({"deleted": r.id}))?;
            } else {
                writeln!(out, "bot {} deleted", r.id)?;
            }
        }
    }
    Ok(())
}

fn print_bots(
    out: &mut impl Write,
    bots: &[pb::Bot],
    json: bool,
    what: &str,
) -> std::io::Result<()> {
    if json {
        if let [b] = bots {
            writeln!(out, "{}", output::bot_json(b))
        } else {
            writeln!(
                out,
                "{}",
                Value::Array(bots.iter().map(output::bot_json).collect())
            )
        }
    } else if bots.is_empty() {
        writeln!(out, "no bot to {what}")
    } else {
        for b in bots {
            writeln!(
                out,
                "bot {} {}: {}",
                b.name,
                output::bot_status(b.status),
                b.current_step
            )?;
        }
        Ok(())
    }
}

/// `virc order ...`
#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Place an order (limit by default; market with --type market; stop-limit with --stop).
    Place(PlaceArgs),
    /// Cancel an order by id (or by client_oid with --client-oid).
    Cancel {
        /// Order id, or client_oid with --client-oid.
        id: String,
        /// The id is a client_oid.
        #[arg(long)]
        client_oid: bool,
        /// Exchange connection (default: the daemon's default).
        #[arg(long)]
        exchange: Option<String>,
    },
    /// List orders, newest first (default: open ones).
    List {
        /// Only this product.
        #[arg(long)]
        product: Option<String>,
        /// Only this bot's orders (id or name).
        #[arg(long)]
        bot: Option<String>,
        /// Include done and rejected orders.
        #[arg(long)]
        all: bool,
        /// Only this exchange connection.
        #[arg(long)]
        exchange: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show one order by id (or by client_oid with --client-oid).
    Show {
        /// Order id, or client_oid with --client-oid.
        id: String,
        /// The id is a client_oid.
        #[arg(long)]
        client_oid: bool,
        /// Exchange connection (default: the daemon's default).
        #[arg(long)]
        exchange: Option<String>,
    },
}

/// Order sides.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SideArg {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

/// Order types.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TypeArg {
    /// Limit order (with --price).
    Limit,
    /// Market order (with --size or --funds).
    Market,
}

/// Time in force.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum TifArg {
    /// Good till canceled.
    Gtc,
    /// Good till time (with --cancel-after).
    Gtt,
    /// Immediate or cancel.
    Ioc,
    /// Fill or kill.
    Fok,
}

/// GTT lifetimes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AfterArg {
    /// One minute.
    Min,
    /// One hour.
    Hour,
    /// One day.
    Day,
}

/// Self-trade prevention.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StpArg {
    /// Decrement and cancel (default).
    Dc,
    /// Cancel oldest.
    Co,
    /// Cancel newest.
    Cn,
    /// Cancel both.
    Cb,
}

/// Stop directions.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StopArg {
    /// Triggers when the last trade is at or below --stop-price.
    Loss,
    /// Triggers when the last trade is at or above --stop-price.
    Entry,
}

/// `virc order place`
#[derive(Debug, Args)]
pub struct PlaceArgs {
    /// Product, for example BTC-USD.
    #[arg(long)]
    product: String,
    /// buy or sell.
    #[arg(long, value_enum)]
    side: SideArg,
    /// limit (default) or market.
    #[arg(long = "type", value_enum, default_value = "limit")]
    order_type: TypeArg,
    /// Limit price (limit and stop orders).
    #[arg(long)]
    price: Option<String>,
    /// Base size.
    #[arg(long)]
    size: Option<String>,
    /// Quote funds to spend (market orders).
    #[arg(long)]
    funds: Option<String>,
    /// Time in force (limit orders): GTC, GTT, IOC, FOK.
    #[arg(long, value_enum)]
    tif: Option<TifArg>,
    /// Lifetime of a GTT order: min, hour, day.
    #[arg(long, value_enum)]
    cancel_after: Option<AfterArg>,
    /// Only add liquidity; refused if it would take.
    #[arg(long)]
    post_only: bool,
    /// Self-trade prevention: dc, co, cn, cb.
    #[arg(long, value_enum)]
    stp: Option<StpArg>,
    /// Make it a stop-limit order: loss or entry (with --stop-price).
    #[arg(long, value_enum, requires = "stop_price")]
    stop: Option<StopArg>,
    /// Stop trigger price.
    #[arg(long, requires = "stop")]
    stop_price: Option<String>,
    /// Your idempotency key (UUID): placing twice with it returns the first order.
    #[arg(long)]
    client_oid: Option<String>,
    /// Exchange connection (default: the daemon's default).
    #[arg(long)]
    exchange: Option<String>,
}

fn place_request(a: PlaceArgs) -> pb::PlaceOrderRequest {
    pb::PlaceOrderRequest {
        exchange: a.exchange.unwrap_or_default(),
        product_id: a.product,
        side: (match a.side {
            SideArg::Buy => pb::Side::Buy,
            SideArg::Sell => pb::Side::Sell,
        }) as i32,
        order_type: (match a.order_type {
            TypeArg::Limit => pb::OrderType::Limit,
            TypeArg::Market => pb::OrderType::Market,
        }) as i32,
        price: a.price.unwrap_or_default(),
        size: a.size.unwrap_or_default(),
        funds: a.funds.unwrap_or_default(),
        time_in_force: a.tif.map_or(0, |t| {
            (match t {
                TifArg::Gtc => pb::TimeInForce::Gtc,
                TifArg::Gtt => pb::TimeInForce::Gtt,
                TifArg::Ioc => pb::TimeInForce::Ioc,
                TifArg::Fok => pb::TimeInForce::Fok,
            }) as i32
        }),
        cancel_after: a.cancel_after.map_or(0, |c| {
            (match c {
                AfterArg::Min => pb::CancelAfter::Min,
                AfterArg::Hour => pb::CancelAfter::Hour,
                AfterArg::Day => pb::CancelAfter::Day,
            }) as i32
        }),
        post_only: a.post_only,
        stp: a.stp.map_or(0, |s| {
            (match s {
                StpArg::Dc => pb::SelfTradePrevention::Dc,
                StpArg::Co => pb::SelfTradePrevention::Co,
                StpArg::Cn => pb::SelfTradePrevention::Cn,
                StpArg::Cb => pb::SelfTradePrevention::Cb,
            }) as i32
        }),
        stop: a.stop.map_or(0, |s| {
            (match s {
                StopArg::Loss => pb::StopKind::Loss,
                StopArg::Entry => pb::StopKind::Entry,
            }) as i32
        }),
        stop_price: a.stop_price.unwrap_or_default(),
        client_oid: a.client_oid.unwrap_or_default(),
    }
}

fn orders_table(out: &mut impl Write, orders: &[pb::Order]) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = orders
        .iter()
        .map(|o| {
            vec![
                o.id.clone(),
                o.product_id.clone(),
                output::side(o.side),
                output::or_dash(&o.price),
                output::or_dash(if o.size.is_empty() {
                    &o.specified_funds
                } else {
                    &o.size
                }),
                o.filled_size.clone(),
                output::order_status(o.status),
                output::time(o.created_at.as_ref()),
                output::or_dash(&o.bot_id.chars().take(8).collect::<String>()),
            ]
        })
        .collect();
    output::table(
        out,
        &[
            "ID", "PRODUCT", "SIDE", "PRICE", "SIZE", "FILLED", "STATUS", "CREATED", "BOT",
        ],
        &rows,
        &[3, 4, 5],
    )
}

/// The wire target of an order named on the command line.
fn pick<T>(id: String, client_oid: bool, by_id: fn(String) -> T, by_client: fn(String) -> T) -> T {
    if client_oid { by_client(id) } else { by_id(id) }
}

/// Runs `virc order ...`.
pub async fn order(
    conn: Channel,
    cmd: OrderCommand,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let mut c = OrdersClient::new(conn);
    let one = |out: &mut dyn Write, o: &pb::Order| -> std::io::Result<()> {
        if json {
            writeln!(out, "{}", output::order_json(o))
        } else {
            writeln!(out, "{} {}", o.id, order_line(o))
        }
    };
    match cmd {
        OrderCommand::Place(args) => {
            let o = c.place(place_request(args)).await?.into_inner();
            one(out, &o)?;
        }
        OrderCommand::Cancel {
            id,
            client_oid,
            exchange,
        } => {
            use pb::cancel_order_request::Target as T;
            let target = pick(id, client_oid, T::OrderId, T::ClientOid);
            let o = c
                .cancel(pb::CancelOrderRequest {
                    exchange: exchange.unwrap_or_default(),
                    target: Some(target),
                })
                .await?
                .into_inner();
            one(out, &o)?;
        }
        OrderCommand::Show {
            id,
            client_oid,
            exchange,
        } => {
            use pb::get_order_request::Target as T;
            let target = pick(id, client_oid, T::OrderId, T::ClientOid);
            let o = c
                .get(pb::GetOrderRequest {
                    exchange: exchange.unwrap_or_default(),
                    target: Some(target),
                })
                .await?
                .into_inner();
            one(out, &o)?;
        }
        OrderCommand::List {
            product,
            bot,
            all,
            exchange,
            limit,
        } => {
            let statuses = if all {
                [
                    pb::OrderStatus::Pending,
                    pb::OrderStatus::Open,
                    pb::OrderStatus::Active,
                    pb::OrderStatus::Done,
                    pb::OrderStatus::Rejected,
                ]
                .iter()
                .map(|s| *s as i32)
                .collect()
            } else {
                Vec::new()
            };
            let orders = c
                .list(pb::ListOrdersRequest {
                    exchange: exchange.unwrap_or_default(),
                    product_id: product.unwrap_or_default(),
                    statuses,
                    bot_id: bot.unwrap_or_default(),
                    limit,
                })
                .await?
                .into_inner()
                .orders;
            if json {
                writeln!(
                    out,
                    "{}",
                    Value::Array(orders.iter().map(output::order_json).collect())
                )?;
            } else if orders.is_empty() {
                writeln!(out, "no {}orders", if all { "" } else { "open " })?;
            } else {
                orders_table(out, &orders)?;
            }
        }
    }
    Ok(())
}

/// Runs `virc balances`.
pub async fn balances(
    conn: Channel,
    exchange: Option<String>,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let r = AccountClient::new(conn)
        .balances(pb::BalancesRequest {
            exchange: exchange.unwrap_or_default(),
        })
        .await?
        .into_inner();
    if json {
        let v = json!({
            "exchange": r.exchange,
            "balances": r.balances.iter().map(|b| json!({"currency": b.currency, "balance": b.balance, "hold": b.hold, "available": b.available})).collect::<Vec<_>>(),
            "reservations": r.reservations.iter().map(|x| json!({"bot_id": x.bot_id, "bot_name": x.bot_name, "currency": x.currency, "amount": x.amount})).collect::<Vec<_>>(),
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = r
        .balances
        .iter()
        .map(|b| {
            vec![
                b.currency.clone(),
                b.balance.clone(),
                b.hold.clone(),
                b.available.clone(),
            ]
        })
        .collect();
    writeln!(out, "exchange {}", r.exchange)?;
    output::table(
        out,
        &["CURRENCY", "BALANCE", "HOLD", "AVAILABLE"],
        &rows,
        &[1, 2, 3],
    )?;
    if !r.reservations.is_empty() {
        writeln!(out)?;
        let rows: Vec<Vec<String>> = r
            .reservations
            .iter()
            .map(|x| vec![x.bot_name.clone(), x.currency.clone(), x.amount.clone()])
            .collect();
        output::table(
            out,
            &["RESERVED FOR BOT", "CURRENCY", "AMOUNT"],
            &rows,
            &[2],
        )?;
    }
    Ok(())
}

/// `virc fills` filters.
#[derive(Debug, Args)]
pub struct FillsArgs {
    /// Only this bot's fills (id or name).
    #[arg(long)]
    bot: Option<String>,
    /// Only this product.
    #[arg(long)]
    product: Option<String>,
    /// Only this order's fills.
    #[arg(long)]
    order: Option<String>,
    /// Exchange connection (default: the daemon's default).
    #[arg(long)]
    exchange: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

/// Runs `virc fills`.
pub async fn fills(
    conn: Channel,
    a: FillsArgs,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let fills = AccountClient::new(conn)
        .fills(pb::FillsRequest {
            exchange: a.exchange.unwrap_or_default(),
            bot_id: a.bot.unwrap_or_default(),
            product_id: a.product.unwrap_or_default(),
            order_id: a.order.unwrap_or_default(),
            limit: a.limit,
        })
        .await?
        .into_inner()
        .fills;
    if json {
        writeln!(
            out,
            "{}",
            Value::Array(fills.iter().map(output::fill_json).collect())
        )?;
    } else if fills.is_empty() {
        writeln!(out, "no fills")?;
    } else {
        let rows: Vec<Vec<String>> = fills
            .iter()
            .map(|f| {
                vec![
                    output::time(f.time.as_ref()),
                    f.trade_id.to_string(),
                    f.product_id.clone(),
                    output::side(f.side),
                    f.price.clone(),
                    f.size.clone(),
                    f.fee.clone(),
                    pb::Liquidity::try_from(f.liquidity).map_or_else(
                        |_| "-".into(),
                        |l| output::enum_name(l.as_str_name(), "LIQUIDITY_"),
                    ),
                    output::or_dash(&f.bot_id.chars().take(8).collect::<String>()),
                ]
            })
            .collect();
        output::table(
            out,
            &[
                "TIME (EXCHANGE)",
                "TRADE",
                "PRODUCT",
                "SIDE",
                "PRICE",
                "SIZE",
                "FEE",
                "LIQUIDITY",
                "BOT",
            ],
            &rows,
            &[1, 4, 5, 6],
        )?;
    }
    Ok(())
}

/// Runs `virc exchanges`.
pub async fn exchanges(conn: Channel, json: bool, out: &mut impl Write) -> Result<(), CliError> {
    let list = SystemClient::new(conn)
        .exchanges(pb::ExchangesRequest {})
        .await?
        .into_inner()
        .exchanges;
    if json {
        writeln!(
            out,
            "{}",
            Value::Array(list.iter().map(output::exchange_json).collect())
        )?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            vec![
                format!("{}{}", e.name, if e.is_default { " *" } else { "" }),
                e.kind.clone(),
                e.state.clone(),
                e.endpoint.clone(),
                e.detail.clone(),
            ]
        })
        .collect();
    output::table(
        out,
        &["NAME", "KIND", "STATE", "ENDPOINT", "DETAIL"],
        &rows,
        &[],
    )?;
    Ok(())
}

/// `virc rule ...`
#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Evaluate a rule against a product's current market and print every value it reads.
    Check {
        /// The rule: 'p60.rsi14 >= 70 and ticker.price > p60.bb_up', or JsonLogic ('{"and": [...]}').
        rule: String,
        /// Product whose market data the rule reads.
        #[arg(long)]
        product: String,
    },
}

/// Runs `virc rule ...`.
pub async fn rule(
    conn: Channel,
    cmd: RuleCommand,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let RuleCommand::Check { rule, product } = cmd;
    let syntax = if rule.trim_start().starts_with('{') {
        pb::RuleSyntax::Jsonlogic
    } else {
        pb::RuleSyntax::Infix
    };
    let r = BotsClient::new(conn)
        .check_rule(pb::CheckRuleRequest {
            rule: rule.clone(),
            syntax: syntax as i32,
            product_id: product.clone(),
        })
        .await?
        .into_inner();
    let mut vars: Vec<(String, String)> = r.variables.into_iter().collect();
    vars.sort();
    if json {
        let variables: serde_json::Map<String, Value> = vars
            .iter()
            .map(|(k, v)| {
                let v = if v == "n/a" { Value::Null } else { json!(v) };
                (k.clone(), v)
            })
            .collect();
        writeln!(
            out,
            "{}",
            json!({"rule": rule, "product_id": product, "value": r.value, "variables": variables})
        )?;
    } else {
        writeln!(
            out,
            "{} on {product}: {}",
            rule,
            if r.value { "true" } else { "false" }
        )?;
        if !vars.is_empty() {
            let rows: Vec<Vec<String>> = vars.into_iter().map(|(k, v)| vec![k, v]).collect();
            output::table(out, &["VARIABLE", "VALUE"], &rows, &[1])?;
        }
    }
    Ok(())
}
