//! OpenSSH client helpers: key generation, `ssh` to the hub with a given
//! key, and the hub's host-key fingerprint as OpenSSH sees it.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use crate::hub::{fingerprint_in, Hub};
use crate::paths::TempDir;
use crate::process::{run_bounded, Output};

/// Generate a fresh ed25519 key pair with `ssh-keygen` at `path`.
pub fn ssh_keygen(path: &Path) -> Result<()> {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", "stranger", "-f"])
        .arg(path);
    run_bounded(cmd, Duration::from_secs(10))?.ok()?;
    Ok(())
}

/// `ssh` with `key` to `agent@127.0.0.1 -p <ssh port>`, batch mode, no host
/// key checks, bounded. `extra` goes before the destination, `remote` after.
pub fn ssh_with_key(hub: &Hub, key: &Path, extra: &[&str], remote: &[&str]) -> Result<Output> {
    let mut cmd = Command::new("ssh");
    cmd.arg("-i")
        .arg(key)
        .args(["-p", &hub.ssh_port.to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            "-F",
            "/dev/null",
        ])
        .args(extra)
        .arg("agent@127.0.0.1")
        .args(remote)
        .env("HOME", &hub.home);
    run_bounded(cmd, Duration::from_secs(20))
}

/// The hub's host-key fingerprint as OpenSSH sees it:
/// `ssh-keyscan -p PORT -t ed25519 127.0.0.1`, then `ssh-keygen -lf`.
pub fn keyscan_fingerprint(port: u16) -> Result<String> {
    let mut scan = Command::new("ssh-keyscan");
    scan.args([
        "-p",
        &port.to_string(),
        "-T",
        "10",
        "-t",
        "ed25519",
        "127.0.0.1",
    ]);
    let scanned = run_bounded(scan, Duration::from_secs(20))?.ok()?;
    if scanned.stdout.trim().is_empty() {
        bail!("ssh-keyscan returned no key: {}", scanned.describe());
    }
    let dir = TempDir::new("keyscan")?;
    let file = dir.path().join("known_hosts");
    fs::write(&file, &scanned.stdout)?;
    let mut keygen = Command::new("ssh-keygen");
    keygen.arg("-lf").arg(&file);
    let out = run_bounded(keygen, Duration::from_secs(10))?.ok()?;
    fingerprint_in(&out.stdout)
        .ok_or_else(|| anyhow!("no SHA256: in ssh-keygen output: {}", out.stdout))
}
