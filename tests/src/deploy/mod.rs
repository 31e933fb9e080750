//! Fixtures for the `deploy_*` suites: app images built from scratch with
//! busybox (v1, v2, one that exits at once, one that never becomes healthy,
//! ...), containers and test resources removed on drop, a hub with agents
//! scoped to one test's containers, `agent deploy` runs parsed from their
//! NDJSON, a real registry (Debian's `docker-registry`) on a loopback port,
//! and a poller that measures a published port's downtime.
//!
//! Every suite takes the Docker suites' lock ([`crate::docker::docker_lock`]).

mod env;
mod registry;
mod run;

pub use env::{remove_labelled, scoped_agent, DeployEnv};
pub use registry::Registry;
pub use run::{deploy_as, median, step_secs, wait_http, DeployRun, PollStats, PortPoller};

// What these suites used from here before the harness was split by concern.
pub use crate::http::http_body;
pub use crate::paths::free_port;

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use crate::docker::{build_image, content_tag, docker, docker_raw};

/// Bound for one `agent deploy` CLI run (health waits included).
pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(120);

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
        let h = content_tag(&[file.as_bytes()]);
        match self {
            Fixture::Other => format!("{OTHER_REPO}:{h}"),
            _ => format!("{APP_REPO}:{}-{h}", self.variant()),
        }
    }

    /// The image's tag, built first if no image has that tag yet.
    pub fn image(self) -> Result<String> {
        build_image(&self.tag(), &[("Dockerfile", &self.dockerfile())])
    }

    /// The built image's id (`sha256:...`).
    pub fn image_id(self) -> Result<String> {
        image_id(&self.image()?)
    }
}

/// Whether a deploy record's time field is an RFC 3339 string (UTC).
pub fn is_rfc3339(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|t| t.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(t).is_ok())
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
