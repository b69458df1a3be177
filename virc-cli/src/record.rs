//! `virc record export|import`: the daemon's recorded trades as JSON lines
//! in Coinbase's `match` message shape, so an export replays as a recorded
//! feed (`market.replay_file`) and imports into another daemon.

use std::{
    io::{BufRead, Write},
    path::PathBuf,
};

use clap::Subcommand;
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;
use virc_proto::v1::{self as pb, market_client::MarketClient};

use crate::{client::Conn as Channel, error::CliError};

/// `virc record ...`
#[derive(Debug, Subcommand)]
pub enum RecordCommand {
    /// Print recorded trades as JSON lines (Coinbase `match` messages), oldest first.
    Export {
        /// Product, for example BTC-USD.
        #[arg(long)]
        product: String,
        /// From this time (RFC 3339, inclusive); default: the oldest recorded.
        #[arg(long, value_parser = parse_time)]
        from: Option<i64>,
        /// To this time (RFC 3339, exclusive); default: the newest.
        #[arg(long, value_parser = parse_time)]
        to: Option<i64>,
    },
    /// Store trades from a file of JSON lines (an export, or a recorded Coinbase feed).
    Import {
        /// The file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
}

fn parse_time(s: &str) -> Result<i64, String> {
    virc_core::time::parse_rfc3339(s).map_err(|e| e.to_string())
}

fn timestamp(ns: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: i32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0),
    }
}

/// `2016-05-12T15:00:01.047000Z`: microseconds, as Coinbase writes times.
fn coinbase_time(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = ts else {
        return String::new();
    };
    let millis = crate::output::time(Some(ts));
    // `output::time` gives milliseconds; Coinbase gives microseconds.
    let micros = ts.nanos.max(0) / 1_000 % 1_000;
    format!("{}{micros:03}Z", millis.trim_end_matches('Z'))
}

/// One line of a feed: only `match` and `last_match` carry trades.
#[derive(Debug, Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    product_id: String,
    #[serde(default)]
    trade_id: u64,
    #[serde(default)]
    side: String,
    #[serde(default)]
    price: String,
    #[serde(default)]
    size: String,
    #[serde(default)]
    time: String,
}

/// A feed line as a trade; `Ok(None)` for other message types.
fn trade_of(text: &str) -> Result<Option<pb::Trade>, String> {
    let line: Line = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if line.kind != "match" && line.kind != "last_match" {
        return Ok(None);
    }
    let side = match line.side.as_str() {
        "buy" => pb::Side::Buy,
        "sell" => pb::Side::Sell,
        other => return Err(format!("side `{other}` is not buy or sell")),
    };
    let time = parse_time(&line.time)?;
    Ok(Some(pb::Trade {
        product_id: line.product_id,
        trade_id: line.trade_id,
        price: line.price,
        size: line.size,
        side: side as i32,
        time: Some(timestamp(time)),
    }))
}

/// Runs `virc record ...`.
pub async fn record(
    conn: Channel,
    cmd: RecordCommand,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let mut c = MarketClient::new(conn);
    match cmd {
        RecordCommand::Export { product, from, to } => {
            let mut stream = c
                .export_trades(pb::ExportTradesRequest {
                    product_id: product,
                    from: from.map(timestamp),
                    to: to.map(timestamp),
                })
                .await?
                .into_inner();
            while let Some(t) = stream.message().await? {
                let side = if t.side == pb::Side::Buy as i32 {
                    "buy"
                } else {
                    "sell"
                };
                // The recorder keeps no order ids; the nil id stands in for them.
                let line = json!({
                    "type": "match", "trade_id": t.trade_id,
                    "maker_order_id": "00000000-0000-0000-0000-000000000000",
                    "taker_order_id": "00000000-0000-0000-0000-000000000000",
                    "side": side, "size": t.size, "price": t.price, "product_id": t.product_id,
                    "time": coinbase_time(t.time.as_ref()),
                });
                writeln!(out, "{line}")?;
            }
        }
        RecordCommand::Import { file } => {
            let reader: Box<dyn BufRead + Send> = match file.as_deref() {
                None => Box::new(std::io::BufReader::new(std::io::stdin())),
                Some(p) if p.as_os_str() == "-" => {
                    Box::new(std::io::BufReader::new(std::io::stdin()))
                }
                Some(p) => Box::new(std::io::BufReader::new(std::fs::File::open(p).map_err(
                    |e| CliError::Usage(format!("cannot read {}: {e}", p.display())),
                )?)),
            };
            // Read on a blocking thread, streaming to the daemon as we go.
            let (tx, rx) = tokio::sync::mpsc::channel(4096);
            let reading = tokio::task::spawn_blocking(move || {
                let (mut skipped, mut bad) = (0u64, Vec::new());
                for (i, line) in reader.lines().enumerate() {
                    let line = match line {
                        Ok(l) => l,
                        Err(e) => {
                            bad.push(format!("line {}: {e}", i + 1));
                            break;
                        }
                    };
                    if line.trim().is_empty() {
                        continue;
                    }
                    match trade_of(&line) {
                        Ok(Some(t)) => {
                            if tx.blocking_send(t).is_err() {
                                break;
                            }
                        }
                        Ok(None) => skipped += 1,
                        Err(e) => bad.push(format!("line {}: {e}", i + 1)),
                    }
                }
                (skipped, bad)
            });
            let r = c.import_trades(ReceiverStream::new(rx)).await?.into_inner();
            let (skipped, bad) = reading
                .await
                .map_err(|e| CliError::Usage(format!("reading the file failed: {e}")))?;
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"imported": r.imported, "duplicates": r.duplicates, "other_messages": skipped, "malformed": bad.len()})
                )?;
            } else {
                writeln!(
                    out,
                    "imported {} trades; {} already recorded; {} other messages skipped; {} malformed lines",
                    r.imported,
                    r.duplicates,
                    skipped,
                    bad.len()
                )?;
            }
            for b in bad.iter().take(5) {
                eprintln!("virc: skipped malformed {b}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn feed_lines_become_trades_and_times_keep_microseconds() {
        let t = trade_of(r#"{"type":"match","trade_id":7,"side":"sell","size":"0.5","price":"453.07","product_id":"BTC-USD","time":"2016-05-12T15:00:01.047123Z"}"#)
            .unwrap()
            .unwrap();
        assert_eq!((t.trade_id, t.side), (7, pb::Side::Sell as i32));
        assert_eq!(
            coinbase_time(t.time.as_ref()),
            "2016-05-12T15:00:01.047123Z"
        );
        assert!(trade_of(r#"{"type":"heartbeat"}"#).unwrap().is_none());
        assert!(
            trade_of(r#"{"type":"match","side":"up","time":"x"}"#)
                .unwrap_err()
                .contains("side")
        );
        assert!(trade_of("not json").is_err());
    }
}
