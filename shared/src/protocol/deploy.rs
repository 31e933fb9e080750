//! Deploys: the request, the pull policy, progress, outcomes, the history.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ErrorCode;

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
/// `pull_progress`, `swap`, `health`, `rollback`, `cleanup`, `canary_wait`,
/// and, in fleet deploys, `finished` (the hub: one server's deploy ended,
/// `status` is its outcome). The optional fields belong to some steps only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeployProgress {
    /// The deploy.
    pub deploy_id: String,
    /// The container (empty for `accepted`, `finished` and fleet `canary_wait`).
    #[serde(default)]
    pub container: String,
    /// The step.
    pub step: String,
    /// `started`, `done`, `failed`, `progress` (for `finished`: the outcome).
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
    /// `pull started`: the image pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `pull started`: the pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// `pull done`: whether the image was pulled (else it was present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled: Option<bool>,
    /// `pull_progress`: the layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// `pull_progress`: bytes of the layer so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    /// `pull_progress`: bytes of the layer in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// `swap`: `overlap` or `stop_then_start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `swap`: the container replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_id: Option<String>,
    /// `swap done`, `health started`: the new container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_id: Option<String>,
    /// `health started`: the health wait's bound in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
    /// `cleanup started`: whether the old container is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_previous: Option<bool>,
    /// `rollback started` of a rollback: the image rolled back from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_image: Option<String>,
    /// `rollback started` of a rollback: the image rolled back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_image: Option<String>,
    /// A swap-back rollback: the container that was running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_id: Option<String>,
    /// A swap-back rollback: the kept container swapped in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_id: Option<String>,
}

impl DeployProgress {
    /// Only `detail` set (the rest filled in by whoever reports the step).
    pub fn detail(text: impl Into<String>) -> DeployProgress {
        DeployProgress {
            detail: Some(text.into()),
            ..DeployProgress::default()
        }
    }

    /// Only `error` set.
    pub fn error(text: impl Into<String>) -> DeployProgress {
        DeployProgress {
            error: Some(text.into()),
            ..DeployProgress::default()
        }
    }
}

/// How a deploy (or one container of it) ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The new version runs and is healthy.
    Succeeded,
    /// It failed and the old version was put back.
    RolledBack,
    /// It failed; see `error` (nothing changed, or the old version could
    /// not be put back).
    #[default]
    Failed,
    /// The hub lost the agent; the agent finishes on its own and reports.
    Unknown,
    /// Fleet deploys: not started, because an earlier server failed.
    Untouched,
}

impl Outcome {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
            Outcome::Untouched => "untouched",
        }
    }
}

/// What a deploy record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeployKind {
    /// A new image.
    Deploy,
    /// Back to the previous version (`rollback`).
    Rollback,
}

/// How a rollback went back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RollbackVia {
    /// The container the last deploy kept (`keep_previous`) was swapped back in.
    KeptContainer,
    /// The version the last deploy replaced (image and configuration, as
    /// the agent recorded them) was deployed again.
    RecordedVersion,
}

/// One container's part of a deploy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContainerOutcome {
    /// The container's name.
    #[serde(default)]
    pub container: String,
    /// The image it ran before.
    #[serde(default)]
    pub from_image: String,
    /// The image it was to run (for a rollback: the one it went back to;
    /// empty if no rollback point was found).
    #[serde(default)]
    pub to_image: String,
    /// How it ended.
    #[serde(default)]
    pub outcome: Outcome,
    /// The container replaced (succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_id: Option<String>,
    /// The container that now runs under the name (succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_id: Option<String>,
    /// The step that failed: `pull`, `inspect`, `create`, `swap`, `start`,
    /// `health`, `rollback_point`, `agent_restart`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure's code.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_code"
    )]
    pub code: Option<ErrorCode>,
    /// The new container's last log lines, when it did not start or become
    /// healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_tail: Option<String>,
    /// A rollback: how it went back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_via: Option<RollbackVia>,
    /// A rollback: the deploy whose replaced version it went back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undid_deploy: Option<String>,
}

/// The `result` of `deploy` (one server) and `rollback`, the outcome an
/// agent pushes, and the `outcome` of a deploy record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeployOutcome {
    /// The deploy.
    #[serde(default)]
    pub deploy_id: String,
    /// The agent (set by the hub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// A deploy or a rollback (absent in records of deploys the agent never
    /// started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<DeployKind>,
    /// The image deployed; for a rollback, the one it went back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How it ended.
    #[serde(default)]
    pub outcome: Outcome,
    /// Each container, in order; a deploy stops at the first failure.
    #[serde(default)]
    pub containers: Vec<ContainerOutcome>,
    /// Why it failed as a whole (the agent refused it, restarted, was lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The code of `error`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_code"
    )]
    pub code: Option<ErrorCode>,
    /// When the agent started it, Unix milliseconds (agent clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    /// When it ended, Unix milliseconds (agent clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
    /// Every step, timed (`pull_progress` left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<DeployProgress>,
    /// `rollback`: the container (as `containers[0].container`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// `rollback`: the container id now running under the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now_running: Option<String>,
}

impl DeployOutcome {
    /// A deploy that failed as a whole, before or outside the agent's work.
    pub fn failed(error: impl Into<String>, code: Option<ErrorCode>) -> DeployOutcome {
        DeployOutcome {
            outcome: Outcome::Failed,
            error: Some(error.into()),
            code,
            ..DeployOutcome::default()
        }
    }

    /// The error to show first: the deploy's, else the first container's.
    pub fn first_error(&self) -> Option<&str> {
        self.error
            .as_deref()
            .or_else(|| self.containers.iter().find_map(|c| c.error.as_deref()))
    }
}

/// The `result` of a fleet `deploy` (with a selector).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FleetOutcome {
    /// Servers updated.
    pub updated: Vec<String>,
    /// Servers whose deploy did not succeed.
    pub failed: Vec<String>,
    /// Servers not started because an earlier one failed.
    pub untouched: Vec<String>,
    /// Servers left out because they were offline (`skip_offline`).
    pub skipped: Vec<String>,
    /// The canaries, deployed first.
    pub canaries: Vec<String>,
    /// Each started server's outcome, in order.
    pub deploys: Vec<DeployOutcome>,
}

/// One deploy record: `deploys_list` (`outcome` without steps, logs and
/// ids) and `deploys_show` (everything; `progress` while it runs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeployEntry {
    /// The id the hub chose.
    pub id: String,
    /// Who asked (API token name).
    pub actor: String,
    /// The agent.
    pub server: String,
    /// The container asked for (none: by repository).
    pub container: Option<String>,
    /// The image (for a rollback, the one it went back to).
    pub image: String,
    /// `running`, `succeeded`, `rolled_back`, `failed`, `unknown`.
    pub status: String,
    /// When the hub recorded it, RFC 3339 UTC (a hub before 0.x sent Unix
    /// seconds; both are read).
    #[serde(deserialize_with = "crate::time::de_rfc3339")]
    pub created_at: String,
    /// When it ended, RFC 3339 UTC.
    #[serde(default, deserialize_with = "crate::time::de_rfc3339_opt")]
    pub finished_at: Option<String>,
    /// The agent's outcome.
    pub outcome: Option<DeployOutcome>,
    /// `deploys_show` of a running deploy: its steps so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Vec<DeployProgress>>,
}

/// An error code this build does not know (a newer agent's) reads as none,
/// so that the record around it still loads.
fn lenient_code<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ErrorCode>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A record from a hub that sent Unix seconds still reads, as RFC 3339.
    #[test]
    fn an_entry_with_unix_times_reads_as_rfc3339() {
        let old = r#"{"id":"a","actor":"op","server":"s","container":null,"image":"app:1",
            "status":"running","created_at":1795600000,"finished_at":null,"outcome":null}"#;
        let e: DeployEntry = serde_json::from_str(old).unwrap();
        assert_eq!(e.created_at, "2026-11-25T09:46:40Z");
        assert_eq!(e.finished_at, None);
        let new = serde_json::to_value(&e).unwrap();
        let back: DeployEntry = serde_json::from_value(new).unwrap();
        assert_eq!(back, e);
    }

    /// The outcome keeps its wire shape: no nulls for absent fields.
    #[test]
    fn an_outcome_leaves_absent_fields_out() {
        let o = DeployOutcome {
            deploy_id: "d".into(),
            outcome: Outcome::RolledBack,
            containers: vec![ContainerOutcome {
                container: "web".into(),
                outcome: Outcome::RolledBack,
                failed_step: Some("health".into()),
                ..ContainerOutcome::default()
            }],
            ..DeployOutcome::default()
        };
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["outcome"], "rolled_back");
        assert!(v.get("error").is_none() && v.get("steps").is_none(), "{v}");
        assert!(v["containers"][0].get("logs_tail").is_none(), "{v}");
        assert_eq!(serde_json::from_value::<DeployOutcome>(v).unwrap(), o);
    }
}
