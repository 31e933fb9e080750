//! Alerts: channels (where notifications go), rules (what fires on which
//! agents and containers) and the alerts themselves, firing and resolved.
//! The hub evaluates rules on the events and health snapshots agents push;
//! these actions only manage and read them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::alert_channels::{
    AlertChannelAdd, AlertChannelInfo, ChannelKind, ChannelTested, EmailSettings, SmtpTls,
};
use super::streams::Since;
use crate::labels::Labels;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// A container died with a non-zero exit code (Docker `die`); resolves
    /// when it runs again.
    ContainerDied,
    /// The kernel OOM-killed a container's process (Docker `oom`); resolves
    /// when it runs again.
    Oom,
    /// A container's healthcheck reports unhealthy for at least `for_s`;
    /// resolves when healthy (or gone).
    Unhealthy,
    /// An agent is offline for at least `for_s`; resolves when it is back.
    AgentOffline,
    /// A container's CPU percent (`docker stats`' figure: 100 = one CPU)
    /// above `above` in every snapshot for at least `for_s`; resolves at the
    /// first snapshot below 90% of `above` (or when it stops running).
    Cpu,
    /// A container's memory in use above `above` percent of its limit (of
    /// the host's memory without one) for at least `for_s`; resolves as
    /// `cpu` does.
    Memory,
    /// A container restarted `count` times (default 3) within `within_s`
    /// (default 600), restart-policy restarts included; resolves once it
    /// went `within_s` without a restart.
    RestartLoop,
    /// The agent reports its Docker engine unavailable for at least
    /// `for_s`; resolves at its first snapshot with the engine back.
    DockerUnavailable,
    /// A deploy or rollback failed or was rolled back (one alert per deploy,
    /// keyed by its container); resolves when a later deploy of that
    /// container succeeds.
    DeployFailed,
}

impl Condition {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::ContainerDied => "container_died",
            Condition::Oom => "oom",
            Condition::Unhealthy => "unhealthy",
            Condition::AgentOffline => "agent_offline",
            Condition::Cpu => "cpu",
            Condition::Memory => "memory",
            Condition::RestartLoop => "restart_loop",
            Condition::DockerUnavailable => "docker_unavailable",
            Condition::DeployFailed => "deploy_failed",
        }
    }
    /// By wire name.
    pub fn parse(s: &str) -> Option<Condition> {
        use Condition as C;
        [
            C::ContainerDied,
            C::Oom,
            C::Unhealthy,
            C::AgentOffline,
            C::Cpu,
            C::Memory,
            C::RestartLoop,
            C::DockerUnavailable,
            C::DeployFailed,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// How bad it is; each has a default cooldown (see the hub's alerts module).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Someone should look (the default).
    #[default]
    Warning,
    /// Someone must act now.
    Critical,
}

impl Severity {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
    /// By wire name.
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// The payload of actions that name a channel or rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ByName {
    /// The name.
    pub name: String,
}

/// The answer of the `*_remove` actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertRemoved {
    /// What was removed.
    pub name: String,
}

/// `alert_rule_add` (admin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleAdd {
    /// A unique name (`crashed`).
    pub name: String,
    /// What it watches.
    pub condition: Condition,
    /// Seconds the condition must hold before it fires (`unhealthy`,
    /// `agent_offline`, `cpu`, `memory`, `docker_unavailable`; default 0, at
    /// most 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_s: Option<u64>,
    /// `cpu` and `memory` (required there): the threshold, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// `restart_loop`: restarts that fire it (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// `restart_loop`: within how many seconds (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_s: Option<u64>,
    /// Re-notify a still-firing alert every this many seconds (default:
    /// never; at least 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_s: Option<u64>,
    /// Hold non-critical notifications in this daily window (`22:00-07:00`),
    /// released at its end if still relevant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<String>,
    /// The window's time zone: `UTC` (default) or an offset (`+02:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_tz: Option<String>,
    /// Only agents whose labels match (`env=prod`); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Only containers whose name matches this glob (`web*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Default `warning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// The channel notified.
    pub channel: String,
}

/// A rule as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertRuleInfo {
    /// Its name.
    pub name: String,
    /// What it watches.
    pub condition: Condition,
    /// Seconds the condition must hold.
    pub for_s: u64,
    /// `cpu`, `memory`: the threshold, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// `restart_loop`: restarts that fire it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// `restart_loop`: within how many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_s: Option<u64>,
    /// Re-notify a still-firing alert every this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_s: Option<u64>,
    /// Non-critical notifications are held in this daily window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<String>,
    /// The window's time zone (`UTC`, `+02:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_tz: Option<String>,
    /// `alert_rule_add`: what its scope matches now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<super::alert_rules::ScopePreview>,
    /// Agent selector, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Container name glob, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Its severity.
    pub severity: Severity,
    /// The channel notified.
    pub channel: String,
    /// When it was added (RFC 3339).
    pub created_at: String,
}

/// `alert_history`: alerts that started since `since` (default 24 h),
/// newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertHistory {
    /// How far back: `24h`-style text or seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Since>,
    /// At most this many (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// It no longer does.
    Resolved,
}

impl AlertStatus {
    /// Its wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert: a rule firing for one agent (and container), until resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertInfo {
    /// Its id.
    pub id: String,
    /// The rule.
    pub rule: String,
    /// The rule's condition.
    pub condition: Condition,
    /// The rule's severity.
    pub severity: Severity,
    /// The agent.
    pub server: String,
    /// The container, where one applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The agent's labels when it fired.
    pub labels: Labels,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// One line for people.
    pub summary: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it resolved (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// What was seen: `{"exit_code": 3, "signal": null}` for a death,
    /// `{"offline_s": 31}`, `{"health": "unhealthy"}`, `{"cpu_percent":
    /// 99.8, "above": 90}`, `{"restarts": 3, "within_s": 600}`,
    /// `{"deploy_id": ..., "outcome": "rolled_back", "error": ...}`.
    pub value: serde_json::Value,
    /// False when it re-fired within its severity's cooldown after it
    /// resolved, so it was not announced (damped flapping).
    pub notified: bool,
    /// Its notifications and how their delivery went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationInfo>,
}

/// One notification of an alert to its channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationInfo {
    /// Its id (the webhook body's `id`, stable across retries).
    pub id: String,
    /// `firing` or `resolved`.
    pub status: AlertStatus,
    /// The channel.
    pub channel: String,
    /// `pending`, `delivered`, `failed` (past its deadline), `held` (by a
    /// silence or quiet hours) or `dropped` (held, and no longer relevant
    /// when released: never sent).
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The last attempt's HTTP status, if the receiver answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// The last attempt's error, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
