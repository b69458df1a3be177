//! The emulator's REST front: HTTP/1.1 on loopback, Coinbase's paths,
//! auth check (coinbase-exchange.md §3, §14.1), rate limits (§5), error
//! bodies (§4) and pagination headers.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex, atomic::Ordering},
};

use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::HeaderMap,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use virc_core::{
    ids::OrderId,
    matcher::UserId,
    order::{OrderRequest, Rejection},
};

use super::Shared;

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;
/// Auth window (§3.5).
const WINDOW_NS: i128 = 30_000_000_000;
/// Longest page.
const MAX_PAGE: usize = 1000;

/// Serves HTTP until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let buckets = Arc::new(Buckets::default());
    loop {
        let sock = tokio::select! {
            () = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((sock, _)) => sock,
                Err(e) => {
                    tracing::warn!(error = %e, "Emulator: accept failed");
                    continue;
                }
            },
        };
        let (shared, buckets, stop) = (shared.clone(), buckets.clone(), stop.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let (shared, buckets) = (shared.clone(), buckets.clone());
                async move { Ok::<_, Infallible>(handle(&shared, &buckets, req).await) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(sock), svc);
            tokio::select! {
                () = stop.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

/// An answer: status, JSON body, pagination cursor.
struct Answer {
    status: u16,
    body: Value,
    after: Option<String>,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body,
            after: None,
        }
    }

    fn error(status: u16, message: &str) -> Self {
        Self {
            status,
            body: json!({ "message": message }),
            after: None,
        }
    }

    fn page(items: Vec<Value>, after: Option<u64>) -> Self {
        Self {
            status: 200,
            body: Value::Array(items),
            after: after.map(|a| a.to_string()),
        }
    }
}

impl From<Rejection> for Answer {
    fn from(r: Rejection) -> Self {
        Self::error(r.status, &r.message)
    }
}

fn respond(a: Answer) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json");
    if let Some(after) = a.after {
        b = b.header("cb-after", after);
    }
    b.body(Full::new(Bytes::from(a.body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{}"))))
}

/// Lazy-fill token buckets (§5).
#[derive(Default)]
struct Buckets(Mutex<HashMap<(u8, u32), (f64, tokio::time::Instant)>>);

impl Buckets {
    fn take(&self, class: u8, who: u32, (rate, burst): (f64, f64)) -> bool {
        let now = tokio::time::Instant::now();
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = map.entry((class, who)).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Checks the four `CB-ACCESS-*` headers; the account's user, or §3.6's error.
fn authenticate(
    shared: &Shared,
    h: &HeaderMap,
    method: &str,
    path: &str,
    body: &str,
) -> Result<UserId, Answer> {
    let bad = |m| Answer::error(401, m);
    let key = header(h, "cb-access-key").ok_or_else(|| bad("Invalid API Key"))?;
    let (account, signer) = shared.account(key).ok_or_else(|| bad("Invalid API Key"))?;
    if header(h, "cb-access-passphrase") != Some(account.passphrase.expose()) {
        return Err(bad("Invalid Passphrase"));
    }
    let ts = header(h, "cb-access-timestamp").unwrap_or_default();
    let ts_ns = ts
        .parse::<Decimal>()
        .ok()
        .and_then(|d| i128::try_from((d * Decimal::from(1_000_000_000)).trunc()).ok());
    match ts_ns {
        Some(t) if (t - i128::from(shared.now())).abs() <= WINDOW_NS => {}
        _ => return Err(bad("request timestamp expired")),
    }
    if header(h, "cb-access-sign") != Some(signer.sign(ts, method, path, body).as_str()) {
        return Err(bad("invalid signature"));
    }
    Ok(account.user)
}

/// Query parameters; repeated names keep every value.
fn query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.replace("%3A", ":").replace("%3a", ":"))
        })
        .collect()
}

fn param<'q>(q: &'q [(String, String)], name: &str) -> Option<&'q str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn number(q: &[(String, String)], name: &str) -> Result<Option<u64>, Answer> {
    param(q, name)
        .map(|v| {
            v.parse()
                .map_err(|_| Answer::error(400, &format!("Invalid {name}")))
        })
        .transpose()
}

fn limit(q: &[(String, String)]) -> Result<usize, Answer> {
    Ok(number(q, "limit")?.map_or(MAX_PAGE, |l| {
        usize::try_from(l).unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE)
    }))
}

async fn handle(
    shared: &Shared,
    buckets: &Buckets,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let path_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    let q = query(req.uri().query());
    let headers = req.headers().clone();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => return respond(Answer::error(400, "request body too large or unreadable")),
    };
    if let Some(status) = shared.faults.take_fail() {
        let message = match status {
            429 if path.starts_with("/products") || path == "/time" => "Public rate limit exceeded",
            429 => "Private rate limit exceeded",
            503 => "Service Unavailable",
            _ => "Internal server error",
        };
        return respond(Answer::error(status, message));
    }
    let public = path == "/time" || path.starts_with("/products");
    let user = if public {
        None
    } else {
        match authenticate(shared, &headers, &method, &path_query, &body) {
            Ok(u) => Some(u),
            Err(a) => return respond(a),
        }
    };
    let limits = shared.limits;
    let allowed = match user {
        None => buckets.take(0, 0, limits.public),
        Some(u) if path == "/fills" => buckets.take(2, u.0, limits.fills),
        Some(u) => buckets.take(1, u.0, limits.private),
    };
    if !allowed {
        let m = if public {
            "Public rate limit exceeded"
        } else {
            "Private rate limit exceeded"
        };
        return respond(Answer::error(429, m));
    }
    let answer = route(shared, user, &method, &path, &q, &body).unwrap_or_else(|a| a);
    if method == "POST" && path == "/orders" && shared.faults.take_lost_post() {
        return respond(Answer::error(500, "Internal server error"));
    }
    if let Some(delay) = shared.faults.take_slow() {
        tokio::time::sleep(delay).await;
    }
    respond(answer)
}

fn route(
    shared: &Shared,
    user: Option<UserId>,
    method: &str,
    path: &str,
    q: &[(String, String)],
    body: &str,
) -> Result<Answer, Answer> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let now = shared.now();
    let not_found = || Answer::error(404, "NotFound");
    let user = || user.ok_or_else(|| Answer::error(401, "Invalid API Key"));
    Ok(match (method, parts.as_slice()) {
        ("GET", ["time"]) => {
            let secs = Decimal::from_i128_with_scale(i128::from(now), 9).round_dp(3);
            Answer::ok(json!({
                "iso": virc_core::time::format_rfc3339_micros(now),
                "epoch": secs.to_string().parse::<f64>().unwrap_or_default(),
            }))
        }
        ("GET", ["products"]) => Answer::ok(shared.with_engine(|e| e.products())),
        ("GET", ["products", id]) => Answer::ok(
            shared
                .with_engine(|e| e.product(id))
                .ok_or_else(|| Answer::error(404, "NotFound"))?,
        ),
        ("GET", ["products", id, "book"]) => {
            let level = match param(q, "level") {
                None | Some("1") => 1,
                Some("2") => 2,
                Some(_) => return Err(Answer::error(400, "Invalid level")),
            };
            Answer::ok(
                shared
                    .with_engine(|e| e.book(id, level, now))
                    .ok_or_else(not_found)?,
            )
        }
        ("GET", ["products", id, "ticker"]) => {
            Answer::ok(shared.with_engine(|e| e.ticker(id)).ok_or_else(not_found)?)
        }
        ("GET", ["products", id, "trades"]) => {
            let (after, limit) = (number(q, "after")?, limit(q)?);
            let (items, cursor) = shared
                .with_engine(|e| e.trades(id, after, limit))
                .ok_or_else(not_found)?;
            Answer::page(items, cursor)
        }
        ("GET", ["accounts"]) => {
            let u = user()?;
            Answer::ok(Value::Array(shared.with_engine(|e| e.accounts(u))))
        }
        ("GET", ["fees"]) => Answer::ok(shared.with_engine(|e| e.fees())),
        ("POST", ["orders"]) => {
            let u = user()?;
            let req: OrderRequest = serde_json::from_str(body)
                .map_err(|e| Answer::error(400, &format!("Invalid request body: {e}")))?;
            Answer::ok(shared.with_engine(|e| e.place(u, &req, now))?)
        }
        ("GET", ["orders"]) => {
            let u = user()?;
            let statuses: Vec<String> = q
                .iter()
                .filter(|(k, _)| k == "status")
                .map(|(_, v)| v.clone())
                .collect();
            let (after, limit) = (number(q, "after")?, limit(q)?);
            let (items, cursor) = shared
                .with_engine(|e| e.orders(u, param(q, "product_id"), &statuses, after, limit));
            Answer::page(items, cursor)
        }
        ("DELETE", ["orders"]) => {
            let u = user()?;
            let ids = shared.with_engine(|e| e.cancel_all(u, param(q, "product_id"), now))?;
            Answer::ok(json!(ids))
        }
        ("GET", ["orders", target]) => {
            let u = user()?;
            Answer::ok(
                shared
                    .with_engine(|e| e.order(u, target))
                    .ok_or_else(not_found)?,
            )
        }
        ("DELETE", ["orders", target]) => {
            let u = user()?;
            Answer::ok(json!(shared.with_engine(|e| e.cancel(u, target, now))?))
        }
        ("GET", ["fills"]) => {
            let u = user()?;
            let order = param(q, "order_id")
                .map(|o| OrderId::parse(o).map_err(|_| Answer::error(400, "Invalid order_id")))
                .transpose()?;
            let product = param(q, "product_id");
            if order.is_none() && product.is_none() {
                return Err(Answer::error(
                    400,
                    "either order_id or product_id is required",
                ));
            }
            let (after, limit) = (number(q, "after")?, limit(q)?);
            let (items, cursor) = shared.with_engine(|e| e.fills(u, order, product, after, limit));
            Answer::page(items, cursor)
        }
        _ => return Err(not_found()),
    })
}

#[cfg(test)]
mod tests {
    use super::Buckets;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_serves_its_burst_then_refills_at_its_rate() {
        let b = Buckets::default();
        let limit = (10.0, 15.0);
        assert!((0..15).all(|_| b.take(0, 0, limit)), "the burst");
        assert!(!b.take(0, 0, limit), "then a 429");
        assert!(
            b.take(1, 7, limit),
            "another class or account has its own bucket"
        );
        tokio::time::advance(std::time::Duration::from_millis(250)).await;
        assert!(
            (0..2).all(|_| b.take(0, 0, limit)),
            "2.5 tokens after 250 ms"
        );
        assert!(!b.take(0, 0, limit));
    }
}
