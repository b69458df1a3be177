//! `virc`: the command-line client of virc-daemon. Thin: it parses flags,
//! calls the daemon over gRPC, and prints tables or `--json`.

mod client;
mod error;
mod output;

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::{CommandFactory, Parser, Subcommand};
use tokio_stream::StreamExt as _;
use virc_proto::v1::{
    self as pb, EventKind, events_client::EventsClient, system_client::SystemClient,
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
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
