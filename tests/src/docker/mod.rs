//! Docker fixtures for the `docker_*` suites: a fixture image built from
//! scratch (busybox and a small script), containers removed on drop, bounded
//! `docker` commands, a cross-process lock that serializes the Docker suites,
//! a hub with an agent on this machine's engine, a private dockerd, and
//! small parsers.
//!
//! Every suite that needs Docker fails loudly when no engine answers: a
//! missing engine is an error, never a skip.

mod container;
mod dockerd;
mod env;
mod fixture;
mod lock;
mod mirrored;
mod parse;

pub use container::{Container, Names};
pub use dockerd::{start_dockerd, PrivateDockerd};
pub use env::DockerEnv;
pub use fixture::{
    build_image, content_tag, fixture_image, fixture_tag, FIXTURE_APP, FIXTURE_DOCKERFILE,
};
pub use lock::{docker_lock, DockerLock, LOCK_FILE};
pub use mirrored::{MirroredDockerd, MIRROR};
pub use parse::{
    assert_bytes_eq, b64_decode, bytes_diff, parse_docker_size, parse_rfc3339, unix_secs,
};

// What these suites used from here before the harness was split by concern.
pub use crate::agent::set_config_key;
pub use crate::process::{run_raw, wait_until_ok, Line, RawOutput, Streamer};
pub use crate::procfs::{dockerd_pid, dockerd_pids, fds_open_on};
pub use crate::ws::ws_request;

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

/// Bound for one ordinary `docker` command.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);
/// Label put on every container a suite creates (value: the test's prefix).
pub const TEST_LABEL: &str = "nextdeploy.test";

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

/// `docker [-H host] info --format {{.ServerVersion}}`, bounded.
fn docker_info(host: Option<&str>, timeout: Duration) -> Result<RawOutput> {
    let mut cmd = Command::new("docker");
    if let Some(h) = host {
        cmd.args(["-H", h]);
    }
    cmd.args(["info", "--format", "{{.ServerVersion}}"]);
    run_raw(cmd, timeout)
}

/// Whether an engine answers `docker info` (within 15 s).
pub fn docker_answers() -> bool {
    docker_info(None, Duration::from_secs(15))
        .is_ok_and(|o| o.status.success() && !o.stdout.trim_ascii().is_empty())
}

/// Fail loudly unless a Docker Engine answers.
pub fn require_docker() -> Result<()> {
    match docker_info(None, Duration::from_secs(20)) {
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

/// `docker rm -f -v` every container matching `docker ps -aq <filter>` on
/// the engine at `host` (the default one if `None`).
pub fn remove_containers(host: Option<&str>, filter: &[&str]) {
    let mut ps = Command::new("docker");
    if let Some(h) = host {
        ps.args(["-H", h]);
    }
    ps.args(["ps", "-aq"]).args(filter);
    let Ok(out) = run_raw(ps, Duration::from_secs(30)) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ids: Vec<&str> = text.split_whitespace().collect();
    if ids.is_empty() {
        return;
    }
    let mut rm = Command::new("docker");
    if let Some(h) = host {
        rm.args(["-H", h]);
    }
    rm.args(["rm", "-f", "-v"]).args(ids);
    let _ = run_raw(rm, Duration::from_secs(60));
}
