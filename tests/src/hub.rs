//! The hub fixture: a `nextdeploy hub` on loopback ports chosen by the OS,
//! with its own data dir and CLI home, and the CLI aimed at it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::paths::{hub_bin, read_lossy, tail, TempDir};
use crate::process::{self, run_bounded, wait_until, Output, Proc};

/// Default bound for one CLI invocation.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for the hub to print its startup lines.
pub const HUB_START_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of a log printed when a test fails.
pub(crate) const LOG_TAIL_LINES: usize = 60;

/// Options for [`Hub::start`].
#[derive(Debug, Clone, Default)]
pub struct HubOpts {
    /// Extra arguments after `hub --data-dir ... --ssh-listen ... --http-listen ...`.
    pub extra_args: Vec<String>,
    /// Extra environment variables for the hub process.
    pub env: Vec<(String, String)>,
    /// The admin token, when the hub shares a store that has one (it
    /// writes no initial token then); else read from its data dir.
    pub admin_token: Option<String>,
    /// Run in this network namespace, listening on this address of it
    /// ([`crate::netns::Netns`]); else on loopback.
    pub netns: Option<(String, String)>,
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
            ..HubOpts::default()
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
    /// The API certificate's pin as printed (`sha256:<hex>`); None for a
    /// hub run with `--plain-http`.
    pub tls_pin: Option<String>,
    /// The first admin API token (from `<data-dir>/initial-admin-token`).
    pub admin_token: String,
    opts: HubOpts,
    child: Option<Proc>,
    starts: u32,
}

/// The port of the address that follows `marker` in `line`.
fn port_after(line: &str, marker: &str) -> Option<u16> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let addr = rest.split_whitespace().next()?;
    let port = addr.rsplit(':').next()?;
    port.trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// The `SHA256:...` fingerprint in a line of text.
pub(crate) fn fingerprint_in(line: &str) -> Option<String> {
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
        Self::start_with(opts, None)
    }

    /// Start a hub that joins a cluster whose first hub made the initial
    /// admin token (`admin_token`): it writes none of its own.
    pub fn start_joining(opts: HubOpts, admin_token: &str) -> Result<Hub> {
        Self::start_with(opts, Some(admin_token.to_string()))
    }

    fn start_with(opts: HubOpts, admin_token: Option<String>) -> Result<Hub> {
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
            tls_pin: None,
            admin_token: String::new(),
            opts,
            child: None,
            starts: 0,
            dir,
        };
        hub.spawn(0, 0)?;
        if let Some(token) = admin_token.or_else(|| hub.opts.admin_token.clone()) {
            hub.admin_token = token;
            return Ok(hub);
        }
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
        let mut cmd = match &self.opts.netns {
            Some((ns, _)) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(hub_bin()?);
                c
            }
            None => Command::new(hub_bin()?),
        };
        let host = self.host();
        cmd.arg("hub")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--ssh-listen")
            .arg(format!("{host}:{ssh_port}"))
            .arg("--http-listen")
            .arg(format!("{host}:{http_port}"))
            .args(&self.opts.extra_args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env_remove("NEXTDEPLOY_HUB")
            .env_remove("NEXTDEPLOY_TOKEN");
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        self.starts += 1;
        let (tx, rx) = mpsc::channel();
        let header = format!("start #{}", self.starts);
        self.child = Some(Proc::spawn_logged(cmd, &self.log, &header, Some(tx))?);
        self.wait_ready(&rx)
    }

    /// Read the hub's output until it has printed its SSH and HTTP addresses
    /// and its host-key fingerprint.
    fn wait_ready(&mut self, rx: &mpsc::Receiver<String>) -> Result<()> {
        let start = Instant::now();
        let (mut ssh, mut http, mut fp) = (None, None, None);
        loop {
            if let (Some(s), Some(h), Some(f)) = (ssh, http, fp.clone()) {
                self.ssh_port = s;
                self.http_port = h;
                self.fingerprint = f;
                return Ok(());
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
                    if let Some(p) = port_after(&line, "HTTP listening on ") {
                        http = Some(p);
                    }
                    if let Some((_, pin)) = line.split_once("API certificate pin: ") {
                        self.tls_pin = Some(pin.trim().to_string());
                    }
                    if line.contains("Host key fingerprint:") {
                        fp = fingerprint_in(&line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self
                        .child
                        .take()
                        .and_then(|mut c| c.wait().ok())
                        .map(|s| s.to_string())
                        .unwrap_or_default();
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
        self.child = None;
    }

    /// Whether the hub process is still running.
    pub fn is_running(&mut self) -> bool {
        process::child::is_running(&mut self.child)
    }

    /// Pid of the running hub process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Proc::id)
    }

    /// Send a signal (`TERM`, `INT`, ...) to the hub process.
    pub fn signal(&self, sig: &str) -> Result<()> {
        self.child
            .as_ref()
            .ok_or_else(|| anyhow!("the hub is not running"))?
            .signal(sig)
    }

    /// Wait (bounded) for the hub process to exit and reap it. Afterwards
    /// [`Hub::restart`] starts it again on the same data dir and ports.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let r = process::child::wait_exit(&mut self.child, "the hub", timeout);
        r.with_context(|| self.log_tail())
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

    /// [`Hub::restart`] with `args` added to its arguments from now on
    /// (e.g. `--store` after a migration).
    pub fn restart_with(&mut self, args: &[&str]) -> Result<()> {
        self.opts
            .extra_args
            .extend(args.iter().map(|a| a.to_string()));
        self.restart()
    }

    /// The address it listens on: loopback, or its namespace's.
    pub fn host(&self) -> String {
        match &self.opts.netns {
            Some((_, ip)) => ip.clone(),
            None => "127.0.0.1".into(),
        }
    }

    /// `127.0.0.1:<ssh port>` (the namespace's address for a hub in one).
    pub fn ssh_addr(&self) -> String {
        format!("{}:{}", self.host(), self.ssh_port)
    }

    /// `https://127.0.0.1:<http port>` (`http://` with `--plain-http`).
    pub fn url(&self) -> String {
        let scheme = if self.tls_pin.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}:{}", self.host(), self.http_port)
    }

    /// `wss://127.0.0.1:<http port>/ws` (`ws://` with `--plain-http`).
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls_pin.is_some() { "wss" } else { "ws" };
        format!("{scheme}://127.0.0.1:{}/ws", self.http_port)
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
        read_lossy(&self.log)
    }

    /// A `nextdeploy` CLI command aimed at this hub with `token`.
    pub fn cli_command(&self, token: &str) -> Result<Command> {
        let mut cmd = Command::new(hub_bin()?);
        cmd.env("NEXTDEPLOY_HUB", self.url())
            .env("NEXTDEPLOY_TOKEN", token)
            .env("NEXTDEPLOY_TLS_PIN", self.tls_pin.as_deref().unwrap_or(""))
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

    /// `GET path` on the HTTP port: (status, body).
    pub fn http_get(&self, path: &str) -> Result<(u16, String)> {
        match &self.tls_pin {
            Some(pin) => crate::http::https_get(self.http_port, pin, path, &[]),
            None => crate::http::http_get(self.http_port, path, &[]),
        }
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
