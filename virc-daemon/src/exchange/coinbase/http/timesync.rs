//! The clock the connector signs with: local time corrected by the skew
//! to Coinbase's clock, measured with `GET /time`.
//!
//! `offset = server − (t_send + t_recv) / 2`: the server's time is taken to
//! be read halfway through the round trip. Requests are signed with
//! `now + offset` in decimal seconds; a skew above 5 s is worth a warning
//! (signatures expire after 30 s of difference).

use serde::Deserialize;
use virc_core::time::parse_rfc3339;

/// How far Coinbase's clock is from ours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skew {
    /// Nanoseconds to add to local time.
    pub offset_ns: i64,
}

/// A skew worth a warning event.
pub const WARN_NS: i64 = 5_000_000_000;

#[derive(Deserialize)]
struct TimeBody {
    iso: String,
}

impl Skew {
    /// The skew from a `GET /time` body, sent at `t_send` and answered at `t_recv` (local ns).
    pub fn measure(t_send: i64, t_recv: i64, body: &str) -> Result<Self, String> {
        let b: TimeBody =
            serde_json::from_str(body).map_err(|e| format!("GET /time answered `{body}`: {e}"))?;
        // The ISO form, not the float epoch: exact to the nanosecond.
        let server = parse_rfc3339(&b.iso).map_err(|e| format!("GET /time: {e}"))?;
        let mid = t_send + (t_recv - t_send) / 2;
        Ok(Self {
            offset_ns: server - mid,
        })
    }

    /// Coinbase's time now, given local `now`.
    pub fn now(self, local: i64) -> i64 {
        local + self.offset_ns
    }

    /// `CB-ACCESS-TIMESTAMP` for local `now`: seconds with milliseconds.
    pub fn header(self, local: i64) -> String {
        let t = self.now(local);
        let ms = t.div_euclid(1_000_000);
        format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
    }

    /// Whether the clocks are far enough apart to warn about.
    pub fn is_large(self) -> bool {
        self.offset_ns.abs() > WARN_NS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn the_skew_is_read_at_the_middle_of_the_round_trip() {
        // The documented example: 2015-01-07T23:47:25.201Z.
        let body = r#"{"iso":"2015-01-07T23:47:25.201Z","epoch":1420674445.201}"#;
        let server = 1_420_674_445_201_000_000;
        let s = Skew::measure(server - 10 * S, server - 8 * S, body).unwrap();
        assert_eq!(s.offset_ns, 9 * S);
        assert!(s.is_large());
        assert_eq!(s.header(server - 9 * S), "1420674445.201");
        let s = Skew::measure(server - S / 10, server + S / 10, body).unwrap();
        assert_eq!(s, Skew { offset_ns: 0 });
        assert!(!s.is_large());
        assert!(Skew::measure(0, 1, "{}").unwrap_err().contains("GET /time"));
        assert!(Skew::measure(0, 1, r#"{"iso":"yesterday"}"#).is_err());
    }
}
