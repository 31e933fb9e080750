//! What the `exec` scenario runs against: a Docker Engine, a tiny busybox
//! container, and a hub started with `--local-agent` (its agent a child of
//! the hub, its CLI login under a temporary `HOME`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::{build, hub, procfs};

/// The image: busybox alone, from scratch (as the end-to-end tests build
/// theirs), its command `sleep` so `docker rm -f` is the only way it ends.
const DOCKERFILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["/bin/sleep", "1000000000"]
"#;
/// Its tag; built once, reused by later runs.
const IMAGE: &str = "nextdeploy-bench-exec:busybox";
/// The container's name; a run removes any left by an interrupted one.
pub const CONTAINER: &str = "nextdeploy-bench-exec";
/// Any one `docker` call of the set-up (a build from scratch takes seconds).
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the local agent may take to answer its first ping.
const ONLINE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one `nextdeploy agent ping` may take.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Run `cmd` to its end within `limit` (killed past it); its output.
pub fn output_within(mut cmd: Command, limit: Duration) -> anyhow::Result<Output> {
    let what = format!("{:?}", cmd.get_program());
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {what}"))?;
    let dog = super::measure::Watchdog::arm(child.id(), limit);
    let out = child.wait_with_output()?;
    if dog.fired() {
        bail!("{what} did not finish within {limit:?}");
    }
    Ok(out)
}

fn docker(args: &[&str]) -> anyhow::Result<Output> {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    output_within(cmd, DOCKER_TIMEOUT)
}

/// The container, removed when dropped.
pub struct Container;

impl Container {
    /// Check the engine answers, build the image if missing, start the
    /// container.
    pub fn start(work: &Path) -> anyhow::Result<Container> {
        let info = docker(&["info", "--format", "{{.ServerVersion}}"])
            .context("the exec scenario needs Docker (the docker CLI was not found)")?;
        if !info.status.success() {
            bail!(
                "the exec scenario needs a running Docker Engine: `docker info` failed: {}",
                String::from_utf8_lossy(&info.stderr).trim()
            );
        }
        build_image(work)?;
        let _ = docker(&["rm", "-f", CONTAINER]);
        let run = docker(&["run", "-d", "--name", CONTAINER, IMAGE])?;
        if !run.status.success() {
            bail!(
                "docker run {IMAGE}: {}",
                String::from_utf8_lossy(&run.stderr).trim()
            );
        }
        Ok(Container)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", CONTAINER]);
    }
}

fn build_image(work: &Path) -> anyhow::Result<()> {
    if docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE])?
        .status
        .success()
    {
        return Ok(());
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        bail!("/bin/busybox is missing: install busybox-static");
    }
    let ctx = work.join("image");
    std::fs::create_dir_all(&ctx)?;
    std::fs::copy(busybox, ctx.join("busybox")).context("copy /bin/busybox")?;
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE)?;
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_BUILDKIT", "0")
        .args(["build", "--quiet", "-t", IMAGE])
        .arg(&ctx);
    let out = output_within(cmd, DOCKER_TIMEOUT)?;
    if !out.status.success() {
        bail!(
            "docker build {IMAGE}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The hub with its local agent, up and answering.
pub struct Hub {
    pub proc: hub::HubProc,
    /// The local agent's name (the hostname).
    pub server: String,
    pub agent_pid: u32,
    /// `HOME` of the CLI calls (the hub saved its login there).
    pub home: PathBuf,
}

impl Hub {
    /// Start `nextdeploy hub --local-agent` in `work` and wait until its
    /// agent answers a ping through the CLI.
    pub fn start(work: &Path) -> anyhow::Result<Hub> {
        let (dir, home) = (work.join("hub"), work.join("home"));
        std::fs::create_dir_all(&home)?;
        let (proc, server) = hub::start_local_agent(&dir, &home)?;
        let hub = Hub {
            agent_pid: 0,
            proc,
            server,
            home,
        };
        let t0 = Instant::now();
        loop {
            let out = output_within(hub.cli(&["agent", "ping", "--count", "1"]), PING_TIMEOUT)?;
            if out.status.success() {
                break;
            }
            if t0.elapsed() > ONLINE_TIMEOUT {
                bail!(
                    "the local agent {:?} did not answer a ping within {ONLINE_TIMEOUT:?}: {}",
                    hub.server,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let agent_pid = procfs::child_pids(hub.proc.pid())
            .into_iter()
            .find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| build::AGENT.starts_with(c.trim()))
            })
            .context("the local agent's process was not found among the hub's children")?;
        Ok(Hub { agent_pid, ..hub })
    }

    /// A `nextdeploy` CLI call on this hub's login, `--server` appended.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(build::bin_dir().join(build::HUB));
        hub::cli_env(&mut cmd, &self.home);
        cmd.args(args).args(["--server", &self.server]);
        cmd
    }
}
