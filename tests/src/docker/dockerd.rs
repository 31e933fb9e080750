//! Docker Engines of the tests' own: the machine's `dockerd` started
//! detached, and a private dockerd a test may stop and start.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{docker_answers, docker_info, remove_containers};
use crate::paths::{tail, TempDir};
use crate::process::{run_raw, wait_until_ok, Proc};

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
            tail(Path::new("/tmp/dockerd.log"), 30)
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
    child: Option<Proc>,
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
        docker_info(Some(&self.host), Duration::from_secs(15)).is_ok_and(|o| o.status.success())
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
        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "--", "dockerd", "--config-file"])
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
            .stderr(log);
        let child =
            Proc::spawn(cmd).context("spawn a private dockerd (unshare --net -- dockerd ...)")?;
        self.child = Some(child);
        let started = wait_until_ok(
            "the private dockerd to answer",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                if let Some(st) = self.child.as_mut().and_then(Proc::try_status) {
                    bail!("the private dockerd exited: {st}");
                }
                Ok(self.answers())
            },
        );
        started.with_context(|| self.log_tail())
    }

    /// Pid of the running dockerd.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Proc::id)
    }

    /// SIGTERM it and wait (bounded) until it has exited.
    pub fn stop(&mut self, timeout: Duration) -> Result<()> {
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        c.signal("TERM")?;
        if c.wait_timeout(timeout)?.is_none() {
            drop(c);
            bail!(
                "the private dockerd did not exit within {timeout:?} of SIGTERM\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        format!(
            "--- private dockerd log ({}) ---\n{}",
            self.log.display(),
            tail(&self.log, 30)
        )
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        remove_containers(Some(&self.host), &[]);
        if let Err(e) = self.stop(Duration::from_secs(30)) {
            eprintln!("{e:#}");
        }
        if thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}
