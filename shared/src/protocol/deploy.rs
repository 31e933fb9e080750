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
