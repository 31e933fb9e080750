//! Deploys: the request, the pull policy, the history.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `deploy`: recreate containers from a new image on `server` or every agent
/// of `selector`, health-gated, rolling back on failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The new image, e.g. `myapp:2.1`.
    pub image: String,
    /// One container, or every container of the image's repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// When to pull (default `missing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullPolicy>,
    /// Seconds to wait for health (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout_s: Option<u64>,
    /// Keep the old container (stopped) as the rollback point.
    #[serde(default)]
    pub keep_previous: bool,
    /// Fleet deploys: agents updated at once (1 to 100, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u64>,
    /// Seconds a container without healthcheck must stay up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_s: Option<u64>,
    /// Set by the hub when it asks the agent; a client's is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<String>,
    /// Fleet deploys: go ahead without the offline targets (default: refuse
    /// the whole deploy, before any change, when one is offline).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_offline: bool,
    /// Fleet deploys: a label selector; its targets are deployed first, and
    /// the rest only if they all succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// Fleet deploys with `canary`: seconds the canaries must stay healthy
    /// (running, no restart) after their deploy before the rest go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_wait_s: Option<u64>,
    /// Set by the hub for `rollback`: swap back to the container the last
    /// deploy kept (`container` names it; `image` is ignored). Clients send
    /// the `rollback` action instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

impl DeployRequest {
    /// A request for `image` with every option at its default.
    pub fn new(image: impl Into<String>) -> DeployRequest {
        DeployRequest {
            image: image.into(),
            container: None,
            pull: None,
            health_timeout_s: None,
            keep_previous: false,
            max_parallel: None,
            settle_s: None,
            deploy_id: None,
            skip_offline: false,
            canary: None,
            canary_wait_s: None,
            rollback: false,
        }
    }
}

/// One `progress` reply of a deploy (or rollback). Steps: `accepted` (the
/// hub recorded the deploy; first, before any change), `pull`,
/// `pull_progress`, `swap`, `health`, `rollback`, `cleanup`, `canary_wait`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeployProgress {
    /// The deploy.
    pub deploy_id: String,
    /// The container (empty for `accepted` and `canary_wait`).
    #[serde(default)]
    pub container: String,
    /// The step.
    pub step: String,
    /// `started`, `done`, `failed`, `progress`.
    pub status: String,
    /// When, in Unix milliseconds (agent clock).
    pub at_ms: i64,
    /// What is happening, for people: "stopping the old container (stop
    /// timeout 10 s)", "image present, not pulled".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The step's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// When a deploy pulls its image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    /// Always pull.
    Always,
    /// Pull when the image is not present.
    #[default]
    Missing,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The policy's name.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "always",
            PullPolicy::Missing => "missing",
            PullPolicy::Never => "never",
        }
    }
}

impl std::str::FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<PullPolicy, String> {
        match s {
            "always" => Ok(PullPolicy::Always),
            "missing" => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            _ => Err("pull must be always, missing or never".into()),
        }
    }
}

/// `deploys_list`, optionally with `server`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploysList {
    /// Most deploys to return (1 to 1000, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}
