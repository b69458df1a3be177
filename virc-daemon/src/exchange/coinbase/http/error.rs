//! Coinbase REST answers that are not a success, as typed errors that keep
//! the exchange's own words.
//!
//! Every error body is `{"message": "..."}`. A 400 is a final answer (a
//! validation or a refused order, "Insufficient funds", "Post only mode")
//! and is never retried; 429 and 5xx (and timeouts, connection failures)
//! are retryable, except that an order placement is only ever retried
//! through a `client_oid` lookup, never blindly (the caller's rule, see
//! [`RestError::retryable`]).

use serde::Deserialize;

/// What went wrong with a REST call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// 400: refused, in the exchange's words; retrying gives the same answer.
    #[error("Coinbase refused the request ({status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The exchange's `message`.
        message: String,
    },
    /// 401 or 403: the key, passphrase, signature, timestamp or permissions.
    #[error(
        "Coinbase did not accept the credentials ({status}): {message}; check the API key, secret and passphrase in the credentials file and the key's permissions"
    )]
    Auth {
        /// HTTP status.
        status: u16,
        /// The exchange's `message`.
        message: String,
    },
    /// 404.
    #[error("not found on Coinbase: {message}")]
    NotFound {
        /// The exchange's `message`.
        message: String,
    },
    /// 429: over the rate limit; back off and retry.
    #[error("Coinbase rate limit: {message}")]
    RateLimited {
        /// The exchange's `message`.
        message: String,
    },
    /// 5xx, a timeout or a lost connection; the outcome is unknown.
    #[error("Coinbase is unavailable: {detail}")]
    Unavailable {
        /// What happened.
        detail: String,
    },
}

#[derive(Deserialize)]
struct Body {
    message: String,
}

impl RestError {
    /// The error for an HTTP status and body (the body's `message`, or the body itself).
    pub fn from_response(status: u16, body: &str) -> Self {
        let message = serde_json::from_str::<Body>(body).map_or_else(
            |_| {
                let text = body.trim();
                if text.is_empty() {
                    format!("HTTP {status} with no body")
                } else {
                    text.chars().take(200).collect()
                }
            },
            |b| b.message,
        );
        match status {
            401 | 403 => Self::Auth { status, message },
            404 => Self::NotFound { message },
            429 => Self::RateLimited { message },
            500.. => Self::Unavailable {
                detail: format!("HTTP {status}: {message}"),
            },
            _ => Self::Rejected { status, message },
        }
    }

    /// Whether the same request may simply be sent again. An order
    /// placement that ends `Unavailable` may have reached the exchange:
    /// look it up by `client_oid` instead.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable { .. })
    }

    /// The signature's timestamp was outside Coinbase's 30 s window: measure
    /// the clock skew again and retry once with a fresh signature.
    pub fn timestamp_expired(&self) -> bool {
        matches!(self, Self::Auth { message, .. } if message.contains("timestamp expired"))
    }

    /// What to fix, when Coinbase refused the credentials (coinbase-exchange.md
    /// §3.6; `invalid signature` comes as 400 or 401).
    pub fn credential_hint(&self) -> Option<&'static str> {
        let m = self.message().to_ascii_lowercase();
        Some(if m.contains("invalid api key") {
            "Coinbase does not know this API key: check `key` in the credentials file (production and sandbox keys differ, and so do the hosts in rest_url)"
        } else if m.contains("invalid passphrase") {
            "the passphrase is not the one set when this key was created: check `passphrase` in the credentials file"
        } else if m.contains("invalid signature") {
            "the signature does not match: `secret` is not this key's secret (it must be the base64 text Coinbase showed once, whole)"
        } else if m.contains("timestamp expired") {
            "the request's time was more than 30 s off Coinbase's even after measuring the skew: check the system clock (NTP)"
        } else if matches!(self, Self::Auth { status: 403, .. }) {
            "the key lacks a permission this call needs: give it `view` (and `trade` for bots) in Coinbase's API settings"
        } else {
            return None;
        })
    }

    /// The exchange's text, for a bot's failure reason ("Insufficient funds").
    pub fn message(&self) -> &str {
        match self {
            Self::Rejected { message, .. }
            | Self::Auth { message, .. }
            | Self::NotFound { message }
            | Self::RateLimited { message } => message,
            Self::Unavailable { detail } => detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_map_to_typed_errors_that_keep_the_text() {
        let e = RestError::from_response(400, r#"{"message":"Post only mode"}"#);
        assert_eq!(
            e,
            RestError::Rejected {
                status: 400,
                message: "Post only mode".into()
            }
        );
        assert!(!e.retryable());
        assert_eq!(e.message(), "Post only mode");
        let e = RestError::from_response(401, r#"{"message":"request timestamp expired"}"#);
        assert!(e.timestamp_expired() && !e.retryable());
        let e = RestError::from_response(429, r#"{"message":"Private rate limit exceeded"}"#);
        assert!(e.retryable());
        assert_eq!(
            e.to_string(),
            "Coinbase rate limit: Private rate limit exceeded"
        );
        let e = RestError::from_response(404, r#"{"message":"NotFound"}"#);
        assert!(matches!(e, RestError::NotFound { .. }));
        let e = RestError::from_response(502, "<html>Bad Gateway</html>");
        assert!(e.retryable());
        assert_eq!(e.message(), "HTTP 502: <html>Bad Gateway</html>");
        assert_eq!(
            RestError::from_response(503, "").message(),
            "HTTP 503: HTTP 503 with no body"
        );
        let e = RestError::from_response(403, r#"{"message":"Forbidden"}"#);
        assert!(e.to_string().contains("check the API key"));
    }
}
