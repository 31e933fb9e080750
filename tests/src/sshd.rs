//! A real OpenSSH server (Debian's sshd) on a loopback port, for push-install
//! tests: its own host key, root login by key only, authorized_keys in a temp
//! file. Killed on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::paths::{free_port, TempDir};
use crate::process::{wait_until, Proc};
use crate::ssh::ssh_keygen;

/// A running sshd and the operator key it accepts for root.
pub struct Sshd {
    /// Temp dir with config, keys and the sshd log.
    pub dir: TempDir,
    /// Loopback port.
    pub port: u16,
    /// The operator's private key (authorized for root).
    pub client_key: PathBuf,
    child: Option<Proc>,
}

/// `sshd -D -e -f <dir>/sshd_config`, its log appended to `<dir>/sshd.log`.
fn spawn_sshd(d: &Path) -> Result<Proc> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.join("sshd.log"))?;
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    Proc::spawn(cmd).context("start /usr/sbin/sshd (apt-get install openssh-server)")
}

impl Sshd {
    /// Start one with a fresh host key.
    pub fn start() -> Result<Sshd> {
        Self::start_with("LogLevel VERBOSE\n")
    }

    /// Start one with `extra` appended to its config (e.g. a `LogLevel`).
    pub fn start_with(extra: &str) -> Result<Sshd> {
        let dir = TempDir::new("sshd")?;
        let d = dir.path();
        fs::create_dir_all("/run/sshd").context("create /run/sshd")?;
        ssh_keygen(&d.join("host_key"))?;
        let client_key = d.join("operator_ed25519");
        ssh_keygen(&client_key)?;
        fs::copy(d.join("operator_ed25519.pub"), d.join("authorized_keys"))?;
        let port = free_port()?;
        let cfg = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPermitRootLogin prohibit-password\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nPidFile {d}/sshd.pid\n{extra}",
            d = d.display()
        );
        fs::write(d.join("sshd_config"), cfg)?;
        let child = Some(spawn_sshd(d)?);
        let s = Sshd {
            dir,
            port,
            client_key,
            child,
        };
        wait_until(
            "sshd listening",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                Ok(std::net::TcpStream::connect(("127.0.0.1", port))
                    .ok()
                    .map(|_| ()))
            },
        )?;
        Ok(s)
    }

    /// Replace the host key with a new one and restart on the same port.
    pub fn change_host_key(&mut self) -> Result<()> {
        self.child = None;
        let d = self.dir.path().to_path_buf();
        fs::remove_file(d.join("host_key"))?;
        fs::remove_file(d.join("host_key.pub"))?;
        ssh_keygen(&d.join("host_key"))?;
        self.child = Some(spawn_sshd(&d)?);
        let port = self.port;
        wait_until(
            "sshd listening again",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                Ok(std::net::TcpStream::connect(("127.0.0.1", port))
                    .ok()
                    .map(|_| ()))
            },
        )
    }

    /// `root@127.0.0.1:PORT`.
    pub fn target(&self) -> String {
        format!("root@127.0.0.1:{}", self.port)
    }

    /// The sshd log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}
