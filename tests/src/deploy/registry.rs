//! A real registry (Debian's `docker-registry`) on a free loopback port,
//! for the pull-policy suites.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hyper::Method;

use crate::docker::docker;
use crate::http::{http_get, http_request};
use crate::paths::{free_port, tail, TempDir};
use crate::process::{run_raw, wait_until_ok, Proc};

/// Debian's `docker-registry` serving a temp dir on a free loopback port;
/// killed on drop.
#[derive(Debug)]
pub struct Registry {
    dir: TempDir,
    /// Its port.
    pub port: u16,
    /// Its log.
    pub log: PathBuf,
    child: Option<Proc>,
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
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f);
        let child = Proc::spawn(cmd).context("spawn docker-registry")?;
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
                if let Some(st) = r.child.as_mut().and_then(Proc::try_status) {
                    bail!("docker-registry exited: {st}");
                }
                Ok(http_get(port, "/v2/", &[]).is_ok_and(|(s, _)| s == 200))
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
        let path = format!("/v2/{repo}/manifests/{tag}");
        let (status, _) = http_get(self.port, &path, &[])?;
        if status != 200 {
            bail!("registry: {repo}:{tag} -> HTTP {status}");
        }
        let accept = "application/vnd.docker.distribution.manifest.v2+json";
        let r = http_request(
            self.port,
            Method::HEAD,
            &path,
            &[("Accept", accept)],
            Duration::from_secs(10),
        )?;
        r.header("docker-content-digest")
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no Docker-Content-Digest in {:?}", r.headers))
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        format!(
            "--- registry log ({}) ---\n{}",
            self.log.display(),
            tail(&self.log, 30)
        )
    }

    /// Its temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.child = None;
        if thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}
