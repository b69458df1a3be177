//! `run`: wires storage, the event bus and the gRPC services together, serves
//! them on the given listeners, and shuts down in stages.
//!
//! # Shutdown stages
//! 1. A `daemon_stopping` event is published and `grpc.health.v1` turns
//!    NOT_SERVING.
//! 2. The stop token is cancelled: servers stop accepting, event streams end
//!    with `UNAVAILABLE "daemon shutting down; resume from sequence N"`.
//! 3. Servers and actors are awaited up to `daemon.shutdown_grace`, then aborted.
//! 4. The store is flushed last, because everything above may still write.

use std::{
    os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use tokio::{
    net::{TcpListener, UnixListener},
    task::JoinSet,
};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Status, transport::Server};
use virc_proto::v1::{
    self as pb, account_server::AccountServer, bots_server::BotsServer, event::Payload,
    events_server::EventsServer, market_server::MarketServer, orders_server::OrdersServer,
    system_server::SystemServer,
};

use crate::{
    api::{
        BotsService, EventsService, MarketService, OrdersService, SystemService, system::DaemonInfo,
    },
    clock::{Clock, SystemClock},
    config::{COINBASE_REST, COINBASE_WS, Config, Credentials, ExchangeKind, MarketSource},
    events::{Draft, EventBus, EventsHandle},
    exchange::{
        Connector,
        coinbase::{
            http::{
                client::RestClient,
                limiter::{Class, RateLimits},
                signer::Signer,
            },
            venue::CoinbaseExchange,
            ws::{
                client::{FeedConfig, FeedStats, run as feed_run},
                user::{UserFeedConfig, run as user_feed},
            },
        },
        sim::SimExchange,
    },
    market::{DEMO_FEED, DEMO_PRODUCTS, MarketActor, MarketHandle, load_recording, replay},
    recorder::{Recorder, Retention, TradeLog},
    runtime::{Runtime, RuntimeHandle, Venue},
    store::{Store, StoreError},
};
use std::{collections::BTreeMap, time::Duration};
use virc_core::{ids::ProductId, product::Catalogue};

/// Why the daemon could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Storage could not be opened or flushed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listener could not be set up.
    #[error("{0}")]
    Listen(String),
    /// The configuration does not fit together.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Serve(String),
}

/// A bound listening socket for the gRPC API.
#[derive(Debug)]
pub enum Listener {
    /// A Unix socket (the default), removed again on shutdown.
    Unix {
        /// The bound socket.
        listener: UnixListener,
        /// Its path.
        path: PathBuf,
    },
    /// A TCP socket; every call must carry the API bearer token.
    Tcp(TcpListener),
}

impl Listener {
    /// Binds a Unix socket at `path` with mode 0660, creating its directory
    /// (mode 0750) if needed. A stale socket file left by a crashed daemon is
    /// replaced; a live one is an error.
    pub async fn bind_unix(path: &Path) -> Result<Self, DaemonError> {
        let err = |what: &str, e: std::io::Error| {
            DaemonError::Listen(format!("cannot {what} {}: {e}", path.display()))
        };
        if let Some(parent) = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && !p.exists())
        {
            {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o750)
                    .create(parent)
                    .map_err(|e| err("create the directory of socket", e))?;
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if tokio::net::UnixStream::connect(path).await.is_ok() {
                    return Err(DaemonError::Listen(format!(
                        "another daemon is already listening on {}; stop it first, or set --socket to another path",
                        path.display()
                    )));
                }
                std::fs::remove_file(path).map_err(|e| err("remove the stale socket", e))?;
            }
            Ok(_) => {
                return Err(DaemonError::Listen(format!(
                    "{} exists and is not a socket; remove it or choose another --socket",
                    path.display()
                )));
            }
            Err(_) => {}
        }
        let listener = UnixListener::bind(path).map_err(|e| err("listen on", e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| err("set the mode of", e))?;
        Ok(Self::Unix {
            listener,
            path: path.to_owned(),
        })
    }

    /// Binds a TCP socket.
    pub async fn bind_tcp(addr: std::net::SocketAddr) -> Result<Self, DaemonError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| DaemonError::Listen(format!("cannot listen on tcp {addr}: {e}")))?;
        Ok(Self::Tcp(listener))
    }

    /// The address as `Status` reports it: "unix:PATH" or "tcp:ADDR".
    pub fn describe(&self) -> String {
        match self {
            Self::Unix { path, .. } => format!("unix:{}", path.display()),
            Self::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp:?".into(), |a| format!("tcp:{a}")),
        }
    }
}

/// Runs the daemon until `shutdown` resolves (or `System.Shutdown` is
/// called), then shuts down in stages. Tests call this with their own
/// listeners and shutdown future.
pub async fn run(
    config: Config,
    credentials: Credentials,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = String> + Send + 'static,
) -> Result<(), DaemonError> {
    run_with_reload(config, credentials, listeners, shutdown, None).await
}

/// Sets the running process's log level ("debug"), or says why it cannot.
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// How the daemon re-reads its configuration on SIGHUP: the binary knows
/// where the config came from and which command-line flags override it.
pub struct Reloader {
    /// Loads and validates the configuration again, flags applied.
    pub load: Box<dyn Fn() -> Result<Config, String> + Send + Sync>,
    /// Sets the log level filter of the running process.
    pub set_log_level: SetLogLevel,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

/// On each SIGHUP: reload the config, apply what can change live (the log
/// level), and report the rest as needing a restart, in a `config_reloaded`
/// event. A config that no longer loads changes nothing and says why.
async fn reload_on_hup(
    reloader: Reloader,
    mut current: Config,
    events: EventsHandle,
    stop: CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("Cannot listen for SIGHUP; config reload is unavailable");
        return;
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            Some(()) = hup.recv() => {}
        }
        let new = match (reloader.load)() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: the config does not load; nothing changed");
                events
                    .emit(Draft::new(Payload::Warning(pb::Warning {
                        source: "config".into(),
                        message: format!("reload refused, nothing changed: {e}"),
                    })))
                    .await;
                continue;
            }
        };
        let mut applied = Vec::new();
        let mut needs_restart = Vec::new();
        if new.daemon.log_level != current.daemon.log_level {
            match (reloader.set_log_level)(new.daemon.log_level.as_str()) {
                Ok(()) => applied.push(format!(
                    "daemon.log_level = {}",
                    new.daemon.log_level.as_str()
                )),
                Err(e) => needs_restart.push(format!("daemon.log_level ({e})")),
            }
        }
        let changed =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        let mut daemon_rest = new.daemon.clone();
        daemon_rest.log_level = current.daemon.log_level;
        if changed(&daemon_rest, &current.daemon) {
            needs_restart.push("daemon (storage, listeners, log format, credentials)".into());
        }
        let (old_ev, new_ev) = (&current.events, &new.events);
        if new_ev.max_events != old_ev.max_events || new_ev.max_age.0 != old_ev.max_age.0 {
            match events
                .set_retention(new_ev.max_events, new_ev.max_age)
                .await
            {
                Ok(()) => applied.push(format!(
                    "events.max_events = {}, events.max_age = {:?}",
                    new_ev.max_events.0, new_ev.max_age.0
                )),
                Err(e) => needs_restart.push(format!("events retention ({e})")),
            }
        }
        let mut events_rest = new_ev.clone();
        events_rest.max_events = old_ev.max_events;
        events_rest.max_age = old_ev.max_age;
        if changed(&events_rest, old_ev) {
            needs_restart.push("events (fsync, subscriber_buffer)".into());
        }
        if changed(&new.market, &current.market) {
            needs_restart.push("market".into());
        }
        if changed(&new.exchanges, &current.exchanges) {
            needs_restart.push("exchanges".into());
        }
        if changed(&new.recorder, &current.recorder) {
            needs_restart.push("recorder".into());
        }
        tracing::info!(applied = ?applied, needs_restart = ?needs_restart, "SIGHUP: config reloaded");
        events
            .emit(Draft::new(Payload::ConfigReloaded(pb::ConfigReloaded {
                applied,
                needs_restart,
            })))
            .await;
        current = new;
    }
}

/// [`run`], with a [`Reloader`] for SIGHUP.
pub async fn run_with_reload(
    config: Config,
    credentials: Credentials,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = String> + Send + 'static,
    reloader: Option<Reloader>,
) -> Result<(), DaemonError> {
    config.validate(&credentials)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let data_dir = config.data_dir();
    let store = {
        let dir = data_dir.clone();
        tokio::task::spawn_blocking(move || Store::open(&dir))
            .await
            .map_err(|e| DaemonError::Listen(format!("store opener failed: {e}")))??
    };
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();

    let (bus, events) = EventBus::new(
        store.events(),
        config.events.clone(),
        clock.clone(),
        stop.clone(),
    )?;
    tasks.spawn(bus.run(stop.clone()));

    let catalogue = load_catalogue(&config, &clock).await?;
    let runtime = start_runtime(
        &config,
        &credentials,
        &catalogue,
        &store,
        &events,
        &clock,
        &stop,
        &mut tasks,
    )?;
    let market = start_market(
        &config, catalogue, &store, &events, &runtime, &stop, &mut tasks,
    )?;
    if config.demo_bot {
        tasks.spawn(demo_bot(runtime.clone()));
    }

    let info = DaemonInfo {
        started_at: clock.now(),
        started: Instant::now(),
        data_dir: data_dir.clone(),
        listeners: listeners.iter().map(Listener::describe).collect(),
    };
    if let Some(r) = reloader {
        tasks.spawn(reload_on_hup(
            r,
            config.clone(),
            events.clone(),
            stop.clone(),
        ));
    }
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<String>();
    let system = SystemService::new(
        info.clone(),
        events.clone(),
        shutdown_tx,
        stop.clone(),
        runtime.clone(),
    );
    let events_service = EventsService::new(events.clone());

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<SystemServer<SystemService>>().await;
    health.set_serving::<EventsServer<EventsService>>().await;
    health.set_serving::<MarketServer<MarketService>>().await;
    health.set_serving::<BotsServer<BotsService>>().await;
    health.set_serving::<OrdersServer<OrdersService>>().await;
    health.set_serving::<AccountServer<OrdersService>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(virc_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| DaemonError::Serve(format!("reflection: {e}")))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(virc_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| DaemonError::Serve(format!("reflection: {e}")))?;

    // Recorded before the first call can arrive, so every client sees it.
    let started = pb::DaemonStarted {
        version: env!("CARGO_PKG_VERSION").into(),
        data_dir: data_dir.display().to_string(),
    };
    if let Err(e) = events
        .publish(Draft::new(Payload::DaemonStarted(started)))
        .await
    {
        tracing::warn!(error = %e, "Cannot record daemon_started");
    }
    let mut servers = JoinSet::new();
    let mut socket_paths = Vec::new();
    let mut routes = tonic::service::RoutesBuilder::default();
    routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(SystemServer::new(system))
        .add_service(EventsServer::new(events_service))
        .add_service(MarketServer::new(MarketService::new(market)))
        .add_service(BotsServer::new(BotsService::new(runtime.clone())))
        .add_service(OrdersServer::new(OrdersService::new(runtime.clone())))
        .add_service(AccountServer::new(OrdersService::new(runtime)));
    let routes = routes.routes();
    for listener in listeners {
        let until = stop.clone().cancelled_owned();
        match listener {
            Listener::Unix { listener, path } => {
                tracing::info!(socket = %path.display(), "Listening");
                socket_paths.push(path);
                let r = windows(Server::builder()).add_routes(routes.clone());
                servers.spawn(async move {
                    r.serve_with_incoming_shutdown(UnixListenerStream::new(listener), until)
                        .await
                });
            }
            Listener::Tcp(listener) => {
                tracing::info!(addr = ?listener.local_addr().ok(), "Listening on TCP (bearer token required)");
                let creds = credentials.clone();
                let auth = move |req: Request<()>| check_token(&creds, &req).map(|()| req);
                let r = windows(Server::builder())
                    .layer(tonic::service::InterceptorLayer::new(auth))
                    .add_routes(routes.clone());
                servers.spawn(async move {
                    r.serve_with_incoming_shutdown(TcpListenerStream::new(listener), until)
                        .await
                });
            }
        }
    }

    tracing::info!(data_dir = %data_dir.display(), version = env!("CARGO_PKG_VERSION"), "virc-daemon ready");
    let notifier = crate::notify::Notifier::from_env().map(std::sync::Arc::new);
    if let Some(n) = &notifier {
        if let Err(e) = n.send(&format!(
            "READY=1\nSTATUS=Serving on {}\nMAINPID={}",
            info.listeners.join(", "),
            std::process::id()
        )) {
            tracing::warn!(error = %e, "Cannot send READY=1 to systemd");
        }
        if let Some(every) = crate::notify::watchdog_interval() {
            let (n, events, stop) = (n.clone(), events.clone(), stop.clone());
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        _ = tick.tick() => {
                            // Only a daemon whose event bus still answers is alive.
                            if events.bounds().await.is_ok() {
                                let _ = n.send("WATCHDOG=1");
                            }
                        }
                    }
                }
            });
        }
    }

    let reason = tokio::select! {
        reason = shutdown => reason,
        Ok(reason) = shutdown_rx => reason,
        Some(res) = servers.join_next() => {
            let why = match res {
                Ok(Ok(())) => "a server stopped unexpectedly".to_owned(),
                Ok(Err(e)) => format!("a server failed: {e}"),
                Err(e) => format!("a server task failed: {e}"),
            };
            tracing::error!(reason = %why, "Shutting down");
            why
        }
    };
    tracing::info!(%reason, "Shutting down");
    if let Some(n) = &notifier {
        let _ = n.send("STOPPING=1");
    }
    events
        .emit(Draft::new(Payload::DaemonStopping(pb::DaemonStopping {
            reason,
        })))
        .await;
    health
        .set_not_serving::<SystemServer<SystemService>>()
        .await;
    health
        .set_not_serving::<EventsServer<EventsService>>()
        .await;
    stop.cancel();

    let grace = config.daemon.shutdown_grace.0;
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => {
                tracing::warn!("Tasks still running after the grace period; aborting them");
                servers.abort_all();
                tasks.abort_all();
                break;
            }
            next = async {
                match servers.join_next().await {
                    Some(r) => Some(r.map(|_| ())),
                    None => tasks.join_next().await,
                }
            } => if next.is_none() { break },
        }
    }
    store.flush().await?;
    for path in socket_paths {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("Stopped");
    Ok(())
}

/// The products the market and the simulated exchanges know.
async fn load_catalogue(config: &Config, clock: &Arc<dyn Clock>) -> Result<Catalogue, DaemonError> {
    let m = &config.market;
    let products_text = match &m.products_file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            DaemonError::Listen(format!(
                "cannot read market.products_file {}: {e}",
                path.display()
            ))
        })?,
        // The live market: Coinbase's own list.
        None if m.source == MarketSource::Coinbase => {
            let rest = RestClient::new(
                &m.rest_url,
                None,
                RateLimits::default(),
                Duration::from_secs(10),
                clock.clone(),
            )
            .map_err(|e| DaemonError::Listen(e.to_string()))?;
            rest.get::<serde_json::Value>("/products", Class::Public)
                .await
                .map_err(|e| {
                    DaemonError::Listen(format!(
                        "cannot read the product list from {}/products: {e}; set market.products_file to a saved copy to start without it",
                        m.rest_url
                    ))
                })?
                .to_string()
        }
        None => DEMO_PRODUCTS.to_owned(),
    };
    Catalogue::from_json(&products_text)
        .map_err(|e| DaemonError::Listen(format!("market.products_file: {e}")))
}

/// Opens the configured exchanges and starts the bot runtime over them,
/// with the `user` feed of each Coinbase connection.
#[expect(clippy::too_many_arguments, reason = "the daemon's parts, wired once")]
fn start_runtime(
    config: &Config,
    credentials: &Credentials,
    catalogue: &Catalogue,
    store: &Store,
    events: &EventsHandle,
    clock: &Arc<dyn Clock>,
    stop: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<RuntimeHandle, DaemonError> {
    let endpoint = match config.market.source {
        MarketSource::Demo => "demo market (bundled BTC-USD 2016-05-12)".to_owned(),
        MarketSource::Replay => format!(
            "replay of {}",
            config
                .market
                .replay_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
        MarketSource::None => "no market data".to_owned(),
        MarketSource::Coinbase => format!("Coinbase live feed ({})", config.market.feed_url),
    };
    let mut venues = BTreeMap::new();
    let mut feeds = Vec::new();
    for (name, x) in &config.exchanges.named {
        match x.kind {
            ExchangeKind::Sim => {
                let (wallet, rates) = x.sim_terms(name)?;
                let exchange = SimExchange::open(name, catalogue.clone(), rates, &wallet, store)?;
                venues.insert(
                    name.clone(),
                    Venue {
                        exchange: Connector::Sim(exchange),
                        endpoint: endpoint.clone(),
                    },
                );
            }
            ExchangeKind::Coinbase => {
                let creds = credentials.exchanges.get(name).ok_or_else(|| {
                    DaemonError::Listen(format!("exchanges.{name}: no credentials"))
                })?;
                let signer = Signer::new(creds)
                    .map_err(|e| DaemonError::Listen(format!("credentials for `{name}`: {e}")))?;
                let rest_url = x
                    .rest_url
                    .clone()
                    .unwrap_or_else(|| COINBASE_REST.to_owned());
                let rest = RestClient::new(
                    &rest_url,
                    Some(signer),
                    RateLimits::default(),
                    Duration::from_secs(10),
                    clock.clone(),
                )
                .map_err(|e| DaemonError::Listen(e.to_string()))?;
                let (_, rates) = x.sim_terms(name)?;
                let exchange =
                    CoinbaseExchange::open(name, rest.clone(), catalogue.clone(), rates, store)?;
                let ws_url = x.ws_url.clone().unwrap_or_else(|| COINBASE_WS.to_owned());
                venues.insert(
                    name.clone(),
                    Venue {
                        exchange: Connector::Coinbase(exchange),
                        endpoint: format!("{rest_url} + {ws_url}"),
                    },
                );
                let products = if x.products.is_empty() {
                    config.market.products.clone()
                } else {
                    x.products.clone()
                };
                feeds.push((
                    name.clone(),
                    rest,
                    UserFeedConfig {
                        url: ws_url,
                        products,
                        stall: config.market.stall.0,
                        max_backoff: Duration::from_secs(30),
                        poll: x.poll.0,
                    },
                ));
            }
        }
    }
    let (runtime, handle) = Runtime::new(
        venues,
        config.exchanges.default.clone(),
        store.clone(),
        events.clone(),
        clock.clone(),
    )?;
    tasks.spawn(runtime.run(stop.clone()));
    for (name, rest, feed) in feeds {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        tasks.spawn(user_feed(feed, rest, tx, stop.clone()));
        let handle = handle.clone();
        tasks.spawn(async move {
            while let Some(signal) = rx.recv().await {
                handle.venue_signal(name.clone(), signal).await;
            }
        });
    }
    Ok(handle)
}

/// Starts the market actor and, per `market.source`, the replay that feeds it.
/// Recorded trades are read back this many at a time.
const BACKFILL_CHUNK: usize = 50_000;

fn start_market(
    config: &Config,
    catalogue: Catalogue,
    store: &Store,
    events: &EventsHandle,
    runtime: &RuntimeHandle,
    stop: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<MarketHandle, DaemonError> {
    let m = &config.market;
    let (mut actor, market) = MarketActor::new(catalogue, events.clone(), m.update_interval.0);
    let log = TradeLog::open(store)?;
    let market = market.with_trades(log.clone());
    // Recorded history first: candles, windows and the bots' view of the
    // market are rebuilt before the first live trade.
    let mut history = Vec::new();
    let mut resume = BTreeMap::new();
    if config.recording() {
        let r = &config.recorder;
        let retention = Retention {
            default: r.retention.0,
            by_product: r
                .retention_by_product
                .iter()
                .map(|(p, d)| (p.clone(), d.0))
                .collect(),
        };
        actor = actor.with_recorder(Recorder::new(log.clone(), retention));
        let span = i64::try_from(r.backfill.0.as_nanos()).unwrap_or(i64::MAX);
        for product in log.products()? {
            let Some((last, _)) = log.last(&product)? else {
                continue;
            };
            let from = last.time.saturating_sub(span);
            let mut n = 0;
            log.scan(&product, from, BACKFILL_CHUNK, |chunk| {
                n += actor.backfill(&product, &chunk);
            })?;
            tracing::info!(product, trades = n, "Market rebuilt from recorded trades");
            if let Ok(id) = ProductId::parse(&product) {
                resume.insert(id, last.trade_id);
            }
            history.push((product, from));
        }
    }
    tasks.spawn(actor.with_runtime(runtime.clone()).run(stop.clone()));
    let mut live = None;
    let recording = match m.source {
        MarketSource::Coinbase => {
            tracing::info!(url = %m.feed_url, products = ?m.products, "Market: Coinbase's live public feed (market.source = \"coinbase\")");
            let rest = RestClient::new(
                &m.rest_url,
                None,
                RateLimits::default(),
                Duration::from_secs(10),
                Arc::new(SystemClock),
            )
            .map_err(|e| DaemonError::Listen(e.to_string()))?;
            let feed = FeedConfig {
                url: m.feed_url.clone(),
                products: m.products.clone(),
                channels: m.channels.clone(),
                stall: m.stall.0,
                max_backoff: Duration::from_secs(30),
                rest: Some(rest),
                events: Some(events.clone()),
            };
            live = Some(feed);
            None
        }
        MarketSource::None => {
            tracing::info!("No market data (market.source = \"none\")");
            None
        }
        MarketSource::Demo => {
            tracing::info!(
                "Paper market: replaying the bundled BTC-USD recording of 2016-05-12 in a loop (market.source = \"demo\"; no network, no keys)"
            );
            Some(DEMO_FEED.to_owned())
        }
        MarketSource::Replay => {
            let path = m
                .replay_file
                .as_deref()
                .unwrap_or_else(|| std::path::Path::new(""));
            Some(std::fs::read_to_string(path).map_err(|e| {
                DaemonError::Listen(format!(
                    "cannot read market.replay_file {}: {e}",
                    path.display()
                ))
            })?)
        }
    };
    let speed = m
        .speed
        .parse()
        .map_err(|e: String| DaemonError::Listen(e))?;
    let inputs = recording.map(|text| {
        let (inputs, malformed) = load_recording(&text);
        if malformed > 0 {
            tracing::warn!(malformed, "Skipped malformed lines in the recording");
        }
        inputs
    });
    let (looping, feed, runtime, stop) = (m.looping, market.clone(), runtime.clone(), stop.clone());
    tasks.spawn(async move {
        for (product, from) in history {
            // Chunk by chunk: memory stays bounded however much is recorded.
            let mut cursor = TradeLog::cursor(&product, from);
            loop {
                match log.next_chunk(&mut cursor, BACKFILL_CHUNK) {
                    Ok(chunk) if chunk.is_empty() => break,
                    Ok(chunk) => runtime.backfill(product.clone(), chunk).await,
                    Err(e) => {
                        tracing::error!(product, error = %e, "Cannot read recorded trades for the bots");
                        break;
                    }
                }
            }
        }
        // The live feed or the replay starts only once the bots' view of the
        // market holds the recorded history: older trades after newer ones
        // would be dropped as duplicates.
        if let Some(config) = live {
            feed_run(config, feed, Arc::new(FeedStats::default()), stop).await;
        } else if let Some(inputs) = inputs {
            replay(inputs, speed, looping, resume, feed, stop).await;
        }
    });
    Ok(market)
}

/// Creates the demo bot once: a looping range bot inside the bundled
/// market's range (452–454 USD), so that a newcomer sees paper trading happen.
async fn demo_bot(runtime: RuntimeHandle) {
    let spec = pb::BotSpec {
        name: "demo".into(),
        exchange: "paper".into(),
        kind: Some(pb::bot_spec::Kind::Range(pb::RangeSpec {
            product_id: "BTC-USD".into(),
            size: "0.05".into(),
            buy_price: "452.60".into(),
            sell_price: "453.40".into(),
            r#loop: true,
            begin_with_sell: false,
            force: false,
        })),
    };
    match runtime
        .create(pb::CreateBotRequest {
            spec: Some(spec),
            if_absent: true,
        })
        .await
    {
        Ok(r) if r.created => tracing::info!(
            "Demo bot `demo` created: watch it with `virc bot show demo` and `virc events -f`"
        ),
        Ok(_) => tracing::info!("Demo bot `demo` exists; it continues"),
        Err(e) => tracing::warn!(error = %e, "Cannot create the demo bot"),
    }
}

/// HTTP/2 flow-control windows large enough for a whole answer or event
/// burst, so a big reply is not paced by WINDOW_UPDATE round trips.
fn windows<L>(b: Server<L>) -> Server<L> {
    b.initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
}

/// Checks `authorization: Bearer <token>` against the configured API token.
fn check_token(creds: &Credentials, req: &Request<()>) -> Result<(), Status> {
    let presented = req
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if creds.token_matches(token) => Ok(()),
        Some(_) => Err(Status::unauthenticated("invalid API token")),
        None => Err(Status::unauthenticated(
            "missing API token: the TCP listener needs `authorization: Bearer <token>` (virc --token or VIRC_TOKEN)",
        )),
    }
}
