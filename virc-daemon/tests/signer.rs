//! Request signing against the public test vectors (gdax-python-api, MIT,
//! tests/fixtures/gdax-python-api/).
#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use serde_json::Value;
use virc_daemon::{
    config::{ExchangeCredentials, Secret},
    exchange::coinbase::http::signer::Signer,
};

fn creds(secret: &str) -> ExchangeCredentials {
    let toml = format!("key = \"k1\"\nsecret = \"{secret}\"\npassphrase = \"PASSPHRASE-X\"\n");
    toml::from_str(&toml).unwrap()
}

#[test]
fn every_public_vector_signs_to_its_expected_value() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gdax-python-api/signature-vectors.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let vectors = v["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 3);
    for t in vectors {
        let s = Signer::new(&creds(t["secret"].as_str().unwrap())).unwrap();
        let got = s.sign(
            t["timestamp"].as_str().unwrap(),
            t["method"].as_str().unwrap(),
            t["request_path"].as_str().unwrap(),
            t["body"].as_str().unwrap(),
        );
        assert_eq!(
            got,
            t["expected_signature"].as_str().unwrap(),
            "{}",
            t["id"]
        );
    }
}

#[test]
fn the_ws_subscribe_signs_get_users_self_verify() {
    let s = Signer::new(&creds("YWFhYQ==")).unwrap();
    assert_eq!(
        s.sign_ws("1493343391"),
        s.sign("1493343391", "GET", "/users/self/verify", "")
    );
    assert_eq!(
        s.sign("1", "get", "/x?a=1", ""),
        s.sign("1", "GET", "/x?a=1", ""),
        "method is upper-cased"
    );
    assert_ne!(
        s.sign("1", "GET", "/x?a=1", ""),
        s.sign("1", "GET", "/x?a=2", ""),
        "the query string is signed"
    );
}

#[test]
fn secrets_never_reach_debug_or_errors() {
    let s = Signer::new(&creds("U0VDUkVUVkFMVUU=")).unwrap();
    let h = s.headers("1", "GET", "/accounts", "");
    let dbg = format!("{s:?} {h:?}");
    assert!(dbg.contains("k1"));
    assert!(
        !dbg.contains("U0VDUkVUVkFMVUU")
            && !dbg.contains("SECRETVALUE")
            && !dbg.contains("PASSPHRASE-X"),
        "{dbg}"
    );
    assert_eq!(h.passphrase, Secret::new("PASSPHRASE-X"));
    let err = Signer::new(&creds("not base64 !!"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("k1") && err.contains("not valid base64") && !err.contains("not base64 !!"),
        "{err}"
    );
}
