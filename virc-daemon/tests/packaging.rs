//! The Debian package and the systemd service: the packaged config is
//! valid, the unit verifies and is hardened (exposure ≤ 2.0), the
//! maintainer scripts parse (and pass shellcheck where it is installed), and
//! the .deb builds with the promised contents where cargo-deb is installed
//! (`.ci/run` installs it).
#![allow(
    clippy::unwrap_used,
    reason = "helpers in test files fail loudly, like the tests"
)]

use std::{path::PathBuf, process::Command};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn packaged_config_passes_check_config() {
    let out = Command::new(assert_cmd::cargo::cargo_bin("virc-daemon"))
        .arg("--config")
        .arg(root().join("packaging/virc.toml"))
        .arg("--check-config")
        .env_remove("VIRC_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("/var/lib/virc"), "{text}");
    assert!(text.contains("/run/virc/virc.sock"), "{text}");
}

#[test]
fn unit_verifies_and_is_hardened() {
    if !have("systemd-analyze") {
        eprintln!("systemd-analyze not installed; unit checks skipped");
        return;
    }
    let unit = root().join("packaging/systemd/virc.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for virc.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");

    // Outside an installed system only the binary itself is missing.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&out.stderr);
    for line in errors.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.contains("/usr/bin/virc-daemon is not executable"),
            "systemd-analyze verify: {line}"
        );
    }
}

#[test]
fn maintainer_scripts_parse_and_pass_shellcheck() {
    for script in [
        "packaging/debian/postinst",
        "packaging/debian/postrm",
        "packaging/build-deb.sh",
        "packaging/check-deb.sh",
    ] {
        let path = root().join(script);
        let out = Command::new("sh").arg("-n").arg(&path).output().unwrap();
        assert!(out.status.success(), "{script}: {out:?}");
        if have("shellcheck") {
            let out = Command::new("shellcheck").arg(&path).output().unwrap();
            assert!(out.status.success(), "{script}: {out:?}");
        }
    }
}

#[test]
fn deb_builds_with_the_promised_contents() {
    if !have("cargo-deb") || !have("dpkg-deb") {
        eprintln!(
            "cargo-deb or dpkg-deb not installed; .deb build skipped (.ci/run installs cargo-deb)"
        );
        return;
    }
    let out = Command::new("sh")
        .arg(root().join("packaging/build-deb.sh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "build-deb.sh: {out:?}");
    let deb = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();
    let out = Command::new("sh")
        .arg(root().join("packaging/check-deb.sh"))
        .arg(root().join(&deb))
        .output()
        .unwrap();
    assert!(out.status.success(), "check-deb.sh {deb}: {out:?}");
}
