//! `virc-daemon`: loads the config, starts logging, binds the listeners and
//! calls [`virc_daemon::run`].

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Parser;
use virc_daemon::{
    Listener,
    config::{Config, Credentials, LogFormat, LogLevel, MarketSource},
};

/// The virc trading daemon: exchange connections, simulated matching, bots, and the gRPC API that `virc` drives.
#[derive(Debug, Clone, Parser)]
#[command(name = "virc-daemon", version, about, long_about = None)]
struct Args {
    /// Config file (TOML). Default: $VIRC_CONFIG, ~/.config/virc/virc.toml, /etc/virc/virc.toml, else built-in defaults.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Data directory (store and lock). Overrides daemon.data_dir.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Unix socket to listen on. Overrides daemon.socket.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Also listen on TCP (bearer token required). Overrides daemon.tcp.
    #[arg(long, value_name = "ADDR")]
    tcp: Option<SocketAddr>,
    /// Credentials file (mode 0600). Overrides daemon.credentials_file.
    #[arg(long, value_name = "PATH")]
    credentials: Option<PathBuf>,
    /// Log level. Overrides daemon.log_level; RUST_LOG overrides both.
    #[arg(long, value_enum)]
    log_level: Option<LogLevel>,
    /// Log format: human lines or JSON for journald/ingest. Overrides daemon.log_format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Paper-trade on the bundled market (real BTC-USD trades of 2016-05-12, looping) with a
    /// demo range bot, at 2016's fees (maker 0 %, taker 0.25 %) unless [exchanges.paper] sets them.
    #[arg(long, conflicts_with = "replay")]
    demo: bool,
    /// Replay a recorded Coinbase WebSocket feed (JSON lines) as the market.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Paper-trade on Coinbase's live public market (no API key; needs the network),
    /// following these products (comma-separated, like BTC-USD,ETH-USD).
    #[arg(long, value_name = "PRODUCTS", value_delimiter = ',', conflicts_with_all = ["replay", "demo"])]
    live_market: Option<Vec<String>>,
    /// Replay pace: 1x, 60x, ... or max. Overrides market.speed.
    #[arg(long, value_name = "SPEED")]
    replay_speed: Option<String>,
    /// Validate the config and credentials, print a summary, and exit.
    #[arg(long)]
    check_config: bool,
    /// Check a Coinbase connection's credentials (Coinbase's clock, then a
    /// signed GET /accounts), print what it found, and exit.
    #[arg(long, value_name = "NAME")]
    check_exchange: Option<String>,
    /// Run a Coinbase Exchange emulator on loopback instead of the daemon
    /// (REST on PORT, WebSocket on PORT+1, a seeded synthetic BTC-USD
    /// market), and print the config and credentials that point a daemon
    /// at it.
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "8081")]
    emulate: Option<u16>,
    /// Print the man page (roff) and exit.
    #[arg(long, hide = true)]
    man: bool,
}

/// The async runtime from `builder`, or `None` after saying why it cannot start.
fn async_runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|e| eprintln!("virc-daemon: cannot start the async runtime: {e}"))
        .ok()
}

/// `--check-exchange NAME`: the config is read without starting anything,
/// so a `coinbase` connection can be checked before the daemon trades on it.
fn check_exchange(args: &Args, name: &str) -> ExitCode {
    let loaded = Config::load(args.config.as_deref())
        .map_err(|e| format!("{e:#}"))
        .and_then(|c| {
            let path = args
                .credentials
                .as_deref()
                .or(c.daemon.credentials_file.as_deref());
            Credentials::load(path)
                .map(|cr| (c, cr))
                .map_err(|e| format!("{e:#}"))
        });
    let (config, credentials) = match loaded {
        Ok(x) => x,
        Err(e) => {
            eprintln!("virc-daemon: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(runtime) = async_runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(virc_daemon::exchange::coinbase::check(
        &config,
        &credentials,
        name,
    )) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("virc-daemon: exchange {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The emulator's made-up account (not a secret: it opens nothing but the emulator).
const EMULATOR_KEY: &str = "emulator-key";
const EMULATOR_SECRET: &str = "dmlyYyBlbXVsYXRvciBzZWNyZXQ=";
const EMULATOR_PASSPHRASE: &str = "emulator";

/// `--emulate [PORT]`: the Coinbase emulator until Ctrl-C.
fn emulate(port: u16) -> ExitCode {
    use rust_decimal::Decimal;
    use virc_daemon::{config::Secret, emulator};
    let Some(runtime) = async_runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    let ws_port = port.saturating_add(1);
    let config = emulator::EmulatorConfig {
        products_json: virc_daemon::market::DEMO_PRODUCTS.to_owned(),
        rates: virc_core::ledger::FeeRates {
            maker: Decimal::new(4, 3),
            taker: Decimal::new(6, 3),
        },
        accounts: vec![emulator::Account {
            user: virc_core::matcher::UserId(1),
            profile_id: "emulator-profile".into(),
            key: EMULATOR_KEY.into(),
            secret: Secret::new(EMULATOR_SECRET),
            passphrase: Secret::new(EMULATOR_PASSPHRASE),
            funds: vec![
                ("USD".into(), Decimal::from(100_000)),
                ("BTC".into(), Decimal::from(10)),
            ],
        }],
        limits: emulator::Limits::default(),
        driver: Some(emulator::driver::DriverConfig {
            seed: 1,
            interval: std::time::Duration::from_millis(250),
            start: [("BTC-USD".to_owned(), Decimal::from(450))].into(),
            levels: 5,
            size: Decimal::new(5, 1),
            volatility: Decimal::new(5, 4),
        }),
        rest_addr: SocketAddr::from(([127, 0, 0, 1], port)),
        ws_addr: SocketAddr::from(([127, 0, 0, 1], ws_port)),
    };
    runtime.block_on(async move {
        let stop = tokio_util::sync::CancellationToken::new();
        let clock = std::sync::Arc::new(virc_daemon::clock::SystemClock);
        let em = match emulator::Emulator::start(config, clock, stop.clone()).await {
            Ok(em) => em,
            Err(e) => {
                eprintln!("virc-daemon: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!(
            "Coinbase Exchange emulator: REST {rest}, WebSocket {ws} (BTC-USD, synthetic market, seed 1)\n\n\
             # virc.toml\n[market]\nsource = \"coinbase\"\nfeed_url = \"{ws}\"\nrest_url = \"{rest}\"\nproducts = [\"BTC-USD\"]\n\n\
             [exchanges]\ndefault = \"emulator\"\n\n[exchanges.emulator]\nkind = \"coinbase\"\nrest_url = \"{rest}\"\nws_url = \"{ws}\"\n\n\
             # credentials.toml (chmod 600): the emulator's own made-up account\n\
             [exchanges.emulator]\nkey = \"{EMULATOR_KEY}\"\nsecret = \"{EMULATOR_SECRET}\"\npassphrase = \"{EMULATOR_PASSPHRASE}\"\n",
            rest = em.rest_url,
            ws = em.ws_url,
        );
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
        ExitCode::SUCCESS
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.man {
        let page = clap_mangen::Man::new(<Args as clap::CommandFactory>::command());
        return match page.render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("virc-daemon: cannot write the man page: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(name) = &args.check_exchange {
        return check_exchange(&args, name);
    }
    if let Some(port) = args.emulate {
        return emulate(port);
    }
    match load(&args) {
        Ok((config, credentials)) if args.check_config => {
            println!(
                "config ok: {}",
                config
                    .source
                    .as_ref()
                    .map_or_else(|| "built-in defaults".into(), |p| p.display().to_string())
            );
            println!("data dir:  {}", config.data_dir().display());
            println!("socket:    {}", config.socket().display());
            if config.market.source == MarketSource::Coinbase {
                println!(
                    "market:    Coinbase live feed {} ({})",
                    config.market.feed_url,
                    config.market.products.join(", ")
                );
            } else {
                println!(
                    "market:    {:?} at {}",
                    config.market.source, config.market.speed
                );
            }
            println!(
                "recorder:  {} (mode {:?}, retention {:?}, backfill {:?})",
                if config.recording() { "on" } else { "off" },
                config.recorder.mode,
                config.recorder.retention.0,
                config.recorder.backfill.0
            );
            for (name, x) in &config.exchanges.named {
                println!(
                    "exchange:  {name} ({:?}{})",
                    x.kind,
                    if *name == config.exchanges.default {
                        ", default"
                    } else {
                        ""
                    }
                );
            }
            if let Some(tcp) = config.daemon.tcp {
                println!(
                    "tcp:       {tcp} (token {})",
                    if credentials.api_token.is_some() {
                        "set"
                    } else {
                        "missing"
                    }
                );
            }
            ExitCode::SUCCESS
        }
        Ok((config, credentials)) => {
            let set_log_level = init_tracing(&config);
            let again = args.clone();
            let reloader = virc_daemon::Reloader {
                load: Box::new(move || load(&again).map(|(c, _)| c).map_err(|e| format!("{e:#}"))),
                set_log_level,
            };
            let Some(runtime) = async_runtime(tokio::runtime::Builder::new_multi_thread()) else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(serve(config, credentials, reloader)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "virc-daemon failed");
                    eprintln!("virc-daemon: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("virc-daemon: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(args: &Args) -> anyhow::Result<(Config, Credentials)> {
    let mut config = Config::load(args.config.as_deref())?;
    let d = &mut config.daemon;
    if let Some(v) = &args.data_dir {
        d.data_dir = Some(v.clone());
    }
    if let Some(v) = &args.socket {
        d.socket = Some(v.clone());
    }
    if let Some(v) = args.tcp {
        d.tcp = Some(v);
    }
    if let Some(v) = &args.credentials {
        d.credentials_file = Some(v.clone());
    }
    if let Some(v) = args.log_level {
        d.log_level = v;
    }
    if let Some(v) = args.log_format {
        d.log_format = v;
    }
    if args.demo {
        config.market.source = MarketSource::Demo;
        config.demo_bot = true;
        if let Some(paper) = config.exchanges.named.get_mut("paper")
            && paper.maker_fee == "0.004"
            && paper.taker_fee == "0.006"
        {
            // The bundled market is of 2016, when GDAX charged 0 % maker and
            // 0.25 % taker: replaying it faithfully means its fees too.
            "0".clone_into(&mut paper.maker_fee);
            "0.0025".clone_into(&mut paper.taker_fee);
        }
    }
    if let Some(file) = &args.replay {
        config.market.source = MarketSource::Replay;
        config.market.replay_file = Some(file.clone());
    }
    if let Some(products) = &args.live_market {
        config.market.source = MarketSource::Coinbase;
        config.market.products.clone_from(products);
    }
    if let Some(speed) = &args.replay_speed {
        config.market.speed.clone_from(speed);
    }
    let credentials = Credentials::load(config.daemon.credentials_file.as_deref())?;
    config.validate(&credentials)?;
    Ok((config, credentials))
}

use virc_daemon::server::SetLogLevel as SetLevel;

fn init_tracing(config: &Config) -> SetLevel {
    use tracing_subscriber::EnvFilter;
    let from_env = EnvFilter::try_from_default_env().ok();
    let pinned = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(config.daemon.log_level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    macro_rules! setter {
        ($handle:expr) => {{
            let handle = $handle;
            Box::new(move |level: &str| {
                if pinned {
                    return Err("RUST_LOG is set and takes precedence".into());
                }
                handle
                    .reload(EnvFilter::new(level))
                    .map_err(|e| e.to_string())
            })
        }};
    }
    match config.daemon.log_format {
        LogFormat::Human => {
            let builder = builder.with_filter_reloading();
            let set: SetLevel = setter!(builder.reload_handle());
            builder.init();
            set
        }
        LogFormat::Json => {
            let builder = builder.json().flatten_event(true).with_filter_reloading();
            let set: SetLevel = setter!(builder.reload_handle());
            builder.init();
            set
        }
    }
}

async fn serve(
    config: Config,
    credentials: Credentials,
    reloader: virc_daemon::Reloader,
) -> anyhow::Result<()> {
    // Handlers go in before the socket exists, so a SIGTERM that follows a
    // successful connect always takes the graceful path.
    let shutdown = shutdown_signal();
    let mut listeners = vec![
        Listener::bind_unix(&config.socket())
            .await
            .context("failed to bind the gRPC socket")?,
    ];
    if let Some(addr) = config.daemon.tcp {
        listeners.push(
            Listener::bind_tcp(addr)
                .await
                .context("failed to bind the TCP listener")?,
        );
    }
    virc_daemon::run_with_reload(config, credentials, listeners, shutdown, Some(reloader)).await?;
    Ok(())
}

/// Installs SIGINT/SIGTERM handlers now; the future resolves with the
/// signal's name.
fn shutdown_signal() -> impl Future<Output = String> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (mut term, mut int) = match handlers {
            (Ok(t), Ok(i)) => (t, i),
            (t, i) => {
                tracing::error!(
                    term = t.is_ok(),
                    int = i.is_ok(),
                    "Cannot install signal handlers; stop the daemon with System.Shutdown"
                );
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM".into(),
            _ = int.recv() => "SIGINT".into(),
        }
    }
}
