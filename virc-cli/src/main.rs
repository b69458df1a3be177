//! `virc`: the command-line client of virc-daemon. Thin: it parses flags,
//! calls the daemon over gRPC, and prints tables or `--json`.

mod client;
mod error;
mod output;
mod record;
mod spec;
mod trade;

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::{CommandFactory, Parser, Subcommand};
use tokio_stream::StreamExt as _;
use virc_proto::v1::{
    self as pb, EventKind, events_client::EventsClient, market_client::MarketClient,
    system_client::SystemClient,
};

use crate::{client::Target, error::CliError};

/// Control the virc trading daemon: bots, orders, market data and the event stream.
#[derive(Debug, Parser)]
#[command(name = "virc", version, about, long_about = None)]
struct Cli {
    /// Daemon Unix socket. Default: $XDG_RUNTIME_DIR/virc/virc.sock, then /run/virc/virc.sock.
    #[arg(long, global = true, env = "VIRC_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Daemon TCP endpoint (host:port or http://host:port) instead of the socket.
    #[arg(
        long,
        global = true,
        env = "VIRC_ENDPOINT",
        value_name = "URL",
        conflicts_with = "socket"
    )]
    endpoint: Option<String>,
    /// API bearer token for a TCP endpoint.
    #[arg(
        long,
        global = true,
        env = "VIRC_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Print JSON (one object; one per line for streams) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the daemon's status: version, uptime, storage, listeners, event log, bots, exchanges.
    Status,
    /// Print the event log, and with -f follow it live.
    Events(EventsArgs),
    /// List the products of the daemon's market.
    Products,
    /// Show tickers: last price, 24 h change, best bid and ask.
    Ticker {
        /// Products (default: all with data).
        products: Vec<String>,
        /// Keep updating every second.
        #[arg(short, long)]
        follow: bool,
    },
    /// Show a product's rolling windows: low, high, volume, range, change, VWAP.
    Stats {
        /// Product, for example BTC-USD.
        product: String,
    },
    /// Show a product's candles with RSI and Bollinger bands.
    Candles {
        /// Product, for example BTC-USD.
        product: String,
        /// Candle period: 1m, 5m, 15m, 1h, 6h, 1d.
        #[arg(long, default_value = "1m", value_parser = parse_period)]
        period: pb::CandlePeriod,
        /// How many candles, newest last.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show a product's order book (level 2).
    Book {
        /// Product, for example BTC-USD.
        product: String,
        /// Levels per side.
        #[arg(long, default_value_t = 10)]
        depth: u32,
    },
    /// Create, list, show and control bots.
    #[command(subcommand)]
    Bot(trade::BotCommand),
    /// Place, cancel, list and show orders.
    #[command(subcommand)]
    Order(trade::OrderCommand),
    /// Show balances, holds and what each bot has reserved.
    Balances {
        /// Exchange connection (default: the daemon's default).
        #[arg(long)]
        exchange: Option<String>,
    },
    /// Show fills, newest first.
    Fills(trade::FillsArgs),
    /// List the exchange connections: kind, state, endpoint (* marks the default).
    Exchanges,
    /// Export and import the daemon's recorded trades (JSON lines, Coinbase `match` shape).
    #[command(subcommand)]
    Record(record::RecordCommand),
    /// Check a rule of the conditional bots' language against the live market.
    #[command(subcommand)]
    Rule(trade::RuleCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of `virc`, or of one command (`virc man bot`).
    #[command(hide = true)]
    Man {
        /// A command whose own page to print, like `bot` or `order`.
        command: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct EventsArgs {
    /// Keep streaming new events (like tail -f). Resumes by itself if the stream lags.
    #[arg(short, long)]
    follow: bool,
    /// Start at this sequence number (inclusive); 0 means the oldest kept. Default: the last 10 events.
    #[arg(long, value_name = "SEQ")]
    since: Option<u64>,
    /// Only events about this bot (repeatable).
    #[arg(long = "bot", value_name = "ID")]
    bots: Vec<String>,
    /// Only events about this product (repeatable).
    #[arg(long = "product", value_name = "PRODUCT")]
    products: Vec<String>,
    /// Only events of this kind (repeatable): daemon_started, daemon_stopping, bot_created, bot_status,
    /// bot_step, bot_deleted, order, fill, market_update, connection, feed_gap, warning, config_reloaded.
    #[arg(long = "kind", value_name = "KIND", value_parser = parse_kind)]
    kinds: Vec<EventKind>,
}

fn parse_kind(s: &str) -> Result<EventKind, String> {
    EventKind::from_str_name(&format!(
        "EVENT_KIND_{}",
        s.to_ascii_uppercase().replace('-', "_")
    ))
    .filter(|k| *k != EventKind::Unspecified)
    .ok_or_else(|| format!("unknown event kind `{s}`"))
}

fn parse_period(s: &str) -> Result<pb::CandlePeriod, String> {
    pb::CandlePeriod::from_str_name(&format!("CANDLE_PERIOD_{}", s.to_ascii_uppercase()))
        .filter(|p| *p != pb::CandlePeriod::Unspecified)
        .ok_or_else(|| format!("unknown period `{s}`: use 1m, 5m, 15m, 1h, 6h or 1d"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("virc: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                let obj = serde_json::json!({"error": {"kind": e.kind(), "message": e.to_string(), "exit_code": e.exit_code()}});
                eprintln!("{obj}");
            } else {
                eprintln!("virc: {e}");
            }
            (&e).into()
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let target = Target {
        socket: cli.socket,
        endpoint: cli.endpoint,
        token: cli.token,
    };
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "virc", &mut out);
            Ok(())
        }
        Command::Man { command } => {
            let cli = Cli::command();
            let page = match command {
                None => clap_mangen::Man::new(cli),
                Some(name) => clap_mangen::Man::new(
                    cli.find_subcommand(&name)
                        .cloned()
                        .ok_or_else(|| CliError::Usage(format!("no command `{name}`")))?,
                )
                .title(format!("virc-{name}")),
            };
            page.render(&mut out)?;
            Ok(())
        }
        Command::Status => {
            let mut sys = SystemClient::new(client::connect(&target).await?);
            let status = sys.status(pb::StatusRequest {}).await?.into_inner();
            if cli.json {
                writeln!(out, "{}", output::status_json(&status))?;
            } else {
                output::status_human(&mut out, &status)?;
            }
            Ok(())
        }
        Command::Events(args) => events(&target, args, cli.json, &mut out).await,
        Command::Bot(cmd) => {
            trade::bot(client::connect(&target).await?, cmd, cli.json, &mut out).await
        }
        Command::Order(cmd) => {
            trade::order(client::connect(&target).await?, cmd, cli.json, &mut out).await
        }
        Command::Balances { exchange } => {
            trade::balances(
                client::connect(&target).await?,
                exchange,
                cli.json,
                &mut out,
            )
            .await
        }
        Command::Fills(args) => {
            trade::fills(client::connect(&target).await?, args, cli.json, &mut out).await
        }
        Command::Record(cmd) => {
            record::record(client::connect(&target).await?, cmd, cli.json, &mut out).await
        }
        Command::Rule(cmd) => {
            trade::rule(client::connect(&target).await?, cmd, cli.json, &mut out).await
        }
        Command::Exchanges => {
            trade::exchanges(client::connect(&target).await?, cli.json, &mut out).await
        }
        Command::Products => {
            let mut m = MarketClient::new(client::connect(&target).await?);
            let products = m
                .products(pb::ProductsRequest::default())
                .await?
                .into_inner()
                .products;
            if cli.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::Value::Array(products.iter().map(output::product_json).collect())
                )?;
            } else {
                let rows: Vec<Vec<String>> = products
                    .iter()
                    .map(|p| {
                        vec![
                            p.id.clone(),
                            p.base_currency.clone(),
                            p.quote_currency.clone(),
                            p.quote_increment.clone(),
                            p.base_increment.clone(),
                            p.min_market_funds.clone(),
                            p.status.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &mut out,
                    &[
                        "PRODUCT",
                        "BASE",
                        "QUOTE",
                        "TICK",
                        "STEP",
                        "MIN FUNDS",
                        "STATUS",
                    ],
                    &rows,
                    &[3, 4, 5],
                )?;
            }
            Ok(())
        }
        Command::Ticker { products, follow } => {
            let mut m = MarketClient::new(client::connect(&target).await?);
            let mut last: std::collections::HashMap<String, String> =
                std::collections::HashMap::new();
            let colour = output::colour();
            loop {
                let tickers = m
                    .ticker(pb::TickerRequest {
                        product_ids: products.clone(),
                    })
                    .await?
                    .into_inner()
                    .tickers;
                if cli.json {
                    for t in &tickers {
                        writeln!(out, "{}", output::ticker_json(t))?;
                    }
                } else {
                    let rows: Vec<Vec<String>> = tickers
                        .iter()
                        .map(|t| {
                            let moved = output::movement(
                                last.get(&t.product_id).map(String::as_str),
                                &t.price,
                            );
                            last.insert(t.product_id.clone(), t.price.clone());
                            let day = output::movement(Some("0"), &t.change_24h_pct);
                            vec![
                                t.product_id.clone(),
                                output::paint(
                                    format!("{} {}", t.price, output::move_mark(moved)),
                                    moved.is_gt(),
                                    moved.is_lt(),
                                    colour,
                                ),
                                output::paint(
                                    output::signed_pct(&t.change_24h_pct),
                                    day.is_gt(),
                                    day.is_lt(),
                                    colour,
                                ),
                                output::or_dash(&t.best_bid),
                                output::or_dash(&t.best_ask),
                                output::time(t.time.as_ref()),
                            ]
                        })
                        .collect();
                    output::table(
                        &mut out,
                        &["PRODUCT", "LAST", "24H", "BID", "ASK", "TIME (EXCHANGE)"],
                        &rows,
                        &[1, 2, 3, 4],
                    )?;
                }
                out.flush()?;
                if !follow {
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
        Command::Stats { product } => {
            let mut m = MarketClient::new(client::connect(&target).await?);
            let stats = m
                .stats(pb::StatsRequest {
                    product_id: product,
                })
                .await?
                .into_inner();
            if cli.json {
                let v = serde_json::json!({"product_id": stats.product_id, "windows": stats.windows.iter().map(output::window_json).collect::<Vec<_>>()});
                writeln!(out, "{v}")?;
            } else {
                let rows: Vec<Vec<String>> = stats
                    .windows
                    .iter()
                    .map(|w| {
                        vec![
                            w.window.clone(),
                            w.low.clone(),
                            w.high.clone(),
                            w.volume.clone(),
                            w.range.clone(),
                            output::signed_pct(&w.change_pct),
                            w.vwap.clone(),
                            w.trade_count.to_string(),
                        ]
                    })
                    .collect();
                output::table(
                    &mut out,
                    &[
                        "WINDOW", "LOW", "HIGH", "VOLUME", "RANGE", "CHANGE", "VWAP", "TRADES",
                    ],
                    &rows,
                    &[1, 2, 3, 4, 5, 6, 7],
                )?;
            }
            Ok(())
        }
        Command::Candles {
            product,
            period,
            limit,
        } => {
            let mut m = MarketClient::new(client::connect(&target).await?);
            let candles = m
                .candles(pb::CandlesRequest {
                    product_id: product,
                    period: period as i32,
                    limit,
                })
                .await?
                .into_inner()
                .candles;
            if cli.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::Value::Array(candles.iter().map(output::candle_json).collect())
                )?;
            } else {
                let rows: Vec<Vec<String>> = candles
                    .iter()
                    .map(|c| {
                        let i = c.indicators.clone().unwrap_or_default();
                        vec![
                            output::time(c.start.as_ref()),
                            c.open.clone(),
                            c.high.clone(),
                            c.low.clone(),
                            c.close.clone(),
                            c.volume.clone(),
                            output::signed_pct(&c.change_pct),
                            i.rsi14,
                            i.bb_low,
                            i.bb_up,
                        ]
                    })
                    .collect();
                output::table(
                    &mut out,
                    &[
                        "START", "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME", "CHANGE", "RSI14",
                        "BB LOW", "BB UP",
                    ],
                    &rows,
                    &[1, 2, 3, 4, 5, 6, 7, 8, 9],
                )?;
            }
            Ok(())
        }
        Command::Book { product, depth } => {
            let mut m = MarketClient::new(client::connect(&target).await?);
            let book = m
                .book(pb::BookRequest {
                    product_id: product,
                    depth,
                })
                .await?
                .into_inner();
            if cli.json {
                let side = |levels: &[pb::BookLevel]| {
                    levels
                        .iter()
                        .map(|l| serde_json::json!({"price": l.price, "size": l.size}))
                        .collect::<Vec<_>>()
                };
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"product_id": book.product_id, "bids": side(&book.bids), "asks": side(&book.asks)})
                )?;
            } else if book.bids.is_empty() && book.asks.is_empty() {
                writeln!(
                    out,
                    "{}: no order book (the market's feed carries trades only)",
                    book.product_id
                )?;
            } else {
                let n = book.bids.len().max(book.asks.len());
                let cell =
                    |levels: &[pb::BookLevel], i: usize, f: fn(&pb::BookLevel) -> &String| {
                        levels.get(i).map(|l| f(l).clone()).unwrap_or_default()
                    };
                let rows: Vec<Vec<String>> = (0..n)
                    .map(|i| {
                        vec![
                            cell(&book.bids, i, |l| &l.size),
                            cell(&book.bids, i, |l| &l.price),
                            cell(&book.asks, i, |l| &l.price),
                            cell(&book.asks, i, |l| &l.size),
                        ]
                    })
                    .collect();
                output::table(
                    &mut out,
                    &["BID SIZE", "BID", "ASK", "ASK SIZE"],
                    &rows,
                    &[0, 1, 2, 3],
                )?;
            }
            Ok(())
        }
    }
}

async fn events(
    target: &Target,
    args: EventsArgs,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let conn = client::connect(target).await?;
    let mut from = match args.since {
        Some(n) => n,
        None => {
            let status = SystemClient::new(conn.clone())
                .status(pb::StatusRequest {})
                .await?
                .into_inner();
            status.event_head.saturating_sub(9).max(status.event_tail)
        }
    };
    let mut client = EventsClient::new(conn);
    loop {
        let request = pb::SubscribeRequest {
            from_seq: Some(from),
            bot_ids: args.bots.clone(),
            product_ids: args.products.clone(),
            kinds: args.kinds.iter().map(|k| *k as i32).collect(),
            stop_at_head: !args.follow,
        };
        let mut stream = client.subscribe(request).await?.into_inner();
        let ended = loop {
            match stream.next().await {
                None => break None,
                Some(Ok(event)) => {
                    from = event.seq + 1;
                    if json {
                        writeln!(out, "{}", output::event_json(&event))?;
                    } else {
                        writeln!(out, "{}", output::event_line(&event))?;
                    }
                    out.flush()?;
                }
                Some(Err(status)) => break Some(status),
            }
        };
        match ended {
            None if !args.follow => return Ok(()),
            None => {
                return Err(CliError::Rpc(tonic::Status::unavailable(format!(
                    "the daemon ended the stream; resume with --since {from}"
                ))));
            }
            // A lagged follower catches up from the log by itself; the cursor is exact.
            Some(s) if s.code() == tonic::Code::ResourceExhausted && args.follow => {}
            Some(s) => return Err(CliError::Rpc(s)),
        }
    }
}
