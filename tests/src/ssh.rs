//! OpenSSH client helpers: key generation, `ssh` to the hub with a given
//! key, and the hub's host-key fingerprint as OpenSSH sees it.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
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

/// A russh client that logs in with a key and then says nothing: it accepts
/// the channels the hub opens and never writes on them (no hello). It runs on
/// a runtime of its own, so the connection lives while the test thread waits.
pub struct SilentClient {
    handle: russh::client::Handle<Silent>,
    rt: tokio::runtime::Runtime,
}

/// Trusts any host key (the hub under test is ours) and accepts channels.
pub struct Silent;

impl russh::client::Handler for Silent {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// How long connecting and authenticating a simulated client may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Connect to `addr` with `handler` and log in as `user` with the OpenSSH
/// private key at `key`, within [`LOGIN_TIMEOUT`]: the handle and whether the
/// hub accepted the key.
pub async fn key_login<H>(
    addr: &str,
    key: &Path,
    user: &str,
    handler: H,
) -> Result<(russh::client::Handle<H>, bool)>
where
    H: russh::client::Handler<Error = russh::Error> + Send + 'static,
{
    let key = Arc::new(russh::keys::load_secret_key(key, None)?);
    let config = Arc::new(russh::client::Config::default());
    let login = async {
        let mut handle = russh::client::connect(config, addr, handler).await?;
        let key = russh::keys::PrivateKeyWithHashAlg::new(key, None);
        let auth = handle.authenticate_publickey(user, key).await?;
        anyhow::Ok((handle, auth.success()))
    };
    tokio::time::timeout(LOGIN_TIMEOUT, login)
        .await
        .map_err(|_| anyhow!("login to {addr} took over {LOGIN_TIMEOUT:?}"))?
}

impl SilentClient {
    /// Log in to `addr` as `user` with the OpenSSH private key at `key`.
    /// `Ok(None)`: the hub refused the key (authentication failure).
    pub fn login(addr: &str, key: &Path, user: &str) -> Result<Option<SilentClient>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let (handle, ok) = rt.block_on(key_login(addr, key, user, Silent))?;
        Ok(ok.then_some(SilentClient { handle, rt }))
    }

    /// Whether the hub has closed the connection.
    pub fn is_closed(&self) -> bool {
        let _enter = self.rt.enter();
        self.handle.is_closed()
    }

    /// Wait up to `within` for the hub to close the connection; how long it
    /// took, or `None` if it is still open.
    pub fn wait_closed(&self, within: Duration) -> Option<Duration> {
        let start = std::time::Instant::now();
        while start.elapsed() < within {
            if self.is_closed() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}
