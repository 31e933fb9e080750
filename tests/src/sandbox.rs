//! A host of its own for commands run exactly as the docs write them: a
//! network namespace (`ip netns add`, so the documented fixed ports and
//! `0.0.0.0` listens are private to the test), a hosts file that makes the
//! documented names (`bastion`) resolve there (`ip netns exec` bind-mounts
//! `/etc/netns/<name>/hosts` over `/etc/hosts`), and temp dirs bind-mounted
//! over the documented paths (`/etc/nextdeploy`, `/var/lib/nextdeploy`) in
//! each command's own mount namespace. Nothing of it is visible on the host;
//! all of it is removed on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::paths::TempDir;
use crate::process::run_bounded;

/// Bound for one `ip` call.
const IP_TIMEOUT: Duration = Duration::from_secs(20);

/// Tells sandboxes of one test process apart.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace with documented paths mapped to temp dirs.
#[derive(Debug)]
pub struct Sandbox {
    /// The namespace's name (`ndsb-<pid>-<n>`).
    pub name: String,
    /// Documented path -> the temp dir mounted over it.
    binds: Vec<(PathBuf, TempDir)>,
    /// Mount points this sandbox had to create on the host (removed on drop).
    created: Vec<PathBuf>,
    etc_dir: PathBuf,
}

fn ip(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    run_bounded(cmd, IP_TIMEOUT)?
        .ok()
        .map(|_| ())
        .with_context(|| format!("ip {}", args.join(" ")))
}

impl Sandbox {
    /// A new namespace with loopback up, `hosts` (name -> address) resolved
    /// inside it, the extra `addresses` (`203.0.113.7/32`) on its loopback,
    /// and a fresh temp dir over each of `paths`.
    pub fn new(hosts: &[(&str, &str)], addresses: &[&str], paths: &[&str]) -> Result<Sandbox> {
        let name = format!(
            "ndsb-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let etc_dir = PathBuf::from("/etc/netns").join(&name);
        let mut sb = Sandbox {
            name,
            binds: Vec::new(),
            created: Vec::new(),
            etc_dir,
        };
        ip(&["netns", "add", &sb.name])?;
        ip(&["-n", &sb.name, "link", "set", "lo", "up"])?;
        for a in addresses {
            ip(&["-n", &sb.name, "addr", "add", a, "dev", "lo"])?;
        }
        fs::create_dir_all(&sb.etc_dir)?;
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (host, addr) in hosts {
            text.push_str(&format!("{addr} {host}\n"));
        }
        fs::write(sb.etc_dir.join("hosts"), text)?;
        for p in paths {
            sb.bind(Path::new(p))?;
        }
        Ok(sb)
    }

    fn bind(&mut self, path: &Path) -> Result<()> {
        if !path.exists() {
            // An empty mount point on the host; the content lives in the temp dir.
            fs::create_dir_all(path).with_context(|| format!("create {}", path.display()))?;
            self.created.push(path.to_path_buf());
        }
        let dir = TempDir::new("sandbox-bind")?;
        self.binds.push((path.to_path_buf(), dir));
        Ok(())
    }

    /// The temp dir that stands for `path` inside the sandbox.
    pub fn host_path(&self, path: &str) -> Result<&Path> {
        match self.binds.iter().find(|(p, _)| p == Path::new(path)) {
            Some((_, dir)) => Ok(dir.path()),
            None => bail!("{path} is not mapped in the sandbox"),
        }
    }

    /// `sh -c script` inside the sandbox (its namespace, its mounts), in `cwd`.
    pub fn shell(&self, script: &str, cwd: &Path) -> Command {
        let mut mounts = String::new();
        for (path, dir) in &self.binds {
            mounts.push_str(&format!(
                "mount --bind '{}' '{}' || exit 125\n",
                dir.path().display(),
                path.display()
            ));
        }
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, "sh", "-c"])
            .arg(format!(
                "{mounts}cd '{}' || exit 125\n{script}",
                cwd.display()
            ));
        cmd
    }

    /// A program with arguments in the sandbox's network namespace only
    /// (`nsenter --net`: the host's mounts, /sys and cgroups included, which
    /// dockerd needs and `ip netns exec` would hide).
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.name))
            .arg("--")
            .arg(program)
            .args(args);
        cmd
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = ip(&["netns", "delete", &self.name]);
        let _ = fs::remove_dir_all(&self.etc_dir);
        for p in self.created.iter().rev() {
            let _ = fs::remove_dir(p);
        }
    }
}
