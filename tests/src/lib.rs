//! End-to-end test harness: runs the real `nextdeploy` (hub and CLI) and
//! `nextdeploy-agent` binaries on loopback ports chosen by the OS.
//!
//! The binaries belong to other crates of the workspace, so `CARGO_BIN_EXE_*`
//! cannot name them: they are looked up in the workspace's target directory
//! (`CARGO_TARGET_DIR` honoured). Run `cargo build --workspace` first
//! (`scripts/test.sh` does).
//!
//! Every wait here is bounded; every child process is killed on drop; the
//! output of every long-running child is drained to a log file whose tail is
//! printed when a test panics.

pub mod deploy;
pub mod docker;
pub mod sshd;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use serde_json::json;

/// Default bound for one CLI invocation.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for the hub to print its startup lines.
pub const HUB_START_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of a log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;

// ---------------------------------------------------------------------------
// Locations
// ---------------------------------------------------------------------------

/// The workspace root (parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo target directory (`CARGO_TARGET_DIR`, relative paths taken from
/// the workspace root; default `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let p = PathBuf::from(d);
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// Path of a workspace binary in `<target>/debug`, or a clear error.
pub fn bin(name: &str) -> Result<PathBuf> {
    let p = target_dir().join("debug").join(name);
    if p.is_file() {
        Ok(p)
    } else {
        bail!(
            "binary {} not found: run cargo build --workspace first",
            p.display()
        )
    }
}

/// The `nextdeploy` binary (hub and CLI).
pub fn hub_bin() -> Result<PathBuf> {
    bin("nextdeploy")
}

/// The `nextdeploy-agent` binary.
pub fn agent_bin() -> Result<PathBuf> {
    bin("nextdeploy-agent")
}

// ---------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary directory removed on drop, kept (and its path printed) when
/// the test is panicking so its logs can be read.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new empty directory under the system temp dir.
    pub fn new(tag: &str) -> Result<TempDir> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let r: u32 = rand::random();
        let path = std::env::temp_dir().join(format!(
            "nextdeploy-test-{tag}-{}-{n}-{r:08x}",
            std::process::id()
        ));
        fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("(kept for inspection: {})", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------
// Running commands with a bound
// ---------------------------------------------------------------------------

/// The result of a finished command.
#[derive(Debug, Clone)]
pub struct Output {
    /// Human-readable command line (for messages).
    pub cmdline: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// How long the command ran.
    pub elapsed: Duration,
}

impl Output {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Stdout parsed as one JSON document.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(self.stdout.trim()).with_context(|| {
            format!(
                "stdout of `{}` is not JSON\n{}",
                self.cmdline,
                self.describe()
            )
        })
    }

    /// Fail unless the exit status is 0.
    pub fn ok(self) -> Result<Output> {
        if self.success() {
            Ok(self)
        } else {
            bail!("command failed: {}", self.describe())
        }
    }

    /// Fail if the exit status is 0.
    pub fn failed(self) -> Result<Output> {
        if self.success() {
            bail!("command unexpectedly succeeded: {}", self.describe())
        } else {
            Ok(self)
        }
    }

    /// Status, stdout and stderr, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}` -> {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.status, self.stdout, self.stderr
        )
    }

    /// Whether stdout or stderr contain `needle`, case-insensitively.
    pub fn mentions(&self, needle: &str) -> bool {
        let n = needle.to_lowercase();
        self.stderr.to_lowercase().contains(&n) || self.stdout.to_lowercase().contains(&n)
    }
}

/// A command line for messages.
pub(crate) fn cmdline(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Read a pipe to the end on its own thread (so a full pipe never blocks the child).
pub(crate) fn read_all<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

/// Run a command to completion with stdin closed, killing it after `timeout`.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<Output> {
    let line = cmdline(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawn `{line}`"))?;
    let out = read_all(child.stdout.take());
    let err = read_all(child.stderr.take());
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
            let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            bail!("`{line}` did not finish within {timeout:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    Ok(Output {
        cmdline: line,
        status,
        stdout,
        stderr,
        elapsed: start.elapsed(),
    })
}

/// Poll `f` every `every` until it yields `Some`, or fail after `timeout` with
/// the last error / `what`.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    let mut last_err: Option<anyhow::Error> = None;
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if start.elapsed() > timeout {
            return Err(match last_err {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        thread::sleep(every);
    }
}

// ---------------------------------------------------------------------------
// Log draining
// ---------------------------------------------------------------------------

/// Copy each line of `r` to `log` (prefixed by `tag`) and, while someone
/// listens, to `tx`. Runs until EOF, so the child's pipe never fills.
fn drain_lines<R: Read + Send + 'static>(
    r: R,
    log: &Path,
    tag: &'static str,
    tx: Option<mpsc::Sender<String>>,
) -> Result<thread::JoinHandle<()>> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    Ok(thread::spawn(move || {
        let mut reader = BufReader::new(r);
        let mut buf = Vec::new();
        let mut tx = tx;
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']);
                    let _ = file.write_all(format!("[{tag}] {line}\n").as_bytes());
                    if let Some(t) = &tx {
                        if t.send(line.to_string()).is_err() {
                            tx = None;
                        }
                    }
                }
            }
        }
    }))
}

/// The last `n` lines of a file (lossy), for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(n);
            lines[from..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

// ---------------------------------------------------------------------------
// Hub
// ---------------------------------------------------------------------------

/// Options for [`Hub::start`].
#[derive(Debug, Clone, Default)]
pub struct HubOpts {
    /// Extra arguments after `hub --data-dir ... --ssh-listen ... --http-listen ...`.
    pub extra_args: Vec<String>,
    /// Extra environment variables for the hub process.
    pub env: Vec<(String, String)>,
}

impl HubOpts {
    /// Options with these extra hub arguments.
    pub fn args<I, S>(args: I) -> HubOpts
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        HubOpts {
            extra_args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
        }
    }
}

/// A running hub on loopback ports, with its own data dir and CLI home.
#[derive(Debug)]
pub struct Hub {
    dir: TempDir,
    /// `--data-dir` of the hub.
    pub data_dir: PathBuf,
    /// HOME for CLI invocations.
    pub home: PathBuf,
    /// The hub's stdout/stderr log.
    pub log: PathBuf,
    /// SSH port (agents).
    pub ssh_port: u16,
    /// HTTP port (WebSocket API, /health).
    pub http_port: u16,
    /// Host-key fingerprint as printed, `SHA256:...`.
    pub fingerprint: String,
    /// The first admin API token (from `<data-dir>/initial-admin-token`).
    pub admin_token: String,
    opts: HubOpts,
    child: Option<Child>,
    starts: u32,
}

/// What the hub printed at startup.
struct Ready {
    ssh_port: u16,
    http_port: u16,
    fingerprint: String,
}

fn port_after(line: &str, marker: &str) -> Option<u16> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let addr = rest.split_whitespace().next()?;
    let port = addr.rsplit(':').next()?;
    port.trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

fn fingerprint_in(line: &str) -> Option<String> {
    let i = line.find("SHA256:")?;
    let fp: String = line[i..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    Some(fp.trim_end_matches(['.', ',', ')']).to_string())
}

impl Hub {
    /// Start a hub on a fresh data dir, ports chosen by the OS.
    pub fn start(opts: HubOpts) -> Result<Hub> {
        let dir = TempDir::new("hub")?;
        let data_dir = dir.path().join("data");
        let home = dir.path().join("home");
        fs::create_dir_all(home.join(".config"))?;
        let log = dir.path().join("hub.log");
        let mut hub = Hub {
            data_dir,
            home,
            log,
            ssh_port: 0,
            http_port: 0,
            fingerprint: String::new(),
            admin_token: String::new(),
            opts,
            child: None,
            starts: 0,
            dir,
        };
        hub.spawn(0, 0)?;
        let token_file = hub.data_dir.join("initial-admin-token");
        let token = wait_until(
            "initial-admin-token",
            Duration::from_secs(5),
            Duration::from_millis(50),
            || {
                Ok(fs::read_to_string(&token_file)
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()))
            },
        )
        .with_context(|| format!("{} not written\n{}", token_file.display(), hub.log_tail()))?;
        hub.admin_token = token;
        Ok(hub)
    }

    /// The test's temp dir (data dir, CLI home and logs live here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self, ssh_port: u16, http_port: u16) -> Result<()> {
        let mut cmd = Command::new(hub_bin()?);
        cmd.arg("hub")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--ssh-listen")
            .arg(format!("127.0.0.1:{ssh_port}"))
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{http_port}"))
            .args(&self.opts.extra_args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env_remove("NEXTDEPLOY_HUB")
            .env_remove("NEXTDEPLOY_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        self.starts += 1;
        {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)?;
            writeln!(f, "=== start #{}: {} ===", self.starts, cmdline(&cmd))?;
        }
        let mut child = cmd.spawn().context("spawn nextdeploy hub")?;
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            drain_lines(out, &self.log, "out", Some(tx.clone()))?;
        }
        if let Some(err) = child.stderr.take() {
            drain_lines(err, &self.log, "err", Some(tx))?;
        }
        self.child = Some(child);
        let ready = self.wait_ready(&rx)?;
        self.ssh_port = ready.ssh_port;
        self.http_port = ready.http_port;
        self.fingerprint = ready.fingerprint;
        Ok(())
    }

    fn wait_ready(&mut self, rx: &mpsc::Receiver<String>) -> Result<Ready> {
        let start = Instant::now();
        let (mut ssh, mut http, mut fp) = (None, None, None);
        loop {
            if let (Some(s), Some(h), Some(f)) = (ssh, http, fp.clone()) {
                return Ok(Ready {
                    ssh_port: s,
                    http_port: h,
                    fingerprint: f,
                });
            }
            let left = HUB_START_TIMEOUT.saturating_sub(start.elapsed());
            if left.is_zero() {
                bail!(
                    "hub did not print its SSH/HTTP/fingerprint lines within {HUB_START_TIMEOUT:?} \
                     (ssh={ssh:?} http={http:?} fingerprint={fp:?})\n{}",
                    self.log_tail()
                );
            }
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(p) = port_after(&line, "SSH listening on ") {
                        ssh = Some(p);
                    }
                    if let Some(p) = port_after(&line, "HTTP listening on http://") {
                        http = Some(p);
                    }
                    if line.contains("Host key fingerprint:") {
                        fp = fingerprint_in(&line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self
                        .child
                        .as_mut()
                        .and_then(|c| c.wait().ok())
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    self.child = None;
                    // Give the drain threads a moment to flush the last lines.
                    thread::sleep(Duration::from_millis(50));
                    bail!(
                        "hub exited before it was ready ({status})\n{}",
                        self.log_tail()
                    );
                }
            }
        }
    }

    /// Kill the hub with SIGKILL and reap it.
    pub fn kill9(&mut self) {
        kill_child(&mut self.child);
    }

    /// Whether the hub process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Start the hub again on the same data dir and the same ports (kills a
    /// still-running one first). Updates `fingerprint` from what it prints.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        let (s, h) = (self.ssh_port, self.http_port);
        self.spawn(s, h)?;
        if (self.ssh_port, self.http_port) != (s, h) {
            bail!(
                "hub restarted on other ports: ssh {} (want {s}), http {} (want {h})",
                self.ssh_port,
                self.http_port
            );
        }
        Ok(())
    }

    /// `127.0.0.1:<ssh port>`.
    pub fn ssh_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ssh_port)
    }

    /// `http://127.0.0.1:<http port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// `ws://127.0.0.1:<http port>/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.http_port)
    }

    /// The last lines of the hub's log.
    pub fn log_tail(&self) -> String {
        format!(
            "--- hub log ({}) ---\n{}",
            self.log.display(),
            tail(&self.log, LOG_TAIL_LINES)
        )
    }

    /// The whole hub log.
    pub fn log_text(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// A `nextdeploy` CLI command aimed at this hub with `token`.
    pub fn cli_command(&self, token: &str) -> Result<Command> {
        let mut cmd = Command::new(hub_bin()?);
        cmd.env("NEXTDEPLOY_HUB", self.url())
            .env("NEXTDEPLOY_TOKEN", token)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"));
        Ok(cmd)
    }

    /// Run `nextdeploy <args>` as admin.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        self.cli_as(&self.admin_token, args)
    }

    /// Run `nextdeploy <args>` with a given API token.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> Result<Output> {
        let mut cmd = self.cli_command(token)?;
        cmd.args(args);
        run_bounded(cmd, CLI_TIMEOUT)
    }

    /// Run `nextdeploy <args> --output json` as admin; fail on non-zero exit;
    /// parse stdout.
    pub fn cli_json(&self, args: &[&str]) -> Result<Value> {
        self.cli_json_as(&self.admin_token, args)
    }

    /// [`Hub::cli_json`] with a given token.
    pub fn cli_json_as(&self, token: &str, args: &[&str]) -> Result<Value> {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--output", "json"]);
        self.cli_as(token, &a)?.ok()?.json()
    }

    /// Create a join token: `join-token create --name N [--labels L] --ttl T`.
    pub fn join_token(&self, name: &str, labels: &str, ttl: &str) -> Result<JoinToken> {
        let mut args = vec!["join-token", "create", "--name", name];
        if !labels.is_empty() {
            args.extend(["--labels", labels]);
        }
        args.extend(["--ttl", ttl]);
        let v = self.cli_json(&args)?;
        let token = v["token"]
            .as_str()
            .ok_or_else(|| anyhow!("join-token create: no \"token\" string in {v}"))?
            .to_string();
        let id = v["id"].as_str().unwrap_or_default().to_string();
        Ok(JoinToken { id, token, raw: v })
    }

    /// `agent list --output json` as an array.
    pub fn agent_list(&self) -> Result<Vec<Value>> {
        let v = self.cli_json(&["agent", "list"])?;
        match v {
            Value::Array(a) => Ok(a),
            other => bail!("agent list --output json is not an array: {other}"),
        }
    }

    /// One agent's entry in `agent list`, if listed.
    pub fn agent_entry(&self, name: &str) -> Result<Option<Value>> {
        Ok(self
            .agent_list()?
            .into_iter()
            .find(|a| a["name"].as_str() == Some(name)))
    }

    /// Raw `GET path` on the HTTP port: (status, body).
    pub fn http_get(&self, path: &str) -> Result<(u16, String)> {
        http_get(self.http_port, path, &[])
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill9();
        if thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// A join token as returned by `join-token create --output json`.
#[derive(Debug, Clone)]
pub struct JoinToken {
    /// Public id.
    pub id: String,
    /// The whole token text.
    pub token: String,
    /// The whole JSON reply.
    pub raw: Value,
}

/// Start a hub with default options (free-function form).
pub fn start_hub() -> Result<Hub> {
    Hub::start(HubOpts::default())
}

/// `nextdeploy <args>` as admin.
pub fn cli(hub: &Hub, args: &[&str]) -> Result<Output> {
    hub.cli(args)
}

/// `nextdeploy <args> --output json` as admin, parsed; fails on non-zero exit.
pub fn cli_json(hub: &Hub, args: &[&str]) -> Result<Value> {
    hub.cli_json(args)
}

// ---------------------------------------------------------------------------
// Agents
// ---------------------------------------------------------------------------

/// An enrolled agent with its own config dir; `run` is spawned by
/// [`enroll_agent`] and killed on drop.
#[derive(Debug)]
pub struct Agent {
    dir: TempDir,
    /// Agent name (from the join token).
    pub name: String,
    /// `agent.toml`.
    pub config: PathBuf,
    /// The agent's private key (`agent_ed25519` beside the config).
    pub key: PathBuf,
    /// The `run` log.
    pub log: PathBuf,
    /// What `enroll` printed.
    pub enroll_output: Output,
    child: Option<Child>,
    starts: u32,
}

/// `nextdeploy-agent enroll --hub ADDR --token T --config CONFIG`.
pub fn agent_enroll(hub_ssh_addr: &str, token: &str, config: &Path) -> Result<Output> {
    let mut cmd = Command::new(agent_bin()?);
    cmd.arg("enroll")
        .arg("--hub")
        .arg(hub_ssh_addr)
        .arg("--token")
        .arg(token)
        .arg("--config")
        .arg(config);
    run_bounded(cmd, CLI_TIMEOUT)
}

/// After a successful enrolment: the config exists and the private key
/// beside it is mode 0600.
pub fn check_enrolled_files(config: &Path, key: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !config.is_file() {
        bail!("enrol exited 0 but wrote no config at {}", config.display());
    }
    let meta = fs::metadata(key)
        .with_context(|| format!("enrol exited 0 but wrote no key at {}", key.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode != 0o600 {
        bail!("agent key {} has mode {mode:o}, want 600", key.display());
    }
    Ok(())
}

impl Agent {
    /// Enrol with an existing join token into a fresh dir (does not start `run`).
    pub fn enroll(hub: &Hub, name: &str, token: &str) -> Result<Agent> {
        let dir = TempDir::new(&format!("agent-{name}"))?;
        let config = dir.path().join("agent.toml");
        let out = agent_enroll(&hub.ssh_addr(), token, &config)?;
        let out = out
            .ok()
            .with_context(|| format!("enrol agent {name}\n{}", hub.log_tail()))?;
        let key = dir.path().join("agent_ed25519");
        check_enrolled_files(&config, &key).with_context(|| out.describe())?;
        Ok(Agent {
            name: name.to_string(),
            config,
            key,
            log: dir.path().join("agent.log"),
            enroll_output: out,
            child: None,
            starts: 0,
            dir,
        })
    }

    /// The agent's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Spawn `nextdeploy-agent run --config ...` (kills a running one first).
    pub fn start(&mut self) -> Result<()> {
        kill_child(&mut self.child);
        let mut cmd = Command::new(agent_bin()?);
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.starts += 1;
        {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)?;
            writeln!(f, "=== start #{}: {} ===", self.starts, cmdline(&cmd))?;
        }
        let mut child = cmd.spawn().context("spawn nextdeploy-agent run")?;
        if let Some(out) = child.stdout.take() {
            drain_lines(out, &self.log, "out", None)?;
        }
        if let Some(err) = child.stderr.take() {
            drain_lines(err, &self.log, "err", None)?;
        }
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL the `run` process and reap it.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// Whether `run` is still running (Some(status) once it exited).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The last lines of the agent's log.
    pub fn log_tail(&self) -> String {
        format!(
            "--- agent {} log ({}) ---\n{}",
            self.name,
            self.log.display(),
            tail(&self.log, LOG_TAIL_LINES)
        )
    }

    /// The whole agent log.
    pub fn log_text(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        kill_child(&mut self.child);
        if thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// Make a join token (`labels` as `k=v,k=v`, may be empty), enrol a fresh
/// agent with it and start `nextdeploy-agent run`.
pub fn enroll_agent(hub: &Hub, name: &str, labels: &str) -> Result<Agent> {
    let jt = hub.join_token(name, labels, "1h")?;
    let mut agent = Agent::enroll(hub, name, &jt.token)?;
    agent.start()?;
    Ok(agent)
}

fn is_online(entry: &Value) -> bool {
    entry["online"].as_bool() == Some(true)
}

/// Poll `agent list` every 100 ms until every named agent is online; returns
/// the final list.
pub fn wait_online(hub: &Hub, names: &[&str], timeout: Duration) -> Result<Vec<Value>> {
    let mut last = Vec::new();
    wait_until(
        &format!("agents {names:?} online"),
        timeout,
        Duration::from_millis(100),
        || {
            let list = hub.agent_list()?;
            let all = names.iter().all(|n| {
                list.iter()
                    .any(|a| a["name"].as_str() == Some(n) && is_online(a))
            });
            last = list.clone();
            Ok(all.then_some(list))
        },
    )
    .with_context(|| {
        format!(
            "last agent list: {}\n{}",
            Value::Array(last.clone()),
            hub.log_tail()
        )
    })
}

/// Poll `agent list` every 100 ms until none of the named agents is online
/// (listed offline, or not listed).
pub fn wait_offline(hub: &Hub, names: &[&str], timeout: Duration) -> Result<Vec<Value>> {
    wait_until(
        &format!("agents {names:?} offline"),
        timeout,
        Duration::from_millis(100),
        || {
            let list = hub.agent_list()?;
            let any = names.iter().any(|n| {
                list.iter()
                    .any(|a| a["name"].as_str() == Some(n) && is_online(a))
            });
            Ok((!any).then_some(list))
        },
    )
    .with_context(|| hub.log_tail())
}

// ---------------------------------------------------------------------------
// OpenSSH helpers
// ---------------------------------------------------------------------------

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
/// `ssh-keyscan -p PORT -t ed25519 127.0.0.1 | ssh-keygen -lf -`.
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
    let mut child = Command::new("ssh-keygen")
        .args(["-l", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn ssh-keygen")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(scanned.stdout.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "ssh-keygen -lf - failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fingerprint_in(&text).ok_or_else(|| anyhow!("no SHA256: in ssh-keygen output: {text}"))
}

// ---------------------------------------------------------------------------
// HTTP and WebSocket
// ---------------------------------------------------------------------------

fn decode_chunked(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = body.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&body[..nl]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let Ok(size) = usize::from_str_radix(&size_text, 16) else {
            break;
        };
        body = &body[nl + 2..];
        if size == 0 || body.len() < size {
            out.extend_from_slice(&body[..size.min(body.len())]);
            break;
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// A plain HTTP/1.1 GET to 127.0.0.1:port with extra headers: (status, body).
pub fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String)> {
    let mut s = StdTcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP header end in reply"))?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let body = &buf[split + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line: {head}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        decode_chunked(body)
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A WebSocket API client.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

/// Connect to the hub's `/ws` with an optional bearer token and Origin.
pub async fn ws_connect(
    hub: &Hub,
    token: Option<&str>,
    origin: Option<&str>,
) -> std::result::Result<Ws, tungstenite::Error> {
    let mut req = hub.ws_url().into_client_request()?;
    if let Some(t) = token {
        let v = HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|e| tungstenite::Error::HttpFormat(e.into()))?;
        req.headers_mut().insert("Authorization", v);
    }
    if let Some(o) = origin {
        let v = HeaderValue::from_str(o).map_err(|e| tungstenite::Error::HttpFormat(e.into()))?;
        req.headers_mut().insert("Origin", v);
    }
    let (stream, _resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .map_err(|_| tungstenite::Error::Io(std::io::Error::other("websocket connect timed out")))??;
    Ok(Ws { stream })
}

/// The HTTP status of a refused WebSocket upgrade, if that is what `err` is.
pub fn ws_refusal_status(err: &tungstenite::Error) -> Option<u16> {
    match err {
        tungstenite::Error::Http(resp) => Some(resp.status().as_u16()),
        _ => None,
    }
}

/// What the next read on a WebSocket gave.
#[derive(Debug)]
pub enum WsEvent {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A close frame.
    Close,
    /// The stream ended.
    End,
    /// A read error.
    Error(String),
    /// Nothing within the timeout.
    Timeout,
}

impl Ws {
    /// Send a text message.
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<()> {
        self.stream
            .send(Message::text(text.into()))
            .await
            .context("websocket send")
    }

    /// Send a JSON value as a text message.
    pub async fn send_json(&mut self, v: &Value) -> Result<()> {
        self.send_text(v.to_string()).await
    }

    /// Next non-ping/pong event within `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> WsEvent {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return WsEvent::Timeout,
                Ok(None) => return WsEvent::End,
                Ok(Some(Err(e))) => return WsEvent::Error(e.to_string()),
                Ok(Some(Ok(m))) => match m {
                    Message::Text(t) => return WsEvent::Text(t.to_string()),
                    Message::Binary(b) => return WsEvent::Binary(b.to_vec()),
                    Message::Close(_) => return WsEvent::Close,
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                },
            }
        }
    }

    /// Next message parsed as JSON, within `timeout`.
    pub async fn recv_json(&mut self, timeout: Duration) -> Result<Value> {
        match self.next_event(timeout).await {
            WsEvent::Text(t) => {
                serde_json::from_str(&t).with_context(|| format!("reply is not JSON: {t}"))
            }
            other => bail!("expected a JSON text message, got {other:?}"),
        }
    }

    /// Send `req` and wait for the first reply whose `id` equals `req["id"]`.
    pub async fn request(&mut self, req: &Value, timeout: Duration) -> Result<Value> {
        self.send_json(req).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                bail!("no reply with id {} within {timeout:?}", req["id"]);
            }
            let v = self.recv_json(left).await?;
            if v["id"] == req["id"] {
                return Ok(v);
            }
        }
    }

    /// Close the connection politely.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// Bytes of every regular file under `dir` (recursively), with their paths.
pub fn read_tree(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).with_context(|| format!("read dir {}", d.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let mut bytes = Vec::new();
                File::open(e.path())?.read_to_end(&mut bytes)?;
                out.push((e.path(), bytes));
            }
        }
    }
    Ok(out)
}

/// Whether `haystack` contains `needle` as a byte string.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------
// Processes: pids, signals, exits, memory, sockets
// ---------------------------------------------------------------------------

/// Sends SIGCONT to a pid on drop, so a failing test never leaves a stopped process.
pub struct ContOnDrop(pub u32);

impl Drop for ContOnDrop {
    fn drop(&mut self) {
        let _ = send_signal(self.0, "CONT");
    }
}

/// Send `sig` (a name such as `TERM`, `INT`, `STOP`, `CONT`) to `pid` with
/// `kill -SIG PID` (the tests crate does not link libc).
pub fn send_signal(pid: u32, sig: &str) -> Result<()> {
    let mut cmd = Command::new("kill");
    cmd.arg(format!("-{sig}")).arg(pid.to_string());
    run_bounded(cmd, Duration::from_secs(10))?
        .ok()
        .with_context(|| format!("kill -{sig} {pid}"))?;
    Ok(())
}

fn wait_child_exit(child: &mut Option<Child>, what: &str, timeout: Duration) -> Result<ExitStatus> {
    let Some(c) = child.as_mut() else {
        bail!("{what} is not running (never started, or already reaped)");
    };
    let start = Instant::now();
    loop {
        if let Some(st) = c.try_wait()? {
            *child = None;
            return Ok(st);
        }
        if start.elapsed() > timeout {
            bail!("{what} still running {timeout:?} after it was told to stop");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Resident memory (`VmRSS`) of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow!("no VmRSS line in {path}"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("bad VmRSS line in {path}: {line}"))?;
    Ok(kib * 1024)
}

/// Pids of live (non-zombie) processes whose command line contains `needle`
/// (the test process itself excluded).
pub fn pids_matching(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            // A zombie has an empty cmdline, so it never matches.
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    let text: Vec<u8> = b
                        .into_iter()
                        .map(|c| if c == 0 { b' ' } else { c })
                        .collect();
                    contains_bytes(&text, needle.as_bytes())
                })
                .unwrap_or(false)
        })
        .collect()
}

fn parse_proc_addr(s: &str) -> Option<std::net::SocketAddr> {
    // IPv4 only: "0100007F:1F90" = 127.0.0.1:8080 (address in host byte order).
    let (ip, port) = s.split_once(':')?;
    if ip.len() != 8 {
        return None;
    }
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = std::net::Ipv4Addr::from(ip.swap_bytes());
    Some(std::net::SocketAddr::from((ip, port)))
}

/// The established IPv4 TCP connections a process holds, as
/// `(local, remote)`, from its fds and `/proc/net/tcp`.
pub fn tcp_connections_of(pid: u32) -> Result<Vec<(std::net::SocketAddr, std::net::SocketAddr)>> {
    let mut inodes = std::collections::HashSet::new();
    for e in fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("read /proc/{pid}/fd"))?
        .flatten()
    {
        if let Ok(target) = fs::read_link(e.path()) {
            let t = target.to_string_lossy().into_owned();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(inode.to_string());
            }
        }
    }
    let table = fs::read_to_string(format!("/proc/{pid}/net/tcp"))
        .with_context(|| format!("read /proc/{pid}/net/tcp"))?;
    let mut out = Vec::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
        if f.len() < 10 || f[3] != "01" || !inodes.contains(f[9]) {
            continue;
        }
        if let (Some(l), Some(r)) = (parse_proc_addr(f[1]), parse_proc_addr(f[2])) {
            out.push((l, r));
        }
    }
    Ok(out)
}

impl Hub {
    /// Pid of the running hub process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Send a signal (`TERM`, `INT`, ...) to the hub process.
    pub fn signal(&self, sig: &str) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("the hub is not running"))?;
        send_signal(pid, sig)
    }

    /// Wait (bounded) for the hub process to exit and reap it. Afterwards
    /// [`Hub::restart`] starts it again on the same data dir and ports.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let r = wait_child_exit(&mut self.child, "the hub", timeout);
        r.with_context(|| self.log_tail())
    }
}

impl Agent {
    /// Pid of the running `nextdeploy-agent run` process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Send a signal (`TERM`, `STOP`, `CONT`, ...) to the `run` process.
    pub fn signal(&self, sig: &str) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("agent {} is not running", self.name))?;
        send_signal(pid, sig)
    }

    /// Wait (bounded) for the `run` process to exit and reap it.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let what = format!("agent {}", self.name);
        let r = wait_child_exit(&mut self.child, &what, timeout);
        r.with_context(|| self.log_tail())
    }

    /// A second config dir holding a copy of this agent's identity (config
    /// and key, `key_path` rewritten to the copy): the same agent, as a
    /// cloned server would be. Not started.
    pub fn copy_identity(&self, tag: &str) -> Result<Agent> {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new(&format!("agent-{}-{tag}", self.name))?;
        let config = dir.path().join("agent.toml");
        let key = dir.path().join("agent_ed25519");
        fs::copy(&self.key, &key).with_context(|| format!("copy {}", self.key.display()))?;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))?;
        let pub_src = self.key.with_extension("pub");
        if pub_src.is_file() {
            fs::copy(&pub_src, key.with_extension("pub"))?;
        }
        let text = fs::read_to_string(&self.config)
            .with_context(|| format!("read {}", self.config.display()))?;
        let mut found = false;
        let rewritten: Vec<String> = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("key_path") {
                    found = true;
                    format!("key_path = {:?}", key.to_string_lossy())
                } else {
                    l.to_string()
                }
            })
            .collect();
        if !found {
            bail!("no key_path in {}:\n{text}", self.config.display());
        }
        fs::write(&config, rewritten.join("\n") + "\n")?;
        fs::set_permissions(&config, fs::Permissions::from_mode(0o600))?;
        Ok(Agent {
            name: self.name.clone(),
            config,
            key,
            log: dir.path().join("agent.log"),
            enroll_output: self.enroll_output.clone(),
            child: None,
            starts: 0,
            dir,
        })
    }
}

/// CPU time (user + system) a process has used so far, from
/// `/proc/<pid>/stat` (clock ticks per `getconf CLK_TCK`, 100 if unknown).
pub fn cpu_time(pid: u32) -> Result<Duration> {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let hz = *TICKS.get_or_init(|| {
        let mut cmd = Command::new("getconf");
        cmd.arg("CLK_TCK");
        run_bounded(cmd, Duration::from_secs(5))
            .ok()
            .and_then(|o| o.stdout.trim().parse().ok())
            .filter(|&n: &u64| n > 0)
            .unwrap_or(100)
    });
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // Fields after the ")" closing the command name: state is field 3, utime 14, stime 15.
    let rest = &text[text.rfind(')').ok_or_else(|| anyhow!("bad {path}"))? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("bad {path}: {text}"))
    };
    // `rest` starts at field 3, so field n is at index n - 3.
    let total = ticks(14 - 3)? + ticks(15 - 3)?;
    Ok(Duration::from_millis(total * 1000 / hz))
}
