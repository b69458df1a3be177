//! The REST client against a Coinbase-shaped server on loopback: every
//! private call is signed so the server can verify it, a 429 slows the
//! client down without failing it, an expired timestamp resyncs the clock,
//! lists are followed page by page, and an order placement whose answer is
//! lost is looked up by `client_oid`, never sent twice blindly.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

mod common;

use common::reply;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use virc_daemon::{
    clock::SystemClock,
    config::{ExchangeCredentials, Secret},
    exchange::coinbase::http::{
        client::{Method, RestClient},
        error::RestError,
        limiter::{Class, Priority, RateLimits},
        signer::Signer,
    },
};

/// What the server saw.
#[derive(Debug, Default)]
struct Seen {
    requests: Vec<(String, String)>,
    orders: HashMap<String, String>,
    counts: HashMap<String, u32>,
}

fn creds() -> ExchangeCredentials {
    ExchangeCredentials {
        key: "key-1".into(),
        secret: Secret::new("c2VjcmV0LWJ5dGVzLWZvci10ZXN0cw=="),
        passphrase: Secret::new("pass phrase"),
    }
}

fn now_iso() -> String {
    // Coinbase's clock, running 42 s ahead of ours.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        + Duration::from_secs(42);
    let secs = t.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap();
    // Civil date from days since the epoch.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        t.subsec_millis()
    )
}

fn route(
    seen: &mut Seen,
    method: &str,
    path: &str,
    headers: &HashMap<String, String>,
    body: &str,
) -> String {
    let signer = Signer::new(&creds()).unwrap();
    *seen
        .counts
        .entry(format!("{method} {}", path.split('?').next().unwrap()))
        .or_default() += 1;
    seen.requests.push((method.to_owned(), path.to_owned()));
    if path == "/time" {
        return reply(200, &format!(r#"{{"iso":"{}","epoch":0}}"#, now_iso()), "");
    }
    // Every private call must be signed over timestamp, method, path (with query) and body.
    let ts = headers
        .get("cb-access-timestamp")
        .cloned()
        .unwrap_or_default();
    if headers.get("cb-access-sign") != Some(&signer.sign(&ts, method, path, body))
        || headers.get("cb-access-passphrase").map(String::as_str) != Some("pass phrase")
    {
        return reply(401, r#"{"message":"invalid signature"}"#, "");
    }
    // Signatures more than 30 s from Coinbase's clock expire.
    let server = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 42.0;
    if (ts.parse::<f64>().unwrap_or(0.0) - server).abs() > 30.0 {
        return reply(401, r#"{"message":"request timestamp expired"}"#, "");
    }
    let n = seen.counts[&format!("{method} {}", path.split('?').next().unwrap())];
    match (method, path) {
        ("GET", "/accounts") if n == 2 => {
            reply(429, r#"{"message":"Private rate limit exceeded"}"#, "")
        }
        ("GET", "/accounts") => reply(200, r#"[{"currency":"USD","balance":"10"}]"#, ""),
        ("GET", "/fees") => reply(
            200,
            r#"{"maker_fee_rate":"0.004","taker_fee_rate":"0.006","usd_volume":"0"}"#,
            "",
        ),
        ("GET", "/fills?product_id=BTC-USD") => {
            reply(200, r#"[{"trade_id":3},{"trade_id":2}]"#, "cb-after: 2\r\n")
        }
        ("GET", "/fills?product_id=BTC-USD&after=2") => {
            reply(200, r#"[{"trade_id":1}]"#, "cb-after: 1\r\n")
        }
        ("GET", "/fills?product_id=BTC-USD&after=1") => reply(200, "[]", ""),
        ("POST", "/orders") => {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            let oid = v["client_oid"].as_str().unwrap().to_owned();
            let order = format!(r#"{{"id":"o-{n}","client_oid":"{oid}","status":"pending"}}"#);
            seen.orders.insert(oid, order.clone());
            if n == 1 {
                // It reached the book, but the answer is lost.
                reply(502, "<html>Bad Gateway</html>", "")
            } else {
                reply(200, &order, "")
            }
        }
        ("GET", p) if p.starts_with("/orders/client:") => {
            match seen.orders.get(&p["/orders/client:".len()..]) {
                Some(o) => reply(200, o, ""),
                None => reply(404, r#"{"message":"NotFound"}"#, ""),
            }
        }
        ("POST", "/refused") => reply(400, r#"{"message":"Insufficient funds"}"#, ""),
        _ => reply(404, r#"{"message":"NotFound"}"#, ""),
    }
}

async fn serve(seen: Arc<Mutex<Seen>>) -> String {
    common::http_server(Arc::new(move |method, path, headers, body| {
        route(&mut seen.lock().unwrap(), method, path, headers, body)
    }))
    .await
}

fn client(base: &str) -> RestClient {
    RestClient::new(
        base,
        Some(Signer::new(&creds()).unwrap()),
        RateLimits::default(),
        Duration::from_secs(5),
        Arc::new(SystemClock),
    )
    .unwrap()
}

#[tokio::test]
async fn signed_calls_survive_rate_limits_expired_clocks_and_lost_answers() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let c = client(&serve(seen.clone()).await);

    // Our clock is 42 s behind Coinbase's: the first signed call expires,
    // the client measures the skew and sends it again; the 429 that follows
    // only slows it down.
    let accounts: serde_json::Value = c.get("/accounts", Class::Private).await.unwrap();
    assert_eq!(accounts[0]["currency"], "USD");
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.counts["GET /time"], 1, "{:?}", s.requests);
        assert_eq!(
            s.counts["GET /accounts"], 3,
            "expired, rate limited, then answered"
        );
    }

    // Pages are followed to the end.
    let fills = c
        .get_all("/fills?product_id=BTC-USD", Class::Fills, 100)
        .await
        .unwrap();
    let ids: Vec<u64> = fills
        .iter()
        .map(|f| f["trade_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [3, 2, 1]);

    // The answer to the placement is lost; the order is found by client_oid, not sent twice.
    let body = r#"{"client_oid":"6f1c1d4e-0000-4000-8000-000000000001","type":"limit","side":"buy","product_id":"BTC-USD","price":"450.00","size":"0.01"}"#;
    let order = c
        .place_order(
            body,
            "6f1c1d4e-0000-4000-8000-000000000001",
            Priority::Normal,
        )
        .await
        .unwrap();
    assert_eq!(order["id"], "o-1");
    assert_eq!(
        seen.lock().unwrap().counts["POST /orders"],
        1,
        "never sent twice"
    );

    // A refusal is final and keeps the exchange's words.
    let err = c
        .send(
            Method::Post,
            "/refused",
            Some("{}"),
            Class::Private,
            Priority::Normal,
        )
        .await
        .unwrap_err();
    assert_eq!(err.message(), "Insufficient funds");
    assert!(!err.retryable());

    // Without credentials, a private call says so instead of going out unsigned.
    let anon = RestClient::new(
        "http://127.0.0.1:9",
        None,
        RateLimits::default(),
        Duration::from_secs(1),
        Arc::new(SystemClock),
    )
    .unwrap();
    let err = anon
        .get::<serde_json::Value>("/accounts", Class::Private)
        .await
        .unwrap_err();
    assert!(matches!(err, RestError::Auth { .. }), "{err}");
}

/// Runs `virc-daemon --check-exchange live` against `base` with this passphrase.
fn check_exchange(base: &str, passphrase: &str) -> std::process::Output {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials.toml");
    std::fs::write(
        &creds,
        format!(
            "[exchanges.live]\nkey = \"key-1\"\nsecret = \"c2VjcmV0LWJ5dGVzLWZvci10ZXN0cw==\"\npassphrase = \"{passphrase}\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("virc.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\ncredentials_file = \"{}\"\n\n[exchanges.live]\nkind = \"coinbase\"\nrest_url = \"{base}\"\n",
            creds.display()
        ),
    )
    .unwrap();
    std::process::Command::new(assert_cmd::cargo::cargo_bin("virc-daemon"))
        .arg("--config")
        .arg(&config)
        .args(["--check-exchange", "live"])
        .env_remove("VIRC_CONFIG")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exchange_reads_the_clock_and_tries_the_key() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let base = serve(seen.clone()).await;
    let ok = tokio::task::spawn_blocking({
        let base = base.clone();
        move || check_exchange(&base, "pass phrase")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        text.contains("exchange:  live (http://127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains("clock:     Coinbase is 4"),
        "42 s ahead: {text}"
    );
    assert!(text.contains("more than 5 s"), "{text}");
    assert!(
        text.contains("key:       accepted; 1 accounts (USD 10)"),
        "{text}"
    );
    let bad = tokio::task::spawn_blocking(move || check_exchange(&base, "wrong"))
        .await
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr).to_string();
    assert!(
        err.contains("exchange live: GET") && err.contains("invalid signature"),
        "{err}"
    );
    assert!(!err.contains("wrong"), "the passphrase never shows: {err}");
}
