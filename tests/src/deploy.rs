//! Fixtures for the `deploy_*` suites: app images built from scratch with
//! busybox (v1, v2, one that exits at once, one that never becomes healthy,
//! ...), containers and test resources removed on drop, a hub with agents
//! scoped to one test's containers, `agent deploy` runs parsed from their
//! NDJSON, a real registry (Debian's `docker-registry`) on a loopback port,
//! and a poller that measures a published port's downtime.
//!
//! Every suite takes the Docker suites' lock ([`crate::docker::docker_lock`]).

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::docker::{
    docker, docker_lock, docker_raw, require_docker, run_raw, set_config_key, wait_until_ok,
    DockerLock, Names, Streamer, TEST_LABEL,
};
use crate::{wait_online, Agent, Hub, HubOpts, Output, TempDir};

/// Bound for one `agent deploy` CLI run (health waits included).
pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound for building one fixture image.
const BUILD_TIMEOUT: Duration = Duration::from_secs(180);
/// Repository of the app fixture images.
pub const APP_REPO: &str = "nd-deploy-app";
/// Repository of the "another app" fixture image.
pub const OTHER_REPO: &str = "nd-deploy-other";
/// The line the crashing fixture prints before it exits 3.
pub const CRASH_LOG_LINE: &str = "crash fixture: cannot open /etc/app.conf, giving up";

const BASE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/busybox", "mkdir", "-p", "/www", "/tmp", "/data"]
"#;

const SERVE: &str = r#"CMD ["/bin/sh", "-c", "echo \"version $APP_VERSION mode $APP_MODE\" > /www/index.html; echo \"app $APP_VERSION serving on 8080\"; exec httpd -f -p 8080 -h /www"]
"#;

/// The fixture images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fixture {
    /// Serves "version 1 mode $APP_MODE" on 8080; no healthcheck.
    V1,
    /// Serves "version 2 mode $APP_MODE" on 8080; no healthcheck.
    V2,
    /// V2 with other content (`LABEL build=b`): a new digest for the same tag.
    V2b,
    /// Prints [`CRASH_LOG_LINE`] and exits 3 at once.
    Crash,
    /// Serves, but its image healthcheck (`false`, every second) always fails:
    /// unhealthy after about a second.
    Unhealthy,
    /// Serves, with an image healthcheck that always fails inside a 300 s
    /// start period: its health stays `starting`, it never becomes healthy.
    NeverHealthy,
    /// Another repository ([`OTHER_REPO`]), serving like v1.
    Other,
}

impl Fixture {
    fn variant(self) -> &'static str {
        match self {
            Fixture::V1 => "v1",
            Fixture::V2 => "v2",
            Fixture::V2b => "v2b",
            Fixture::Crash => "crash",
            Fixture::Unhealthy => "unhealthy",
            Fixture::NeverHealthy => "never-healthy",
            Fixture::Other => "other",
        }
    }

    /// The Dockerfile.
    pub fn dockerfile(self) -> String {
        let body = match self {
            Fixture::V1 => format!(
                "ENV APP_VERSION=1 APP_MODE=default\nLABEL app.version=1\nEXPOSE 8080\n{SERVE}"
            ),
            Fixture::V2 => format!(
                "ENV APP_VERSION=2 APP_MODE=default\nLABEL app.version=2\nEXPOSE 8080\n{SERVE}"
            ),
            Fixture::V2b => format!(
                "ENV APP_VERSION=2 APP_MODE=default\nLABEL app.version=2 build=b\nEXPOSE 8080\n{SERVE}"
            ),
            Fixture::Crash => format!(
                "ENV APP_VERSION=crash APP_MODE=default\nLABEL app.version=crash\n\
                 CMD [\"/bin/sh\", \"-c\", \"echo '{CRASH_LOG_LINE}'; exit 3\"]\n"
            ),
            Fixture::Unhealthy => format!(
                "ENV APP_VERSION=sick APP_MODE=default\nLABEL app.version=sick\nEXPOSE 8080\n\
                 HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD [\"/bin/false\"]\n{SERVE}"
            ),
            Fixture::NeverHealthy => format!(
                "ENV APP_VERSION=starting APP_MODE=default\nLABEL app.version=starting\nEXPOSE 8080\n\
                 HEALTHCHECK --interval=1s --timeout=1s --start-period=300s --retries=1 CMD [\"/bin/false\"]\n{SERVE}"
            ),
            Fixture::Other => format!(
                "ENV APP_VERSION=other APP_MODE=default\nLABEL app.version=other\nEXPOSE 8080\n{SERVE}"
            ),
        };
        format!("{BASE}{body}")
    }

    /// `repo:<variant>-<hash of the Dockerfile>`.
    pub fn tag(self) -> String {
        let file = self.dockerfile();
        let h = fnv1a(file.as_bytes());
        match self {
            Fixture::Other => format!("{OTHER_REPO}:{:08x}", h >> 32),
            _ => format!("{APP_REPO}:{}-{:08x}", self.variant(), h >> 32),
        }
    }

    /// The image (built once per process, and only if its tag is missing).
    pub fn image(self) -> Result<String> {
        static BUILT: OnceLock<Mutex<HashMap<Fixture, String>>> = OnceLock::new();
        let m = BUILT.get_or_init(Mutex::default);
        let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = m.get(&self) {
            return Ok(t.clone());
        }
        let tag = build_image(&self.tag(), &self.dockerfile())?;
        m.insert(self, tag.clone());
        Ok(tag)
    }

    /// The built image's id (`sha256:...`).
    pub fn image_id(self) -> Result<String> {
        image_id(&self.image()?)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Build `dockerfile` (with /bin/busybox in the context) as `tag`, unless an
/// image with that tag exists.
pub fn build_image(tag: &str, dockerfile: &str) -> Result<String> {
    if docker_raw(&["image", "inspect", "--format", "{{.Id}}", tag])?
        .status
        .success()
    {
        return Ok(tag.to_string());
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox is missing: install busybox-static (scripts/test.sh does)");
    }
    let dir = TempDir::new("deploy-image")?;
    fs::copy(busybox, dir.path().join("busybox")).context("copy /bin/busybox")?;
    fs::write(dir.path().join("Dockerfile"), dockerfile)?;
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_BUILDKIT", "0")
        .args(["build", "--quiet", "-t", tag])
        .arg(dir.path());
    run_raw(cmd, BUILD_TIMEOUT)?
        .ok()
        .with_context(|| format!("build the fixture image {tag}"))?;
    Ok(tag.to_string())
}

/// `docker image inspect --format {{.Id}}`.
pub fn image_id(image: &str) -> Result<String> {
    docker(&["image", "inspect", "--format", "{{.Id}}", image])
}

// ---------------------------------------------------------------------------
// Docker objects
// ---------------------------------------------------------------------------

/// `docker inspect NAME` (the first document), or an error if it does not exist.
pub fn inspect(name: &str) -> Result<Value> {
    let out = docker(&["inspect", "--type", "container", name])?;
    let v: Value = serde_json::from_str(&out).with_context(|| format!("docker inspect {name}"))?;
    v.get(0)
        .cloned()
        .ok_or_else(|| anyhow!("docker inspect {name}: empty answer"))
}

/// Whether a container of that name (or id) exists.
pub fn exists(name: &str) -> bool {
    docker_raw(&[
        "inspect",
        "--type",
        "container",
        "--format",
        "{{.Id}}",
        name,
    ])
    .is_ok_and(|o| o.status.success())
}

/// The `Config.Env` of an inspect document as `KEY=VALUE` strings.
pub fn env_of(doc: &Value) -> Vec<String> {
    doc["Config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// A label of an inspect document.
pub fn label_of(doc: &Value, key: &str) -> Option<String> {
    doc["Config"]["Labels"][key].as_str().map(str::to_string)
}

/// The part of a container's configuration that a deploy or rollback must
/// keep, for before/after comparisons (image-derived parts included: use it
/// to compare a container with itself).
pub fn config_fingerprint(doc: &Value) -> Value {
    let mut networks = serde_json::Map::new();
    if let Some(n) = doc["NetworkSettings"]["Networks"].as_object() {
        for (k, v) in n {
            let mut aliases: Vec<String> = v["Aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
            aliases.sort();
            networks.insert(k.clone(), serde_json::json!(aliases));
        }
    }
    let mut mounts: Vec<String> = doc["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            format!(
                "{} {} -> {} rw={}",
                m["Type"].as_str().unwrap_or(""),
                m["Name"]
                    .as_str()
                    .or(m["Source"].as_str())
                    .unwrap_or_default(),
                m["Destination"].as_str().unwrap_or(""),
                m["RW"]
            )
        })
        .collect();
    mounts.sort();
    let mut env = env_of(doc);
    env.sort();
    serde_json::json!({
        "name": doc["Name"],
        "image": doc["Config"]["Image"],
        "image_id": doc["Image"],
        "env": env,
        "cmd": doc["Config"]["Cmd"],
        "labels": doc["Config"]["Labels"],
        "ports": doc["HostConfig"]["PortBindings"],
        "restart": doc["HostConfig"]["RestartPolicy"],
        "hostname": doc["Config"]["Hostname"],
        "healthcheck": doc["Config"]["Healthcheck"],
        "mounts": mounts,
        "networks": networks,
    })
}

/// A free loopback TCP port (bound, then released).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A short `GET /` on `127.0.0.1:port`: the body on a 200, else an error.
pub fn http_body(port: u16, timeout: Duration) -> Result<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(
        format!("GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP header end in {text:?}"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!("HTTP {status}: {head}");
    }
    Ok(body.to_string())
}

/// Wait (bounded) until `GET /` on `port` answers a body containing `needle`.
pub fn wait_http(port: u16, needle: &str, timeout: Duration) -> Result<String> {
    crate::wait_until(
        &format!("{needle:?} from http://127.0.0.1:{port}/"),
        timeout,
        Duration::from_millis(100),
        || {
            let b = http_body(port, Duration::from_secs(2))?;
            Ok(b.contains(needle).then_some(b))
        },
    )
}

/// `docker rm -f -v` every container labelled `nextdeploy.test=<prefix>`.
pub fn remove_labelled(prefix: &str) {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "ids=$(docker ps -aq --filter \"label=$1\"); [ -z \"$ids\" ] || docker rm -f -v $ids",
        "sh",
        &format!("{TEST_LABEL}={prefix}"),
    ]);
    let _ = run_raw(cmd, Duration::from_secs(60));
}

// ---------------------------------------------------------------------------
// A hub, agents scoped to one test's containers, and the lock
// ---------------------------------------------------------------------------

/// One deploy test's world: the lock, a hub, one agent scoped to the test's
/// containers (`scope_label = "nextdeploy.test=<prefix>"`), names, and the
/// networks and volumes to remove. On drop: every labelled container, then
/// the networks and volumes, then agent, hub, lock.
#[derive(Debug)]
pub struct DeployEnv {
    /// Container names for this test (prefix = the scope label's value).
    pub names: Names,
    /// The agent (`nextdeploy-agent run`) on the local engine.
    pub agent: Agent,
    /// Further agents a test enrolled ([`DeployEnv::add_agent`]).
    pub agents: Vec<Agent>,
    /// The hub.
    pub hub: Hub,
    networks: Vec<String>,
    volumes: Vec<String>,
    _lock: DockerLock,
}

/// Enrol an agent `name` with `labels` on `hub`, restrict it to containers
/// labelled `scope` (`k=v`), start it and wait until it is online.
pub fn scoped_agent(hub: &Hub, name: &str, labels: &str, scope: &str) -> Result<Agent> {
    let jt = hub.join_token(name, labels, "1h")?;
    let mut agent = Agent::enroll(hub, name, &jt.token)?;
    set_config_key(&agent.config, "scope_label", &format!("{scope:?}"))?;
    agent.start()?;
    wait_online(hub, &[name], Duration::from_secs(20)).with_context(|| agent.log_tail())?;
    Ok(agent)
}

impl DeployEnv {
    /// Take the lock, check Docker, start a hub, enrol agent `dp-<test>`
    /// (labels `suite=deploy`) scoped to this test's containers.
    pub fn start(test: &str) -> Result<DeployEnv> {
        let lock = docker_lock()?;
        require_docker()?;
        let names = Names::new(test);
        let hub = Hub::start(HubOpts::default())?;
        let scope = format!("{TEST_LABEL}={}", names.prefix);
        let agent = scoped_agent(&hub, &format!("dp-{test}"), "suite=deploy", &scope)?;
        Ok(DeployEnv {
            names,
            agent,
            agents: Vec::new(),
            hub,
            networks: Vec::new(),
            volumes: Vec::new(),
            _lock: lock,
        })
    }

    /// The agent's name (the `--server`).
    pub fn server(&self) -> &str {
        &self.agent.name
    }

    /// `--label nextdeploy.test=<prefix>`, the scope every agent here sees.
    pub fn test_label(&self) -> String {
        format!("{TEST_LABEL}={}", self.names.prefix)
    }

    /// Enrol and start one more agent (also kept in [`DeployEnv::agents`]),
    /// scoped to containers labelled `scope`.
    pub fn add_agent(&mut self, name: &str, labels: &str, scope: &str) -> Result<&Agent> {
        let a = scoped_agent(&self.hub, name, labels, scope)?;
        self.agents.push(a);
        self.agents
            .last()
            .ok_or_else(|| anyhow!("no agent after enrolment"))
    }

    /// `docker network create <prefix>-<role>` (removed on drop).
    pub fn network(&mut self, role: &str) -> Result<String> {
        let n = self.names.name(role);
        self.networks.push(n.clone());
        docker(&["network", "create", &n])?;
        Ok(n)
    }

    /// `docker volume create <prefix>-<role>` (removed on drop).
    pub fn volume(&mut self, role: &str) -> Result<String> {
        let n = self.names.name(role);
        self.volumes.push(n.clone());
        docker(&["volume", "create", &n])?;
        Ok(n)
    }

    /// `docker run -d --name <prefix>-<role> --label nextdeploy.test=<prefix>
    /// --stop-timeout 1 OPTS IMAGE` (busybox httpd as PID 1 ignores SIGTERM);
    /// returns the container's name and id.
    pub fn run(&self, role: &str, image: &str, opts: &[&str]) -> Result<(String, String)> {
        let name = self.names.name(role);
        let label = self.test_label();
        let mut a = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            &label,
            "--stop-timeout",
            "1",
        ];
        a.extend(opts);
        a.push(image);
        let out = docker(&a)?;
        let id = out
            .lines()
            .last()
            .map(str::trim)
            .filter(|s| s.len() == 64)
            .ok_or_else(|| anyhow!("docker {} printed no id: {out}", a.join(" ")))?
            .to_string();
        Ok((name, id))
    }

    /// `agent deploy --server <agent> ARGS --output json` as admin.
    pub fn deploy(&self, args: &[&str]) -> Result<DeployRun> {
        let mut a = vec!["--server", self.server()];
        a.extend(args);
        deploy_as(&self.hub, &self.hub.admin_token, &a)
    }

    /// The same, streaming (for tests that act during the deploy).
    pub fn deploy_stream(&self, args: &[&str]) -> Result<Streamer> {
        let mut cmd = self.hub.cli_command(&self.hub.admin_token)?;
        cmd.args(["agent", "deploy", "--server", self.server()])
            .args(args)
            .args(["--output", "json"]);
        Streamer::spawn(cmd)
    }

    /// `deploys show ID --output json`.
    pub fn show(&self, id: &str) -> Result<Value> {
        self.hub.cli_json(&["deploys", "show", id])
    }

    /// Wait (bounded) until `deploys show ID` has `status == want`.
    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> Result<Value> {
        let mut last = Value::Null;
        let r = crate::wait_until(
            &format!("deploy {id} to be recorded as {want}"),
            timeout,
            Duration::from_millis(250),
            || {
                let v = self.show(id)?;
                last = v.clone();
                Ok((v["status"] == want).then_some(v))
            },
        );
        r.with_context(|| format!("last deploys show: {last}\n{}", self.logs()))
    }

    /// Logs of hub and agents, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = format!("{}\n{}", self.hub.log_tail(), self.agent.log_tail());
        for a in &self.agents {
            s.push('\n');
            s.push_str(&a.log_tail());
        }
        s
    }
}

impl Drop for DeployEnv {
    fn drop(&mut self) {
        remove_labelled(&self.names.prefix);
        for n in &self.networks {
            let _ = docker_raw(&["network", "rm", n]);
        }
        for v in &self.volumes {
            let _ = docker_raw(&["volume", "rm", "-f", v]);
        }
    }
}

// ---------------------------------------------------------------------------
// Deploy runs
// ---------------------------------------------------------------------------

/// A finished `agent deploy ... --output json`.
#[derive(Debug, Clone)]
pub struct DeployRun {
    /// The CLI run.
    pub out: Output,
    /// Every stdout line that parsed as JSON, in order.
    pub lines: Vec<Value>,
    /// The final document (the last JSON line), `Null` if none.
    pub doc: Value,
}

impl DeployRun {
    /// The progress lines (every JSON line but the final document).
    pub fn progress(&self) -> &[Value] {
        match self.lines.split_last() {
            Some((_, rest)) => rest,
            None => &[],
        }
    }

    /// The deploy id (of the final document, else of the first progress line).
    pub fn id(&self) -> Result<String> {
        self.doc["deploy_id"]
            .as_str()
            .or_else(|| self.lines.first().and_then(|l| l["deploy_id"].as_str()))
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no deploy_id in the output\n{}", self.describe()))
    }

    /// The first container result of the final document.
    pub fn container(&self) -> &Value {
        &self.doc["containers"][0]
    }

    /// The CLI's status and output, for messages.
    pub fn describe(&self) -> String {
        self.out.describe()
    }
}

/// `nextdeploy agent deploy ARGS --output json` with `token`, bounded by
/// [`DEPLOY_TIMEOUT`].
pub fn deploy_as(hub: &Hub, token: &str, args: &[&str]) -> Result<DeployRun> {
    let mut cmd = hub.cli_command(token)?;
    cmd.args(["agent", "deploy"])
        .args(args)
        .args(["--output", "json"]);
    let out = crate::run_bounded(cmd, DEPLOY_TIMEOUT)?;
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let doc = lines.last().cloned().unwrap_or(Value::Null);
    Ok(DeployRun { out, lines, doc })
}

/// Seconds between a step's `started` and its `done`/`failed` in a list of
/// progress events (first container).
pub fn step_secs(steps: &[Value], step: &str) -> Option<f64> {
    let at = |status: &str| {
        steps
            .iter()
            .find(|s| s["step"] == step && s["status"] == status)
            .and_then(|s| s["at_ms"].as_i64())
    };
    let start = at("started")?;
    let end = at("done").or_else(|| at("failed"))?;
    Some((end - start) as f64 / 1000.0)
}

/// The median of some figures.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

// ---------------------------------------------------------------------------
// Downtime of a published port
// ---------------------------------------------------------------------------

/// Polls `GET /` on a port every 20 ms in a thread, recording which answered.
pub struct PortPoller {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<Vec<(Instant, bool)>>>,
}

/// What a [`PortPoller`] saw.
#[derive(Debug, Clone)]
pub struct PollStats {
    /// Longest time between two successful answers (each taken when it
    /// completed, so a request that hangs through the swap counts as down).
    pub longest_gap: Duration,
    /// Successful polls.
    pub ok: usize,
    /// Failed polls.
    pub failed: usize,
    /// Polls made.
    pub polls: usize,
}

impl PortPoller {
    /// Start polling.
    pub fn start(port: u16) -> PortPoller {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = thread::spawn(move || {
            let mut seen = Vec::new();
            while !s.load(Ordering::SeqCst) {
                let t = Instant::now();
                let ok = http_body(port, Duration::from_millis(500)).is_ok();
                seen.push((Instant::now(), ok));
                let spent = t.elapsed();
                if spent < Duration::from_millis(20) {
                    thread::sleep(Duration::from_millis(20) - spent);
                }
            }
            seen
        });
        PortPoller {
            stop,
            handle: Some(handle),
        }
    }

    /// Stop and summarize.
    pub fn finish(mut self) -> PollStats {
        self.stop.store(true, Ordering::SeqCst);
        let seen = self
            .handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let mut longest = Duration::ZERO;
        let mut last_ok: Option<Instant> = None;
        for (t, ok) in &seen {
            if *ok {
                if let Some(p) = last_ok {
                    longest = longest.max(t.duration_since(p));
                }
                last_ok = Some(*t);
            }
        }
        // ND_POLL_DEBUG=1 prints when the port went down and came back.
        if std::env::var_os("ND_POLL_DEBUG").is_some() {
            let t0 = seen.first().map(|s| s.0);
            let mut prev = None;
            for (t, ok) in &seen {
                if prev != Some(*ok) {
                    eprintln!("  poll +{:?} ok={ok}", t0.map(|z| t.duration_since(z)));
                    prev = Some(*ok);
                }
            }
        }
        PollStats {
            longest_gap: longest,
            ok: seen.iter().filter(|s| s.1).count(),
            failed: seen.iter().filter(|s| !s.1).count(),
            polls: seen.len(),
        }
    }
}

impl Drop for PortPoller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------------------
// A registry
// ---------------------------------------------------------------------------

/// Debian's `docker-registry` serving a temp dir on a free loopback port;
/// killed on drop.
#[derive(Debug)]
pub struct Registry {
    dir: TempDir,
    /// Its port.
    pub port: u16,
    /// Its log.
    pub log: PathBuf,
    child: Option<Child>,
}

impl Registry {
    /// Start one and wait until `GET /v2/` answers.
    pub fn start() -> Result<Registry> {
        let bin = Path::new("/usr/bin/docker-registry");
        if !bin.is_file() {
            bail!("/usr/bin/docker-registry is missing: apt-get install docker-registry (scripts/test.sh does)");
        }
        let mut last = None;
        for _ in 0..3 {
            match Registry::try_start(bin) {
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("registry did not start")))
    }

    fn try_start(bin: &Path) -> Result<Registry> {
        let dir = TempDir::new("registry")?;
        let port = free_port()?;
        let root = dir.path().join("storage");
        fs::create_dir_all(&root)?;
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                root.display()
            ),
        )?;
        let log = dir.path().join("registry.log");
        let f = fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .spawn()
            .context("spawn docker-registry")?;
        let mut r = Registry {
            dir,
            port,
            log,
            child: Some(child),
        };
        let up = wait_until_ok(
            "the registry to answer /v2/",
            Duration::from_secs(15),
            Duration::from_millis(100),
            || {
                if let Some(st) = r.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    bail!("docker-registry exited: {st}");
                }
                Ok(crate::http_get(port, "/v2/", &[]).is_ok_and(|(s, _)| s == 200))
            },
        );
        up.with_context(|| r.log_tail())?;
        Ok(r)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `docker tag SRC <addr>/REPO_TAG` and `docker push` it; the pushed name.
    pub fn push(&self, src: &str, repo_tag: &str) -> Result<String> {
        let dst = format!("{}/{repo_tag}", self.addr());
        docker(&["tag", src, &dst])?;
        let mut cmd = Command::new("docker");
        cmd.args(["push", &dst]);
        run_raw(cmd, Duration::from_secs(120))?
            .ok()
            .with_context(|| format!("docker push {dst}\n{}", self.log_tail()))?;
        Ok(dst)
    }

    /// The manifest digest the registry serves for `repo:tag`.
    pub fn digest(&self, repo: &str, tag: &str) -> Result<String> {
        let (status, _) = crate::http_get(self.port, &format!("/v2/{repo}/manifests/{tag}"), &[])?;
        if status != 200 {
            bail!("registry: {repo}:{tag} -> HTTP {status}");
        }
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(
            format!(
                "HEAD /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {}\r\nAccept: application/vnd.docker.distribution.manifest.v2+json\r\nConnection: close\r\n\r\n",
                self.addr()
            )
            .as_bytes(),
        )?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf);
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("docker-content-digest")
                    .then(|| v.trim().to_string())
            })
            .ok_or_else(|| anyhow!("no Docker-Content-Digest in {text}"))
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        format!(
            "--- registry log ({}) ---\n{}",
            self.log.display(),
            crate::tail(&self.log, 30)
        )
    }

    /// Its temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}
