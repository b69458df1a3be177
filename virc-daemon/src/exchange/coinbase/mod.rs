//! The Coinbase Exchange connector (`api.exchange.coinbase.com`,
//! `ws-feed.exchange.coinbase.com`), split by transport.

pub mod http;
pub mod venue;
pub mod wire;
pub mod ws;

use std::{sync::Arc, time::Duration};

use crate::{
    clock::SystemClock,
    config::{COINBASE_REST, Config, Credentials, ExchangeKind},
};
use http::{
    client::RestClient,
    limiter::{Class, RateLimits},
    signer::Signer,
};

/// `virc-daemon --check-exchange NAME`: reads Coinbase's clock, then signs
/// `GET /accounts` with the connection's credentials. Returns the report
/// lines, or what is wrong in words that say what to fix.
pub async fn check(
    config: &Config,
    credentials: &Credentials,
    name: &str,
) -> Result<Vec<String>, String> {
    let x = config.exchanges.named.get(name).ok_or_else(|| {
        format!(
            "no exchange named `{name}` in the config; configured: {}",
            config
                .exchanges
                .named
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    if x.kind != ExchangeKind::Coinbase {
        return Err(format!(
            "exchanges.{name} is a simulated exchange; only kind = \"coinbase\" connections have credentials to check"
        ));
    }
    let creds = credentials.exchanges.get(name).ok_or_else(|| {
        format!(
            "no credentials for `{name}`: add [exchanges.{name}] key, secret and passphrase to the credentials file, or set VIRC_COINBASE_KEY, _SECRET and _PASSPHRASE"
        )
    })?;
    let signer = Signer::new(creds).map_err(|e| format!("credentials for `{name}`: {e}"))?;
    let url = x.rest_url.as_deref().unwrap_or(COINBASE_REST);
    let rest = RestClient::new(
        url,
        Some(signer),
        RateLimits::default(),
        Duration::from_secs(10),
        Arc::new(SystemClock),
    )
    .map_err(|e| e.to_string())?;
    let mut out = vec![format!("exchange:  {name} ({url})")];
    let skew = rest
        .sync_time()
        .await
        .map_err(|e| format!("GET {url}/time: {e}"))?;
    let secs = rust_decimal::Decimal::new(skew.offset_ns / 1_000_000, 3);
    out.push(format!(
        "clock:     Coinbase is {secs} s {} ours{}",
        if skew.offset_ns >= 0 {
            "ahead of"
        } else {
            "behind"
        },
        if skew.is_large() {
            " (more than 5 s: check the system clock; virc signs with the corrected time)"
        } else {
            ""
        }
    ));
    let diagnose = |path: &str, e: &http::error::RestError| match e.credential_hint() {
        Some(hint) => format!("GET {url}{path}: Coinbase says \"{}\": {hint}", e.message()),
        None => format!("GET {url}{path}: {e}"),
    };
    let accounts: Vec<serde_json::Value> = rest
        .get("/accounts", Class::Private)
        .await
        .map_err(|e| diagnose("/accounts", &e))?;
    let held: Vec<String> = accounts
        .iter()
        .filter(|a| {
            a["balance"]
                .as_str()
                .and_then(|b| b.parse::<rust_decimal::Decimal>().ok())
                .is_some_and(|b| !b.is_zero())
        })
        .map(|a| {
            format!(
                "{} {}",
                a["currency"].as_str().unwrap_or("?"),
                a["balance"].as_str().unwrap_or("?")
            )
        })
        .collect();
    out.push(format!(
        "key:       accepted; {} accounts{}",
        accounts.len(),
        if held.is_empty() {
            String::new()
        } else {
            format!(" ({})", held.join(", "))
        }
    ));
    let fees: serde_json::Value = rest
        .get("/fees", Class::Private)
        .await
        .map_err(|e| diagnose("/fees", &e))?;
    out.push(format!(
        "fees:      maker {} / taker {} (30-day USD volume {})",
        fees["maker_fee_rate"].as_str().unwrap_or("?"),
        fees["taker_fee_rate"].as_str().unwrap_or("?"),
        fees["usd_volume"].as_str().unwrap_or("?"),
    ));
    Ok(out)
}
