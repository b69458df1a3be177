//! The systemd notify protocol (`sd_notify`), in the few lines it takes: a
//! datagram to `$NOTIFY_SOCKET` (a path, or `@name` for the abstract
//! namespace). Outside systemd the variable is unset and every call is a
//! no-op.
//!
//! The daemon sends `READY=1` once the store is open and every listener
//! accepts connections, `WATCHDOG=1` after each successful round trip through
//! the event bus (so a wedged daemon stops pinging), and `STOPPING=1` when
//! shutdown begins.

use std::{io, os::unix::net::UnixDatagram, time::Duration};

/// A connection to systemd's notify socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
}

impl Notifier {
    /// The notifier named by `$NOTIFY_SOCKET`, if any.
    pub fn from_env() -> Option<Self> {
        let target = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|v| !v.is_empty())?;
        let socket = UnixDatagram::unbound().ok()?;
        let connected = match target.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                    .and_then(|a| socket.connect_addr(&a))
            }
            None => socket.connect(&target),
        };
        match connected {
            Ok(()) => Some(Self { socket }),
            Err(e) => {
                tracing::warn!(error = %e, socket = %target, "Cannot reach systemd's NOTIFY_SOCKET; readiness will not be reported");
                None
            }
        }
    }

    /// Sends one notification, such as `READY=1`.
    pub fn send(&self, state: &str) -> io::Result<()> {
        self.socket.send(state.as_bytes()).map(|_| ())
    }
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, if systemd set
/// one for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let for_other = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|pid| pid != std::process::id());
    if for_other {
        return None;
    }
    let usec = std::env::var("WATCHDOG_USEC")
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec / 2))
}
