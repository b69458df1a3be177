//! Request signing: `CB-ACCESS-SIGN = base64(HMAC-SHA256(base64_decode(secret),
//! timestamp + METHOD + request_path + body))`, where `request_path`
//! includes the query string and the timestamp is signed exactly as sent in
//! `CB-ACCESS-TIMESTAMP`.
//!
//! The secret and passphrase live only inside [`Signer`]; its `Debug` shows
//! the key alone, and no error message ever contains them.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{ExchangeCredentials, Secret};

/// Why credentials cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The API secret is not base64 (the value itself is never shown).
    #[error(
        "the API secret of `{key}` is not valid base64: copy it again from Coinbase (Settings -> API)"
    )]
    SecretNotBase64 {
        /// The API key it belongs to.
        key: String,
    },
}

/// Signs requests for one API key.
#[derive(Clone)]
pub struct Signer {
    key: String,
    secret: Vec<u8>,
    passphrase: Secret,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The four authentication headers of one request.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthHeaders {
    /// `CB-ACCESS-KEY`.
    pub key: String,
    /// `CB-ACCESS-SIGN`.
    pub sign: String,
    /// `CB-ACCESS-TIMESTAMP`.
    pub timestamp: String,
    /// `CB-ACCESS-PASSPHRASE`.
    pub passphrase: Secret,
}

impl fmt::Debug for AuthHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthHeaders")
            .field("key", &self.key)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer from configured credentials.
    pub fn new(credentials: &ExchangeCredentials) -> Result<Self, SignerError> {
        let secret = STANDARD
            .decode(credentials.secret.expose().trim())
            .map_err(|_| SignerError::SecretNotBase64 {
                key: credentials.key.clone(),
            })?;
        Ok(Self {
            key: credentials.key.clone(),
            secret,
            passphrase: credentials.passphrase.clone(),
        })
    }

    /// The signature of one request.
    pub fn sign(&self, timestamp: &str, method: &str, request_path: &str, body: &str) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            unreachable!("HMAC takes any key length")
        };
        mac.update(timestamp.as_bytes());
        mac.update(method.to_ascii_uppercase().as_bytes());
        mac.update(request_path.as_bytes());
        mac.update(body.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    /// The headers of one request signed at `timestamp`.
    pub fn headers(
        &self,
        timestamp: &str,
        method: &str,
        request_path: &str,
        body: &str,
    ) -> AuthHeaders {
        AuthHeaders {
            key: self.key.clone(),
            sign: self.sign(timestamp, method, request_path, body),
            timestamp: timestamp.to_owned(),
            passphrase: self.passphrase.clone(),
        }
    }

    /// The auth fields of a signed WebSocket subscribe (coinbase-exchange.md
    /// §3.7) at `timestamp`: `key`, `passphrase`, `timestamp`, `signature`.
    pub fn ws_fields(&self, timestamp: &str) -> [(&'static str, String); 4] {
        [
            ("key", self.key.clone()),
            ("passphrase", self.passphrase.expose().to_owned()),
            ("timestamp", timestamp.to_owned()),
            ("signature", self.sign_ws(timestamp)),
        ]
    }

    /// The signature of the WebSocket `user`-channel subscribe (`GET /users/self/verify`).
    pub fn sign_ws(&self, timestamp: &str) -> String {
        self.sign(timestamp, "GET", "/users/self/verify", "")
    }
}
