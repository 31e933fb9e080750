//! A booted systemd for the install suites: a minimal Debian bookworm root
//! (built once per machine by `scripts/systemd-root.sh`, cached by content)
//! booted with `systemd-nspawn -b --keep-unit` on the host's network, so
//! what runs inside reaches a hub on 127.0.0.1.
//!
//! Each [`Machine`] boots the cached root through its own overlay (the root
//! stays read-only and shared; writes go to the test's temp dir), so tests
//! are independent and a reboot keeps what was installed. Commands run
//! inside with `nsenter` into every namespace of the container's PID 1.
//! Dropping a [`Machine`] powers it off (SIGTERM to nspawn, which shuts the
//! container down in order), kills it if that takes too long, and unmounts
//! the overlay, also when the test fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::paths::{tail, workspace_root, TempDir};
use crate::process::{run_bounded, send_signal, wait_until, wait_until_ok, Output, Proc};

/// Bound for building the root: debootstrap took 55 s on the 2-core test
/// machine; a slow mirror gets ten times that.
pub const ROOT_BUILD_TIMEOUT: Duration = Duration::from_secs(1200);
/// Bound for a boot to reach `running` (about 1 s measured).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for an orderly power-off (0.13 s measured) before SIGKILL.
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(20);
/// Default bound for one command inside.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// Where the workspace's `deploy/` is mounted (read-only) inside.
pub const DEPLOY_DIR: &str = "/opt/nextdeploy/deploy";
/// Where the workspace's debug binaries are mounted (read-only) inside.
pub const BIN_DIR: &str = "/opt/nextdeploy/bin";
/// nspawn's exit status when the container asked for a reboot.
const REBOOT_STATUS: i32 = 133;

/// The cached root, built on first use (once per process; the script
/// serializes builds across processes with a lock file).
pub fn root() -> Result<PathBuf> {
    static ROOT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    ROOT.get_or_init(|| build_root().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build_root() -> Result<PathBuf> {
    let script = workspace_root().join("scripts/systemd-root.sh");
    let out = run_bounded(Command::new(&script), ROOT_BUILD_TIMEOUT)?
        .ok()
        .context("building the systemd root (scripts/test.sh installs debootstrap)")?;
    let path = PathBuf::from(out.stdout.trim());
    if !path.join(".complete").is_file() {
        bail!(
            "{} is not a complete root: {}",
            path.display(),
            out.describe()
        );
    }
    Ok(path)
}

/// What to mount into a machine besides `deploy/` and the binaries.
#[derive(Debug, Clone, Default)]
pub struct MachineOpts {
    /// Bind the host's Docker socket at /run/docker.sock (mode and group
    /// numbers as on the host: root, the host's docker gid, 0660).
    pub docker_socket: bool,
}

/// A booted container; powered off and cleaned up on drop.
#[derive(Debug)]
pub struct Machine {
    /// Machine name (also its hostname).
    pub name: String,
    merged: PathBuf,
    log: PathBuf,
    opts: MachineOpts,
    nspawn: Option<Proc>,
    leader: u32,
    mounted: bool,
    // Last: removed after the overlay is unmounted.
    dir: TempDir,
    /// One booted machine at a time in a test binary: with several, systemd
    /// in one of them now and then failed to attach a service to its cgroup
    /// (`status=219/CGROUP`, "Failed to attach to cgroup ... No such file or
    /// directory"), seen once in CI while four booted at once.
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

/// Held by every [`Machine`] while it lives.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Machine {
    /// Boot a fresh copy of the root and wait until systemd says `running`.
    pub fn boot(tag: &str, opts: MachineOpts) -> Result<Machine> {
        // A test that panicked while holding it poisoned nothing of ours.
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let lower = root()?;
        let dir = TempDir::new(&format!("nspawn-{tag}"))?;
        let (upper, work, merged) = (
            dir.path().join("upper"),
            dir.path().join("work"),
            dir.path().join("merged"),
        );
        for d in [&upper, &work, &merged] {
            fs::create_dir_all(d)?;
        }
        let mut mount = Command::new("mount");
        mount.args(["-t", "overlay", "overlay", "-o"]).arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        ));
        mount.arg(&merged);
        run_bounded(mount, EXEC_TIMEOUT)?
            .ok()
            .context("overlay mount")?;
        let suffix: u32 = rand::random();
        let mut m = Machine {
            name: format!("nd-{tag}-{suffix:08x}"),
            log: dir.path().join("nspawn.log"),
            merged,
            opts,
            nspawn: None,
            leader: 0,
            mounted: true,
            dir,
            _one_at_a_time: turn,
        };
        m.start()?;
        Ok(m)
    }

    /// The host's path of a file inside the machine (through the overlay).
    pub fn path(&self, inside: &str) -> PathBuf {
        self.merged.join(inside.trim_start_matches('/'))
    }

    /// The test's temp dir (nspawn's console log lives here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn start(&mut self) -> Result<()> {
        let mut cmd = Command::new("systemd-nspawn");
        cmd.arg("-D")
            .arg(&self.merged)
            .args(["-b", "--keep-unit", "--register=no", "--quiet"])
            .arg(format!("--machine={}", self.name))
            .arg(format!(
                "--bind-ro={}:{DEPLOY_DIR}",
                workspace_root().join("deploy").display()
            ));
        for b in ["nextdeploy", "nextdeploy-agent"] {
            let host = crate::paths::bin(b)?;
            cmd.arg(format!("--bind-ro={}:{BIN_DIR}/{b}", host.display()));
        }
        if self.opts.docker_socket {
            cmd.arg("--bind=/run/docker.sock:/run/docker.sock");
        }
        let proc = Proc::spawn_logged(cmd, &self.log, "systemd-nspawn", None)?;
        let nspawn_pid = proc.id();
        self.nspawn = Some(proc);
        self.leader = wait_until(
            "the container's PID 1",
            BOOT_TIMEOUT,
            Duration::from_millis(20),
            || Ok(container_init(nspawn_pid)),
        )
        .with_context(|| self.console())?;
        // The pid is nspawn's inner child until it execs systemd, which then
        // needs a moment before systemctl can reach it.
        let leader = self.leader;
        wait_until_ok(
            "systemd as the container's PID 1",
            BOOT_TIMEOUT,
            Duration::from_millis(20),
            || {
                Ok(fs::read_to_string(format!("/proc/{leader}/comm"))
                    .is_ok_and(|c| c.trim() == "systemd"))
            },
        )
        .with_context(|| self.console())?;
        let secs = BOOT_TIMEOUT.as_secs();
        let out = self.sh(&format!(
            "i=0; until [ -S /run/systemd/private ] || [ $i -ge {secs}0 ]; do sleep 0.1; i=$((i+1)); done; \
             timeout {secs} systemctl is-system-running --wait; systemctl --failed --no-legend"
        ))?;
        if !out.stdout.starts_with("running") {
            bail!(
                "boot did not reach running: {}\n{}",
                out.describe(),
                self.console()
            );
        }
        Ok(())
    }

    /// Run `script` with /bin/sh inside (as root, clean environment),
    /// bounded by [`EXEC_TIMEOUT`].
    pub fn sh(&self, script: &str) -> Result<Output> {
        self.sh_timeout(script, EXEC_TIMEOUT)
    }

    /// [`Machine::sh`] with its own bound.
    pub fn sh_timeout(&self, script: &str, timeout: Duration) -> Result<Output> {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.leader.to_string())
            .args(["-a", "--", "/bin/sh", "-c", script])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LANG", "C.UTF-8")
            .env("HOME", "/root");
        run_bounded(cmd, timeout)
    }

    /// [`Machine::sh`] that must succeed; its stdout, trimmed.
    pub fn sh_ok(&self, script: &str) -> Result<String> {
        let out = self.sh(script)?.ok()?;
        Ok(out.stdout.trim().to_string())
    }

    /// `systemctl reboot` inside, then boot the same filesystem again (nspawn
    /// exits with 133 on reboot; its service unit restarts it, here we do).
    pub fn reboot(&mut self) -> Result<()> {
        let _ = self.sh("systemctl reboot");
        let status = self.wait_nspawn_exit()?;
        if status != Some(REBOOT_STATUS) {
            bail!(
                "nspawn exited with {status:?}, not {REBOOT_STATUS} (reboot)\n{}",
                self.console()
            );
        }
        self.nspawn = None;
        self.start()
    }

    fn wait_nspawn_exit(&mut self) -> Result<Option<i32>> {
        let proc = self.nspawn.as_mut().ok_or_else(|| anyhow!("not running"))?;
        let st = proc
            .wait_timeout(POWEROFF_TIMEOUT)?
            .ok_or_else(|| anyhow!("nspawn still running after {POWEROFF_TIMEOUT:?}"))?;
        Ok(st.code())
    }

    /// The end of nspawn's console log, for failure messages.
    pub fn console(&self) -> String {
        format!(
            "--- {} (tail) ---\n{}",
            self.log.display(),
            tail(&self.log, 40)
        )
    }

    /// `journalctl -b` inside (the last lines), for failure messages.
    pub fn journal(&self) -> String {
        self.sh("journalctl -b --no-pager -n 80")
            .map(|o| o.stdout)
            .unwrap_or_else(|e| format!("(journalctl failed: {e:#})"))
    }
}

/// The pid (in our namespace) of the container's init: a descendant of
/// nspawn whose innermost pid is 1.
fn container_init(nspawn: u32) -> Option<u32> {
    let mut queue = vec![nspawn];
    while let Some(pid) = queue.pop() {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let nspid = status.lines().find(|l| l.starts_with("NSpid:"));
        if pid != nspawn && nspid.and_then(|l| l.split_whitespace().last()) == Some("1") {
            return Some(pid);
        }
        let children =
            fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        queue.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    None
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(p) = self.nspawn.as_ref() {
            let _ = send_signal(p.id(), "TERM");
            if self.wait_nspawn_exit().is_err() {
                // Killing nspawn alone would leave the container running:
                // SIGKILL to its init ends its whole pid namespace.
                eprintln!("{}: no orderly power-off; killing it", self.name);
                let _ = send_signal(self.leader, "KILL");
            }
        }
        self.nspawn = None; // Proc's drop kills and reaps it if still there
        if self.mounted {
            let umount = |lazy: bool| {
                let mut cmd = Command::new("umount");
                if lazy {
                    cmd.arg("-l");
                }
                cmd.arg(&self.merged);
                matches!(run_bounded(cmd, EXEC_TIMEOUT), Ok(o) if o.success())
            };
            if !umount(false) {
                umount(true);
            }
            self.mounted = false;
        }
    }
}
