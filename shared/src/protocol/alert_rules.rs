//! Alerts, the rule side beyond [`super::alerts`]: silences (operators hold
//! the notifications of matching alerts for a while), a rule scope's preview
//! and `alert_apply` (rules and channels from a file, idempotent).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::alerts::{AlertChannelAdd, AlertRuleAdd};

/// `alert_silence_add` (operator): hold the notifications of the alerts it
/// matches for `for_s`. At least one of `selector`, `container`, `rule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertSilenceAdd {
    /// Alerts of agents whose labels match (`env=staging`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Alerts of containers whose name matches this glob (`web*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Alerts of rules whose name matches this glob (`hot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// How long, seconds (at most 30 days).
    pub for_s: u64,
    /// Why (shown in `alert silence list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A silence as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SilenceInfo {
    /// Its id.
    pub id: String,
    /// Agent selector, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Container glob, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Rule glob, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Its comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Who added it (token name).
    pub created_by: String,
    /// When it started (RFC 3339).
    pub starts_at: String,
    /// When it ends or ended (RFC 3339; `alert_silence_remove` ends it now).
    pub ends_at: String,
    /// Whether it holds notifications now.
    pub active: bool,
}

/// `alert_rule_preview` (admin): what a scope matches now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRulePreview {
    /// Agent selector (`env=prod`); all agents when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Container name glob (`web*`); all containers when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// What a rule's scope matches in the hub's live state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScopePreview {
    /// Enrolled agents whose labels match.
    pub agents: u64,
    /// Of which connected now.
    pub agents_connected: u64,
    /// Containers of the connected ones (in their latest snapshots) whose
    /// name matches.
    pub containers: u64,
    /// Up to 10 of them, `server/container`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<String>,
}

/// `alert_apply` (admin): make the channels and rules what the file says.
/// Entries are compared with what is stored: new ones are added, changed
/// ones updated, equal ones left alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertApply {
    /// Channels (as `alert_channel_add` takes them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<AlertChannelAdd>,
    /// Rules (as `alert_rule_add` takes them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<AlertRuleAdd>,
    /// Remove the rules the file does not name (channels are kept).
    #[serde(default)]
    pub prune: bool,
    /// Say what would change, change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer of `alert_apply`: entry names (`channel ops`, `rule hot`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertApplied {
    /// Added.
    pub added: Vec<String>,
    /// Changed, updated in place.
    pub updated: Vec<String>,
    /// Removed (`prune`).
    pub removed: Vec<String>,
    /// Already as the file says.
    pub unchanged: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl AlertApplied {
    /// Whether it changed (or would change) nothing.
    pub fn is_noop(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}
