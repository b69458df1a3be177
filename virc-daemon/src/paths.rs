//! Default locations of the data directory and the gRPC socket.
//!
//! The same rules serve a user running the daemon from a shell and the system
//! service: systemd passes `STATE_DIRECTORY` and `RUNTIME_DIRECTORY` to a unit
//! with `StateDirectory=`/`RuntimeDirectory=`, so those win when present.

use std::{
    env,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// The system service's data directory.
pub const SYSTEM_DATA_DIR: &str = "/var/lib/virc";
/// The system service's socket.
pub const SYSTEM_SOCKET: &str = "/run/virc/virc.sock";

/// The uid of this process, read without `unsafe` from `/proc/self`.
pub fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

fn env_path(name: &str) -> Option<PathBuf> {
    env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Default data directory: `$STATE_DIRECTORY` (systemd), `$XDG_DATA_HOME/virc`,
/// `~/.local/share/virc`, or `/var/lib/virc` for root without a home.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = env_path("STATE_DIRECTORY") {
        // systemd may pass several colon-separated directories; the first is ours.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        return PathBuf::from(first);
    }
    if let Some(dir) = env_path("XDG_DATA_HOME") {
        return dir.join("virc");
    }
    if current_uid() == Some(0) {
        return PathBuf::from(SYSTEM_DATA_DIR);
    }
    match env_path("HOME") {
        Some(home) => home.join(".local/share/virc"),
        None => PathBuf::from(SYSTEM_DATA_DIR),
    }
}

/// Default socket: `$RUNTIME_DIRECTORY/virc.sock` (systemd),
/// `$XDG_RUNTIME_DIR/virc/virc.sock`, `/run/virc/virc.sock` for root, or
/// `/tmp/virc-<uid>/virc.sock`.
pub fn default_socket() -> PathBuf {
    if let Some(dir) = env_path("RUNTIME_DIRECTORY") {
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        return Path::new(&first).join("virc.sock");
    }
    if let Some(dir) = env_path("XDG_RUNTIME_DIR") {
        return dir.join("virc/virc.sock");
    }
    match current_uid() {
        Some(0) | None => PathBuf::from(SYSTEM_SOCKET),
        Some(uid) => PathBuf::from(format!("/tmp/virc-{uid}/virc.sock")),
    }
}

/// Config files searched when neither `--config` nor `$VIRC_CONFIG` names one.
pub fn config_search_path() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(dir) = env_path("XDG_CONFIG_HOME") {
        paths.push(dir.join("virc/virc.toml"));
    } else if let Some(home) = env_path("HOME") {
        paths.push(home.join(".config/virc/virc.toml"));
    }
    paths.push(PathBuf::from("/etc/virc/virc.toml"));
    paths
}
