//! Every real recorded Coinbase feed frame in the fixtures parses into typed
//! messages; malformed frames are errors naming the field, never panics.
//! Fixtures and their licences: tests/fixtures/*/ (see each PROVENANCE.txt).
#![allow(clippy::unwrap_used, reason = "a test fails loudly")]

use std::{collections::BTreeMap, path::Path};

use virc_core::{ids::ProductId, order::Side};
use virc_daemon::exchange::coinbase::ws::messages::{ParseError, WsMessage, parse};

fn fixture(rel: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel),
    )
    .unwrap()
}

fn kind(m: &WsMessage) -> &'static str {
    match m {
        WsMessage::Subscriptions(_) => "subscriptions",
        WsMessage::Heartbeat { .. } => "heartbeat",
        WsMessage::Ticker(_) => "ticker",
        WsMessage::Snapshot { .. } => "snapshot",
        WsMessage::L2Update { .. } => "l2update",
        WsMessage::Match(m) if m.last => "last_match",
        WsMessage::Match(_) => "match",
        WsMessage::Received(_) => "received",
        WsMessage::Open { .. } => "open",
        WsMessage::Done(_) => "done",
        WsMessage::Change(_) => "change",
        WsMessage::Activate { .. } => "activate",
        WsMessage::Status { .. } => "status",
        WsMessage::Error { .. } => "error",
    }
}

#[test]
fn every_frame_of_the_real_2021_capture_parses_with_the_recorded_counts() {
    let mut counts = BTreeMap::new();
    let mut last_trade: BTreeMap<ProductId, u64> = BTreeMap::new();
    for line in fixture("cryptofeed/coinbase-ws-2021-04-17.jsonl").lines() {
        let m = parse(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        *counts.entry(kind(&m)).or_insert(0) += 1;
        if let WsMessage::Match(t) = &m
            && let Some(prev) = last_trade.insert(t.product_id, t.trade_id)
        {
            assert_eq!(t.trade_id, prev + 1, "trade ids are contiguous per product");
        }
    }
    let want: BTreeMap<_, _> = [
        ("l2update", 9719),
        ("ticker", 107),
        ("match", 97),
        ("snapshot", 10),
        ("last_match", 10),
        ("subscriptions", 3),
    ]
    .into();
    assert_eq!(counts, want);
    assert_eq!(
        last_trade.len(),
        10,
        "every product has at least its last_match"
    );
}

#[test]
fn the_real_full_channel_frames_parse_with_sequences_and_client_oids() {
    let mut counts = BTreeMap::new();
    let mut client_oids = 0;
    let mut seq: BTreeMap<ProductId, u64> = BTreeMap::new();
    for line in fixture("gdax-python-api/full_channel_2017-06-25.extracted.jsonl").lines() {
        let m = parse(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        *counts.entry(kind(&m)).or_insert(0) += 1;
        let (product, s) = match &m {
            WsMessage::Received(r) => {
                client_oids += usize::from(r.client_oid.is_some());
                (r.product_id, r.sequence)
            }
            WsMessage::Open {
                product_id,
                sequence,
                ..
            } => (*product_id, *sequence),
            WsMessage::Done(d) => (d.product_id, d.sequence),
            _ => continue,
        };
        if let (Some(prev), Some(s)) = (seq.insert(product, s.unwrap()), s) {
            assert_eq!(s, prev + 1, "contiguous per product");
        }
    }
    let want: BTreeMap<_, _> = [("received", 7), ("open", 7), ("done", 8), ("heartbeat", 1)].into();
    assert_eq!(counts, want);
    assert_eq!(client_oids, 5);
}

#[test]
fn optional_field_edge_cases_parse() {
    let frames: Vec<_> = fixture("coinbase-pro-rs/ws_frames_from_tests.extracted.jsonl")
        .lines()
        .map(|l| parse(l).unwrap())
        .collect();
    let WsMessage::Change(c) = &frames[0] else {
        panic!("{:?}", frames[0])
    };
    assert_eq!(c.price, None, "a market order's change has no price");
    assert!(matches!(&frames[1], WsMessage::Done(d) if d.reason == "canceled"));
    assert_eq!(
        frames[1], frames[2],
        "user_id and profile_id are optional and ignored"
    );
}

#[test]
fn one_file_per_message_type_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bennycode/ws");
    let mut seen = Vec::new();
    for entry in walk(&dir) {
        let text = std::fs::read_to_string(&entry).unwrap();
        let m = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", entry.display()));
        seen.push(kind(&m));
        if entry.ends_with("level2/l2update.json") {
            let WsMessage::L2Update { time, changes, .. } = &m else {
                panic!()
            };
            assert_eq!(*time, None, "Coinbase's zero time is no time");
            assert_eq!(changes.len(), 5);
            assert_eq!(changes[0].0, Side::Buy);
            assert!(changes[0].2.is_zero());
        }
        if entry.ends_with("status/status.json") {
            assert_eq!(
                m,
                WsMessage::Status {
                    products: 74,
                    currencies: 32
                }
            );
        }
    }
    seen.sort_unstable();
    seen.dedup();
    for k in [
        "activate",
        "change",
        "done",
        "error",
        "heartbeat",
        "l2update",
        "match",
        "open",
        "received",
        "snapshot",
        "status",
        "subscriptions",
        "ticker",
    ] {
        assert!(seen.contains(&k), "{k} not covered: {seen:?}");
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn malformed_frames_are_errors_that_name_the_field() {
    let m = r#"{"type":"match","trade_id":1,"maker_order_id":"2a0da34e-61f7-4c36-88e5-c9dd15927b16","taker_order_id":"3c82abaa-c01e-4608-be59-6a1e69742891","side":"sell","size":"985","price":"PRICE","product_id":"SKL-BTC","time":"2021-04-17T16:43:37.089723Z"}"#;
    let cases = [
        ("", "malformed frame"),
        ("not json", "malformed frame"),
        ("[1,2,3]", "malformed frame"),
        (r#"{"no":"type"}"#, "malformed frame"),
        (r#"{"type":"match"}"#, "`product_id`: missing"),
        (&m.replace("PRICE", "0.-10000"), "`price`"),
        (&m.replace("PRICE", "1e5"), "`price`"),
        (&m.replace("PRICE", "-1"), "`price`"),
        (&m.replace("\"sell\"", "\"up\""), "`side`"),
        (
            &m.replace("PRICE", "1")
                .replace("2021-04-17T16", "yesterday"),
            "`time`",
        ),
        (
            &m.replace("PRICE", "1").replace("2a0da34e-61f7", "nope"),
            "`maker_order_id`",
        ),
        (
            r#"{"type":"l2update","product_id":"X-Y","changes":[["buy","1"]]}"#,
            "malformed frame",
        ),
        (
            r#"{"type":"l2update","product_id":"X-Y","changes":[["buy","1","NaN"]]}"#,
            "`changes`",
        ),
    ];
    for (frame, want) in cases {
        let err = parse(frame).unwrap_err().to_string();
        assert!(err.contains(want), "{frame:?}: {err}");
    }
    assert!(parse(&m.replace("PRICE", "0.00001305")).is_ok());
    assert!(
        matches!(parse(r#"{"type":"rfq_match","x":1}"#), Err(ParseError::UnknownType(t)) if t == "rfq_match")
    );
}
