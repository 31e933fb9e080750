//! The hub under test: the release binary as a child process, on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A running hub; killed when dropped.
pub struct HubProc {
    pub child: Child,
    pub ssh: SocketAddr,
    pub http: SocketAddr,
    pub dir: PathBuf,
}

impl HubProc {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first admin token the hub wrote.
    pub fn admin_token(&self) -> anyhow::Result<String> {
        Ok(
            std::fs::read_to_string(self.dir.join(nextdeploy_hub::serve::INITIAL_TOKEN_FILE))
                .context("initial-admin-token")?
                .trim()
                .to_string(),
        )
    }

    /// `kill -9`, then reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HubProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The hub's log filter: `NEXTDEPLOY_BENCH_HUB_RUST_LOG`, else warnings only.
fn log_filter() -> String {
    std::env::var("NEXTDEPLOY_BENCH_HUB_RUST_LOG").unwrap_or_else(|_| "warn".into())
}

/// Where the hub's log goes: appended to `NEXTDEPLOY_BENCH_HUB_LOG` when set
/// (for diagnosing a run), else nowhere.
fn log_file() -> anyhow::Result<Stdio> {
    match std::env::var_os("NEXTDEPLOY_BENCH_HUB_LOG") {
        Some(p) => Ok(std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .with_context(|| format!("open {}", p.to_string_lossy()))?
            .into()),
        None => Ok(Stdio::null()),
    }
}

/// How long a hub may take to print its listening addresses.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Start the hub on `dir` with plain HTTP; `ports` reuses the addresses of
/// an earlier run.
pub fn start(dir: &Path, ports: Option<(SocketAddr, SocketAddr)>) -> anyhow::Result<HubProc> {
    start_with(dir, ports, false)
}

/// [`start`], with the API on HTTPS (the data dir's self-signed
/// certificate, as a hub runs by default) when `tls`.
pub fn start_with(
    dir: &Path,
    ports: Option<(SocketAddr, SocketAddr)>,
    tls: bool,
) -> anyhow::Result<HubProc> {
    start_args(dir, ports, tls, &[])
}

/// [`start_with`] with `extra` flags (a cluster's `--store` and secret).
pub fn start_args(
    dir: &Path,
    ports: Option<(SocketAddr, SocketAddr)>,
    tls: bool,
    extra: &[String],
) -> anyhow::Result<HubProc> {
    let bin = crate::build::bin_dir().join(crate::build::HUB);
    if !bin.exists() {
        bail!(
            "{} is missing: run cargo build --release --workspace",
            bin.display()
        );
    }
    let (ssh, http) = match ports {
        Some((s, h)) => (s.to_string(), h.to_string()),
        None => ("127.0.0.1:0".into(), "127.0.0.1:0".into()),
    };
    // NEXTDEPLOY_BENCH_HUB_WRAPPER runs the hub under a profiler, e.g.
    // `heaptrack -o /tmp/hub` (the pid and RSS figures are then the wrapper's).
    let wrapper = std::env::var("NEXTDEPLOY_BENCH_HUB_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut cmd = match words.next() {
        Some(w) => {
            let mut c = Command::new(w);
            c.args(words).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    cmd.args(["hub", "--data-dir"])
        .arg(dir)
        .args(["--ssh-listen", &ssh, "--http-listen", &http]);
    if !tls {
        cmd.arg("--plain-http");
    }
    cmd.args(extra);
    cmd
        // Loopback agents all come from 200 addresses of 127.0.0.0/24:
        // lift the per-address and per-prefix caps.
        .args([
            "--max-handshakes",
            "1024",
            "--max-handshakes-per-ip",
            "1024",
            "--max-handshakes-per-prefix",
            "1024",
        ]);
    Ok(spawn(cmd, dir)?.0)
}

/// Spawn the hub `cmd` on `dir` and wait for its listening addresses; the
/// hub, and its stdout's later lines.
fn spawn(mut cmd: Command, dir: &Path) -> anyhow::Result<(HubProc, Receiver<String>)> {
    let mut child = cmd
        .env("RUST_LOG", log_filter())
        // As deploy/systemd/nextdeploy-hub.service runs it.
        .env("MALLOC_ARENA_MAX", "2")
        .stdout(Stdio::piped())
        .stderr(log_file()?)
        .spawn()?;
    let out = child.stdout.take().context("no stdout")?;
    // Unbounded, but fed only by the hub's stdout: a few lines at start.
    let (tx, rx) = std::sync::mpsc::channel();
    // Keep draining: a hub whose stdout pipe closed would fail on its next line.
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let t0 = Instant::now();
    let (mut ssh, mut http) = (None, None);
    while ssh.is_none() || http.is_none() {
        let left = START_TIMEOUT.saturating_sub(t0.elapsed());
        let line = rx
            .recv_timeout(left)
            .context("the hub did not print its addresses")?;
        if let Some(a) = line.strip_prefix("SSH listening on ") {
            ssh = Some(a.trim().parse()?);
        }
        if let Some(a) = line.strip_prefix("HTTP listening on ") {
            let a = a.trim();
            let a = a.strip_prefix("https://").unwrap_or(a);
            http = Some(a.trim_start_matches("http://").parse()?);
        }
    }
    let hub = HubProc {
        child,
        ssh: ssh.context("no SSH address")?,
        http: http.context("no HTTP address")?,
        dir: dir.to_path_buf(),
    };
    Ok((hub, rx))
}

/// A hub started as a user would try it, `nextdeploy hub --local-agent`
/// (HTTPS API, its own agent enrolled and run as its child), with `home` as
/// the `HOME` it saves its CLI login under; the hub and the local agent's
/// name, once the hub has started the agent.
pub fn start_local_agent(dir: &Path, home: &Path) -> anyhow::Result<(HubProc, String)> {
    let bin = crate::build::bin_dir().join(crate::build::HUB);
    if !bin.exists() {
        bail!(
            "{} is missing: build the hub and the agent with --release",
            bin.display()
        );
    }
    let mut cmd = Command::new(&bin);
    cmd.args(["hub", "--local-agent", "--data-dir"])
        .arg(dir)
        .args([
            "--ssh-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ]);
    cli_env(&mut cmd, home);
    let (hub, rx) = spawn(cmd, dir).with_context(|| format!("start {}", bin.display()))?;
    let t0 = Instant::now();
    loop {
        let left = START_TIMEOUT.saturating_sub(t0.elapsed());
        let line = rx.recv_timeout(left).context(
            "the hub did not start its local agent (NEXTDEPLOY_BENCH_HUB_LOG=FILE keeps its log)",
        )?;
        // `Local agent "NAME" is connecting over SSH. Try:`
        if let Some(rest) = line.strip_prefix("Local agent ") {
            let name = rest.split('"').nth(1).context("no agent name")?;
            return Ok((hub, name.to_string()));
        }
    }
}

/// Point a `nextdeploy` command (the hub, or a CLI call) at the login kept
/// under `home`, whatever the bench's own environment says.
pub fn cli_env(cmd: &mut Command, home: &Path) {
    cmd.env("HOME", home)
        .env_remove("NEXTDEPLOY_CONFIG_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("NEXTDEPLOY_TLS_PIN");
}

/// `agents_online` from the hub's `/health` (None while it does not answer).
pub async fn agents_online(http: SocketAddr) -> Option<u64> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(http).await.ok()?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: bench\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        let body = text.split_once("\r\n\r\n")?.1;
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        v.get("agents_online")?.as_u64()
    };
    tokio::time::timeout(Duration::from_secs(2), fut)
        .await
        .ok()
        .flatten()
}

/// Wait until the hub reports `n` agents online; the time it took.
pub async fn wait_online(http: SocketAddr, n: u64, limit: Duration) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        if agents_online(http).await.unwrap_or(0) >= n {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > limit {
            bail!(
                "only {} of {n} agents online after {:?}",
                agents_online(http).await.unwrap_or(0),
                limit
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
