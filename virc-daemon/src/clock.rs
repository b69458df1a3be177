//! The source of "now" for everything in the daemon that decides on time.
//!
//! virc-core has no clock; the daemon reads one of these once per message and
//! passes the value down, so replays and tests control time.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// Nanoseconds since the Unix epoch.
pub type Nanos = i64;

/// The source of "now".
pub trait Clock: Send + Sync + 'static {
    /// Current time in nanoseconds since the Unix epoch.
    fn now(&self) -> Nanos;
}

/// The wall clock, for live operation.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Nanos {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}

/// A clock moved by hand, for replays and tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Nanos) -> Self {
        Self(AtomicI64::new(start))
    }

    /// Moves the clock to `to`.
    pub fn set(&self, to: Nanos) {
        self.0.store(to, Ordering::SeqCst);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Nanos) {
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Nanos {
        self.0.load(Ordering::SeqCst)
    }
}

/// Converts nanoseconds since the epoch to a protobuf timestamp.
pub fn to_timestamp(nanos: Nanos) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: nanos.div_euclid(1_000_000_000),
        #[expect(
            clippy::cast_possible_truncation,
            reason = "rem_euclid of 1e9 fits in i32"
        )]
        nanos: nanos.rem_euclid(1_000_000_000) as i32,
    }
}

/// Nanoseconds since the epoch of a protobuf timestamp (saturating).
pub fn from_timestamp(ts: &prost_types::Timestamp) -> Nanos {
    ts.seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(ts.nanos))
}
