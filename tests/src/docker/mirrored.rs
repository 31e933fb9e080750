//! A private dockerd in a [`Sandbox`]'s network namespace whose docker.io
//! mirror is a real registry (Debian's `docker-registry`) in the same
//! namespace: an image pushed to [`MIRROR`]`/library/NAME:TAG` is what
//! `docker pull NAME:TAG` gets, with no network beyond the namespace.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::paths::{tail, TempDir};
use crate::process::{run_bounded, wait_until_ok, Output, Proc};
use crate::sandbox::Sandbox;

/// The mirror's address inside the namespace (its ports are its own).
pub const MIRROR: &str = "127.0.0.1:5000";
/// Bound for dockerd and the registry to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for one docker command (a load or a push of the fixture).
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// The dockerd and its mirror; both killed on drop.
#[derive(Debug)]
pub struct MirroredDockerd {
    /// `unix://<dir>/docker.sock`, for `docker -H` and `DOCKER_HOST`.
    pub host: String,
    /// Both daemons' output.
    pub log: PathBuf,
    procs: Vec<Proc>,
    dir: TempDir,
}

impl MirroredDockerd {
    /// Start both in `sb` and wait until dockerd answers.
    pub fn start_in(sb: &Sandbox) -> Result<MirroredDockerd> {
        let dir = TempDir::new("mirrored-dockerd")?;
        let mut d = MirroredDockerd {
            host: format!("unix://{}", dir.path().join("docker.sock").display()),
            log: dir.path().join("daemons.log"),
            procs: Vec::new(),
            dir,
        };
        d.start(sb)?;
        Ok(d)
    }

    /// `docker -H <this dockerd> args`.
    pub fn docker(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new("docker");
        cmd.arg("-H").arg(&self.host).args(args);
        run_bounded(cmd, DOCKER_TIMEOUT)
    }

    /// Copy `image` from the host's dockerd and publish it on the mirror
    /// as `name` (`myapp:2.1`), which stays tagged locally too.
    pub fn publish(&self, image: &str, name: &str) -> Result<()> {
        let mut load = Command::new("sh");
        load.arg("-c").arg(format!(
            "docker save '{image}' | docker -H '{}' load",
            self.host
        ));
        run_bounded(load, DOCKER_TIMEOUT)?.ok()?;
        let mirror_tag = format!("{MIRROR}/library/{name}");
        self.docker(&["tag", image, name])?.ok()?;
        self.docker(&["tag", image, &mirror_tag])?.ok()?;
        wait_until_ok(
            "a push to the mirror",
            START_TIMEOUT,
            Duration::from_millis(500),
            || Ok(self.docker(&["push", &mirror_tag])?.success()),
        )
        .with_context(|| tail(&self.log, 20))?;
        self.docker(&["rmi", &mirror_tag])?.ok()?;
        Ok(())
    }

    fn start(&mut self, sb: &Sandbox) -> Result<()> {
        let dir = self.dir.path();
        fs::create_dir_all(dir.join("registry"))?;
        fs::write(
            dir.join("registry.yml"),
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {MIRROR}\n",
                dir.join("registry").display()
            ),
        )?;
        fs::write(
            dir.join("daemon.json"),
            format!("{{\"registry-mirrors\": [\"http://{MIRROR}\"]}}\n"),
        )?;
        let reg = sb.command(
            "/usr/bin/docker-registry",
            &["serve", &dir.join("registry.yml").display().to_string()],
        );
        self.procs
            .push(Proc::spawn_logged(reg, &self.log, "registry", None)?);
        let sock = &self.host["unix://".len()..];
        let p = |s: &str| dir.join(s).display().to_string();
        let dockerd = sb.command(
            "dockerd",
            &[
                "--config-file",
                &p("daemon.json"),
                "-H",
                &self.host,
                "--data-root",
                &p("data"),
                "--exec-root",
                &p("exec"),
                "--pidfile",
                &p("dockerd.pid"),
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
                "--cgroup-parent",
                "nextdeploy-test-dockerd",
            ],
        );
        self.procs
            .push(Proc::spawn_logged(dockerd, &self.log, "dockerd", None)?);
        wait_until_ok(
            "the private dockerd",
            START_TIMEOUT,
            Duration::from_millis(200),
            || Ok(Path::new(sock).exists() && self.docker(&["info"])?.success()),
        )
        .with_context(|| tail(&self.log, 40))?;
        Ok(())
    }
}
