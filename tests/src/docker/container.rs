//! Test containers: unique names per test, removed on drop.

use std::time::Duration;

use anyhow::{anyhow, Result};

use super::{docker, docker_raw, TEST_LABEL};
use crate::paths::contains_bytes;
use crate::process::wait_until_ok;

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
        image: &str,
        role: &str,
        opts: &[&str],
        args: &[&str],
    ) -> Result<Container> {
        let name = names.name(role);
        let label = format!("{TEST_LABEL}={}", names.prefix);
        let mut a: Vec<&str> = verb.to_vec();
        a.extend(["--name", &name, "--label", &label]);
        a.extend(opts);
        a.push(image);
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

    /// `docker run -d` a container of `image` (the fixture image).
    pub fn run(
        names: &Names,
        image: &str,
        role: &str,
        opts: &[&str],
        args: &[&str],
    ) -> Result<Container> {
        Container::make(&["run", "-d"], names, image, role, opts, args)
    }

    /// `docker create` a container of `image` (not started).
    pub fn create(
        names: &Names,
        image: &str,
        role: &str,
        opts: &[&str],
        args: &[&str],
    ) -> Result<Container> {
        Container::make(&["create"], names, image, role, opts, args)
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
                Ok(contains_bytes(&o.stdout, n) || contains_bytes(&o.stderr, n))
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
        let _ = docker_raw(&["rm", "-f", "-v", what]);
    }
}
