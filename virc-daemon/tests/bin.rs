//! The `virc-daemon` binary: config checking and refusal to start on unsafe input.
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

use std::os::unix::fs::PermissionsExt;

use assert_cmd::Command;

/// A spawned daemon that is killed if the test ends early, so a failing
/// test never leaves a process (or an open pipe) behind.
struct Guard(std::process::Child);

impl std::ops::Deref for Guard {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_daemon(
    dir: &std::path::Path,
    sock: &std::path::Path,
    env: &[(&str, &std::ffi::OsStr)],
) -> Guard {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("virc-daemon"));
    cmd.arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--socket")
        .arg(sock)
        .env_remove("VIRC_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Guard(cmd.spawn().unwrap())
}

fn daemon() -> Command {
    let mut c = Command::cargo_bin("virc-daemon").unwrap();
    c.env_remove("VIRC_CONFIG").env_remove("VIRC_API_TOKEN");
    c
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("virc.toml");
    std::fs::write(&path, "[daemon]\ndata_dir = \"/tmp/virc-check\"\n").unwrap();
    let out = daemon()
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("config ok") && text.contains("/tmp/virc-check"),
        "{text}"
    );
}

#[test]
fn check_config_names_the_bad_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("virc.toml");
    std::fs::write(&path, "[daemon]\n\nlog_levl = \"info\"\n").unwrap();
    let out = daemon()
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("line 3") && err.contains("log_levl") && err.contains("log_level"),
        "{err}"
    );
}

#[test]
fn missing_explicit_config_is_an_error() {
    let out = daemon()
        .args(["--config", "/nonexistent/virc.toml", "--check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/virc.toml"));
}

#[test]
fn world_readable_credentials_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials.toml");
    std::fs::write(&creds, "api_token = \"abc\"\n").unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = daemon()
        .arg("--credentials")
        .arg(&creds)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--socket")
        .arg(dir.path().join("s.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("chmod 600") && !err.contains("abc"), "{err}");
}

#[test]
fn sigterm_stops_the_daemon_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("d.sock");
    let mut child = spawn_daemon(dir.path(), &sock, &[]);
    for _ in 0..500 {
        if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "did not exit within 5 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(status.success());
    assert!(!sock.exists());
}

#[test]
fn partial_exchange_credentials_in_the_environment_are_refused() {
    let out = daemon()
        .env("VIRC_COINBASE_KEY", "k")
        .env("VIRC_COINBASE_SECRET", "TOPSECRET")
        .env_remove("VIRC_COINBASE_PASSPHRASE")
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("must be set together") && !err.contains("TOPSECRET"),
        "{err}"
    );
}

#[test]
fn systemd_readiness_watchdog_and_stopping_are_notified() {
    use std::os::unix::net::{UnixDatagram, UnixStream};
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let sock = dir.path().join("d.sock");
    let mut child = spawn_daemon(
        dir.path(),
        &sock,
        &[
            ("NOTIFY_SOCKET", notify_path.as_os_str()),
            ("WATCHDOG_USEC", std::ffi::OsStr::new("200000")),
        ],
    );
    let mut buf = [0u8; 512];
    // Retried on EINTR: sibling tests' child processes send this process signals.
    let recv = |buf: &mut [u8]| loop {
        match notify.recv(buf) {
            Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("no notification within 10 s: {e}"),
        }
    };
    let ready = recv(&mut buf);
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(
        ready.contains(&format!("MAINPID={}", child.id())),
        "{ready}"
    );
    // Ready means ready: the socket accepts connections at this moment.
    assert!(UnixStream::connect(&sock).is_ok());
    assert_eq!(recv(&mut buf), "WATCHDOG=1");
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let mut rest = Vec::new();
    while let Ok(n) = notify.recv(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        if rest.last().is_some_and(|m| m == "STOPPING=1") {
            break;
        }
    }
    assert_eq!(
        rest.last().map(String::as_str),
        Some("STOPPING=1"),
        "{rest:?}"
    );
    assert!(child.wait().unwrap().success());
}
