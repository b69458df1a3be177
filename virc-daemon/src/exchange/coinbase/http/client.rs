//! The REST client: every call paced by the [`Limiter`], signed with the
//! skew-corrected clock, answered as JSON or a typed [`RestError`].
//!
//! # Retries
//! - 429: the class backs off (with jitter) and the same request goes
//!   again; a rate limit never fails a caller, it only slows it.
//! - `request timestamp expired`: the skew is measured again and the
//!   request re-signed and sent once more.
//! - 5xx, timeouts, lost connections: a read or a cancel is sent again a
//!   few times with growing pauses; an order placement never is, since it
//!   may have reached the exchange. [`RestClient::place_order`] asks for the
//!   order by its `client_oid` instead, and only if Coinbase has never seen
//!   it sends it again (under the same `client_oid`).
//! - 400, 401, 403, 404: final answers, returned as they are.
//!
//! # Pagination
//! Lists come newest first in pages; `CB-AFTER` in a response names the
//! cursor for older items. [`RestClient::get_all`] follows it to the end.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    error::RestError,
    limiter::{Class, Limiter, Priority, RateLimits},
    signer::Signer,
    timesync::Skew,
};
use crate::clock::Clock;

/// How many times a rate-limited request is sent again before the caller hears of it.
const RATE_RETRIES: u32 = 20;
/// How many times a read or a cancel is sent again after a 5xx or a timeout.
const UNAVAILABLE_RETRIES: u32 = 3;

/// An HTTP method the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Reads.
    Get,
    /// Order placement.
    Post,
    /// Cancels.
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Delete => "DELETE",
        }
    }
}

/// A page of a list and the cursor to older items.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The items (a JSON array).
    pub items: Vec<Value>,
    /// `CB-AFTER`: pass as `after` for the next (older) page.
    pub after: Option<String>,
}

/// One Coinbase Exchange REST endpoint (production, sandbox or an emulator).
#[derive(Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: String,
    signer: Option<Arc<Signer>>,
    limiter: Limiter,
    skew: Arc<Mutex<Skew>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("base", &self.base)
            .field("authenticated", &self.signer.is_some())
            .finish_non_exhaustive()
    }
}

/// A little jitter (0–25 % of `d`), so clients backing off do not return together.
fn jitter(d: Duration, seed: i64) -> Duration {
    let spread = u64::try_from(d.as_millis() / 4).unwrap_or(0).max(1);
    d + Duration::from_millis(seed.unsigned_abs() % spread)
}

impl RestClient {
    /// A client for `base` (`https://api.exchange.coinbase.com`); `signer` for private calls.
    pub fn new(
        base: &str,
        signer: Option<Signer>,
        limits: RateLimits,
        timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RestError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("virc/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RestError::Unavailable {
                detail: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            signer: signer.map(Arc::new),
            limiter: Limiter::new(limits),
            skew: Arc::new(Mutex::new(Skew::default())),
            clock,
        })
    }

    fn skew(&self) -> Skew {
        *self
            .skew
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A signed subscribe's auth fields, stamped with the corrected clock;
    /// `None` without credentials.
    pub fn ws_auth(&self) -> Option<[(&'static str, String); 4]> {
        let signer = self.signer.as_ref()?;
        Some(signer.ws_fields(&self.skew().header(self.clock.now())))
    }

    /// Measures the clock skew with `GET /time` and signs with it from now
    /// on. A 429, 5xx or timeout is tried again a few times (each attempt
    /// is timed on its own, so a slow one does not skew the measure).
    pub async fn sync_time(&self) -> Result<Skew, RestError> {
        let mut attempt = 0;
        let (t_send, body, t_recv) = loop {
            attempt += 1;
            self.limiter.acquire(Class::Public, Priority::Normal).await;
            let t_send = self.clock.now();
            let err = match self.raw(Method::Get, "/time", None, false).await {
                Ok((200, body, _)) => break (t_send, body, self.clock.now()),
                Ok((status, body, _)) => RestError::from_response(status, &body),
                Err(e) => e,
            };
            if !err.retryable() || attempt > UNAVAILABLE_RETRIES {
                return Err(err);
            }
            let pause = Duration::from_millis(200) * 2u32.pow(attempt);
            tokio::time::sleep(jitter(pause, self.clock.now())).await;
        };
        let skew = Skew::measure(t_send, t_recv, &body)
            .map_err(|detail| RestError::Unavailable { detail })?;
        *self
            .skew
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = skew;
        Ok(skew)
    }

    /// One HTTP exchange: (status, body, `CB-AFTER`).
    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        auth: bool,
    ) -> Result<(u16, String, Option<String>), RestError> {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            Method::Get => self.http.get(&url),
            Method::Post => self.http.post(&url),
            Method::Delete => self.http.delete(&url),
        };
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        if auth {
            let signer = self.signer.as_ref().ok_or_else(|| RestError::Auth {
                status: 401,
                message: "no API credentials configured for this exchange".into(),
            })?;
            let ts = self.skew().header(self.clock.now());
            // The signed path includes the query string.
            let h = signer.headers(&ts, method.as_str(), path, body.unwrap_or(""));
            // Marked sensitive: no debug output or HTTP trace shows them.
            let secret = |v: &str| {
                reqwest::header::HeaderValue::from_str(v).map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
            };
            let bad = |_| {
                RestError::Auth {
                status: 401,
                message: "the API passphrase or signature is not valid header text; check the credentials file".into(),
            }
            };
            req = req
                .header("CB-ACCESS-KEY", h.key)
                .header("CB-ACCESS-SIGN", secret(&h.sign).map_err(bad)?)
                .header("CB-ACCESS-TIMESTAMP", h.timestamp)
                .header(
                    "CB-ACCESS-PASSPHRASE",
                    secret(h.passphrase.expose()).map_err(bad)?,
                );
        }
        let resp = req.send().await.map_err(|e| RestError::Unavailable {
            detail: format!("{} {path}: {e}", method.as_str()),
        })?;
        let status = resp.status().as_u16();
        let after = resp
            .headers()
            .get("cb-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.map_err(|e| RestError::Unavailable {
            detail: format!("{} {path}: reading the answer: {e}", method.as_str()),
        })?;
        Ok((status, text, after))
    }

    /// Sends a request with the retry rules above; the body of a 2xx and `CB-AFTER`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        class: Class,
        priority: Priority,
    ) -> Result<(String, Option<String>), RestError> {
        let auth = class != Class::Public;
        let (mut rate, mut unavailable, mut resynced) = (0, 0, false);
        loop {
            self.limiter.acquire(class, priority).await;
            let err = match self.raw(method, path, body, auth).await {
                Ok((status, text, after)) if (200..300).contains(&status) => {
                    return Ok((text, after));
                }
                Ok((status, text, _)) => RestError::from_response(status, &text),
                Err(e) => e,
            };
            match &err {
                RestError::RateLimited { .. } if rate < RATE_RETRIES => {
                    rate += 1;
                    let pause = Duration::from_millis(250) * rate.min(8);
                    self.limiter
                        .back_off(class, jitter(pause, self.clock.now()));
                }
                e if e.timestamp_expired() && !resynced => {
                    resynced = true;
                    self.sync_time().await?;
                }
                RestError::Unavailable { .. }
                    if method != Method::Post && unavailable < UNAVAILABLE_RETRIES =>
                {
                    unavailable += 1;
                    let pause = Duration::from_millis(200) * 2u32.pow(unavailable);
                    tokio::time::sleep(jitter(pause, self.clock.now())).await;
                }
                _ => return Err(err),
            }
        }
    }

    /// A JSON read.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, class: Class) -> Result<T, RestError> {
        let (text, _) = self
            .send(Method::Get, path, None, class, Priority::Normal)
            .await?;
        serde_json::from_str(&text).map_err(|e| RestError::Unavailable {
            detail: format!("GET {path}: unexpected answer: {e}"),
        })
    }

    /// One page of a list; `after` is the previous page's cursor.
    pub async fn page(
        &self,
        path: &str,
        class: Class,
        after: Option<&str>,
    ) -> Result<Page, RestError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let full = match after {
            Some(a) => format!("{path}{sep}after={a}"),
            None => path.to_owned(),
        };
        let (text, cursor) = self
            .send(Method::Get, &full, None, class, Priority::Normal)
            .await?;
        let items: Vec<Value> =
            serde_json::from_str(&text).map_err(|e| RestError::Unavailable {
                detail: format!("GET {full}: expected a list: {e}"),
            })?;
        Ok(Page {
            after: cursor.filter(|_| !items.is_empty()),
            items,
        })
    }

    /// Every page of a list, newest first, up to `limit` items.
    pub async fn get_all(
        &self,
        path: &str,
        class: Class,
        limit: usize,
    ) -> Result<Vec<Value>, RestError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.page(path, class, after.as_deref()).await?;
            out.extend(page.items);
            match page.after {
                Some(a) if out.len() < limit => after = Some(a),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Places an order (`body` is the `POST /orders` JSON, with its
    /// `client_oid`). When the outcome is unknown (5xx, timeout), asks for
    /// the order by `client_oid`, and sends it again only if Coinbase never
    /// saw it.
    pub async fn place_order(
        &self,
        body: &str,
        client_oid: &str,
        priority: Priority,
    ) -> Result<Value, RestError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self
                .send(
                    Method::Post,
                    "/orders",
                    Some(body),
                    Class::Private,
                    priority,
                )
                .await
            {
                Ok((text, _)) => {
                    return serde_json::from_str(&text).map_err(|e| RestError::Unavailable {
                        detail: format!("POST /orders: unexpected answer: {e}"),
                    });
                }
                Err(RestError::Unavailable { detail }) => {
                    let lookup = format!("/orders/client:{client_oid}");
                    match self.get::<Value>(&lookup, Class::Private).await {
                        Ok(order) => return Ok(order),
                        Err(RestError::NotFound { .. }) if attempts < 3 => {
                            tracing::warn!(
                                client_oid,
                                detail,
                                "Order placement unanswered and unknown to Coinbase; sending it again"
                            );
                        }
                        Err(RestError::NotFound { .. }) => {
                            return Err(RestError::Unavailable { detail });
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}
