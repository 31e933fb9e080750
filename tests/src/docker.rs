//! Docker fixtures for the `docker_*` suites: a fixture image built from
//! scratch (busybox and a small script), containers removed on drop, bounded
//! `docker` commands, a cross-process lock that serializes the Docker suites,
//! a line reader for streaming commands, and small parsers.
//!
//! Every suite that needs Docker fails loudly when no engine answers: a
//! missing engine is an error, never a skip.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::{wait_online, Agent, Hub, HubOpts, Output, TempDir};

/// Bound for one ordinary `docker` command.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for building the fixture image.
const BUILD_TIMEOUT: Duration = Duration::from_secs(180);
/// Bound for waiting on the Docker suites' lock (other suites hold it meanwhile).
const LOCK_TIMEOUT: Duration = Duration::from_secs(900);
/// The lock every Docker suite takes for the whole test.
pub const LOCK_FILE: &str = "/tmp/nextdeploy-docker-tests.lock";
/// Label put on every container a suite creates (value: the test's prefix).
pub const TEST_LABEL: &str = "nextdeploy.test";

/// The fixture image's Dockerfile (classic builder; no registry needed).
pub const FIXTURE_DOCKERFILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/busybox", "mkdir", "-p", "/tmp", "/t"]
COPY app.sh /bin/app.sh
ENTRYPOINT ["/bin/sh", "/bin/app.sh"]
CMD ["idle"]
"#;

/// The fixture's program; the first argument says what to do.
pub const FIXTURE_APP: &str = r#"# NextDeploy end-to-end fixture.
#   idle           sleep until SIGTERM/SIGINT (exits 0 at once on either)
#   logs           a fixed set of lines on stdout and stderr (one not UTF-8,
#                  one of 70,000 bytes), then idle
#   tick           "tick N" on stdout every 300 ms
#   burn           burn one core
#   exit CODE [S]  sleep S seconds (default 1), exit CODE (default 3)
#   mem MB         write MB MiB into /t (mount a tmpfs there), then idle
idle() {
  trap 'exit 0' TERM INT
  sleep 1000000000 &
  wait
}
mode="${1:-idle}"
[ $# -gt 0 ] && shift
case "$mode" in
  idle) idle ;;
  logs)
    echo "stdout line 1"
    echo "stderr line 1" >&2
    printf '\377\376binary\n'
    printf 'stderr \377\376 binary\n' >&2
    echo "stdout line 3"
    head -c 70000 /dev/zero | tr '\000' 'x'; echo
    echo "stderr line 3" >&2
    echo "stdout last"
    echo "stderr last" >&2
    idle
    ;;
  tick)
    i=0
    while :; do i=$((i+1)); echo "tick $i"; sleep 0.3; done
    ;;
  burn) while :; do :; done ;;
  exit) sleep "${2:-1}"; exit "${1:-3}" ;;
  mem)
    dd if=/dev/zero of=/t/fill bs=1048576 count="${1:-50}" 2>/dev/null
    idle
    ;;
  *) echo "unknown mode $mode" >&2; exit 64 ;;
esac
"#;

// ---------------------------------------------------------------------------
// Running docker
// ---------------------------------------------------------------------------

/// A finished command's raw output (bytes, not decoded).
#[derive(Debug, Clone)]
pub struct RawOutput {
    /// Command line, for messages.
    pub cmdline: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output bytes.
    pub stdout: Vec<u8>,
    /// Standard error bytes.
    pub stderr: Vec<u8>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl RawOutput {
    /// Fail unless the exit status is 0.
    pub fn ok(self) -> Result<RawOutput> {
        if self.status.success() {
            Ok(self)
        } else {
            bail!("command failed: {}", self.describe())
        }
    }

    /// Status and (lossy, shortened) output, for messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}` -> {}\n--- stdout ({} bytes) ---\n{}\n--- stderr ({} bytes) ---\n{}",
            self.cmdline,
            self.status,
            self.stdout.len(),
            shorten(&self.stdout, 2000),
            self.stderr.len(),
            shorten(&self.stderr, 2000)
        )
    }
}

fn shorten(b: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned();
    if b.len() > max {
        format!("{s}... ({} more bytes)", b.len() - max)
    } else {
        s
    }
}

/// Run a command with stdin closed, keeping its output as bytes; killed
/// after `timeout`.
pub fn run_raw(mut cmd: Command, timeout: Duration) -> Result<RawOutput> {
    let line = crate::cmdline(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawn `{line}`"))?;
    let out = crate::read_all(child.stdout.take());
    let err = crate::read_all(child.stderr.take());
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            bail!(
                "`{line}` did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                shorten(&stdout, 2000),
                shorten(&stderr, 2000)
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(RawOutput {
        cmdline: line,
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    })
}

/// `docker <args>` with raw output, bounded by [`DOCKER_TIMEOUT`].
pub fn docker_raw(args: &[&str]) -> Result<RawOutput> {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    run_raw(cmd, DOCKER_TIMEOUT)
}

/// `docker <args>`: trimmed stdout; fails on a non-zero exit.
pub fn docker(args: &[&str]) -> Result<String> {
    let out = docker_raw(args)?.ok()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether an engine answers `docker info` (within 15 s).
pub fn docker_answers() -> bool {
    let mut cmd = Command::new("docker");
    cmd.args(["info", "--format", "{{.ServerVersion}}"]);
    run_raw(cmd, Duration::from_secs(15))
        .map(|o| o.status.success() && !o.stdout.trim_ascii().is_empty())
        .unwrap_or(false)
}

/// Fail loudly unless a Docker Engine answers.
pub fn require_docker() -> Result<()> {
    let mut cmd = Command::new("docker");
    cmd.args(["info", "--format", "{{.ServerVersion}}"]);
    match run_raw(cmd, Duration::from_secs(20)) {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => bail!(
            "this test needs a running Docker Engine and none answers \
             (start one: `nohup dockerd >/tmp/dockerd.log 2>&1 &`, or run scripts/test.sh)\n{}",
            o.describe()
        ),
        Err(e) => Err(e.context(
            "this test needs a running Docker Engine: `docker info` cannot run \
             (install docker.io, or run scripts/test.sh)",
        )),
    }
}

// ---------------------------------------------------------------------------
// The cross-process lock
// ---------------------------------------------------------------------------

/// An exclusive lock on [`LOCK_FILE`], held by a `flock` child process until
/// drop (or until this process dies: the child's stdin closes, it exits and
/// the lock goes with it).
pub struct DockerLock {
    stdin: Option<ChildStdin>,
    child: Child,
}

impl std::fmt::Debug for DockerLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DockerLock(pid {})", self.child.id())
    }
}

/// Take the Docker suites' lock (waits while another test holds it).
pub fn docker_lock() -> Result<DockerLock> {
    let secs = LOCK_TIMEOUT.as_secs().to_string();
    let mut child = Command::new("flock")
        .args([
            "-x",
            "-o",
            "-w",
            &secs,
            LOCK_FILE,
            "-c",
            "echo locked; exec cat",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn flock (util-linux) for the Docker suites' lock")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("flock stdout"))?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let start = Instant::now();
    let got = rx.recv_timeout(LOCK_TIMEOUT + Duration::from_secs(10));
    match got {
        Ok(l) if l.trim() == "locked" => {
            let waited = start.elapsed();
            if waited > Duration::from_secs(1) {
                eprintln!("(waited {waited:?} for {LOCK_FILE})");
            }
            Ok(DockerLock {
                stdin: child.stdin.take(),
                child,
            })
        }
        other => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("could not take {LOCK_FILE} within {LOCK_TIMEOUT:?}: {other:?}")
        }
    }
}

impl Drop for DockerLock {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The fixture image
// ---------------------------------------------------------------------------

/// FNV-1a, 64 bits: a stable content hash for the image tag.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The fixture image's tag, `nextdeploy-fixture:<hash8>`, from the content
/// of the Dockerfile and the script.
pub fn fixture_tag() -> String {
    let h = fnv1a(&[FIXTURE_DOCKERFILE.as_bytes(), FIXTURE_APP.as_bytes()]);
    format!("nextdeploy-fixture:{:08x}", h >> 32)
}

fn build_fixture() -> Result<String> {
    let tag = fixture_tag();
    if docker_raw(&["image", "inspect", "--format", "{{.Id}}", &tag])?
        .status
        .success()
    {
        return Ok(tag);
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox is missing: install busybox-static (scripts/test.sh does)");
    }
    let dir = TempDir::new("fixture-image")?;
    fs::copy(busybox, dir.path().join("busybox")).context("copy /bin/busybox")?;
    fs::write(dir.path().join("Dockerfile"), FIXTURE_DOCKERFILE)?;
    fs::write(dir.path().join("app.sh"), FIXTURE_APP)?;
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_BUILDKIT", "0")
        .args(["build", "--quiet", "-t", &tag])
        .arg(dir.path());
    run_raw(cmd, BUILD_TIMEOUT)?
        .ok()
        .with_context(|| format!("build the fixture image {tag}"))?;
    Ok(tag)
}

/// The fixture image (built once per process, and only if no image with
/// this content's tag exists yet).
pub fn fixture_image() -> Result<String> {
    static IMAGE: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| build_fixture().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!("fixture image: {e}"))
}

// ---------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------

/// Unique container names for one test: `nd-<test>-<rand>-<role>`.
#[derive(Debug, Clone)]
pub struct Names {
    /// `nd-<test>-<rand>`; also the value of [`TEST_LABEL`] on its containers.
    pub prefix: String,
}

impl Names {
    /// A fresh prefix for `test`.
    pub fn new(test: &str) -> Names {
        let r: u32 = rand::random();
        Names {
            prefix: format!("nd-{test}-{:06x}", r & 0xff_ffff),
        }
    }

    /// The name for `role`.
    pub fn name(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }
}

/// A container removed (`docker rm -f -v`) on drop.
#[derive(Debug)]
pub struct Container {
    /// Its name.
    pub name: String,
    /// Its full id.
    pub id: String,
}

impl Container {
    /// `docker <verb> -d? --name NAME --label nextdeploy.test=PREFIX OPTS IMAGE ARGS`
    /// where verb is `run -d` or `create`.
    fn make(
        verb: &[&str],
        names: &Names,
        role: &str,
        opts: &[&str],
        args: &[&str],
    ) -> Result<Container> {
        let image = fixture_image()?;
        let name = names.name(role);
        let label = format!("{TEST_LABEL}={}", names.prefix);
        let mut a: Vec<&str> = verb.to_vec();
        a.extend(["--name", &name, "--label", &label]);
        a.extend(opts);
        a.push(&image);
        a.extend(args);
        // Own it before it exists, so a failed run still gets cleaned up.
        let mut c = Container {
            name: name.clone(),
            id: String::new(),
        };
        let out = docker(&a)?;
        c.id = out
            .lines()
            .last()
            .map(str::trim)
            .filter(|s| s.len() == 64)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("docker {} printed no id: {out}", a.join(" ")))?;
        Ok(c)
    }

    /// `docker run -d` a fixture container.
    pub fn run(names: &Names, role: &str, opts: &[&str], args: &[&str]) -> Result<Container> {
        Container::make(&["run", "-d"], names, role, opts, args)
    }

    /// `docker create` a fixture container (not started).
    pub fn create(names: &Names, role: &str, opts: &[&str], args: &[&str]) -> Result<Container> {
        Container::make(&["create"], names, role, opts, args)
    }

    /// `docker inspect --format FMT` of this container.
    pub fn inspect(&self, format: &str) -> Result<String> {
        docker(&["inspect", "--format", format, &self.id])
    }

    /// `.State.Status`.
    pub fn state(&self) -> Result<String> {
        self.inspect("{{.State.Status}}")
    }

    /// Wait (bounded) until `docker logs` of this container shows `needle`
    /// on stdout or stderr.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        wait_until_ok(
            &format!("{needle:?} in the logs of {}", self.name),
            timeout,
            Duration::from_millis(100),
            || {
                let o = docker_raw(&["logs", &self.id])?;
                let n = needle.as_bytes();
                Ok(crate::contains_bytes(&o.stdout, n) || crate::contains_bytes(&o.stderr, n))
            },
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let what = if self.id.is_empty() {
            &self.name
        } else {
            &self.id
        };
        let mut cmd = Command::new("docker");
        cmd.args(["rm", "-f", "-v", what]);
        let _ = run_raw(cmd, Duration::from_secs(30));
    }
}

/// [`crate::wait_until`] for a boolean condition.
pub fn wait_until_ok(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<bool>,
) -> Result<()> {
    crate::wait_until(what, timeout, every, || Ok(f()?.then_some(())))
}

// ---------------------------------------------------------------------------
// A hub, an agent and the lock
// ---------------------------------------------------------------------------

/// Set `key = value` (value already in TOML syntax) at the top level of an
/// agent config: replaces the key's line if present, else inserts it before
/// the first table header.
pub fn set_config_key(path: &Path, key: &str, value: &str) -> Result<()> {
    let text = fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let first_table = lines
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .unwrap_or(lines.len());
    let new_line = format!("{key} = {value}");
    let existing = lines[..first_table].iter().position(|l| {
        l.split_once('=')
            .is_some_and(|(k, _)| k.trim() == key && !l.trim_start().starts_with('#'))
    });
    match existing {
        Some(i) => lines[i] = new_line,
        None => lines.insert(first_table, new_line),
    }
    fs::write(path, lines.join("\n") + "\n").with_context(|| format!("write {}", path.display()))
}

/// One Docker test's world: the lock, a hub, one agent on this machine's
/// engine, and unique container names. Fields drop agent, hub, lock.
#[derive(Debug)]
pub struct DockerEnv {
    /// Container names for this test.
    pub names: Names,
    /// The agent (`nextdeploy-agent run`), talking to the local engine.
    pub agent: Agent,
    /// The hub.
    pub hub: Hub,
    _lock: DockerLock,
}

impl DockerEnv {
    /// Take the lock, check Docker, build the image, start a hub, enrol an
    /// agent named `dk-<test>` (labels `suite=docker,test=<test>`) with extra
    /// top-level config keys (TOML values), start it and wait until online.
    pub fn start(test: &str, config: &[(&str, &str)]) -> Result<DockerEnv> {
        let lock = docker_lock()?;
        require_docker()?;
        fixture_image()?;
        let hub = Hub::start(HubOpts::default())?;
        let name = format!("dk-{test}");
        let jt = hub.join_token(&name, &format!("suite=docker,test={test}"), "1h")?;
        let mut agent = Agent::enroll(&hub, &name, &jt.token)?;
        for (k, v) in config {
            set_config_key(&agent.config, k, v)?;
        }
        agent.start()?;
        wait_online(&hub, &[&name], Duration::from_secs(20)).with_context(|| agent.log_tail())?;
        Ok(DockerEnv {
            names: Names::new(test),
            agent,
            hub,
            _lock: lock,
        })
    }

    /// The agent's name (the `--server`).
    pub fn server(&self) -> &str {
        &self.agent.name
    }

    /// `docker run -d` a fixture container named for `role`.
    pub fn run(&self, role: &str, opts: &[&str], args: &[&str]) -> Result<Container> {
        Container::run(&self.names, role, opts, args)
    }

    /// `docker create` a fixture container named for `role`.
    pub fn create(&self, role: &str, opts: &[&str], args: &[&str]) -> Result<Container> {
        Container::create(&self.names, role, opts, args)
    }

    /// `nextdeploy agent <sub> --server S <args>` as admin (lossy output).
    pub fn agent_cli(&self, sub: &str, args: &[&str]) -> Result<Output> {
        let mut a = vec!["agent", sub, "--server", self.server()];
        a.extend(args);
        self.hub.cli(&a)
    }

    /// `nextdeploy agent <sub> --server S <args> --output json` as admin,
    /// parsed; fails on a non-zero exit.
    pub fn agent_json(&self, sub: &str, args: &[&str]) -> Result<Value> {
        let mut a = vec!["agent", sub, "--server", self.server()];
        a.extend(args);
        self.hub.cli_json(&a)
    }

    /// `nextdeploy agent <sub> --server S <args>` as admin, raw bytes.
    pub fn agent_raw(&self, sub: &str, args: &[&str]) -> Result<RawOutput> {
        let mut cmd = self.hub.cli_command(&self.hub.admin_token)?;
        cmd.args(["agent", sub, "--server", self.server()])
            .args(args);
        run_raw(cmd, crate::CLI_TIMEOUT)
    }

    /// Spawn `nextdeploy agent <sub> --server S <args>` as admin, streaming.
    pub fn agent_stream(&self, sub: &str, args: &[&str]) -> Result<Streamer> {
        let mut cmd = self.hub.cli_command(&self.hub.admin_token)?;
        cmd.args(["agent", sub, "--server", self.server()])
            .args(args);
        Streamer::spawn(cmd)
    }

    /// `agent ps --all --filter label=nextdeploy.test=<prefix>`: this test's containers.
    pub fn ps_mine(&self) -> Result<Vec<Value>> {
        let f = format!("label={TEST_LABEL}={}", self.names.prefix);
        let v = self.agent_json("ps", &["--all", "--filter", &f])?;
        match v {
            Value::Array(a) => Ok(a),
            other => bail!("agent ps --output json is not an array: {other}"),
        }
    }

    /// A WebSocket request as admin: the first reply with its id.
    pub fn ws(&self, action: &str, payload: Value) -> Result<Value> {
        ws_request(
            &self.hub,
            &self.hub.admin_token,
            json!({"id": 1, "action": action, "server": self.server(), "payload": payload}),
        )
    }

    /// A WebSocket request that must fail: `(data.code, data.message)`.
    pub fn ws_error(&self, action: &str, payload: Value) -> Result<(String, String)> {
        let r = self.ws(action, payload)?;
        if r["type"] != "error" {
            bail!("{action} was expected to fail, got {r}");
        }
        Ok((
            r["data"]["code"].as_str().unwrap_or_default().to_string(),
            r["data"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ))
    }

    /// Logs of hub and agent, for failure messages.
    pub fn logs(&self) -> String {
        format!("{}\n{}", self.hub.log_tail(), self.agent.log_tail())
    }
}

/// One WebSocket request with `token` (a fresh connection): the first reply
/// whose id matches, within 30 s.
pub fn ws_request(hub: &Hub, token: &str, req: Value) -> Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut ws = crate::ws_connect(hub, Some(token), None)
            .await
            .map_err(|e| anyhow!("websocket connect: {e}"))?;
        let r = ws.request(&req, Duration::from_secs(30)).await;
        ws.close().await;
        r
    })
}

// ---------------------------------------------------------------------------
// Streaming commands
// ---------------------------------------------------------------------------

/// One line of a streaming command's stdout, with when it arrived.
#[derive(Debug, Clone)]
pub struct Line {
    /// Monotonic arrival time.
    pub at: Instant,
    /// Wall-clock arrival time.
    pub wall: SystemTime,
    /// The bytes, newline included when there was one.
    pub bytes: Vec<u8>,
}

impl Line {
    /// Lossy text without the line end.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes)
            .trim_end_matches(['\n', '\r'])
            .to_string()
    }

    /// The line as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.bytes)
            .with_context(|| format!("line is not JSON: {}", self.text()))
    }
}

/// A running command whose stdout is read line by line (with arrival
/// times) and whose stderr is kept; killed on drop.
pub struct Streamer {
    /// Command line, for messages.
    pub cmdline: String,
    child: Option<Child>,
    rx: mpsc::Receiver<Line>,
    seen: Vec<Line>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// When it was spawned.
    pub started: Instant,
    /// Wall clock when it was spawned.
    pub started_wall: SystemTime,
}

impl std::fmt::Debug for Streamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Streamer({})", self.cmdline)
    }
}

impl Streamer {
    /// Spawn `cmd` with stdin closed.
    pub fn spawn(mut cmd: Command) -> Result<Streamer> {
        let cmdline = crate::cmdline(&cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let started_wall = SystemTime::now();
        let mut child = cmd.spawn().with_context(|| format!("spawn `{cmdline}`"))?;
        let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let err = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut r = BufReader::new(out);
            loop {
                let mut buf = Vec::new();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = Line {
                            at: Instant::now(),
                            wall: SystemTime::now(),
                            bytes: buf,
                        };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut r = err;
            let mut buf = [0u8; 8192];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut s) = sink.lock() {
                            s.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            }
        });
        Ok(Streamer {
            cmdline,
            child: Some(child),
            rx,
            seen: Vec::new(),
            stderr,
            started,
            started_wall,
        })
    }

    /// Pid of the command.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Take the lines that arrived so far into [`Streamer::lines`], waiting
    /// at most `wait` for the first new one.
    fn pump(&mut self, wait: Duration) -> bool {
        let mut got = false;
        if let Ok(l) = self.rx.recv_timeout(wait) {
            self.seen.push(l);
            got = true;
        }
        while let Ok(l) = self.rx.try_recv() {
            self.seen.push(l);
            got = true;
        }
        got
    }

    /// Every line received so far.
    pub fn lines(&mut self) -> &[Line] {
        self.pump(Duration::ZERO);
        &self.seen
    }

    /// Collect lines for `d`, then return everything received so far.
    pub fn collect_for(&mut self, d: Duration) -> &[Line] {
        let end = Instant::now() + d;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.pump(left.min(Duration::from_millis(50)));
        }
        &self.seen
    }

    /// The first line (already received or arriving within `timeout`)
    /// for which `pred` holds.
    pub fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Line) -> bool,
    ) -> Result<Line> {
        let end = Instant::now() + timeout;
        let mut checked = 0;
        loop {
            if let Some(l) = self.seen[checked..].iter().find(|l| pred(l)) {
                return Ok(l.clone());
            }
            checked = self.seen.len();
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "timed out after {timeout:?} waiting for {what} from `{}`\n{}",
                    self.cmdline,
                    self.describe()
                );
            }
            self.pump(left.min(Duration::from_millis(50)));
        }
    }

    /// The first JSON line matching `pred` (non-JSON lines are skipped).
    pub fn wait_json(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Result<Value> {
        let l = self.wait_line(what, timeout, |l| l.json().is_ok_and(|v| pred(&v)))?;
        l.json()
    }

    /// Every JSON line received so far (non-JSON lines skipped).
    pub fn json_lines(&mut self) -> Vec<Value> {
        self.lines().iter().filter_map(|l| l.json().ok()).collect()
    }

    /// What it wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .unwrap_or_default()
    }

    /// Exit status if it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The last lines and stderr, for messages.
    pub fn describe(&self) -> String {
        let from = self.seen.len().saturating_sub(20);
        let last: Vec<String> = self.seen[from..]
            .iter()
            .map(|l| {
                let t = l.text();
                if t.len() > 300 {
                    let head: String = t.chars().take(300).collect();
                    format!("{head}... ({} bytes)", l.bytes.len())
                } else {
                    t
                }
            })
            .collect();
        format!(
            "--- last {} of {} stdout lines ---\n{}\n--- stderr ---\n{}",
            last.len(),
            self.seen.len(),
            last.join("\n"),
            self.stderr_text()
        )
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("--- streaming `{}` ---\n{}", self.cmdline, self.describe());
        }
    }
}

// ---------------------------------------------------------------------------
// dockerd
// ---------------------------------------------------------------------------

/// Pids of the running `dockerd` processes (by `/proc/<pid>/comm`).
pub fn dockerd_pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "dockerd")
        })
        .collect()
}

/// Pid of the one running `dockerd`.
pub fn dockerd_pid() -> Result<u32> {
    let found = dockerd_pids();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no dockerd process found"),
        many => bail!("several dockerd processes: {many:?}"),
    }
}

/// How many of `pid`'s open file descriptors point at `path`.
pub fn fds_open_on(pid: u32, path: &Path) -> Result<usize> {
    let dir = format!("/proc/{pid}/fd");
    let mut n = 0;
    for e in fs::read_dir(&dir)
        .with_context(|| format!("read {dir}"))?
        .flatten()
    {
        if fs::read_link(e.path()).is_ok_and(|t| t == path) {
            n += 1;
        }
    }
    Ok(n)
}

/// Start `dockerd` detached (own session, output to /tmp/dockerd.log) and
/// wait until `docker info` answers.
pub fn start_dockerd(timeout: Duration) -> Result<()> {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "setsid nohup dockerd >>/tmp/dockerd.log 2>&1 </dev/null &",
    ]);
    run_raw(cmd, Duration::from_secs(10))?.ok()?;
    wait_until_ok(
        "dockerd to answer docker info",
        timeout,
        Duration::from_millis(250),
        || Ok(docker_answers()),
    )
    .with_context(|| {
        format!(
            "/tmp/dockerd.log:\n{}",
            crate::tail(Path::new("/tmp/dockerd.log"), 30)
        )
    })
}

/// A dockerd of a test's own: its own socket, data root, exec root and
/// (empty) config file, in its own network namespace (`unshare --net`), with
/// no bridge and no iptables rules, so a test can stop and start it without
/// touching the machine's engine, its network or anyone's containers. Point
/// `DOCKER_HOST` at [`PrivateDockerd::host`] to use it. Stopped on drop.
///
/// The network namespace matters: a dockerd started with `--bridge none`
/// deletes any `docker0` link it can see at startup, which in the host's
/// namespace is the machine engine's bridge.
#[derive(Debug)]
pub struct PrivateDockerd {
    dir: TempDir,
    /// `unix://<dir>/docker.sock`.
    pub host: String,
    /// Its stdout/stderr.
    pub log: std::path::PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl PrivateDockerd {
    /// Start a new one and wait until it answers.
    pub fn start_new() -> Result<PrivateDockerd> {
        let dir = TempDir::new("dockerd")?;
        let host = format!("unix://{}", dir.path().join("docker.sock").display());
        let log = dir.path().join("dockerd.log");
        let mut d = PrivateDockerd {
            dir,
            host,
            log,
            child: None,
            starts: 0,
        };
        d.start()?;
        Ok(d)
    }

    /// Whether `docker -H <host> info` answers.
    pub fn answers(&self) -> bool {
        let mut cmd = Command::new("docker");
        cmd.args(["-H", &self.host, "info", "--format", "{{.ServerVersion}}"]);
        run_raw(cmd, Duration::from_secs(15)).is_ok_and(|o| o.status.success())
    }

    /// Start it (again, on the same directories) and wait until it answers.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("the private dockerd is already running");
        }
        let d = self.dir.path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        self.starts += 1;
        let config = d.join("daemon.json");
        fs::write(&config, "{}\n")?;
        let child = Command::new("unshare")
            .args(["--net", "--", "dockerd", "--config-file"])
            .arg(&config)
            .arg("-H")
            .arg(&self.host)
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .args([
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
                "--cgroup-parent",
                "nextdeploy-test-dockerd",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn a private dockerd (unshare --net -- dockerd ...)")?;
        self.child = Some(child);
        let started = wait_until_ok(
            "the private dockerd to answer",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                if let Some(st) = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    bail!("the private dockerd exited: {st}");
                }
                Ok(self.answers())
            },
        );
        started.with_context(|| self.log_tail())
    }

    /// Pid of the running dockerd.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM it and wait (bounded) until it has exited.
    pub fn stop(&mut self, timeout: Duration) -> Result<()> {
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        crate::send_signal(c.id(), "TERM")?;
        let start = Instant::now();
        loop {
            if c.try_wait()?.is_some() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                let _ = c.kill();
                let _ = c.wait();
                bail!(
                    "the private dockerd did not exit within {timeout:?} of SIGTERM\n{}",
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        format!(
            "--- private dockerd log ({}) ---\n{}",
            self.log.display(),
            crate::tail(&self.log, 30)
        )
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "ids=$(docker -H \"$1\" ps -aq); [ -z \"$ids\" ] || docker -H \"$1\" rm -f -v $ids",
            "sh",
            &self.host,
        ]);
        let _ = run_raw(cmd, Duration::from_secs(30));
        if let Err(e) = self.stop(Duration::from_secs(30)) {
            eprintln!("{e:#}");
        }
        if thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

// ---------------------------------------------------------------------------
// Parsers and comparisons
// ---------------------------------------------------------------------------

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp such as Docker's
/// `2026-01-02T03:04:05.123456789Z`.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let s = s.trim();
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    let frac: f64 = if frac.is_empty() {
        0.0
    } else {
        format!("0.{frac}").parse().ok()?
    };
    let secs = days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se;
    Some(secs as f64 + frac)
}

/// Seconds since the epoch of a wall-clock time.
pub fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Bytes of a Docker CLI size such as `50.29MiB`, `1.2kB` or `0B`.
pub fn parse_docker_size(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "B" | "" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    Some(n * mult)
}

/// `None` when equal, else where and how two byte strings differ (short).
pub fn bytes_diff(got: &[u8], want: &[u8]) -> Option<String> {
    if got == want {
        return None;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let ctx = |b: &[u8]| {
        let from = at.saturating_sub(40);
        let to = (at + 80).min(b.len());
        format!("{:?}", String::from_utf8_lossy(&b[from.min(to)..to]))
    };
    Some(format!(
        "lengths {} (got) vs {} (want); first difference at byte {at}\n  got:  {}\n  want: {}",
        got.len(),
        want.len(),
        ctx(got),
        ctx(want)
    ))
}

/// Fail with a readable message unless `got == want`.
pub fn assert_bytes_eq(what: &str, got: &[u8], want: &[u8]) -> Result<()> {
    match bytes_diff(got, want) {
        None => Ok(()),
        Some(d) => bail!("{what}: {d}"),
    }
}

/// Decode standard base64 (with or without padding).
pub fn b64_decode(s: &str) -> Result<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = val(c).ok_or_else(|| anyhow!("bad base64 character {:?}", c as char))?;
            acc |= v << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => bail!("bad base64 length"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        let t = parse_rfc3339("1970-01-02T00:00:01.5Z");
        assert_eq!(t, Some(86_401.5));
        let t = parse_rfc3339("2024-03-01T12:00:00.000000001Z");
        assert!(t.is_some_and(|v| (v - 1_709_294_400.0).abs() < 1e-3));
        assert_eq!(parse_docker_size("50MiB"), Some(50.0 * 1024.0 * 1024.0));
        assert_eq!(parse_docker_size("1.5kB"), Some(1500.0));
        assert_eq!(parse_docker_size("0B"), Some(0.0));
        assert!(bytes_diff(b"abc", b"abc").is_none());
        assert!(bytes_diff(b"abc", b"abd").is_some());
        assert_eq!(b64_decode("//5iaW5hcnkK").unwrap(), b"\xff\xfebinary\n");
        assert_eq!(b64_decode("YQ==").unwrap(), b"a");
        assert_eq!(b64_decode("YWI").unwrap(), b"ab");
    }
}
